// SPDX-License-Identifier: MIT
// The backend a model runs on (Cpu unless it names another), and what every trainer does to its gradients first.
#pragma once

#include <span>
#include <vector>

#include "ace/backend/concept.hpp"
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

/// Sets every parameter gradient of a model to zero (through its backend; in a few operations where the backend
/// zeroes many tensors at once, MultiTensorBackend).
template <class M>
void zero_grad(M& model) {
  using T = typename M::scalar;
  using B = backend_of_t<M>;
  if constexpr (MultiTensorBackend<B, T>) {
    thread_local std::vector<VectorRef<T>> grads;
    grads.clear();
    model.for_each_parameter([](ParamView<T> p) { grads.push_back(p.grad); });
    B::fill_many(std::span<const VectorRef<T>>(grads), T(0));
  } else {
    model.for_each_parameter([](ParamView<T> p) { B::fill(p.grad.row(), T(0)); });
  }
}

}  // namespace ace
