// SPDX-License-Identifier: MIT
// What a module is: forward and backward by hand, parameters as views, feature spaces as types.
#pragma once

#include <concepts>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "ace/rep/concepts.hpp"
#include "ace/tensor/backend.hpp"
#include "ace/tensor/tensor.hpp"

namespace ace {

/// A plain feature space R^N with no symmetry (the input or output of a non-equivariant layer).
template <std::size_t N>
struct Features {
  static_assert(N >= 1, "ace: Features<N> needs N >= 1.");
  static constexpr std::size_t dim = N;
  static std::string_view name() {
    static const std::string s = detail::concat("R^", N);
    return s;
  }
};

/// The feature spaces layers map between: a Representation (features that transform under a group) or Features<N>.
/// Only `dim` matters for shapes; the representation matters for equivariance and for Sequential's checks.
template <class S>
concept FeatureSpace = requires {
  { S::dim } -> std::convertible_to<std::size_t>;
} && (S::dim >= 1);

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

/// A view of one parameter tensor: its values and its gradient (same size, flat, row-major), a role, a name such as
/// "2.weight" and the tensor's shape (empty means a flat vector of value.size() entries). Optimisers and the trainer
/// see only these views, never the modules; checkpoints record the names and shapes.
template <class T>
struct ParamView {
  std::string name;
  std::span<T> value;
  std::span<T> grad;
  Role role;
  std::span<const std::size_t> shape;
};

/// A view of one buffer: state a model keeps that is not trained by gradients (batch-norm running statistics).
/// Optimisers never see buffers; checkpoints save and restore them with the parameters ("buffer/<name>").
struct BufferView {
  std::string name;
  std::span<double> value;
};

/// Models with buffers offer for_each_buffer(f), calling f(BufferView) for each.
template <class M>
concept HasBuffers = requires(M& m) { m.for_each_buffer([](BufferView) {}); };

/// A differentiable module on batches of feature vectors, x of shape [batch, input::dim]:
///  * `scalar`, `input`, `output` (FeatureSpaces): shapes and symmetry are part of the type;
///  * `forward(x)` returns y [batch, output::dim] (a reference to the module's own buffer, valid until the next
///    forward) and keeps what backward needs; x must stay alive until backward;
///  * `backward(dy)` accumulates parameter gradients and returns dL/dx (the module's own buffer);
///  * `for_each_parameter(f)` calls f(ParamView<scalar>) for every parameter tensor.
template <class M>
concept Module = requires(M m, const Tensor<typename M::scalar, 2>& x) {
  typename M::scalar;
  requires FeatureSpace<typename M::input> && FeatureSpace<typename M::output>;
  { m.forward(x) } -> std::convertible_to<const Tensor<typename M::scalar, 2>&>;
  { m.backward(x) } -> std::convertible_to<const Tensor<typename M::scalar, 2>&>;
  m.for_each_parameter([](ParamView<typename M::scalar>) {});
};

/// The name of a feature space: the representation's name, or "R^N".
template <FeatureSpace S>
std::string space_name() {
  if constexpr (Representation<S>) return std::string(rep_name<S>());
  else if constexpr (requires { { S::name() } -> std::convertible_to<std::string_view>; }) return std::string(S::name());
  else return detail::concat("R^", S::dim);
}

/// What a checkpoint records about a module's structure: M::signature() when the module defines it (composites
/// list their parts), otherwise "<input space> -> <output space>" with the groups and representations by name.
template <class M>
std::string module_signature() {
  if constexpr (requires { { M::signature() } -> std::convertible_to<std::string>; }) return M::signature();
  else return detail::concat(space_name<typename M::input>(), " -> ", space_name<typename M::output>());
}

/// Sets every parameter gradient of a module to zero.
template <class M>
void zero_grad(M& module) {
  module.for_each_parameter([](ParamView<typename M::scalar> p) {
    for (auto& g : p.grad) g = typename M::scalar(0);
  });
}

/// The total number of scalar parameters.
template <class M>
std::size_t parameter_count(M& module) {
  std::size_t n = 0;
  module.for_each_parameter([&](ParamView<typename M::scalar> p) { n += p.value.size(); });
  return n;
}

namespace detail {
/// What a module remembers of its last forward for backward (the input, or a buffer of a sub-module). Copies and
/// moves start empty: a copied module never points at another object's data, and backward before its own forward
/// is reported instead of reading freed memory.
template <class T>
class ForwardRef {
 public:
  ForwardRef() = default;
  ForwardRef(const ForwardRef&) noexcept {}
  ForwardRef& operator=(const ForwardRef&) noexcept {
    ptr_ = nullptr;
    return *this;
  }
  ForwardRef& operator=(const Tensor<T, 2>* p) noexcept {
    ptr_ = p;
    return *this;
  }
  const Tensor<T, 2>* get() const noexcept { return ptr_; }
  const Tensor<T, 2>& operator*() const noexcept { return *ptr_; }
  const Tensor<T, 2>* operator->() const noexcept { return ptr_; }
  explicit operator bool() const noexcept { return ptr_ != nullptr; }

 private:
  const Tensor<T, 2>* ptr_ = nullptr;
};

template <class T>
std::span<T> span_of(auto& tensor) {
  return {tensor.data(), tensor.size()};
}

/// The view of a parameter tensor and its gradient tensor (same shape).
template <class T, std::size_t N>
ParamView<T> param_view(std::string name, Tensor<T, N>& value, Tensor<T, N>& grad, Role role) {
  return {std::move(name), span_of<T>(value), span_of<T>(grad), role, {value.shape().data(), N}};
}

/// The batch size of the last forward, after checking that there was one and that dy is [batch, cols]; `what`
/// names the module in the error.
template <class T>
std::size_t backward_batch(const ForwardRef<T>& x, const Tensor<T, 2>& dy, std::size_t cols, const char* what) {
  ACE_THROW_IF(!x, invalid_argument, what, "::backward called before forward");
  const std::size_t batch = x->shape()[0];
  ACE_THROW_IF(dy.shape()[0] != batch || dy.shape()[1] != cols, shape_error, what,
               "::backward: expected a gradient of shape [", batch, ", ", cols, "], got [", dy.shape()[0], ", ",
               dy.shape()[1], "]");
  return batch;
}

/// The affine core shared by dense layers: y = x W^T (+ b), with W [out, in] and b [1, out].
template <class B, class T>
void affine_forward(const Tensor<T, 2>& x, const Tensor<T, 2>& w, const Tensor<T, 2>* b, Tensor<T, 2>& y) {
  ensure_shape(y, x.shape()[0], w.shape()[0]);
  B::gemm(Transpose::no, Transpose::yes, T(1), x, w, T(0), y);
  if (b != nullptr) B::add_row(y, *b);
}

/// Its backward: dW = beta dW + dy^T x, db = beta db + Σ_batch dy (when db is given), dx = dy W. `what` names the
/// layer in the shape error.
template <class B, class T>
void affine_backward(const Tensor<T, 2>* x, const Tensor<T, 2>& w, const Tensor<T, 2>& dy, T beta, Tensor<T, 2>& dw,
                     Tensor<T, 2>* db, Tensor<T, 2>& dx, const char* what) {
  ACE_THROW_IF(x == nullptr, invalid_argument, what, " called before forward");
  ACE_THROW_IF(dy.shape()[0] != x->shape()[0] || dy.shape()[1] != w.shape()[0], shape_error, what,
               ": expected a gradient of shape [", x->shape()[0], ", ", w.shape()[0], "], got [", dy.shape()[0], ", ",
               dy.shape()[1], "]");
  B::gemm(Transpose::yes, Transpose::no, T(1), dy, *x, beta, dw);
  if (db != nullptr) B::sum_rows(dy, beta, *db);
  ensure_shape(dx, dy.shape()[0], w.shape()[1]);
  B::gemm(Transpose::no, Transpose::no, T(1), dy, w, T(0), dx);
}
}  // namespace detail

}  // namespace ace
