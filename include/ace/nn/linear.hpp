// SPDX-License-Identifier: MIT
// Linear: the dense layer y = x W^T + b.
#pragma once

#include <cmath>
#include <cstddef>

#include "ace/nn/module.hpp"
#include "ace/random.hpp"
#include "ace/tensor/cpu.hpp"

namespace ace {

struct LinearOptions {
  bool bias = true;
  /// Weights ~ N(0, gain / in_dim): 2 for ReLU (He), 1 for linear or tanh-like layers (LeCun).
  double gain = 1.0;
};

/// y = x W^T + b with W [Out::dim, In::dim] (PyTorch's layout) and an optional bias. Not equivariant: In and Out
/// only give the shapes, so the same type also serves as the non-equivariant branch of a relaxed layer between two
/// representations. Buffers are allocated on the first forward of a batch size and reused afterwards.
template <class T, FeatureSpace In, FeatureSpace Out, Backend B = Cpu>
class Linear {
 public:
  using scalar = T;
  using input = In;
  using output = Out;
  using backend = B;

  explicit Linear(Rng& rng, LinearOptions options = {})
      : weight_({Out::dim, In::dim}), weight_grad_({Out::dim, In::dim}), bias_({1, Out::dim}),
        bias_grad_({1, Out::dim}), has_bias_(options.bias) {
    ACE_THROW_IF(!(options.gain > 0.0), invalid_argument, "LinearOptions::gain must be > 0, got ", options.gain);
    const double sd = std::sqrt(options.gain / static_cast<double>(In::dim));
    for (auto& w : weight_) w = static_cast<T>(sd * rng.normal());
    B::fill(bias_, T(0));
    B::fill(weight_grad_, T(0));
    B::fill(bias_grad_, T(0));
  }

  const Tensor<T, 2>& forward(const Tensor<T, 2>& x) {
    require_columns(x, In::dim, "Linear::forward");
    x_ = &x;
    ensure_shape(y_, x.shape()[0], Out::dim);
    B::gemm(Transpose::no, Transpose::yes, T(1), x, weight_, T(0), y_);
    if (has_bias_) B::add_row(y_, bias_);
    return y_;
  }

  const Tensor<T, 2>& backward(const Tensor<T, 2>& dy) {
    ACE_THROW_IF(x_ == nullptr, invalid_argument, "Linear::backward called before forward");
    ACE_THROW_IF(dy.shape()[0] != x_->shape()[0] || dy.shape()[1] != Out::dim, shape_error,
                 "Linear::backward: expected a gradient of shape [", x_->shape()[0], ", ", Out::dim, "], got [",
                 dy.shape()[0], ", ", dy.shape()[1], "]");
    B::gemm(Transpose::yes, Transpose::no, T(1), dy, *x_, T(1), weight_grad_);  // dW += dy^T x
    if (has_bias_) B::sum_rows(dy, T(1), bias_grad_);                            // db += Σ_batch dy
    ensure_shape(dx_, dy.shape()[0], In::dim);
    B::gemm(Transpose::no, Transpose::no, T(1), dy, weight_, T(0), dx_);        // dx = dy W
    return dx_;
  }

  template <class F>
  void for_each_parameter(F&& f) {
    f(ParamView<T>{"weight", detail::span_of<T>(weight_), detail::span_of<T>(weight_grad_), Role::weight});
    if (has_bias_) f(ParamView<T>{"bias", detail::span_of<T>(bias_), detail::span_of<T>(bias_grad_), Role::bias});
  }

  Tensor<T, 2>& weight() { return weight_; }
  const Tensor<T, 2>& weight() const { return weight_; }
  Tensor<T, 2>& bias() { return bias_; }
  bool has_bias() const { return has_bias_; }

 private:
  Tensor<T, 2> weight_, weight_grad_, bias_, bias_grad_;
  bool has_bias_;
  const Tensor<T, 2>* x_ = nullptr;
  Tensor<T, 2> y_, dx_;
};

}  // namespace ace
