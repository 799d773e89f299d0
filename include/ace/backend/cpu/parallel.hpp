// SPDX-License-Identifier: MIT
// OpenMP in the Cpu backend, when the build enables it (ACE_WITH_OPENMP links OpenMP; otherwise loops stay serial).
#pragma once

#include <algorithm>
#include <cstddef>

#if defined(_OPENMP)
#include <omp.h>
#define ACE_DETAIL_PRAGMA(x) _Pragma(#x)
/// Splits the following for loop statically across OpenMP threads when `cond` holds (large enough to pay for the
/// fork). Each iteration must write disjoint memory, so results do not depend on the thread count.
#define ACE_OMP_FOR(cond) ACE_DETAIL_PRAGMA(omp parallel for schedule(static) if (cond))
#else
#define ACE_OMP_FOR(cond)
#endif

namespace ace::cpu {
/// The threads a parallel loop may use (1 without OpenMP): the size of per-thread scratch buffers.
inline std::size_t omp_threads() {
#if defined(_OPENMP)
  return static_cast<std::size_t>(omp_get_max_threads());
#else
  return 1;
#endif
}
/// This thread's index inside the innermost parallel region (0 outside one, and without OpenMP).
inline std::size_t omp_thread() {
#if defined(_OPENMP)
  return static_cast<std::size_t>(omp_get_thread_num());
#else
  return 0;
#endif
}

/// f(first, count) for blocks of `rows` rows (whole multiples of `unit`), one block per thread when the work
/// (`rows` x `cost` entries) is large enough to pay for the fork, one block otherwise. Rows must be independent:
/// each is computed the same way whatever the split, so results do not depend on the thread count.
template <class F>
void for_row_blocks(std::size_t rows, std::size_t unit, std::size_t cost, F&& f) {
  const std::size_t units = unit == 0 ? 0 : rows / unit;
  const std::size_t blocks = rows * cost > (std::size_t{1} << 15) ? std::min(omp_threads(), std::max<std::size_t>(units, 1)) : 1;
  ACE_OMP_FOR(blocks > 1)
  for (std::size_t k = 0; k < blocks; ++k) {
    const std::size_t first = units * k / blocks * unit;
    const std::size_t last = k + 1 == blocks ? rows : units * (k + 1) / blocks * unit;
    if (last > first) f(first, last - first);
  }
}
}  // namespace ace::cpu
