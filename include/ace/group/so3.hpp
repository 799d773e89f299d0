// SPDX-License-Identifier: MIT
// Samples of SO(3): a deterministic quasi-uniform grid of any size and seeded Haar-random rotations.
#pragma once

#include <Eigen/Core>
#include <Eigen/Geometry>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>
#include <vector>

#include "ace/error.hpp"
#include "ace/random.hpp"

namespace ace {

/// The rotation matrix of the unit quaternion (w, x, y, z) (normalised first).
inline Eigen::Matrix3d rotation_from_quaternion(double w, double x, double y, double z) {
  return Eigen::Quaterniond(w, x, y, z).normalized().toRotationMatrix();
}

/// K rotations spread quasi-uniformly over SO(3): the super-Fibonacci spiral on the unit quaternions
/// (Alexa, "Super-Fibonacci Spirals: Fast, Low-Discrepancy Sampling of SO(3)", CVPR 2022, Algorithm 1).
/// Deterministic, any K >= 1; the empirical Haar moments converge at about O(log K / K).
inline std::vector<Eigen::Matrix3d> so3_grid(std::size_t count) {
  ACE_THROW_IF(count == 0, invalid_argument, "so3_grid: the number of rotations must be >= 1, got 0");
  constexpr double phi = std::numbers::sqrt2;
  constexpr double psi = 1.533751168755204288118041;  // the real root of psi^4 = psi + 4
  std::vector<Eigen::Matrix3d> out;
  out.reserve(count);
  const double n = static_cast<double>(count);
  for (std::size_t i = 0; i < count; ++i) {
    const double s = static_cast<double>(i) + 0.5;
    const double r = std::sqrt(s / n);
    const double big_r = std::sqrt(1.0 - s / n);
    const double alpha = 2.0 * std::numbers::pi * s / phi;
    const double beta = 2.0 * std::numbers::pi * s / psi;
    out.push_back(rotation_from_quaternion(r * std::sin(alpha), r * std::cos(alpha), big_r * std::sin(beta),
                                           big_r * std::cos(beta)));
  }
  return out;
}

/// One Haar-random rotation (uniform unit quaternion from four normals).
inline Eigen::Matrix3d so3_random(Rng& rng) {
  double w, x, y, z, norm2;
  do {
    w = rng.normal();
    x = rng.normal();
    y = rng.normal();
    z = rng.normal();
    norm2 = w * w + x * x + y * y + z * z;
  } while (norm2 < 1e-12);
  return rotation_from_quaternion(w, x, y, z);
}

/// `count` Haar-random rotations from a seed: the same seed gives the same rotations on every platform.
inline std::vector<Eigen::Matrix3d> so3_random(std::size_t count, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<Eigen::Matrix3d> out;
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) out.push_back(so3_random(rng));
  return out;
}

}  // namespace ace
