// SPDX-License-Identifier: MIT
// The backend a model runs on (Cpu unless it names another), and what every trainer does to its gradients first.
#pragma once

#include "ace/backend/cpu/cpu.hpp"
#include "ace/tensor/parameter.hpp"

namespace ace {

/// The backend of anything that names one (`M::backend`); Cpu for hand-written models that do not: their parameter
/// views point at host memory, which is the Cpu backend's.
template <class M>
struct backend_of {
  using type = Cpu;
};
template <class M>
  requires requires { typename M::backend; }
struct backend_of<M> {
  using type = typename M::backend;
};
template <class M>
using backend_of_t = typename backend_of<M>::type;

/// Sets every parameter gradient of a model to zero (through its backend).
template <class M>
void zero_grad(M& model) {
  using T = typename M::scalar;
  model.for_each_parameter([](ParamView<T> p) { backend_of_t<M>::fill(p.grad.row(), T(0)); });
}

}  // namespace ace
