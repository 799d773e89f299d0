// SPDX-License-Identifier: MIT
// OpenMP across the batch, when the build enables it (ACE_WITH_OPENMP links OpenMP; otherwise loops stay serial).
#pragma once

#if defined(_OPENMP)
#define ACE_DETAIL_PRAGMA(x) _Pragma(#x)
/// Splits the following for loop statically across OpenMP threads when `cond` holds (large enough to pay for the
/// fork). Each iteration must write disjoint memory, so results do not depend on the thread count.
#define ACE_OMP_FOR(cond) ACE_DETAIL_PRAGMA(omp parallel for schedule(static) if (cond))
#else
#define ACE_OMP_FOR(cond)
#endif
