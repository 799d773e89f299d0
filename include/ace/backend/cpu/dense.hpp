// SPDX-License-Identifier: MIT
// The Cpu backend's GEMM: Eigen's, on strided views of host memory.
#pragma once

#include <type_traits>

#include "ace/backend/checks.hpp"
#include "ace/backend/ops.hpp"
#include "ace/tensor/eigen.hpp"
#include "ace/tensor/tensor.hpp"

namespace ace::cpu {

/// c = alpha op(a) op(b) + beta c on views (c must already have the shape of the product; beta = 0 ignores its old
/// contents, as in BLAS). With OpenMP enabled, Eigen splits large products across threads; each entry is still
/// summed in a fixed order.
template <class T>
void gemm(Transpose ta, Transpose tb, T alpha, std::type_identity_t<MatrixRef<const T>> a,
          std::type_identity_t<MatrixRef<const T>> b, T beta, MatrixRef<T> c) {
  detail::check::gemm<T>("Cpu", ta, tb, a, b, c);
  const auto ma = as_matrix(a);
  const auto mb = as_matrix(b);
  auto mc = as_matrix(c);
  if (beta == T(0)) mc.setZero();
  else if (beta != T(1)) mc *= beta;
  if (ta == Transpose::no && tb == Transpose::no) mc.noalias() += alpha * ma * mb;
  else if (ta == Transpose::no) mc.noalias() += alpha * ma * mb.transpose();
  else if (tb == Transpose::no) mc.noalias() += alpha * ma.transpose() * mb;
  else mc.noalias() += alpha * ma.transpose() * mb.transpose();
}

}  // namespace ace::cpu
