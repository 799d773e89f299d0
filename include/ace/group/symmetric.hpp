// SPDX-License-Identifier: MIT
// Symmetric<N>: all permutations of N objects.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "ace/group/concepts.hpp"
#include "ace/group/static_name.hpp"

namespace ace {

/// A permutation of {0..N-1}: p[i] is the image of i.
template <std::size_t N>
struct Permutation {
  std::array<std::uint8_t, N> p{};
  constexpr std::size_t operator[](std::size_t i) const { return p[i]; }
  friend constexpr bool operator==(const Permutation&, const Permutation&) = default;
};

namespace detail {
constexpr std::size_t factorial(std::size_t n) { return n <= 1 ? 1 : n * factorial(n - 1); }
}  // namespace detail

/// The symmetric group S_N. compose(a, b) = a o b (apply b first). Elements are indexed by their Lehmer code, so
/// index() and element() work for every N <= 20 without enumerating the group; generators are the transposition
/// (0 1) and the N-cycle (0 1 ... N-1). Invariant: each element is a bijection of {0..N-1}.
template <std::size_t N>
struct Symmetric {
  static_assert(N >= 1, "ace: Symmetric<N> needs N >= 1.");
  static_assert(N <= 20, "ace: Symmetric<N> supports N <= 20 (N! must fit in 64 bits).");

  using element_type = Permutation<N>;
  static constexpr std::size_t order = detail::factorial(N);
  /// The number of points permuted (used by the Natural representation).
  static constexpr std::size_t degree = N;

  static constexpr element_type identity() {
    element_type e;
    for (std::size_t i = 0; i < N; ++i) e.p[i] = static_cast<std::uint8_t>(i);
    return e;
  }
  static constexpr element_type compose(const element_type& a, const element_type& b) {
    element_type c;
    for (std::size_t i = 0; i < N; ++i) c.p[i] = a.p[b.p[i]];
    return c;
  }
  static constexpr element_type inverse(const element_type& a) {
    element_type c;
    for (std::size_t i = 0; i < N; ++i) c.p[a.p[i]] = static_cast<std::uint8_t>(i);
    return c;
  }
  /// The transposition of i and j.
  static constexpr element_type transposition(std::size_t i, std::size_t j) {
    element_type t = identity();
    t.p[i] = static_cast<std::uint8_t>(j);
    t.p[j] = static_cast<std::uint8_t>(i);
    return t;
  }
  /// The cycle i -> i+1 (mod N).
  static constexpr element_type long_cycle() {
    element_type c;
    for (std::size_t i = 0; i < N; ++i) c.p[i] = static_cast<std::uint8_t>((i + 1) % N);
    return c;
  }
  static constexpr auto generators() {
    if constexpr (N == 1) return std::array<element_type, 0>{};
    else if constexpr (N == 2) return std::array<element_type, 1>{transposition(0, 1)};
    else return std::array<element_type, 2>{transposition(0, 1), long_cycle()};
  }
  /// Lehmer code: sum_i (#{j > i : p[j] < p[i]}) * (N-1-i)!, i.e. the number of values below p[i] not used by
  /// p[0..i-1]; O(N) with a bit mask (cheap enough for constexpr Cayley tables under clang's step limit).
  static constexpr std::size_t index(const element_type& a) {
    std::size_t idx = 0;
    std::uint32_t unused = (std::uint32_t{1} << N) - 1;
    for (std::size_t i = 0; i < N; ++i) {
      const std::uint32_t below = unused & ((std::uint32_t{1} << a.p[i]) - 1);
      idx = idx * (N - i) + static_cast<std::size_t>(std::popcount(below));
      unused &= ~(std::uint32_t{1} << a.p[i]);
    }
    return idx;
  }
  static constexpr element_type element(std::size_t idx) {
    std::array<bool, N> used{};
    element_type a;
    for (std::size_t i = 0; i < N; ++i) {
      const std::size_t f = detail::factorial(N - 1 - i);
      std::size_t rank = idx / f;
      idx %= f;
      for (std::size_t v = 0; v < N; ++v) {
        if (used[v]) continue;
        if (rank-- == 0) {
          a.p[i] = static_cast<std::uint8_t>(v);
          used[v] = true;
          break;
        }
      }
    }
    return a;
  }
  static constexpr std::string_view name() { return detail::prefixed_number<'S', N>::view(); }

  /// The image of point i.
  static constexpr std::size_t apply(const element_type& a, std::size_t i) { return a.p[i]; }

  /// +1 for even permutations, -1 for odd ones.
  static constexpr int sign(const element_type& a) {
    int s = 1;
    std::array<bool, N> seen{};
    for (std::size_t i = 0; i < N; ++i) {
      if (seen[i]) continue;
      std::size_t len = 0;
      for (std::size_t j = i; !seen[j]; j = a.p[j]) {
        seen[j] = true;
        ++len;
      }
      if (len % 2 == 0) s = -s;
    }
    return s;
  }

  /// Conjugacy classes from cycle types (integer partitions of N), without enumerating the group.
  /// The class of cycle type 1^m1 2^m2 ... has N! / prod_k (k^mk mk!) elements.
  static std::vector<ConjugacyClass<Symmetric>> conjugacy_classes() {
    std::vector<ConjugacyClass<Symmetric>> out;
    std::vector<std::size_t> parts;
    auto emit = [&] {
      element_type rep;
      std::size_t start = 0;
      std::array<std::size_t, N + 1> mult{};
      for (std::size_t len : parts) {
        for (std::size_t i = 0; i < len; ++i)
          rep.p[start + i] = static_cast<std::uint8_t>(start + (i + 1) % len);
        start += len;
        ++mult[len];
      }
      std::size_t denom = 1;
      for (std::size_t k = 1; k <= N; ++k)
        for (std::size_t m = 0; m < mult[k]; ++m) denom *= k * (m + 1);
      out.push_back({rep, order / denom});
    };
    // Partitions in non-increasing order of parts.
    auto rec = [&](auto&& self, std::size_t remaining, std::size_t max_part) -> void {
      if (remaining == 0) return emit();
      for (std::size_t k = (max_part < remaining ? max_part : remaining); k >= 1; --k) {
        parts.push_back(k);
        self(self, remaining - k, k);
        parts.pop_back();
      }
    };
    rec(rec, N, N);
    std::reverse(out.begin(), out.end());  // the identity (1^N) first, as for every group
    return out;
  }
};

}  // namespace ace
