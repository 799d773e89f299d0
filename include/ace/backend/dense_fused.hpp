// SPDX-License-Identifier: MIT
// A dense layer's product and its elementwise epilogue as one backend operation, for backends that gain from fusing
// them (the Cpu backend: the bias and the activation run on each block of the GEMM's output while it is in cache, on
// the thread that computed it, instead of as separate passes over memory). Layers call the dispatching functions
// below; on a backend without the fused operations they run the same steps one operation at a time.
#pragma once

#include <type_traits>

#include "ace/backend/concept.hpp"
#include "ace/tensor/view.hpp"

namespace ace {

/// The activation argument of gemm_bias_act for a plain affine layer: z only, no y.
struct NoActivation {};

/// A backend with the fused dense operations, for scalar T and elementwise Op (ops.hpp, or NoActivation):
///   B::gemm_bias_act<Op>(ta, tb, alpha, a, b, beta, bias, z, y):
///       z = alpha op(a) op(b) + beta z + bias (bias [1, cols] added to every row; an empty view adds nothing;
///       beta = 0 ignores z's old contents), then y = Op(z) (y is not touched for NoActivation);
///   B::gemm_act_grad<Op>(ta, tb, alpha, a, b, beta, x, y, d):
///       d = (alpha op(a) op(b) + beta d) ⊙ Op'(x, y) given y = Op(x): the gradient of a layer's pre-activation.
/// Equal, up to rounding, to gemm, add_row and map (map_backward) in turn.
template <class B, class T>
concept FusedDenseBackend = requires(MatrixRef<const T> c, MatrixRef<T> m, T s) {
  B::template gemm_bias_act<SiLUOp>(Transpose::no, Transpose::yes, s, c, c, s, c, m, m);
  B::template gemm_bias_act<NoActivation>(Transpose::no, Transpose::yes, s, c, c, s, c, m, m);
  B::template gemm_act_grad<SiLUOp>(Transpose::no, Transpose::no, s, c, c, s, c, c, m);
};

/// z = alpha op(a) op(b) + beta z + bias, y = Op(z) (NoActivation: z only): B's fused operation where it has one,
/// else gemm, add_row and map.
template <class Op, Backend B, class T>
void gemm_bias_act(Transpose ta, Transpose tb, T alpha, std::type_identity_t<MatrixRef<const T>> a,
                   std::type_identity_t<MatrixRef<const T>> b, T beta, std::type_identity_t<MatrixRef<const T>> bias,
                   MatrixRef<T> z, MatrixRef<T> y) {
  if constexpr (FusedDenseBackend<B, T>) {
    B::template gemm_bias_act<Op>(ta, tb, alpha, a, b, beta, bias, z, y);
  } else {
    B::gemm(ta, tb, alpha, a, b, beta, z);
    if (!bias.empty()) B::add_row(z, bias);
    if constexpr (!std::is_same_v<Op, NoActivation>) B::template map<Op>(MatrixRef<const T>(z), y);
  }
}

/// d = (alpha op(a) op(b) + beta d) ⊙ Op'(x, y): B's fused operation where it has one, else gemm and map_backward.
template <class Op, Backend B, class T>
void gemm_act_grad(Transpose ta, Transpose tb, T alpha, std::type_identity_t<MatrixRef<const T>> a,
                   std::type_identity_t<MatrixRef<const T>> b, T beta, std::type_identity_t<MatrixRef<const T>> x,
                   std::type_identity_t<MatrixRef<const T>> y, MatrixRef<T> d) {
  if constexpr (FusedDenseBackend<B, T>) {
    B::template gemm_act_grad<Op>(ta, tb, alpha, a, b, beta, x, y, d);
  } else {
    B::gemm(ta, tb, alpha, a, b, beta, d);
    B::template map_backward<Op>(x, y, MatrixRef<const T>(d), d);
  }
}

}  // namespace ace
