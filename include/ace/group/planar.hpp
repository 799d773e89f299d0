// SPDX-License-Identifier: MIT
// Rotations and reflections of the plane shared by Cyclic<N> and Dihedral<N>.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <cstddef>
#include <numbers>

namespace ace::detail {

/// cos and sin of 2*pi*k/n, exact (0, +-1) at multiples of a quarter turn so that C4 and D4 matrices are exact.
inline Eigen::Vector2d unit_circle(std::size_t k, std::size_t n) {
  k %= n;
  if ((4 * k) % n == 0) {
    switch ((4 * k) / n) {
      case 0: return {1.0, 0.0};
      case 1: return {0.0, 1.0};
      case 2: return {-1.0, 0.0};
      default: return {0.0, -1.0};
    }
  }
  const double angle = 2.0 * std::numbers::pi * static_cast<double>(k) / static_cast<double>(n);
  return {std::cos(angle), std::sin(angle)};
}

/// Counter-clockwise rotation by 2*pi*k/n.
inline Eigen::Matrix2d plane_rotation(std::size_t k, std::size_t n) {
  const Eigen::Vector2d cs = unit_circle(k, n);
  Eigen::Matrix2d r;
  r << cs(0), -cs(1), cs(1), cs(0);
  return r;
}

/// Reflection across the x-axis: (x, y) -> (x, -y).
inline Eigen::Matrix2d plane_flip() { return Eigen::Vector2d(1.0, -1.0).asDiagonal(); }

}  // namespace ace::detail
