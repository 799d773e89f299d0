// SPDX-License-Identifier: MIT
// SiLU on float runs: the logistic sigmoid s(x) = 1 / (1 + e^-x) from e^-x = 2^n e^r (a degree-6 polynomial on
// |r| <= ln2/2, evaluated in Estrin's form: a short dependency chain) and one division. The same operations on
// AVX-512 (16 floats a step), AVX2 (8) and portable scalar code, all of them exactly rounded per entry (fused
// multiply-adds, min/max, exact scalings): the three give the same bits, and every entry's result depends on its own
// value alone. The Cpu backend's activations (cpu/elementwise.hpp) run them, in the fused GEMM epilogues too.
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "ace/backend/cpu/conv_simd.hpp"
#include "ace/error.hpp"

namespace ace::cpu {

/// The instruction set a run of SiLU entries takes; all give the same bits.
enum class SigmoidPath { portable, avx2, avx512 };

namespace detail {

/// The constants of the sigmoid. e^-a, a = x clamped to [-bound, bound]: n = round(-a log2 e) (the shifter's fused
/// multiply-add rounds it and leaves n + 127 in the low bits, which become 2^n's exponent field), r = -a - n ln 2 (ln 2
/// in two parts, |r| <= ln2/2), e^r = 1 + r + c2 r^2 + ... + c6 r^6 (relative error 3e-9, fitted to the relative error
/// on Chebyshev nodes), d = 1 + 2^n e^r in one rounding, s = 1 / d. Below -bound the sigmoid is 0 (it is < 1e-13
/// there), which keeps the activations and their gradients clear of subnormal numbers. Measured against the sigmoid in
/// double (every 7th float in [-40, 40]): at most 3.7 units in the last place, 0.1 on average, relative to s itself
/// (the form 1/2 + tanh(x/2)/2 loses s's relative precision where s is small). This form with Estrin's polynomial and
/// the division was the fastest of those tried on AVX-512 (docs/benchmarks.md): a Horner polynomial or Newton steps
/// instead of the division make the dependency chain longer, and that chain, not the operation count, sets the rate.
struct SigmoidConstants {
  static constexpr float bound = 30.0f;
  static constexpr float log2e = 1.44269504088896341f;
  static constexpr float shifter = 12582912.0f + 127.0f;  // 1.5 * 2^23 + 127
  static constexpr float ln2_hi = 0.693145751953125f, ln2_lo = 1.428606765330187e-06f;
  static constexpr float c2 = 0.499999934516797f, c3 = 0.16666520689634723f, c4 = 0.041668387367045104f,
                         c5 = 0.008368709842566189f, c6 = 0.0013814612981080023f;
};

/// The sigmoid of one float, in the same operations as the vector paths (x86's min/max semantics included: a NaN
/// stays NaN).
inline float sigmoid_portable(float x) {
  using C = SigmoidConstants;
  const float lo = -C::bound > x ? -C::bound : x;
  const float a = C::bound < lo ? C::bound : lo;
  const float t = std::fma(a, -C::log2e, C::shifter);
  const float n = t - C::shifter;
  float r = std::fma(-n, C::ln2_hi, -a);
  r = std::fma(-n, C::ln2_lo, r);
  const float r2 = r * r, r4 = r2 * r2;
  const float p46 = std::fma(C::c6, r2, std::fma(C::c5, r, C::c4));
  const float p = std::fma(r4, p46, std::fma(r2, std::fma(C::c3, r, C::c2), 1.0f + r));
  const float scale = std::bit_cast<float>(std::bit_cast<std::uint32_t>(t) << 23);
  const float y = 1.0f / std::fma(p, scale, 1.0f);
  return x < -C::bound ? 0.0f : y;
}

/// y = x s(x) (Backward false) or dx = dy s (1 + x (1 - s)) (true) on one entry.
template <bool Backward>
inline float silu_portable(float x, const float* dy, std::size_t i) {
  const float s = sigmoid_portable(x);
  if constexpr (Backward) return dy[i] * s * (std::fma(-x, s, x) + 1.0f);
  else return x * s;
}

template <bool Backward>
void silu_run_portable(const float* x, const float* dy, float* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = silu_portable<Backward>(x[i], dy, i);
}

/// Entries [first, n) on the portable path: the vector paths' last partial step (the same bits).
template <bool Backward>
void silu_tail(const float* x, const float* dy, float* out, std::size_t first, std::size_t n) {
  if (first < n) silu_run_portable<Backward>(x + first, Backward ? dy + first : nullptr, out + first, n - first);
}

#if ACE_HAS_X86_KERNELS

ACE_DETAIL_AVX512 inline __m512 sigmoid_avx512(__m512 x) {
  using C = SigmoidConstants;
  const __m512 one = _mm512_set1_ps(1.0f), shifter = _mm512_set1_ps(C::shifter);
  const __m512 a = _mm512_min_ps(_mm512_set1_ps(C::bound), _mm512_max_ps(_mm512_set1_ps(-C::bound), x));
  const __m512 t = _mm512_fmadd_ps(a, _mm512_set1_ps(-C::log2e), shifter);
  const __m512 n = _mm512_sub_ps(t, shifter);
  __m512 r = _mm512_fnmsub_ps(n, _mm512_set1_ps(C::ln2_hi), a);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(C::ln2_lo), r);
  const __m512 r2 = _mm512_mul_ps(r, r), r4 = _mm512_mul_ps(r2, r2);
  const __m512 p45 = _mm512_fmadd_ps(_mm512_set1_ps(C::c5), r, _mm512_set1_ps(C::c4));
  const __m512 p23 = _mm512_fmadd_ps(_mm512_set1_ps(C::c3), r, _mm512_set1_ps(C::c2));
  const __m512 p46 = _mm512_fmadd_ps(_mm512_set1_ps(C::c6), r2, p45);
  const __m512 p = _mm512_fmadd_ps(r4, p46, _mm512_fmadd_ps(r2, p23, _mm512_add_ps(one, r)));
  const __m512 scale = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(t), 23));
  const __m512 y = _mm512_div_ps(one, _mm512_fmadd_ps(p, scale, one));
  const __mmask16 below = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-C::bound), _CMP_LT_OQ);
  return _mm512_mask_mov_ps(y, below, _mm512_setzero_ps());
}

template <bool Backward>
ACE_DETAIL_AVX512 void silu_run_avx512(const float* x, const float* dy, float* out, std::size_t n) {
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i), s = sigmoid_avx512(v);
    if constexpr (Backward) {
      const __m512 g = _mm512_add_ps(_mm512_fnmadd_ps(v, s, v), _mm512_set1_ps(1.0f));
      _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(dy + i), s), g));
    } else {
      _mm512_storeu_ps(out + i, _mm512_mul_ps(v, s));
    }
  }
  silu_tail<Backward>(x, dy, out, i, n);
}

/// The sigmoids of U vectors, each step on all U before the next: the vectors' long dependency chains side by side,
/// which a core whose floating-point scheduler holds only a few of them overlaps better (two at a time: 0.63 -> 0.56
/// ns per entry forward on a Zen 3 core, bench_gemm's silu rows in docs/benchmarks.md; four spill AVX2's 16
/// registers). Per entry the operations of sigmoid_portable.
template <int U>
ACE_DETAIL_AVX2_INLINE void sigmoid_avx2(const __m256 (&x)[U], __m256 (&s)[U]) {
  using C = SigmoidConstants;
  const __m256 one = _mm256_set1_ps(1.0f), shifter = _mm256_set1_ps(C::shifter);
  __m256 a[U], t[U], n[U], r[U], r2[U], p[U], q[U];
  for (int j = 0; j < U; ++j) a[j] = _mm256_max_ps(_mm256_set1_ps(-C::bound), x[j]);
  for (int j = 0; j < U; ++j) a[j] = _mm256_min_ps(_mm256_set1_ps(C::bound), a[j]);
  for (int j = 0; j < U; ++j) t[j] = _mm256_fmadd_ps(a[j], _mm256_set1_ps(-C::log2e), shifter);
  for (int j = 0; j < U; ++j) n[j] = _mm256_sub_ps(t[j], shifter);
  for (int j = 0; j < U; ++j) r[j] = _mm256_fnmsub_ps(n[j], _mm256_set1_ps(C::ln2_hi), a[j]);
  for (int j = 0; j < U; ++j) r[j] = _mm256_fnmadd_ps(n[j], _mm256_set1_ps(C::ln2_lo), r[j]);
  for (int j = 0; j < U; ++j) r2[j] = _mm256_mul_ps(r[j], r[j]);
  for (int j = 0; j < U; ++j) p[j] = _mm256_fmadd_ps(_mm256_set1_ps(C::c5), r[j], _mm256_set1_ps(C::c4));  // p45
  for (int j = 0; j < U; ++j) q[j] = _mm256_fmadd_ps(_mm256_set1_ps(C::c3), r[j], _mm256_set1_ps(C::c2));  // p23
  for (int j = 0; j < U; ++j) p[j] = _mm256_fmadd_ps(_mm256_set1_ps(C::c6), r2[j], p[j]);                  // p46
  for (int j = 0; j < U; ++j) q[j] = _mm256_fmadd_ps(r2[j], q[j], _mm256_add_ps(one, r[j]));
  for (int j = 0; j < U; ++j) p[j] = _mm256_fmadd_ps(_mm256_mul_ps(r2[j], r2[j]), p[j], q[j]);
  for (int j = 0; j < U; ++j) t[j] = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t[j]), 23));
  for (int j = 0; j < U; ++j) s[j] = _mm256_div_ps(one, _mm256_fmadd_ps(p[j], t[j], one));
  for (int j = 0; j < U; ++j)
    s[j] = _mm256_andnot_ps(_mm256_cmp_ps(x[j], _mm256_set1_ps(-C::bound), _CMP_LT_OQ), s[j]);
}

/// SiLU (or its backward pass) of U vectors from entry i on.
template <bool Backward, int U>
ACE_DETAIL_AVX2_INLINE void silu_step_avx2(const float* x, const float* dy, float* out, std::size_t i) {
  __m256 v[U], s[U];
  for (int j = 0; j < U; ++j) v[j] = _mm256_loadu_ps(x + i + 8 * j);
  sigmoid_avx2<U>(v, s);
  for (int j = 0; j < U; ++j) {
    if constexpr (Backward) {
      const __m256 g = _mm256_add_ps(_mm256_fnmadd_ps(v[j], s[j], v[j]), _mm256_set1_ps(1.0f));
      _mm256_storeu_ps(out + i + 8 * j, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(dy + i + 8 * j), s[j]), g));
    } else {
      _mm256_storeu_ps(out + i + 8 * j, _mm256_mul_ps(v[j], s[j]));
    }
  }
}

template <bool Backward>
ACE_DETAIL_AVX2 void silu_run_avx2(const float* x, const float* dy, float* out, std::size_t n) {
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) silu_step_avx2<Backward, 2>(x, dy, out, i);
  for (; i + 8 <= n; i += 8) silu_step_avx2<Backward, 1>(x, dy, out, i);
  silu_tail<Backward>(x, dy, out, i, n);
}

#endif  // ACE_HAS_X86_KERNELS

template <bool Backward>
void silu_run(SigmoidPath path, const float* x, const float* dy, float* out, std::size_t n) {
#if ACE_HAS_X86_KERNELS
  if (path == SigmoidPath::avx512) return silu_run_avx512<Backward>(x, dy, out, n);
  if (path == SigmoidPath::avx2) return silu_run_avx2<Backward>(x, dy, out, n);
#endif
  silu_run_portable<Backward>(x, dy, out, n);
}

}  // namespace detail

/// Whether this CPU runs `path`.
inline bool sigmoid_path_available(SigmoidPath path) {
  switch (path) {
    case SigmoidPath::avx512: return detail::avx512_available();
    case SigmoidPath::avx2: return simd_kernels_available();
    default: return true;
  }
}
/// The widest path this CPU has (checked once).
inline SigmoidPath sigmoid_path() {
  static const SigmoidPath best = sigmoid_path_available(SigmoidPath::avx512) ? SigmoidPath::avx512
                                  : sigmoid_path_available(SigmoidPath::avx2) ? SigmoidPath::avx2
                                                                              : SigmoidPath::portable;
  return best;
}

/// y = x s(x) on n floats (y may be x), on `path` (default: the widest this CPU has; one it lacks throws
/// ace::unsupported).
inline void silu(const float* x, float* y, std::size_t n, SigmoidPath path = sigmoid_path()) {
  ACE_THROW_IF(!sigmoid_path_available(path), unsupported, "cpu::silu: this CPU lacks the instruction set asked for");
  detail::silu_run<false>(path, x, nullptr, y, n);
}
/// dx = dy s(x) (1 + x (1 - s(x))), SiLU's derivative times dy, on n floats (dx may be dy), on `path` as above.
inline void silu_backward(const float* x, const float* dy, float* dx, std::size_t n,
                          SigmoidPath path = sigmoid_path()) {
  ACE_THROW_IF(!sigmoid_path_available(path), unsupported,
               "cpu::silu_backward: this CPU lacks the instruction set asked for");
  detail::silu_run<true>(path, x, dy, dx, n);
}

}  // namespace ace::cpu
