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

#if defined(_OPENMP)
#include <omp.h>
#endif

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

inline std::size_t omp_threads() {
#if defined(_OPENMP)
  return static_cast<std::size_t>(omp_get_max_threads());
#else
  return 1;
#endif
}
inline std::size_t omp_thread() {
#if defined(_OPENMP)
  return static_cast<std::size_t>(omp_get_thread_num());
#else
  return 0;
#endif
}

/// y = w * x + bias with filters w [out_channels, patch] (row-major, columns (ky, kx, c)) and one bias per output
/// channel. The batch is cut into chunks of whole samples (about 1024 output pixels each, a function of the shapes
/// only); each chunk is unfolded (im2col) into a per-thread buffer and multiplied by Eigen's GEMM. Backward
/// unfolds again instead of keeping the columns (memory ~ one chunk per thread), writes each chunk's filter
/// gradient into its own slot and sums the slots in chunk order, so results do not depend on the thread count.
template <class T>
class ConvKernel {
 public:
  ConvKernel() = default;
  explicit ConvKernel(ConvGeometry g) : g_(g) {}
  const ConvGeometry& geometry() const { return g_; }

  void forward(const Tensor<T, 2>& x, const T* w, const T* bias, Tensor<T, 2>& y) {
    const std::size_t batch = x.shape()[0], per = chunk_samples(batch), chunks = (batch + per - 1) / per;
    ensure_shape(y, batch, g_.out_dim());
    prepare(col_, per);
    const std::size_t P = g_.out_pixels(), C = g_.out_channels;
    const MatrixRef<const T> filters{w, C, g_.patch(), g_.patch()};
    ACE_OMP_FOR(chunks > 1)
    for (std::size_t chunk = 0; chunk < chunks; ++chunk) {
      const std::size_t first = chunk * per, count = std::min(per, batch - first);
      Tensor<T, 2>& col = col_[omp_thread()];
      for (std::size_t s = 0; s < count; ++s)
        im2col(x.data() + (first + s) * g_.in_dim(), col.data() + s * P * g_.patch());
      T* out = y.data() + first * g_.out_dim();
      if (g_.layout == Layout::channels_last) {
        Cpu::gemm<T>(Transpose::no, Transpose::yes, T(1), {col.data(), count * P, g_.patch(), g_.patch()}, filters,
                     T(0), {out, count * P, C, C});
        if (bias != nullptr)
          for (std::size_t r = 0; r < count * P; ++r)
            for (std::size_t c = 0; c < C; ++c) out[r * C + c] += bias[c];
      } else {
        for (std::size_t s = 0; s < count; ++s) {
          T* ys = out + s * g_.out_dim();
          Cpu::gemm<T>(Transpose::no, Transpose::yes, T(1), filters,
                       {col.data() + s * P * g_.patch(), P, g_.patch(), g_.patch()}, T(0), {ys, C, P, P});
          if (bias != nullptr)
            for (std::size_t c = 0; c < C; ++c)
              for (std::size_t p = 0; p < P; ++p) ys[c * P + p] += bias[c];
        }
      }
    }
  }

  /// dw += dL/dw, dbias += dL/dbias (when given), dx = dL/dx; x is the forward input.
  void backward(const Tensor<T, 2>& x, const T* w, const Tensor<T, 2>& dy, T* dw, T* dbias, Tensor<T, 2>& dx) {
    const std::size_t batch = x.shape()[0], per = chunk_samples(batch), chunks = (batch + per - 1) / per;
    ensure_shape(dx, batch, g_.in_dim());
    prepare(col_, per);
    prepare(dcol_, per);
    const std::size_t P = g_.out_pixels(), C = g_.out_channels, K = g_.patch();
    ensure_shape(partial_, chunks, C * K);
    const MatrixRef<const T> filters{w, C, K, K};
    ACE_OMP_FOR(chunks > 1)
    for (std::size_t chunk = 0; chunk < chunks; ++chunk) {
      const std::size_t first = chunk * per, count = std::min(per, batch - first);
      Tensor<T, 2>& col = col_[omp_thread()];
      Tensor<T, 2>& dcol = dcol_[omp_thread()];
      for (std::size_t s = 0; s < count; ++s) im2col(x.data() + (first + s) * g_.in_dim(), col.data() + s * P * K);
      const T* g = dy.data() + first * g_.out_dim();
      const MatrixRef<T> dw_chunk{partial_.data() + chunk * C * K, C, K, K};
      if (g_.layout == Layout::channels_last) {
        const MatrixRef<const T> gm{g, count * P, C, C};
        Cpu::gemm<T>(Transpose::yes, Transpose::no, T(1), gm, {col.data(), count * P, K, K}, T(0), dw_chunk);
        Cpu::gemm<T>(Transpose::no, Transpose::no, T(1), gm, filters, T(0), {dcol.data(), count * P, K, K});
      } else {
        for (std::size_t s = 0; s < count; ++s) {
          const MatrixRef<const T> gm{g + s * g_.out_dim(), C, P, P};
          Cpu::gemm<T>(Transpose::no, Transpose::no, T(1), gm, {col.data() + s * P * K, P, K, K},
                       s == 0 ? T(0) : T(1), dw_chunk);
          Cpu::gemm<T>(Transpose::yes, Transpose::no, T(1), gm, filters, T(0), {dcol.data() + s * P * K, P, K, K});
        }
      }
      for (std::size_t s = 0; s < count; ++s) {
        T* dxs = dx.data() + (first + s) * g_.in_dim();
        std::fill(dxs, dxs + g_.in_dim(), T(0));
        col2im(dcol.data() + s * P * K, dxs);
      }
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

  /// Samples per chunk: enough for ~1024 output pixels (a GEMM with that many rows runs near peak).
  std::size_t chunk_samples(std::size_t batch) const {
    const std::size_t s = (1024 + g_.out_pixels() - 1) / g_.out_pixels();
    return std::clamp<std::size_t>(s, 1, std::max<std::size_t>(batch, 1));
  }

 private:
  // One unfolding buffer per thread, big enough for a chunk of `per` samples.
  void prepare(std::vector<Tensor<T, 2>>& buffers, std::size_t per) {
    if (buffers.size() < omp_threads()) buffers.resize(omp_threads());
    for (auto& b : buffers) ensure_shape(b, per * g_.out_pixels(), g_.patch());
  }

  // Input position of tap `k` of output position `o` along an axis of n pixels, or -1 in the padding.
  std::ptrdiff_t source(std::size_t o, std::size_t k, std::size_t n) const {
    const std::ptrdiff_t i = static_cast<std::ptrdiff_t>(o * g_.stride + k) - static_cast<std::ptrdiff_t>(g_.padding);
    return i < static_cast<std::ptrdiff_t>(n) ? i : -1;
  }

  // col [out_pixels, patch]: row p = the window of output pixel p, zeros where it hangs over the border.
  void im2col(const T* x, T* col) const {
    const std::size_t Ci = g_.in_channels, k = g_.kernel, K = g_.patch(), HW = g_.in_pixels();
    const std::size_t orows = g_.out_rows(), ocols = g_.out_cols();
    for (std::size_t oy = 0; oy < orows; ++oy)
      for (std::size_t ox = 0; ox < ocols; ++ox) {
        T* row = col + (oy * ocols + ox) * K;
        for (std::size_t ky = 0; ky < k; ++ky) {
          const std::ptrdiff_t iy = source(oy, ky, g_.rows);
          for (std::size_t kx = 0; kx < k; ++kx) {
            const std::ptrdiff_t ix = source(ox, kx, g_.cols);
            T* dst = row + (ky * k + kx) * Ci;
            if (iy < 0 || ix < 0) {
              std::fill(dst, dst + Ci, T(0));
              continue;
            }
            const std::size_t pixel = static_cast<std::size_t>(iy) * g_.cols + static_cast<std::size_t>(ix);
            if (g_.layout == Layout::channels_last) std::memcpy(dst, x + pixel * Ci, Ci * sizeof(T));
            else
              for (std::size_t c = 0; c < Ci; ++c) dst[c] = x[c * HW + pixel];
          }
        }
      }
  }
  // The adjoint of im2col: dx += fold(dcol).
  void col2im(const T* dcol, T* dx) const {
    const std::size_t Ci = g_.in_channels, k = g_.kernel, K = g_.patch(), HW = g_.in_pixels();
    const std::size_t orows = g_.out_rows(), ocols = g_.out_cols();
    for (std::size_t oy = 0; oy < orows; ++oy)
      for (std::size_t ox = 0; ox < ocols; ++ox) {
        const T* row = dcol + (oy * ocols + ox) * K;
        for (std::size_t ky = 0; ky < k; ++ky) {
          const std::ptrdiff_t iy = source(oy, ky, g_.rows);
          if (iy < 0) continue;
          for (std::size_t kx = 0; kx < k; ++kx) {
            const std::ptrdiff_t ix = source(ox, kx, g_.cols);
            if (ix < 0) continue;
            const T* src = row + (ky * k + kx) * Ci;
            const std::size_t pixel = static_cast<std::size_t>(iy) * g_.cols + static_cast<std::size_t>(ix);
            if (g_.layout == Layout::channels_last) {
              T* d = dx + pixel * Ci;
              for (std::size_t c = 0; c < Ci; ++c) d[c] += src[c];
            } else {
              for (std::size_t c = 0; c < Ci; ++c) dx[c * HW + pixel] += src[c];
            }
          }
        }
      }
  }

  ConvGeometry g_;
  std::vector<Tensor<T, 2>> col_, dcol_;  // per thread
  Tensor<T, 2> partial_;                  // per chunk: its filter gradient
};

}  // namespace ace::detail
