// SPDX-License-Identifier: MIT
// Pointwise nonlinearities: ReLU, SiLU, GELU, Tanh (the Op structs are the backend's, backend/ops.hpp).
#pragma once

#include "ace/backend/ops.hpp"
#include "ace/nn/module.hpp"

namespace ace {

/// y = Op(x) entrywise on a feature space S. Entrywise maps commute with permutation matrices, so on a permutation
/// representation (Regular, Natural, Quotient, Trivial and their sums, multiples and products) the layer is exactly
/// equivariant; on other representations it is not, and using it there fails to compile.
template <class Op, class T, FeatureSpace S, Backend B = Cpu>
class Pointwise {
  static_assert(!Representation<S> || PermutationRepresentation<S>,
                "ace: a pointwise nonlinearity is equivariant only on permutation representations (Regular, Natural, "
                "Quotient, Trivial and their sums); for Standard, Sign or irreps use a norm-based or gated "
                "nonlinearity.");

 public:
  using scalar = T;
  using input = S;
  using output = S;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;

  const tensor& forward(const tensor& x) {
    require_columns(x, S::dim, "Pointwise::forward");
    x_.set(view(x));
    ensure_shape(y_, x.shape()[0], S::dim);
    B::template map<Op>(view(x), view(y_));
    return y_;
  }
  const tensor& backward(const tensor& dy) {
    const std::size_t batch = detail::backward_batch(x_, dy, S::dim, "Pointwise");
    ensure_shape(dx_, batch, S::dim);
    B::template map_backward<Op>(x_.get(), view(std::as_const(y_)), view(dy), view(dx_));
    return dx_;
  }
  template <class F>
  void for_each_parameter(F&&) {}

 private:
  detail::ForwardRef<T> x_;
  tensor y_, dx_;
};

template <class T, FeatureSpace S, Backend B = Cpu> using ReLU = Pointwise<ReLUOp, T, S, B>;
template <class T, FeatureSpace S, Backend B = Cpu> using SiLU = Pointwise<SiLUOp, T, S, B>;
template <class T, FeatureSpace S, Backend B = Cpu> using GELU = Pointwise<GELUOp, T, S, B>;
template <class T, FeatureSpace S, Backend B = Cpu> using Tanh = Pointwise<TanhOp, T, S, B>;

}  // namespace ace
