// SPDX-License-Identifier: MIT
// The primal–dual trainer on a hand-written model (not built from ace modules) with known constrained optima and
// multipliers: J0 = ½(θ - a)² + ½(γ - b)². Equality: γ* = 0, λ* = b. Resilient: u* = γ* = b/(1+ρ), λ* = ρu*.
// Inequality |γ| <= ε: γ* = ε, λ* = b - ε. Free: γ* = b. Penalty w γ²: γ* = b/(1+2w).
#include <cmath>
#include <limits>

#include "ace/optim/adam.hpp"
#include "ace/optim/by_role.hpp"
#include "ace/optim/sgd.hpp"
#include "backend_support.hpp"
#include "constrained/quadratic.hpp"

using namespace ace;

namespace {
template <class B, class Policy, class Dual = DualSGD>
auto run(test::Quadratic<B>& model, Policy policy, std::size_t steps, Dual dual = {.lr = 0.05},
         TrainerOptions options = {}) {
  ConstrainedTrainer trainer(model, SGD<double, B>({.lr = 0.05}), policy, dual, options);
  for (std::size_t i = 0; i < steps; ++i) trainer.step(0);
  return trainer;
}
/// Records the names a state visitor is shown.
template <class B>
struct StateNames {
  std::vector<std::string>& out;
  void tensor(const std::string& n, std::span<double>) { out.push_back(n); }
  void tensor(const std::string& n, VectorRef<double>, on_backend<B>) { out.push_back(n); }
  void counter(const std::string& n, std::size_t&) { out.push_back(n); }
};
}  // namespace

TEMPLATE_LIST_TEST_CASE("ace equality: gamma -> 0, lambda -> b, theta -> a (Algorithm 1)", "[ace][equality]", test::Backends) {
  using B = TestType;
  using Quadratic = test::Quadratic<B>;
  Quadratic m;
  auto t = run(m, EqualityConstraint{}, 4000);
  CHECK(std::abs(m.gamma) < 1e-8);
  CHECK(t.multipliers()[0] == Approx(m.b).margin(1e-8));
  CHECK(m.theta == Approx(m.a).margin(1e-8));
  CHECK(m.relaxed);  // trained with the branch on
  t.deploy();
  CHECK_FALSE(m.relaxed);  // deployed as f_eq
}

TEMPLATE_LIST_TEST_CASE("ace resilient: u* = gamma* = b/(1+rho) and u* = lambda*/rho (Algorithm 2)", "[ace][resilient]", test::Backends) {
  using B = TestType;
  using Quadratic = test::Quadratic<B>;
  for (double rho : {1.0, 3.0}) {
    Quadratic m;
    auto t = run(m, ResilientConstraint{.rho = rho}, 6000);
    CAPTURE(rho);
    const double u = m.b / (1.0 + rho);
    CHECK(t.slacks()[0] == Approx(u).margin(1e-8));
    CHECK(m.gamma == Approx(u).margin(1e-8));
    CHECK(t.multipliers()[0] == Approx(rho * u).margin(1e-8));
    CHECK(t.slacks()[0] == Approx(t.multipliers()[0] / rho).margin(1e-8));
    t.deploy();
    CHECK(m.relaxed);  // deployed with the branches
  }
}

TEMPLATE_LIST_TEST_CASE("inequality, free and penalty policies reach their optima", "[ace][policies]", test::Backends) {
  using B = TestType;
  using Quadratic = test::Quadratic<B>;
  Quadratic ineq;
  auto ti = run(ineq, InequalityConstraint{.epsilon = 0.1}, 6000);
  CHECK(ineq.gamma == Approx(0.1).margin(1e-8));
  CHECK(ti.multipliers()[0] == Approx(ineq.b - 0.1).margin(1e-8));

  Quadratic loose;  // an inactive inequality keeps lambda at 0
  auto tl = run(loose, InequalityConstraint{.epsilon = 2.0}, 3000);
  CHECK(loose.gamma == Approx(loose.b).margin(1e-8));
  CHECK(tl.multipliers()[0] == 0.0);

  Quadratic free;
  auto tf = run(free, FreeBaseline{}, 3000);
  CHECK(free.gamma == Approx(free.b).margin(1e-8));
  CHECK(tf.multipliers()[0] == 0.0);

  Quadratic pen;
  run(pen, PenaltyBaseline{.weight = 2.0}, 3000);
  CHECK(pen.gamma == Approx(pen.b / 5.0).margin(1e-8));
}

TEMPLATE_LIST_TEST_CASE("strict and schedule baselines fix gamma; strict trains without the branch", "[ace][baselines]", test::Backends) {
  using B = TestType;
  using Quadratic = test::Quadratic<B>;
  Quadratic strict;
  auto ts = run(strict, StrictBaseline{}, 500);
  CHECK(strict.gamma == 0.0);
  CHECK_FALSE(strict.relaxed);
  CHECK(strict.theta == Approx(strict.a).margin(1e-8));
  CHECK(ts.multipliers()[0] == 0.0);

  Quadratic sched;
  ConstrainedTrainer t(sched, SGD<double, B>({.lr = 0.05}), ScheduleBaseline{}, DualSGD{}, {.total_steps = 101});
  std::vector<double> seen;
  for (int i = 0; i < 101; ++i) {
    t.step(0);
    seen.push_back(sched.gamma);  // the schedule's value at step i
  }
  CHECK(seen[0] == 0.0);              // steps 0..100 of a triangular schedule
  CHECK(seen[25] == Approx(0.5));     // half way up
  CHECK(seen[50] == Approx(1.0));     // the top, at mid-training
  CHECK(seen[99] == Approx(0.02));
  CHECK(seen[100] == Approx(0.0).margin(1e-12));
  t.deploy();
  CHECK_FALSE(sched.relaxed);
}

TEMPLATE_LIST_TEST_CASE("dual step: uses the pre-step gamma, lambda grows while gamma > 0", "[ace][dual]", test::Backends) {
  using B = TestType;
  using Quadratic = test::Quadratic<B>;
  Quadratic m;
  ConstrainedTrainer t(m, SGD<double, B>({.lr = 0.05}), EqualityConstraint{}, DualSGD{.lr = 0.1});
  const double g0 = m.gamma;
  t.step(0);
  CHECK(t.multipliers()[0] == Approx(0.1 * g0).epsilon(1e-15));  // not the post-step gamma
  CHECK(m.gamma < g0);
  double previous = t.multipliers()[0];
  while (m.gamma > 0.05) {
    t.step(0);
    CHECK(t.multipliers()[0] > previous);
    previous = t.multipliers()[0];
  }

  Quadratic ma;  // Adam ascent: about lr per step while the sign holds
  ConstrainedTrainer ta(ma, SGD<double, B>({.lr = 0.01}), EqualityConstraint{}, DualAdam{.lr = 0.01});
  for (int i = 0; i < 5; ++i) ta.step(0);
  CHECK(ta.multipliers()[0] == Approx(0.05).epsilon(1e-3));

  Quadratic warm;
  ConstrainedTrainer tw(warm, SGD<double, B>({.lr = 0.05}), EqualityConstraint{}, DualSGD{.lr = 0.1},
                        {.dual_warmup = 10});
  for (int i = 0; i < 10; ++i) tw.step(0);
  CHECK(tw.multipliers()[0] == 0.0);
  tw.step(0);
  CHECK(tw.multipliers()[0] > 0.0);
}

TEMPLATE_LIST_TEST_CASE("options: augmented Lagrangian still converges; clipping bounds the step", "[ace][options]", test::Backends) {
  using B = TestType;
  using Quadratic = test::Quadratic<B>;
  Quadratic m;
  auto t = run(m, EqualityConstraint{}, 3000, DualSGD{.lr = 0.05}, {.augmented = 1.0});
  CHECK(std::abs(m.gamma) < 1e-8);
  CHECK(t.multipliers()[0] == Approx(m.b).margin(1e-8));

  Quadratic c;
  ConstrainedTrainer tc(c, SGD<double, B>({.lr = 1.0}), FreeBaseline{}, DualSGD{}, {.clip_norm = 0.01});
  const StepReport r = tc.step(0);
  CHECK(r.gradient_norm == Approx(std::hypot(1.0, 0.3)));
  CHECK(std::hypot(c.theta - 3.0, c.gamma - 1.0) == Approx(0.01));
}

TEMPLATE_LIST_TEST_CASE("the gradient norm sums every entry, in double, for any length", "[ace][options]",
                        test::Backends) {
  using B = TestType;
  for (std::size_t n : {0, 1, 7, 8, 9, 17, 1000}) {
    std::vector<float> g(n);
    double expected = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      g[i] = 1e20f * static_cast<float>(i % 5 + 1);  // squares overflow float
      expected += static_cast<double>(g[i]) * static_cast<double>(g[i]);
    }
    CHECK(B::sum_squares(MatrixRef<const float>{g.data(), n == 0 ? 0u : 1u, n, n}) == Approx(expected).epsilon(1e-12));
  }
}

TEMPLATE_LIST_TEST_CASE("ByRole: Adam on theta, plain gradient steps on gamma (the paper's Algorithm 1)", "[ace][by_role]",
                        test::Backends) {
  using B = TestType;
  using Quadratic = test::Quadratic<B>;
  {  // one step by hand: Adam's first step moves theta by lr sign(g); SGD moves gamma by -eta g
    Quadratic m;
    ByRole<Adam<double, B>, SGD<double, B>> opt(Adam<double, B>({.lr = 0.01}), SGD<double, B>({.lr = 0.5}));
    m.loss_and_gradients(0);
    const double g_theta = m.dtheta, g_gamma = m.dgamma, theta = m.theta, gamma = m.gamma;
    opt.step(m);
    CHECK(m.theta == Approx(theta - 0.01 * (g_theta > 0 ? 1.0 : -1.0)).epsilon(1e-6));
    CHECK(m.gamma == gamma - 0.5 * g_gamma);  // exactly one plain step
    CHECK(opt.steps() == 1);
    std::vector<std::string> names;
    opt.visit_state(m, StateNames<B>{names});
    CHECK(names == std::vector<std::string>{"main/steps", "main/m/theta", "main/v/theta", "special/steps"});
  }
  // Algorithm 1: gamma <- gamma - eta (dJ/dgamma + lambda), lambda <- lambda + eta_d gamma: the constrained optimum.
  Quadratic m;
  ConstrainedTrainer t(m, ByRole<Adam<double, B>, SGD<double, B>>(Adam<double, B>({.lr = 0.05}), SGD<double, B>({.lr = 0.2})),
                       EqualityConstraint{}, DualSGD{.lr = 0.05});
  for (int i = 0; i < 3000; ++i) t.step(0);
  CHECK(std::abs(m.gamma) < 1e-8);
  CHECK(t.multipliers()[0] == Approx(m.b).margin(1e-8));
  CHECK(m.theta == Approx(m.a).margin(1e-6));
}

TEMPLATE_LIST_TEST_CASE("advance and a recorded step train as checked steps do", "[ace][record]", test::Backends) {
  using B = TestType;
  using Quadratic = test::Quadratic<B>;
  Quadratic m1, m2, m3;
  const auto make = [](Quadratic& m) {
    return ConstrainedTrainer(m, SGD<double, B>({.lr = 0.05, .momentum = 0.5}), ResilientConstraint{.rho = 2.0},
                              DualAdam{.lr = 0.05}, {.augmented = 1.0, .clip_norm = 2.0});
  };
  auto checked = make(m1), advanced = make(m2), recorded = make(m3);
  const typename Quadratic::batch batch{};
  for (int i = 0; i < 40; ++i) {
    checked.step(batch);
    advanced.advance(batch);
  }
  auto step = recorded.record(batch);  // runs the first step itself
  CHECK(recorded.steps() == 1);
  for (int i = 1; i < 40; ++i) step.replay();
  for (auto* t : {&advanced, &recorded}) {
    CHECK(t->gammas() == checked.gammas());
    CHECK(t->multipliers() == checked.multipliers());
    CHECK(t->slacks() == checked.slacks());
    CHECK(t->steps() == 40);
    CHECK(t->primal_optimizer().steps() == 40);
  }
  CHECK(m2.theta == m1.theta);
  CHECK(m3.theta == m1.theta);
  const double mean = checked.take_mean_loss();
  CHECK(advanced.take_mean_loss() == mean);
  CHECK(recorded.take_mean_loss() == mean);
  CHECK(checked.take_mean_loss() == 0.0);  // a new mean: no step since
}

TEMPLATE_LIST_TEST_CASE("invalid options and non-finite losses throw with the value", "[ace][errors]", test::Backends) {
  using B = TestType;
  using Quadratic = test::Quadratic<B>;
  Quadratic m;
  CHECK_THROWS_WITH(ConstrainedTrainer(m, SGD<double, B>({.lr = 0.1}), EqualityConstraint{}, DualSGD{.lr = -1.0}),
                    Catch::Contains("DualSGD::lr") && Catch::Contains("-1"));
  CHECK_THROWS_WITH(ConstrainedTrainer(m, SGD<double, B>({.lr = 0.1}), ResilientConstraint{.rho = 0.0}),
                    Catch::Contains("rho"));
  CHECK_THROWS_AS(ConstrainedTrainer(m, SGD<double, B>({.lr = 0.1}), FreeBaseline{}, DualSGD{},
                                     {.clip_norm = std::nan("")}),
                  invalid_argument);
  CHECK_THROWS_AS(ConstrainedTrainer(m, SGD<double, B>({.lr = 0.1}), EqualityConstraint{}, DualAdam{.beta1 = 1.0}),
                  invalid_argument);
  struct Mismatched : EqualityConstraint {  // claims a dual variable but its form has none
    static ConstraintForm form() { return {}; }
  };
  CHECK_THROWS_WITH(ConstrainedTrainer(m, SGD<double, B>({.lr = 0.1}), Mismatched{}),
                    Catch::Contains("ace-equality") && Catch::Contains("form()"));
  m.a = std::numeric_limits<double>::infinity();
  ConstrainedTrainer t(m, SGD<double, B>({.lr = 0.1}), EqualityConstraint{});
  CHECK_THROWS_AS(t.step(0), numerical_error);
}
