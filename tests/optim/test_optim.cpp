// SPDX-License-Identifier: MIT
// Optimisers: exact update rules against hand-written recurrences, convergence to an analytic optimum, per-role
// rates, option validation, determinism, and a changed model detected.
#include <Eigen/Dense>
#include <cmath>

#include "ace/nn/core/activation.hpp"
#include "ace/nn/core/linear.hpp"
#include "ace/nn/core/loss.hpp"
#include "ace/nn/core/sequential.hpp"
#include "ace/optim/adam.hpp"
#include "ace/optim/sgd.hpp"
#include "backend_support.hpp"

using namespace ace;

namespace {
/// L(p) = 0.5 ||A p - b||^2 over a weight vector p (3 values) and a scalar "gamma" q with L += 0.5 (q - 2)^2.
/// Hand-written: its parameters are std::vectors in host memory, which both Cpu and Reference address.
template <class B = Cpu>
struct LeastSquares {
  using scalar = double;
  using backend = B;
  Eigen::Matrix3d a;
  Eigen::Vector3d b;
  std::vector<double> p{0.0, 0.0, 0.0}, dp{0.0, 0.0, 0.0}, q{0.0}, dq{0.0};

  LeastSquares() {
    a << 2.0, 0.3, 0.0, 0.3, 1.0, 0.2, 0.0, 0.2, 0.5;
    b << 1.0, -2.0, 0.5;
  }
  template <class F>
  void for_each_parameter(F&& f) {
    f(ParamView<double>{"p", p, dp, Role::weight, {}});
    f(ParamView<double>{"q", q, dq, Role::gamma, {}});
  }
  void gradient() {
    const Eigen::Vector3d x(p[0], p[1], p[2]);
    const Eigen::Vector3d g = a.transpose() * (a * x - b);
    for (int i = 0; i < 3; ++i) dp[static_cast<std::size_t>(i)] = g(i);
    dq[0] = q[0] - 2.0;
  }
  Eigen::Vector3d optimum() const { return (a.transpose() * a).ldlt().solve(a.transpose() * b); }
};

/// A model with one parameter and a gradient set by hand.
template <class B = Cpu>
struct Scalar {
  using scalar = double;
  using backend = B;
  std::vector<double> w{1.0}, g{0.0};
  template <class F>
  void for_each_parameter(F&& f) {
    f(ParamView<double>{"w", w, g, Role::weight, {}});
  }
};
}  // namespace

TEMPLATE_LIST_TEST_CASE("optim: SGD, momentum and Nesterov follow their recurrences", "[optim][sgd]", test::Backends) {
  using B = TestType;
  const std::vector<double> grads{0.5, -1.0, 2.0, 0.25};
  for (bool nesterov : {false, true}) {
    Scalar<B> m;
    SGD<double, B> sgd({.lr = 0.1, .momentum = 0.9, .nesterov = nesterov, .weight_decay = 0.01});
    double w = 1.0, buf = 0.0;
    for (std::size_t t = 0; t < grads.size(); ++t) {
      m.g[0] = grads[t];
      sgd.step(m);
      double g = grads[t] + 0.01 * w;
      buf = t == 0 ? g : 0.9 * buf + g;
      g = nesterov ? g + 0.9 * buf : buf;
      w -= 0.1 * g;
      CHECK(m.w[0] == Approx(w).epsilon(1e-15));
    }
  }
  Scalar<B> plain;
  plain.g[0] = 3.0;
  SGD<double, B>({.lr = 0.5}).step(plain);
  CHECK(plain.w[0] == 1.0 - 0.5 * 3.0);
}

TEMPLATE_LIST_TEST_CASE("optim: Adam and AdamW follow Kingma & Ba with bias correction", "[optim][adam]",
                        test::Backends) {
  using B = TestType;
  const std::vector<double> grads{0.5, -1.0, 2.0, 0.25, -0.125};
  for (bool decoupled : {false, true}) {
    Scalar<B> m;
    const AdamOptions o{.lr = 0.01, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-8, .weight_decay = 0.1};
    Adam<double, B> adam(o);
    AdamW<double, B> adamw(o);
    double w = 1.0, mom = 0.0, var = 0.0;
    for (std::size_t t = 1; t <= grads.size(); ++t) {
      m.g[0] = grads[t - 1];
      if (decoupled) adamw.step(m);
      else adam.step(m);
      double g = grads[t - 1];
      if (decoupled) w *= 1.0 - 0.01 * 0.1;
      else g += 0.1 * w;
      mom = 0.8 * mom + 0.2 * g;
      var = 0.99 * var + 0.01 * g * g;
      w -= 0.01 * (mom / (1 - std::pow(0.8, double(t)))) / (std::sqrt(var / (1 - std::pow(0.99, double(t)))) + 1e-8);
      CHECK(m.w[0] == Approx(w).epsilon(1e-14));
    }
  }
  // First Adam step moves by lr * sign(g), whatever |g|.
  Scalar<B> big;
  big.g[0] = 1e6;
  Adam<double, B>({.lr = 0.01}).step(big);
  CHECK(big.w[0] == Approx(0.99).epsilon(1e-9));
  // AdamW with a zero gradient only decays the weights.
  Scalar<B> decay;
  AdamW<double, B> w({.lr = 0.1, .weight_decay = 0.5});
  w.step(decay);
  w.step(decay);
  CHECK(decay.w[0] == Approx(0.95 * 0.95).epsilon(1e-15));
}

TEMPLATE_LIST_TEST_CASE("optim: converge to the least-squares optimum", "[optim]", test::Backends) {
  using B = TestType;
  LeastSquares<B> adam_model, sgd_model;
  const Eigen::Vector3d expected = adam_model.optimum();
  Adam<double, B> adam({.lr = 0.05});
  SGD<double, B> sgd({.lr = 0.2, .momentum = 0.9, .nesterov = true});
  for (int step = 0; step < 3000; ++step) {
    adam_model.gradient();
    adam.step(adam_model);
    sgd_model.gradient();
    sgd.step(sgd_model);
  }
  for (int i = 0; i < 3; ++i) {
    CHECK(adam_model.p[static_cast<std::size_t>(i)] == Approx(expected(i)).margin(1e-6));
    CHECK(sgd_model.p[static_cast<std::size_t>(i)] == Approx(expected(i)).margin(1e-9));
  }
  CHECK(adam_model.q[0] == Approx(2.0).margin(1e-6));
}

TEST_CASE("optim: per-role learning rates", "[optim]") {
  LeastSquares<> m;
  m.gradient();
  const double gp = m.dp[0], gq = m.dq[0];
  SGD<double>({.lr = 0.1, .role_lr = {.gamma = 0.01}}).step(m);
  CHECK(m.p[0] == Approx(-0.1 * gp));
  CHECK(m.q[0] == Approx(-0.01 * gq));
}

TEST_CASE("optim: invalid options throw with the value", "[optim]") {
  CHECK_THROWS_WITH(SGD<double>({.lr = -0.1}), Catch::Contains("SGDOptions::lr") && Catch::Contains("-0.1"));
  CHECK_THROWS_AS(SGD<double>({.lr = std::nan("")}), invalid_argument);
  CHECK_THROWS_WITH(SGD<double>({.momentum = 1.0}), Catch::Contains("momentum"));
  CHECK_THROWS_WITH(SGD<double>({.nesterov = true}), Catch::Contains("nesterov"));
  CHECK_THROWS_WITH(Adam<double>({.beta2 = 1.5}), Catch::Contains("beta2") && Catch::Contains("1.5"));
  CHECK_THROWS_AS(AdamW<double>({.eps = 0.0}), invalid_argument);
  CHECK_THROWS_WITH(Adam<double>({.role_lr = {.gamma = -1.0}}), Catch::Contains("RoleRates::gamma"));
  CHECK_THROWS_AS(Adam<double>({.weight_decay = -1.0}), invalid_argument);
}

TEST_CASE("optim: the optimiser works in the backend the model names (Cpu when it names none)", "[optim]") {
  STATIC_REQUIRE(requires(SGD<double, Reference> o, Scalar<Reference> m) { o.step(m); });
  STATIC_REQUIRE(std::same_as<backend_of_t<Scalar<>>, Cpu>);
  STATIC_REQUIRE(std::same_as<backend_of_t<Scalar<Reference>>, Reference>);
}

TEST_CASE("optim: deterministic, and a changed model is an error", "[optim]") {
  auto run = [] {
    Rng rng(test::seed(61, "optimiser determinism"));
    Sequential<Linear<double, Features<4>, Features<3>>, Tanh<double, Features<3>>, Linear<double, Features<3>, Features<1>>>
        model(rng);
    Tensor<double, 2> x({8, 4}), y({8, 1});
    for (auto& v : x) v = rng.normal();
    for (auto& v : y) v = rng.normal();
    Adam<double> adam({.lr = 0.01});
    MSELoss<double> loss;
    double last = 0;
    for (int step = 0; step < 20; ++step) {
      zero_grad(model);
      last = loss.forward(model.forward(x), y);
      model.backward(loss.backward());
      adam.step(model);
    }
    return last;
  };
  const double a = run(), b = run();
  CHECK(a == b);  // bit-identical
  Scalar<> one;
  LeastSquares<> two;
  Adam<double> adam;
  adam.step(two);
  CHECK_THROWS_WITH(adam.step(one), Catch::Contains("optimiser"));
}
