// SPDX-License-Identifier: MIT
// SiluMlp: Linear–SiLU–Linear with widths chosen at run time (the MLPs inside EGNN and ACE's relaxed branches).
#pragma once

#include <cstddef>
#include <string>
#include <utility>

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
    const tensor& z = first_.forward(x);
    ensure_shape(s_, z.shape()[0], z.shape()[1]);
    B::template map<SiLUOp>(view(z), view(s_));
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
    second_.backward_into(dy, view(ds_), T(0));
    B::template map_backward<SiLUOp>(view(first_.output()), view(std::as_const(s_)), view(std::as_const(ds_)),
                                     view(ds_));
  }

  Dense<T, B> first_, second_;
  tensor s_, ds_;
};

}  // namespace ace
