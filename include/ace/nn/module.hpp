// SPDX-License-Identifier: MIT
// The layer protocol: forward and backward by hand, parameters as views, storage and operations from a backend, and
// (for modules) feature spaces as types.
#pragma once

#include <concepts>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include "ace/backend/concept.hpp"
#include "ace/backend/default.hpp"
#include "ace/error.hpp"
#include "ace/rep/concepts.hpp"
#include "ace/tensor/parameter.hpp"
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

/// The batch tensor of a layer: rank 2 in its backend's storage, [batch, features].
template <class M>
using layer_tensor_t = tensor_t<typename M::backend, typename M::scalar, 2>;

/// The layer protocol, shared by every layer, block and module of ace (docs/modules.md):
///  * `scalar` (float or double) and `backend` (a Backend): every tensor the layer holds is the backend's;
///  * `forward(x)` takes a batch [batch, in] and returns y [batch, out], a reference to the layer's own buffer valid
///    until its next forward; it keeps what backward needs, and x must stay alive until backward;
///  * `backward(dy)` accumulates the parameter gradients and returns dL/dx (the layer's own buffer);
///  * `for_each_parameter(f)` calls f(ParamView<scalar>) for every parameter tensor, named relative to the layer
///    (composites prefix their parts' names: "0.weight", "layers.2.edge_mlp.0.bias").
/// Widths may be fixed at construction (Dense, SiluMlp, the Vector Neurons layers) or at compile time (modules).
template <class M>
concept Layer = requires(M m, const layer_tensor_t<M>& x) {
  typename M::scalar;
  typename M::backend;
  requires Backend<typename M::backend>;
  { m.forward(x) } -> std::convertible_to<const layer_tensor_t<M>&>;
  { m.backward(x) } -> std::convertible_to<const layer_tensor_t<M>&>;
  m.for_each_parameter(detail::AnyParameter<typename M::scalar>{});
};

/// A Layer whose shapes and symmetry are part of its type: `input` and `output` FeatureSpaces, x [batch,
/// input::dim] -> y [batch, output::dim]. Sequential checks adjacent modules at compile time, and the harness checks
/// equivariance when both spaces represent one group.
template <class M>
concept Module = Layer<M> && FeatureSpace<typename M::input> && FeatureSpace<typename M::output>;

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

namespace detail {
/// Accepts any layer: what the module-walking helpers use to ask for for_each_module.
struct AnyLayer {
  template <class L>
  void operator()(L&) const noexcept {}
};
}  // namespace detail

/// Switches every layer with a training mode (batch norms: batch statistics vs running statistics) on or off: the
/// model itself if it has set_training, and recursively every layer of composites that expose for_each_module.
template <class M>
void set_training(M& model, bool on) {
  if constexpr (requires { model.set_training(on); }) model.set_training(on);
  if constexpr (requires { model.for_each_module(detail::AnyLayer{}); })
    model.for_each_module([&](auto& layer) { set_training(layer, on); });
}

/// Switches the non-equivariant branch of every relaxed layer in a model on or off: the model itself if it has
/// set_branch (Relaxed), and recursively every layer of composites that expose for_each_module (Sequential).
template <class M>
void set_relaxation(M& model, bool on) {
  if constexpr (requires { model.set_branch(on); }) model.set_branch(on);
  if constexpr (requires { model.for_each_module(detail::AnyLayer{}); })
    model.for_each_module([&](auto& layer) { set_relaxation(layer, on); });
}

namespace detail {
/// What a layer remembers of its last forward for backward: a view of the input (or of a part's buffer). Copies and
/// moves start empty: a copied layer never points at another object's data, and backward before its own forward is
/// reported instead of reading freed memory.
template <class T>
class ForwardRef {
 public:
  ForwardRef() = default;
  ForwardRef(const ForwardRef&) noexcept {}
  ForwardRef& operator=(const ForwardRef&) noexcept {
    set_ = false;
    return *this;
  }
  void set(MatrixRef<const T> v) noexcept {
    view_ = v;
    set_ = true;
  }
  void reset() noexcept { set_ = false; }
  MatrixRef<const T> get() const noexcept { return view_; }
  std::size_t rows() const noexcept { return view_.rows; }
  explicit operator bool() const noexcept { return set_; }

 private:
  MatrixRef<const T> view_{};
  bool set_ = false;
};

/// The batch size of the last forward, after checking that there was one and that dy is [batch, cols]; `what`
/// names the layer in the error.
template <class T, DenseStorage S>
std::size_t backward_batch(const ForwardRef<T>& x, const S& dy, std::size_t cols, const char* what) {
  ACE_THROW_IF(!x, invalid_argument, what, "::backward called before forward");
  const std::size_t batch = x.rows();
  ACE_THROW_IF(dy.shape()[0] != batch || dy.shape()[1] != cols, shape_error, what,
               "::backward: expected a gradient of shape [", batch, ", ", cols, "], got [", dy.shape()[0], ", ",
               dy.shape()[1], "]");
  return batch;
}

/// A parameter tensor and its gradient, zero-initialised in backend B's memory.
template <class B, class T, std::size_t N = 2>
struct Parameter {
  tensor_t<B, T, N> value, grad;

  Parameter() = default;
  explicit Parameter(const std::array<std::size_t, N>& shape) : value(zeros<B, T, N>(shape)), grad(zeros<B, T, N>(shape)) {}

  ParamView<T> view(std::string name, Role role) { return param_view(std::move(name), value, grad, role); }
  /// Host values (row-major) into the parameter, e.g. an initialisation drawn on the host.
  void assign(const std::vector<T>& host) { from_host_vector<B>(host, flat(value)); }
};
}  // namespace detail

}  // namespace ace
