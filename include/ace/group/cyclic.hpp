// SPDX-License-Identifier: MIT
// Cyclic<N>: the rotations of the plane by multiples of 2*pi/N.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ace/group/concepts.hpp"
#include "ace/group/planar.hpp"
#include "ace/group/static_name.hpp"

namespace ace {

/// The cyclic group C_N = {r^k : k = 0..N-1}; r rotates the plane by 2*pi/N counter-clockwise.
/// Invariant: element k is stored reduced, 0 <= k < N, and index(r^k) == k.
template <std::size_t N>
struct Cyclic {
  static_assert(N >= 1, "ace: Cyclic<N> needs N >= 1 (C_0 is not a group); Cyclic<1> is the trivial group.");
  static_assert(N <= 65536, "ace: Cyclic<N> supports N up to 65536.");

  struct element_type {
    std::uint32_t k = 0;  ///< the rotation r^k
    friend constexpr bool operator==(element_type, element_type) = default;
  };

  static constexpr std::size_t order = N;
  static constexpr int spatial_dim = 2;

  static constexpr element_type identity() { return {0}; }
  static constexpr element_type rotation(std::size_t k) { return {static_cast<std::uint32_t>(k % N)}; }
  static constexpr element_type compose(element_type a, element_type b) {
    return {static_cast<std::uint32_t>((a.k + b.k) % N)};
  }
  static constexpr element_type inverse(element_type a) { return {static_cast<std::uint32_t>((N - a.k) % N)}; }
  static constexpr auto generators() {
    if constexpr (N == 1) return std::array<element_type, 0>{};
    else return std::array<element_type, 1>{element_type{1}};
  }
  static constexpr std::size_t index(element_type a) { return a.k; }
  static constexpr element_type element(std::size_t i) { return {static_cast<std::uint32_t>(i)}; }
  static constexpr std::string_view name() { return detail::prefixed_number<'C', N>::view(); }

  /// The action on the plane (the defining 2-D rotation matrix).
  static Eigen::Matrix2d matrix(element_type a) { return detail::plane_rotation(a.k, N); }
};

}  // namespace ace
