// SPDX-License-Identifier: MIT
// Concepts for groups that act on space or on points, and the action on R^d (no xtensor, so representation
// headers can use them cheaply).
#pragma once

#include <Eigen/Core>
#include <concepts>
#include <cstddef>

#include "ace/group/concepts.hpp"

namespace ace {

/// A group acting linearly on R^d by orthogonal matrices: `spatial_dim` and `matrix(g)` (d x d). Cyclic and
/// Dihedral act on the plane, the polyhedral groups on space.
template <class G>
concept GeometricGroup = FiniteGroup<G> && requires(element_t<G> g) {
  { G::spatial_dim } -> std::convertible_to<int>;
  { G::matrix(g) } -> std::convertible_to<Eigen::Matrix<double, G::spatial_dim, G::spatial_dim>>;
};

/// g acting on a point of R^d.
template <GeometricGroup G>
Eigen::Matrix<double, G::spatial_dim, 1> act(const element_t<G>& g, const Eigen::Matrix<double, G::spatial_dim, 1>& x) {
  return G::matrix(g) * x;
}

/// A group acting on the points {0..degree-1} (Symmetric<N>): `degree` and `apply(g, i)`.
template <class G>
concept PermutationGroup = FiniteGroup<G> && requires(element_t<G> g, std::size_t i) {
  { G::degree } -> std::convertible_to<std::size_t>;
  { G::apply(g, i) } -> std::convertible_to<std::size_t>;
};

}  // namespace ace
