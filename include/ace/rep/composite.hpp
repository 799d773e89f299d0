// SPDX-License-Identifier: MIT
// Type-level constructions: DirectSum<R...>, Multiple<R, k> and TensorProduct<A, B>.
#pragma once

#include <Eigen/Core>
#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "ace/error.hpp"
#include "ace/rep/concepts.hpp"

namespace ace {

namespace detail {
/// m[offset + i, offset + j] = b(i, j). Entry by entry: the blocks are small, and g++ 12 at -O3 reports false
/// -Warray-bounds in Eigen's vectorised copy from a 1 x 1 fixed matrix into a dynamic block.
template <class M, class B>
void copy_block(M& m, std::size_t offset, const B& b) {
  for (Eigen::Index j = 0; j < b.cols(); ++j)
    for (Eigen::Index i = 0; i < b.rows(); ++i)
      m(static_cast<Eigen::Index>(offset) + i, static_cast<Eigen::Index>(offset) + j) = b(i, j);
}
template <class R>
void write_block(auto& m, std::size_t offset, const element_t<typename R::group>& g) {
  copy_block(m, offset, rep_matrix<R>(g));
}
template <class R>
constexpr void write_permutation(auto& p, std::size_t offset, const element_t<typename R::group>& g) {
  const auto q = R::permutation(g);
  for (std::size_t i = 0; i < R::dim; ++i) p[offset + i] = static_cast<std::uint32_t>(offset + q[i]);
}
}  // namespace detail

/// ρ_1 ⊕ ... ⊕ ρ_n: block-diagonal, the summands in order. A permutation representation when every summand is.
template <class R0, class... Rs>
struct DirectSum {
  static_assert((check_representation<R0>() && ... && check_representation<Rs>()),
                "ace: every summand of DirectSum must be a Representation.");
  static_assert((same_group_v<R0, Rs> && ...),
                "ace: DirectSum<R...> needs all summands to represent the same group; mixing representations of "
                "different groups is not defined (restrict them to a common subgroup first).");
  using group = typename R0::group;
  static constexpr std::size_t count = 1 + sizeof...(Rs);
  static constexpr std::size_t dim = R0::dim + (0 + ... + Rs::dim);
  /// offsets[i] is where summand i starts.
  static constexpr std::array<std::size_t, count> offsets = [] {
    std::array<std::size_t, count> o{};
    std::array<std::size_t, count> dims{R0::dim, Rs::dim...};
    for (std::size_t i = 1; i < count; ++i) o[i] = o[i - 1] + dims[i - 1];
    return o;
  }();

  static RepMatrix<dim> matrix(const element_t<group>& g) {
    RepMatrix<dim> m = RepMatrix<dim>::Zero(dim, dim);
    detail::write_block<R0>(m, 0, g);
    std::size_t i = 1;
    (detail::write_block<Rs>(m, offsets[i++], g), ...);
    return m;
  }
  static constexpr RepPermutation<dim> permutation(const element_t<group>& g)
    requires(PermutationRepresentation<R0> && ... && PermutationRepresentation<Rs>)
  {
    auto p = make_permutation<dim>();
    detail::write_permutation<R0>(p, 0, g);
    std::size_t i = 1;
    (detail::write_permutation<Rs>(p, offsets[i++], g), ...);
    return p;
  }
  static double character(const element_t<group>& g) { return (ace::character<R0>(g) + ... + ace::character<Rs>(g)); }
  static std::string_view name() {
    static const std::string s = detail::concat("(", rep_name<R0>(), detail::concat(" + ", rep_name<Rs>())..., ")");
    return s;
  }
};

/// ρ ⊕ ... ⊕ ρ (K copies): K channels of the same field type, channel-major (copy c occupies c*dim(ρ) .. ).
template <class R, std::size_t K>
struct Multiple {
  static_assert(check_representation<R>(), "ace: Multiple<R, K> needs a Representation R.");
  static_assert(K >= 1, "ace: Multiple<R, K> needs K >= 1 copies.");
  using group = typename R::group;
  using base = R;
  static constexpr std::size_t copies = K;
  static constexpr std::size_t dim = K * R::dim;

  static RepMatrix<dim> matrix(const element_t<group>& g) {
    RepMatrix<dim> m = RepMatrix<dim>::Zero(dim, dim);
    const auto b = rep_matrix<R>(g);
    for (std::size_t c = 0; c < K; ++c) detail::copy_block(m, c * R::dim, b);
    return m;
  }
  static constexpr RepPermutation<dim> permutation(const element_t<group>& g)
    requires PermutationRepresentation<R>
  {
    auto p = make_permutation<dim>();
    const auto q = R::permutation(g);
    for (std::size_t c = 0; c < K; ++c)
      for (std::size_t i = 0; i < R::dim; ++i) p[c * R::dim + i] = static_cast<std::uint32_t>(c * R::dim + q[i]);
    return p;
  }
  static double character(const element_t<group>& g) { return static_cast<double>(K) * ace::character<R>(g); }
  static std::string_view name() {
    static const std::string s = detail::concat(K, "x", rep_name<R>());
    return s;
  }
};

/// ρ_A ⊗ ρ_B on R^(dA dB), index (i, j) -> i*dB + j (Kronecker order). A permutation representation when both are:
/// e.g. Natural ⊗ Natural of S_N acts on N x N matrices (edge features) by simultaneous row/column permutation.
template <class A, class B>
struct TensorProduct {
  static_assert(check_representation<A>() && check_representation<B>(),
                "ace: TensorProduct<A, B> needs two Representations.");
  static_assert(same_group_v<A, B>, "ace: TensorProduct<A, B> needs A and B to represent the same group; mixing "
                                    "representations of different groups is not defined.");
  using group = typename A::group;
  static constexpr std::size_t dim = A::dim * B::dim;

  static RepMatrix<dim> matrix(const element_t<group>& g) {
    const auto a = rep_matrix<A>(g);
    const auto b = rep_matrix<B>(g);
    RepMatrix<dim> m(dim, dim);
    const auto na = static_cast<Eigen::Index>(A::dim), nb = static_cast<Eigen::Index>(B::dim);
    for (Eigen::Index j = 0; j < na; ++j)
      for (Eigen::Index i = 0; i < na; ++i)
        for (Eigen::Index l = 0; l < nb; ++l)
          for (Eigen::Index k = 0; k < nb; ++k) m(i * nb + k, j * nb + l) = a(i, j) * b(k, l);
    return m;
  }
  static constexpr RepPermutation<dim> permutation(const element_t<group>& g)
    requires(PermutationRepresentation<A> && PermutationRepresentation<B>)
  {
    auto p = make_permutation<dim>();
    const auto pa = A::permutation(g);
    const auto pb = B::permutation(g);
    for (std::size_t i = 0; i < A::dim; ++i)
      for (std::size_t j = 0; j < B::dim; ++j) p[i * B::dim + j] = static_cast<std::uint32_t>(pa[i] * B::dim + pb[j]);
    return p;
  }
  static double character(const element_t<group>& g) { return ace::character<A>(g) * ace::character<B>(g); }
  static std::string_view name() {
    static const std::string s = detail::concat("(", rep_name<A>(), " (x) ", rep_name<B>(), ")");
    return s;
  }
};

}  // namespace ace
