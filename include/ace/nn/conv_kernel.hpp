// SPDX-License-Identifier: MIT
// The CPU convolution kernel behind Conv2d and GroupConv2d: im2col per chunk of samples + Eigen GEMM, OpenMP across
// chunks, nothing allocated after the first step of a batch size.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include "ace/error.hpp"
#include "ace/nn/image.hpp"
#include "ace/tensor/cpu.hpp"
#include "ace/tensor/parallel.hpp"

namespace ace::detail {

/// Sizes of one 2-d convolution (correlation, as in PyTorch): in_channels x rows x cols -> out_channels x
/// out_rows x out_cols with a kernel x kernel window.
struct ConvGeometry {
  std::size_t in_channels = 0, out_channels = 0, rows = 0, cols = 0, kernel = 1, stride = 1, padding = 0;
  Layout layout = Layout::channels_first;

  std::size_t out_rows() const { return (rows + 2 * padding - kernel) / stride + 1; }
  std::size_t out_cols() const { return (cols + 2 * padding - kernel) / stride + 1; }
  std::size_t in_pixels() const { return rows * cols; }
  std::size_t out_pixels() const { return out_rows() * out_cols(); }
  std::size_t in_dim() const { return in_channels * in_pixels(); }
  std::size_t out_dim() const { return out_channels * out_pixels(); }
  /// Columns of the im2col matrix: one per (tap, input channel), tap-major (ky, kx, c) like the filter rows.
  std::size_t patch() const { return kernel * kernel * in_channels; }
};


/// y = w * x + bias with filters w [out_channels, patch] (row-major, columns (ky, kx, c)) and one bias per output
/// channel. The batch is cut into chunks of whole samples (about 1024 output pixels each, a function of the shapes
/// only) spread over the OpenMP threads. A chunk is processed in blocks of at most `block_rows` output pixels
/// (within one sample for channels-first): each block is unfolded (im2col) into a per-thread buffer small enough to
/// stay in cache and multiplied by Eigen's GEMM. Backward unfolds again instead of keeping the columns (memory: one
/// block per thread), accumulates each chunk's filter gradient in its own slot and sums the slots in chunk order,
/// so results do not depend on the thread count.
template <class T>
class ConvKernel {
 public:
  static constexpr std::size_t block_rows = 256;

  ConvKernel() = default;
  explicit ConvKernel(ConvGeometry g) : g_(g) {}

  void forward(const Tensor<T, 2>& x, const T* w, const T* bias, Tensor<T, 2>& y) {
    const std::size_t batch = x.shape()[0], per = chunk_samples(batch), chunks = (batch + per - 1) / per;
    ensure_shape(y, batch, g_.out_dim());
    prepare(col_);
    const std::size_t P = g_.out_pixels(), C = g_.out_channels, K = g_.patch();
    const MatrixRef<const T> filters{w, C, K, K};
    ACE_OMP_FOR(chunks > 1)
    for (std::size_t chunk = 0; chunk < chunks; ++chunk) {
      const std::size_t first = chunk * per, count = std::min(per, batch - first);
      const T* xc = x.data() + first * g_.in_dim();
      T* yc = y.data() + first * g_.out_dim();
      T* col = col_[chunks > 1 ? omp_thread() : 0].data();  // serial: thread 0's buffer, even inside a caller's team
      for_each_block(count, [&](std::size_t r0, std::size_t rows) {
        unfold(xc, r0, rows, col);
        if (g_.layout == Layout::channels_last) {
          T* out = yc + r0 * C;
          Cpu::gemm<T>(Transpose::no, Transpose::yes, T(1), {col, rows, K, K}, filters, T(0), {out, rows, C, C});
          if (bias != nullptr)
            for (std::size_t r = 0; r < rows; ++r)
              for (std::size_t c = 0; c < C; ++c) out[r * C + c] += bias[c];
        } else {
          T* out = yc + (r0 / P) * g_.out_dim() + r0 % P;  // columns [p0, p0 + rows) of the sample's [C, P]
          Cpu::gemm<T>(Transpose::no, Transpose::yes, T(1), filters, {col, rows, K, K}, T(0), {out, C, rows, P});
          if (bias != nullptr)
            for (std::size_t c = 0; c < C; ++c)
              for (std::size_t r = 0; r < rows; ++r) out[c * P + r] += bias[c];
        }
      });
    }
  }

  /// dw += dL/dw, dbias += dL/dbias (when given), dx = dL/dx; x is the forward input.
  void backward(const Tensor<T, 2>& x, const T* w, const Tensor<T, 2>& dy, T* dw, T* dbias, Tensor<T, 2>& dx) {
    const std::size_t batch = x.shape()[0], per = chunk_samples(batch), chunks = (batch + per - 1) / per;
    ensure_shape(dx, batch, g_.in_dim());
    prepare(col_);
    prepare(dcol_);
    const std::size_t P = g_.out_pixels(), C = g_.out_channels, K = g_.patch();
    ensure_shape(partial_, chunks, C * K);
    const MatrixRef<const T> filters{w, C, K, K};
    ACE_OMP_FOR(chunks > 1)
    for (std::size_t chunk = 0; chunk < chunks; ++chunk) {
      const std::size_t first = chunk * per, count = std::min(per, batch - first);
      const T* xc = x.data() + first * g_.in_dim();
      const T* gc = dy.data() + first * g_.out_dim();
      T* dxc = dx.data() + first * g_.in_dim();
      const std::size_t thread = chunks > 1 ? omp_thread() : 0;
      T* col = col_[thread].data();
      T* dcol = dcol_[thread].data();
      const MatrixRef<T> dw_chunk{partial_.data() + chunk * C * K, C, K, K};
      std::fill(dxc, dxc + count * g_.in_dim(), T(0));
      for_each_block(count, [&](std::size_t r0, std::size_t rows) {
        unfold(xc, r0, rows, col);
        const T beta = r0 == 0 ? T(0) : T(1);
        if (g_.layout == Layout::channels_last) {
          const MatrixRef<const T> gm{gc + r0 * C, rows, C, C};
          Cpu::gemm<T>(Transpose::yes, Transpose::no, T(1), gm, {col, rows, K, K}, beta, dw_chunk);
          Cpu::gemm<T>(Transpose::no, Transpose::no, T(1), gm, filters, T(0), {dcol, rows, K, K});
        } else {
          const MatrixRef<const T> gm{gc + (r0 / P) * g_.out_dim() + r0 % P, C, rows, P};
          Cpu::gemm<T>(Transpose::no, Transpose::no, T(1), gm, {col, rows, K, K}, beta, dw_chunk);
          Cpu::gemm<T>(Transpose::yes, Transpose::no, T(1), gm, filters, T(0), {dcol, rows, K, K});
        }
        fold(dcol, r0, rows, dxc);
      });
    }
    for (std::size_t chunk = 0; chunk < chunks; ++chunk) {
      const T* part = partial_.data() + chunk * C * K;
      for (std::size_t i = 0; i < C * K; ++i) dw[i] += part[i];
    }
    if (dbias != nullptr)
      for (std::size_t b = 0; b < batch; ++b)
        for (std::size_t p = 0; p < P; ++p)
          for (std::size_t c = 0; c < C; ++c)
            dbias[c] += dy.data()[b * g_.out_dim() + (g_.layout == Layout::channels_last ? p * C + c : c * P + p)];
  }

  /// Samples per chunk: enough for ~1024 output pixels.
  std::size_t chunk_samples(std::size_t batch) const {
    const std::size_t s = (1024 + g_.out_pixels() - 1) / g_.out_pixels();
    return std::clamp<std::size_t>(s, 1, std::max<std::size_t>(batch, 1));
  }

 private:
  // f(first row, rows) for the blocks of a chunk of `count` samples, rows = output pixels numbered sample-major;
  // channels-first blocks stay within one sample (its output is [C, P]).
  template <class F>
  void for_each_block(std::size_t count, F&& f) const {
    const std::size_t P = g_.out_pixels(), total = count * P;
    for (std::size_t r0 = 0; r0 < total;) {
      std::size_t rows = std::min(block_rows, total - r0);
      if (g_.layout == Layout::channels_first) rows = std::min(rows, P - r0 % P);
      f(r0, rows);
      r0 += rows;
    }
  }

  // One unfolding buffer per thread, one block.
  void prepare(std::vector<Tensor<T, 2>>& buffers) {
    if (buffers.size() < omp_threads()) buffers.resize(omp_threads());
    for (auto& b : buffers) ensure_shape(b, block_rows, g_.patch());
  }

  // Input position of tap `k` of output position `o` along an axis of n pixels; negative or >= n in the padding.
  std::ptrdiff_t source(std::size_t o, std::size_t k) const {
    return static_cast<std::ptrdiff_t>(o * g_.stride + k) - static_cast<std::ptrdiff_t>(g_.padding);
  }

  // col [rows, patch]: row i = the window of output row r0 + i of the chunk starting at x, zeros in the padding.
  void unfold(const T* x, std::size_t r0, std::size_t rows, T* col) const {
    for_each_tap(r0, rows, [&](std::size_t i, std::size_t tap, const T* sample, std::ptrdiff_t pixel) {
      T* dst = col + i * g_.patch() + tap * g_.in_channels;
      if (pixel < 0) std::fill(dst, dst + g_.in_channels, T(0));
      else if (g_.layout == Layout::channels_last)
        std::memcpy(dst, sample + static_cast<std::size_t>(pixel) * g_.in_channels, g_.in_channels * sizeof(T));
      else
        for (std::size_t c = 0; c < g_.in_channels; ++c)
          dst[c] = sample[c * g_.in_pixels() + static_cast<std::size_t>(pixel)];
    }, x);
  }
  // The adjoint: dx += fold(dcol) for the same rows.
  void fold(const T* dcol, std::size_t r0, std::size_t rows, T* dx) const {
    for_each_tap(r0, rows, [&](std::size_t i, std::size_t tap, T* sample, std::ptrdiff_t pixel) {
      if (pixel < 0) return;
      const T* src = dcol + i * g_.patch() + tap * g_.in_channels;
      if (g_.layout == Layout::channels_last) {
        T* d = sample + static_cast<std::size_t>(pixel) * g_.in_channels;
        for (std::size_t c = 0; c < g_.in_channels; ++c) d[c] += src[c];
      } else {
        for (std::size_t c = 0; c < g_.in_channels; ++c)
          sample[c * g_.in_pixels() + static_cast<std::size_t>(pixel)] += src[c];
      }
    }, dx);
  }
  // f(block row i, tap, the sample's data, input pixel or -1 in the padding) for every tap of every row.
  template <class F, class Ptr>
  void for_each_tap(std::size_t r0, std::size_t rows, F&& f, Ptr base) const {
    const std::size_t k = g_.kernel, P = g_.out_pixels(), ocols = g_.out_cols();
    const auto H = static_cast<std::ptrdiff_t>(g_.rows), W = static_cast<std::ptrdiff_t>(g_.cols);
    for (std::size_t i = 0; i < rows; ++i) {
      const std::size_t r = r0 + i, p = r % P, oy = p / ocols, ox = p % ocols;
      Ptr sample = base + (r / P) * g_.in_dim();
      for (std::size_t ky = 0; ky < k; ++ky) {
        const std::ptrdiff_t iy = source(oy, ky);
        for (std::size_t kx = 0; kx < k; ++kx) {
          const std::ptrdiff_t ix = source(ox, kx);
          const bool inside = iy >= 0 && ix >= 0 && iy < H && ix < W;
          f(i, ky * k + kx, sample, inside ? iy * W + ix : std::ptrdiff_t{-1});
        }
      }
    }
  }

  ConvGeometry g_;
  std::vector<Tensor<T, 2>> col_, dcol_;  // per thread
  Tensor<T, 2> partial_;                  // per chunk: its filter gradient
};

}  // namespace ace::detail
