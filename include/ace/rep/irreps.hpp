// SPDX-License-Identifier: MIT
// Every real irreducible representation of Cyclic<N> and Dihedral<N>, and an index over them.
#pragma once

#include <Eigen/Core>
#include <cstddef>
#include <string>
#include <string_view>

#include "ace/error.hpp"
#include "ace/group/cyclic.hpp"
#include "ace/group/dihedral.hpp"
#include "ace/group/planar.hpp"
#include "ace/rep/concepts.hpp"

namespace ace {

/// The real irrep of frequency k of C_N, 0 <= k <= N/2: ρ(r^m) = 1 for k = 0; (-1)^m for k = N/2 (N even);
/// otherwise the 2-D rotation by 2*pi*k*m/N. The 2-D ones are of complex type: their commutant (and so
/// Hom(ρ, ρ) and <χ, χ>) has dimension 2, which `endomorphism_dim` records.
template <std::size_t N, std::size_t K>
struct CyclicIrrep {
  static_assert(2 * K <= N, "ace: CyclicIrrep<N, K> needs 0 <= K <= N/2 (frequencies above N/2 repeat lower ones).");
  using group = Cyclic<N>;
  static constexpr std::size_t dim = (K == 0 || 2 * K == N) ? 1 : 2;
  static constexpr std::size_t endomorphism_dim = dim;
  static Eigen::Matrix<double, dim, dim> matrix(const element_t<group>& g) {
    if constexpr (dim == 1) {
      return Eigen::Matrix<double, 1, 1>::Constant((K == 0 || g.k % 2 == 0) ? 1.0 : -1.0);
    } else {
      return detail::plane_rotation(K * g.k, N);
    }
  }
  static std::string_view name() {
    static const std::string s = detail::concat("Irrep(", group::name(), ", k=", K, ")");
    return s;
  }
};

/// The real irreps of D_N (all absolutely irreducible, endomorphism_dim = 1). 1-D ones, K = 0 or K = N/2 (N even):
/// ρ(r^m s^f) = (-1)^(J f) * (-1)^(m [K = N/2]). 2-D ones, 1 <= K < N/2 (J = 1): ρ(r^m s^f) = R(2 pi K m / N) F^f
/// with F the flip diag(1, -1).
template <std::size_t N, std::size_t J, std::size_t K>
struct DihedralIrrep {
  static constexpr bool one_dim = (K == 0 || 2 * K == N);
  static_assert(2 * K <= N, "ace: DihedralIrrep<N, J, K> needs 0 <= K <= N/2.");
  static_assert(J <= 1, "ace: DihedralIrrep<N, J, K> needs J in {0, 1} (whether flips act by -1).");
  static_assert(one_dim || J == 1, "ace: the 2-D irreps of D_N are DihedralIrrep<N, 1, K> with 1 <= K < N/2.");
  using group = Dihedral<N>;
  static constexpr std::size_t dim = one_dim ? 1 : 2;
  static constexpr std::size_t endomorphism_dim = 1;
  static Eigen::Matrix<double, dim, dim> matrix(const element_t<group>& g) {
    if constexpr (one_dim) {
      const bool negative = ((J == 1 && g.flip) != (K != 0 && g.k % 2 == 1));
      return Eigen::Matrix<double, 1, 1>::Constant(negative ? -1.0 : 1.0);
    } else {
      Eigen::Matrix2d m = detail::plane_rotation(K * g.k, N);
      if (g.flip) m = m * detail::plane_flip();
      return m;
    }
  }
  static std::string_view name() {
    static const std::string s = detail::concat("Irrep(", group::name(), ", j=", J, ", k=", K, ")");
    return s;
  }
};

namespace detail {
template <class G, std::size_t I>
struct irrep_at;

template <std::size_t N, std::size_t I>
struct irrep_at<Cyclic<N>, I> {
  static_assert(I <= N / 2, "ace: Irrep<Cyclic<N>, I> needs I < irrep_count_v<Cyclic<N>> = N/2 + 1.");
  using type = CyclicIrrep<N, I>;
};

// D_N order: (0,0), (1,0), then (0,N/2), (1,N/2) when N is even, then the 2-D ones K = 1, 2, ...
template <std::size_t N, std::size_t I>
struct irrep_at<Dihedral<N>, I> {
  static constexpr std::size_t ones = (N % 2 == 0) ? 4 : 2;
  static_assert(I < ones + (N - 1) / 2, "ace: Irrep<Dihedral<N>, I> needs I < irrep_count_v<Dihedral<N>>.");
  static constexpr std::size_t j = I < ones ? I % 2 : 1;
  static constexpr std::size_t k = I < 2 ? 0 : (I < ones ? N / 2 : I - ones + 1);
  using type = DihedralIrrep<N, j, k>;
};
}  // namespace detail

/// The number of real irreps.
template <class G>
inline constexpr std::size_t irrep_count_v = 0;
template <std::size_t N>
inline constexpr std::size_t irrep_count_v<Cyclic<N>> = N / 2 + 1;
template <std::size_t N>
inline constexpr std::size_t irrep_count_v<Dihedral<N>> = ((N % 2 == 0) ? 4 : 2) + (N - 1) / 2;

/// The I-th real irrep of G (trivial first), for G = Cyclic<N> or Dihedral<N>.
template <class G, std::size_t I>
using Irrep = typename detail::irrep_at<G, I>::type;

}  // namespace ace
