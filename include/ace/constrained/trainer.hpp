// SPDX-License-Identifier: MIT
// The generic primal–dual trainer of ACE (docs/method.md §3–§5): any HomotopyModel, any primal optimiser, any constraint
// policy, SGD or Adam dual ascent.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "ace/backend/default.hpp"
#include "ace/constrained/policy.hpp"
#include "ace/error.hpp"
#include "ace/optim/optimizer.hpp"
#include "ace/tensor/parameter.hpp"

namespace ace {

namespace detail {
/// Forwards a state visitor's calls with a name prefix (the primal optimiser's state inside the trainer's).
template <class V>
struct PrefixedVisitor {
  V& inner;
  std::string prefix;
  template <class S>
  void tensor(const std::string& name, std::span<S> data) {
    inner.tensor(prefix + name, data);
  }
  template <class S, class B>
  void tensor(const std::string& name, VectorRef<S> data, on_backend<B> where) {
    inner.tensor(prefix + name, data, where);
  }
  void counter(const std::string& name, std::size_t& value) { inner.counter(prefix + name, value); }
};
}  // namespace detail

/// A network the ACE trainer can train. It need not be built from ace modules: a hand-written model, or a wrapper
/// around another framework, qualifies by providing
///  * `scalar` and `for_each_parameter(f)` with roles: Role::gamma for every relaxation scalar γ_i, other roles for θ;
///    the views point into the memory of `backend` (Cpu, host memory, when the model names none);
///  * `batch`: the type of a mini-batch, and `loss_and_gradients(batch)`: the mean task loss J0 on the batch, with
///    dJ0/dparameter *accumulated* into the gradient spans (the trainer zeroes them before each call);
///  * `set_relaxation(bool)`: evaluate with the non-equivariant branches on (f_eq + γ f_neq) or off (f_eq).
template <class M>
concept HomotopyModel = Parameterised<M> && Backend<backend_of_t<M>> && requires(M& m, const typename M::batch& b, bool on) {
  { m.loss_and_gradients(b) } -> std::convertible_to<double>;
  m.set_relaxation(on);
};

/// Dual ascent by plain steps: λ <- λ + lr * s (docs/method.md §3).
struct DualSGD {
  double lr = 1e-3;
  void validate() const { detail::require_positive(lr, "DualSGD::lr"); }
};

/// Dual ascent with Adam moments on the constraint values (docs/method.md §5): λ grows about lr per step while the
/// constraint keeps its sign.
struct DualAdam {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  void validate() const {
    detail::require_positive(lr, "DualAdam::lr");
    detail::require_in(beta1, 0.0, 1.0, "DualAdam::beta1");
    detail::require_in(beta2, 0.0, 1.0, "DualAdam::beta2");
    detail::require_positive(eps, "DualAdam::eps");
  }
};

struct TrainerOptions {
  /// Augmented-Lagrangian coefficient c: adds (c/2) s_i² to the Lagrangian (for inequality forms only while the
  /// constraint is violated), which damps the γ/λ oscillation. 0 = off.
  double augmented = 0.0;
  /// No dual steps during the first `dual_warmup` steps.
  std::size_t dual_warmup = 0;
  /// Divide the dual terms of the primal gradient by the number of gammas.
  bool average_dual = false;
  /// Clip the global norm of the primal gradient (θ, γ and slacks) to this value; 0 = off.
  double clip_norm = 0.0;
  /// The planned number of steps (the schedule baseline's time axis; ignored otherwise).
  std::size_t total_steps = 0;

  void validate() const {
    detail::require_non_negative(augmented, "TrainerOptions::augmented");
    detail::require_non_negative(clip_norm, "TrainerOptions::clip_norm");
  }
};

/// Losses of the two models a relaxed network defines, on one batch.
struct Evaluation {
  double deployed = 0.0;  // the model as the policy deploys it (equality, strict, schedule: f_eq alone)
  double relaxed = 0.0;   // f_eq + γ f_neq
};

/// What one step did.
struct StepReport {
  double loss = 0.0;            // J0 on the batch, before the step
  double max_abs_gamma = 0.0;   // max_i |γ_i| before the step
  double max_multiplier = 0.0;  // max_i λ_i after the dual step
  double gradient_norm = 0.0;   // global primal gradient norm before clipping
};

/// The primal–dual trainer. The model's parameters, the slacks and the optimiser's state live in the model's backend;
/// the multipliers λ and the dual moments are a few host scalars, and the trainer reads and writes the gammas and
/// slacks through the backend (a handful of scalars per step). One `step(batch)`:
///   1. zero the gradients; fix γ for policies that do not learn it (strict: 0, schedule: its schedule);
///   2. J0 and dJ0/dθ, dJ0/dγ from the model (branches on or off per policy);
///   3. add the Lagrangian's terms: dγ_i += (λ_i + c s_i) ds_i/dγ_i (÷ n with average_dual), du_i = ρ u_i - (λ_i + c s_i)
///      for resilient slacks, 2 w γ_i for the penalty baseline;
///   4. optional global-norm clipping, then the primal optimiser's step on θ, γ and u (u projected to u >= 0);
///   5. the dual step with the constraint values s_i of the *pre-step* γ and u (docs/method.md §3), projected to λ >= 0 for
///      inequality forms, skipped during the warm-up.
template <HomotopyModel M, class PrimalOptimizer, ConstraintPolicy Policy, class Dual = DualSGD>
class ConstrainedTrainer {
 public:
  using scalar = typename M::scalar;
  using T = scalar;
  using backend = backend_of_t<M>;
  using B = backend;

  ConstrainedTrainer(M& model, PrimalOptimizer primal, Policy policy = {}, Dual dual = {}, TrainerOptions options = {})
      : model_(model), primal_(std::move(primal)), policy_(policy), dual_(dual), options_(options), view_{this} {
    policy_.validate();
    dual_.validate();
    options_.validate();
    std::size_t n = 0;
    model_.for_each_parameter([&](ParamView<T> p) {
      if (p.role != Role::gamma) return;
      gammas_.push_back({p.value, p.grad, n});
      n += p.value.size();
    });
    gamma_host_.assign(n, T(0));
    gamma_grad_host_.assign(n, T(0));
    lambda_.assign(n, 0.0);
    s_.assign(n, 0.0);
    const std::size_t slacks = Policy::has_slack ? n : 0;
    slack_ = zeros<B, T>(1, slacks);
    slack_grad_ = zeros<B, T>(1, slacks);
    slack_host_.assign(slacks, T(0));
    dual_m_.assign(n, 0.0);
    dual_v_.assign(n, 0.0);
    fix_gammas();
    model_.set_relaxation(Policy::branch_training);
  }

  StepReport step(const typename M::batch& batch) {
    StepReport report;
    zero_grad(view_);
    fix_gammas();
    model_.set_relaxation(Policy::branch_training);
    report.loss = model_.loss_and_gradients(batch);
    ACE_THROW_IF(!std::isfinite(report.loss), numerical_error, "ConstrainedTrainer: non-finite loss ", report.loss,
                 " at step ", steps_, " (max |gamma| = ", max_abs_gamma(), ")");
    const std::size_t n = lambda_.size();
    const double scale = options_.average_dual && n > 0 ? 1.0 / static_cast<double>(n) : 1.0;
    read_gammas(true);
    if constexpr (Policy::has_slack) B::to_host(MatrixRef<const T>(view(slack_)), std::span<T>(slack_host_));
    for (std::size_t i = 0; i < n; ++i) {
      const double g = static_cast<double>(gamma_host_[i]);
      report.max_abs_gamma = std::max(report.max_abs_gamma, std::abs(g));
      double extra = 0.0;
      if constexpr (Policy::has_dual) {
        const double u = Policy::has_slack ? static_cast<double>(slack_host_[i]) : 0.0;
        s_[i] = policy_.constraint(g, u);
        const double force = scale * (lambda_[i] + augmented_term(s_[i]));
        extra += force * policy_.dsdgamma(g);
        if constexpr (Policy::has_slack) slack_host_[i] = static_cast<T>(policy_.rho * u - force);  // onto a zero gradient
      }
      if constexpr (requires { policy_.objective_gamma_gradient(g); }) extra += policy_.objective_gamma_gradient(g);
      if constexpr (Policy::learn_gamma) gamma_grad_host_[i] += static_cast<T>(extra);
      else gamma_grad_host_[i] = T(0);
    }
    write_gamma_gradients();
    if constexpr (Policy::has_slack) B::from_host(std::span<const T>(slack_host_), view(slack_grad_));
    report.gradient_norm = clip();
    ACE_THROW_IF(!std::isfinite(report.gradient_norm), numerical_error,
                 "ConstrainedTrainer: non-finite gradient norm at step ", steps_, " (loss ", report.loss,
                 "); the parameters were not updated");
    primal_.step(view_);
    if constexpr (Policy::has_slack) {  // u >= 0
      B::to_host(MatrixRef<const T>(view(slack_)), std::span<T>(slack_host_));
      for (auto& u : slack_host_) u = std::max(u, T(0));
      B::from_host(std::span<const T>(slack_host_), view(slack_));
    }
    fix_gammas();
    if constexpr (Policy::has_dual) {
      if (steps_ >= options_.dual_warmup) dual_step();
    }
    for (double l : lambda_) report.max_multiplier = std::max(report.max_multiplier, l);
    ++steps_;
    return report;
  }

  /// The deployed and the relaxed model's loss on a batch (no gradients; needs model.loss(batch)). Select
  /// checkpoints by the deployed value. Leaves the model in the training configuration.
  template <class Batch>
    requires requires(M& m, const Batch& b) {
      { m.loss(b) } -> std::convertible_to<double>;
    }
  Evaluation evaluate(const Batch& batch) {
    Evaluation e;
    model_.set_relaxation(Policy::branch_deployed);
    e.deployed = static_cast<double>(model_.loss(batch));
    model_.set_relaxation(true);
    e.relaxed = static_cast<double>(model_.loss(batch));
    model_.set_relaxation(Policy::branch_training);
    return e;
  }

  /// Sets the model up for deployment: branches as the policy deploys them (off for equality, strict and
  /// schedule; on for resilient, inequality, free and penalty).
  void deploy() { model_.set_relaxation(Policy::branch_deployed); }
  /// Back to the training configuration (branches on unless strict).
  void train() { model_.set_relaxation(Policy::branch_training); }

  std::size_t gamma_count() const { return lambda_.size(); }
  /// γ_i, read from the backend.
  double gamma(std::size_t i) const {
    for (const GammaView& g : gammas_)
      if (i < g.first + g.value.size()) return static_cast<double>(to_host_vector<B>(g.value.slice(i - g.first, 1))[0]);
    throw invalid_argument(detail::concat("ConstrainedTrainer::gamma: index ", i, " of ", gamma_count()));
  }
  double max_abs_gamma() const {
    double m = 0.0;
    for (std::size_t i = 0; i < gamma_count(); ++i) m = std::max(m, std::abs(gamma(i)));
    return m;
  }
  std::span<const double> multipliers() const { return lambda_; }
  /// The slacks u_i (resilient constraints; empty otherwise), read from the backend.
  std::vector<double> slacks() const {
    const auto u = to_host_vector<B>(flat(slack_));
    return {u.begin(), u.end()};
  }
  /// The constraint values s_i of the last step (pre-step γ and u).
  std::span<const double> constraint_values() const { return s_; }
  std::size_t steps() const { return steps_; }
  const Policy& policy() const { return policy_; }

  /// Visits everything a bit-for-bit resume needs, for checkpoints: the model's parameters (θ and γ) as
  /// v.tensor("param/<name>", view, on_backend<B>), its buffers, the multipliers and dual moments (host spans), the
  /// slacks, the step counters, and the primal optimiser's state under "primal/" (when it offers visit_state).
  template <class V>
  void visit_state(V&& v) {
    model_.for_each_parameter([&](ParamView<T> p) { v.tensor("param/" + p.name, p.value, on_backend<B>{}); });
    if constexpr (HasBuffers<M>)
      model_.for_each_buffer([&](BufferView b) { v.tensor("buffer/" + b.name, b.value, on_backend<B>{}); });
    v.tensor("dual/lambda", std::span<double>(lambda_));
    v.tensor("dual/m", std::span<double>(dual_m_));
    v.tensor("dual/v", std::span<double>(dual_v_));
    if constexpr (Policy::has_slack) v.tensor("slack/u", flat(slack_), on_backend<B>{});
    v.counter("trainer/steps", steps_);
    v.counter("trainer/dual_steps", dual_steps_);
    if constexpr (requires { primal_.visit_state(view_, v); })  // the optimiser steps θ, γ and the slacks
      primal_.visit_state(view_, detail::PrefixedVisitor<std::remove_reference_t<V>>{v, "primal/"});
  }
  PrimalOptimizer& primal_optimizer() { return primal_; }
  M& model() { return model_; }

 private:
  /// The primal variables the optimiser sees: the model's parameters and, for resilient constraints, the slacks.
  struct PrimalView {
    ConstrainedTrainer* self;
    using scalar = T;
    using backend = B;
    template <class F>
    void for_each_parameter(F&& f) {
      self->model_.for_each_parameter(f);
      if constexpr (Policy::has_slack) f(ParamView<T>{"slack", flat(self->slack_), flat(self->slack_grad_), Role::slack, {}});
    }
  };
  /// A gamma parameter of the model: its values and gradient in the backend, and the index of its first entry.
  struct GammaView {
    VectorRef<T> value, grad;
    std::size_t first;
  };

  double augmented_term(double s) const {
    if constexpr (std::same_as<Policy, EqualityConstraint>) return options_.augmented * s;
    else return s > 0.0 ? options_.augmented * s : 0.0;  // inequality forms: penalise violations only
  }

  /// gamma_host_ (and gamma_grad_host_ when `gradients`) from the backend.
  void read_gammas(bool gradients) {
    for (const GammaView& g : gammas_) {
      B::to_host(MatrixRef<const T>(g.value.row()), std::span<T>(gamma_host_).subspan(g.first, g.value.size()));
      if (gradients)
        B::to_host(MatrixRef<const T>(g.grad.row()), std::span<T>(gamma_grad_host_).subspan(g.first, g.grad.size()));
    }
  }
  void write_gamma_gradients() {
    for (const GammaView& g : gammas_)
      B::from_host(std::span<const T>(gamma_grad_host_).subspan(g.first, g.grad.size()), g.grad.row());
  }

  void fix_gammas() {
    if constexpr (!Policy::learn_gamma) {
      T value = T(0);
      if constexpr (requires { policy_.scheduled_gamma(std::size_t{}, std::size_t{}); })
        value = static_cast<T>(policy_.scheduled_gamma(steps_, options_.total_steps));
      for (const GammaView& g : gammas_) B::fill(g.value.row(), value);
    }
  }

  /// Scales the primal gradient to norm clip_norm when it is larger; returns the norm before clipping.
  double clip() {
    double sq = 0.0;
    view_.for_each_parameter([&](ParamView<T> p) { sq += B::sum_squares(MatrixRef<const T>(p.grad.row())); });
    const double norm = std::sqrt(sq);
    if (options_.clip_norm > 0.0 && norm > options_.clip_norm) {
      const T factor = static_cast<T>(options_.clip_norm / norm);
      view_.for_each_parameter([&](ParamView<T> p) { B::scale(factor, p.grad.row()); });
    }
    return norm;
  }

  void dual_step() {
    ++dual_steps_;
    for (std::size_t i = 0; i < lambda_.size(); ++i) {
      double delta = 0.0;
      if constexpr (std::same_as<Dual, DualAdam>) {
        dual_m_[i] = dual_.beta1 * dual_m_[i] + (1.0 - dual_.beta1) * s_[i];
        dual_v_[i] = dual_.beta2 * dual_v_[i] + (1.0 - dual_.beta2) * s_[i] * s_[i];
        const double mhat = dual_m_[i] / (1.0 - std::pow(dual_.beta1, static_cast<double>(dual_steps_)));
        const double vhat = dual_v_[i] / (1.0 - std::pow(dual_.beta2, static_cast<double>(dual_steps_)));
        delta = dual_.lr * mhat / (std::sqrt(vhat) + dual_.eps);
      } else {
        delta = dual_.lr * s_[i];
      }
      lambda_[i] = policy_.project(lambda_[i] + delta);
    }
  }

  M& model_;
  PrimalOptimizer primal_;
  Policy policy_;
  Dual dual_;
  TrainerOptions options_;
  PrimalView view_;
  std::vector<GammaView> gammas_;
  std::vector<T> gamma_host_, gamma_grad_host_, slack_host_;  // staging for the few scalars read each step
  std::vector<double> lambda_, s_, dual_m_, dual_v_;
  tensor_t<B, T, 2> slack_, slack_grad_;
  std::size_t steps_ = 0, dual_steps_ = 0;
};

}  // namespace ace
