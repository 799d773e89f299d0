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
    detail::affine_forward<B>(x, weight_, has_bias_ ? &bias_ : nullptr, y_);
    return y_;
  }

  const Tensor<T, 2>& backward(const Tensor<T, 2>& dy) {
    // dW += dy^T x, db += Σ_batch dy, dx = dy W
    detail::affine_backward<B>(x_.get(), weight_, dy, T(1), weight_grad_, has_bias_ ? &bias_grad_ : nullptr, dx_,
                               "Linear::backward");
    return dx_;
  }

  template <class F>
  void for_each_parameter(F&& f) {
    f(detail::param_view("weight", weight_, weight_grad_, Role::weight));
    if (has_bias_) f(detail::param_view("bias", bias_, bias_grad_, Role::bias));
  }

  Tensor<T, 2>& weight() { return weight_; }
  const Tensor<T, 2>& weight() const { return weight_; }
  Tensor<T, 2>& bias() { return bias_; }
  bool has_bias() const { return has_bias_; }

 private:
  Tensor<T, 2> weight_, weight_grad_, bias_, bias_grad_;
  bool has_bias_;
  detail::ForwardRef<T> x_;
  Tensor<T, 2> y_, dx_;
};

}  // namespace ace
