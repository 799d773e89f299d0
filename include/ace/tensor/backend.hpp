// SPDX-License-Identifier: MIT
// The Backend concept: the operations layers need, so a layer is written once for every backend.
#pragma once

#include <concepts>
#include <cstddef>

#include "ace/tensor/tensor.hpp"

namespace ace {

enum class Transpose { no, yes };

/// Reductions over a set or group axis.
enum class Reduce { sum, mean, max };

inline const char* reduce_name(Reduce r) {
  return r == Reduce::sum ? "sum" : r == Reduce::mean ? "mean" : "max";
}

/// A compute backend. Layers call only these operations on tensors of the backend's type, so a device backend
/// (CUDA) slots in without touching them. Every operation works on rank-2 row-major tensors [rows, cols]:
///  * `tensor<T, N>`: the storage type;
///  * `gemm(ta, tb, alpha, a, b, beta, c)`: c = alpha op(a) op(b) + beta c (the GEMM every dense layer is made of),
///    on tensors or on MatrixRef views (reshaped batches, column blocks);
///  * `segment_reduce(kind, x, n, y, argmax)` / `segment_reduce_backward(kind, dy, n, argmax, dx)`: sum, mean or max
///    over consecutive groups of n rows (set pooling, group pooling, broadcasts);
///  * `add_row(c, v)`: c[i, :] += v (bias);  `sum_rows(a, beta, v)`: v = beta v + Σ_i a[i, :] (bias gradient);
///  * `map<Op>(x, y)`: y = Op::f(x) elementwise;  `map_backward<Op>(x, y, dy, dx)`: dx = Op::df(x, y) * dy;
///  * `fill(a, value)`, `axpy(alpha, x, y)`: y += alpha x.
/// `Op` types are plain structs with static f and df, so a device backend can run them in its kernels.
template <class B>
concept Backend = requires {
  typename B::template tensor<float, 2>;
  typename B::template tensor<double, 2>;
} && requires(typename B::template tensor<float, 2>& t, const typename B::template tensor<float, 2>& c) {
  B::gemm(Transpose::no, Transpose::yes, 1.0f, c, c, 0.0f, t);
  B::gemm(Transpose::no, Transpose::yes, 1.0f, view(c), view(c), 0.0f, view(t));
  B::segment_reduce(Reduce::sum, view(c), std::size_t{1}, view(t));
  B::segment_reduce_backward(Reduce::sum, view(c), std::size_t{1}, nullptr, view(t));
  B::add_row(t, c);
  B::sum_rows(c, 0.0f, t);
  B::fill(t, 0.0f);
  B::axpy(1.0f, c, t);
};

}  // namespace ace
