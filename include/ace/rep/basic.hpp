// SPDX-License-Identifier: MIT
// The basic representations: Trivial, Regular, Sign, Standard and Natural.
#pragma once

#include <Eigen/Core>
#include <cstddef>
#include <string>
#include <string_view>

#include "ace/group/geometry.hpp"
#include "ace/error.hpp"
#include "ace/group/concepts.hpp"
#include "ace/rep/concepts.hpp"

namespace ace {

namespace detail {
/// "Rep(G)", built once per representation type (the tag keeps one string per type).
template <class Tag, class G>
std::string_view decorated_name(std::string_view rep) {
  static const std::string s = detail::concat(rep, "(", G::name(), ")");
  return s;
}
}  // namespace detail

/// ρ(g) = 1 on R^1: invariant features (scalars).
template <class G>
struct Trivial {
  static_assert(check_finite_group<G>(), "ace: Trivial<G> needs a FiniteGroup G.");
  using group = G;
  static constexpr std::size_t dim = 1;
  static constexpr RepPermutation<1> permutation(const element_t<G>&) { return {0}; }
  static constexpr double character(const element_t<G>&) { return 1.0; }
  static std::string_view name() { return detail::decorated_name<Trivial, G>("Trivial"); }
};

/// The regular representation on R^|G|: ρ(g) e_h = e_{gh}, basis indexed by G::index. Functions on the group;
/// the features of group convolutions.
template <class G>
struct Regular {
  static_assert(check_finite_group<G>(), "ace: Regular<G> needs a FiniteGroup G.");
  static_assert(G::order <= 4096, "ace: Regular<G> is limited to groups of order <= 4096 (its matrices would have "
                                  "more than 16M entries); use a quotient or irreducible representations instead.");
  using group = G;
  static constexpr std::size_t dim = G::order;
  static constexpr RepPermutation<dim> permutation(const element_t<G>& g) {
    auto p = make_permutation<dim>();
    for (std::size_t i = 0; i < dim; ++i) p[i] = static_cast<std::uint32_t>(G::index(G::compose(g, G::element(i))));
    return p;
  }
  static constexpr double character(const element_t<G>& g) {
    return g == G::identity() ? static_cast<double>(G::order) : 0.0;
  }
  static std::string_view name() { return detail::decorated_name<Regular, G>("Regular"); }
};

template <class G>
concept SignedGroup = FiniteGroup<G> && requires(element_t<G> g) {
  { G::sign(g) } -> std::convertible_to<int>;
};

/// The sign representation ρ(g) = ±1: the determinant of the plane action for Dihedral<N>, the parity for
/// Symmetric<N>. Pseudo-scalars.
template <class G>
struct Sign {
  static_assert(SignedGroup<G>, "ace: Sign<G> needs a group with a sign homomorphism `G::sign(g)` (Dihedral<N>, "
                                "Symmetric<N>); cyclic and rotation groups have none.");
  using group = G;
  static constexpr std::size_t dim = 1;
  static Eigen::Matrix<double, 1, 1> matrix(const element_t<G>& g) {
    return Eigen::Matrix<double, 1, 1>::Constant(static_cast<double>(G::sign(g)));
  }
  static constexpr double character(const element_t<G>& g) { return static_cast<double>(G::sign(g)); }
  static std::string_view name() { return detail::decorated_name<Sign, G>("Sign"); }
};

/// The defining geometric representation: 2-D for Cyclic<N> and Dihedral<N>, 3-D for the polyhedral groups.
template <class G>
struct Standard {
  static_assert(GeometricGroup<G>, "ace: Standard<G> needs a group acting on space (`spatial_dim` and `matrix(g)`): "
                                   "Cyclic, Dihedral, Tetrahedral, Octahedral or Icosahedral.");
  using group = G;
  static constexpr std::size_t dim = static_cast<std::size_t>(G::spatial_dim);
  static Eigen::Matrix<double, G::spatial_dim, G::spatial_dim> matrix(const element_t<G>& g) { return G::matrix(g); }
  static std::string_view name() { return detail::decorated_name<Standard, G>("Standard"); }
};

/// The natural permutation representation of a permutation group on R^degree: ρ(g) e_i = e_{g(i)}.
/// For Symmetric<N>: sets of N items, node features of graphs.
template <class G>
struct Natural {
  static_assert(PermutationGroup<G>, "ace: Natural<G> needs a permutation group (`degree` and `apply(g, i)`), "
                                     "such as Symmetric<N>.");
  using group = G;
  static constexpr std::size_t dim = G::degree;
  static constexpr RepPermutation<dim> permutation(const element_t<G>& g) {
    auto p = make_permutation<dim>();
    for (std::size_t i = 0; i < dim; ++i) p[i] = static_cast<std::uint32_t>(G::apply(g, i));
    return p;
  }
  static std::string_view name() { return detail::decorated_name<Natural, G>("Natural"); }
};

}  // namespace ace
