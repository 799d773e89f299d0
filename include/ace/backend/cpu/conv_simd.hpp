// SPDX-License-Identifier: MIT
// AVX2/FMA register-tile kernels for float convolutions in channels-last layout, compiled for that instruction set
// whatever the build's flags (function target attributes) and chosen at run time when the CPU has it.
#pragma once

#include <atomic>
#include <cstddef>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define ACE_HAS_X86_KERNELS 1
#else
#define ACE_HAS_X86_KERNELS 0
#endif

namespace ace {

namespace detail {
inline std::atomic<bool>& simd_kernels_switch() {
  static std::atomic<bool> on{true};
  return on;
}
}  // namespace detail

/// Whether this CPU runs ace's AVX2/FMA kernels (x86-64 with AVX2 and FMA, GCC or clang); checked once at run time,
/// so a generic build uses them on machines that have them.
inline bool simd_kernels_available() {
#if ACE_HAS_X86_KERNELS
  static const bool available = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return available;
#else
  return false;
#endif
}

namespace cpu::detail {
/// Whether this CPU has AVX-512F (checked once); ace's kernels that have an AVX-512 form (the GEMM tiles, the
/// sigmoid of cpu/elementwise.hpp) run it there.
inline bool avx512_available() {
#if ACE_HAS_X86_KERNELS
  static const bool available = __builtin_cpu_supports("avx512f");
  return available;
#else
  return false;
#endif
}
}  // namespace cpu::detail

/// Turns the AVX2/FMA kernels off (or back on) for the whole process, e.g. to compare them with the portable Eigen
/// path; they are on by default wherever they are available. Results differ from the Eigen path by rounding only.
inline void set_simd_kernels(bool on) { detail::simd_kernels_switch().store(on); }

/// True when convolutions of float tensors in channels-last layout run on the AVX2/FMA kernels.
inline bool simd_kernels_enabled() { return simd_kernels_available() && detail::simd_kernels_switch().load(); }

}  // namespace ace

#if ACE_HAS_X86_KERNELS

#define ACE_DETAIL_AVX2 __attribute__((target("avx2,fma")))
#define ACE_DETAIL_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) inline
#define ACE_DETAIL_AVX512 __attribute__((target("avx512f")))

namespace ace::cpu::simd {

/// Register tile: up to `mr` rows of `nr` floats (two AVX registers each), 12 accumulators.
inline constexpr std::size_t mr = 6, nr = 16;

// Lanes [0, n) of an 8-float register, n in [0, 8].
ACE_DETAIL_AVX2_INLINE __m256i lanes(std::size_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// c[i][0, n) = acc[i] (+ c[i][0, n) when Accumulate) for the MR rows; n in [1, 16].
template <int MR, bool Accumulate>
ACE_DETAIL_AVX2_INLINE void store_tile(__m256 (&acc)[MR][2], float* const* c, std::size_t n) {
  if (n == nr) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      if constexpr (Accumulate) {
        acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_loadu_ps(c[i]));
        acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_loadu_ps(c[i] + 8));
      }
      _mm256_storeu_ps(c[i], acc[i][0]);
      _mm256_storeu_ps(c[i] + 8, acc[i][1]);
    }
    return;
  }
  const __m256i m0 = lanes(n < 8 ? n : 8), m1 = lanes(n > 8 ? n - 8 : 0);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    if constexpr (Accumulate) {
      acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_maskload_ps(c[i], m0));
      acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_maskload_ps(c[i] + 8, m1));
    }
    _mm256_maskstore_ps(c[i], m0, acc[i][0]);
    _mm256_maskstore_ps(c[i] + 8, m1, acc[i][1]);
  }
}

/// c[i][0, n) (+)= init[j] + sum over t < taps, k < kc of a[t * mr + i][shift + k] * b[t][k * nr + j], i < MR: rows
/// given by pointers (one per tap and row, contiguous along k), each tap's b a packed panel of nr columns (zero
/// beyond n), init nr values or nullptr for none.
template <int MR, bool Accumulate>
ACE_DETAIL_AVX2 void rows_times_panel(std::size_t taps, std::size_t kc, const float* const* a, std::size_t shift,
                                      const float* const* b, const float* init, float* const* c, std::size_t n) {
  __m256 acc[MR][2];
  const __m256 init0 = init != nullptr ? _mm256_loadu_ps(init) : _mm256_setzero_ps();
  const __m256 init1 = init != nullptr ? _mm256_loadu_ps(init + 8) : _mm256_setzero_ps();
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    acc[i][0] = init0;
    acc[i][1] = init1;
  }
  for (std::size_t t = 0; t < taps; ++t) {
    const float* row[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) row[i] = a[t * mr + static_cast<std::size_t>(i)] + shift;
    const float* panel = b[t];
    for (std::size_t k = 0; k < kc; ++k, panel += nr) {
      const __m256 b0 = _mm256_loadu_ps(panel), b1 = _mm256_loadu_ps(panel + 8);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m256 v = _mm256_broadcast_ss(row[i] + k);
        acc[i][0] = _mm256_fmadd_ps(v, b0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(v, b1, acc[i][1]);
      }
    }
  }
  store_tile<MR, Accumulate>(acc, c, n);
}

/// c[i][0, n) = sum over k < kc of a[k][offset + i] * b[k * nr + j], i < MR: one row pointer per k (MR consecutive
/// values read from each), b a packed panel of nr columns (zero beyond n).
template <int MR>
ACE_DETAIL_AVX2 void gathered_times_panel(std::size_t kc, const float* const* a, std::size_t offset, const float* b,
                                          float* const* c, std::size_t n) {
  __m256 acc[MR][2];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (std::size_t k = 0; k < kc; ++k, b += nr) {
    const float* row = a[k] + offset;
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256 v = _mm256_broadcast_ss(row + i);
      acc[i][0] = _mm256_fmadd_ps(v, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(v, b1, acc[i][1]);
    }
  }
  store_tile<MR, false>(acc, c, n);
}

/// rows_times_panel for m in [1, mr] rows.
template <bool Accumulate>
inline void rows_times_panel(std::size_t m, std::size_t taps, std::size_t kc, const float* const* a,
                             std::size_t shift, const float* const* b, const float* init, float* const* c,
                             std::size_t n) {
  switch (m) {
    case 6: return rows_times_panel<6, Accumulate>(taps, kc, a, shift, b, init, c, n);
    case 5: return rows_times_panel<5, Accumulate>(taps, kc, a, shift, b, init, c, n);
    case 4: return rows_times_panel<4, Accumulate>(taps, kc, a, shift, b, init, c, n);
    case 3: return rows_times_panel<3, Accumulate>(taps, kc, a, shift, b, init, c, n);
    case 2: return rows_times_panel<2, Accumulate>(taps, kc, a, shift, b, init, c, n);
    default: return rows_times_panel<1, Accumulate>(taps, kc, a, shift, b, init, c, n);
  }
}

/// gathered_times_panel for m in [1, mr] rows.
inline void gathered_times_panel(std::size_t m, std::size_t kc, const float* const* a, std::size_t offset,
                                 const float* b, float* const* c, std::size_t n) {
  switch (m) {
    case 6: return gathered_times_panel<6>(kc, a, offset, b, c, n);
    case 5: return gathered_times_panel<5>(kc, a, offset, b, c, n);
    case 4: return gathered_times_panel<4>(kc, a, offset, b, c, n);
    case 3: return gathered_times_panel<3>(kc, a, offset, b, c, n);
    case 2: return gathered_times_panel<2>(kc, a, offset, b, c, n);
    default: return gathered_times_panel<1>(kc, a, offset, b, c, n);
  }
}

}  // namespace ace::cpu::simd

#endif
