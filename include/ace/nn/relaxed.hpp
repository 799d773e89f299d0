// SPDX-License-Identifier: MIT
// Relaxed<Eq, Neq>: the homotopic layer f_eq + gamma * f_neq of ACE (METHOD.md §2).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <utility>

#include "ace/nn/module.hpp"
#include "ace/nn/sequential.hpp"
#include "ace/random.hpp"
#include "ace/tensor/cpu.hpp"

namespace ace {

/// f(x) = f_eq(x) + γ f_neq(x) with one learnable scalar γ (role gamma, initialised to 1, METHOD.md §2). Eq is an
/// exactly equivariant module; Neq an unconstrained module of the same input and output dimensions (e.g. a Linear
/// between the same representations). With γ = 0 the layer is exactly Eq; `set_branch(false)` evaluates Eq alone
/// (no cost for the branch), and `equivariant_part()` returns the Eq module itself — a different type, so the
/// deployed model carries no trace of the relaxation.
/// Parameters: "eq.*", "neq.*", and "gamma".
template <Module Eq, Module Neq>
class Relaxed {
  static_assert(Eq::input::dim == Neq::input::dim && Eq::output::dim == Neq::output::dim,
                "ace: Relaxed<Eq, Neq> needs the non-equivariant branch to map the same input dimension to the same "
                "output dimension as the equivariant module.");
  static_assert(std::same_as<typename Eq::scalar, typename Neq::scalar>,
                "ace: Relaxed<Eq, Neq> needs both branches to use the same scalar type.");

 public:
  using scalar = typename Eq::scalar;
  using input = typename Eq::input;
  using output = typename Eq::output;
  using T = scalar;

  explicit Relaxed(Rng& rng) : eq_(detail::make_with<Eq>(rng)), neq_(detail::make_with<Neq>(rng)) {}
  Relaxed(Eq eq, Neq neq) : eq_(std::move(eq)), neq_(std::move(neq)) {}

  const Tensor<T, 2>& forward(const Tensor<T, 2>& x) {
    const Tensor<T, 2>& ye = eq_.forward(x);
    ensure_shape(y_, ye.shape()[0], ye.shape()[1]);
    std::copy(ye.begin(), ye.end(), y_.begin());
    neq_y_ = nullptr;
    if (branch_) {
      neq_y_ = &neq_.forward(x);  // Neq's own buffer, valid until its next forward
      Cpu::axpy(gamma_[0], *neq_y_, y_);
    }
    return y_;
  }

  const Tensor<T, 2>& backward(const Tensor<T, 2>& dy) {
    const Tensor<T, 2>& dxe = eq_.backward(dy);
    ensure_shape(dx_, dxe.shape()[0], dxe.shape()[1]);
    std::copy(dxe.begin(), dxe.end(), dx_.begin());
    if (neq_y_) {
      // dL/dγ = <dy, f_neq(x)>; the branch sees γ dy.
      const Tensor<T, 2>& yn = *neq_y_;
      T g = 0;
      for (std::size_t i = 0; i < dy.size(); ++i) g += dy.data()[i] * yn.data()[i];
      gamma_grad_[0] += g;
      ensure_shape(scaled_dy_, dy.shape()[0], dy.shape()[1]);
      for (std::size_t i = 0; i < dy.size(); ++i) scaled_dy_.data()[i] = gamma_[0] * dy.data()[i];
      Cpu::axpy(T(1), neq_.backward(scaled_dy_), dx_);
    }
    return dx_;
  }

  template <class F>
  void for_each_parameter(F&& f) {
    detail::for_each_prefixed(eq_, "eq", f);
    detail::for_each_prefixed(neq_, "neq", f);
    f(ParamView<T>{"gamma", {gamma_.data(), 1}, {gamma_grad_.data(), 1}, Role::gamma, {}});
  }

  static std::string signature() {
    return "Relaxed(" + module_signature<Eq>() + " | " + module_signature<Neq>() + ")";
  }

  /// γ.
  T gamma() const { return gamma_[0]; }
  void set_gamma(T value) { gamma_[0] = value; }
  /// Whether forward evaluates the non-equivariant branch (true by default).
  bool branch() const { return branch_; }
  void set_branch(bool on) { branch_ = on; }

  /// The exactly equivariant part, f_eq (what ACE deploys when γ -> 0).
  Eq& equivariant_part() { return eq_; }
  const Eq& equivariant_part() const { return eq_; }
  Neq& branch_module() { return neq_; }

 private:
  Eq eq_;
  Neq neq_;
  std::array<T, 1> gamma_{T(1)}, gamma_grad_{T(0)};
  bool branch_ = true;
  detail::ForwardRef<T> neq_y_;  // the branch output of the last forward, if the branch ran
  Tensor<T, 2> y_, dx_, scaled_dy_;
};

/// Switches the non-equivariant branch of every Relaxed layer in a model on or off: the model itself if it is
/// Relaxed, and recursively every layer of composites that expose for_each_module (Sequential).
template <class M>
void set_relaxation(M& model, bool on) {
  if constexpr (requires { model.set_branch(on); }) model.set_branch(on);
  if constexpr (requires { model.for_each_module([](auto&) {}); })
    model.for_each_module([&](auto& layer) { set_relaxation(layer, on); });
}

namespace detail {
template <class M>
struct Exported {
  using type = M;
};
template <class Eq, class Neq>
struct Exported<Relaxed<Eq, Neq>> {
  using type = Eq;
};
template <class... M>
struct Exported<Sequential<M...>> {
  using type = Sequential<typename Exported<M>::type...>;
};
}  // namespace detail

/// The type of a model with every Relaxed<Eq, Neq> layer replaced by its Eq (recursively through Sequential).
template <class M>
using exported_t = typename detail::Exported<M>::type;

/// The deployed, exactly equivariant model: a copy of `model` whose relaxed layers are their equivariant parts
/// (f_eq, with the trained weights) and nothing else, a different type without branches or gammas. It computes
/// what `model` computes with every γ = 0 (bit for bit; tested), or with its branches switched off.
template <class M>
exported_t<M> export_equivariant(const M& model) {
  if constexpr (requires { model.equivariant_part(); }) {
    return model.equivariant_part();
  } else if constexpr (requires { M::size; model.template get<0>(); }) {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return exported_t<M>(export_equivariant(model.template get<I>())...);
    }(std::make_index_sequence<M::size>{});
  } else {
    return model;
  }
}

}  // namespace ace
