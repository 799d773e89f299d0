// SPDX-License-Identifier: MIT
// Relaxed<Eq, Neq>: the homotopic layer f_eq + γ f_neq of ACE (docs/method.md §2).
#pragma once

#include <cstddef>
#include <string>
#include <utility>

#include "ace/nn/core/relaxation.hpp"
#include "ace/nn/core/sequential.hpp"
#include "ace/nn/module.hpp"
#include "ace/random.hpp"

namespace ace {

/// f(x) = f_eq(x) + γ f_neq(x) with one learnable scalar γ (role gamma, initialised to 1, docs/method.md §2). Eq is an
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
  static_assert(std::same_as<typename Eq::backend, typename Neq::backend>,
                "ace: Relaxed<Eq, Neq> needs both branches on the same backend.");

 public:
  using scalar = typename Eq::scalar;
  using backend = typename Eq::backend;
  using input = typename Eq::input;
  using output = typename Eq::output;
  using T = scalar;
  using tensor = tensor_t<backend, T, 2>;

  explicit Relaxed(Rng& rng) : eq_(detail::make_with<Eq>(rng)), neq_(detail::make_with<Neq>(rng)), relax_(1) {}
  Relaxed(Eq eq, Neq neq) : eq_(std::move(eq)), neq_(std::move(neq)), relax_(1) {}

  const tensor& forward(const tensor& x) {
    const tensor& ye = eq_.forward(x);
    ensure_shape(y_, ye.shape()[0], ye.shape()[1]);
    backend::copy(view(ye), view(y_));
    branch_out_.reset();
    if (relax_.on()) {
      const tensor& yn = neq_.forward(x);  // Neq's own buffer, valid until its next forward
      relax_.add_branch(0, view(yn), view(y_));
      branch_out_.set(view(yn));
    }
    return y_;
  }

  const tensor& backward(const tensor& dy) {
    const tensor& dxe = eq_.backward(dy);
    ensure_shape(dx_, dxe.shape()[0], dxe.shape()[1]);
    backend::copy(view(dxe), view(dx_));
    if (branch_out_) {
      ensure_shape(branch_dy_, dy.shape()[0], dy.shape()[1]);
      relax_.branch_backward(0, view(dy), branch_out_.get(), view(branch_dy_));
      backend::axpy(T(1), view(neq_.backward(branch_dy_)), view(dx_));
    }
    return dx_;
  }

  template <class F>
  void for_each_parameter(F&& f) {
    detail::for_each_prefixed(eq_, "eq", f);
    detail::for_each_prefixed(neq_, "neq", f);
    ParamView<T> g = relax_.param("gamma");
    g.shape = {};  // a flat scalar
    f(std::move(g));
  }

  static std::string signature() {
    return "Relaxed(" + module_signature<Eq>() + " | " + module_signature<Neq>() + ")";
  }

  /// γ.
  T gamma() const { return relax_.value(0); }
  void set_gamma(T value) { relax_.set_value(0, value); }
  /// Whether forward evaluates the non-equivariant branch (true by default).
  bool branch() const { return relax_.on(); }
  void set_branch(bool on) { relax_.set(on); }

  /// The exactly equivariant part, f_eq (what ACE deploys when γ -> 0).
  Eq& equivariant_part() { return eq_; }
  const Eq& equivariant_part() const { return eq_; }
  Neq& branch_module() { return neq_; }

 private:
  Eq eq_;
  Neq neq_;
  Relaxation<T, backend> relax_;
  detail::ForwardRef<T> branch_out_;  // the branch output of the last forward, if the branch ran
  tensor y_, dx_, branch_dy_;
};


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
