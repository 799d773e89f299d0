// SPDX-License-Identifier: MIT
// The CPU backend: xtensor storage, Eigen GEMM over mapped buffers.
#pragma once

#include <Eigen/Core>
#include <cstddef>

#include "ace/error.hpp"
#include "ace/tensor/backend.hpp"
#include "ace/tensor/tensor.hpp"

namespace ace {

/// Host memory and Eigen's GEMM (about 120 GFLOP/s sgemm per core with -march=native on a recent x86; much faster
/// than a misconfigured reference BLAS). Shapes are checked; buffers are never allocated by an operation.
struct Cpu {
  template <class T, std::size_t N>
  using tensor = Tensor<T, N>;

  /// c = alpha op(a) op(b) + beta c. c must already have the shape of the product.
  template <class T>
  static void gemm(Transpose ta, Transpose tb, T alpha, const Tensor<T, 2>& a, const Tensor<T, 2>& b, T beta,
                   Tensor<T, 2>& c) {
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

  /// c[i, :] += v for every row i (v is [1, cols]).
  template <class T>
  static void add_row(Tensor<T, 2>& c, const Tensor<T, 2>& v) {
    ACE_THROW_IF(v.shape()[0] != 1 || v.shape()[1] != c.shape()[1], shape_error, "Cpu::add_row: row of shape [",
                 v.shape()[0], ", ", v.shape()[1], "] for a tensor with ", c.shape()[1], " columns");
    as_matrix(c).rowwise() += as_matrix(v).row(0);
  }

  /// v = beta v + Σ_i a[i, :] (v is [1, cols]).
  template <class T>
  static void sum_rows(const Tensor<T, 2>& a, T beta, Tensor<T, 2>& v) {
    ACE_THROW_IF(v.shape()[0] != 1 || v.shape()[1] != a.shape()[1], shape_error, "Cpu::sum_rows: row of shape [",
                 v.shape()[0], ", ", v.shape()[1], "] for a tensor with ", a.shape()[1], " columns");
    auto mv = as_matrix(v);
    mv = beta * mv + as_matrix(a).colwise().sum();
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
