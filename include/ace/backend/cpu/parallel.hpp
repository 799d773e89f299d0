// SPDX-License-Identifier: MIT
// OpenMP in the Cpu backend, when the build enables it (ACE_WITH_OPENMP links OpenMP; otherwise loops stay serial).
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

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

/// This thread's scratch of at least `count` T for the caller that Tag names (each Tag its own buffer, so a caller's
/// scratch stays valid across calls that use another's on the same thread), grown, never shrunk: no allocation once
/// the largest shape was seen.
template <class Tag, class T>
T* thread_scratch(std::size_t count) {
  thread_local std::vector<T> scratch;
  if (scratch.size() < count) scratch.resize(count);
  return scratch.data();
}

/// The entries of one call of for_chunks in the Cpu backend's elementwise passes, updates and zeroing: a function of
/// each tensor's size alone, and a whole number of 64-byte vectors.
inline constexpr std::size_t elementwise_chunk = 4096;

/// f(i, first, count) over the entries of `tensors` runs of entries (size_of(i) each) in chunks of `chunk` entries
/// counted from the start of each run (the last chunk of a run may be shorter), the chunks in order spread over the
/// threads in contiguous groups where the work (entries x `cost`) pays for the fork. Each chunk is one call on the
/// same entries whatever the thread count, so vectorised code (whose first and last entries may take a scalar path)
/// gives the same bits for any number of threads.
template <class Size, class F>
void for_chunks(std::size_t tensors, Size&& size_of, std::size_t chunk, std::size_t cost, F&& f) {
  std::size_t entries = 0, chunks = 0;
  for (std::size_t i = 0; i < tensors; ++i) {
    entries += size_of(i);
    chunks += (size_of(i) + chunk - 1) / chunk;
  }
  const std::size_t groups = entries * cost > (std::size_t{1} << 15) ? std::min(omp_threads(), chunks) : 1;
  ACE_OMP_FOR(groups > 1)
  for (std::size_t g = 0; g < groups; ++g) {
    const std::size_t begin = chunks * g / groups, end = chunks * (g + 1) / groups;
    std::size_t offset = 0;  // chunks of the runs before run i
    for (std::size_t i = 0; i < tensors && offset < end; ++i) {
      const std::size_t size = size_of(i), own = (size + chunk - 1) / chunk;
      for (std::size_t c = std::max(begin, offset); c < std::min(end, offset + own); ++c) {
        const std::size_t first = (c - offset) * chunk;
        f(i, first, std::min(chunk, size - first));
      }
      offset += own;
    }
  }
}
}  // namespace ace::cpu
