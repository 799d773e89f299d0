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
#include <utility>
#include <vector>

#include "ace/backend/default.hpp"
#include "ace/constrained/policy.hpp"
#include "ace/error.hpp"
#include "ace/optim/optimizer.hpp"
#include "ace/tensor/parameter.hpp"

namespace ace {

/// A network the ACE trainer can train. It need not be built from ace modules: a hand-written model, or a wrapper
/// around another framework, qualifies by providing
///  * `scalar` and `for_each_parameter(f)` with roles: Role::gamma for every relaxation scalar γ_i, other roles for θ;
///    the views point into the memory of `backend` (Cpu, host memory, when the model names none);
///  * `batch`: the type of a mini-batch, and `loss_and_gradients(batch)`: the mean task loss J0 on the batch, with
///    dJ0/dparameter *accumulated* into the gradient spans (the trainer zeroes them before each call);
///  * `set_relaxation(bool)`: evaluate with the non-equivariant branches on (f_eq + γ f_neq) or off (f_eq).
/// Optionally `loss_and_gradients(batch, MatrixRef<double> loss)`: the same with J0 written to a 1×1 double in
/// backend memory instead of returned. The trainer uses it when present, so a step on a device backend copies
/// nothing to the host (without it, one value per step).
template <class M>
concept HomotopyModel = Parameterised<M> && Backend<backend_of_t<M>> && requires(M& m, const typename M::batch& b, bool on) {
  { m.loss_and_gradients(b) } -> std::convertible_to<double>;
  m.set_relaxation(on);
};

namespace detail {
/// B::graph for a RecordingBackend, an empty type otherwise.
template <class B, bool = RecordingBackend<B>>
struct graph_of {
  struct type {};
};
template <class B>
struct graph_of<B, true> {
  using type = typename B::graph;
};
}  // namespace detail

/// Dual ascent by plain steps: λ <- λ + lr * s (docs/method.md §3).
struct DualSGD {
  double lr = 1e-3;
  void validate() const { detail::require_positive(lr, "DualSGD::lr"); }
  DualStep step() const { return {.lr = lr}; }
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
  DualStep step() const { return {lr, beta1, beta2, eps, true}; }
};

/// Either of them, chosen at run time (a command line's choice, one trainer type for both).
struct DualAscent {
  double lr = 1e-3;
  bool adam = false;  // DualAdam's step with its default moments, else DualSGD's
  void validate() const { adam ? DualAdam{.lr = lr}.validate() : DualSGD{.lr = lr}.validate(); }
  DualStep step() const { return adam ? DualAdam{.lr = lr}.step() : DualSGD{.lr = lr}.step(); }
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

/// What one checked step did.
struct StepReport {
  double loss = 0.0;            // J0 on the batch, before the step
  double max_abs_gamma = 0.0;   // max_i |γ_i| before the step
  double max_multiplier = 0.0;  // max(0, max_i λ_i) after the dual step
  double gradient_norm = 0.0;   // global primal gradient norm before clipping
};

/// The primal–dual trainer. Everything it updates lives in the model's backend: the parameters (θ and γ), the
/// slacks, the optimiser's state, the multipliers λ, the constraint values and the dual moments; the backend
/// evaluates the Lagrangian's terms and the dual step (constraint_terms, dual_ascent), so on a device backend a step
/// copies nothing to the host. One step:
///   1. zero the gradients; fix γ for policies that do not learn it (strict: 0, schedule: its schedule);
///   2. J0 and dJ0/dθ, dJ0/dγ from the model (branches on or off per policy);
///   3. add the Lagrangian's terms (the policy's ConstraintForm): dγ_i += (λ_i + c s_i) ds_i/dγ_i (÷ n with
///      average_dual), du_i = ρ u_i - (λ_i + c s_i) for resilient slacks, 2 w γ_i for the penalty baseline;
///   4. optional global-norm clipping, then the primal optimiser's step on θ, γ and u (u projected to u >= 0);
///   5. the dual step with the constraint values s_i of the *pre-step* γ and u (docs/method.md §3), projected to λ >= 0
///      for inequality forms, skipped during the warm-up.
/// `step(batch)` is the checked form: it reads J0 and the gradient norm back before the update (a non-finite one
/// throws numerical_error and leaves every variable as it was) and returns a StepReport (two reads on a device
/// backend). `advance(batch)` is the same step with no read at all, for device backends and CUDA graphs: read
/// `take_mean_loss()`, `gammas()`, `multipliers()` and `slacks()` when logging; a non-finite loss then shows as a
/// non-finite mean (the parameters of that stretch are lost, so keep checkpoints).
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
    form_ = policy_.form();
    ACE_THROW_IF(form_.dual != Policy::has_dual || form_.slack != Policy::has_slack ||
                     form_.learn_gamma != Policy::learn_gamma,
                 invalid_argument, "ConstrainedTrainer: policy '", Policy::name,
                 "' states has_dual/has_slack/learn_gamma unlike its form()");
    form_.augmented = options_.augmented;
    form_.scale = options_.average_dual && n > 0 ? 1.0 / static_cast<double>(n) : 1.0;
    lambda_ = zeros<B, double>(1, n);
    s_ = zeros<B, double>(1, n);
    dual_m_ = zeros<B, double>(1, n);
    dual_v_ = zeros<B, double>(1, n);
    const std::size_t slacks = Policy::has_slack ? n : 0;
    slack_ = zeros<B, T>(1, slacks);
    slack_grad_ = zeros<B, T>(1, slacks);
    report_ = zeros<B, double>(1, report_size);
    loss_sum_ = zeros<B, double>(1, 1);
    dual_t_ = zeros<B, double>(1, 1);
    one_ = zeros<B, double>(1, 1);
    B::fill(view(one_), 1.0);
    fix_gammas();
    model_.set_relaxation(Policy::branch_training);
  }

  /// One checked step (see the class comment): throws numerical_error before the update for a non-finite loss or
  /// gradient norm.
  StepReport step(const typename M::batch& batch) {
    run_step(batch, true);
    StepReport r;
    r.loss = report_host_[loss_slot];
    r.gradient_norm = std::sqrt(report_host_[norm_slot]);
    r.max_abs_gamma = report_host_[gamma_slot];
    B::reduce_into(Accumulate::max, MatrixRef<const double>(view(lambda_)), slot(multiplier_slot));
    B::to_host(MatrixRef<const double>(slot(multiplier_slot)), std::span<double>(&r.max_multiplier, 1));
    return r;
  }
  /// One step with no host read (see the class comment).
  void advance(const typename M::batch& batch) { run_step(batch, false); }

  /// A recorded training step: `replay()` is one `advance` on the batch the recording was made with (its memory:
  /// copy the next batch's values into those tensors between replays). On a RecordingBackend (ace::Cuda) the step's
  /// operations are captured once into a CUDA graph and replayed with one launch; elsewhere replay() runs advance.
  /// The step counts on the host (steps(), the optimiser's, checkpoints) advance with each replay.
  class Recording {
   public:
    void replay() {
      if constexpr (RecordingBackend<B>) {
        graph_.replay();
        trainer_->count_replayed_step();
      } else {
        trainer_->advance(*batch_);
      }
    }

   private:
    friend class ConstrainedTrainer;
    using Graph = typename detail::graph_of<B>::type;
    Recording(ConstrainedTrainer* t, const typename M::batch* b, Graph g) : trainer_(t), batch_(b), graph_(std::move(g)) {}
    ConstrainedTrainer* trainer_;
    const typename M::batch* batch_;
    Graph graph_;
  };

  /// Records one step on `batch` (which must outlive the recording, as must the trainer). Runs one ordinary step
  /// first when none has run (the buffers a recording needs are allocated by a first step). Throws unsupported for
  /// what a recording cannot hold: the schedule baseline (its γ follows the host's step count), a step inside the dual
  /// warm-up, a model whose step copies data from the host (class labels).
  Recording record(const typename M::batch&& batch) = delete;  // the batch must outlive the recording
  Recording record(const typename M::batch& batch) {
    static_assert(requires { primal_.set_steps(primal_.steps()); },
                  "ace: recording a step needs a primal optimiser with steps() and set_steps(n) (SGD, Adam, AdamW) to "
                  "count the replayed steps");
    ACE_THROW_IF((requires { policy_.scheduled_gamma(std::size_t{}, std::size_t{}); }), unsupported,
                 "ConstrainedTrainer::record: the '", Policy::name,
                 "' policy sets gamma from the step count on the host; it cannot be recorded");
    ACE_THROW_IF(Policy::has_dual && steps_ < options_.dual_warmup, unsupported,
                 "ConstrainedTrainer::record: step ", steps_, " is inside the dual warm-up (", options_.dual_warmup,
                 " steps); record after it");
    if (steps_ == 0) advance(batch);
    if constexpr (RecordingBackend<B>) {
      const Counts saved = counts();
      typename B::graph g;
      try {
        g = B::capture([&] { run_step(batch, false); });
      } catch (...) {
        restore(saved);
        throw;
      }
      restore(saved);  // capture recorded the step without running it
      return Recording(this, &batch, std::move(g));
    } else {
      return Recording(this, &batch, {});
    }
  }

  /// The sum of J0 over the steps since the last take_mean_loss() (not finite once one of them was not): one read.
  double running_loss() const {
    double sum = 0.0;
    B::to_host(MatrixRef<const double>(view(loss_sum_)), std::span<double>(&sum, 1));
    return sum;
  }

  /// The mean J0 over the steps since the last call (or the start), then starts a new mean: one read.
  double take_mean_loss() {
    const double sum = running_loss();
    const double mean = loss_count_ > 0 ? sum / static_cast<double>(loss_count_) : 0.0;
    B::fill(view(loss_sum_), 0.0);
    loss_count_ = 0;
    return mean;
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

  std::size_t gamma_count() const { return flat(lambda_).size(); }
  /// Every γ_i, read from the backend (one read per gamma tensor).
  std::vector<double> gammas() const {
    std::vector<double> out;
    out.reserve(gamma_count());
    for (const GammaView& g : gammas_)
      for (T v : to_host_vector<B>(VectorRef<const T>(g.value))) out.push_back(static_cast<double>(v));
    return out;
  }
  /// γ_i, read from the backend.
  double gamma(std::size_t i) const {
    for (const GammaView& g : gammas_)
      if (i < g.first + g.value.size()) return static_cast<double>(to_host_vector<B>(g.value.slice(i - g.first, 1))[0]);
    throw invalid_argument(detail::concat("ConstrainedTrainer::gamma: index ", i, " of ", gamma_count()));
  }
  double max_abs_gamma() const {
    double m = 0.0;
    for (double g : gammas()) m = std::max(m, std::abs(g));
    return m;
  }
  /// The multipliers λ_i, read from the backend into a host copy the trainer keeps (valid until the next call).
  const std::vector<double>& multipliers() const { return read_into(lambda_, lambda_host_); }
  /// The slacks u_i (resilient constraints; empty otherwise), read from the backend.
  std::vector<double> slacks() const {
    const auto u = to_host_vector<B>(flat(slack_));
    return {u.begin(), u.end()};
  }
  /// The constraint values s_i of the last step (pre-step γ and u), read from the backend into a host copy the
  /// trainer keeps (valid until the next call).
  const std::vector<double>& constraint_values() const { return read_into(s_, s_host_); }
  std::size_t steps() const { return steps_; }
  const Policy& policy() const { return policy_; }
  /// The policy's constraint with the trainer's options (what the backend evaluates).
  const ConstraintForm& form() const { return form_; }

  /// Visits everything a bit-for-bit resume needs, for checkpoints: the model's parameters (θ and γ) as
  /// v.tensor("param/<name>", view, on_backend<B>), its buffers, the multipliers and dual moments, the slacks, the
  /// step counters, the running sum behind take_mean_loss(), and the primal optimiser's state under "primal/" (when
  /// it offers visit_state).
  template <class V>
  void visit_state(V&& v) {
    model_.for_each_parameter([&](ParamView<T> p) { v.tensor("param/" + p.name, p.value, on_backend<B>{}); });
    if constexpr (HasBuffers<M>)
      model_.for_each_buffer([&](BufferView b) { v.tensor("buffer/" + b.name, b.value, on_backend<B>{}); });
    v.tensor("dual/lambda", flat(lambda_), on_backend<B>{});
    v.tensor("dual/m", flat(dual_m_), on_backend<B>{});
    v.tensor("dual/v", flat(dual_v_), on_backend<B>{});
    if constexpr (Policy::has_slack) v.tensor("slack/u", flat(slack_), on_backend<B>{});
    v.counter("trainer/steps", steps_);
    v.counter("trainer/dual_steps", dual_steps_);
    v.tensor("trainer/loss_sum", flat(loss_sum_), on_backend<B>{});  // the epoch's mean so far (mid-epoch saves)
    v.counter("trainer/loss_count", loss_count_);
    const double t = static_cast<double>(dual_steps_);  // the count the dual step reads, as loaded (or unchanged)
    B::from_host(std::span<const double>(&t, 1), view(dual_t_));
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
  // The report's entries in backend memory: J0, the squared gradient norm, max |γ|, max λ.
  static constexpr std::size_t loss_slot = 0, norm_slot = 1, gamma_slot = 2, multiplier_slot = 3, report_size = 4;

  MatrixRef<double> slot(std::size_t k) { return view(report_).columns(k, 1); }
  static const std::vector<double>& read_into(const tensor_t<B, double, 2>& t, std::vector<double>& host) {
    host.resize(flat(t).size());
    B::to_host(MatrixRef<const double>(view(t)), std::span<double>(host));
    return host;
  }

  void run_step(const typename M::batch& batch, bool checked) {
    zero_grad(view_);
    fix_gammas();
    model_.set_relaxation(Policy::branch_training);
    B::fill(view(report_), 0.0);
    if constexpr (requires { model_.loss_and_gradients(batch, MatrixRef<double>{}); }) {
      model_.loss_and_gradients(batch, slot(loss_slot));
    } else {
      const double loss = model_.loss_and_gradients(batch);
      B::from_host(std::span<const double>(&loss, 1), slot(loss_slot));
    }
    if (form_.dual || form_.penalty != 0.0 || !form_.learn_gamma)
      for (const GammaView& g : gammas_) {
        const std::size_t n = g.value.size(), first = Policy::has_slack ? g.first : 0;
        B::constraint_terms(form_, MatrixRef<const T>(g.value.row()), MatrixRef<const T>(view(slack_).columns(first, Policy::has_slack ? n : 0)),
                            MatrixRef<const double>(view(lambda_).columns(g.first, n)), g.grad.row(),
                            view(slack_grad_).columns(first, Policy::has_slack ? n : 0), view(s_).columns(g.first, n));
      }
    if (checked || options_.clip_norm > 0.0)
      view_.for_each_parameter(
          [&](ParamView<T> p) { B::reduce_into(Accumulate::sum_squares, MatrixRef<const T>(p.grad.row()), slot(norm_slot)); });
    if (checked) {
      for (const GammaView& g : gammas_) B::reduce_into(Accumulate::max_abs, MatrixRef<const T>(g.value.row()), slot(gamma_slot));
      B::to_host(MatrixRef<const double>(view(report_)), std::span<double>(report_host_));
      const double loss = report_host_[loss_slot], norm = std::sqrt(report_host_[norm_slot]);
      ACE_THROW_IF(!std::isfinite(loss), numerical_error, "ConstrainedTrainer: non-finite loss ", loss, " at step ",
                   steps_, " (max |gamma| = ", report_host_[gamma_slot], ")");
      ACE_THROW_IF(!std::isfinite(norm), numerical_error, "ConstrainedTrainer: non-finite gradient norm at step ",
                   steps_, " (loss ", loss, "); the parameters were not updated");
    }
    if (options_.clip_norm > 0.0)
      view_.for_each_parameter([&](ParamView<T> p) {
        B::scale_to_norm(MatrixRef<const double>(slot(norm_slot)), options_.clip_norm, p.grad.row());
      });
    primal_.step(view_);
    if constexpr (Policy::has_slack) B::template map<ReLUOp>(MatrixRef<const T>(view(slack_)), view(slack_));  // u >= 0
    fix_gammas();
    if constexpr (Policy::has_dual) {
      if (steps_ >= options_.dual_warmup) dual_step();
    }
    B::reduce_into(Accumulate::sum, MatrixRef<const double>(slot(loss_slot)), view(loss_sum_));
    ++loss_count_;
    ++steps_;
  }

  void fix_gammas() {
    if constexpr (!Policy::learn_gamma) {
      T value = T(0);
      if constexpr (requires { policy_.scheduled_gamma(std::size_t{}, std::size_t{}); })
        value = static_cast<T>(policy_.scheduled_gamma(steps_, options_.total_steps));
      for (const GammaView& g : gammas_) B::fill(g.value.row(), value);
    }
  }

  void dual_step() {
    ++dual_steps_;
    B::reduce_into(Accumulate::sum, MatrixRef<const double>(view(one_)), view(dual_t_));  // t += 1 in backend memory
    B::dual_ascent(form_, dual_.step(), MatrixRef<const double>(view(dual_t_)), MatrixRef<const double>(view(s_)), view(lambda_),
                   view(dual_m_), view(dual_v_));
  }

  // The host's step counts (a recording is captured without running: they are put back after it).
  struct Counts {
    std::size_t steps, dual_steps, losses, primal;
  };
  Counts counts() const { return {steps_, dual_steps_, loss_count_, primal_.steps()}; }
  // What one replayed step adds to them (the step itself ran on the backend).
  void count_replayed_step() {
    if (Policy::has_dual && steps_ >= options_.dual_warmup) ++dual_steps_;
    ++steps_;
    ++loss_count_;
    primal_.set_steps(primal_.steps() + 1);
  }
  void restore(const Counts& c) {
    steps_ = c.steps;
    dual_steps_ = c.dual_steps;
    loss_count_ = c.losses;
    primal_.set_steps(c.primal);
  }

  M& model_;
  PrimalOptimizer primal_;
  Policy policy_;
  Dual dual_;
  TrainerOptions options_;
  ConstraintForm form_;
  PrimalView view_;
  std::vector<GammaView> gammas_;
  tensor_t<B, T, 2> slack_, slack_grad_;
  tensor_t<B, double, 2> lambda_, s_, dual_m_, dual_v_, report_, loss_sum_, dual_t_, one_;
  double report_host_[report_size] = {};
  mutable std::vector<double> lambda_host_, s_host_;
  std::size_t steps_ = 0, dual_steps_ = 0, loss_count_ = 0;
};

}  // namespace ace
