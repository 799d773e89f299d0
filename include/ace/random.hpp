// SPDX-License-Identifier: MIT
// ace::Rng — the seeded random source of every random thing in ace, identical on every platform.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>

#include "ace/error.hpp"

namespace ace {

/// A seeded generator. The engine is std::mt19937_64 (its output sequence is fixed by the C++ standard) and the
/// conversions to uniform and integer variates are ace's own, so they are bit-identical with every standard library
/// (std::uniform_real_distribution and std::normal_distribution are implementation-defined). normal() goes through
/// std::log and std::cos, which are identical for a given C library but may differ in the last bit between
/// different ones.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : engine_(seed) {}

  std::uint64_t next() { return engine_(); }
  /// Uniform on [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  /// Uniform on [lo, hi] (hi itself only through rounding).
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Standard normal (Box–Muller, one variate per call for a simple, reproducible stream).
  double normal() {
    const double u1 = 1.0 - uniform();  // (0, 1]
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }
  /// Uniform integer in [0, n), n >= 1 (rejection sampling, unbiased).
  std::uint64_t below(std::uint64_t n) {
    ACE_THROW_IF(n == 0, invalid_argument, "Rng::below: the range must be non-empty, got n = 0");
    const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    std::uint64_t x;
    do x = engine_();
    while (x >= limit);
    return x % n;
  }

  const std::mt19937_64& engine() const { return engine_; }

 private:
  std::mt19937_64 engine_;
};

/// A rows x cols matrix of independent standard normals, drawn in column-major order.
inline Eigen::MatrixXd normal_matrix(Eigen::Index rows, Eigen::Index cols, Rng& rng) {
  Eigen::MatrixXd m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = rng.normal();
  return m;
}

}  // namespace ace
