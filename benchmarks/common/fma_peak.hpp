// SPDX-License-Identifier: MIT
// The core's float FMA peak, the ceiling kernels are read against: 12 independent accumulators and nothing but FMAs,
// on one thread, in registers; with 8-float AVX2 vectors, and with 16-float AVX-512 ones on CPUs that have them (there
// the AVX-512 rate is the ceiling: kernels that use 512-bit vectors can reach up to twice the AVX2 one).
#pragma once

#include <cstdint>

#include <benchmark/benchmark.h>

#include <ace/backend/cpu/conv_simd.hpp>

namespace ace::bench {

#if ACE_HAS_X86_KERNELS
ACE_DETAIL_AVX2 __attribute__((noinline)) inline float fma_loop(std::int64_t steps, float seed) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(seed * static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.9999f), b = _mm256_set1_ps(1e-4f);
  for (std::int64_t k = 0; k < steps; ++k) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  for (int i = 1; i < 12; ++i) acc[0] = _mm256_add_ps(acc[0], acc[i]);
  return _mm256_cvtss_f32(acc[0]);
}
/// The same with 16-float vectors (AVX-512F); call only where avx512_available().
__attribute__((target("avx512f"), noinline)) inline float fma_loop_avx512(std::int64_t steps, float seed) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(seed * static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.9999f), b = _mm512_set1_ps(1e-4f);
  for (std::int64_t k = 0; k < steps; ++k) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  for (int i = 1; i < 12; ++i) acc[0] = _mm512_add_ps(acc[0], acc[i]);
  return _mm512_reduce_add_ps(acc[0]);
}
inline bool avx512_available() { return __builtin_cpu_supports("avx512f"); }
/// Whether this CPU has the vectors of fma_loop (wide: fma_loop_avx512).
inline bool fma_loop_available(bool wide) { return simd_kernels_available() && (!wide || avx512_available()); }
/// fma_loop, or fma_loop_avx512 when wide (call only where fma_loop_available(wide)).
inline float fma_loop(bool wide, std::int64_t steps, float seed) {
  return wide ? fma_loop_avx512(steps, seed) : fma_loop(steps, seed);
}
/// Floating-point operations of fma_loop(wide, steps, ...).
constexpr double fma_loop_flops(bool wide, std::int64_t steps) {
  return (wide ? 2.0 : 1.0) * 2.0 * 8 * 12 * static_cast<double>(steps);
}
#endif

/// The benchmarks "fma_peak/one_core" (Wide = false: fma_loop) and "fma_peak/one_core/avx512" (fma_loop_avx512);
/// an error where the CPU lacks the vectors.
template <bool Wide>
void BM_fma_peak(benchmark::State& state) {
#if ACE_HAS_X86_KERNELS
  if (!fma_loop_available(Wide)) {
    state.SkipWithError(Wide ? "no AVX-512 on this CPU" : "no AVX2/FMA on this CPU");
    return;
  }
  constexpr std::int64_t steps = 10'000'000;
  for (auto _ : state) {
    float seed = 0.001f;
    benchmark::DoNotOptimize(seed);
    benchmark::DoNotOptimize(fma_loop(Wide, steps, seed));
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(fma_loop_flops(Wide, steps) * double(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
#else
  state.SkipWithError("not an x86-64 build");
#endif
}

}  // namespace ace::bench
