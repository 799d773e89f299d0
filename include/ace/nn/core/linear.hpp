// SPDX-License-Identifier: MIT
// The dense layer y = x W^T + b: Dense (widths chosen at run time) and Linear (the same layer with its feature spaces
// in the type, a Module).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "ace/backend/dense_fused.hpp"
#include "ace/error.hpp"
#include "ace/nn/module.hpp"
#include "ace/random.hpp"

namespace ace {

/// How a dense layer's parameters start.
enum class LinearInit {
  normal,  // W ~ N(0, gain / in), b = 0: gain 2 for ReLU (He), 1 for linear or tanh-like layers (LeCun)
  torch,   // PyTorch's nn.Linear default: W and b ~ U(-1/sqrt(in), 1/sqrt(in))
  xavier,  // W ~ U(-gain sqrt(6 / (in + out)), +...), b = 0
};

struct LinearOptions {
  bool bias = true;
  LinearInit init = LinearInit::normal;
  double gain = 1.0;  // for LinearInit::normal and LinearInit::xavier
};

/// y = x W^T + b with W [out, in] (PyTorch's layout) and an optional bias b [1, out], widths fixed at construction.
/// A Layer; composites also feed it column blocks of larger buffers (forward on a view) and take its input gradient
/// into a view of their own (backward_into). Buffers are allocated on the first forward of a batch size and reused.
/// Parameters: "weight", "bias".
template <class T, Backend B = Cpu>
class Dense {
 public:
  using scalar = T;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;

  Dense() = default;
  /// Weights and bias zero (set by the owner, e.g. an equivariant layer that builds W from its own parameters).
  Dense(std::size_t in, std::size_t out, bool bias) : weight_({out, in}), bias_({1, out}), has_bias_(bias) {}
  Dense(std::size_t in, std::size_t out, Rng& rng, LinearOptions options = {})
      : weight_({out, in}), bias_({1, out}), has_bias_(options.bias) {
    ACE_THROW_IF(in == 0 || out == 0, invalid_argument, "Dense: widths must be >= 1, got ", in, " -> ", out);
    ACE_THROW_IF(!(options.gain > 0.0), invalid_argument, "LinearOptions::gain must be > 0, got ", options.gain);
    std::vector<T> w(in * out), b(out, T(0));
    const double fan_in = static_cast<double>(in);
    if (options.init == LinearInit::normal) {
      const double sd = std::sqrt(options.gain / fan_in);
      for (auto& v : w) v = static_cast<T>(sd * rng.normal());
    } else {
      const double bound = options.init == LinearInit::torch
                               ? 1.0 / std::sqrt(fan_in)
                               : options.gain * std::sqrt(6.0 / static_cast<double>(in + out));
      for (auto& v : w) v = static_cast<T>(rng.uniform(-bound, bound));
      if (options.init == LinearInit::torch)
        for (auto& v : b) v = static_cast<T>(rng.uniform(-bound, bound));
    }
    if (!has_bias_) std::fill(b.begin(), b.end(), T(0));
    weight_.assign(w);
    bias_.assign(b);
  }

  std::size_t in() const { return weight_.value.shape()[1]; }
  std::size_t out() const { return weight_.value.shape()[0]; }

  const tensor& forward(const tensor& x) { return forward(view(x)); }
  /// y = x W^T + b for a view x [rows, in] (kept for backward: its memory must stay alive).
  const tensor& forward(MatrixRef<const T> x) {
    ACE_THROW_IF(x.cols != in(), shape_error, "Dense::forward: expected input of shape [batch, ", in(), "], got [",
                 x.rows, ", ", x.cols, "]");
    x_.set(x);
    ensure_shape(y_, x.rows, out());
    gemm_bias_act<NoActivation, B, T>(Transpose::no, Transpose::yes, T(1), x, view(std::as_const(weight_.value)),
                                      T(0), bias_view(), view(y_), {});
    return y_;
  }
  /// z = x W^T + b (the layer's output, kept for backward) and y = Op(z) into a view of the caller's [rows, out]:
  /// one fused operation on backends that have it (FusedDenseBackend), else the same steps in turn.
  template <class Op>
  const tensor& forward_activated(MatrixRef<const T> x, MatrixRef<T> y) {
    ACE_THROW_IF(x.cols != in() || y.rows != x.rows || y.cols != out(), shape_error,
                 "Dense::forward_activated: expected input [batch, ", in(), "] and output [batch, ", out(), "], got [",
                 x.rows, ", ", x.cols, "] and [", y.rows, ", ", y.cols, "]");
    x_.set(x);
    ensure_shape(y_, x.rows, out());
    gemm_bias_act<Op, B, T>(Transpose::no, Transpose::yes, T(1), x, view(std::as_const(weight_.value)), T(0),
                            bias_view(), view(y_), y);
    return y_;
  }
  /// dW += dy^T x, db += Σ_rows dy; returns dx = dy W (the layer's buffer).
  const tensor& backward(const tensor& dy) {
    ensure_shape(dx_, x_.rows(), in());
    backward_into(view(dy), view(dx_), T(0));
    return dx_;
  }
  /// The same with dx = dx_beta dx + dy W written into a view of the caller's (dx_beta = 1 accumulates).
  void backward_into(MatrixRef<const T> dy, MatrixRef<T> dx, T dx_beta) {
    accumulate_gradients(dy);
    B::gemm(Transpose::no, Transpose::no, T(1), dy, view(std::as_const(weight_.value)), dx_beta, dx);
  }
  /// The same through the activation that produced this layer's input x = Op(pre): dx = (dx_beta dx + dy W) ⊙
  /// Op'(pre, x), the gradient of the previous layer's pre-activation (one fused operation where the backend has it).
  template <class Op>
  void backward_into_through(MatrixRef<const T> dy, MatrixRef<const T> pre, MatrixRef<T> dx, T dx_beta) {
    accumulate_gradients(dy);
    gemm_act_grad<Op, B, T>(Transpose::no, Transpose::no, T(1), dy, view(std::as_const(weight_.value)), dx_beta, pre,
                            x_.get(), dx);
  }
  /// dW += dy^T x and db += Σ_rows dy only (a first layer whose input needs no gradient).
  void accumulate_gradients(MatrixRef<const T> dy) {
    ACE_THROW_IF(!x_, invalid_argument, "Dense::backward called before forward");
    ACE_THROW_IF(dy.rows != x_.rows() || dy.cols != out(), shape_error, "Dense::backward: expected a gradient of shape [",
                 x_.rows(), ", ", out(), "], got [", dy.rows, ", ", dy.cols, "]");
    B::gemm(Transpose::yes, Transpose::no, T(1), dy, x_.get(), T(1), view(weight_.grad));
    if (has_bias_) B::sum_rows(dy, T(1), view(bias_.grad));
  }
  /// dW[:, first : first + x.cols] += dy^T x, and db += Σ_rows dy when `bias`: the gradients for an input x given
  /// here (a fused kernel that computed the layer itself, or a block of the input's columns).
  void accumulate_gradients(MatrixRef<const T> dy, MatrixRef<const T> x, std::size_t first = 0, bool bias = true) {
    ACE_THROW_IF(dy.rows != x.rows || dy.cols != out() || first + x.cols > in(), shape_error,
                 "Dense::accumulate_gradients: dy [", dy.rows, ", ", dy.cols, "] and x [", x.rows, ", ", x.cols,
                 "] at column ", first, " for a layer ", in(), " -> ", out());
    B::gemm(Transpose::yes, Transpose::no, T(1), dy, x, T(1), view(weight_.grad).columns(first, x.cols));
    if (bias && has_bias_) B::sum_rows(dy, T(1), view(bias_.grad));
  }
  /// The output of the last forward.
  const tensor& output() const { return y_; }

  template <class F>
  void for_each_parameter(F&& f) {
    f(weight_.view("weight", Role::weight));
    if (has_bias_) f(bias_.view("bias", Role::bias));
  }

  /// W [out, in] and its gradient, b [1, out] and its gradient (backend tensors).
  tensor& weight() { return weight_.value; }
  const tensor& weight() const { return weight_.value; }
  tensor& weight_grad() { return weight_.grad; }
  tensor& bias() { return bias_.value; }
  const tensor& bias() const { return bias_.value; }
  tensor& bias_grad() { return bias_.grad; }
  bool has_bias() const { return has_bias_; }

 private:
  MatrixRef<const T> bias_view() const { return has_bias_ ? view(bias_.value) : MatrixRef<const T>{}; }

  detail::Parameter<B, T> weight_, bias_;
  bool has_bias_ = true;
  detail::ForwardRef<T> x_;
  tensor y_, dx_;
};

/// Dense between two feature spaces fixed in the type: a Module. Not equivariant: In and Out only give the shapes, so
/// the same type also serves as the non-equivariant branch of a relaxed layer between two representations.
template <class T, FeatureSpace In, FeatureSpace Out, Backend B = Cpu>
class Linear : public Dense<T, B> {
 public:
  using input = In;
  using output = Out;

  explicit Linear(Rng& rng, LinearOptions options = {}) : Dense<T, B>(In::dim, Out::dim, rng, options) {}
};

}  // namespace ace
