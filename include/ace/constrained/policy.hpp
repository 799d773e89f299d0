// SPDX-License-Identifier: MIT
// Constraint policies for the primal–dual trainer: ACE equality (Algorithm 1), inequality, resilient (Algorithm 2),
// and the baselines strict, free, schedule and penalty (docs/method.md §3, §4, §6).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string_view>

#include "ace/backend/ops.hpp"
#include "ace/error.hpp"
#include "ace/optim/optimizer.hpp"

namespace ace {

/// What the trainer asks a policy, per relaxation parameter γ_i (all of them scalars; a gamma tensor of n entries is
/// n constraints):
///  * `name`;
///  * `has_dual` (multipliers λ_i and a dual step), `has_slack` (slacks u_i trained with the primal variables),
///    `learn_gamma` (γ takes primal steps), `branch_training` / `branch_deployed` (relaxation branches on or off);
///  * `form()`: the constraint as data (ConstraintForm, ace/backend/ops.hpp): the constraint value s_i (equality: γ;
///    inequality: |γ| - ε; resilient: |γ| - u), ds/dγ, a penalty's gradient (penalty baseline), the projection
///    λ >= 0 of inequality constraints. The trainer adds its options (augmented coefficient, averaging) and the
///    backend evaluates it in its own memory, so a step needs no transfer;
///  * `scheduled_gamma(step, total)` for the schedule baseline.
/// A new policy combines these: e.g. {.dual = true, .absolute = true, .slack = true, .epsilon = 0.1} is |γ| - 0.1 <= u.

/// ACE, Algorithm 1: γ_i = 0 enforced by unsigned multipliers; deploys f_eq.
struct EqualityConstraint {
  static constexpr std::string_view name = "ace-equality";
  static constexpr bool has_dual = true, has_slack = false, learn_gamma = true;
  static constexpr bool branch_training = true, branch_deployed = false;
  static ConstraintForm form() { return {.dual = true}; }
  void validate() const {}
};

/// |γ_i| <= ε with λ_i >= 0 (docs/method.md §5); deploys with the branches (the model is ε-close to equivariant).
struct InequalityConstraint {
  static constexpr std::string_view name = "ace-inequality";
  static constexpr bool has_dual = true, has_slack = false, learn_gamma = true;
  static constexpr bool branch_training = true, branch_deployed = true;
  double epsilon = 0.01;
  ConstraintForm form() const { return {.dual = true, .absolute = true, .epsilon = epsilon}; }
  void validate() const { detail::require_non_negative(epsilon, "InequalityConstraint::epsilon"); }
};

/// ACE, Algorithm 2: |γ_i| <= u_i with learned slacks and the cost (ρ/2)||u||²; at the optimum u_i = λ_i / ρ.
/// Deploys with the branches.
struct ResilientConstraint {
  static constexpr std::string_view name = "ace-resilient";
  static constexpr bool has_dual = true, has_slack = true, learn_gamma = true;
  static constexpr bool branch_training = true, branch_deployed = true;
  double rho = 1.0;
  ConstraintForm form() const { return {.dual = true, .absolute = true, .slack = true, .rho = rho}; }
  void validate() const { detail::require_positive(rho, "ResilientConstraint::rho"); }
};

/// Baseline "strict": γ fixed at 0 and the branches off throughout (the ordinary equivariant model).
struct StrictBaseline {
  static constexpr std::string_view name = "strict";
  static constexpr bool has_dual = false, has_slack = false, learn_gamma = false;
  static constexpr bool branch_training = false, branch_deployed = false;
  static ConstraintForm form() { return {.learn_gamma = false}; }
  void validate() const {}
};

/// Baseline "free": γ learnable, no constraint (an unconstrained model with an equivariant part).
struct FreeBaseline {
  static constexpr std::string_view name = "free";
  static constexpr bool has_dual = false, has_slack = false, learn_gamma = true;
  static constexpr bool branch_training = true, branch_deployed = true;
  static ConstraintForm form() { return {}; }
  void validate() const {}
};

/// Baseline "penalty": a fixed weight on Σ γ_i² added to the objective, no multiplier; deploys with the branches.
struct PenaltyBaseline {
  static constexpr std::string_view name = "penalty";
  static constexpr bool has_dual = false, has_slack = false, learn_gamma = true;
  static constexpr bool branch_training = true, branch_deployed = true;
  double weight = 1.0;
  ConstraintForm form() const { return {.penalty = weight}; }
  void validate() const { detail::require_non_negative(weight, "PenaltyBaseline::weight"); }
};

/// Baseline "schedule" (Pertigkiozoglou et al. 2024): γ is not learned but follows a fixed schedule over the run —
/// triangular (0 -> 1 at mid-training -> 0 at the end) or linear (1 -> 0) — and the branches are dropped at
/// evaluation.
struct ScheduleBaseline {
  enum class Shape { triangular, linear };
  static constexpr std::string_view name = "schedule";
  static constexpr bool has_dual = false, has_slack = false, learn_gamma = false;
  static constexpr bool branch_training = true, branch_deployed = false;
  Shape shape = Shape::triangular;
  static ConstraintForm form() { return {.learn_gamma = false}; }
  /// γ at `step` of `total` steps.
  double scheduled_gamma(std::size_t step, std::size_t total) const {
    const double t = total <= 1 ? 1.0 : static_cast<double>(step) / static_cast<double>(total - 1);
    if (shape == Shape::linear) return 1.0 - t;
    return t <= 0.5 ? 2.0 * t : 2.0 * (1.0 - t);
  }
  void validate() const {}
};

template <class P>
concept ConstraintPolicy = requires(const P& p) {
  { P::name } -> std::convertible_to<std::string_view>;
  { P::has_dual } -> std::convertible_to<bool>;
  { P::has_slack } -> std::convertible_to<bool>;
  { P::learn_gamma } -> std::convertible_to<bool>;
  { P::branch_training } -> std::convertible_to<bool>;
  { P::branch_deployed } -> std::convertible_to<bool>;
  { p.form() } -> std::convertible_to<ConstraintForm>;
  p.validate();
};

}  // namespace ace
