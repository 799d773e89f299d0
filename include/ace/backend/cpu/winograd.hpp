// SPDX-License-Identifier: MIT
// Winograd convolution for the Cpu backend's float maps (Lavin & Gray, "Fast Algorithms for Convolutional Neural
// Networks", 2016): F(m x m, r x r) computes an m x m tile of a stride-1 convolution from an (m + r - 1)^2 patch with
// (m + r - 1)^2 multiplications per channel pair instead of m^2 r^2 — 64 instead of 400 for F(4 x 4, 5 x 5), 64
// instead of 324 for F(6 x 6, 3 x 3) (or the smaller tiles F(2 x 2, 5 x 5), F(4 x 4, 3 x 3) where the map is too small
// for the large ones to pay). The tiles' transforms run on AVX2/FMA registers across channels (channels-last
// rows), the channel mixing on ace's own GEMM kernels (cpu/gemm_kernel.hpp), one product per transform position.
// Chosen with set_conv_algorithm(ConvAlgorithm::winograd) or ACE_CONV_ALGORITHM=winograd (docs/backends.md,
// "Winograd convolutions"); its float error is larger than the direct kernels' (docs/benchmarks.md).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "ace/backend/cpu/conv_simd.hpp"
#include "ace/backend/cpu/gemm_kernel.hpp"
#include "ace/backend/cpu/parallel.hpp"
#include "ace/backend/geometry.hpp"
#include "ace/error.hpp"

namespace ace {

/// The algorithms of the Cpu backend's float convolutions.
enum class ConvAlgorithm {
  direct,    ///< the direct AVX2/FMA register tiles (or the im2col + GEMM path without them): every multiply-add
  winograd,  ///< Winograd F(6x6 or 4x4, 3x3) and F(4x4 or 2x2, 5x5) for stride-1 3x3 and 5x5 filters; the rest direct
};

/// The name of an algorithm as ACE_CONV_ALGORITHM spells it: "direct" or "winograd".
constexpr std::string_view conv_algorithm_name(ConvAlgorithm a) {
  return a == ConvAlgorithm::direct ? "direct" : "winograd";
}

namespace detail {
/// The start-up choice: the environment variable ACE_CONV_ALGORITHM (direct or winograd) where set, else direct.
inline ConvAlgorithm initial_conv_algorithm() {
  const char* env = std::getenv("ACE_CONV_ALGORITHM");
  if (!env || !*env) return ConvAlgorithm::direct;
  const std::string_view v(env);
  for (const ConvAlgorithm choice : {ConvAlgorithm::direct, ConvAlgorithm::winograd})
    if (v == conv_algorithm_name(choice)) return choice;
  throw invalid_argument(ace::detail::concat("ACE_CONV_ALGORITHM=", v,
                                             ": the Cpu backend's convolution algorithm is direct or winograd"));
}
inline std::atomic<ConvAlgorithm>& conv_algorithm_switch() {
  static std::atomic<ConvAlgorithm> choice{initial_conv_algorithm()};
  return choice;
}
}  // namespace detail

/// Chooses the algorithm of the Cpu backend's float convolutions for the whole process. ConvAlgorithm::winograd
/// applies to stride-1 convolutions with 3x3 or 5x5 filters and a padding of at most kernel - 1 on CPUs with AVX2 and
/// FMA (cpu::winograd_applies); other convolutions, double ones and the portable path run direct whatever the choice.
/// The default is the environment variable ACE_CONV_ALGORITHM (direct or winograd) where set, else direct.
inline void set_conv_algorithm(ConvAlgorithm a) { detail::conv_algorithm_switch().store(a); }
/// The algorithm the Cpu backend's float convolutions use now.
inline ConvAlgorithm conv_algorithm() { return detail::conv_algorithm_switch().load(); }

namespace cpu {

namespace detail {
/// The matrices of F(m, r) into at [m x alpha], g [alpha x r] and bt [alpha x alpha] (row-major, alpha = m + r - 1
/// <= 8): see WinogradMatrices.
constexpr void winograd_matrices(std::size_t m, std::size_t r, double* at, double* g, double* bt) {
  constexpr double points[] = {0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5};
  const std::size_t alpha = m + r - 1, finite = alpha - 1;
  const auto power = [](double x, std::size_t n) {
    double v = 1.0;
    for (std::size_t i = 0; i < n; ++i) v *= x;
    return v;
  };
  // row = the coefficients (ascending powers) of the product of (x - p_l) over the finite points l != skip
  const auto product = [&](std::size_t skip, double* row) {
    for (std::size_t i = 0; i < alpha; ++i) row[i] = 0.0;
    row[0] = 1.0;
    std::size_t degree = 0;
    for (std::size_t l = 0; l < finite; ++l) {
      if (l == skip) continue;
      ++degree;
      for (std::size_t i = degree + 1; i-- > 0;) row[i] = (i > 0 ? row[i - 1] : 0.0) - points[l] * row[i];
    }
  };
  for (std::size_t i = 0; i < m * alpha; ++i) at[i] = 0.0;
  for (std::size_t i = 0; i < alpha * r; ++i) g[i] = 0.0;
  for (std::size_t j = 0; j < finite; ++j) {
    double f = 1.0;  // Π_{l != j} (p_j - p_l): the Lagrange denominator, moved into G
    for (std::size_t l = 0; l < finite; ++l)
      if (l != j) f *= points[j] - points[l];
    for (std::size_t i = 0; i < m; ++i) at[i * alpha + j] = power(points[j], i);
    for (std::size_t k = 0; k < r; ++k) g[j * r + k] = power(points[j], k) / f;
    product(j, bt + j * alpha);
  }
  at[(m - 1) * alpha + finite] = 1.0;  // the point at infinity: the leading coefficients
  g[finite * r + r - 1] = 1.0;
  product(finite, bt + finite * alpha);
}
}  // namespace detail

/// The matrices of Winograd's minimal filtering algorithm F(m, r) (Cook–Toom form) for a correlation
/// y_i = Σ_k d_{i+k} g_k, i < m, k < r, of a patch d of alpha = m + r - 1 values: y = Aᵀ [(G g) ⊙ (Bᵀ d)], built from
/// the interpolation points 0, 1, -1, 2, -2, 1/2, -1/2 (the first alpha - 1) and infinity. Row-major, in double:
/// at [m x alpha], g [alpha x r], bt [alpha x alpha]. Bᵀ holds the coefficients of products of (x - p), so it is
/// exact in float for integer points; the divisions sit in G. In two dimensions, per channel pair:
/// Y = Aᵀ [(G w Gᵀ) ⊙ (Bᵀ d B)] A.
struct WinogradMatrices {
  std::size_t m = 0, r = 0, alpha = 0;
  std::vector<double> at, g, bt;

  WinogradMatrices(std::size_t tile, std::size_t kernel) : m(tile), r(kernel), alpha(tile + kernel - 1) {
    ACE_THROW_IF(m < 1 || r < 1 || alpha > 8, invalid_argument, "WinogradMatrices: F(", m, ", ", r,
                 ") needs m, r >= 1 and m + r - 1 <= 8 (interpolation points 0, +-1, +-2, +-1/2 and infinity)");
    at.resize(m * alpha);
    g.resize(alpha * r);
    bt.resize(alpha * alpha);
    detail::winograd_matrices(m, r, at.data(), g.data(), bt.data());
  }
};

/// Whether a convolution of this geometry can run on the Winograd kernels: stride 1, a 3x3 or 5x5 filter, a padding
/// of at most kernel - 1 (so the input gradient is a Winograd convolution too), and a CPU with AVX2 and FMA.
inline bool winograd_applies(const ConvGeometry& g) {
  return simd_kernels_available() && g.stride == 1 && (g.kernel == 3 || g.kernel == 5) && g.padding < g.kernel &&
         g.rows + 2 * g.padding >= g.kernel && g.cols + 2 * g.padding >= g.kernel && g.in_channels > 0 &&
         g.out_channels > 0;
}

/// The output tile m of the Winograd convolution of a geometry: F(4x4, 3x3) or F(6x6, 3x3), F(2x2, 5x5) or
/// F(4x4, 5x5), whichever multiplies less over the whole output map — tiles x (m + r - 1)², tiles cut by the edges
/// counted whole; a tie takes the smaller tile, whose float error is smaller. A function of the geometry alone.
inline std::size_t winograd_tile(const ConvGeometry& g) {
  const std::size_t small = g.kernel == 3 ? 4 : 2, large = small + 2;
  const auto cost = [&](std::size_t m) {
    const std::size_t alpha = m + g.kernel - 1;
    return (g.out_rows() + m - 1) / m * ((g.out_cols() + m - 1) / m) * alpha * alpha;
  };
  return cost(large) < cost(small) ? large : small;
}

#if ACE_HAS_X86_KERNELS

namespace detail {
// The float transforms of F(M, R), computed at compile time: Bᵀ [alpha x alpha], Aᵀ [M x alpha], A [alpha x M].
template <std::size_t M, std::size_t R>
struct WinogradFloat {
  static constexpr std::size_t alpha = M + R - 1;
  std::array<float, alpha * alpha> bt{};
  std::array<float, M * alpha> at{}, a{};
  constexpr WinogradFloat() {
    double at_[M * alpha] = {}, g_[alpha * R] = {}, bt_[alpha * alpha] = {};
    winograd_matrices(M, R, at_, g_, bt_);
    for (std::size_t i = 0; i < alpha * alpha; ++i) bt[i] = static_cast<float>(bt_[i]);
    for (std::size_t i = 0; i < M; ++i)
      for (std::size_t j = 0; j < alpha; ++j) at[i * alpha + j] = a[j * M + i] = static_cast<float>(at_[i * alpha + j]);
  }
};
template <std::size_t M, std::size_t R>
inline constexpr WinogradFloat<M, R> winograd_float{};
template <std::size_t M, std::size_t R>
inline constexpr std::array<float, (M + R - 1) * (M + R - 1)> winograd_bt = winograd_float<M, R>.bt;
template <std::size_t M, std::size_t R>
inline constexpr std::array<float, M*(M + R - 1)> winograd_at = winograd_float<M, R>.at;
template <std::size_t M, std::size_t R>
inline constexpr std::array<float, M*(M + R - 1)> winograd_a = winograd_float<M, R>.a;

// Y = Mat X Matᵀ for a Rows x Cols matrix Mat (row-major, known at compile time: its zero entries cost nothing) on a
// Cols x Cols matrix X of channel rows (in[a * Cols + b], n channels) into the Rows x Rows rows out[i * Rows + j],
// plus bias where given; 8 channels at a time, X column by column, then Y row by row.
template <int Rows, int Cols, const auto& Mat>
ACE_DETAIL_AVX2 void sandwich(const float* const* in, float* const* out, std::size_t n, const float* bias) {
  for (std::size_t c0 = 0; c0 < n; c0 += 8) {
    const std::size_t w = std::min<std::size_t>(8, n - c0);
    const __m256i mask = simd::lanes(w);
    __m256 t[Rows][Cols];  // Mat X
#pragma GCC unroll 8
    for (int b = 0; b < Cols; ++b) {
      __m256 x[Cols];
#pragma GCC unroll 8
      for (int a = 0; a < Cols; ++a)
        x[a] = w == 8 ? _mm256_loadu_ps(in[a * Cols + b] + c0) : _mm256_maskload_ps(in[a * Cols + b] + c0, mask);
#pragma GCC unroll 8
      for (int i = 0; i < Rows; ++i) {
        __m256 acc = _mm256_setzero_ps();
#pragma GCC unroll 8
        for (int a = 0; a < Cols; ++a)
          if (Mat[static_cast<std::size_t>(i * Cols + a)] != 0.0f)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(Mat[static_cast<std::size_t>(i * Cols + a)]), x[a], acc);
        t[i][b] = acc;
      }
    }
    const __m256 init = bias == nullptr ? _mm256_setzero_ps()
                        : w == 8        ? _mm256_loadu_ps(bias + c0)
                                        : _mm256_maskload_ps(bias + c0, mask);
#pragma GCC unroll 8
    for (int i = 0; i < Rows; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < Rows; ++j) {
        __m256 acc = init;
#pragma GCC unroll 8
        for (int b = 0; b < Cols; ++b)
          if (Mat[static_cast<std::size_t>(j * Cols + b)] != 0.0f)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(Mat[static_cast<std::size_t>(j * Cols + b)]), t[i][b], acc);
        if (w == 8) _mm256_storeu_ps(out[i * Rows + j] + c0, acc);
        else _mm256_maskstore_ps(out[i * Rows + j] + c0, mask, acc);
      }
  }
}

using SandwichFn = void (*)(const float* const*, float* const*, std::size_t, const float*);

// The three transforms of F(m, r): of an input patch (Bᵀ d B), of a product back to an output tile (Aᵀ M A), and the
// latter's adjoint (A dY Aᵀ) for the filter gradient.
struct WinogradTransforms {
  SandwichFn input = nullptr, output = nullptr, output_adjoint = nullptr;
};
template <std::size_t M, std::size_t R>
WinogradTransforms winograd_transforms_of() {
  constexpr int m = static_cast<int>(M), alpha = static_cast<int>(M + R - 1);
  return {&sandwich<alpha, alpha, winograd_bt<M, R>>, &sandwich<m, alpha, winograd_at<M, R>>,
          &sandwich<alpha, m, winograd_a<M, R>>};
}
// The transforms of the tiles winograd_tile chooses: F(4, 3), F(6, 3), F(2, 5) and F(4, 5).
inline WinogradTransforms winograd_transforms(std::size_t m, std::size_t r) {
  if (m == 4 && r == 3) return winograd_transforms_of<4, 3>();
  if (m == 6 && r == 3) return winograd_transforms_of<6, 3>();
  if (m == 2 && r == 5) return winograd_transforms_of<2, 5>();
  if (m == 4 && r == 5) return winograd_transforms_of<4, 5>();
  throw invalid_argument(ace::detail::concat("Winograd transforms of F(", m, ", ", r,
                                             "): only F(4, 3), F(6, 3), F(2, 5) and F(4, 5) are compiled"));
}
}  // namespace detail

struct WinogradPatches;  // thread_scratch tags
struct WinogradProducts;

/// Winograd F(m x m, r x r) convolutions of float channels-last maps (ConvGeometry's layout is ignored: the caller
/// transposes channels-first maps): forward with bias, and backward — the input gradient as a Winograd correlation of
/// the output gradient with the flipped, transposed filters (padding r - 1 - p), the filter gradient as the adjoint of
/// the forward (filter-domain products Uᵀ dM over all tiles, then Gᵀ · G). Output tiles are numbered sample by sample,
/// row by row, cut into blocks of a fixed number of tiles (a function of the shape) spread over the OpenMP threads;
/// each block transforms its patches into a per-thread buffer [alpha²][tiles][in channels], runs one GEMM per
/// transform position against the transformed filters [alpha²][in][out], and transforms the products back. The
/// filter gradient sums fixed groups of blocks in their own slots, then the slots in order: the results do not depend
/// on the thread count. The transformed filters are kept while the weights stay the same.
class WinogradConv {
 public:
  WinogradConv() = default;
  explicit WinogradConv(const ConvGeometry& g)
      : g_(checked(g)), w_(winograd_tile(g), g.kernel), m_(w_.m), alpha_(w_.alpha),
        transforms_(detail::winograd_transforms(m_, g.kernel)) {
    zeros_.assign(std::max(g.in_channels, g.out_channels), 0.0f);
  }

  const ConvGeometry& geometry() const { return g_; }
  const WinogradMatrices& matrices() const { return w_; }

  static const ConvGeometry& checked(const ConvGeometry& g) {
    ACE_THROW_IF(!winograd_applies(g), invalid_argument, "WinogradConv: a ", g.kernel, "x", g.kernel,
                 " convolution with stride ", g.stride, " and padding ", g.padding,
                 " has no Winograd form (stride 1, 3x3 or 5x5 filters, padding < kernel, AVX2 and FMA)");
    return g;
  }

  /// y = w * x + bias for `batch` channels-last samples; w [out, (ky, kx, in)], bias [out] or null.
  void forward(const float* x, const float* w, const float* bias, float* y, std::size_t batch) {
    refresh_filters(w);
    correlate(forward_pass(), forward_packed_, x, bias, y, batch);
  }

  /// dx = dL/dx and dw += dL/dw for the forward input x and the output gradient dy (channels-last).
  void backward(const float* x, const float* w, const float* dy, float* dw, float* dx, std::size_t batch) {
    refresh_filters(w);
    correlate(input_gradient_pass(), backward_packed_, dy, nullptr, dx, batch);
    filter_gradient(x, dy, dw, batch);
  }

  /// The output tiles of one pass's block: a function of the channel counts (a block's patches and products, about
  /// 512 KiB, stay in L2), a multiple of 12 (the AVX-512 GEMM tile's rows) between 12 and 96.
  std::size_t block_tiles(std::size_t in_channels, std::size_t out_channels) const {
    const std::size_t per_tile = alpha_ * alpha_ * (in_channels + out_channels) * sizeof(float);
    return std::clamp<std::size_t>((std::size_t{512} << 10) / per_tile / 12 * 12, 12, 96);
  }

 private:
  // One correlation: `in` channels of rows x cols pixels (padding pad) to `out` channels of out_rows x out_cols.
  struct Pass {
    std::size_t in, out, rows, cols, out_rows, out_cols, pad;
    std::size_t tiles_y, tiles_x;
    std::size_t tiles() const { return tiles_y * tiles_x; }
  };
  Pass make_pass(std::size_t in, std::size_t out, std::size_t rows, std::size_t cols, std::size_t out_rows,
                 std::size_t out_cols, std::size_t pad) const {
    return {in, out, rows, cols, out_rows, out_cols, pad, (out_rows + m_ - 1) / m_, (out_cols + m_ - 1) / m_};
  }
  Pass forward_pass() const {
    return make_pass(g_.in_channels, g_.out_channels, g_.rows, g_.cols, g_.out_rows(), g_.out_cols(), g_.padding);
  }
  Pass input_gradient_pass() const {
    return make_pass(g_.out_channels, g_.in_channels, g_.out_rows(), g_.out_cols(), g_.rows, g_.cols,
                     g_.kernel - 1 - g_.padding);
  }

  // The transformed filters for weights w [out, (ky, kx, in)]: forward [alpha²][in][out] = G w Gᵀ, backward
  // [alpha²][out][in] from the flipped filters; recomputed (in double) only when w changed.
  void refresh_filters(const float* w) {
    const std::size_t Cin = g_.in_channels, C = g_.out_channels, r = g_.kernel, A = alpha_;
    const std::size_t size = C * r * r * Cin;
    if (source_.size() == size && std::equal(w, w + size, source_.begin())) return;
    forward_filters_.resize(A * A * Cin * C);
    backward_filters_.resize(A * A * Cin * C);
    ACE_OMP_FOR(C * Cin * A * A * r > (std::size_t{1} << 15))
    for (std::size_t o = 0; o < C; ++o) {
      const auto g = [this](std::size_t i, std::size_t k) { return w_.g[i * g_.kernel + k]; };
      double tap[5 * 5], flipped[5 * 5], v[8 * 8], vf[8 * 8];
      for (std::size_t c = 0; c < Cin; ++c) {
        for (std::size_t k = 0; k < r * r; ++k) {
          tap[k] = double(w[(o * r * r + k) * Cin + c]);
          flipped[r * r - 1 - k] = tap[k];
        }
        congruence(g, A, r, tap, v);  // G w Gᵀ
        congruence(g, A, r, flipped, vf);
        for (std::size_t xi = 0; xi < A * A; ++xi) {
          forward_filters_[(xi * Cin + c) * C + o] = static_cast<float>(v[xi]);
          backward_filters_[(xi * C + o) * Cin + c] = static_cast<float>(vf[xi]);
        }
      }
    }
    // each transform position's filters packed once for the GEMM kernels, for all blocks of all steps until w changes
    forward_packed_.resize(A * A);
    backward_packed_.resize(A * A);
    ACE_OMP_FOR(C * Cin * A * A > (std::size_t{1} << 15))
    for (std::size_t xi = 0; xi < A * A; ++xi) {
      ace::cpu::detail::ace_pack_gemm_b(Transpose::no, {forward_filters_.data() + xi * Cin * C, Cin, C, C},
                                        forward_packed_[xi]);
      ace::cpu::detail::ace_pack_gemm_b(Transpose::no, {backward_filters_.data() + xi * Cin * C, C, Cin, Cin},
                                        backward_packed_[xi]);
    }
    source_.assign(w, w + size);
  }

  // The input rows of tile `tile` of a pass (sample-major numbering) for the input transform: alpha² pointers into
  // `src` (the zero row in the padding and past the edges).
  void patch_rows(const Pass& p, const float* src, std::size_t tile, const float** rows) const {
    const std::size_t per = p.tiles(), b = tile / per, ty = tile % per / p.tiles_x, tx = tile % p.tiles_x;
    const float* sample = src + b * p.rows * p.cols * p.in;
    const auto y0 = static_cast<std::ptrdiff_t>(ty * m_) - static_cast<std::ptrdiff_t>(p.pad);
    const auto x0 = static_cast<std::ptrdiff_t>(tx * m_) - static_cast<std::ptrdiff_t>(p.pad);
    for (std::size_t a = 0; a < alpha_; ++a)
      for (std::size_t c = 0; c < alpha_; ++c) {
        const std::ptrdiff_t y = y0 + static_cast<std::ptrdiff_t>(a), xx = x0 + static_cast<std::ptrdiff_t>(c);
        const bool inside = y >= 0 && xx >= 0 && y < static_cast<std::ptrdiff_t>(p.rows) &&
                            xx < static_cast<std::ptrdiff_t>(p.cols);
        rows[a * alpha_ + c] =
            inside ? sample + (static_cast<std::size_t>(y) * p.cols + static_cast<std::size_t>(xx)) * p.in
                   : zeros_.data();
      }
  }
  // The output rows of tile `tile`: m² pointers into dst, or to `outside` past the edges (a dump row when writing, a
  // zero row when reading).
  template <class Ptr>
  void tile_rows(const Pass& p, std::size_t tile, Ptr dst, Ptr outside, Ptr* rows) const {
    const std::size_t per = p.tiles(), b = tile / per, ty = tile % per / p.tiles_x, tx = tile % p.tiles_x;
    Ptr sample = dst + b * p.out_rows * p.out_cols * p.out;
    for (std::size_t u = 0; u < m_; ++u)
      for (std::size_t v = 0; v < m_; ++v) {
        const std::size_t y = ty * m_ + u, xx = tx * m_ + v;
        rows[u * m_ + v] = y < p.out_rows && xx < p.out_cols ? sample + (y * p.out_cols + xx) * p.out : outside;
      }
  }

  // f(first tile, tiles) for the blocks of a pass over `batch` samples, spread over the threads.
  template <class F>
  void for_each_block(const Pass& p, std::size_t batch, F&& f) const {
    const std::size_t total = batch * p.tiles(), per = block_tiles(p.in, p.out);
    const std::size_t blocks = (total + per - 1) / per;
    ACE_OMP_FOR(blocks > 1)
    for (std::size_t blk = 0; blk < blocks; ++blk) f(blk * per, std::min(per, total - blk * per));
  }

  // dst = the pass's correlation of src with the transformed filters (+ bias).
  void correlate(const Pass& p, const std::vector<ace::cpu::detail::PackedGemmB>& filters, const float* src,
                 const float* bias, float* dst, std::size_t batch) const {
    const std::size_t A2 = alpha_ * alpha_, per = block_tiles(p.in, p.out);
    for_each_block(p, batch, [&](std::size_t first, std::size_t count) {
      float* const patches = thread_scratch<WinogradPatches, float>(A2 * per * p.in);
      float* const products = thread_scratch<WinogradProducts, float>(A2 * per * p.out + p.out);
      float* const trash = products + A2 * per * p.out;  // the outputs of tiles past the edges
      const float* in[64];
      float* out[64];
      for (std::size_t t = 0; t < count; ++t) {
        patch_rows(p, src, first + t, in);
        for (std::size_t xi = 0; xi < A2; ++xi) out[xi] = patches + (xi * per + t) * p.in;
        transforms_.input(in, out, p.in, nullptr);
      }
      for (std::size_t xi = 0; xi < A2; ++xi)
        ace::cpu::detail::ace_sgemm_packed({patches + xi * per * p.in, count, p.in, p.in}, filters[xi], 0.0f,
                                           {products + xi * per * p.out, count, p.out, p.out});
      for (std::size_t t = 0; t < count; ++t) {
        for (std::size_t xi = 0; xi < A2; ++xi) in[xi] = products + (xi * per + t) * p.out;
        tile_rows(p, first + t, dst, trash, out);
        transforms_.output(in, out, p.out, bias);
      }
    });
  }

  // dw += the adjoint of the forward's dependence on the filters: dV = Σ_tiles Uᵀ dM per transform position, with
  // U the input patches' transforms and dM = A dY Aᵀ, then dw = Gᵀ dV G.
  void filter_gradient(const float* x, const float* dy, float* dw, std::size_t batch) {
    const Pass p = forward_pass();
    const std::size_t A2 = alpha_ * alpha_, Cin = p.in, C = p.out, per = block_tiles(Cin, C);
    const std::size_t total = batch * p.tiles(), blocks = (total + per - 1) / per;
    const std::size_t groups = std::min<std::size_t>(blocks, max_groups), slot = A2 * Cin * C;
    partial_.resize(groups * slot);
    float* const parts = partial_.data();
    ACE_OMP_FOR(groups > 1)
    for (std::size_t grp = 0; grp < groups; ++grp) {
      float* const acc = parts + grp * slot;
      std::fill(acc, acc + slot, 0.0f);
      float* const patches = thread_scratch<WinogradPatches, float>(A2 * per * Cin);
      float* const grads = thread_scratch<WinogradProducts, float>(A2 * per * C + C);
      const float* in[64];
      float* out[64];
      for (std::size_t blk = blocks * grp / groups; blk < blocks * (grp + 1) / groups; ++blk) {
        const std::size_t first = blk * per, count = std::min(per, total - first);
        for (std::size_t t = 0; t < count; ++t) {
          patch_rows(p, x, first + t, in);
          for (std::size_t xi = 0; xi < A2; ++xi) out[xi] = patches + (xi * per + t) * Cin;
          transforms_.input(in, out, Cin, nullptr);
          tile_rows(p, first + t, dy, static_cast<const float*>(zeros_.data()), in);
          for (std::size_t xi = 0; xi < A2; ++xi) out[xi] = grads + (xi * per + t) * C;
          transforms_.output_adjoint(in, out, C, nullptr);
        }
        for (std::size_t xi = 0; xi < A2; ++xi)
          ace::cpu::detail::ace_sgemm(Transpose::yes, Transpose::no, 1.0f, {patches + xi * per * Cin, count, Cin, Cin},
                                      {grads + xi * per * C, count, C, C}, 1.0f, {acc + xi * Cin * C, Cin, C, C});
      }
    }
    // dV = the groups' slots in order (into the first), then dw += Gᵀ dV G per channel pair.
    ACE_OMP_FOR(slot * groups > (std::size_t{1} << 15))
    for (std::size_t c0 = 0; c0 < slot; c0 += 1024)
      for (std::size_t grp = 1; grp < groups; ++grp)
        for (std::size_t i = c0; i < std::min(slot, c0 + 1024); ++i) parts[i] += parts[grp * slot + i];
    const std::size_t r = g_.kernel, A = alpha_;
    ACE_OMP_FOR(C * Cin * A * A * r > (std::size_t{1} << 15))
    for (std::size_t o = 0; o < C; ++o) {
      const auto gt = [this](std::size_t k, std::size_t i) { return w_.g[i * g_.kernel + k]; };  // Gᵀ
      double dv[8 * 8], grad[5 * 5];
      for (std::size_t c = 0; c < Cin; ++c) {
        for (std::size_t xi = 0; xi < A * A; ++xi) dv[xi] = double(parts[(xi * Cin + c) * C + o]);
        congruence(gt, r, A, dv, grad);  // Gᵀ dV G
        for (std::size_t k = 0; k < r * r; ++k) dw[(o * r * r + k) * Cin + c] += static_cast<float>(grad[k]);
      }
    }
  }

  // y = M x Mᵀ in double for the rows x cols matrix M (entries m(i, k)) and the cols x cols matrix x (row-major,
  // cols <= 8): M x first, then (M x) Mᵀ, each sum in index order.
  template <class Entry>
  static void congruence(Entry m, std::size_t rows, std::size_t cols, const double* x, double* y) {
    double t[8 * 8];
    for (std::size_t i = 0; i < rows; ++i)
      for (std::size_t b = 0; b < cols; ++b) {
        double s = 0;
        for (std::size_t a = 0; a < cols; ++a) s += m(i, a) * x[a * cols + b];
        t[i * cols + b] = s;
      }
    for (std::size_t i = 0; i < rows; ++i)
      for (std::size_t j = 0; j < rows; ++j) {
        double s = 0;
        for (std::size_t b = 0; b < cols; ++b) s += t[i * cols + b] * m(j, b);
        y[i * rows + j] = s;
      }
  }

  static constexpr std::size_t max_groups = 16;  // slots of the filter gradient: at most 16 threads share its work

  ConvGeometry g_;
  WinogradMatrices w_{2, 3};
  std::size_t m_ = 0, alpha_ = 0;
  detail::WinogradTransforms transforms_;
  std::vector<float> zeros_, source_, forward_filters_, backward_filters_, partial_;
  std::vector<ace::cpu::detail::PackedGemmB> forward_packed_, backward_packed_;  // per transform position
};

#endif  // ACE_HAS_X86_KERNELS

}  // namespace cpu
}  // namespace ace
