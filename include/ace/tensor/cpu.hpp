// SPDX-License-Identifier: MIT
// The CPU backend: xtensor storage, Eigen GEMM over mapped buffers.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "ace/error.hpp"
#include "ace/tensor/backend.hpp"
#include "ace/tensor/parallel.hpp"
#include "ace/tensor/tensor.hpp"

namespace ace {

/// Host memory and Eigen's GEMM (about 120 GFLOP/s sgemm per core with -march=native on a recent x86; much faster
/// than a misconfigured reference BLAS). Shapes are checked; buffers are never allocated by an operation.
struct Cpu {
  template <class T, std::size_t N>
  using tensor = Tensor<T, N>;

  /// c = alpha op(a) op(b) + beta c on views (c must already have the shape of the product). With OpenMP enabled,
  /// Eigen splits large products across threads; each entry is still summed in a fixed order.
  template <class T>
  static void gemm(Transpose ta, Transpose tb, T alpha, std::type_identity_t<MatrixRef<const T>> a,
                   std::type_identity_t<MatrixRef<const T>> b, T beta, MatrixRef<T> c) {
    const auto ma = as_matrix(a);
    const auto mb = as_matrix(b);
    auto mc = as_matrix(c);
    const Eigen::Index m = ta == Transpose::no ? ma.rows() : ma.cols();
    const Eigen::Index k = ta == Transpose::no ? ma.cols() : ma.rows();
    const Eigen::Index kb = tb == Transpose::no ? mb.rows() : mb.cols();
    const Eigen::Index n = tb == Transpose::no ? mb.cols() : mb.rows();
    ACE_THROW_IF(k != kb || mc.rows() != m || mc.cols() != n, shape_error, "Cpu::gemm: op(a) is ", m, " x ", k,
                 ", op(b) is ", kb, " x ", n, ", c is ", mc.rows(), " x ", mc.cols());
    if (beta == T(0)) mc.setZero();
    else if (beta != T(1)) mc *= beta;
    if (ta == Transpose::no && tb == Transpose::no) mc.noalias() += alpha * ma * mb;
    else if (ta == Transpose::no) mc.noalias() += alpha * ma * mb.transpose();
    else if (tb == Transpose::no) mc.noalias() += alpha * ma.transpose() * mb;
    else mc.noalias() += alpha * ma.transpose() * mb.transpose();
  }
  /// The same on whole rank-2 tensors.
  template <class T>
  static void gemm(Transpose ta, Transpose tb, T alpha, const Tensor<T, 2>& a, const Tensor<T, 2>& b, T beta,
                   Tensor<T, 2>& c) {
    gemm<T>(ta, tb, alpha, view(a), view(b), beta, view(c));
  }

  /// c[i, :] += v for every row i (v is [1, cols]).
  template <class T>
  static void add_row(Tensor<T, 2>& c, const Tensor<T, 2>& v) {
    ACE_THROW_IF(v.shape()[0] != 1 || v.shape()[1] != c.shape()[1], shape_error, "Cpu::add_row: row of shape [",
                 v.shape()[0], ", ", v.shape()[1], "] for a tensor with ", c.shape()[1], " columns");
    as_matrix(c).rowwise() += as_matrix(v).row(0);
  }

  /// v = beta v + Σ_i a[i, :] (v is [1, cols]); with beta = 0, v's old contents are ignored (as in BLAS).
  template <class T>
  static void sum_rows(const Tensor<T, 2>& a, T beta, Tensor<T, 2>& v) {
    ACE_THROW_IF(v.shape()[0] != 1 || v.shape()[1] != a.shape()[1], shape_error, "Cpu::sum_rows: row of shape [",
                 v.shape()[0], ", ", v.shape()[1], "] for a tensor with ", a.shape()[1], " columns");
    auto mv = as_matrix(v);
    if (beta == T(0)) mv = as_matrix(a).colwise().sum();  // never 0 * (uninitialised memory, possibly NaN)
    else mv = beta * mv + as_matrix(a).colwise().sum();
  }

  template <class T, std::size_t N>
  static void fill(Tensor<T, N>& a, T value) {
    std::fill(a.begin(), a.end(), value);
  }

  /// y += alpha x (same shapes).
  template <class T, std::size_t N>
  static void axpy(T alpha, const Tensor<T, N>& x, Tensor<T, N>& y) {
    ACE_THROW_IF(x.shape() != y.shape(), shape_error, "Cpu::axpy: shapes differ (", x.size(), " vs ", y.size(),
                 " entries)");
    T* py = y.data();
    const T* px = x.data();
    for (std::size_t i = 0; i < y.size(); ++i) py[i] += alpha * px[i];
  }

  /// Reduces consecutive segments of rows: x is [batch * segment, cols], y[b, :] = reduce over x[b * segment + i, :]
  /// for i < segment (sum, mean or max). For max, argmax[b * cols + j] receives the winning i (the first on ties).
  template <class T>
  static void segment_reduce(Reduce kind, std::type_identity_t<MatrixRef<const T>> x, std::size_t segment,
                             MatrixRef<T> y, std::uint32_t* argmax = nullptr) {
    ACE_THROW_IF(segment == 0 || x.rows != y.rows * segment || x.cols != y.cols, shape_error,
                 "Cpu::segment_reduce: ", x.rows, " x ", x.cols, " rows in segments of ", segment, " into ", y.rows,
                 " x ", y.cols);
    ACE_THROW_IF(kind == Reduce::max && argmax == nullptr, invalid_argument,
                 "Cpu::segment_reduce: max needs an argmax buffer");
    const T scale = kind == Reduce::mean ? T(1) / static_cast<T>(segment) : T(1);
    ACE_OMP_FOR(x.rows * x.cols > (std::size_t{1} << 16))
    for (std::size_t b = 0; b < y.rows; ++b) {
      T* out = y.data + b * y.stride;
      const T* first = x.data + b * segment * x.stride;
      std::copy(first, first + x.cols, out);
      if (kind == Reduce::max) {
        std::uint32_t* arg = argmax + b * y.cols;
        std::fill(arg, arg + y.cols, 0u);
        for (std::size_t i = 1; i < segment; ++i) {
          const T* row = first + i * x.stride;
          for (std::size_t j = 0; j < x.cols; ++j)
            if (row[j] > out[j]) {
              out[j] = row[j];
              arg[j] = static_cast<std::uint32_t>(i);
            }
        }
      } else {
        for (std::size_t i = 1; i < segment; ++i) {
          const T* row = first + i * x.stride;
          for (std::size_t j = 0; j < x.cols; ++j) out[j] += row[j];
        }
        if (scale != T(1))
          for (std::size_t j = 0; j < x.cols; ++j) out[j] *= scale;
      }
    }
  }

  /// The adjoint of segment_reduce, accumulated: dx[b * segment + i, :] += dy[b, :] (sum), dy / segment (mean), or
  /// into the argmax row only (max). With kind = sum this is also a broadcast add of one row per segment.
  template <class T>
  static void segment_reduce_backward(Reduce kind, std::type_identity_t<MatrixRef<const T>> dy, std::size_t segment,
                                      const std::uint32_t* argmax, MatrixRef<T> dx) {
    ACE_THROW_IF(segment == 0 || dx.rows != dy.rows * segment || dx.cols != dy.cols, shape_error,
                 "Cpu::segment_reduce_backward: ", dy.rows, " x ", dy.cols, " into segments of ", segment, " of ",
                 dx.rows, " x ", dx.cols);
    const T scale = kind == Reduce::mean ? T(1) / static_cast<T>(segment) : T(1);
    ACE_OMP_FOR(dx.rows * dx.cols > (std::size_t{1} << 16))
    for (std::size_t b = 0; b < dy.rows; ++b) {
      const T* g = dy.data + b * dy.stride;
      T* first = dx.data + b * segment * dx.stride;
      if (kind == Reduce::max) {
        const std::uint32_t* arg = argmax + b * dy.cols;
        for (std::size_t j = 0; j < dy.cols; ++j) first[arg[j] * dx.stride + j] += g[j];
      } else {
        for (std::size_t i = 0; i < segment; ++i) {
          T* row = first + i * dx.stride;
          for (std::size_t j = 0; j < dy.cols; ++j) row[j] += scale * g[j];
        }
      }
    }
  }

  /// y = Op::f(x) elementwise (y is resized to x's shape if needed).
  template <class Op, class T, std::size_t N>
  static void map(const Tensor<T, N>& x, Tensor<T, N>& y) {
    if (y.shape() != x.shape()) y.resize(x.shape());
    const T* px = x.data();
    T* py = y.data();
    for (std::size_t i = 0; i < x.size(); ++i) py[i] = Op::f(px[i]);
  }

  /// dx = Op::df(x, y) * dy elementwise, where y = Op::f(x) was the forward output.
  template <class Op, class T, std::size_t N>
  static void map_backward(const Tensor<T, N>& x, const Tensor<T, N>& y, const Tensor<T, N>& dy, Tensor<T, N>& dx) {
    ACE_THROW_IF(dy.shape() != x.shape(), shape_error, "Cpu::map_backward: gradient has ", dy.size(),
                 " entries, the forward input had ", x.size());
    if (dx.shape() != x.shape()) dx.resize(x.shape());
    const T *px = x.data(), *py = y.data(), *pdy = dy.data();
    T* pdx = dx.data();
    for (std::size_t i = 0; i < x.size(); ++i) pdx[i] = Op::df(px[i], py[i]) * pdy[i];
  }
};

static_assert(Backend<Cpu>);

}  // namespace ace
