// SPDX-License-Identifier: MIT
// The Representation concept, and the free functions every algorithm uses to read a representation.
#pragma once

#include <Eigen/Core>
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <ranges>
#include <string_view>
#include <type_traits>
#include <vector>

#include "ace/group/concepts.hpp"

namespace ace {

/// Representation matrices are fixed-size Eigen matrices up to 16 x 16, where fixed size pays off; larger ones are
/// dynamic, so that e.g. the 128 x 128 matrices of Multiple<Regular<Cyclic<8>>, 16> (128 KiB each, Eigen's limit
/// for fixed-size objects) do not sit on the stack.
inline constexpr std::size_t max_fixed_rep_dim = 16;

template <std::size_t D>
using RepMatrix = std::conditional_t<(D <= max_fixed_rep_dim),
                                     Eigen::Matrix<double, static_cast<int>(D), static_cast<int>(D)>, Eigen::MatrixXd>;

/// Permutation representations return ρ(g) as an index array p with ρ(g) e_i = e_{p[i]}: a std::array up to 4096
/// entries (usable in constant expressions), a std::vector above, so large permutations do not sit on the stack.
inline constexpr std::size_t max_array_permutation = 4096;
template <std::size_t D>
using RepPermutation =
    std::conditional_t<(D <= max_array_permutation), std::array<std::uint32_t, D>, std::vector<std::uint32_t>>;

/// A zero-filled permutation buffer of D entries.
template <std::size_t D>
constexpr RepPermutation<D> make_permutation() {
  if constexpr (D <= max_array_permutation) return RepPermutation<D>{};
  else return RepPermutation<D>(D, 0u);
}

namespace detail {
template <class R> concept has_group_and_dim = requires {
  typename R::group;
  { R::dim } -> std::convertible_to<std::size_t>;
};
template <class R> concept has_matrix = requires(element_t<typename R::group> g) {
  { R::matrix(g) } -> std::convertible_to<Eigen::MatrixXd>;
};
template <class R> concept has_permutation = requires(element_t<typename R::group> g) {
  { R::permutation(g) } -> std::ranges::random_access_range;
};
template <class R> concept has_character = requires(element_t<typename R::group> g) {
  { R::character(g) } -> std::convertible_to<double>;
};
template <class R> concept has_rep_name = requires { { R::name() } -> std::convertible_to<std::string_view>; };
}  // namespace detail

/// A real orthogonal representation ρ: G -> O(dim) as a type. A user type provides the minimum:
///  * `group`: the FiniteGroup it represents (so mismatched representations fail to compile);
///  * `dim`: static constexpr, so layer shapes are known at compile time;
///  * either `matrix(g)` (a dim x dim Eigen matrix) or, for permutation representations, `permutation(g)`
///    (ρ(g) e_i = e_{p[i]}), which lets ace use exact orbit bases instead of a numerical solve.
/// Optional: `character(g)` (faster than a trace) and `name()`. Read representations through rep_matrix,
/// character and rep_name, which fill in what a type leaves out.
template <class R>
concept Representation = detail::has_group_and_dim<R> && FiniteGroup<typename R::group> &&
                         (detail::has_matrix<R> || detail::has_permutation<R>);

/// Representations by permutation matrices (all entries 0/1): Trivial, Regular, Natural, Quotient, and sums,
/// multiples and tensor products of these.
template <class R>
concept PermutationRepresentation = Representation<R> && detail::has_permutation<R>;

template <class R>
inline constexpr bool is_permutation_rep_v = PermutationRepresentation<R>;

/// Static check with one sentence per missing piece (call as `static_assert(check_representation<R>())`).
template <class R>
consteval bool check_representation() {
  static_assert(detail::has_group_and_dim<R>,
                "ace: a representation type needs `using group = <a FiniteGroup>;` and "
                "`static constexpr std::size_t dim`.");
  if constexpr (detail::has_group_and_dim<R>) {
    static_assert(check_finite_group<typename R::group>());
    static_assert(R::dim >= 1, "ace: a representation needs dim >= 1.");
    static_assert(detail::has_matrix<R> || detail::has_permutation<R>,
                  "ace: a representation type needs a static `matrix(g)` returning a dim x dim Eigen matrix, or a "
                  "static `permutation(g)` returning an index array p with rho(g) e_i = e_{p[i]}.");
  }
  return Representation<R>;
}

/// The matrix ρ(g).
template <Representation R>
RepMatrix<R::dim> rep_matrix(const element_t<typename R::group>& g) {
  if constexpr (detail::has_matrix<R>) {
    return R::matrix(g);
  } else {
    RepMatrix<R::dim> m = RepMatrix<R::dim>::Zero(R::dim, R::dim);
    const auto p = R::permutation(g);
    for (std::size_t i = 0; i < R::dim; ++i) m(static_cast<Eigen::Index>(p[i]), static_cast<Eigen::Index>(i)) = 1.0;
    return m;
  }
}

/// ρ(g) as a dynamic Eigen matrix (copied entry by entry: g++ 12 at -O3 reports false -Warray-bounds when Eigen
/// vectorises the copy of a 1 x 1 fixed matrix into a dynamic one).
template <Representation R>
Eigen::MatrixXd rep_matrix_dynamic(const element_t<typename R::group>& g) {
  const auto m = rep_matrix<R>(g);
  Eigen::MatrixXd out(m.rows(), m.cols());
  for (Eigen::Index j = 0; j < m.cols(); ++j)
    for (Eigen::Index i = 0; i < m.rows(); ++i) out(i, j) = m(i, j);
  return out;
}

/// The character χ(g) = trace ρ(g).
template <Representation R>
double character(const element_t<typename R::group>& g) {
  if constexpr (detail::has_character<R>) {
    return R::character(g);
  } else if constexpr (detail::has_permutation<R>) {
    const auto p = R::permutation(g);
    std::size_t fixed = 0;
    for (std::size_t i = 0; i < R::dim; ++i) fixed += (p[i] == i);
    return static_cast<double>(fixed);
  } else {
    return R::matrix(g).trace();
  }
}

template <Representation R>
std::string_view rep_name() {
  if constexpr (detail::has_rep_name<R>) return R::name();
  else return "user-representation";
}

/// Both representations are of the same group.
template <class A, class B>
inline constexpr bool same_group_v = std::same_as<typename A::group, typename B::group>;

}  // namespace ace
