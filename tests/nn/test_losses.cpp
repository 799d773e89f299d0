// SPDX-License-Identifier: MIT
// Losses: values against direct formulas, gradients against central differences, stability and bad input.
#include <limits>

#include "ace/nn/check.hpp"
#include "ace/nn/core/loss.hpp"
#include "backend_support.hpp"

using namespace ace;

namespace {
Tensor<double, 2> random_tensor(std::size_t r, std::size_t c, Rng& rng) {
  Tensor<double, 2> t({r, c});
  for (auto& v : t) v = rng.normal();
  return t;
}

/// max relative gap between grad and central differences of f at x.
template <class F>
double gradient_gap(F&& f, Tensor<double, 2> x, const Tensor<double, 2>& grad) {
  double worst = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double v = x.data()[i], h = 1e-6;
    x.data()[i] = v + h;
    const double up = f(x);
    x.data()[i] = v - h;
    const double down = f(x);
    x.data()[i] = v;
    worst = std::max(worst, detail::relative_gap(grad.data()[i], (up - down) / (2 * h)));
  }
  return worst;
}
}  // namespace

TEST_CASE("loss: MSE and L1 values and gradients", "[loss]") {
  Rng rng(test::seed(31, "losses"));
  const auto p = random_tensor(4, 3, rng), t = random_tensor(4, 3, rng);
  MSELoss<double> mse;
  CHECK(mse.forward(p, t) == Approx((as_matrix(p) - as_matrix(t)).squaredNorm() / 12.0));
  const Tensor<double, 2> g = mse.backward();
  CHECK(gradient_gap([&](const Tensor<double, 2>& x) { return MSELoss<double>().forward(x, t); }, p, g) < 1e-7);
  L1Loss<double> l1;
  CHECK(l1.forward(p, t) == Approx((as_matrix(p) - as_matrix(t)).cwiseAbs().sum() / 12.0));
  const Tensor<double, 2> g1 = l1.backward();
  CHECK(gradient_gap([&](const Tensor<double, 2>& x) { return L1Loss<double>().forward(x, t); }, p, g1) < 1e-7);
  CHECK_THROWS_AS(mse.forward(p, random_tensor(3, 3, rng)), shape_error);
}

TEST_CASE("loss: softmax cross-entropy", "[loss]") {
  Rng rng(test::seed(37, "cross entropy"));
  const auto z = random_tensor(5, 4, rng);
  const std::vector<std::size_t> y{0, 3, 1, 1, 2};
  CrossEntropyLoss<double> ce;
  double expected = 0;
  for (std::size_t r = 0; r < 5; ++r) {
    double total = 0;
    for (std::size_t c = 0; c < 4; ++c) total += std::exp(z(r, c));
    expected += -std::log(std::exp(z(r, y[r])) / total);
  }
  CHECK(ce.forward(z, y) == Approx(expected / 5));
  const Tensor<double, 2> g = ce.backward();
  CHECK(gradient_gap([&](const Tensor<double, 2>& x) { return CrossEntropyLoss<double>().forward(x, y); }, z, g) < 1e-7);
  // Large logits do not overflow (log-sum-exp shift).
  Tensor<float, 2> big({1, 3});
  big(0, 0) = 1000.f;
  big(0, 1) = 0.f;
  big(0, 2) = -1000.f;
  const std::vector<std::size_t> first{0};
  CHECK(CrossEntropyLoss<float>().forward(big, first) == Approx(0.0f).margin(1e-6));
  const std::vector<std::size_t> bad{4, 0, 0, 0, 0};
  CHECK_THROWS_WITH(ce.forward(z, bad), Catch::Contains("target 4"));
  CHECK_THROWS_AS(ce.forward(z, first), shape_error);
}

TEMPLATE_LIST_TEST_CASE("losses: the same values and gradients on every backend", "[loss]", test::Backends) {
  using B = TestType;
  Rng rng(test::seed(39, "losses on backends"));
  const auto p = random_tensor(6, 4, rng), t = random_tensor(6, 4, rng);
  const std::vector<std::size_t> labels{0, 3, 2, 2, 1, 0};
  const auto pb = to_backend<B>(p), tb = to_backend<B>(t);
  MSELoss<double> mse;
  MSELoss<double, B> mse_b;
  CHECK(mse_b.forward(pb, tb) == Approx(mse.forward(p, t)).epsilon(1e-14));
  CHECK(to_host_vector<B>(flat(mse_b.backward())) == to_host_vector<Cpu>(flat(mse.backward())));
  L1Loss<double, B> l1_b;
  CHECK(l1_b.forward(pb, tb) == Approx(L1Loss<double>().forward(p, t)).epsilon(1e-14));
  CrossEntropyLoss<double> ce;
  CrossEntropyLoss<double, B> ce_b;
  CHECK(ce_b.forward(pb, labels) == Approx(ce.forward(p, labels)).epsilon(1e-14));
  const auto g = to_host_vector<B>(flat(ce_b.backward())), expected = to_host_vector<Cpu>(flat(ce.backward()));
  for (std::size_t i = 0; i < g.size(); ++i) CHECK(g[i] == Approx(expected[i]).epsilon(1e-14));
}

TEST_CASE("loss: non-finite values are reported, not propagated", "[loss]") {
  Tensor<double, 2> p({1, 2}), t({1, 2});
  p(0, 0) = std::numeric_limits<double>::quiet_NaN();
  p(0, 1) = t(0, 0) = t(0, 1) = 0.0;
  CHECK_THROWS_AS(MSELoss<double>().forward(p, t), numerical_error);
  CHECK_THROWS_WITH(MSELoss<double>().forward(p, t), Catch::Contains("nan") && Catch::Contains("learning rate"));
}

TEST_CASE("gradient check: `every` checks a fixed sample of the entries, and 0 is refused", "[check]") {
  std::vector<double> v{0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 3.0};
  const auto loss = [&] {
    double s = 0.0;
    for (const double x : v) s += x * x;
    return s;
  };
  std::vector<double> analytic(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) analytic[i] = 2 * v[i];
  const std::vector<double> before = v;
  CHECK(central_difference_gap(std::span<double>(v), analytic, loss) < 1e-8);
  analytic[3] += 1.0;  // a wrong entry that the sample 0, 2, 4, 6 skips and 0, 3, 6 checks
  CHECK(central_difference_gap(std::span<double>(v), analytic, loss) > 0.1);
  CHECK(central_difference_gap(std::span<double>(v), analytic, loss, 1e-6, 2) < 1e-8);
  CHECK(central_difference_gap(std::span<double>(v), analytic, loss, 1e-6, 3) > 0.1);
  CHECK(central_difference_gap(std::span<double>(v), analytic, loss, 1e-6, 100) < 1e-8);  // entry 0 only
  CHECK(v == before);  // every entry restored
  CHECK_THROWS_AS(central_difference_gap(std::span<double>(v), analytic, loss, 1e-6, 0), invalid_argument);
}
