// SPDX-License-Identifier: MIT
// SiluMlp: Linear–SiLU–Linear with widths chosen at run time (the MLPs inside EGNN and ACE's relaxed branches);
// Mlp<Op>: any depth, any elementwise activation (SEGNN's relaxed branches: GELU).
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "ace/backend/ops.hpp"
#include "ace/nn/core/linear.hpp"
#include "ace/nn/module.hpp"
#include "ace/random.hpp"

namespace ace {

/// y = W2 silu(W1 x + b1) + b2, a Layer. Both dense layers start as PyTorch's nn.Linear unless `last` says otherwise
/// for the second (EGNN's coordinate MLP: no bias, Xavier gain 0.001). Parameters "0.weight", "0.bias", "2.weight",
/// "2.bias", as in a PyTorch nn.Sequential.
template <class T, Backend B = Cpu>
class SiluMlp {
 public:
  using scalar = T;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;

  SiluMlp() = default;
  SiluMlp(std::size_t in, std::size_t hidden, std::size_t out, Rng& rng,
          LinearOptions last = {.init = LinearInit::torch})
      : first_(in, hidden, rng, {.init = LinearInit::torch}), second_(hidden, out, rng, last) {}

  const tensor& forward(const tensor& x) { return forward(view(x)); }
  /// On a view of the caller's (kept for backward).
  const tensor& forward(MatrixRef<const T> x) {
    ensure_shape(s_, x.rows, first_.out());
    first_.template forward_activated<SiLUOp>(x, view(s_));
    return second_.forward(view(std::as_const(s_)));
  }
  const tensor& backward(const tensor& dy) {
    backward_hidden(view(dy));
    return first_.backward(ds_);
  }
  /// Accumulates the parameter gradients and sets dx = dx_beta dx + dL/dx in a view of the caller's.
  void backward_into(MatrixRef<const T> dy, MatrixRef<T> dx, T dx_beta) {
    backward_hidden(dy);
    first_.backward_into(view(std::as_const(ds_)), dx, dx_beta);
  }
  /// The same through the activation that produced this MLP's input x = Op(pre): dx = (dx_beta dx + dL/dx) ⊙
  /// Op'(pre, x) (Dense::backward_into_through).
  template <class Op>
  void backward_into_through(MatrixRef<const T> dy, MatrixRef<const T> pre, MatrixRef<T> dx, T dx_beta) {
    backward_hidden(dy);
    first_.template backward_into_through<Op>(view(std::as_const(ds_)), pre, dx, dx_beta);
  }
  const tensor& output() const { return second_.output(); }
  /// The two dense layers (a fused kernel reads their weights and forms their gradients itself).
  Dense<T, B>& first() { return first_; }
  const Dense<T, B>& first() const { return first_; }
  Dense<T, B>& second() { return second_; }
  const Dense<T, B>& second() const { return second_; }

  template <class F>
  void for_each_parameter(F&& f) {
    detail::for_each_prefixed(first_, "0", f);
    detail::for_each_prefixed(second_, "2", f);
  }

 private:
  // ds = dL/dz of the first layer's output z.
  void backward_hidden(MatrixRef<const T> dy) {
    ensure_shape(ds_, s_.shape()[0], s_.shape()[1]);
    second_.template backward_into_through<SiLUOp>(dy, view(first_.output()), view(ds_), T(0));
  }

  Dense<T, B> first_, second_;
  tensor s_, ds_;
};

/// y = L_n(f(... f(L_1 x))): dense layers of the given widths (widths[0] -> widths[1] -> ...) with the elementwise
/// Op between them (not after the last), every layer PyTorch's nn.Linear at the start; a Layer. Parameters
/// "0.weight", "0.bias", "2.weight", ... as in a PyTorch nn.Sequential of Linear and activation modules.
template <class Op, class T, Backend B = Cpu>
class Mlp {
 public:
  using scalar = T;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;

  Mlp() = default;
  Mlp(const std::vector<std::size_t>& widths, Rng& rng) {
    ACE_THROW_IF(widths.size() < 2, invalid_argument, "Mlp: needs at least an input and an output width, got ",
                 widths.size(), " widths");
    for (std::size_t i = 0; i + 1 < widths.size(); ++i)
      layers_.emplace_back(widths[i], widths[i + 1], rng, LinearOptions{.init = LinearInit::torch});
    act_.resize(layers_.size() - 1);
    dact_.resize(layers_.size() - 1);
  }

  const tensor& forward(const tensor& x) { return forward(view(x)); }
  /// On a view of the caller's (kept for backward).
  const tensor& forward(MatrixRef<const T> x) {
    for (std::size_t i = 0; i + 1 < layers_.size(); ++i) {
      ensure_shape(act_[i], x.rows, layers_[i].out());
      layers_[i].template forward_activated<Op>(i == 0 ? x : view(std::as_const(act_[i - 1])), view(act_[i]));
    }
    return layers_.back().forward(layers_.size() == 1 ? x : view(std::as_const(act_[layers_.size() - 2])));
  }
  const tensor& backward(const tensor& dy) {
    ensure_shape(dx_, dy.shape()[0], layers_.front().in());
    backward_into(view(dy), view(dx_), T(0));
    return dx_;
  }
  /// Accumulates the parameter gradients and sets dx = dx_beta dx + dL/dx in a view of the caller's.
  void backward_into(MatrixRef<const T> dy, MatrixRef<T> dx, T dx_beta) {
    for (std::size_t i = layers_.size(); i-- > 1;) {
      tensor& d = dact_[i - 1];
      ensure_shape(d, dy.rows, layers_[i].in());
      layers_[i].template backward_into_through<Op>(i + 1 == layers_.size() ? dy : view(std::as_const(dact_[i])),
                                                   view(layers_[i - 1].output()), view(d), T(0));
    }
    layers_.front().backward_into(layers_.size() == 1 ? dy : view(std::as_const(dact_[0])), dx, dx_beta);
  }
  const tensor& output() const { return layers_.back().output(); }
  std::size_t size() const { return layers_.size(); }

  template <class F>
  void for_each_parameter(F&& f) {
    for (std::size_t i = 0; i < layers_.size(); ++i) detail::for_each_prefixed(layers_[i], detail::concat(2 * i), f);
  }

 private:
  std::vector<Dense<T, B>> layers_;
  std::vector<tensor> act_, dact_;
  tensor dx_;
};

}  // namespace ace
