// SPDX-License-Identifier: MIT
// Parameter and buffer views: what optimisers, the ACE trainer and checkpoints see of a model.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "ace/tensor/tensor.hpp"

namespace ace {

/// What a parameter is for: the ACE trainer treats weights (θ), relaxation gammas (γ) and slacks (u) differently.
enum class Role { weight, bias, gamma, slack };

inline std::string_view role_name(Role r) {
  switch (r) {
    case Role::weight: return "weight";
    case Role::bias: return "bias";
    case Role::gamma: return "gamma";
    default: return "slack";
  }
}

/// A view of one parameter tensor: its values and its gradient (same size, flat, row-major, in the memory of the
/// model's backend), a role, a name such as "2.weight" and the tensor's shape (empty means a flat vector of
/// value.size() entries). Optimisers and the trainer see only these views, never the modules, and reach the entries
/// through backend operations; checkpoints record the names and shapes.
template <class T>
struct ParamView {
  std::string name;
  VectorRef<T> value;
  VectorRef<T> grad;
  Role role;
  std::span<const std::size_t> shape;
};

/// A view of one buffer: state a model keeps that is not trained by gradients (batch-norm running statistics), float64
/// in the model's backend memory. Optimisers never see buffers; checkpoints save and restore them with the parameters
/// ("buffer/<name>").
struct BufferView {
  std::string name;
  VectorRef<double> value;
};

namespace detail {
/// A visitor that accepts any parameter view: what concepts use to ask for for_each_parameter (a named type rather
/// than a lambda, which some compilers reject inside requires-expressions).
template <class T>
struct AnyParameter {
  void operator()(ParamView<T>) const noexcept {}
};
struct AnyBuffer {
  void operator()(BufferView) const noexcept {}
};

/// The view of a parameter tensor and its gradient tensor (same shape).
template <DenseStorage S>
ParamView<typename S::value_type> param_view(std::string name, S& value, S& grad, Role role) {
  return {std::move(name), flat(value), flat(grad), role, {value.shape().data(), rank_v<S>}};
}

/// Calls f(ParamView) for every parameter of m with names prefixed by `prefix` and a dot.
template <class M, class F>
void for_each_prefixed(M& m, const std::string& prefix, F& f) {
  m.for_each_parameter([&](auto p) {
    p.name = prefix + "." + p.name;
    f(std::move(p));
  });
}

/// Calls f(BufferView) for every buffer of m with names prefixed by `prefix` and a dot.
template <class M, class F>
void for_each_buffer_prefixed(M& m, const std::string& prefix, F& f) {
  m.for_each_buffer([&](BufferView b) {
    b.name = prefix + "." + b.name;
    f(std::move(b));
  });
}
}  // namespace detail

/// The total number of scalar parameters of a model.
template <class M>
std::size_t parameter_count(M& model) {
  std::size_t n = 0;
  model.for_each_parameter([&](ParamView<typename M::scalar> p) { n += p.value.size(); });
  return n;
}

/// Models with buffers offer for_each_buffer(f), calling f(BufferView) for each.
template <class M>
concept HasBuffers = requires(M& m) { m.for_each_buffer(detail::AnyBuffer{}); };

}  // namespace ace
