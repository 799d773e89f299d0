// SPDX-License-Identifier: MIT
// Building blocks of composite layers whose widths are chosen at run time (EGNN, relaxed branches): a dense layer
// that works on views and keeps no pointer to its input, SiLU on whole buffers, and a Linear–SiLU–Linear MLP.
#pragma once

#include <cmath>
#include <cstddef>
#include <string>
#include <utility>

#include "ace/error.hpp"
#include "ace/nn/module.hpp"
#include "ace/random.hpp"
#include "ace/tensor/cpu.hpp"

namespace ace {

/// How a Dense layer's parameters start.
enum class DenseInit {
  torch,   // PyTorch's nn.Linear default: W and b ~ U(-1/sqrt(in), 1/sqrt(in))
  xavier,  // W ~ U(-g sqrt(6 / (in + out)), +...), b = 0 (g = the gain)
};

struct DenseOptions {
  bool bias = true;
  DenseInit init = DenseInit::torch;
  double gain = 1.0;  // for DenseInit::xavier
};

/// y = x W^T + b with W [out, in] (PyTorch's layout), widths fixed at construction. Unlike Linear it is not a
/// Module: the caller owns the input and the buffers and passes them to forward and backward, which lets a
/// composite layer feed it column blocks of larger buffers without copies.
template <class T, Backend B = Cpu>
class Dense {
 public:
  Dense() = default;
  Dense(std::size_t in, std::size_t out, Rng& rng, DenseOptions options = {})
      : weight_({out, in}), weight_grad_({out, in}), bias_({1, out}), bias_grad_({1, out}), has_bias_(options.bias) {
    ACE_THROW_IF(in == 0 || out == 0, invalid_argument, "Dense: widths must be >= 1, got ", in, " -> ", out);
    ACE_THROW_IF(!(options.gain > 0.0), invalid_argument, "DenseOptions::gain must be > 0, got ", options.gain);
    const double bound = options.init == DenseInit::torch
                             ? 1.0 / std::sqrt(static_cast<double>(in))
                             : options.gain * std::sqrt(6.0 / static_cast<double>(in + out));
    for (auto& w : weight_) w = static_cast<T>(rng.uniform(-bound, bound));
    for (auto& b : bias_) b = options.init == DenseInit::torch ? static_cast<T>(rng.uniform(-bound, bound)) : T(0);
    if (!has_bias_) B::fill(bias_, T(0));
    B::fill(weight_grad_, T(0));
    B::fill(bias_grad_, T(0));
  }

  std::size_t in() const { return weight_.shape()[1]; }
  std::size_t out() const { return weight_.shape()[0]; }

  /// y = x W^T + b (y resized to [rows, out] when needed).
  void forward(MatrixRef<const T> x, Tensor<T, 2>& y) const {
    ensure_shape(y, x.rows, out());
    forward_into(x, view(y));
  }
  /// The same into an existing view (e.g. a column block of a larger buffer).
  void forward_into(MatrixRef<const T> x, MatrixRef<T> y) const {
    ACE_THROW_IF(x.cols != in(), shape_error, "Dense::forward: expected ", in(), " input columns, got ", x.cols);
    B::template gemm<T>(Transpose::no, Transpose::yes, T(1), x, view(weight_), T(0), y);
    if (has_bias_) as_matrix(y).rowwise() += as_matrix(view(bias_)).row(0);
  }

  /// Accumulates dW += dy^T x and db += Σ_rows dy.
  void backward(MatrixRef<const T> x, MatrixRef<const T> dy) {
    ACE_THROW_IF(dy.cols != out() || dy.rows != x.rows, shape_error, "Dense::backward: expected a gradient of [",
                 x.rows, ", ", out(), "], got [", dy.rows, ", ", dy.cols, "]");
    B::template gemm<T>(Transpose::yes, Transpose::no, T(1), dy, x, T(1), view(weight_grad_));
    if (has_bias_) as_matrix(view(bias_grad_)).row(0) += as_matrix(dy).colwise().sum();
  }
  /// The same, and dx = dx_beta dx + dy W.
  void backward(MatrixRef<const T> x, MatrixRef<const T> dy, MatrixRef<T> dx, T dx_beta = T(0)) {
    backward(x, dy);
    B::template gemm<T>(Transpose::no, Transpose::no, T(1), dy, view(std::as_const(weight_)), dx_beta, dx);
  }

  /// Calls f(ParamView) for "<prefix>weight" and, with a bias, "<prefix>bias".
  template <class F>
  void for_each_parameter(const std::string& prefix, F&& f) {
    f(detail::param_view(prefix + "weight", weight_, weight_grad_, Role::weight));
    if (has_bias_) f(detail::param_view(prefix + "bias", bias_, bias_grad_, Role::bias));
  }

  Tensor<T, 2>& weight() { return weight_; }
  const Tensor<T, 2>& weight() const { return weight_; }
  Tensor<T, 2>& bias() { return bias_; }
  Tensor<T, 2>& weight_grad() { return weight_grad_; }
  Tensor<T, 2>& bias_grad() { return bias_grad_; }
  bool has_bias() const { return has_bias_; }

 private:
  Tensor<T, 2> weight_, weight_grad_, bias_, bias_grad_;
  bool has_bias_ = true;
};

namespace detail {
/// s = z * sigmoid(z), keeping sigmoid(z) for the backward pass (vectorised through Eigen's array exp).
template <class T>
void silu_forward(const Tensor<T, 2>& z, Tensor<T, 2>& sig, Tensor<T, 2>& s) {
  ensure_shape(sig, z.shape()[0], z.shape()[1]);
  ensure_shape(s, z.shape()[0], z.shape()[1]);
  auto zm = as_matrix(z).array();
  as_matrix(sig).array() = T(0.5) + T(0.5) * (T(0.5) * zm).tanh();  // = 1 / (1 + exp(-z)), one vectorised tanh
  as_matrix(s).array() = zm * as_matrix(sig).array();
}
/// ds -> dz in place: dz = ds * (sigmoid + s (1 - sigmoid)).
template <class T>
void silu_backward(const Tensor<T, 2>& sig, const Tensor<T, 2>& s, Tensor<T, 2>& ds) {
  auto g = as_matrix(sig).array();
  as_matrix(ds).array() *= g + as_matrix(s).array() * (T(1) - g);
}
}  // namespace detail

/// Linear–SiLU–Linear on views (the MLPs inside EGNN and the relaxed branches), keeping what backward needs.
/// Parameters are named "<prefix>0.*" and "<prefix>2.*", as in a PyTorch nn.Sequential.
template <class T, Backend B = Cpu>
class SiluMlp {
 public:
  SiluMlp() = default;
  /// `last` sets the second layer's bias and initialisation (e.g. EGNN's coordinate MLP: no bias, Xavier 0.001).
  SiluMlp(std::size_t in, std::size_t hidden, std::size_t out, Rng& rng, DenseOptions last = {})
      : first_(in, hidden, rng), second_(hidden, out, rng, last) {}

  /// y = W2 silu(W1 x + b1) + b2 (the module's buffer, valid until the next forward).
  const Tensor<T, 2>& forward(MatrixRef<const T> x) {
    first_.forward(x, z_);
    detail::silu_forward(z_, sig_, s_);
    second_.forward(view(std::as_const(s_)), y_);
    return y_;
  }
  /// Given dL/dy for the last forward at x: accumulates the parameter gradients and sets dx = dx_beta dx + dL/dx.
  void backward(MatrixRef<const T> x, MatrixRef<const T> dy, MatrixRef<T> dx, T dx_beta = T(0)) {
    ensure_shape(ds_, s_.shape()[0], s_.shape()[1]);
    second_.backward(view(std::as_const(s_)), dy, view(ds_));
    detail::silu_backward(sig_, s_, ds_);
    first_.backward(x, view(std::as_const(ds_)), dx, dx_beta);
  }
  const Tensor<T, 2>& output() const { return y_; }

  template <class F>
  void for_each_parameter(const std::string& prefix, F&& f) {
    first_.for_each_parameter(prefix + "0.", f);
    second_.for_each_parameter(prefix + "2.", f);
  }

 private:
  Dense<T, B> first_, second_;
  Tensor<T, 2> z_, sig_, s_, y_, ds_;
};

}  // namespace ace
