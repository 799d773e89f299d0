// SPDX-License-Identifier: MIT
// Dihedral<N>: the symmetries of the regular N-gon, rotations and reflections of the plane.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ace/group/concepts.hpp"
#include "ace/group/planar.hpp"
#include "ace/group/static_name.hpp"

namespace ace {

/// The dihedral group D_N of order 2N. Element (k, f) is r^k s^f: first reflect across the x-axis if f = 1, then
/// rotate by 2*pi*k/N. Relations: r^N = s^2 = e, s r s = r^-1. D_1 = {e, s}; D_2 is the Klein four-group.
/// Invariant: 0 <= k < N, f in {0, 1}; index(r^k s^f) = f*N + k.
template <std::size_t N>
struct Dihedral {
  static_assert(N >= 1, "ace: Dihedral<N> needs N >= 1 (D_N has order 2N); Dihedral<1> is the group of one flip.");
  static_assert(N <= 32768, "ace: Dihedral<N> supports N up to 32768.");

  struct element_type {
    std::uint32_t k = 0;     ///< rotation part r^k
    std::uint32_t flip = 0;  ///< 1 if the element contains the reflection s
    friend constexpr bool operator==(element_type, element_type) = default;
  };

  static constexpr std::size_t order = 2 * N;
  static constexpr int spatial_dim = 2;

  static constexpr element_type identity() { return {0, 0}; }
  static constexpr element_type rotation(std::size_t k) { return {static_cast<std::uint32_t>(k % N), 0}; }
  static constexpr element_type reflection(std::size_t k = 0) { return {static_cast<std::uint32_t>(k % N), 1}; }
  static constexpr element_type compose(element_type a, element_type b) {
    // r^a s^fa r^b s^fb = r^(a + (-1)^fa b) s^(fa + fb)
    const std::size_t k = a.flip ? (a.k + N - b.k) % N : (a.k + b.k) % N;
    return {static_cast<std::uint32_t>(k), a.flip ^ b.flip};
  }
  static constexpr element_type inverse(element_type a) {
    return a.flip ? a : element_type{static_cast<std::uint32_t>((N - a.k) % N), 0};
  }
  static constexpr auto generators() {
    if constexpr (N == 1) return std::array<element_type, 1>{element_type{0, 1}};
    else return std::array<element_type, 2>{element_type{1, 0}, element_type{0, 1}};
  }
  static constexpr std::size_t index(element_type a) { return a.flip * N + a.k; }
  static constexpr element_type element(std::size_t i) {
    return {static_cast<std::uint32_t>(i % N), static_cast<std::uint32_t>(i / N)};
  }
  static constexpr std::string_view name() { return detail::prefixed_number<'D', N>::view(); }

  /// +1 for rotations, -1 for reflections (the determinant of the plane action).
  static constexpr int sign(element_type a) { return a.flip ? -1 : 1; }

  /// The action on the plane.
  static Eigen::Matrix2d matrix(element_type a) {
    Eigen::Matrix2d m = detail::plane_rotation(a.k, N);
    if (a.flip) m = m * detail::plane_flip();
    return m;
  }
};

}  // namespace ace
