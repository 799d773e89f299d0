// SPDX-License-Identifier: MIT
// OpenMP across the batch, when the build enables it (ACE_WITH_OPENMP links OpenMP; otherwise loops stay serial).
#pragma once

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

namespace ace::detail {
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
}  // namespace ace::detail
