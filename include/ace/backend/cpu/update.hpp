// SPDX-License-Identifier: MIT
// The Cpu backend's optimiser updates and zeroing: vectorised, and over several tensors at once split evenly across
// OpenMP threads. Every entry is updated from its own entries alone, so results do not depend on the thread count.
#pragma once

#include <Eigen/Core>
#include <cstddef>

#include "ace/backend/cpu/parallel.hpp"
#include "ace/backend/ops.hpp"

namespace ace::cpu {

/// AdamStep::apply on n consecutive entries, vectorised (the same arithmetic in the same order).
template <class T>
void adam_entries(const AdamStep& s, const AdamStep::Corrections& k, T* value, const T* grad, T* m, T* v,
                  std::size_t n) {
  using Array = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
  using ConstArray = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
  const auto e = static_cast<Eigen::Index>(n);
  Array x(value, e), ma(m, e), va(v, e);
  const ConstArray g(grad, e);
  const T lr = static_cast<T>(s.lr), b1 = static_cast<T>(s.beta1), b2 = static_cast<T>(s.beta2);
  const T eps = static_cast<T>(s.eps), wd = static_cast<T>(s.weight_decay);
  const T c1 = static_cast<T>(k.c1), c2 = static_cast<T>(k.c2);
  if (s.decoupled || wd == T(0)) {
    if (s.decoupled) x *= T(1) - lr * wd;
    ma = b1 * ma + (T(1) - b1) * g;
    va = b2 * va + (T(1) - b2) * g * g;
  } else {  // L2 regularisation: the gradient g + wd x, read before x changes
    const auto l2 = g + wd * x;  // an expression: evaluated entry by entry where it is used
    ma = b1 * ma + (T(1) - b1) * l2;
    va = b2 * va + (T(1) - b2) * l2 * l2;
  }
  x -= lr * (ma / c1) / ((va / c2).sqrt() + eps);
}

}  // namespace ace::cpu
