// SPDX-License-Identifier: MIT
// Pointwise nonlinearities: ReLU, SiLU, GELU, Tanh.
#pragma once

#include <cmath>
#include <numbers>

#include "ace/nn/module.hpp"
#include "ace/tensor/cpu.hpp"

namespace ace {

// Elementwise operations: f(x), and df(x, y) = f'(x) given y = f(x) (whichever is cheaper to use).
struct ReLUOp {
  template <class T> static T f(T x) { return x > T(0) ? x : T(0); }
  template <class T> static T df(T x, T) { return x > T(0) ? T(1) : T(0); }
};
struct SiLUOp {  // x * sigmoid(x)
  template <class T> static T f(T x) { return x / (T(1) + std::exp(-x)); }
  template <class T> static T df(T x, T) {
    const T s = T(1) / (T(1) + std::exp(-x));
    return s * (T(1) + x * (T(1) - s));
  }
};
struct TanhOp {
  template <class T> static T f(T x) { return std::tanh(x); }
  template <class T> static T df(T, T y) { return T(1) - y * y; }
};
struct GELUOp {  // the exact (erf) form, PyTorch's default
  template <class T> static T f(T x) { return T(0.5) * x * (T(1) + std::erf(x * T(std::numbers::sqrt2 / 2))); }
  template <class T> static T df(T x, T) {
    const T cdf = T(0.5) * (T(1) + std::erf(x * T(std::numbers::sqrt2 / 2)));
    const T pdf = std::exp(T(-0.5) * x * x) * T(0.5 * std::numbers::inv_sqrtpi * std::numbers::sqrt2);
    return cdf + x * pdf;
  }
};

/// y = Op(x) entrywise on a feature space S. Entrywise maps commute with permutation matrices, so on a
/// permutation representation (Regular, Natural, Quotient, Trivial and their sums, multiples and products) the
/// layer is exactly equivariant; on other representations it is not, and using it there fails to compile.
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

  const Tensor<T, 2>& forward(const Tensor<T, 2>& x) {
    require_columns(x, S::dim, "Pointwise::forward");
    x_ = &x;
    B::template map<Op>(x, y_);
    return y_;
  }
  const Tensor<T, 2>& backward(const Tensor<T, 2>& dy) {
    ACE_THROW_IF(!x_, invalid_argument, "Pointwise::backward called before forward");
    B::template map_backward<Op>(*x_, y_, dy, dx_);
    return dx_;
  }
  template <class F>
  void for_each_parameter(F&&) {}

 private:
  detail::ForwardRef<T> x_;
  Tensor<T, 2> y_, dx_;
};

template <class T, FeatureSpace S, Backend B = Cpu> using ReLU = Pointwise<ReLUOp, T, S, B>;
template <class T, FeatureSpace S, Backend B = Cpu> using SiLU = Pointwise<SiLUOp, T, S, B>;
template <class T, FeatureSpace S, Backend B = Cpu> using GELU = Pointwise<GELUOp, T, S, B>;
template <class T, FeatureSpace S, Backend B = Cpu> using Tanh = Pointwise<TanhOp, T, S, B>;

}  // namespace ace
