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
#include <vector>

#include "ace/backend/cpu/conv_simd.hpp"
#include "ace/backend/cpu/parallel.hpp"
#include "ace/backend/ops.hpp"
#include "ace/error.hpp"
#include "ace/tensor/view.hpp"

namespace ace::cpu {
namespace detail {

/// The inner-dimension chunk and the column chunk: a packed chunk of op(B) (at most kc x nc floats, 256 KiB) stays in
/// L2 while every tile of the block's rows runs over it; one of its panels (kc x NR floats) and the tile's part of
/// op(A) (MR x kc) stay in L1. Fixed numbers: the order of every sum is a function of the shape alone.
inline constexpr std::size_t gemm_kc = 256, gemm_nc = 256;

#if ACE_HAS_X86_KERNELS

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

/// The floats a packed row of nc columns takes: whole panels of nr columns (the last one padded with zeros).
constexpr std::size_t gemm_panel_width(std::size_t nc, std::size_t nr) { return (nc + nr - 1) / nr * nr; }

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

/// c = op(a) B + beta c on one instruction set's tiles, B (k x c.cols) given as packed chunks: panels(j0, nc, p0, kc)
/// returns rows [p0, p0 + kc) and columns [j0, j0 + nc) of B in panels of Tile::nr columns (gemm_pack_b's layout);
/// it is called for the chunks in order, columns outer. beta is 0 or 1.
template <class Tile, class Panels>
void packed_sgemm_on(Transpose ta, MatrixRef<const float> a, float beta, MatrixRef<float> c, std::size_t k,
                     Panels&& panels) {
  constexpr std::size_t mr = Tile::mr, nr = Tile::nr;
  const std::size_t m = c.rows, n = c.cols;
  for (std::size_t j0 = 0; j0 < n; j0 += gemm_nc) {
    const std::size_t nc = std::min(gemm_nc, n - j0);
    for (std::size_t p0 = 0; p0 < k; p0 += gemm_kc) {
      const std::size_t kc = std::min(gemm_kc, k - p0);
      const bool accumulate = p0 > 0 || beta != 0.0f;
      const float* const packed_b = panels(j0, nc, p0, kc);
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

/// c = alpha op(a) op(b) + beta c on one instruction set's tiles, op(b) packed chunk by chunk into this thread's
/// buffer.
template <class Tile>
void packed_sgemm(Transpose ta, Transpose tb, float alpha, MatrixRef<const float> a, MatrixRef<const float> b,
                  float beta, MatrixRef<float> c, std::size_t k) {
  constexpr std::size_t nr = Tile::nr;
  float* const buffer = gemm_buffer(gemm_panel_width(std::min(c.cols, gemm_nc), nr) * gemm_kc);
  packed_sgemm_on<Tile>(ta, a, beta, c, k, [&](std::size_t j0, std::size_t nc, std::size_t p0, std::size_t kc) {
    gemm_pack_b<nr>(tb, alpha, b, p0, kc, j0, nc, buffer);
    return static_cast<const float*>(buffer);
  });
}

/// Whether ace's GEMM runs the AVX-512 tiles now (the CPU has them and tests have not turned them off).
inline bool gemm_uses_avx512() { return avx512_available() && gemm_avx512_switch().load(); }

/// Prepares c for a product with inner dimension k and returns the beta the kernels take (0 or 1): a k = 0 product
/// or a beta other than 0 and 1 scales c here (beta = 0 ignores c's old contents, NaN included, as in BLAS).
inline float gemm_prepare_beta(MatrixRef<float> c, std::size_t k, float beta) {
  if (k != 0 && (beta == 0.0f || beta == 1.0f)) return beta;
  for (std::size_t i = 0; i < c.rows; ++i)
    for (std::size_t j = 0; j < c.cols; ++j) {
      float& v = c.data[i * c.stride + j];
      v = beta == 0.0f ? 0.0f : beta * v;
    }
  return 1.0f;
}

/// c = alpha op(a) op(b) + beta c for one block (c.rows x c.cols, any inner dimension) on the calling thread: AVX-512
/// tiles where the CPU has them, AVX2 ones otherwise; needs simd_kernels_available(). beta = 0 ignores c's old
/// contents (NaN included), as in BLAS.
inline void ace_sgemm(Transpose ta, Transpose tb, float alpha, MatrixRef<const float> a, MatrixRef<const float> b,
                      float beta, MatrixRef<float> c) {
  const std::size_t k = ta == Transpose::no ? a.cols : a.rows;
  beta = gemm_prepare_beta(c, k, beta);
  if (k == 0) return;
  if (gemm_uses_avx512()) packed_sgemm<Avx512Tile>(ta, tb, alpha, a, b, beta, c, k);
  else packed_sgemm<Avx2Tile>(ta, tb, alpha, a, b, beta, c, k);
}

/// A right-hand matrix packed once for many products with ace_sgemm_packed (weights used by every block of a
/// layer): all chunks of op(B) in the order the kernels run them, in panels of the tiles chosen when it was packed.
struct PackedGemmB {
  std::vector<float> panels;
  std::size_t rows = 0, cols = 0;  // of op(B)
  bool avx512 = false;
};

/// out = op(b) packed for ace_sgemm_packed on this CPU's tiles.
inline void ace_pack_gemm_b(Transpose tb, MatrixRef<const float> b, PackedGemmB& out) {
  out.avx512 = gemm_uses_avx512();
  out.rows = tb == Transpose::no ? b.rows : b.cols;
  out.cols = tb == Transpose::no ? b.cols : b.rows;
  const std::size_t nr = out.avx512 ? Avx512Tile::nr : Avx2Tile::nr, k = out.rows, n = out.cols;
  std::size_t size = 0;
  for (std::size_t j0 = 0; j0 < n; j0 += gemm_nc) size += gemm_panel_width(std::min(gemm_nc, n - j0), nr) * k;
  out.panels.resize(size);
  float* next = out.panels.data();
  for (std::size_t j0 = 0; j0 < n; j0 += gemm_nc) {
    const std::size_t nc = std::min(gemm_nc, n - j0), width = gemm_panel_width(nc, nr);
    for (std::size_t p0 = 0; p0 < k; p0 += gemm_kc) {
      const std::size_t kc = std::min(gemm_kc, k - p0);
      if (out.avx512) gemm_pack_b<Avx512Tile::nr>(tb, 1.0f, b, p0, kc, j0, nc, next);
      else gemm_pack_b<Avx2Tile::nr>(tb, 1.0f, b, p0, kc, j0, nc, next);
      next += width * kc;
    }
  }
}

/// c = a B + beta c for B packed by ace_pack_gemm_b, on the calling thread: the same bits as ace_sgemm on B.
inline void ace_sgemm_packed(MatrixRef<const float> a, const PackedGemmB& b, float beta, MatrixRef<float> c) {
  ACE_THROW_IF(a.cols != b.rows || c.rows != a.rows || c.cols != b.cols, shape_error, "ace_sgemm_packed: ", a.rows,
               "x", a.cols, " times a packed ", b.rows, "x", b.cols, " into ", c.rows, "x", c.cols);
  ACE_THROW_IF(b.avx512 && !avx512_available(), unsupported, "ace_sgemm_packed: panels packed for AVX-512");
  beta = gemm_prepare_beta(c, b.rows, beta);
  if (b.rows == 0) return;
  const float* next = b.panels.data();
  const std::size_t nr = b.avx512 ? Avx512Tile::nr : Avx2Tile::nr;
  const auto panels = [&](std::size_t, std::size_t nc, std::size_t, std::size_t kc) {
    const float* const chunk = next;
    next += gemm_panel_width(nc, nr) * kc;
    return chunk;
  };
  if (b.avx512) packed_sgemm_on<Avx512Tile>(Transpose::no, a, beta, c, b.rows, panels);
  else packed_sgemm_on<Avx2Tile>(Transpose::no, a, beta, c, b.rows, panels);
}

#endif  // ACE_HAS_X86_KERNELS

}  // namespace detail
}  // namespace ace::cpu
