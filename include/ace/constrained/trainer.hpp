// SPDX-License-Identifier: MIT
// The generic primal–dual trainer of ACE (METHOD.md §3–§5): any HomotopyModel, any primal optimiser, any constraint
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

#include "ace/constrained/policy.hpp"
#include "ace/error.hpp"
#include "ace/nn/module.hpp"
#include "ace/optim/optimizer.hpp"

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
  void counter(const std::string& name, std::size_t& value) { inner.counter(prefix + name, value); }
};
/// Σ g², accumulated in double (no overflow for float gradients) in eight independent lanes, so the compiler can
/// vectorise it and it is not bound by the latency of one serial sum.
template <class S>
double squared_norm(std::span<const S> g) {
  constexpr std::size_t lanes = 8;
  double acc[lanes] = {};
  const std::size_t n = g.size(), full = n - n % lanes;
  for (std::size_t i = 0; i < full; i += lanes)
    for (std::size_t k = 0; k < lanes; ++k) acc[k] += static_cast<double>(g[i + k]) * static_cast<double>(g[i + k]);
  for (std::size_t i = full; i < n; ++i) acc[i - full] += static_cast<double>(g[i]) * static_cast<double>(g[i]);
  double sum = 0.0;
  for (double a : acc) sum += a;
  return sum;
}
}  // namespace detail

/// A network the ACE trainer can train. It need not be built from ace modules: a hand-written model, or a wrapper
/// around another framework, qualifies by providing
///  * `scalar` and `for_each_parameter(f)` with roles: Role::gamma for every relaxation scalar γ_i, other roles for θ;
///  * `batch`: the type of a mini-batch, and `loss_and_gradients(batch)`: the mean task loss J0 on the batch, with
///    dJ0/dparameter *accumulated* into the gradient spans (the trainer zeroes them before each call);
///  * `set_relaxation(bool)`: evaluate with the non-equivariant branches on (f_eq + γ f_neq) or off (f_eq).
template <class M>
concept HomotopyModel = Parameterised<M> && requires(M& m, const typename M::batch& b, bool on) {
  { m.loss_and_gradients(b) } -> std::convertible_to<double>;
  m.set_relaxation(on);
};

/// Dual ascent by plain steps: λ <- λ + lr * s (METHOD.md §3).
struct DualSGD {
  double lr = 1e-3;
  void validate() const { detail::require_positive(lr, "DualSGD::lr"); }
};

/// Dual ascent with Adam moments on the constraint values (METHOD.md §5): λ grows about lr per step while the
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

/// The primal–dual trainer. One `step(batch)`:
///   1. zero the gradients; fix γ for policies that do not learn it (strict: 0, schedule: its schedule);
///   2. J0 and dJ0/dθ, dJ0/dγ from the model (branches on or off per policy);
///   3. add the Lagrangian's terms: dγ_i += (λ_i + c s_i) ds_i/dγ_i (÷ n with average_dual), du_i = ρ u_i - (λ_i + c s_i)
///      for resilient slacks, 2 w γ_i for the penalty baseline;
///   4. optional global-norm clipping, then the primal optimiser's step on θ, γ and u (u projected to u >= 0);
///   5. the dual step with the constraint values s_i of the *pre-step* γ and u (METHOD.md §3), projected to λ >= 0 for
///      inequality forms, skipped during the warm-up.
template <HomotopyModel M, class PrimalOptimizer, ConstraintPolicy Policy, class Dual = DualSGD>
class ConstrainedTrainer {
 public:
  using scalar = typename M::scalar;
  using T = scalar;

  ConstrainedTrainer(M& model, PrimalOptimizer primal, Policy policy = {}, Dual dual = {}, TrainerOptions options = {})
      : model_(model), primal_(std::move(primal)), policy_(policy), dual_(dual), options_(options), view_{this} {
    policy_.validate();
    dual_.validate();
    options_.validate();
    model_.for_each_parameter([&](ParamView<T> p) {
      if (p.role != Role::gamma) return;
      for (std::size_t i = 0; i < p.value.size(); ++i) {
        gamma_.push_back(&p.value[i]);
        gamma_grad_.push_back(&p.grad[i]);
      }
    });
    const std::size_t n = gamma_.size();
    lambda_.assign(n, 0.0);
    s_.assign(n, 0.0);
    slack_.assign(Policy::has_slack ? n : 0, T(0));
    slack_grad_.assign(slack_.size(), T(0));
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
    const std::size_t n = gamma_.size();
    const double scale = options_.average_dual && n > 0 ? 1.0 / static_cast<double>(n) : 1.0;
    for (std::size_t i = 0; i < n; ++i) {
      const double g = static_cast<double>(*gamma_[i]);
      report.max_abs_gamma = std::max(report.max_abs_gamma, std::abs(g));
      double extra = 0.0;
      if constexpr (Policy::has_dual) {
        const double u = Policy::has_slack ? static_cast<double>(slack_[i]) : 0.0;
        s_[i] = policy_.constraint(g, u);
        const double force = scale * (lambda_[i] + augmented_term(s_[i]));
        extra += force * policy_.dsdgamma(g);
        if constexpr (Policy::has_slack) slack_grad_[i] += static_cast<T>(policy_.rho * u - force);
      }
      if constexpr (requires { policy_.objective_gamma_gradient(g); }) extra += policy_.objective_gamma_gradient(g);
      if constexpr (Policy::learn_gamma) *gamma_grad_[i] += static_cast<T>(extra);
      else *gamma_grad_[i] = T(0);
    }
    report.gradient_norm = clip();
    ACE_THROW_IF(!std::isfinite(report.gradient_norm), numerical_error,
                 "ConstrainedTrainer: non-finite gradient norm at step ", steps_, " (loss ", report.loss,
                 "); the parameters were not updated");
    primal_.step(view_);
    for (auto& u : slack_) u = std::max(u, T(0));
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

  std::size_t gamma_count() const { return gamma_.size(); }
  double gamma(std::size_t i) const { return static_cast<double>(*gamma_[i]); }
  double max_abs_gamma() const {
    double m = 0.0;
    for (const T* g : gamma_) m = std::max(m, std::abs(static_cast<double>(*g)));
    return m;
  }
  std::span<const double> multipliers() const { return lambda_; }
  std::span<const T> slacks() const { return slack_; }
  /// The constraint values s_i of the last step (pre-step γ and u).
  std::span<const double> constraint_values() const { return s_; }
  std::size_t steps() const { return steps_; }
  const Policy& policy() const { return policy_; }

  /// Visits everything a bit-for-bit resume needs, for checkpoints: the model's parameters (θ and γ) as
  /// v.tensor("param/<name>", span), the multipliers, slacks and dual moments, the step counters, and the primal
  /// optimiser's state under "primal/" (when it offers visit_state).
  template <class V>
  void visit_state(V&& v) {
    model_.for_each_parameter([&](ParamView<T> p) { v.tensor("param/" + p.name, p.value); });
    if constexpr (HasBuffers<M>) model_.for_each_buffer([&](BufferView b) { v.tensor("buffer/" + b.name, b.value); });
    v.tensor("dual/lambda", std::span<double>(lambda_));
    v.tensor("dual/m", std::span<double>(dual_m_));
    v.tensor("dual/v", std::span<double>(dual_v_));
    if constexpr (Policy::has_slack) v.tensor("slack/u", std::span<T>(slack_));
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
    template <class F>
    void for_each_parameter(F&& f) {
      self->model_.for_each_parameter(f);
      if constexpr (Policy::has_slack)
        f(ParamView<T>{"slack", {self->slack_.data(), self->slack_.size()},
                       {self->slack_grad_.data(), self->slack_grad_.size()}, Role::slack, {}});
    }
  };

  double augmented_term(double s) const {
    if constexpr (std::same_as<Policy, EqualityConstraint>) return options_.augmented * s;
    else return s > 0.0 ? options_.augmented * s : 0.0;  // inequality forms: penalise violations only
  }

  void fix_gammas() {
    if constexpr (!Policy::learn_gamma) {
      T value = T(0);
      if constexpr (requires { policy_.scheduled_gamma(std::size_t{}, std::size_t{}); })
        value = static_cast<T>(policy_.scheduled_gamma(steps_, options_.total_steps));
      for (T* g : gamma_) *g = value;
    }
  }

  /// Scales the primal gradient to norm clip_norm when it is larger; returns the norm before clipping.
  double clip() {
    double sq = 0.0;
    view_.for_each_parameter([&](ParamView<T> p) { sq += detail::squared_norm<T>(p.grad); });
    const double norm = std::sqrt(sq);
    if (options_.clip_norm > 0.0 && norm > options_.clip_norm) {
      const T factor = static_cast<T>(options_.clip_norm / norm);
      view_.for_each_parameter([&](ParamView<T> p) {
        for (T& g : p.grad) g *= factor;
      });
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
  std::vector<T*> gamma_, gamma_grad_;
  std::vector<double> lambda_, s_, dual_m_, dual_v_;
  std::vector<T> slack_, slack_grad_;
  std::size_t steps_ = 0, dual_steps_ = 0;
};

}  // namespace ace
