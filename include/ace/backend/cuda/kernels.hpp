// SPDX-License-Identifier: MIT
// The CUDA backend's kernels as index functors: each is a plain struct of views and sizes whose operator()(i)
// computes the outputs owned by index i (an entry, a row, a column, a field, an edge, a node). No two indices write
// the same entry, so results do not depend on how the indices are scheduled, and every reduction runs in a fixed
// order (deterministic, like the Reference backend it is tested against). Device code launches them over a grid
// (src/cuda/kernels.cu); the host emulation used by the tests runs the same functors in a loop
// (tests/backend/kernel_emulation.hpp), so the index arithmetic of every kernel is checked on any machine.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "ace/backend/geometry.hpp"
#include "ace/backend/ops.hpp"
#include "ace/error.hpp"
#include "ace/tensor/view.hpp"

namespace ace {
/// Where a copy of a device backend goes.
enum class Direction { to_host, from_host, on_device };
}  // namespace ace

namespace ace::kernels {

using std::size_t;
using std::uint32_t;

template <class T>
ACE_HOST_DEVICE inline T& at(MatrixRef<T> m, size_t r, size_t c) {
  return m.data[r * m.stride + c];
}
template <class T>
using In = MatrixRef<const T>;
using Index = MatrixRef<const uint32_t>;

/// Bits of the index-error word: an index out of range reached an operation (checked at the next host read).
enum IndexError : uint32_t { gather_index = 1u, scatter_index = 2u, label_index = 4u };

/// The message for a nonzero index-error word.
inline std::string index_error_message(const char* who, uint32_t word) {
  return ::ace::detail::concat(who, ": an index out of range reached ", (word & gather_index) ? "gather_rows " : "",
                               (word & scatter_index) ? "scatter_add_rows " : "",
                               (word & label_index) ? "softmax_cross_entropy (a label) " : "",
                               "(skipped there; reported at the next read to the host)");
}

// ---- entrywise over a rows x cols view ---------------------------------------------------------------------------

template <class T>
struct Fill {
  MatrixRef<T> y;
  T value;
  ACE_HOST_DEVICE void operator()(size_t i) const { at(y, i / y.cols, i % y.cols) = value; }
};
/// y += alpha x (alpha a value), or y += s[0] x / y = s[0] x (s one entry of device memory).
template <class T>
struct Axpy {
  In<T> x;
  MatrixRef<T> y;
  T alpha;
  const T* s;  // when set, the scale is s[0] and alpha is ignored
  bool overwrite;
  ACE_HOST_DEVICE void operator()(size_t i) const {
    const size_t r = i / y.cols, c = i % y.cols;
    const T a = s ? s[0] : alpha;
    at(y, r, c) = overwrite ? a * at(x, r, c) : at(y, r, c) + a * at(x, r, c);
  }
};
template <class T>
struct Scale {
  MatrixRef<T> x;
  T alpha;
  ACE_HOST_DEVICE void operator()(size_t i) const { at(x, i / x.cols, i % x.cols) *= alpha; }
};
template <class T>
struct Add {
  In<T> a, b;
  MatrixRef<T> c;
  ACE_HOST_DEVICE void operator()(size_t i) const {
    const size_t r = i / c.cols, k = i % c.cols;
    at(c, r, k) = at(a, r, k) + at(b, r, k);
  }
};
template <class Op, class T>
struct Map {
  In<T> x;
  MatrixRef<T> y;
  ACE_HOST_DEVICE void operator()(size_t i) const {
    const size_t r = i / y.cols, c = i % y.cols;
    at(y, r, c) = Op::f(at(x, r, c));
  }
};
template <class Op, class T>
struct MapBackward {
  In<T> x, y, dy;
  MatrixRef<T> dx;
  ACE_HOST_DEVICE void operator()(size_t i) const {
    const size_t r = i / dx.cols, c = i % dx.cols;
    at(dx, r, c) = Op::df(at(x, r, c), at(y, r, c)) * at(dy, r, c);
  }
};

// ---- reductions: partial sums over a fixed stride, then one final pass ------------------------------------------

enum class Reduction { sum, dot, max_abs, max };

/// part[p] = the sum (or max) over entries i = p, p + parts, ... of x (x y for dot; |x| for max_abs), in double
/// (every partial covers at least one entry: parts <= n).
template <class T>
struct ReducePartials {
  In<T> x, y;
  double* part;
  size_t parts;
  Reduction kind;
  ACE_HOST_DEVICE void operator()(size_t p) const {
    const size_t n = x.rows * x.cols;
    double s = kind == Reduction::max ? -HUGE_VAL : 0.0;
    for (size_t i = p; i < n; i += parts) {
      const double v = static_cast<double>(at(x, i / x.cols, i % x.cols));
      if (kind == Reduction::sum) s += v;
      else if (kind == Reduction::dot) s += v * static_cast<double>(at(y, i / x.cols, i % x.cols));
      else if (kind == Reduction::max) s = v > s ? v : s;
      else s = (v < 0.0 ? -v : v) > s ? (v < 0.0 ? -v : v) : s;
    }
    part[p] = s;
  }
};
/// out[0] = the sum (or max) of part[0..parts); with `into`, into[0] += T(out) as well; with `fold`, fold[0] becomes
/// max(fold[0], out) or fold[0] + out (reduce_into).
template <class T>
struct ReduceFinal {
  const double* part;
  size_t parts;
  bool max;
  double* out;
  T* into;
  double* fold = nullptr;
  ACE_HOST_DEVICE void operator()(size_t) const {
    double s = max ? -HUGE_VAL : 0.0;
    for (size_t p = 0; p < parts; ++p) s = max ? (part[p] > s ? part[p] : s) : s + part[p];
    out[0] = s;
    if (into) into[0] += static_cast<T>(s);
    if (fold) fold[0] = max ? (s > fold[0] ? s : fold[0]) : fold[0] + s;
  }
};
/// x *= T(max_norm / norm) with norm = sqrt(sum_squares[0]), when norm > max_norm (one entry per index).
template <class T>
struct ScaleToNorm {
  const double* sum_squares;
  double max_norm;
  MatrixRef<T> x;
  ACE_HOST_DEVICE void operator()(size_t i) const {
    const double norm = std::sqrt(sum_squares[0]);
    if (norm > max_norm) at(x, i / x.cols, i % x.cols) *= static_cast<T>(max_norm / norm);
  }
};

// ---- dense layers ------------------------------------------------------------------------------------------------

template <class T>
struct AddRow {
  MatrixRef<T> c;
  In<T> v;
  ACE_HOST_DEVICE void operator()(size_t i) const { at(c, i / c.cols, i % c.cols) += v.data[i % c.cols]; }
};
/// One column j: v[j] = beta v[j] + Σ_r a[r, j].
template <class T>
struct SumRows {
  In<T> a;
  T beta;
  MatrixRef<T> v;
  ACE_HOST_DEVICE void operator()(size_t j) const {
    T s = T(0);
    for (size_t r = 0; r < a.rows; ++r) s += at(a, r, j);
    v.data[j] = beta == T(0) ? s : beta * v.data[j] + s;
  }
};
/// part[b, j] = Σ of column j over rows [b block, (b + 1) block) of a (the first pass of a tall column sum).
template <class T>
struct SumRowBlocks {
  In<T> a;
  size_t block;
  MatrixRef<T> part;
  ACE_HOST_DEVICE void operator()(size_t i) const {
    const size_t b = i / a.cols, j = i % a.cols, end = (b + 1) * block < a.rows ? (b + 1) * block : a.rows;
    T s = T(0);
    for (size_t r = b * block; r < end; ++r) s += at(a, r, j);
    at(part, b, j) = s;
  }
};
template <class T>
struct RowDot {
  In<T> a, b;
  MatrixRef<T> out;
  ACE_HOST_DEVICE void operator()(size_t r) const {
    T s = T(0);
    for (size_t k = 0; k < a.cols; ++k) s += at(a, r, k) * at(b, r, k);
    at(out, r, 0) = s;
  }
};

// ---- sparse maps and rows by index -------------------------------------------------------------------------------

/// Output entry (r, j) of y = x S (S stored by output column: first, index, weight).
template <class T>
struct SparseMap {
  Index first, index;
  In<T> weight, x;
  MatrixRef<T> y;
  ACE_HOST_DEVICE void operator()(size_t i) const {
    const size_t r = i / y.cols, j = i % y.cols;
    T s = T(0);
    for (uint32_t e = first.data[j]; e < first.data[j + 1]; ++e) s += weight.data[e] * at(x, r, index.data[e]);
    at(y, r, j) = s;
  }
};
/// Row r of dx += dy S^T (one index per row: the scatter over the columns of a row stays in one thread).
template <class T>
struct SparseMapAdjoint {
  Index first, index;
  In<T> weight, dy;
  MatrixRef<T> dx;
  ACE_HOST_DEVICE void operator()(size_t r) const {
    for (size_t j = 0; j < dy.cols; ++j)
      for (uint32_t e = first.data[j]; e < first.data[j + 1]; ++e) at(dx, r, index.data[e]) += weight.data[e] * at(dy, r, j);
  }
};
template <class T>
struct GatherRows {
  In<T> src;
  Index index;
  MatrixRef<T> dst;
  uint32_t* error;
  ACE_HOST_DEVICE void operator()(size_t i) const {
    const size_t e = i / dst.cols, c = i % dst.cols, k = index.data[e];
    if (k >= src.rows) {
      *error |= gather_index;
      return;
    }
    at(dst, e, c) = at(src, k, c);
  }
};
/// Column c of dst[index[e], :] += src[e, :], over the rows e in order.
template <class T>
struct ScatterAddRows {
  In<T> src;
  Index index;
  MatrixRef<T> dst;
  uint32_t* error;
  ACE_HOST_DEVICE void operator()(size_t c) const {
    for (size_t e = 0; e < src.rows; ++e) {
      const size_t k = index.data[e];
      if (k >= dst.rows) {
        *error |= scatter_index;
        continue;
      }
      at(dst, k, c) += at(src, e, c);
    }
  }
};

// ---- segment reductions ------------------------------------------------------------------------------------------

template <class T>
struct SegmentReduce {
  In<T> x;
  size_t segment;
  Reduce kind;
  MatrixRef<T> y;
  MatrixRef<uint32_t> argmax;
  ACE_HOST_DEVICE void operator()(size_t i) const {
    const size_t b = i / y.cols, j = i % y.cols;
    T acc = at(x, b * segment, j);
    uint32_t arg = 0;
    for (size_t k = 1; k < segment; ++k) {
      const T v = at(x, b * segment + k, j);
      if (kind != Reduce::max) acc += v;
      else if (v > acc) {
        acc = v;
        arg = static_cast<uint32_t>(k);
      }
    }
    at(y, b, j) = kind == Reduce::mean ? acc * (T(1) / static_cast<T>(segment)) : acc;
    if (kind == Reduce::max) at(argmax, b, j) = arg;
  }
};
template <class T>
struct SegmentReduceBackward {
  In<T> dy;
  size_t segment;
  Reduce kind;
  Index argmax;
  MatrixRef<T> dx;
  ACE_HOST_DEVICE void operator()(size_t i) const {
    const size_t b = i / dy.cols, j = i % dy.cols;
    if (kind == Reduce::max) {
      at(dx, b * segment + at(argmax, b, j), j) += at(dy, b, j);
      return;
    }
    const T scale = kind == Reduce::mean ? T(1) / static_cast<T>(segment) : T(1);
    for (size_t k = 0; k < segment; ++k) at(dx, b * segment + k, j) += scale * at(dy, b, j);
  }
};

// ---- pair features -----------------------------------------------------------------------------------------------

/// Entry (b, (i n + j) f + c) of y = the transpose of x over (i, j).
template <class T>
struct PairTranspose {
  In<T> x;
  size_t n, f;
  MatrixRef<T> y;
  bool accumulate;
  ACE_HOST_DEVICE void operator()(size_t t) const {
    const size_t b = t / y.cols, k = t % y.cols, c = k % f, ij = k / f, i = ij / n, j = ij % n;
    const T v = at(x, b, (j * n + i) * f + c);
    T& out = at(y, b, k);
    out = accumulate ? out + v : v;
  }
};
/// Channel c of sample b.
template <class T>
struct PairPool {
  In<T> x;
  size_t n, f;
  bool mean;
  MatrixRef<T> v, s;
  ACE_HOST_DEVICE void operator()(size_t t) const {
    const size_t b = t / f, c = t % f;
    const T inv_n = T(1) / static_cast<T>(n), inv_nn = T(1) / static_cast<T>(n * n);
    T trace = T(0), total = T(0);
    for (size_t i = 0; i < n; ++i) {
      T row = T(0), col = T(0);
      for (size_t j = 0; j < n; ++j) {
        row += at(x, b, (i * n + j) * f + c);
        col += at(x, b, (j * n + i) * f + c);
      }
      const T diag = at(x, b, (i * n + i) * f + c);
      at(v, b * n + i, c) = diag;
      at(v, b * n + i, f + c) = mean ? row * inv_n : row;
      at(v, b * n + i, 2 * f + c) = mean ? col * inv_n : col;
      trace += diag;
      total += row;
    }
    at(s, b, c) = mean ? trace * inv_n : trace;
    at(s, b, f + c) = mean ? total * inv_nn : total;
  }
};
template <class T>
struct PairBroadcast {
  In<T> u, q;
  size_t n, f;
  T ka, kb, kc;
  MatrixRef<T> y;
  ACE_HOST_DEVICE void operator()(size_t t) const {
    const size_t b = t / y.cols, k = t % y.cols, o = k % f, ij = k / f, i = ij / n, j = ij % n;
    T& out = at(y, b, k);
    out += ka * (at(u, b * n + i, f + o) + at(u, b * n + j, 2 * f + o)) + kb * at(q, b, f + o);
    if (i == j) out += at(u, b * n + i, o) + kc * at(q, b, o);
  }
};

// ---- fields ------------------------------------------------------------------------------------------------------

/// Field f of row b.
template <class Op, class T>
struct NormNonlinearity {
  In<T> x;
  Index offsets;
  In<T> bias;
  T eps;
  MatrixRef<T> norm, y;
  ACE_HOST_DEVICE void operator()(size_t t) const {
    const size_t fields = offsets.cols - 1, b = t / fields, f = t % fields;
    T sq = eps;
    for (uint32_t i = offsets.data[f]; i < offsets.data[f + 1]; ++i) sq += at(x, b, i) * at(x, b, i);
    const T n = std::sqrt(sq);
    at(norm, b, f) = n;
    const T scale = Op::f(n + bias.data[f]) / n;
    for (uint32_t i = offsets.data[f]; i < offsets.data[f + 1]; ++i) at(y, b, i) = scale * at(x, b, i);
  }
};
template <class Op, class T>
struct NormNonlinearityBackward {
  In<T> x;
  Index offsets;
  In<T> bias, norm, dy;
  MatrixRef<T> dx, dbias;
  ACE_HOST_DEVICE void operator()(size_t t) const {
    const size_t fields = offsets.cols - 1, b = t / fields, f = t % fields;
    const T n = at(norm, b, f), phi = Op::f(n + bias.data[f]), dphi = Op::df(n + bias.data[f], phi);
    T dot = T(0);
    for (uint32_t i = offsets.data[f]; i < offsets.data[f + 1]; ++i) dot += at(x, b, i) * at(dy, b, i);
    const T radial = (dphi * n - phi) / (n * n * n) * dot;
    for (uint32_t i = offsets.data[f]; i < offsets.data[f + 1]; ++i)
      at(dx, b, i) = phi / n * at(dy, b, i) + radial * at(x, b, i);
    at(dbias, b, f) = dphi / n * dot;
  }
};
template <class T>
struct GateFields {
  In<T> x;
  Index offsets;
  MatrixRef<T> gate, y;
  ACE_HOST_DEVICE void operator()(size_t t) const {
    const size_t fields = offsets.cols - 1, b = t / fields, f = t % fields;
    const T s = SigmoidOp::f(at(x, b, f));
    at(gate, b, f) = s;
    for (uint32_t i = offsets.data[f]; i < offsets.data[f + 1]; ++i) at(y, b, i) = s * at(x, b, fields + i);
  }
};
template <class T>
struct GateFieldsBackward {
  In<T> x;
  Index offsets;
  In<T> gate, dy;
  MatrixRef<T> dx;
  ACE_HOST_DEVICE void operator()(size_t t) const {
    const size_t fields = offsets.cols - 1, b = t / fields, f = t % fields;
    const T s = at(gate, b, f);
    T dot = T(0);
    for (uint32_t i = offsets.data[f]; i < offsets.data[f + 1]; ++i) {
      dot += at(x, b, fields + i) * at(dy, b, i);
      at(dx, b, fields + i) = s * at(dy, b, i);
    }
    at(dx, b, f) = SigmoidOp::df(at(x, b, f), s) * dot;
  }
};

// ---- batch norm (x contiguous, [outer, channels, inner]) ---------------------------------------------------------

/// Field f: (with `training`) its mean and biased variance over its entries in double, two passes in memory order,
/// and the running statistics' update; then mean[f] and inv_std[f] from the batch or the running statistics.
template <class T>
struct BatchNormStatistics {
  const T* x;
  FieldLayout l;
  Index field_of;
  bool training;
  double momentum, eps;
  double *running_mean, *running_var;
  T *mean, *inv_std;
  ACE_HOST_DEVICE void operator()(size_t f) const {
    double m = running_mean[f], var = running_var[f];
    if (training) {
      double sum = 0.0, sq = 0.0, count = 0.0;
      for (size_t o = 0; o < l.outer; ++o)
        for (size_t c = 0; c < l.channels; ++c)
          if (field_of.data[c] == f)
            for (size_t k = 0; k < l.inner; ++k) {
              sum += static_cast<double>(x[(o * l.channels + c) * l.inner + k]);
              count += 1.0;
            }
      m = sum / count;
      for (size_t o = 0; o < l.outer; ++o)
        for (size_t c = 0; c < l.channels; ++c)
          if (field_of.data[c] == f)
            for (size_t k = 0; k < l.inner; ++k) {
              const double d = static_cast<double>(x[(o * l.channels + c) * l.inner + k]) - m;
              sq += d * d;
            }
      var = sq / count;
      running_mean[f] = (1.0 - momentum) * running_mean[f] + momentum * m;
      running_var[f] = (1.0 - momentum) * running_var[f] + momentum * var * count / (count - 1.0);
    }
    mean[f] = static_cast<T>(m);
    inv_std[f] = static_cast<T>(1.0 / std::sqrt(var + eps));
  }
};
template <class T>
struct BatchNormForward {
  const T* x;
  FieldLayout l;
  Index field_of;
  const T *mean, *inv_std, *weight, *bias;
  T *xhat, *y;
  ACE_HOST_DEVICE void operator()(size_t i) const {
    const size_t f = field_of.data[(i / l.inner) % l.channels];
    const T h = (x[i] - mean[f]) * inv_std[f];
    xhat[i] = h;
    y[i] = weight[f] * h + bias[f];
  }
};
/// Field f: Σ dy and Σ dy xhat in double; dweight, dbias accumulate them; coef[3f..3f+2] = (weight inv_std,
/// mean dy, mean dy xhat) for the input gradient.
template <class T>
struct BatchNormBackwardStatistics {
  const T *dy, *xhat;
  FieldLayout l;
  Index field_of;
  const T *weight, *inv_std;
  T *dweight, *dbias, *coef;
  ACE_HOST_DEVICE void operator()(size_t f) const {
    double sum_dy = 0.0, sum_dy_xhat = 0.0, count = 0.0;
    for (size_t o = 0; o < l.outer; ++o)
      for (size_t c = 0; c < l.channels; ++c)
        if (field_of.data[c] == f)
          for (size_t k = 0; k < l.inner; ++k) {
            const size_t i = (o * l.channels + c) * l.inner + k;
            sum_dy += static_cast<double>(dy[i]);
            sum_dy_xhat += static_cast<double>(dy[i]) * static_cast<double>(xhat[i]);
            count += 1.0;
          }
    dweight[f] += static_cast<T>(sum_dy_xhat);
    dbias[f] += static_cast<T>(sum_dy);
    coef[3 * f] = weight[f] * inv_std[f];
    coef[3 * f + 1] = static_cast<T>(sum_dy / count);
    coef[3 * f + 2] = static_cast<T>(sum_dy_xhat / count);
  }
};
template <class T>
struct BatchNormBackwardInput {
  const T *dy, *xhat;
  FieldLayout l;
  Index field_of;
  const T* coef;
  bool batch_stats;
  T* dx;
  ACE_HOST_DEVICE void operator()(size_t i) const {
    const size_t f = field_of.data[(i / l.inner) % l.channels];
    const T scale = coef[3 * f];
    dx[i] = batch_stats ? scale * (dy[i] - coef[3 * f + 1] - xhat[i] * coef[3 * f + 2]) : scale * dy[i];
  }
};

// ---- images ------------------------------------------------------------------------------------------------------

/// The sizes of a convolution as plain numbers (ConvGeometry's derived sizes, computed once on the host).
struct ConvSizes {
  size_t in_channels, out_channels, rows, cols, kernel, stride, padding, out_rows, out_cols;
  Layout layout;
  static ConvSizes of(const ConvGeometry& g) {
    return {g.in_channels, g.out_channels, g.rows, g.cols, g.kernel, g.stride, g.padding, g.out_rows(), g.out_cols(),
            g.layout};
  }
  ACE_HOST_DEVICE size_t in_pixels() const { return rows * cols; }
  ACE_HOST_DEVICE size_t out_pixels() const { return out_rows * out_cols; }
  ACE_HOST_DEVICE size_t in_dim() const { return in_channels * rows * cols; }
  ACE_HOST_DEVICE size_t out_dim() const { return out_channels * out_rows * out_cols; }
  ACE_HOST_DEVICE size_t patch() const { return kernel * kernel * in_channels; }
  // (channel, pixel) of the k-th entry of a batch row of `channels` x `pixels`.
  ACE_HOST_DEVICE void split(size_t k, size_t channels, size_t pixels, size_t& c, size_t& p) const {
    if (layout == Layout::channels_first) {
      c = k / pixels;
      p = k % pixels;
    } else {
      c = k % channels;
      p = k / channels;
    }
  }
  ACE_HOST_DEVICE size_t offset(size_t c, size_t p, size_t channels, size_t pixels) const {
    return layout == Layout::channels_first ? c * pixels + p : p * channels + c;
  }
};

/// Output entry (b, o, p): bias[o] + Σ over the taps inside the image and the input channels.
template <class T>
struct Conv2dForward {
  ConvSizes g;
  In<T> x, w, bias;
  MatrixRef<T> y;
  ACE_HOST_DEVICE void operator()(size_t t) const {
    const size_t b = t / y.cols;
    size_t o = 0, p = 0;
    g.split(t % y.cols, g.out_channels, g.out_pixels(), o, p);
    const size_t oy = p / g.out_cols, ox = p % g.out_cols;
    T s = bias.rows == 0 || bias.cols == 0 ? T(0) : bias.data[o];
    for (size_t ky = 0; ky < g.kernel; ++ky)
      for (size_t kx = 0; kx < g.kernel; ++kx) {
        const size_t iy = oy * g.stride + ky, ix = ox * g.stride + kx;  // padded coordinates
        if (iy < g.padding || ix < g.padding || iy - g.padding >= g.rows || ix - g.padding >= g.cols) continue;
        const size_t q = (iy - g.padding) * g.cols + (ix - g.padding), tap = ky * g.kernel + kx;
        for (size_t c = 0; c < g.in_channels; ++c)
          s += at(w, o, tap * g.in_channels + c) * at(x, b, g.offset(c, q, g.in_channels, g.in_pixels()));
      }
    at(y, b, t % y.cols) = s;
  }
};
/// Input entry (b, c, q) of dx: Σ over the outputs whose window covers q.
template <class T>
struct Conv2dBackwardInput {
  ConvSizes g;
  In<T> w, dy;
  MatrixRef<T> dx;
  ACE_HOST_DEVICE void operator()(size_t t) const {
    const size_t b = t / dx.cols;
    size_t c = 0, q = 0;
    g.split(t % dx.cols, g.in_channels, g.in_pixels(), c, q);
    const size_t iy = q / g.cols + g.padding, ix = q % g.cols + g.padding;  // padded coordinates
    T s = T(0);
    for (size_t ky = 0; ky < g.kernel && ky <= iy; ++ky) {
      if ((iy - ky) % g.stride != 0 || (iy - ky) / g.stride >= g.out_rows) continue;
      for (size_t kx = 0; kx < g.kernel && kx <= ix; ++kx) {
        if ((ix - kx) % g.stride != 0 || (ix - kx) / g.stride >= g.out_cols) continue;
        const size_t p = (iy - ky) / g.stride * g.out_cols + (ix - kx) / g.stride, tap = ky * g.kernel + kx;
        for (size_t o = 0; o < g.out_channels; ++o)
          s += at(dy, b, g.offset(o, p, g.out_channels, g.out_pixels())) * at(w, o, tap * g.in_channels + c);
      }
    }
    at(dx, b, t % dx.cols) = s;
  }
};
/// Filter entry (o, tap, c) of dw += Σ over the batch and the output pixels whose tap falls inside the image.
template <class T>
struct Conv2dBackwardFilter {
  ConvSizes g;
  In<T> x, dy;
  MatrixRef<T> dw;
  ACE_HOST_DEVICE void operator()(size_t t) const {
    const size_t o = t / g.patch(), k = t % g.patch(), tap = k / g.in_channels, c = k % g.in_channels;
    const size_t ky = tap / g.kernel, kx = tap % g.kernel;
    T s = T(0);
    for (size_t b = 0; b < x.rows; ++b)
      for (size_t p = 0; p < g.out_pixels(); ++p) {
        const size_t iy = p / g.out_cols * g.stride + ky, ix = p % g.out_cols * g.stride + kx;
        if (iy < g.padding || ix < g.padding || iy - g.padding >= g.rows || ix - g.padding >= g.cols) continue;
        const size_t q = (iy - g.padding) * g.cols + (ix - g.padding);
        s += at(dy, b, g.offset(o, p, g.out_channels, g.out_pixels())) *
             at(x, b, g.offset(c, q, g.in_channels, g.in_pixels()));
      }
    at(dw, o, k) += s;
  }
};
/// y[b, offset(o, p)] += bias[o] (after a library convolution; one entry per index).
template <class T>
struct ConvBias {
  ConvSizes g;
  In<T> bias;
  MatrixRef<T> y;
  ACE_HOST_DEVICE void operator()(size_t i) const {
    const size_t dim = g.out_channels * g.out_pixels(), b = i / dim, k = i % dim;
    const size_t o = g.layout == Layout::channels_first ? k / g.out_pixels() : k % g.out_channels;
    at(y, b, k) += bias.data[o];
  }
};
template <class T>
struct Conv2dBackwardBias {
  ConvSizes g;
  In<T> dy;
  MatrixRef<T> dbias;
  ACE_HOST_DEVICE void operator()(size_t o) const {
    T s = T(0);
    for (size_t b = 0; b < dy.rows; ++b)
      for (size_t p = 0; p < g.out_pixels(); ++p) s += at(dy, b, g.offset(o, p, g.out_channels, g.out_pixels()));
    dbias.data[o] += s;
  }
};

/// The sizes of a pooling as plain numbers.
struct PoolSizes {
  size_t channels, rows, cols, win_rows, win_cols;
  Layout layout;
  static PoolSizes of(const PoolGeometry& g) { return {g.channels, g.rows, g.cols, g.win_rows, g.win_cols, g.layout}; }
  // Output entry k of a batch row: its channel, and the input offset of window entry (r, s).
  ACE_HOST_DEVICE size_t input(size_t k, size_t r, size_t s) const {
    const size_t out_rows = rows / win_rows, out_cols = cols / win_cols, out_pixels = out_rows * out_cols;
    const size_t c = layout == Layout::channels_first ? k / out_pixels : k % channels;
    const size_t p = layout == Layout::channels_first ? k % out_pixels : k / channels;
    const size_t pixel = (p / out_cols * win_rows + r) * cols + p % out_cols * win_cols + s;
    return layout == Layout::channels_first ? c * rows * cols + pixel : pixel * channels + c;
  }
};
/// Output entry (b, k): the window's sum, mean or max (argmax: the winning input offset, the first on ties).
template <class T>
struct Pool2dForward {
  PoolSizes g;
  Reduce kind;
  In<T> x;
  MatrixRef<T> y;
  MatrixRef<uint32_t> argmax;
  ACE_HOST_DEVICE void operator()(size_t t) const {
    const size_t b = t / y.cols, k = t % y.cols;
    size_t first = g.input(k, 0, 0);
    T acc = at(x, b, first);
    uint32_t arg = static_cast<uint32_t>(first);
    for (size_t i = 1; i < g.win_rows * g.win_cols; ++i) {
      const size_t in = g.input(k, i / g.win_cols, i % g.win_cols);
      const T v = at(x, b, in);
      if (kind != Reduce::max) acc += v;
      else if (v > acc) {
        acc = v;
        arg = static_cast<uint32_t>(in);
      }
    }
    at(y, b, k) = kind == Reduce::mean ? acc / static_cast<T>(g.win_rows * g.win_cols) : acc;
    if (kind == Reduce::max) at(argmax, b, k) = arg;
  }
};
/// Output entry (b, k) spreads its gradient over its window (windows do not overlap; dx zeroed before).
template <class T>
struct Pool2dBackward {
  PoolSizes g;
  Reduce kind;
  In<T> dy;
  Index argmax;
  MatrixRef<T> dx;
  ACE_HOST_DEVICE void operator()(size_t t) const {
    const size_t b = t / dy.cols, k = t % dy.cols, count = g.win_rows * g.win_cols;
    if (kind == Reduce::max) {
      at(dx, b, at(argmax, b, k)) += at(dy, b, k);
      return;
    }
    const T scale = kind == Reduce::mean ? T(1) / static_cast<T>(count) : T(1);
    for (size_t i = 0; i < count; ++i) at(dx, b, g.input(k, i / g.win_cols, i % g.win_cols)) += scale * at(dy, b, k);
  }
};

// ---- vectors in R^3: index (p, c) of a [3P, C] array -------------------------------------------------------------

template <class T>
struct VectorNorms {
  In<T> x;
  T eps;
  MatrixRef<T> n;
  ACE_HOST_DEVICE void operator()(size_t t) const {
    const size_t p = t / x.cols, c = t % x.cols;
    T sq = T(0);
    for (size_t k = 0; k < 3; ++k) sq += at(x, 3 * p + k, c) * at(x, 3 * p + k, c);
    at(n, p, c) = std::sqrt(sq) + eps;
  }
};
template <class T>
struct VectorRescale {
  In<T> x, n, m;
  MatrixRef<T> y;
  ACE_HOST_DEVICE void operator()(size_t t) const {
    const size_t p = t / x.cols, c = t % x.cols;
    const T s = at(m, p, c) / at(n, p, c);
    for (size_t k = 0; k < 3; ++k) at(y, 3 * p + k, c) = at(x, 3 * p + k, c) * s;
  }
};
template <class T>
struct VectorRescaleBackward {
  In<T> x, n, m, dy;
  MatrixRef<T> dm, dn;
  ACE_HOST_DEVICE void operator()(size_t t) const {
    const size_t p = t / x.cols, c = t % x.cols;
    T g = T(0);
    for (size_t k = 0; k < 3; ++k) g += at(dy, 3 * p + k, c) * at(x, 3 * p + k, c);
    const T nv = at(n, p, c);
    at(dm, p, c) = g / nv;
    at(dn, p, c) = -g * at(m, p, c) / (nv * nv);
  }
};
template <class T>
struct VectorRescaleInputGrad {
  In<T> x, n, m, dy, dn;
  T eps;
  MatrixRef<T> dx;
  ACE_HOST_DEVICE void operator()(size_t t) const {
    const size_t p = t / x.cols, c = t % x.cols;
    const T nv = at(n, p, c), mv = at(m, p, c), r = nv - eps;
    for (size_t k = 0; k < 3; ++k)
      at(dx, 3 * p + k, c) = at(dy, 3 * p + k, c) * mv / nv + (r > T(0) ? at(dn, p, c) * at(x, 3 * p + k, c) / r : T(0));
  }
};
template <class T>
struct VNLeakyReLU {
  In<T> x, d;
  T slope, eps;
  MatrixRef<T> y;
  ACE_HOST_DEVICE void operator()(size_t t) const {
    const size_t p = t / x.cols, c = t % x.cols;
    T dot = T(0), dd = T(0);
    for (size_t k = 0; k < 3; ++k) {
      dot += at(x, 3 * p + k, c) * at(d, 3 * p + k, c);
      dd += at(d, 3 * p + k, c) * at(d, 3 * p + k, c);
    }
    dd += eps;
    const T a = dot < T(0) ? (T(1) - slope) * dot / dd : T(0);
    for (size_t k = 0; k < 3; ++k) at(y, 3 * p + k, c) = at(x, 3 * p + k, c) - a * at(d, 3 * p + k, c);
  }
};
template <class T>
struct VNLeakyReLUBackward {
  In<T> x, d;
  T slope, eps;
  In<T> dy;
  MatrixRef<T> dx, dd;
  ACE_HOST_DEVICE void operator()(size_t t) const {
    const size_t p = t / x.cols, c = t % x.cols;
    T dot = T(0), ddot = T(0), gd = T(0);
    for (size_t k = 0; k < 3; ++k) {
      dot += at(x, 3 * p + k, c) * at(d, 3 * p + k, c);
      ddot += at(d, 3 * p + k, c) * at(d, 3 * p + k, c);
      gd += at(dy, 3 * p + k, c) * at(d, 3 * p + k, c);
    }
    ddot += eps;
    const T s = T(1) - slope, a = dot / ddot;
    for (size_t k = 0; k < 3; ++k) {
      const T g = at(dy, 3 * p + k, c), xv = at(x, 3 * p + k, c), dv = at(d, 3 * p + k, c);
      if (dot >= T(0)) {
        at(dx, 3 * p + k, c) = g;
        at(dd, 3 * p + k, c) = T(0);
      } else {
        at(dx, 3 * p + k, c) = g - s * gd * dv / ddot;
        at(dd, 3 * p + k, c) = -s * (a * g + gd * (xv / ddot - T(2) * dot * dv / (ddot * ddot)));
      }
    }
  }
};
/// Entry (p, 3j + f) of y = <x_pj, z_pf>.
template <class T>
struct VNInvariant {
  In<T> x, z;
  MatrixRef<T> y;
  ACE_HOST_DEVICE void operator()(size_t t) const {
    const size_t p = t / y.cols, jf = t % y.cols, j = jf / 3, f = jf % 3;
    T s = T(0);
    for (size_t k = 0; k < 3; ++k) s += at(x, 3 * p + k, j) * at(z, 3 * p + k, f);
    at(y, p, jf) = s;
  }
};
/// Row 3p + k of dz and dx.
template <class T>
struct VNInvariantBackward {
  In<T> x, z, dy;
  MatrixRef<T> dx, dz;
  ACE_HOST_DEVICE void operator()(size_t r) const {
    const size_t p = r / 3;
    for (size_t f = 0; f < 3; ++f) {
      T s = T(0);
      for (size_t j = 0; j < x.cols; ++j) s += at(dy, p, 3 * j + f) * at(x, r, j);
      at(dz, r, f) = s;
    }
    for (size_t j = 0; j < x.cols; ++j) {
      T s = T(0);
      for (size_t f = 0; f < 3; ++f) s += at(dy, p, 3 * j + f) * at(z, r, f);
      at(dx, r, j) = s;
    }
  }
};

// ---- graphs (EGNN) -----------------------------------------------------------------------------------------------

template <class T>
ACE_HOST_DEVICE inline T clamp_to(T v, T bound) {
  return v < -bound ? -bound : (v > bound ? bound : v);
}

/// Edge row er = b edges + e.
template <class T>
struct EgnnEdgeInput {
  GraphShape gs;
  Index row, col;
  In<T> x, p, q, bias, w_radial;
  MatrixRef<T> diff, radial, z;
  ACE_HOST_DEVICE void operator()(size_t er) const {
    const size_t b = er / gs.edges, e = er % gs.edges, i = b * gs.nodes + row.data[e], j = b * gs.nodes + col.data[e];
    T r = T(0);
    for (size_t k = 0; k < x.cols; ++k) {
      const T d = at(x, i, k) - at(x, j, k);
      at(diff, er, k) = d;
      r += d * d;
    }
    at(radial, er, 0) = r;
    for (size_t c = 0; c < z.cols; ++c) at(z, er, c) = at(p, i, c) + at(q, j, c) + bias.data[c] + r * at(w_radial, c, 0);
  }
};
/// Node row r = b nodes + n.
template <class T>
struct EgnnAggregate {
  GraphShape gs;
  Index row;
  In<T> inv_degree, x, v, diff, coef, speed;
  T clamp;
  In<T> m;
  MatrixRef<T> x_out, agg;
  ACE_HOST_DEVICE void operator()(size_t r) const {
    const size_t b = r / gs.nodes, n = r % gs.nodes;
    for (size_t k = 0; k < x.cols; ++k) {
      T s = T(0);
      for (size_t e = 0; e < gs.edges; ++e)
        if (row.data[e] == n) s += clamp_to(at(diff, b * gs.edges + e, k) * at(coef, b * gs.edges + e, 0), clamp);
      at(x_out, r, k) = at(x, r, k) + inv_degree.data[n] * s + at(speed, r, 0) * at(v, r, k);
    }
    if (m.rows == 0 || m.cols == 0) return;
    for (size_t c = 0; c < m.cols; ++c) {
      T s = T(0);
      for (size_t e = 0; e < gs.edges; ++e)
        if (row.data[e] == n) s += at(m, b * gs.edges + e, c);
      at(agg, r, c) = s;
    }
  }
};
template <class T>
struct EgnnAggregateBackward {
  GraphShape gs;
  Index row;
  In<T> inv_degree, diff, coef;
  T clamp;
  In<T> dx_out, dagg;
  MatrixRef<T> dcoef, dm;
  ACE_HOST_DEVICE void operator()(size_t er) const {
    const size_t b = er / gs.edges, e = er % gs.edges, i = b * gs.nodes + row.data[e];
    T dc = T(0);
    for (size_t k = 0; k < diff.cols; ++k) {
      const T t = at(diff, er, k) * at(coef, er, 0);
      if (t >= -clamp && t <= clamp) dc += inv_degree.data[row.data[e]] * at(dx_out, i, k) * at(diff, er, k);
    }
    at(dcoef, er, 0) = dc;
    const bool none = dagg.rows == 0 || dagg.cols == 0;
    for (size_t c = 0; c < dm.cols; ++c) at(dm, er, c) = none ? T(0) : at(dagg, i, c);
  }
};
/// Node row r: dp (edges into it), dq (edges out of it) and dx = dx_out + the edges' position gradients, summed in
/// edge order.
template <class T>
struct EgnnEdgeInputBackwardNodes {
  GraphShape gs;
  Index row, col;
  In<T> inv_degree, diff, coef;
  T clamp;
  In<T> dx_out, dz, w_radial;
  MatrixRef<T> dp, dq, dx;
  ACE_HOST_DEVICE void operator()(size_t r) const {
    const size_t b = r / gs.nodes, n = r % gs.nodes;
    for (size_t c = 0; c < dz.cols; ++c) {
      T sp = T(0), sq = T(0);
      for (size_t e = 0; e < gs.edges; ++e) {
        if (row.data[e] == n) sp += at(dz, b * gs.edges + e, c);
        if (col.data[e] == n) sq += at(dz, b * gs.edges + e, c);
      }
      at(dp, r, c) = sp;
      at(dq, r, c) = sq;
    }
    for (size_t k = 0; k < diff.cols; ++k) at(dx, r, k) = at(dx_out, r, k);
    for (size_t e = 0; e < gs.edges; ++e) {
      if (row.data[e] != n && col.data[e] != n) continue;
      const size_t er = b * gs.edges + e, i = b * gs.nodes + row.data[e];
      T dr = T(0);
      for (size_t c = 0; c < dz.cols; ++c) dr += at(dz, er, c) * at(w_radial, c, 0);
      for (size_t k = 0; k < diff.cols; ++k) {
        const T d = at(diff, er, k), t = d * at(coef, er, 0);
        T g = T(2) * dr * d;
        if (t >= -clamp && t <= clamp) g += inv_degree.data[row.data[e]] * at(dx_out, i, k) * at(coef, er, 0);
        if (row.data[e] == n) at(dx, r, k) += g;
        if (col.data[e] == n) at(dx, r, k) -= g;
      }
    }
  }
};
/// Entry c of dw_radial += Σ_er dz[er, c] radial[er].
template <class T>
struct EgnnRadialGrad {
  In<T> dz, radial;
  MatrixRef<T> dw_radial;
  ACE_HOST_DEVICE void operator()(size_t c) const {
    T s = T(0);
    for (size_t er = 0; er < dz.rows; ++er) s += at(dz, er, c) * at(radial, er, 0);
    at(dw_radial, c, 0) += s;
  }
};

// ---- losses and optimisers ---------------------------------------------------------------------------------------

/// part[p] = Σ Op::value(pred - target) over entries p, p + parts, ... (in double); those entries' gradients.
template <class Op, class T>
struct ElementwiseLoss {
  In<T> pred, target;
  MatrixRef<T> grad;
  double* part;
  size_t parts;
  ACE_HOST_DEVICE void operator()(size_t p) const {
    const size_t n = pred.rows * pred.cols;
    const T scale = T(1) / static_cast<T>(n);
    double s = 0.0;
    for (size_t i = p; i < n; i += parts) {
      const size_t r = i / pred.cols, c = i % pred.cols;
      const T d = at(pred, r, c) - at(target, r, c);
      s += static_cast<double>(Op::value(d));
      at(grad, r, c) = scale * Op::derivative(d);
    }
    part[p] = s;
  }
};
/// out[0] = double(T(Σ part / count)): a mean loss as the returning form of the operation rounds it.
template <class T>
struct LossFinal {
  const double* part;
  size_t parts;
  double count;
  double* out;
  ACE_HOST_DEVICE void operator()(size_t) const {
    double s = 0.0;
    for (size_t p = 0; p < parts; ++p) s += part[p];
    out[0] = static_cast<double>(static_cast<T>(s / count));
  }
};
/// Row r: its loss into loss[r] (double), its gradient row.
template <class T>
struct SoftmaxCrossEntropy {
  In<T> logits;
  Index labels;
  MatrixRef<T> grad;
  double* loss;
  uint32_t* error;
  ACE_HOST_DEVICE void operator()(size_t r) const {
    const size_t classes = logits.cols, label = labels.data[r];
    const T batch = static_cast<T>(logits.rows);
    if (label >= classes) {
      *error |= label_index;
      loss[r] = 0.0;
      return;
    }
    T shift = at(logits, r, 0);
    for (size_t c = 1; c < classes; ++c) shift = at(logits, r, c) > shift ? at(logits, r, c) : shift;
    T total = T(0);
    for (size_t c = 0; c < classes; ++c) total += (at(grad, r, c) = std::exp(at(logits, r, c) - shift));
    loss[r] = static_cast<double>(std::log(total) + shift - at(logits, r, label));
    for (size_t c = 0; c < classes; ++c) at(grad, r, c) = at(grad, r, c) / total / batch;
    at(grad, r, label) -= T(1) / batch;
  }
};
template <class T>
struct SgdUpdate {
  T* value;
  const T* grad;
  T* momentum;
  T lr, mu, wd;
  bool use_momentum, first, nesterov;
  ACE_HOST_DEVICE void operator()(size_t i) const {
    T g = grad[i] + wd * value[i];
    if (use_momentum) {
      T& b = momentum[i];
      b = first ? g : mu * b + g;
      g = nesterov ? g + mu * b : b;
    }
    value[i] -= lr * g;
  }
};
template <class T>
struct AdamUpdate {
  T *value;
  const T* grad;
  T *m, *v;
  AdamStep step;
  const double* t;
  ACE_HOST_DEVICE void operator()(size_t i) const {
    step.apply<T>(step.corrections(t[0]), value[i], grad[i], m[i], v[i]);  // t is in device memory: read per index
  }
};

/// Up to `capacity` tensors in one launch (their descriptors travel as the kernel's arguments, ~2 KB): index i of
/// the concatenated entries belongs to the tensor k with start[k] <= i < start[k + 1].
template <size_t capacity>
ACE_HOST_DEVICE inline size_t tensor_of(const size_t (&start)[capacity + 1], size_t count, size_t i) {
  size_t k = 0;
  while (k + 1 < count && start[k + 1] <= i) ++k;
  return k;
}
template <class T>
struct AdamUpdateMany {
  static constexpr size_t capacity = 24;
  AdamTensor<T> tensors[capacity];
  size_t start[capacity + 1];
  size_t count;
  const double* t;
  ACE_HOST_DEVICE void operator()(size_t i) const {
    const size_t k = tensor_of<capacity>(start, count, i), j = i - start[k];
    const AdamTensor<T>& a = tensors[k];
    a.step.template apply<T>(a.step.corrections(t[0]), a.value[j], a.grad[j], a.m[j], a.v[j]);
  }
};
template <class T>
struct FillMany {
  static constexpr size_t capacity = 48;
  T* data[capacity];
  size_t start[capacity + 1];
  size_t count;
  T value;
  ACE_HOST_DEVICE void operator()(size_t i) const {
    const size_t k = tensor_of<capacity>(start, count, i);
    data[k][i - start[k]] = value;
  }
};

// ---- constrained optimisation ------------------------------------------------------------------------------------

/// Entry i of constraint_terms (ConstraintForm::terms).
template <class T>
struct ConstraintTerms {
  ConstraintForm form;
  In<T> gamma, slack;
  In<double> lambda;
  MatrixRef<T> gamma_grad, slack_grad;
  MatrixRef<double> s;
  ACE_HOST_DEVICE void operator()(size_t i) const {
    T unused = T(0);
    form.terms<T>(gamma.data[i], form.slack ? slack.data[i] : T(0), lambda.data[i], gamma_grad.data[i],
                  form.slack ? slack_grad.data[i] : unused, s.data[i]);
  }
};
/// Multiplier i of dual_ascent (DualStep::apply).
struct DualAscent {
  ConstraintForm form;
  DualStep step;
  const double* t;
  In<double> s;
  MatrixRef<double> lambda, m, v;
  ACE_HOST_DEVICE void operator()(size_t i) const {
    step.apply(form, t[0], s.data[i], lambda.data[i], m.data[i], v.data[i]);
  }
};

}  // namespace ace::kernels
