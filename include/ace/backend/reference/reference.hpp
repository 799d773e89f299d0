// SPDX-License-Identifier: MIT
// The Reference backend: every operation of the Backend concept as plain scalar loops, one thread, no Eigen, no
// OpenMP, no SIMD — the definition of each operation, written to be read, and the oracle every other backend is
// tested against (tests/backend/test_conformance.cpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

#include "ace/backend/checks.hpp"
#include "ace/backend/concept.hpp"
#include "ace/backend/geometry.hpp"
#include "ace/backend/o3_ops.hpp"
#include "ace/backend/ops.hpp"
#include "ace/error.hpp"
#include "ace/tensor/host_array.hpp"
#include "ace/tensor/tensor.hpp"

namespace ace {

/// The operations of the Reference backend, named after the backend Self that uses them in its error messages (the
/// Cpu backend inherits the ones whose best CPU form is the plain loop).
template <class Self>
struct ReferenceOps {
  /// Tensors live in host memory (backend_host_memory_v).
  static constexpr bool host_memory = true;

  template <class T>
  using In = std::type_identity_t<MatrixRef<const T>>;
  using Index = MatrixRef<const std::uint32_t>;
  template <class T>
  using Scalar = std::type_identity_t<T>;

  /// A convolution needs no state here: the geometry.
  template <class T>
  struct convolution {
    explicit convolution(ConvGeometry geometry = {}) : g(geometry) {}
    ConvGeometry g;
  };

 private:
  template <class T>
  static T& at(MatrixRef<T> m, std::size_t r, std::size_t c) {
    return m.data[r * m.stride + c];
  }
  static std::size_t idx(Index m, std::size_t i) { return m.data[i]; }
  static const char* who() { return Self::name; }
  // f(z column, x1 column, x2 column, entry) for every product of a tensor product's contraction (TensorProductColumns):
  // path p, copies u of x1 and v of x2, Clebsch-Gordan entry e = (i, j, k).
  template <class F>
  static void for_each_product(Index paths, Index entries, F&& f) {
    using C = TensorProductColumns;
    for (std::size_t p = 0; p < paths.rows; ++p) {
      const auto col = [&](std::uint32_t c) { return static_cast<std::size_t>(at(paths, p, c)); };
      for (std::size_t u = 0; u < col(C::mul1); ++u)
        for (std::size_t v = 0; v < col(C::mul2); ++v)
          for (std::size_t e = col(C::entry_begin); e < col(C::entry_end); ++e) {
            const std::uint32_t packed = entries.data[e];
            const std::size_t i = C::i_of(packed), j = C::j_of(packed), k = C::k_of(packed);
            f(col(C::zoff) + k * col(C::zstride) + col(C::kbase) + u * col(C::mul2) + v,
              col(C::off1) + i * col(C::mul1) + u, col(C::off2) + j * col(C::mul2) + v, e);
          }
    }
  }
  // The gated blocks of swish_gate, rows (copies, dimension): their entries must fill `width` columns and their copies
  // the `gates` gate columns. Returns the number of gates.
  static std::size_t check_gated_blocks(const char* op, Index gated, std::size_t width, std::size_t gates) {
    std::size_t copies = 0, entries = 0;
    if (gated.size() != 0) detail::check::shape(who(), op, gated, gated.rows, 2, "gated");
    for (std::size_t b = 0; b < gated.rows; ++b) {
      copies += at(gated, b, 0);
      entries += static_cast<std::size_t>(at(gated, b, 0)) * at(gated, b, 1);
    }
    ACE_THROW_IF(copies != gates || entries != width, shape_error, who(), "::", op, ": the gated blocks hold ", copies,
                 " copies in ", entries, " entries; x and y leave ", gates, " gates and ", width, " gated entries");
    return gates;
  }

 public:
  // ---- storage ----------------------------------------------------------------------------------------------------

  template <class T>
  static void to_host(In<T> src, std::span<T> dst) {
    detail::check::host_size(who(), "to_host", src, dst);
    for (std::size_t r = 0; r < src.rows; ++r)
      for (std::size_t c = 0; c < src.cols; ++c) dst[r * src.cols + c] = at(src, r, c);
  }
  template <class T>
  static void from_host(std::span<const T> src, MatrixRef<T> dst) {
    detail::check::host_size(who(), "from_host", dst, src);
    for (std::size_t r = 0; r < dst.rows; ++r)
      for (std::size_t c = 0; c < dst.cols; ++c) at(dst, r, c) = src[r * dst.cols + c];
  }
  template <class T>
  static void fill(MatrixRef<T> x, Scalar<T> value) {
    for (std::size_t r = 0; r < x.rows; ++r)
      for (std::size_t c = 0; c < x.cols; ++c) at(x, r, c) = value;
  }
  template <class T>
  static void copy(In<T> src, MatrixRef<T> dst) {
    detail::check::same_shape(who(), "copy", src, dst);
    for (std::size_t r = 0; r < src.rows; ++r)
      for (std::size_t c = 0; c < src.cols; ++c) at(dst, r, c) = at(src, r, c);
  }
  /// y += alpha x.
  template <class T>
  static void axpy(Scalar<T> alpha, In<T> x, MatrixRef<T> y) {
    detail::check::same_shape(who(), "axpy", x, y);
    for (std::size_t r = 0; r < x.rows; ++r)
      for (std::size_t c = 0; c < x.cols; ++c) at(y, r, c) += alpha * at(x, r, c);
  }
  /// x *= alpha.
  template <class T>
  static void scale(Scalar<T> alpha, MatrixRef<T> x) {
    for (std::size_t r = 0; r < x.rows; ++r)
      for (std::size_t c = 0; c < x.cols; ++c) at(x, r, c) *= alpha;
  }
  /// c = a + b (c may be a or b).
  template <class T>
  static void add(In<T> a, In<T> b, MatrixRef<T> c) {
    detail::check::same_shape(who(), "add", a, b);
    detail::check::same_shape(who(), "add", a, c);
    for (std::size_t r = 0; r < a.rows; ++r)
      for (std::size_t col = 0; col < a.cols; ++col) at(c, r, col) = at(a, r, col) + at(b, r, col);
  }
  /// Σ x, Σ x y, Σ x², max |x| (0 for an empty view), accumulated in double.
  template <class U>
  static double sum(MatrixRef<U> x) {
    double s = 0.0;
    for (std::size_t r = 0; r < x.rows; ++r)
      for (std::size_t c = 0; c < x.cols; ++c) s += static_cast<double>(at(x, r, c));
    return s;
  }
  template <class U, class V>
  static double dot(MatrixRef<U> x, MatrixRef<V> y) {
    detail::check::same_shape(who(), "dot", x, y);
    double s = 0.0;
    for (std::size_t r = 0; r < x.rows; ++r)
      for (std::size_t c = 0; c < x.cols; ++c) s += static_cast<double>(at(x, r, c)) * static_cast<double>(at(y, r, c));
    return s;
  }
  template <class U>
  static double sum_squares(MatrixRef<U> x) {
    return dot(x, x);
  }
  template <class U>
  static double max_abs(MatrixRef<U> x) {
    double m = 0.0;
    for (std::size_t r = 0; r < x.rows; ++r)
      for (std::size_t c = 0; c < x.cols; ++c) m = std::max(m, std::abs(static_cast<double>(at(x, r, c))));
    return m;
  }
  /// out(0, 0) <- out + Σ x, out + Σ x², max(out, max |x|) or max(out, max x) (Accumulate), in double; out stays in
  /// backend memory.
  template <class U>
  static void reduce_into(Accumulate kind, MatrixRef<U> x, MatrixRef<double> out) {
    detail::check::scalar(who(), "reduce_into", out);
    double& o = out.data[0];
    if (kind == Accumulate::max) {
      for (std::size_t r = 0; r < x.rows; ++r)
        for (std::size_t c = 0; c < x.cols; ++c) o = std::max(o, static_cast<double>(at(x, r, c)));
    } else if (kind == Accumulate::max_abs) {
      o = std::max(o, max_abs(x));
    } else {
      o += kind == Accumulate::sum ? sum(x) : sum_squares(x);
    }
  }
  /// x *= max_norm / sqrt(sum_squares) when sqrt(sum_squares) > max_norm (gradient clipping; sum_squares is one entry
  /// of backend memory).
  template <class T>
  static void scale_to_norm(In<double> sum_squares, double max_norm, MatrixRef<T> x) {
    detail::check::scalar(who(), "scale_to_norm", sum_squares);
    const double norm = std::sqrt(sum_squares.data[0]);
    if (norm > max_norm) scale<T>(static_cast<T>(max_norm / norm), x);
  }
  /// y += s x, with the scale s one entry of backend memory (a relaxation γ).
  template <class T>
  static void add_scaled(In<T> s, In<T> x, MatrixRef<T> y) {
    detail::check::scalar(who(), "add_scaled", s);
    axpy<T>(s.data[0], x, y);
  }
  /// y = s x, with s one entry of backend memory.
  template <class T>
  static void scaled_copy(In<T> s, In<T> x, MatrixRef<T> y) {
    detail::check::scalar(who(), "scaled_copy", s);
    detail::check::same_shape(who(), "scaled_copy", x, y);
    for (std::size_t r = 0; r < x.rows; ++r)
      for (std::size_t c = 0; c < x.cols; ++c) at(y, r, c) = s.data[0] * at(x, r, c);
  }
  /// out += Σ x y, with out one entry of backend memory (the gradient of a relaxation γ).
  template <class T>
  static void accumulate_dot(In<T> x, In<T> y, MatrixRef<T> out) {
    detail::check::scalar(who(), "accumulate_dot", out);
    detail::check::same_shape(who(), "accumulate_dot", x, y);
    T s = T(0);
    for (std::size_t r = 0; r < x.rows; ++r)
      for (std::size_t c = 0; c < x.cols; ++c) s += at(x, r, c) * at(y, r, c);
    out.data[0] += s;
  }

  // ---- dense layers -----------------------------------------------------------------------------------------------

  /// c = alpha op(a) op(b) + beta c; with beta = 0 the old contents of c are ignored (BLAS semantics).
  template <class T>
  static void gemm(Transpose ta, Transpose tb, Scalar<T> alpha, In<T> a, In<T> b, Scalar<T> beta, MatrixRef<T> c) {
    detail::check::gemm<T>(who(), ta, tb, a, b, c);
    const std::size_t k = ta == Transpose::no ? a.cols : a.rows;
    for (std::size_t i = 0; i < c.rows; ++i)
      for (std::size_t j = 0; j < c.cols; ++j) {
        T s = T(0);
        for (std::size_t l = 0; l < k; ++l)
          s += (ta == Transpose::no ? at(a, i, l) : at(a, l, i)) * (tb == Transpose::no ? at(b, l, j) : at(b, j, l));
        at(c, i, j) = beta == T(0) ? alpha * s : alpha * s + beta * at(c, i, j);
      }
  }
  /// c[i, :] += v for every row (v is [1, cols]).
  template <class T>
  static void add_row(MatrixRef<T> c, In<T> v) {
    detail::check::row_vector(who(), "add_row", v, c.cols);
    for (std::size_t r = 0; r < c.rows; ++r)
      for (std::size_t j = 0; j < c.cols; ++j) at(c, r, j) += v.data[j];
  }
  /// v = beta v + Σ_i a[i, :] (v is [1, cols]); beta = 0 ignores v's old contents.
  template <class T>
  static void sum_rows(In<T> a, Scalar<T> beta, MatrixRef<T> v) {
    detail::check::row_vector(who(), "sum_rows", v, a.cols);
    for (std::size_t j = 0; j < a.cols; ++j) {
      T s = T(0);
      for (std::size_t r = 0; r < a.rows; ++r) s += at(a, r, j);
      v.data[j] = beta == T(0) ? s : beta * v.data[j] + s;
    }
  }
  /// out[r, 0] = Σ_k a[r, k] b[r, k].
  template <class T>
  static void row_dot(In<T> a, In<T> b, MatrixRef<T> out) {
    detail::check::same_shape(who(), "row_dot", a, b);
    detail::check::shape(who(), "row_dot", out, a.rows, 1, "out");
    for (std::size_t r = 0; r < a.rows; ++r) {
      T s = T(0);
      for (std::size_t k = 0; k < a.cols; ++k) s += at(a, r, k) * at(b, r, k);
      at(out, r, 0) = s;
    }
  }

  // ---- elementwise ------------------------------------------------------------------------------------------------

  /// y = Op::f(x).
  template <class Op, class T>
  static void map(In<T> x, MatrixRef<T> y) {
    detail::check::same_shape(who(), "map", x, y);
    for (std::size_t r = 0; r < x.rows; ++r)
      for (std::size_t c = 0; c < x.cols; ++c) at(y, r, c) = Op::f(at(x, r, c));
  }
  /// dx = Op::df(x, y) dy, with y = Op::f(x) from the forward pass (dx may be dy).
  template <class Op, class T>
  static void map_backward(In<T> x, In<T> y, In<T> dy, MatrixRef<T> dx) {
    detail::check::same_shape(who(), "map_backward", x, y);
    detail::check::same_shape(who(), "map_backward", x, dy);
    detail::check::same_shape(who(), "map_backward", x, dx);
    for (std::size_t r = 0; r < x.rows; ++r)
      for (std::size_t c = 0; c < x.cols; ++c) at(dx, r, c) = Op::df(at(x, r, c), at(y, r, c)) * at(dy, r, c);
  }

  // ---- sparse linear maps (basis expansions, filter banks) --------------------------------------------------------

  /// y[r, j] = Σ_{e in [first[j], first[j+1])} weight[e] x[r, index[e]] for every row r (a sparse matrix, stored by
  /// output column, applied to the columns of x).
  template <class T>
  static void sparse_map(Index first, Index index, In<T> weight, In<T> x, MatrixRef<T> y) {
    detail::check::shape(who(), "sparse_map", first, 1, y.cols + 1, "first");
    detail::check::same_shape(who(), "sparse_map", index, weight);
    ACE_THROW_IF(x.rows != y.rows, shape_error, who(), "::sparse_map: ", x.rows, " input rows, ", y.rows, " output rows");
    for (std::size_t r = 0; r < y.rows; ++r)
      for (std::size_t j = 0; j < y.cols; ++j) {
        T s = T(0);
        for (std::size_t e = idx(first, j); e < idx(first, j + 1); ++e) s += weight.data[e] * at(x, r, idx(index, e));
        at(y, r, j) = s;
      }
  }
  /// The adjoint, accumulated: dx[r, index[e]] += weight[e] dy[r, j].
  template <class T>
  static void sparse_map_adjoint(Index first, Index index, In<T> weight, In<T> dy, MatrixRef<T> dx) {
    detail::check::shape(who(), "sparse_map_adjoint", first, 1, dy.cols + 1, "first");
    detail::check::same_shape(who(), "sparse_map_adjoint", index, weight);
    ACE_THROW_IF(dx.rows != dy.rows, shape_error, who(), "::sparse_map_adjoint: ", dy.rows, " gradient rows, ",
                 dx.rows, " input rows");
    for (std::size_t r = 0; r < dy.rows; ++r)
      for (std::size_t j = 0; j < dy.cols; ++j)
        for (std::size_t e = idx(first, j); e < idx(first, j + 1); ++e)
          at(dx, r, idx(index, e)) += weight.data[e] * at(dy, r, j);
  }

  // ---- rows by index ----------------------------------------------------------------------------------------------

  /// dst[e, :] = src[index[e], :].
  template <class T>
  static void gather_rows(In<T> src, Index index, MatrixRef<T> dst) {
    detail::check::shape(who(), "gather_rows", index, 1, dst.rows, "index");
    ACE_THROW_IF(src.cols != dst.cols, shape_error, who(), "::gather_rows: ", src.cols, " and ", dst.cols, " columns");
    for (std::size_t e = 0; e < dst.rows; ++e) {
      ACE_THROW_IF(idx(index, e) >= src.rows, invalid_argument, who(), "::gather_rows: index ", idx(index, e),
                   " of ", src.rows, " rows");
      for (std::size_t c = 0; c < dst.cols; ++c) at(dst, e, c) = at(src, idx(index, e), c);
    }
  }
  /// dst[index[e], :] += src[e, :] (the adjoint of gather_rows).
  template <class T>
  static void scatter_add_rows(In<T> src, Index index, MatrixRef<T> dst) {
    detail::check::shape(who(), "scatter_add_rows", index, 1, src.rows, "index");
    ACE_THROW_IF(src.cols != dst.cols, shape_error, who(), "::scatter_add_rows: ", src.cols, " and ", dst.cols,
                 " columns");
    for (std::size_t e = 0; e < src.rows; ++e) {
      ACE_THROW_IF(idx(index, e) >= dst.rows, invalid_argument, who(), "::scatter_add_rows: index ", idx(index, e),
                   " of ", dst.rows, " rows");
      for (std::size_t c = 0; c < src.cols; ++c) at(dst, idx(index, e), c) += at(src, e, c);
    }
  }

  // ---- segment reductions (set and group pooling) -----------------------------------------------------------------

  /// y[b, :] = the sum, mean or max of x[b * segment + i, :] over i < segment. For max, argmax[b, j] receives the
  /// winning i (the first on ties); argmax is not used otherwise (may be empty).
  template <class T>
  static void segment_reduce(Reduce kind, In<T> x, std::size_t segment, MatrixRef<T> y,
                             MatrixRef<std::uint32_t> argmax = {}) {
    detail::check::segments(who(), "segment_reduce", x, segment, y);
    if (kind == Reduce::max) detail::check::same_shape(who(), "segment_reduce (argmax)", argmax, y);
    for (std::size_t b = 0; b < y.rows; ++b)
      for (std::size_t j = 0; j < y.cols; ++j) {
        T acc = at(x, b * segment, j);
        std::uint32_t arg = 0;
        for (std::size_t i = 1; i < segment; ++i) {
          const T v = at(x, b * segment + i, j);
          if (kind != Reduce::max) acc += v;
          else if (v > acc) {
            acc = v;
            arg = static_cast<std::uint32_t>(i);
          }
        }
        at(y, b, j) = kind == Reduce::mean ? acc * (T(1) / static_cast<T>(segment)) : acc;
        if (kind == Reduce::max) at(argmax, b, j) = arg;
      }
  }
  /// The adjoint of segment_reduce, accumulated: dx[b * segment + i, :] += dy[b, :] (sum), dy / segment (mean), or
  /// into the argmax row only (max). With sum it is also a broadcast add of one row per segment.
  template <class T>
  static void segment_reduce_backward(Reduce kind, In<T> dy, std::size_t segment, Index argmax, MatrixRef<T> dx) {
    detail::check::segments(who(), "segment_reduce_backward", dx, segment, dy);
    if (kind == Reduce::max) detail::check::same_shape(who(), "segment_reduce_backward (argmax)", argmax, dy);
    const T scale = kind == Reduce::mean ? T(1) / static_cast<T>(segment) : T(1);
    for (std::size_t b = 0; b < dy.rows; ++b)
      for (std::size_t j = 0; j < dy.cols; ++j) {
        if (kind == Reduce::max) {
          at(dx, b * segment + at(argmax, b, j), j) += at(dy, b, j);
          continue;
        }
        for (std::size_t i = 0; i < segment; ++i) at(dx, b * segment + i, j) += scale * at(dy, b, j);
      }
  }

  // ---- pair features [batch, N, N, F] (second-order set layers) ----------------------------------------------------

  /// y[b, i, j, :] = x[b, j, i, :] (+= when accumulate).
  template <class T>
  static void pair_transpose(In<T> x, std::size_t n, MatrixRef<T> y, bool accumulate) {
    detail::check::pairs(who(), "pair_transpose", x, n);
    detail::check::same_shape(who(), "pair_transpose", x, y);
    const std::size_t f = x.cols / (n * n);
    for (std::size_t b = 0; b < x.rows; ++b)
      for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < n; ++j)
          for (std::size_t c = 0; c < f; ++c) {
            const T v = at(x, b, (j * n + i) * f + c);
            T& out = at(y, b, (i * n + j) * f + c);
            out = accumulate ? out + v : v;
          }
  }
  /// Per sample, with f channels: v[(b, i), :] = (x_ii, Σ_j x_ij, Σ_j x_ji) and s[b, :] = (Σ_i x_ii, Σ_ij x_ij);
  /// with `mean` the sums are means (1/N, 1/N for v; 1/N, 1/N² for s).
  template <class T>
  static void pair_pool(In<T> x, std::size_t n, bool mean, MatrixRef<T> v, MatrixRef<T> s) {
    detail::check::pairs(who(), "pair_pool", x, n);
    const std::size_t f = x.cols / (n * n);
    detail::check::shape(who(), "pair_pool", v, x.rows * n, 3 * f, "v");
    detail::check::shape(who(), "pair_pool", s, x.rows, 2 * f, "s");
    const T inv_n = T(1) / static_cast<T>(n), inv_nn = T(1) / static_cast<T>(n * n);
    for (std::size_t b = 0; b < x.rows; ++b)
      for (std::size_t c = 0; c < f; ++c) {
        T trace = T(0), total = T(0);
        for (std::size_t i = 0; i < n; ++i) {
          T row = T(0), col = T(0);
          for (std::size_t j = 0; j < n; ++j) {
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
  }
  /// y[b, i, j, :] += ka (u_row(b, i) + u_col(b, j)) + kb q_all(b) + [i == j] (u_diag(b, i) + kc q_diag(b)) with
  /// u = [u_diag, u_row, u_col] [batch * N, 3f] and q = [q_diag, q_all] [batch, 2f].
  template <class T>
  static void pair_broadcast(In<T> u, In<T> q, std::size_t n, Scalar<T> ka, Scalar<T> kb, Scalar<T> kc,
                             MatrixRef<T> y) {
    detail::check::pairs(who(), "pair_broadcast", y, n);
    const std::size_t f = y.cols / (n * n);
    detail::check::shape(who(), "pair_broadcast", u, y.rows * n, 3 * f, "u");
    detail::check::shape(who(), "pair_broadcast", q, y.rows, 2 * f, "q");
    for (std::size_t b = 0; b < y.rows; ++b)
      for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < n; ++j)
          for (std::size_t o = 0; o < f; ++o) {
            T& out = at(y, b, (i * n + j) * f + o);
            out += ka * (at(u, b * n + i, f + o) + at(u, b * n + j, 2 * f + o)) + kb * at(q, b, f + o);
            if (i == j) out += at(u, b * n + i, o) + kc * at(q, b, o);
          }
  }

  // ---- fields: norm and gated nonlinearities ----------------------------------------------------------------------

  /// Field f of a row is columns [offsets[f], offsets[f+1]). norm[b, f] = sqrt(|x_f|² + eps) and
  /// y_f = x_f Op::f(norm + bias_f) / norm.
  template <class Op, class T>
  static void norm_nonlinearity(In<T> x, Index offsets, In<T> bias, Scalar<T> eps, MatrixRef<T> norm,
                                MatrixRef<T> y) {
    const std::size_t fields = offsets.cols - 1;
    detail::check::shape(who(), "norm_nonlinearity", norm, x.rows, fields, "norm");
    detail::check::same_shape(who(), "norm_nonlinearity", x, y);
    detail::check::row_vector(who(), "norm_nonlinearity", bias, fields);
    for (std::size_t b = 0; b < x.rows; ++b)
      for (std::size_t f = 0; f < fields; ++f) {
        T sq = eps;
        for (std::size_t i = idx(offsets, f); i < idx(offsets, f + 1); ++i) sq += at(x, b, i) * at(x, b, i);
        const T n = std::sqrt(sq);
        at(norm, b, f) = n;
        const T scale = Op::f(n + bias.data[f]) / n;
        for (std::size_t i = idx(offsets, f); i < idx(offsets, f + 1); ++i) at(y, b, i) = scale * at(x, b, i);
      }
  }
  /// Its backward: dx = (φ/n) dy + ((φ' n - φ)/n³) <x, dy> x and dbias[b, f] = φ'/n <x, dy> per row (sum the rows for
  /// the bias gradient), with φ = Op::f(n + bias).
  template <class Op, class T>
  static void norm_nonlinearity_backward(In<T> x, Index offsets, In<T> bias, In<T> norm, In<T> dy, MatrixRef<T> dx,
                                         MatrixRef<T> dbias) {
    const std::size_t fields = offsets.cols - 1;
    detail::check::same_shape(who(), "norm_nonlinearity_backward", x, dy);
    detail::check::same_shape(who(), "norm_nonlinearity_backward", x, dx);
    detail::check::shape(who(), "norm_nonlinearity_backward", dbias, x.rows, fields, "dbias");
    for (std::size_t b = 0; b < x.rows; ++b)
      for (std::size_t f = 0; f < fields; ++f) {
        const T n = at(norm, b, f), phi = Op::f(n + bias.data[f]), dphi = Op::df(n + bias.data[f], phi);
        T dot = T(0);
        for (std::size_t i = idx(offsets, f); i < idx(offsets, f + 1); ++i) dot += at(x, b, i) * at(dy, b, i);
        const T radial = (dphi * n - phi) / (n * n * n) * dot;
        for (std::size_t i = idx(offsets, f); i < idx(offsets, f + 1); ++i)
          at(dx, b, i) = phi / n * at(dy, b, i) + radial * at(x, b, i);
        at(dbias, b, f) = dphi / n * dot;
      }
  }
  /// x = [gates g (one per field), fields]: gate[b, f] = sigmoid(g_f) and y_f = gate_f x_f.
  template <class T>
  static void gate_fields(In<T> x, Index offsets, MatrixRef<T> gate, MatrixRef<T> y) {
    const std::size_t fields = offsets.cols - 1, dim = idx(offsets, fields);
    detail::check::shape(who(), "gate_fields", x, x.rows, fields + dim, "x");
    detail::check::shape(who(), "gate_fields", gate, x.rows, fields, "gate");
    detail::check::shape(who(), "gate_fields", y, x.rows, dim, "y");
    for (std::size_t b = 0; b < x.rows; ++b)
      for (std::size_t f = 0; f < fields; ++f) {
        const T s = SigmoidOp::f(at(x, b, f));
        at(gate, b, f) = s;
        for (std::size_t i = idx(offsets, f); i < idx(offsets, f + 1); ++i) at(y, b, i) = s * at(x, b, fields + i);
      }
  }
  template <class T>
  static void gate_fields_backward(In<T> x, Index offsets, In<T> gate, In<T> dy, MatrixRef<T> dx) {
    const std::size_t fields = offsets.cols - 1;
    detail::check::same_shape(who(), "gate_fields_backward", x, dx);
    for (std::size_t b = 0; b < x.rows; ++b)
      for (std::size_t f = 0; f < fields; ++f) {
        const T s = at(gate, b, f);
        T dot = T(0);
        for (std::size_t i = idx(offsets, f); i < idx(offsets, f + 1); ++i) {
          dot += at(x, b, fields + i) * at(dy, b, i);
          at(dx, b, fields + i) = s * at(dy, b, i);
        }
        at(dx, b, f) = SigmoidOp::df(at(x, b, f), s) * dot;
      }
  }

  // ---- batch norm over fields -------------------------------------------------------------------------------------

  /// x as [outer, channels, inner] with channel c in field field_of[c]. Training: each field's mean and (biased)
  /// variance over its n entries, computed in double in two passes; the running statistics become (1 - momentum)
  /// running + momentum (mean, var n / (n - 1)). Evaluation: the running statistics. mean[f] and
  /// inv_std[f] = 1 / sqrt(var + eps) are written in T.
  template <class T>
  static void batch_norm_statistics(In<T> x, const FieldLayout& l, Index field_of, bool training, double momentum,
                                    double eps, MatrixRef<double> running_mean, MatrixRef<double> running_var,
                                    MatrixRef<T> mean, MatrixRef<T> inv_std) {
    check_fields("batch_norm_statistics", x, l, field_of);
    for (auto* v : {&running_mean, &running_var})
      detail::check::shape(who(), "batch_norm_statistics", *v, 1, l.fields, "running statistics");
    detail::check::shape(who(), "batch_norm_statistics", mean, 1, l.fields, "mean");
    detail::check::shape(who(), "batch_norm_statistics", inv_std, 1, l.fields, "inv_std");
    std::vector<double> m(running_mean.data, running_mean.data + l.fields);
    std::vector<double> var(running_var.data, running_var.data + l.fields);
    if (training) {
      std::vector<double> sum(l.fields, 0.0), sq(l.fields, 0.0), count(l.fields, 0.0);
      for_each_field_entry(l, field_of, [&](std::size_t f, std::size_t i) {
        sum[f] += static_cast<double>(x.data[i]);
        count[f] += 1.0;
      });
      for (std::size_t f = 0; f < l.fields; ++f) m[f] = sum[f] / count[f];
      for_each_field_entry(l, field_of, [&](std::size_t f, std::size_t i) {
        const double d = static_cast<double>(x.data[i]) - m[f];
        sq[f] += d * d;
      });
      for (std::size_t f = 0; f < l.fields; ++f) {
        var[f] = sq[f] / count[f];
        running_mean.data[f] = (1.0 - momentum) * running_mean.data[f] + momentum * m[f];
        running_var.data[f] = (1.0 - momentum) * running_var.data[f] + momentum * var[f] * count[f] / (count[f] - 1.0);
      }
    }
    for (std::size_t f = 0; f < l.fields; ++f) {
      mean.data[f] = static_cast<T>(m[f]);
      inv_std.data[f] = static_cast<T>(1.0 / std::sqrt(var[f] + eps));
    }
  }
  /// xhat = (x - mean_f) inv_std_f and y = weight_f xhat + bias_f.
  template <class T>
  static void batch_norm_forward(In<T> x, const FieldLayout& l, Index field_of, In<T> mean, In<T> inv_std,
                                 In<T> weight, In<T> bias, MatrixRef<T> xhat, MatrixRef<T> y) {
    check_fields("batch_norm_forward", x, l, field_of);
    detail::check::same_shape(who(), "batch_norm_forward", x, xhat);
    detail::check::same_shape(who(), "batch_norm_forward", x, y);
    for_each_field_entry(l, field_of, [&](std::size_t f, std::size_t i) {
      const T h = (x.data[i] - mean.data[f]) * inv_std.data[f];
      xhat.data[i] = h;
      y.data[i] = weight.data[f] * h + bias.data[f];
    });
  }
  /// Its backward: dweight_f += Σ dy xhat, dbias_f += Σ dy (sums in double), and dx = weight inv_std (dy - mean(dy) -
  /// xhat mean(dy xhat)) with batch statistics, weight inv_std dy with running ones.
  template <class T>
  static void batch_norm_backward(In<T> dy, In<T> xhat, const FieldLayout& l, Index field_of, In<T> weight,
                                  In<T> inv_std, bool batch_stats, MatrixRef<T> dweight, MatrixRef<T> dbias,
                                  MatrixRef<T> dx) {
    check_fields("batch_norm_backward", dy, l, field_of);
    detail::check::same_shape(who(), "batch_norm_backward", dy, xhat);
    detail::check::same_shape(who(), "batch_norm_backward", dy, dx);
    std::vector<double> sum_dy(l.fields, 0.0), sum_dy_xhat(l.fields, 0.0), count(l.fields, 0.0);
    for_each_field_entry(l, field_of, [&](std::size_t f, std::size_t i) {
      sum_dy[f] += static_cast<double>(dy.data[i]);
      sum_dy_xhat[f] += static_cast<double>(dy.data[i]) * static_cast<double>(xhat.data[i]);
      count[f] += 1.0;
    });
    std::vector<T> scale(l.fields), m_dy(l.fields), m_dy_xhat(l.fields);
    for (std::size_t f = 0; f < l.fields; ++f) {
      dweight.data[f] += static_cast<T>(sum_dy_xhat[f]);
      dbias.data[f] += static_cast<T>(sum_dy[f]);
      scale[f] = weight.data[f] * inv_std.data[f];
      m_dy[f] = static_cast<T>(sum_dy[f] / count[f]);
      m_dy_xhat[f] = static_cast<T>(sum_dy_xhat[f] / count[f]);
    }
    for_each_field_entry(l, field_of, [&](std::size_t f, std::size_t i) {
      dx.data[i] = batch_stats ? scale[f] * (dy.data[i] - m_dy[f] - xhat.data[i] * m_dy_xhat[f]) : scale[f] * dy.data[i];
    });
  }

  // ---- images -----------------------------------------------------------------------------------------------------

  /// y = w * x + bias (cross-correlation, zero padding) with filters w [out_channels, patch] (columns (ky, kx, c))
  /// and bias [1, out_channels] or empty.
  template <class T>
  static void conv2d_forward(convolution<T>& conv, In<T> x, In<T> w, In<T> bias, MatrixRef<T> y) {
    const ConvGeometry& g = conv.g;
    check_conv(g, x, w, y);
    for (std::size_t b = 0; b < x.rows; ++b)
      for (std::size_t o = 0; o < g.out_channels; ++o)
        for (std::size_t p = 0; p < g.out_pixels(); ++p) {
          T s = bias.empty() ? T(0) : bias.data[o];
          for_each_conv_tap(g, p, [&](std::size_t tap, std::size_t q) {
            for (std::size_t c = 0; c < g.in_channels; ++c)
              s += at(w, o, tap * g.in_channels + c) * at(x, b, image_offset(g.layout, c, q, g.in_channels, g.in_pixels()));
          });
          at(y, b, image_offset(g.layout, o, p, g.out_channels, g.out_pixels())) = s;
        }
  }
  /// dw += dL/dw, dbias += dL/dbias (when not empty), dx = dL/dx.
  template <class T>
  static void conv2d_backward(convolution<T>& conv, In<T> x, In<T> w, In<T> dy, MatrixRef<T> dw, MatrixRef<T> dbias,
                              MatrixRef<T> dx) {
    const ConvGeometry& g = conv.g;
    check_conv(g, x, w, dy);
    detail::check::same_shape(who(), "conv2d_backward", x, dx);
    detail::check::same_shape(who(), "conv2d_backward", w, dw);
    fill(dx, T(0));
    for (std::size_t b = 0; b < x.rows; ++b)
      for (std::size_t o = 0; o < g.out_channels; ++o)
        for (std::size_t p = 0; p < g.out_pixels(); ++p) {
          const T gy = at(dy, b, image_offset(g.layout, o, p, g.out_channels, g.out_pixels()));
          if (!dbias.empty()) dbias.data[o] += gy;
          for_each_conv_tap(g, p, [&](std::size_t tap, std::size_t q) {
            for (std::size_t c = 0; c < g.in_channels; ++c) {
              const std::size_t xi = image_offset(g.layout, c, q, g.in_channels, g.in_pixels());
              at(dw, o, tap * g.in_channels + c) += gy * at(x, b, xi);
              at(dx, b, xi) += gy * at(w, o, tap * g.in_channels + c);
            }
          });
        }
  }
  /// y = the sum, mean or max of each window of each channel; for max, argmax holds the winning input offset within
  /// the batch row (the first on ties).
  template <class T>
  static void pool2d_forward(const PoolGeometry& g, Reduce kind, In<T> x, MatrixRef<T> y,
                             MatrixRef<std::uint32_t> argmax = {}) {
    detail::check::shape(who(), "pool2d_forward", x, x.rows, g.in_dim(), "x");
    detail::check::shape(who(), "pool2d_forward", y, x.rows, g.out_dim(), "y");
    if (kind == Reduce::max) detail::check::same_shape(who(), "pool2d_forward (argmax)", argmax, y);
    for (std::size_t b = 0; b < x.rows; ++b)
      for_each_pool_window(g, [&](std::size_t out, const std::size_t* in, std::size_t count) {
        T acc = at(x, b, in[0]);
        std::uint32_t arg = static_cast<std::uint32_t>(in[0]);
        for (std::size_t i = 1; i < count; ++i) {
          const T v = at(x, b, in[i]);
          if (kind != Reduce::max) acc += v;
          else if (v > acc) {
            acc = v;
            arg = static_cast<std::uint32_t>(in[i]);
          }
        }
        at(y, b, out) = kind == Reduce::mean ? acc / static_cast<T>(count) : acc;
        if (kind == Reduce::max) at(argmax, b, out) = arg;
      });
  }
  /// dx = the adjoint of pool2d_forward applied to dy (dx is overwritten).
  template <class T>
  static void pool2d_backward(const PoolGeometry& g, Reduce kind, In<T> dy, Index argmax, MatrixRef<T> dx) {
    detail::check::shape(who(), "pool2d_backward", dy, dy.rows, g.out_dim(), "dy");
    detail::check::shape(who(), "pool2d_backward", dx, dy.rows, g.in_dim(), "dx");
    fill(dx, T(0));
    for (std::size_t b = 0; b < dy.rows; ++b)
      for_each_pool_window(g, [&](std::size_t out, const std::size_t* in, std::size_t count) {
        if (kind == Reduce::max) {
          at(dx, b, at(argmax, b, out)) += at(dy, b, out);
          return;
        }
        const T scale = kind == Reduce::mean ? T(1) / static_cast<T>(count) : T(1);
        for (std::size_t i = 0; i < count; ++i) at(dx, b, in[i]) += scale * at(dy, b, out);
      });
  }

  // ---- vectors in R^3 (Vector Neurons: rows 3p, 3p + 1, 3p + 2 hold point p's vectors) ---------------------------

  /// n[p, c] = |x_pc| + eps.
  template <class T>
  static void vector_norms(In<T> x, Scalar<T> eps, MatrixRef<T> n) {
    detail::check::vectors(who(), "vector_norms", x);
    detail::check::shape(who(), "vector_norms", n, x.rows / 3, x.cols, "n");
    for (std::size_t p = 0; p < n.rows; ++p)
      for (std::size_t c = 0; c < x.cols; ++c) {
        T sq = T(0);
        for (std::size_t k = 0; k < 3; ++k) sq += at(x, 3 * p + k, c) * at(x, 3 * p + k, c);
        at(n, p, c) = std::sqrt(sq) + eps;
      }
  }
  /// y_pc = x_pc m_pc / n_pc (a vector rescaled from norm n to norm m).
  template <class T>
  static void vector_rescale(In<T> x, In<T> n, In<T> m, MatrixRef<T> y) {
    detail::check::vectors(who(), "vector_rescale", x);
    detail::check::same_shape(who(), "vector_rescale", x, y);
    detail::check::same_shape(who(), "vector_rescale", n, m);
    for (std::size_t p = 0; p < n.rows; ++p)
      for (std::size_t c = 0; c < x.cols; ++c) {
        const T s = at(m, p, c) / at(n, p, c);
        for (std::size_t k = 0; k < 3; ++k) at(y, 3 * p + k, c) = at(x, 3 * p + k, c) * s;
      }
  }
  /// With g = <dy_pc, x_pc>: dm = g / n and dn = -g m / n² (the gradient through the division by n only).
  template <class T>
  static void vector_rescale_backward(In<T> x, In<T> n, In<T> m, In<T> dy, MatrixRef<T> dm, MatrixRef<T> dn) {
    detail::check::same_shape(who(), "vector_rescale_backward", x, dy);
    detail::check::same_shape(who(), "vector_rescale_backward", n, dm);
    detail::check::same_shape(who(), "vector_rescale_backward", n, dn);
    for (std::size_t p = 0; p < n.rows; ++p)
      for (std::size_t c = 0; c < x.cols; ++c) {
        T g = T(0);
        for (std::size_t k = 0; k < 3; ++k) g += at(dy, 3 * p + k, c) * at(x, 3 * p + k, c);
        const T nv = at(n, p, c);
        at(dm, p, c) = g / nv;
        at(dn, p, c) = -g * at(m, p, c) / (nv * nv);
      }
  }
  /// dx = dy m / n + dn x / |x| for y = x m / n with n = |x| + eps (dn the total gradient of n; 0 where x = 0).
  template <class T>
  static void vector_rescale_input_grad(In<T> x, In<T> n, In<T> m, In<T> dy, In<T> dn, Scalar<T> eps,
                                        MatrixRef<T> dx) {
    detail::check::same_shape(who(), "vector_rescale_input_grad", x, dy);
    detail::check::same_shape(who(), "vector_rescale_input_grad", x, dx);
    for (std::size_t p = 0; p < n.rows; ++p)
      for (std::size_t c = 0; c < x.cols; ++c) {
        const T nv = at(n, p, c), mv = at(m, p, c), r = nv - eps;
        for (std::size_t k = 0; k < 3; ++k)
          at(dx, 3 * p + k, c) =
              at(dy, 3 * p + k, c) * mv / nv + (r > T(0) ? at(dn, p, c) * at(x, 3 * p + k, c) / r : T(0));
      }
  }
  /// The VN leaky ReLU with directions d: where <x, d> < 0, y = x - (1 - slope) <x, d> / (|d|² + eps) d, else y = x.
  template <class T>
  static void vn_leaky_relu(In<T> x, In<T> d, Scalar<T> slope, Scalar<T> eps, MatrixRef<T> y) {
    detail::check::vectors(who(), "vn_leaky_relu", x);
    detail::check::same_shape(who(), "vn_leaky_relu", x, d);
    detail::check::same_shape(who(), "vn_leaky_relu", x, y);
    for (std::size_t p = 0; p < x.rows / 3; ++p)
      for (std::size_t c = 0; c < x.cols; ++c) {
        T dot = T(0), dd = T(0);
        for (std::size_t k = 0; k < 3; ++k) {
          dot += at(x, 3 * p + k, c) * at(d, 3 * p + k, c);
          dd += at(d, 3 * p + k, c) * at(d, 3 * p + k, c);
        }
        dd += eps;
        const T a = dot < T(0) ? (T(1) - slope) * dot / dd : T(0);
        for (std::size_t k = 0; k < 3; ++k) at(y, 3 * p + k, c) = at(x, 3 * p + k, c) - a * at(d, 3 * p + k, c);
      }
  }
  /// Its backward: dx and dd (the gradient of the directions).
  template <class T>
  static void vn_leaky_relu_backward(In<T> x, In<T> d, Scalar<T> slope, Scalar<T> eps, In<T> dy, MatrixRef<T> dx,
                                     MatrixRef<T> dd) {
    detail::check::same_shape(who(), "vn_leaky_relu_backward", x, dy);
    detail::check::same_shape(who(), "vn_leaky_relu_backward", x, dx);
    detail::check::same_shape(who(), "vn_leaky_relu_backward", x, dd);
    for (std::size_t p = 0; p < x.rows / 3; ++p)
      for (std::size_t c = 0; c < x.cols; ++c) {
        T dot = T(0), ddot = T(0), gd = T(0);
        for (std::size_t k = 0; k < 3; ++k) {
          dot += at(x, 3 * p + k, c) * at(d, 3 * p + k, c);
          ddot += at(d, 3 * p + k, c) * at(d, 3 * p + k, c);
          gd += at(dy, 3 * p + k, c) * at(d, 3 * p + k, c);
        }
        ddot += eps;
        const T s = T(1) - slope, a = dot / ddot;
        for (std::size_t k = 0; k < 3; ++k) {
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
  }
  /// y[p, 3j + f] = <x_pj, z_pf>: the invariant features of C vectors against a frame of 3 vectors z [3P, 3].
  template <class T>
  static void vn_invariant(In<T> x, In<T> z, MatrixRef<T> y) {
    detail::check::vectors(who(), "vn_invariant", x);
    detail::check::shape(who(), "vn_invariant", z, x.rows, 3, "z");
    detail::check::shape(who(), "vn_invariant", y, x.rows / 3, 3 * x.cols, "y");
    for (std::size_t p = 0; p < y.rows; ++p)
      for (std::size_t j = 0; j < x.cols; ++j)
        for (std::size_t f = 0; f < 3; ++f) {
          T s = T(0);
          for (std::size_t k = 0; k < 3; ++k) s += at(x, 3 * p + k, j) * at(z, 3 * p + k, f);
          at(y, p, 3 * j + f) = s;
        }
  }
  template <class T>
  static void vn_invariant_backward(In<T> x, In<T> z, In<T> dy, MatrixRef<T> dx, MatrixRef<T> dz) {
    detail::check::shape(who(), "vn_invariant_backward", dy, x.rows / 3, 3 * x.cols, "dy");
    detail::check::same_shape(who(), "vn_invariant_backward", x, dx);
    detail::check::same_shape(who(), "vn_invariant_backward", z, dz);
    for (std::size_t p = 0; p < dy.rows; ++p)
      for (std::size_t k = 0; k < 3; ++k) {
        for (std::size_t f = 0; f < 3; ++f) {
          T s = T(0);
          for (std::size_t j = 0; j < x.cols; ++j) s += at(dy, p, 3 * j + f) * at(x, 3 * p + k, j);
          at(dz, 3 * p + k, f) = s;
        }
        for (std::size_t j = 0; j < x.cols; ++j) {
          T s = T(0);
          for (std::size_t f = 0; f < 3; ++f) s += at(dy, p, 3 * j + f) * at(z, 3 * p + k, f);
          at(dx, 3 * p + k, j) = s;
        }
      }
  }

  // ---- O(3)-steerable features (backend/o3_ops.hpp: the layout, the path table, the gate) -------------------------

  /// The contraction of a tensor product (TensorProductColumns): z = Σ over each path's entries of
  /// c_ijk x1[i-th component of copy u] x2[j-th component of copy v], at the path's z columns; z's other columns 0.
  template <class T>
  static void tensor_product_contract(Index paths, Index entries, In<T> values, In<T> x1, In<T> x2, MatrixRef<T> z) {
    detail::check::tensor_product<T>(who(), "tensor_product_contract", paths, entries, values, x1, x2, z);
    fill(z, T(0));
    for (std::size_t r = 0; r < z.rows; ++r)
      for_each_product(paths, entries, [&](std::size_t zc, std::size_t a, std::size_t b, std::size_t e) {
        at(z, r, zc) += values.data[e] * at(x1, r, a) * at(x2, r, b);
      });
  }
  /// Its backward given dz: dx1 and dx2 (columns no path reads get 0); an empty dx2 (0 columns) is not computed.
  template <class T>
  static void tensor_product_contract_backward(Index paths, Index entries, In<T> values, In<T> x1, In<T> x2,
                                               In<T> dz, MatrixRef<T> dx1, MatrixRef<T> dx2) {
    detail::check::tensor_product<T>(who(), "tensor_product_contract_backward", paths, entries, values, x1, x2, dz);
    detail::check::same_shape(who(), "tensor_product_contract_backward", x1, dx1);
    const bool second = dx2.cols != 0;
    if (second) detail::check::same_shape(who(), "tensor_product_contract_backward", x2, dx2);
    fill(dx1, T(0));
    if (second) fill(dx2, T(0));
    for (std::size_t r = 0; r < dz.rows; ++r)
      for_each_product(paths, entries, [&](std::size_t zc, std::size_t a, std::size_t b, std::size_t e) {
        const T g = values.data[e] * at(dz, r, zc);
        at(dx1, r, a) += g * at(x2, r, b);
        if (second) at(dx2, r, b) += g * at(x1, r, a);
      });
  }

  /// The swish gate (SwishGateConstants) on x = [scalars s | gates g | gated blocks], the gated blocks listed in
  /// `gated` as rows (copies m, dimension d), G = Σ m gates: y = [c_silu silu(s) | gated block entries (k, w) times
  /// c_sigmoid sigmoid(g[w + copies of the blocks before])].
  template <class T>
  static void swish_gate(In<T> x, std::size_t scalars, Index gated, MatrixRef<T> y) {
    detail::check::swish_gate<T>(who(), "swish_gate", x, scalars, y);
    const std::size_t gates = check_gated_blocks("swish_gate", gated, y.cols - scalars, x.cols - y.cols);
    const T c1 = static_cast<T>(SwishGateConstants::silu), c2 = static_cast<T>(SwishGateConstants::sigmoid);
    for (std::size_t r = 0; r < x.rows; ++r) {
      for (std::size_t c = 0; c < scalars; ++c) at(y, r, c) = c1 * SiLUOp::f(at(x, r, c));
      std::size_t column = scalars, gate = scalars;  // y's column; x's first gate of the block
      for (std::size_t b = 0; b < gated.rows; ++b) {
        const std::size_t m = at(gated, b, 0), d = at(gated, b, 1);
        for (std::size_t k = 0; k < d; ++k)
          for (std::size_t w = 0; w < m; ++w, ++column)
            at(y, r, column) = at(x, r, gates + column) * c2 * SigmoidOp::f(at(x, r, gate + w));
        gate += m;
      }
    }
  }
  /// Its backward: dx given dy.
  template <class T>
  static void swish_gate_backward(In<T> x, std::size_t scalars, Index gated, In<T> dy, MatrixRef<T> dx) {
    detail::check::swish_gate<T>(who(), "swish_gate_backward", x, scalars, dy);
    detail::check::same_shape(who(), "swish_gate_backward", x, dx);
    const std::size_t gates = check_gated_blocks("swish_gate_backward", gated, dy.cols - scalars, x.cols - dy.cols);
    const T c1 = static_cast<T>(SwishGateConstants::silu), c2 = static_cast<T>(SwishGateConstants::sigmoid);
    for (std::size_t r = 0; r < x.rows; ++r) {
      for (std::size_t c = 0; c < scalars; ++c) {
        const T s = at(x, r, c);
        at(dx, r, c) = c1 * SiLUOp::df(s, SiLUOp::f(s)) * at(dy, r, c);
      }
      for (std::size_t c = scalars; c < scalars + gates; ++c) at(dx, r, c) = T(0);
      std::size_t column = scalars, gate = scalars;
      for (std::size_t b = 0; b < gated.rows; ++b) {
        const std::size_t m = at(gated, b, 0), d = at(gated, b, 1);
        for (std::size_t k = 0; k < d; ++k)
          for (std::size_t w = 0; w < m; ++w, ++column) {
            const T g = at(x, r, gate + w), s = SigmoidOp::f(g);
            at(dx, r, gates + column) = c2 * s * at(dy, r, column);
            at(dx, r, gate + w) += c2 * SigmoidOp::df(g, s) * at(x, r, gates + column) * at(dy, r, column);
          }
        gate += m;
      }
    }
  }

  /// The real spherical harmonics Y^0 ... Y^lmax (lmax <= 3) of each row's direction v / |v| (0 for v = 0), times
  /// `scale`, in component normalisation: y [n, (lmax + 1)²] in blocks l = 0 ... lmax; |v| into norms [n, 1] unless
  /// norms is empty.
  template <class T>
  static void spherical_harmonics(In<T> v, std::size_t lmax, Scalar<T> scale, MatrixRef<T> y, MatrixRef<T> norms) {
    detail::check::spherical_harmonics<T>(who(), v, lmax, y, norms);
    for (std::size_t r = 0; r < v.rows; ++r) {
      const T a = at(v, r, 0), b = at(v, r, 1), c = at(v, r, 2), n = std::sqrt(a * a + b * b + c * c);
      const T inv = n > T(0) ? T(1) / n : T(0);
      if (norms.cols != 0) at(norms, r, 0) = n;
      for (std::size_t l = 0, at_col = 0; l <= lmax; at_col += 2 * l + 1, ++l) {
        T out[7];
        spherical_harmonic_polynomials(static_cast<int>(l), a * inv, b * inv, c * inv, n > T(0) ? T(1) : T(0), out);
        for (std::size_t k = 0; k < 2 * l + 1; ++k) at(y, r, at_col + k) = scale * out[k];
      }
    }
  }

  // ---- graphs: the EGNN message passing (Satorras et al. 2021, velocity variant) ----------------------------------

  /// Per edge e = (i <- j) of every graph: diff_e = x_i - x_j, radial_e = |diff_e|² and the first edge layer from
  /// per-node halves, z_e = p_i + q_j + bias + radial_e w_radial (w_radial a [hidden, 1] column).
  template <class T>
  static void egnn_edge_input(const GraphShape& gs, Index row, Index col, In<T> x, In<T> p, In<T> q, In<T> bias,
                              In<T> w_radial, MatrixRef<T> diff, MatrixRef<T> radial, MatrixRef<T> z) {
    check_graph(gs, row, col);
    detail::check::graph_nodes(who(), "egnn_edge_input", x, gs, "x");
    detail::check::graph_edges(who(), "egnn_edge_input", z, gs, "z");
    detail::check::shape(who(), "egnn_edge_input", diff, gs.edge_rows(), x.cols, "diff");
    detail::check::shape(who(), "egnn_edge_input", radial, gs.edge_rows(), 1, "radial");
    for (std::size_t b = 0; b < gs.graphs; ++b)
      for (std::size_t e = 0; e < gs.edges; ++e) {
        const std::size_t er = b * gs.edges + e, i = b * gs.nodes + idx(row, e), j = b * gs.nodes + idx(col, e);
        T r = T(0);
        for (std::size_t k = 0; k < x.cols; ++k) {
          const T d = at(x, i, k) - at(x, j, k);
          at(diff, er, k) = d;
          r += d * d;
        }
        at(radial, er, 0) = r;
        for (std::size_t c = 0; c < z.cols; ++c)
          at(z, er, c) = at(p, i, c) + at(q, j, c) + bias.data[c] + r * at(w_radial, c, 0);
      }
  }
  /// Per node i: x_out_i = x_i + inv_degree_i Σ_{e into i} clamp(diff_e coef_e, ±clamp) + speed_i v_i, and, unless m
  /// is empty, agg_i = Σ_{e into i} m_e.
  template <class T>
  static void egnn_aggregate(const GraphShape& gs, Index row, In<T> inv_degree, In<T> x, In<T> v, In<T> diff,
                             In<T> coef, In<T> speed, Scalar<T> clamp, In<T> m, MatrixRef<T> x_out,
                             MatrixRef<T> agg) {
    detail::check::graph_nodes(who(), "egnn_aggregate", x_out, gs, "x_out");
    detail::check::same_shape(who(), "egnn_aggregate", x, x_out);
    detail::check::same_shape(who(), "egnn_aggregate", v, x_out);
    for (std::size_t r = 0; r < gs.node_rows(); ++r) {
      const std::size_t b = r / gs.nodes, n = r % gs.nodes;
      for (std::size_t k = 0; k < x.cols; ++k) {
        T s = T(0);
        for (std::size_t e = 0; e < gs.edges; ++e)
          if (idx(row, e) == n) s += std::clamp(at(diff, b * gs.edges + e, k) * at(coef, b * gs.edges + e, 0), -clamp, clamp);
        at(x_out, r, k) = at(x, r, k) + inv_degree.data[n] * s + at(speed, r, 0) * at(v, r, k);
      }
      if (m.empty()) continue;
      for (std::size_t c = 0; c < m.cols; ++c) {
        T s = T(0);
        for (std::size_t e = 0; e < gs.edges; ++e)
          if (idx(row, e) == n) s += at(m, b * gs.edges + e, c);
        at(agg, r, c) = s;
      }
    }
  }
  /// Its backward for the edge quantities: dcoef_e = inv_degree_i Σ_k dx_out_ik diff_ek (over the unclamped
  /// components) and dm_e = dagg_i (0 when dagg is empty), for every edge e into i.
  template <class T>
  static void egnn_aggregate_backward(const GraphShape& gs, Index row, In<T> inv_degree, In<T> diff, In<T> coef,
                                      Scalar<T> clamp, In<T> dx_out, In<T> dagg, MatrixRef<T> dcoef,
                                      MatrixRef<T> dm) {
    detail::check::graph_edges(who(), "egnn_aggregate_backward", dcoef, gs, "dcoef");
    detail::check::graph_edges(who(), "egnn_aggregate_backward", dm, gs, "dm");
    for (std::size_t b = 0; b < gs.graphs; ++b)
      for (std::size_t e = 0; e < gs.edges; ++e) {
        const std::size_t er = b * gs.edges + e, i = b * gs.nodes + idx(row, e);
        T dc = T(0);
        for (std::size_t k = 0; k < diff.cols; ++k) {
          const T t = at(diff, er, k) * at(coef, er, 0);
          if (t >= -clamp && t <= clamp) dc += inv_degree.data[idx(row, e)] * at(dx_out, i, k) * at(diff, er, k);
        }
        at(dcoef, er, 0) = dc;
        for (std::size_t c = 0; c < dm.cols; ++c) at(dm, er, c) = dagg.empty() ? T(0) : at(dagg, i, c);
      }
  }
  /// The backward of egnn_edge_input and of the positions' dependence on diff: dp_i = Σ_{e from... into i} dz_e,
  /// dq_j = Σ_{e out of j} dz_e, dw_radial += Σ_e radial_e dz_e, and dx = dx_out + Σ_e (±) (2 <dz_e, w_radial> diff_e +
  /// inv_degree_i [unclamped] dx_out_i coef_e) (+ at i, - at j). dp, dq and dx are overwritten.
  template <class T>
  static void egnn_edge_input_backward(const GraphShape& gs, Index row, Index col, In<T> inv_degree, In<T> diff,
                                       In<T> radial, In<T> coef, Scalar<T> clamp, In<T> dx_out, In<T> dz,
                                       In<T> w_radial, MatrixRef<T> dp, MatrixRef<T> dq, MatrixRef<T> dx,
                                       MatrixRef<T> dw_radial) {
    check_graph(gs, row, col);
    detail::check::graph_edges(who(), "egnn_edge_input_backward", dz, gs, "dz");
    detail::check::graph_nodes(who(), "egnn_edge_input_backward", dp, gs, "dp");
    detail::check::same_shape(who(), "egnn_edge_input_backward", dp, dq);
    detail::check::same_shape(who(), "egnn_edge_input_backward", dx_out, dx);
    fill(dp, T(0));
    fill(dq, T(0));
    copy<T>(dx_out, dx);
    for (std::size_t b = 0; b < gs.graphs; ++b)
      for (std::size_t e = 0; e < gs.edges; ++e) {
        const std::size_t er = b * gs.edges + e, i = b * gs.nodes + idx(row, e), j = b * gs.nodes + idx(col, e);
        T dr = T(0);
        for (std::size_t c = 0; c < dz.cols; ++c) {
          at(dp, i, c) += at(dz, er, c);
          at(dq, j, c) += at(dz, er, c);
          dr += at(dz, er, c) * at(w_radial, c, 0);
        }
        for (std::size_t k = 0; k < diff.cols; ++k) {
          const T d = at(diff, er, k), t = d * at(coef, er, 0);
          T g = T(2) * dr * d;
          if (t >= -clamp && t <= clamp) g += inv_degree.data[idx(row, e)] * at(dx_out, i, k) * at(coef, er, 0);
          at(dx, i, k) += g;
          at(dx, j, k) -= g;
        }
      }
    for (std::size_t c = 0; c < dz.cols; ++c) {
      T s = T(0);
      for (std::size_t er = 0; er < gs.edge_rows(); ++er) s += at(dz, er, c) * at(radial, er, 0);
      at(dw_radial, c, 0) += s;
    }
  }

  // ---- losses -----------------------------------------------------------------------------------------------------

  /// The mean of Op::value(pred - target) over all entries; grad = Op::derivative(pred - target) / size.
  template <class Op, class T>
  static T elementwise_loss(In<T> pred, In<T> target, MatrixRef<T> grad) {
    detail::check::same_shape(who(), "elementwise_loss", pred, target);
    detail::check::same_shape(who(), "elementwise_loss", pred, grad);
    const T scale = T(1) / static_cast<T>(pred.size());
    T sum = T(0);
    for (std::size_t r = 0; r < pred.rows; ++r)
      for (std::size_t c = 0; c < pred.cols; ++c) {
        const T d = at(pred, r, c) - at(target, r, c);
        sum += Op::value(d);
        at(grad, r, c) = scale * Op::derivative(d);
      }
    return sum * scale;
  }
  /// The mean over rows of -log softmax(logits)[label] (shifted by the row maximum); grad = (softmax - onehot) /
  /// rows. labels is [1, rows].
  template <class T>
  static T softmax_cross_entropy(In<T> logits, Index labels, MatrixRef<T> grad) {
    detail::check::same_shape(who(), "softmax_cross_entropy", logits, grad);
    detail::check::shape(who(), "softmax_cross_entropy", labels, 1, logits.rows, "labels");
    const std::size_t batch = logits.rows, classes = logits.cols;
    T sum = T(0);
    for (std::size_t r = 0; r < batch; ++r) {
      const std::size_t label = idx(labels, r);
      ACE_THROW_IF(label >= classes, invalid_argument, who(), "::softmax_cross_entropy: label ", label, " of row ", r,
                   " is not a class index below ", classes);
      T shift = at(logits, r, 0);
      for (std::size_t c = 1; c < classes; ++c) shift = std::max(shift, at(logits, r, c));
      T total = T(0);
      for (std::size_t c = 0; c < classes; ++c) total += (at(grad, r, c) = std::exp(at(logits, r, c) - shift));
      sum += std::log(total) + shift - at(logits, r, label);
      for (std::size_t c = 0; c < classes; ++c) at(grad, r, c) = at(grad, r, c) / total / static_cast<T>(batch);
      at(grad, r, label) -= T(1) / static_cast<T>(batch);
    }
    return sum / static_cast<T>(batch);
  }

  /// The same losses with the value written to out(0, 0) (double, 1×1 in backend memory) instead of returned.
  template <class Op, class T>
  static void elementwise_loss(In<T> pred, In<T> target, MatrixRef<T> grad, MatrixRef<double> out) {
    detail::check::scalar(who(), "elementwise_loss", out);
    out.data[0] = static_cast<double>(Self::template elementwise_loss<Op, T>(pred, target, grad));
  }
  template <class T>
  static void softmax_cross_entropy(In<T> logits, Index labels, MatrixRef<T> grad, MatrixRef<double> out) {
    detail::check::scalar(who(), "softmax_cross_entropy", out);
    out.data[0] = static_cast<double>(Self::template softmax_cross_entropy<T>(logits, labels, grad));
  }

  // ---- constrained optimisation -----------------------------------------------------------------------------------

  /// The Lagrangian's terms for the constraints on the relaxation scalars gamma (ConstraintForm::terms, entry by
  /// entry): s_i, gamma_grad_i += ..., slack_grad_i = ... .
  template <class T>
  static void constraint_terms(const ConstraintForm& f, In<T> gamma, In<T> slack, In<double> lambda,
                               MatrixRef<T> gamma_grad, MatrixRef<T> slack_grad, MatrixRef<double> s) {
    detail::check::constraint_terms(who(), f, gamma, slack, lambda, gamma_grad, slack_grad, s);
    T unused = T(0);
    for (std::size_t i = 0; i < gamma.size(); ++i)
      f.terms<T>(gamma.data[i], f.slack ? slack.data[i] : T(0), lambda.data[i], gamma_grad.data[i],
                 f.slack ? slack_grad.data[i] : unused, s.data[i]);
  }
  /// One dual step on every multiplier (DualStep::apply); t is the dual step count (1×1, backend memory).
  static void dual_ascent(const ConstraintForm& f, const DualStep& d, In<double> t, In<double> s,
                          MatrixRef<double> lambda, MatrixRef<double> m, MatrixRef<double> v) {
    detail::check::dual_ascent(who(), t, s, lambda, m, v);
    for (std::size_t i = 0; i < s.size(); ++i) d.apply(f, t.data[0], s.data[i], lambda.data[i], m.data[i], v.data[i]);
  }

  // ---- optimisers -------------------------------------------------------------------------------------------------

  /// One SGD update (SgdStep); `momentum` is the momentum buffer (empty without momentum).
  template <class T>
  static void sgd_update(MatrixRef<T> value, In<T> grad, MatrixRef<T> momentum, const SgdStep& s) {
    detail::check::same_shape(who(), "sgd_update", value, grad);
    if (s.momentum != 0.0) detail::check::same_shape(who(), "sgd_update", value, momentum);
    const T lr = static_cast<T>(s.lr), mu = static_cast<T>(s.momentum), wd = static_cast<T>(s.weight_decay);
    for (std::size_t i = 0; i < value.size(); ++i) {
      T g = grad.data[i] + wd * value.data[i];
      if (s.momentum != 0.0) {
        T& b = momentum.data[i];
        b = s.first ? g : mu * b + g;
        g = s.nesterov ? g + mu * b : b;
      }
      value.data[i] -= lr * g;
    }
  }
  /// One Adam or AdamW update (AdamStep) with moment buffers m and v; t is the step count (1×1, backend memory).
  template <class T>
  static void adam_update(MatrixRef<T> value, In<T> grad, MatrixRef<T> m, MatrixRef<T> v, const AdamStep& s,
                          In<double> t) {
    detail::check::same_shape(who(), "adam_update", value, grad);
    detail::check::same_shape(who(), "adam_update", value, m);
    detail::check::same_shape(who(), "adam_update", value, v);
    detail::check::scalar(who(), "adam_update", t);
    const AdamStep::Corrections k = s.corrections(t.data[0]);
    for (std::size_t i = 0; i < value.size(); ++i) s.apply<T>(k, value.data[i], grad.data[i], m.data[i], v.data[i]);
  }

  // ---- execution --------------------------------------------------------------------------------------------------

  /// Runs f(0), ..., f(n - 1); here one after the other.
  template <class F>
  static void parallel_tasks(std::size_t n, F&& f) {
    for (std::size_t k = 0; k < n; ++k) f(k);
  }

 private:
  // f(field, entry index) for every entry of an [outer, channels, inner] array, in memory order.
  template <class F>
  static void for_each_field_entry(const FieldLayout& l, Index field_of, F&& f) {
    std::size_t i = 0;
    for (std::size_t o = 0; o < l.outer; ++o)
      for (std::size_t c = 0; c < l.channels; ++c) {
        const std::size_t field = idx(field_of, c);
        for (std::size_t k = 0; k < l.inner; ++k, ++i) f(field, i);
      }
  }
  template <class T>
  static void check_fields(const char* op, MatrixRef<T> x, const FieldLayout& l, Index field_of) {
    detail::check::fields(who(), op, x, l);
    detail::check::shape(who(), op, field_of, 1, l.channels, "field_of");
    for (std::size_t c = 0; c < l.channels; ++c)
      ACE_THROW_IF(idx(field_of, c) >= l.fields, invalid_argument, who(), "::", op, ": channel ", c, " in field ",
                   idx(field_of, c), " of ", l.fields);
  }
  template <class U, class V, class W>
  static void check_conv(const ConvGeometry& g, MatrixRef<U> x, MatrixRef<V> w, MatrixRef<W> y) {
    detail::check::conv(who(), g, x, w, y);
  }
  // f(tap, input pixel) for the taps of output pixel p that fall inside the image.
  template <class F>
  static void for_each_conv_tap(const ConvGeometry& g, std::size_t p, F&& f) {
    const std::size_t oy = p / g.out_cols(), ox = p % g.out_cols();
    for (std::size_t ky = 0; ky < g.kernel; ++ky)
      for (std::size_t kx = 0; kx < g.kernel; ++kx) {
        const auto iy = static_cast<std::ptrdiff_t>(oy * g.stride + ky) - static_cast<std::ptrdiff_t>(g.padding);
        const auto ix = static_cast<std::ptrdiff_t>(ox * g.stride + kx) - static_cast<std::ptrdiff_t>(g.padding);
        if (iy < 0 || ix < 0 || iy >= static_cast<std::ptrdiff_t>(g.rows) || ix >= static_cast<std::ptrdiff_t>(g.cols))
          continue;
        f(ky * g.kernel + kx, static_cast<std::size_t>(iy) * g.cols + static_cast<std::size_t>(ix));
      }
  }
  // f(output offset, input offsets, count) for every channel and window.
  template <class F>
  static void for_each_pool_window(const PoolGeometry& g, F&& f) {
    std::vector<std::size_t> in(g.window());
    for (std::size_t c = 0; c < g.channels; ++c)
      for (std::size_t oy = 0; oy < g.out_rows(); ++oy)
        for (std::size_t ox = 0; ox < g.out_cols(); ++ox) {
          for (std::size_t r = 0; r < g.win_rows; ++r)
            for (std::size_t s = 0; s < g.win_cols; ++s)
              in[r * g.win_cols + s] = image_offset(g.layout, c, (oy * g.win_rows + r) * g.cols + ox * g.win_cols + s,
                                                    g.channels, g.rows * g.cols);
          f(image_offset(g.layout, c, oy * g.out_cols() + ox, g.channels, g.out_rows() * g.out_cols()), in.data(),
            in.size());
        }
  }
  static void check_graph(const GraphShape& gs, Index row, Index col) { detail::check::edge_lists(who(), gs, row, col); }
};

/// The Reference backend: host memory in HostArray, every operation as ReferenceOps' plain loops.
struct Reference : ReferenceOps<Reference> {
  static constexpr const char* name = "Reference";
  template <class T, std::size_t N>
  using tensor = HostArray<T, N>;
};

static_assert(Backend<Reference>, "ace: the Reference backend must model the Backend concept.");

}  // namespace ace
