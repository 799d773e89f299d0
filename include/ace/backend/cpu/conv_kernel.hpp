// SPDX-License-Identifier: MIT
// The CPU convolution kernel behind Conv2d and GroupConv2d: direct convolution on AVX2/FMA register tiles for float
// maps where the CPU has them, im2col per block + Eigen GEMM otherwise; OpenMP across chunks of samples, nothing
// allocated after the first step of a batch size.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <optional>
#include <type_traits>
#include <vector>

#include "ace/backend/cpu/conv_simd.hpp"
#include "ace/backend/cpu/dense.hpp"
#include "ace/backend/cpu/parallel.hpp"
#include "ace/backend/cpu/winograd.hpp"
#include "ace/backend/geometry.hpp"
#include "ace/error.hpp"
#include "ace/tensor/tensor.hpp"

namespace ace::cpu {


/// y = w * x + bias with filters w [out_channels, patch] (row-major, columns (ky, kx, c)) and one bias per output
/// channel. The batch is cut into chunks of whole samples (about 1024 output pixels each, a function of the shapes
/// only) spread over the OpenMP threads. A chunk is processed in blocks of at most `block_rows` output pixels
/// (within one sample for channels-first): each block is unfolded (im2col) into a per-thread buffer small enough to
/// stay in cache and multiplied by Eigen's GEMM. Backward unfolds again instead of keeping the columns (memory: one
/// block per thread), accumulates each chunk's filter gradient in its own slot and sums the slots in chunk order,
/// so results do not depend on the thread count.
/// Float maps take the direct path instead when `simd_kernels_enabled()` (channels-first chunks transposed around
/// it): no unfolding; register tiles of 6 output pixels x 16 channels read the input rows of each tap through
/// pointers (a shared zero row in the padding) and a packed copy of the filters; the input gradient is the same
/// kernel on the output gradient (stride 1) or scattered tap by tap; the filter gradient is accumulated per chunk
/// in registers, in the same chunk slots.
/// With conv_algorithm() == ConvAlgorithm::winograd, float convolutions that have a Winograd form (winograd_applies)
/// run on WinogradConv instead (cpu/winograd.hpp; channels-first maps transposed around it).
template <class T>
class ConvKernel {
 public:
  static constexpr std::size_t block_rows = 256;
  static constexpr bool direct_capable = std::is_same_v<T, float> && ACE_HAS_X86_KERNELS;

  ConvKernel() = default;
  explicit ConvKernel(ConvGeometry g) : g_(g) {}

  const ConvGeometry& geometry() const { return g_; }

  /// y [batch, out_dim] = w * x + bias for x [batch, in_dim] (both contiguous), filters w [out_channels, patch] and
  /// bias [out_channels] or null.
  void forward(MatrixRef<const T> x, const T* w, const T* bias, MatrixRef<T> y) {
    const std::size_t batch = x.rows;
    if constexpr (direct_capable)
      if (direct()) return winograd() ? forward_winograd(x.data, w, bias, y.data, batch)
                                      : forward_direct(x.data, w, bias, y.data, batch);
    prepare(col_);
    const std::size_t P = g_.out_pixels(), C = g_.out_channels, K = g_.patch();
    const MatrixRef<const T> filters{w, C, K, K};
    for_each_chunk(batch, [&](std::size_t, std::size_t first, std::size_t count, std::size_t thread) {
      const T* xc = x.data + first * g_.in_dim();
      T* yc = y.data + first * g_.out_dim();
      T* col = col_[thread].data();
      for_each_block(count, [&](std::size_t r0, std::size_t rows) {
        unfold(xc, r0, rows, col);
        if (g_.layout == Layout::channels_last) {
          T* out = yc + r0 * C;
          gemm<T>(Transpose::no, Transpose::yes, T(1), {col, rows, K, K}, filters, T(0), {out, rows, C, C});
          if (bias != nullptr)
            for (std::size_t r = 0; r < rows; ++r)
              for (std::size_t c = 0; c < C; ++c) out[r * C + c] += bias[c];
        } else {
          T* out = yc + (r0 / P) * g_.out_dim() + r0 % P;  // columns [p0, p0 + rows) of the sample's [C, P]
          gemm<T>(Transpose::no, Transpose::yes, T(1), filters, {col, rows, K, K}, T(0), {out, C, rows, P});
          if (bias != nullptr)
            for (std::size_t c = 0; c < C; ++c)
              for (std::size_t r = 0; r < rows; ++r) out[c * P + r] += bias[c];
        }
      });
    });
  }

  /// dw += dL/dw, dbias += dL/dbias (when given), dx = dL/dx; x is the forward input.
  void backward(MatrixRef<const T> x, const T* w, MatrixRef<const T> dy, T* dw, T* dbias, MatrixRef<T> dx) {
    const std::size_t batch = x.rows, per = chunk_samples(batch), chunks = (batch + per - 1) / per;
    if constexpr (direct_capable)
      if (winograd()) {
        backward_winograd(x.data, w, dy.data, dw, dx.data, batch);
        bias_gradient(dy, dbias, batch);
        return;
      }
    const std::size_t C = g_.out_channels, K = g_.patch();
    ensure_shape(partial_, chunks, C * K);
    bool transposed = false;  // the direct path leaves each chunk's filter gradient as [patch, C]
    if constexpr (direct_capable)
      if ((transposed = direct())) backward_direct(x.data, w, dy.data, dx.data, batch);
    if (!transposed) backward_gemm(x, w, dy, dx, batch);
    // dw += the chunks' gradients in chunk order, split across threads by filter taps and channels.
    const T* parts = partial_.data();
    ACE_OMP_FOR(chunks > 1)
    for (std::size_t i = 0; i < K; ++i)
      for (std::size_t chunk = 0; chunk < chunks; ++chunk) {
        const T* part = parts + chunk * C * K;
        for (std::size_t o = 0; o < C; ++o) dw[o * K + i] += transposed ? part[i * C + o] : part[o * K + i];
      }
    bias_gradient(dy, dbias, batch);
  }

  /// Samples per chunk: enough for ~1024 output pixels.
  std::size_t chunk_samples(std::size_t batch) const {
    const std::size_t s = (1024 + g_.out_pixels() - 1) / g_.out_pixels();
    return std::clamp<std::size_t>(s, 1, std::max<std::size_t>(batch, 1));
  }

  /// Whether forward and backward take the direct AVX2/FMA path (float, kernels enabled; channels-first chunks are
  /// transposed to channels-last around it).
  bool direct() const {
    if constexpr (direct_capable) return simd_kernels_enabled();
    return false;
  }

  /// Whether forward and backward run on the Winograd kernels: the direct path is on, conv_algorithm() is
  /// ConvAlgorithm::winograd and the geometry has a Winograd form (winograd_applies).
  bool winograd() const {
    if constexpr (direct_capable) return direct() && conv_algorithm() == ConvAlgorithm::winograd && winograd_applies(g_);
    return false;
  }

 private:
  // dbias += the sum of dy over samples and pixels (when given), across the threads in an order fixed by the shape:
  // channels-last rows through sum_rows, channels-first planes channel by channel.
  void bias_gradient(MatrixRef<const T> dy, T* dbias, std::size_t batch) const {
    const std::size_t P = g_.out_pixels(), C = g_.out_channels;
    if (dbias == nullptr) return;
    if (g_.layout == Layout::channels_last)
      return sum_rows<T>(MatrixRef<const T>{dy.data, batch * P, C, C}, T(1), dbias);
    ACE_OMP_FOR(C > 1 && batch * P * C > (std::size_t{1} << 15))
    for (std::size_t c = 0; c < C; ++c)
      for (std::size_t b = 0; b < batch; ++b) {
        const T* plane = dy.data + b * g_.out_dim() + c * P;
        for (std::size_t p = 0; p < P; ++p) dbias[c] += plane[p];
      }
  }

  // Eigen path of backward: dx and the per-chunk filter gradients partial_.
  void backward_gemm(MatrixRef<const T> x, const T* w, MatrixRef<const T> dy, MatrixRef<T> dx, std::size_t batch) {
    prepare(col_);
    prepare(dcol_);
    const std::size_t P = g_.out_pixels(), C = g_.out_channels, K = g_.patch();
    const MatrixRef<const T> filters{w, C, K, K};
    for_each_chunk(batch, [&](std::size_t chunk, std::size_t first, std::size_t count, std::size_t thread) {
      const T* xc = x.data + first * g_.in_dim();
      const T* gc = dy.data + first * g_.out_dim();
      T* dxc = dx.data + first * g_.in_dim();
      T* col = col_[thread].data();
      T* dcol = dcol_[thread].data();
      const MatrixRef<T> dw_chunk{partial_.data() + chunk * C * K, C, K, K};
      std::fill(dxc, dxc + count * g_.in_dim(), T(0));
      for_each_block(count, [&](std::size_t r0, std::size_t rows) {
        unfold(xc, r0, rows, col);
        const T beta = r0 == 0 ? T(0) : T(1);
        if (g_.layout == Layout::channels_last) {
          const MatrixRef<const T> gm{gc + r0 * C, rows, C, C};
          gemm<T>(Transpose::yes, Transpose::no, T(1), gm, {col, rows, K, K}, beta, dw_chunk);
          gemm<T>(Transpose::no, Transpose::no, T(1), gm, filters, T(0), {dcol, rows, K, K});
        } else {
          const MatrixRef<const T> gm{gc + (r0 / P) * g_.out_dim() + r0 % P, C, rows, P};
          gemm<T>(Transpose::no, Transpose::no, T(1), gm, {col, rows, K, K}, beta, dw_chunk);
          gemm<T>(Transpose::yes, Transpose::no, T(1), gm, filters, T(0), {dcol, rows, K, K});
        }
        fold(dcol, r0, rows, dxc);
      });
    });
  }

#if ACE_HAS_X86_KERNELS
  static constexpr std::size_t mr = simd::mr, nr = simd::nr, group_tiles = 16;

  // Per-thread buffers of the direct path.
  struct DirectScratch {
    std::vector<const T*> rows;     // [tile][tap][mr] source rows of a group of tiles; per-pixel rows for dw
    std::vector<const T*> panels;   // [tap] filter panels of a tile's live taps; output-gradient rows for dw
    std::vector<T*> targets;       // [tap][mr] input-gradient rows of a tile (strided scatter)
    std::vector<T> packed, image, trash;  // packed output gradients, a padded channels-first input, a dump row
    std::vector<T> x, y, dx;              // channels-first maps: the chunk transposed to channels-last
  };

  void prepare_direct() {
    const std::size_t taps = g_.kernel * g_.kernel;
    if (direct_.size() < omp_threads()) direct_.resize(omp_threads());
    for (auto& s : direct_) {
      s.rows.resize(std::max(s.rows.size(), taps * group_tiles * mr));
      s.panels.resize(std::max(s.panels.size(), taps));
      s.targets.resize(taps * mr);
      s.trash.resize(nr);
    }
    zeros_.assign(std::max(g_.in_channels, g_.out_channels), T(0));
    if (out_plan_.rows.empty()) {
      const auto rows = static_cast<std::ptrdiff_t>(g_.rows), cols = static_cast<std::ptrdiff_t>(g_.cols);
      const auto orows = static_cast<std::ptrdiff_t>(g_.out_rows()), ocols = static_cast<std::ptrdiff_t>(g_.out_cols());
      const auto k = static_cast<std::ptrdiff_t>(g_.kernel), pad = static_cast<std::ptrdiff_t>(g_.padding);
      const auto stride = static_cast<std::ptrdiff_t>(g_.stride);
      const auto pixel = [](std::ptrdiff_t y, std::ptrdiff_t x, std::ptrdiff_t h, std::ptrdiff_t w) {
        return y >= 0 && x >= 0 && y < h && x < w ? y * w + x : std::ptrdiff_t{-1};
      };
      // Forward: output pixel (oy, ox) reads input pixel (oy s + ky - p, ox s + kx - p).
      out_plan_ = make_plan(
          edge_columns_last(g_.out_rows(), g_.out_cols(),
                            [&](std::ptrdiff_t ox) { return ox * stride - pad < 0 || ox * stride - pad + k > cols; }),
          g_.out_cols(), [&](std::size_t oy, std::size_t ox, std::size_t ky, std::size_t kx) {
            return pixel(static_cast<std::ptrdiff_t>(oy * g_.stride + ky) - pad,
                         static_cast<std::ptrdiff_t>(ox * g_.stride + kx) - pad, rows, cols);
          });
      // Input gradient, stride 1: input pixel (iy, ix) reads output pixel (iy + p - ky, ix + p - kx).
      if (g_.stride == 1)
        in_plan_ = make_plan(
            edge_columns_last(g_.rows, g_.cols,
                              [&](std::ptrdiff_t ix) { return ix + pad - k + 1 < 0 || ix + pad >= ocols; }),
            g_.cols, [&](std::size_t iy, std::size_t ix, std::size_t ky, std::size_t kx) {
              return pixel(static_cast<std::ptrdiff_t>(iy + g_.padding) - static_cast<std::ptrdiff_t>(ky),
                           static_cast<std::ptrdiff_t>(ix + g_.padding) - static_cast<std::ptrdiff_t>(kx), orows,
                           ocols);
            });
    }
  }

  // The pixels of a rows x cols grid with the columns whose window reaches the padding (edge(col)) last, column by
  // column: a tile of 6 pixels then shares which taps fall into the side padding, and skips them together.
  template <class Edge>
  static std::vector<std::size_t> edge_columns_last(std::size_t rows, std::size_t cols, Edge edge) {
    std::vector<std::size_t> order;
    order.reserve(rows * cols);
    for (std::size_t y = 0; y < rows; ++y)
      for (std::size_t x = 0; x < cols; ++x)
        if (!edge(static_cast<std::ptrdiff_t>(x))) order.push_back(y * cols + x);
    for (std::size_t x = 0; x < cols; ++x)
      if (edge(static_cast<std::ptrdiff_t>(x)))
        for (std::size_t y = 0; y < rows; ++y) order.push_back(y * cols + x);
    return order;
  }

  // Filters in panels of nr rows for the tiles, [panel][tap][k][nr], and the weights they were packed from.
  struct PackedFilters {
    std::vector<T> panels, source;
  };

  // p.panels = at(panel * nr + j, tap, k) for the n x (taps x kc) filter matrix (zero for j >= n), unless p was
  // already packed from these weights w (evaluation, or forward and backward of one step).
  template <class At>
  const T* pack(PackedFilters& p, const T* w, std::size_t n, std::size_t kc, At at) {
    const std::size_t taps = g_.kernel * g_.kernel, panels = (n + nr - 1) / nr, size = n * taps * kc;
    if (p.source.size() == size && std::equal(w, w + size, p.source.begin())) return p.panels.data();
    p.panels.resize(panels * taps * kc * nr);
    T* out = p.panels.data();
    for (std::size_t panel = 0; panel < panels; ++panel)
      for (std::size_t t = 0; t < taps; ++t)
        for (std::size_t k = 0; k < kc; ++k)
          for (std::size_t j = 0; j < nr; ++j, ++out) *out = panel * nr + j < n ? at(panel * nr + j, t, k) : T(0);
    p.source.assign(w, w + size);
    return p.panels.data();
  }

  // The tiles of one sample: mr destination pixels each (edge columns last, see edge_columns_last) and the taps
  // that reach a source pixel from at least one of them, with each row's source pixel (-1 in the padding).
  struct TilePlan {
    std::vector<std::size_t> pixels, rows, first, taps;  // per tile: [mr] pixels, row count, its first live tap
    std::vector<std::ptrdiff_t> sources;                 // per live tap: [mr] source pixels
  };

  // source(y, x, ky, kx): the source pixel of tap (ky, kx) of destination pixel (y, x), or -1.
  template <class Source>
  TilePlan make_plan(const std::vector<std::size_t>& order, std::size_t cols, Source source) const {
    const std::size_t k = g_.kernel;
    TilePlan plan;
    for (std::size_t r0 = 0; r0 < order.size(); r0 += mr) {
      const std::size_t m = std::min(mr, order.size() - r0);
      plan.rows.push_back(m);
      plan.first.push_back(plan.taps.size());
      for (std::size_t i = 0; i < mr; ++i) plan.pixels.push_back(i < m ? order[r0 + i] : 0);
      for (std::size_t t = 0; t < k * k; ++t) {
        std::ptrdiff_t src[mr];
        bool reaches = false;
        for (std::size_t i = 0; i < mr; ++i) {
          src[i] = i < m ? source(order[r0 + i] / cols, order[r0 + i] % cols, t / k, t % k) : -1;
          reaches = reaches || src[i] >= 0;
        }
        if (!reaches) continue;  // the whole tile reads padding: skipped
        plan.taps.push_back(t);
        plan.sources.insert(plan.sources.end(), src, src + mr);
      }
    }
    plan.first.push_back(plan.taps.size());
    return plan;
  }

  // For `count` samples: destination rows (n columns, sample stride out_stride) = the source rows of each planned
  // tap (kc values, from sample stride src_stride; the zero row in the padding) times the packed panels (kc rows per
  // tap), starting from init (nr values per panel) or zero. Tiles go in groups of group_tiles per panel, so that a
  // panel stays in cache.
  void rows_times_filters(DirectScratch& s, const TilePlan& plan, const T* filters, std::size_t count,
                          const T* src, std::size_t src_stride, std::size_t kc, std::size_t n, T* out,
                          std::size_t out_stride, const T* init) {
    const std::size_t taps = g_.kernel * g_.kernel, tiles = plan.rows.size(), total = count * tiles;
    for (std::size_t g0 = 0; g0 < total; g0 += group_tiles) {
      const std::size_t group = std::min(group_tiles, total - g0);
      for (std::size_t j = 0; j < group; ++j) {
        const std::size_t tile = (g0 + j) % tiles, m = plan.rows[tile];
        const T* base = src + (g0 + j) / tiles * src_stride;
        for (std::size_t u = plan.first[tile]; u < plan.first[tile + 1]; ++u)
          for (std::size_t i = 0; i < m; ++i) {
            const std::ptrdiff_t pixel = plan.sources[u * mr + i];
            s.rows[(j * taps + u - plan.first[tile]) * mr + i] =
                pixel < 0 ? zeros_.data() : base + static_cast<std::size_t>(pixel) * kc;
          }
      }
      for (std::size_t c0 = 0; c0 < n; c0 += nr)
        for (std::size_t j = 0; j < group; ++j) {
          const std::size_t tile = (g0 + j) % tiles, m = plan.rows[tile];
          const std::size_t live = plan.first[tile + 1] - plan.first[tile];
          for (std::size_t u = 0; u < live; ++u)
            s.panels[u] = filters + (c0 * taps + plan.taps[plan.first[tile] + u] * nr) * kc;
          T* rows_out[mr];
          T* sample = out + (g0 + j) / tiles * out_stride;
          for (std::size_t i = 0; i < m; ++i) rows_out[i] = sample + plan.pixels[tile * mr + i] * n + c0;
          simd::rows_times_panel<false>(m, live, kc, s.rows.data() + j * taps * mr, 0, s.panels.data(),
                                        init != nullptr ? init + c0 : nullptr, rows_out, std::min(nr, n - c0));
        }
    }
  }

  void forward_direct(const T* x, const T* w, const T* bias, T* y, std::size_t batch) {
    const std::size_t C = g_.out_channels, Cin = g_.in_channels, taps = g_.kernel * g_.kernel;
    prepare_direct();
    const T* filters = pack(forward_filters_, w, C, Cin, [&](std::size_t o, std::size_t t, std::size_t c) {
      return w[(o * taps + t) * Cin + c];
    });
    if (bias != nullptr) {  // the accumulators start from the bias, padded to whole panels
      bias_.assign((C + nr - 1) / nr * nr, T(0));
      std::copy(bias, bias + C, bias_.begin());
    }
    for_each_chunk(batch, [&](std::size_t, std::size_t first, std::size_t count, std::size_t thread) {
      DirectScratch& s = direct_[thread];
      const T* xc = channels_last(s.x, x + first * g_.in_dim(), count, Cin, g_.in_pixels());
      T* yc = g_.layout == Layout::channels_last ? y + first * g_.out_dim() : sized(s.y, count * g_.out_dim());
      rows_times_filters(s, out_plan_, filters, count, xc, g_.in_dim(), Cin, C, yc, g_.out_dim(),
                         bias != nullptr ? bias_.data() : nullptr);
      if (g_.layout == Layout::channels_first)
        transpose_samples(yc, count, g_.out_pixels(), C, y + first * g_.out_dim());
    });
  }

  WinogradConv& winograd_kernel() {
    if (!winograd_) winograd_.emplace(g_);
    return *winograd_;
  }

  void forward_winograd(const T* x, const T* w, const T* bias, T* y, std::size_t batch) {
    if (g_.layout == Layout::channels_last) return winograd_kernel().forward(x, w, bias, y, batch);
    T* const xt = sized(wx_, batch * g_.in_dim());
    T* const yt = sized(wy_, batch * g_.out_dim());
    transpose_batch(x, batch, g_.in_channels, g_.in_pixels(), xt);
    winograd_kernel().forward(xt, w, bias, yt, batch);
    transpose_batch(yt, batch, g_.out_pixels(), g_.out_channels, y);
  }

  void backward_winograd(const T* x, const T* w, const T* dy, T* dw, T* dx, std::size_t batch) {
    if (g_.layout == Layout::channels_last) return winograd_kernel().backward(x, w, dy, dw, dx, batch);
    T* const xt = sized(wx_, batch * g_.in_dim());
    T* const gt = sized(wy_, batch * g_.out_dim());
    T* const dxt = sized(wdx_, batch * g_.in_dim());
    transpose_batch(x, batch, g_.in_channels, g_.in_pixels(), xt);
    transpose_batch(dy, batch, g_.out_channels, g_.out_pixels(), gt);
    winograd_kernel().backward(xt, w, gt, dw, dxt, batch);
    transpose_batch(dxt, batch, g_.in_pixels(), g_.in_channels, dx);
  }

  // transpose_samples across the threads, sample by sample.
  static void transpose_batch(const T* src, std::size_t batch, std::size_t rows, std::size_t cols, T* dst) {
    const std::size_t n = rows * cols;
    ACE_OMP_FOR(batch > 1 && batch * n > (std::size_t{1} << 15))
    for (std::size_t b = 0; b < batch; ++b) transpose_samples(src + b * n, 1, rows, cols, dst + b * n);
  }

  // The chunk src (count samples of channels x pixels) in channels-last layout: src itself, or its transpose in buf.
  const T* channels_last(std::vector<T>& buf, const T* src, std::size_t count, std::size_t channels,
                         std::size_t pixels) const {
    if (g_.layout == Layout::channels_last) return src;
    T* dst = sized(buf, count * channels * pixels);
    transpose_samples(src, count, channels, pixels, dst);
    return dst;
  }
  // dst = each of `count` samples of src, a rows x cols matrix, transposed (channels-first <-> channels-last).
  static void transpose_samples(const T* src, std::size_t count, std::size_t rows, std::size_t cols, T* dst) {
    for (std::size_t b = 0; b < count; ++b)
      for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c = 0; c < cols; ++c) dst[(b * cols + c) * rows + r] = src[(b * rows + r) * cols + c];
  }
  static T* sized(std::vector<T>& buf, std::size_t n) {
    if (buf.size() < n) buf.resize(n);
    return buf.data();
  }

  void backward_direct(const T* x, const T* w, const T* dy, T* dx, std::size_t batch) {
    const std::size_t C = g_.out_channels, Cin = g_.in_channels, taps = g_.kernel * g_.kernel;
    prepare_direct();
    // Transposed filters: panels of input channels, k = output channel.
    const T* filters = pack(backward_filters_, w, Cin, C, [&](std::size_t c, std::size_t t, std::size_t o) {
      return w[(o * taps + t) * Cin + c];
    });
    for_each_chunk(batch, [&](std::size_t chunk, std::size_t first, std::size_t count, std::size_t thread) {
      DirectScratch& s = direct_[thread];
      const T* gc = channels_last(s.y, dy + first * g_.out_dim(), count, C, g_.out_pixels());
      const T* xc = channels_last(s.x, x + first * g_.in_dim(), count, Cin, g_.in_pixels());
      T* dxc = g_.layout == Layout::channels_last ? dx + first * g_.in_dim() : sized(s.dx, count * g_.in_dim());
      if (g_.stride == 1) input_gradient_gather(s, filters, gc, dxc, count);
      else input_gradient_scatter(s, filters, gc, dxc, count);
      if (g_.layout == Layout::channels_first)
        transpose_samples(dxc, count, g_.in_pixels(), Cin, dx + first * g_.in_dim());
      filter_gradient(s, xc, gc, partial_.data() + chunk * C * g_.patch(), count);
    });
  }

  // dx of `count` samples, stride 1: a convolution of dy with the transposed filters (in_plan_).
  void input_gradient_gather(DirectScratch& s, const T* filters, const T* gc, T* dxc, std::size_t count) {
    rows_times_filters(s, in_plan_, filters, count, gc, g_.out_dim(), g_.out_channels, g_.in_channels, dxc, g_.in_dim(),
                       nullptr);
  }

  // dx of `count` samples, any stride: each tile's output gradients times the transposed filters of a tap, added
  // to the tap's input rows.
  void input_gradient_scatter(DirectScratch& s, const T* filters, const T* gc, T* dxc, std::size_t count) {
    const std::size_t C = g_.out_channels, Cin = g_.in_channels, taps = g_.kernel * g_.kernel;
    const std::size_t total = count * g_.out_pixels();
    std::fill(dxc, dxc + count * g_.in_dim(), T(0));
    for (std::size_t r0 = 0; r0 < total; r0 += mr) {
      const std::size_t m = std::min(mr, total - r0);
      const T* rows[mr];
      for (std::size_t i = 0; i < m; ++i) rows[i] = gc + (r0 + i) * C;
      for_each_tap(r0, m, [&](std::size_t i, std::size_t tap, T* sample, std::ptrdiff_t pixel) {
        s.targets[tap * mr + i] = pixel < 0 ? nullptr : sample + static_cast<std::size_t>(pixel) * Cin;
      }, dxc);
      for (std::size_t t = 0; t < taps; ++t)
        for (std::size_t c0 = 0; c0 < Cin; c0 += nr) {
          T* out[mr];
          for (std::size_t i = 0; i < m; ++i) {
            T* target = s.targets[t * mr + i];
            out[i] = target != nullptr ? target + c0 : s.trash.data();
          }
          const T* panel = filters + (c0 * taps + t * nr) * C;
          simd::rows_times_panel<true>(m, 1, C, rows, 0, &panel, nullptr, out, std::min(nr, Cin - c0));
        }
    }
  }

  // The filter gradient of `count` samples, transposed: dwc [patch, C], accumulated over all their output pixels
  // in registers, tiles of mr input channels of one tap x nr output channels. The output gradients are packed in
  // panels of nr channels. Stride 1 reads the input from a padded channels-first copy, where a tap's inputs along
  // an output row are contiguous; other strides read each output pixel's input row through a pointer.
  void filter_gradient(DirectScratch& s, const T* xc, const T* gc, T* dwc, std::size_t count) {
    const std::size_t C = g_.out_channels, Cin = g_.in_channels, k = g_.kernel, taps = k * k;
    const std::size_t total = count * g_.out_pixels(), panels = (C + nr - 1) / nr;
    s.packed.resize(panels * total * nr);
    for (std::size_t panel = 0; panel < panels; ++panel)
      for (std::size_t r = 0; r < total; ++r)
        for (std::size_t j = 0; j < nr; ++j) {
          const std::size_t o = panel * nr + j;
          s.packed[(panel * total + r) * nr + j] = o < C ? gc[r * C + o] : T(0);
        }
    const auto tile = [&](std::size_t panel, std::size_t t, std::size_t c0, std::size_t m, T** out) {
      for (std::size_t i = 0; i < m; ++i) out[i] = dwc + (t * Cin + c0 + i) * C + panel * nr;
      return std::min(nr, C - panel * nr);
    };
    if (g_.stride != 1) {
      s.rows.resize(std::max(s.rows.size(), taps * total));
      for_each_tap(0, total, [&](std::size_t r, std::size_t tap, const T* sample, std::ptrdiff_t pixel) {
        s.rows[tap * total + r] = pixel < 0 ? zeros_.data() : sample + static_cast<std::size_t>(pixel) * Cin;
      }, xc);
      for (std::size_t panel = 0; panel < panels; ++panel)
        for (std::size_t t = 0; t < taps; ++t)
          for (std::size_t c0 = 0; c0 < Cin; c0 += mr) {
            const std::size_t m = std::min(mr, Cin - c0);
            T* out[mr];
            const std::size_t n = tile(panel, t, c0, m, out);
            simd::gathered_times_panel(m, total, s.rows.data() + t * total, c0, s.packed.data() + panel * total * nr,
                                       out, n);
          }
      return;
    }
    const std::size_t pr = g_.rows + 2 * g_.padding, pc = g_.cols + 2 * g_.padding, orows = g_.out_rows();
    const std::size_t ocols = g_.out_cols(), lines = count * orows;
    s.image.assign(count * Cin * pr * pc, T(0));
    for (std::size_t b = 0; b < count; ++b)
      for (std::size_t y = 0; y < g_.rows; ++y) {
        const T* src = xc + b * g_.in_dim() + y * g_.cols * Cin;  // one input row, in cache for all channels
        for (std::size_t c = 0; c < Cin; ++c) {
          T* dst = s.image.data() + ((b * Cin + c) * pr + y + g_.padding) * pc + g_.padding;
          for (std::size_t x = 0; x < g_.cols; ++x) dst[x] = src[x * Cin + c];
        }
      }
    s.rows.resize(std::max(s.rows.size(), lines * mr));
    s.panels.resize(std::max(s.panels.size(), panels * lines));
    for (std::size_t line = 0; line < lines; ++line)
      for (std::size_t panel = 0; panel < panels; ++panel)
        s.panels[panel * lines + line] = s.packed.data() + (panel * total + line * ocols) * nr;
    const std::size_t tiles = (Cin + mr - 1) / mr;  // balanced: 64 channels = 9 x 6 + 2 x 5, not 10 x 6 + 4
    for (std::size_t j = 0, c0 = 0; j < tiles; ++j) {
      const std::size_t m = (Cin - c0) / (tiles - j) + ((Cin - c0) % (tiles - j) != 0 ? 1 : 0);
      for (std::size_t line = 0; line < lines; ++line)  // tap (0, 0) of each output row; other taps are shifts
        for (std::size_t i = 0; i < m; ++i)
          s.rows[line * mr + i] = s.image.data() + ((line / orows * Cin + c0 + i) * pr + line % orows) * pc;
      for (std::size_t panel = 0; panel < panels; ++panel)
        for (std::size_t t = 0; t < taps; ++t) {
          T* out[mr];
          const std::size_t n = tile(panel, t, c0, m, out);
          simd::rows_times_panel<false>(m, lines, ocols, s.rows.data(), t / k * pc + t % k,
                                        s.panels.data() + panel * lines, nullptr, out, n);
        }
      c0 += m;
    }
  }
#else
  void forward_direct(const T*, const T*, const T*, T*, std::size_t) {}
  void backward_direct(const T*, const T*, const T*, T*, std::size_t) {}
  void forward_winograd(const T*, const T*, const T*, T*, std::size_t) {}
  void backward_winograd(const T*, const T*, const T*, T*, T*, std::size_t) {}
#endif
  // f(chunk, first sample, samples, thread) for the chunks of a batch, spread over the OpenMP threads when there are
  // several; `thread` indexes per-thread buffers (0 when serial, even inside a caller's team).
  template <class F>
  void for_each_chunk(std::size_t batch, F&& f) const {
    const std::size_t per = chunk_samples(batch), chunks = (batch + per - 1) / per;
    ACE_OMP_FOR(chunks > 1)
    for (std::size_t chunk = 0; chunk < chunks; ++chunk)
      f(chunk, chunk * per, std::min(per, batch - chunk * per), chunks > 1 ? omp_thread() : 0);
  }

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
#if ACE_HAS_X86_KERNELS
  std::vector<DirectScratch> direct_;     // per thread
  PackedFilters forward_filters_, backward_filters_;  // backward: transposed, panels of input channels
  std::vector<T> zeros_, bias_;                      // a zero input row for the padding; the bias in whole panels
  TilePlan out_plan_, in_plan_;           // tiles of the forward and of the stride-1 input gradient
  std::optional<WinogradConv> winograd_;  // made on first use
  std::vector<T> wx_, wy_, wdx_;          // Winograd on channels-first maps: the batch in channels-last layout
#endif
};

}  // namespace ace::cpu
