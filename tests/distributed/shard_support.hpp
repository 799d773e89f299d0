// SPDX-License-Identifier: MIT
// Test data for the shard reduction: rows whose sum depends on the order of the additions (magnitudes from 1e-8 to
// 1e8, both signs), generated per shard from a seed, so that a test can tell the shard order from any other.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "ace/random.hpp"

namespace ace::test {

/// Row `shard` (of `width` values) of the order-sensitive test data for `seed`.
template <class T>
std::vector<T> shard_row(std::uint64_t seed, std::size_t shard, std::size_t width) {
  Rng rng(seed + 7919 * shard);
  std::vector<T> row(width);
  for (auto& v : row) {
    const double scale = std::pow(10.0, 16.0 * rng.uniform() - 8.0);
    v = static_cast<T>((rng.uniform() < 0.5 ? -1.0 : 1.0) * scale * (1.0 + rng.uniform()));
  }
  return row;
}

/// The rows of shards [first, first + count), one after another.
template <class T>
std::vector<T> shard_rows(std::uint64_t seed, std::size_t first, std::size_t count, std::size_t width) {
  std::vector<T> rows;
  for (std::size_t s = first; s < first + count; ++s) {
    const auto row = shard_row<T>(seed, s, width);
    rows.insert(rows.end(), row.begin(), row.end());
  }
  return rows;
}

}  // namespace ace::test
