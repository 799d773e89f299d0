// SPDX-License-Identifier: MIT
// ace's own single-precision GEMM for one block of C on the calling thread, in the packed-panel form: op(B) packed
// into panels of NR columns, op(A) read where it lies (rows of A, or runs of A's rows for A^T), and a register tile of
// MR x NR accumulators that runs down the inner dimension: 6 x 16 (12 AVX2 registers) on CPUs with AVX2 and FMA,
// 12 x 32 (24 AVX-512 registers) on CPUs with AVX-512F. Compiled for those instruction sets whatever the build's flags
// (function target attributes) and chosen at run time. Every entry of C is the same chain of fused multiply-adds along
// k in order, in chunks of gemm_kc added to C in order, on either instruction set: the two give the same bits,
// whatever the number of threads. cpu::gemm (cpu/dense.hpp) runs it on each block of C when cpu_gemm() is
// CpuGemm::ace.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "ace/backend/cpu/conv_simd.hpp"
#include "ace/backend/cpu/parallel.hpp"
#include "ace/backend/ops.hpp"
#include "ace/tensor/view.hpp"

namespace ace::cpu {
namespace detail {

/// The inner-dimension chunk and the column chunk: a packed chunk of op(B) (at most kc x nc floats, 256 KiB) stays in
/// L2 while every tile of the block's rows runs over it; one of its panels (kc x NR floats) and the tile's part of
/// op(A) (MR x kc) stay in L1. Fixed numbers: the order of every sum is a function of the shape alone.
inline constexpr std::size_t gemm_kc = 256, gemm_nc = 256;

#if ACE_HAS_X86_KERNELS

/// Whether this CPU has AVX-512F (checked once).
inline bool avx512_available() {
  static const bool available = __builtin_cpu_supports("avx512f");
  return available;
}
/// Lets tests run the AVX2 tiles on a CPU with AVX-512 (both give the same bits).
inline std::atomic<bool>& gemm_avx512_switch() {
  static std::atomic<bool> on{true};
  return on;
}

/// This thread's buffer for packed panels of op(B), 64-byte aligned (cpu::thread_scratch: no allocation after the
/// first product of the largest shape).
struct GemmPanels;
inline float* gemm_buffer(std::size_t floats) {
  constexpr std::size_t align = 64 / sizeof(float);
  float* const buffer = thread_scratch<GemmPanels, float>(floats + align);
  const auto misaligned = reinterpret_cast<std::uintptr_t>(buffer) % 64 / sizeof(float);
  return buffer + (misaligned == 0 ? 0 : align - misaligned);
}

/// Packs rows [p0, p0 + kc) and columns [j0, j0 + nc) of op(B), times alpha, into panels of NR columns: panel q / NR
/// starts at out + q * kc and holds kc rows of NR floats (zero past column nc).
template <std::size_t NR>
void gemm_pack_b(Transpose tb, float alpha, MatrixRef<const float> b, std::size_t p0, std::size_t kc, std::size_t j0,
                 std::size_t nc, float* out) {
  for (std::size_t q = 0; q < nc; q += NR, out += kc * NR) {
    const std::size_t w = std::min(NR, nc - q);
    if (tb == Transpose::no) {
      for (std::size_t p = 0; p < kc; ++p) {
        const float* src = b.data + (p0 + p) * b.stride + j0 + q;
        float* dst = out + p * NR;
        for (std::size_t j = 0; j < w; ++j) dst[j] = alpha * src[j];
        for (std::size_t j = w; j < NR; ++j) dst[j] = 0.0f;
      }
    } else {  // op(B)(p, j) = b(j, p): read along rows of b, write columns of the panel
      for (std::size_t j = 0; j < w; ++j) {
        const float* src = b.data + (j0 + q + j) * b.stride + p0;
        for (std::size_t p = 0; p < kc; ++p) out[p * NR + j] = alpha * src[p];
      }
      for (std::size_t p = 0; p < kc; ++p) std::fill(out + p * NR + w, out + (p + 1) * NR, 0.0f);
    }
  }
}

#define ACE_DETAIL_AVX512 __attribute__((target("avx512f")))

/// Where a register tile reads op(A), in place either way (no copy): for op(A) = A^T, runs of MR consecutive floats
/// of A's row k (a + k * stride + i); for op(A) = A, one pointer per row running along k (rows[i] + k: each row's
/// cache lines serve 16 steps of k).
struct StridedRuns {
  const float* a;
  std::size_t stride;
  const float* at(std::size_t k, int i) const { return a + k * stride + static_cast<std::size_t>(i); }
};
struct RowPointers {
  const float* const* rows;
  const float* at(std::size_t k, int i) const { return rows[i] + k; }
};

/// c[i][0, n) (+)= sum over k < kc of op(A)(i, k) * b[k * 32 + j], i < MR, n in [1, 16 V]: AVX-512, V registers per
/// row (V = 1 for a last panel of at most 16 columns: half the work of a full one, the same FMA chains).
template <int MR, bool Accumulate, int V, class A>
ACE_DETAIL_AVX512 void avx512_tile(std::size_t kc, A a, const float* b, float* const* c, std::size_t n) {
  __m512 acc[MR][V];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < V; ++v) acc[i][v] = _mm512_setzero_ps();
  for (std::size_t k = 0; k < kc; ++k, b += 32) {
    __m512 bv[V];
    for (int v = 0; v < V; ++v) bv[v] = _mm512_loadu_ps(b + 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 x = _mm512_set1_ps(*a.at(k, i));
      for (int v = 0; v < V; ++v) acc[i][v] = _mm512_fmadd_ps(x, bv[v], acc[i][v]);
    }
  }
  __mmask16 mask[V];
  for (int v = 0; v < V; ++v) {
    const std::size_t lanes = n > 16 * std::size_t(v) ? n - 16 * std::size_t(v) : 0;
    mask[v] = static_cast<__mmask16>(lanes >= 16 ? 0xFFFFu : (1u << lanes) - 1u);
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < V; ++v) {
      if constexpr (Accumulate) acc[i][v] = _mm512_add_ps(acc[i][v], _mm512_maskz_loadu_ps(mask[v], c[i] + 16 * v));
      _mm512_mask_storeu_ps(c[i] + 16 * v, mask[v], acc[i][v]);
    }
}

/// The same on AVX2/FMA, 16 columns (n in [1, 16]): the store is conv_simd.hpp's.
template <int MR, bool Accumulate, class A>
ACE_DETAIL_AVX2 void avx2_tile(std::size_t kc, A a, const float* b, float* const* c, std::size_t n) {
  __m256 acc[MR][2];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (std::size_t k = 0; k < kc; ++k, b += 16) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256 v = _mm256_broadcast_ss(a.at(k, i));
      acc[i][0] = _mm256_fmadd_ps(v, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(v, b1, acc[i][1]);
    }
  }
  simd::store_tile<MR, Accumulate>(acc, c, n);
}

/// One instruction set's register tile: MR rows at most, NR columns.
struct Avx2Tile {
  static constexpr std::size_t mr = 6, nr = 16;
  template <int M, bool Accumulate, class A>
  static void kernel(std::size_t kc, A a, const float* b, float* const* c, std::size_t n) {
    avx2_tile<M, Accumulate>(kc, a, b, c, n);
  }
};
struct Avx512Tile {
  static constexpr std::size_t mr = 12, nr = 32;
  template <int M, bool Accumulate, class A>
  static void kernel(std::size_t kc, A a, const float* b, float* const* c, std::size_t n) {
    if (n <= 16) avx512_tile<M, Accumulate, 1>(kc, a, b, c, n);
    else avx512_tile<M, Accumulate, 2>(kc, a, b, c, n);
  }
};

/// Tile's register tile for mi in [1, Tile::mr] rows.
template <class Tile, bool Accumulate, int M = static_cast<int>(Tile::mr), class A>
void run_tile(std::size_t mi, std::size_t kc, A a, const float* b, float* const* c, std::size_t n) {
  if constexpr (M > 1)
    if (static_cast<int>(mi) < M) return run_tile<Tile, Accumulate, M - 1>(mi, kc, a, b, c, n);
  Tile::template kernel<M, Accumulate>(kc, a, b, c, n);
}

/// c = alpha op(a) op(b) + beta c on one instruction set's tiles.
template <class Tile>
void packed_sgemm(Transpose ta, Transpose tb, float alpha, MatrixRef<const float> a, MatrixRef<const float> b,
                  float beta, MatrixRef<float> c, std::size_t k) {
  constexpr std::size_t mr = Tile::mr, nr = Tile::nr;
  const std::size_t m = c.rows, n = c.cols;
  float* const packed_b = gemm_buffer((std::min(n, gemm_nc) + nr - 1) / nr * nr * gemm_kc);
  for (std::size_t j0 = 0; j0 < n; j0 += gemm_nc) {
    const std::size_t nc = std::min(gemm_nc, n - j0);
    for (std::size_t p0 = 0; p0 < k; p0 += gemm_kc) {
      const std::size_t kc = std::min(gemm_kc, k - p0);
      const bool accumulate = p0 > 0 || beta != 0.0f;
      gemm_pack_b<nr>(tb, alpha, b, p0, kc, j0, nc, packed_b);
      for (std::size_t i0 = 0; i0 < m; i0 += mr) {
        const std::size_t mi = std::min(mr, m - i0);
        const float* rows[mr] = {};
        if (ta == Transpose::no)
          for (std::size_t r = 0; r < mi; ++r) rows[r] = a.data + (i0 + r) * a.stride + p0;
        const StridedRuns runs{ta == Transpose::yes ? a.data + p0 * a.stride + i0 : a.data, a.stride};
        float* tile[mr] = {};
        for (std::size_t q = 0; q < nc; q += nr) {
          for (std::size_t r = 0; r < mi; ++r) tile[r] = c.data + (i0 + r) * c.stride + j0 + q;
          const float* panel = packed_b + q * kc;
          const std::size_t w = std::min(nr, nc - q);
          if (ta == Transpose::no) {
            if (accumulate) run_tile<Tile, true>(mi, kc, RowPointers{rows}, panel, tile, w);
            else run_tile<Tile, false>(mi, kc, RowPointers{rows}, panel, tile, w);
          } else {
            if (accumulate) run_tile<Tile, true>(mi, kc, runs, panel, tile, w);
            else run_tile<Tile, false>(mi, kc, runs, panel, tile, w);
          }
        }
      }
    }
  }
}

/// c = alpha op(a) op(b) + beta c for one block (c.rows x c.cols, any inner dimension) on the calling thread: AVX-512
/// tiles where the CPU has them, AVX2 ones otherwise; needs simd_kernels_available(). beta = 0 ignores c's old
/// contents (NaN included), as in BLAS.
inline void ace_sgemm(Transpose ta, Transpose tb, float alpha, MatrixRef<const float> a, MatrixRef<const float> b,
                      float beta, MatrixRef<float> c) {
  const std::size_t m = c.rows, n = c.cols, k = ta == Transpose::no ? a.cols : a.rows;
  if (k == 0 || (beta != 0.0f && beta != 1.0f)) {
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        float& v = c.data[i * c.stride + j];
        v = beta == 0.0f ? 0.0f : beta * v;
      }
    if (k == 0) return;
    beta = 1.0f;
  }
  if (avx512_available() && gemm_avx512_switch().load()) packed_sgemm<Avx512Tile>(ta, tb, alpha, a, b, beta, c, k);
  else packed_sgemm<Avx2Tile>(ta, tb, alpha, a, b, beta, c, k);
}

#endif  // ACE_HAS_X86_KERNELS

}  // namespace detail
}  // namespace ace::cpu
