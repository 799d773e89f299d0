// SPDX-License-Identifier: MIT
// The Cpu backend's float SiLU (cpu/sigmoid.hpp): its accuracy against double precision, the same bits on every
// instruction set and wherever an entry lies in a run, and the special values.
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "ace/backend/cpu/sigmoid.hpp"

using namespace ace;
using cpu::SigmoidPath;

namespace {

double sigmoid_exact(float x) { return 1.0 / (1.0 + std::exp(-static_cast<double>(x))); }

/// Error of `got` against `exact` in units of the last place of the float nearest `exact`.
double ulps(float got, double exact) {
  const int e = std::ilogb(static_cast<float>(exact));
  return std::fabs(got - exact) / std::ldexp(1.0, e - 23);
}

std::vector<SigmoidPath> paths_here() {
  std::vector<SigmoidPath> paths;
  for (auto p : {SigmoidPath::portable, SigmoidPath::avx2, SigmoidPath::avx512})
    if (cpu::sigmoid_path_available(p)) paths.push_back(p);
  return paths;
}

/// Values that reach every branch: zeros, the clamp's edges, subnormals, huge and special values, and a spread.
std::vector<float> awkward_values() {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> v = {0.0f, -0.0f, 1e-40f, -1e-40f, 1e-20f, -1e-20f, 30.0f, -30.0f, std::nextafter(-30.0f, -31.0f),
                          std::nextafter(-30.0f, 0.0f), 30.5f, -30.5f, 87.0f, -87.0f, 1e30f, -1e30f, inf, -inf, nan,
                          0.5f * std::log(2.0f), -0.5f * std::log(2.0f), 1.0f, -1.0f};
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 6.0f);
  for (int i = 0; i < 200; ++i) v.push_back(normal(rng));
  return v;
}

}  // namespace

TEST_CASE("cpu sigmoid: within 4 units in the last place of the sigmoid in double, 0 below -30", "[backend][silu]") {
  double worst = 0;
  float worst_x = 0;
  // Every 4099th bit pattern of the positive and negative floats up to 40 in magnitude (about 520 000 values).
  for (std::uint32_t sign : {0u, 0x80000000u})
    for (std::uint32_t u = 0; u <= std::bit_cast<std::uint32_t>(40.0f); u += 4099) {
      const float x = std::bit_cast<float>(u | sign);
      const float s = cpu::detail::sigmoid_portable(x);
      if (x < -30.0f) {
        REQUIRE(s == 0.0f);
        continue;
      }
      const double e = ulps(s, sigmoid_exact(x));
      if (e > worst) worst = e, worst_x = x;
    }
  INFO("worst at x = " << worst_x);
  CHECK(worst <= 4.0);
  CHECK(worst > 0.5);  // the measurement reaches the approximation's error, not only exactly rounded cases
}

TEST_CASE("cpu silu: forward and backward agree with double precision", "[backend][silu]") {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 5.0f);
  const std::size_t n = 1000;
  std::vector<float> x(n), dy(n), y(n), dx(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = normal(rng), dy[i] = normal(rng);
  cpu::silu(x.data(), y.data(), n);
  cpu::silu_backward(x.data(), dy.data(), dx.data(), n);
  for (std::size_t i = 0; i < n; ++i) {
    const double xi = x[i], s = sigmoid_exact(x[i]);
    const double y_exact = xi * s, dx_exact = dy[i] * s * (1 + xi * (1 - s));
    INFO("x = " << x[i]);
    CHECK(std::fabs(y[i] - y_exact) <= 1e-6 * std::fabs(y_exact) + 1e-30);
    CHECK(std::fabs(dx[i] - dx_exact) <= 2e-6 * std::fabs(dy[i]) * (1 + std::fabs(xi)) * s + 1e-30);
  }
}

TEST_CASE("cpu silu: the backward pass is the derivative (central differences in double)", "[backend][silu]") {
  for (float x : {-12.0f, -3.0f, -0.7f, -1e-3f, 0.0f, 0.3f, 2.0f, 9.0f}) {
    const float one = 1.0f;
    float dx = 0;
    cpu::silu_backward(&x, &one, &dx, 1);
    const double h = 1e-4, xd = x;
    auto f = [](double v) { return v / (1 + std::exp(-v)); };
    const double fd = (f(xd + h) - f(xd - h)) / (2 * h);
    INFO("x = " << x);
    CHECK(dx == Approx(fd).epsilon(1e-5).margin(1e-7));
  }
}

TEST_CASE("cpu silu: every instruction set and every position in a run give the same bits", "[backend][silu]") {
  const auto values = awkward_values();
  const auto paths = paths_here();
  INFO("paths on this CPU: " << paths.size());
  std::vector<float> dy(values.size());
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto& d : dy) d = normal(rng);
  auto bits = [](const std::vector<float>& v) {  // a NaN's sign and payload may differ: every NaN counts as one
    std::vector<std::uint32_t> b(v.size());
    for (std::size_t i = 0; i < v.size(); ++i)
      b[i] = std::isnan(v[i]) ? 0x7fc00000u : std::bit_cast<std::uint32_t>(v[i]);
    return b;
  };
  // Reference: each entry alone on the portable path.
  std::vector<float> y0(values.size()), dx0(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    cpu::silu(&values[i], &y0[i], 1, SigmoidPath::portable);
    cpu::silu_backward(&values[i], &dy[i], &dx0[i], 1, SigmoidPath::portable);
  }
  for (auto path : paths)
    for (std::size_t offset : {0, 1, 5, 13}) {  // entries land in different vector lanes and in the scalar tail
      INFO("path " << static_cast<int>(path) << ", offset " << offset);
      std::vector<float> x(offset, 0.5f), g(offset, 1.0f);
      x.insert(x.end(), values.begin(), values.end());
      g.insert(g.end(), dy.begin(), dy.end());
      std::vector<float> y(x.size()), dx(x.size());
      cpu::silu(x.data(), y.data(), x.size(), path);
      cpu::silu_backward(x.data(), g.data(), dx.data(), x.size(), path);
      CHECK(bits(std::vector<float>(y.begin() + static_cast<std::ptrdiff_t>(offset), y.end())) == bits(y0));
      CHECK(bits(std::vector<float>(dx.begin() + static_cast<std::ptrdiff_t>(offset), dx.end())) == bits(dx0));
      // In place, as the GEMM epilogues run it.
      cpu::silu_backward(x.data(), g.data(), g.data(), x.size(), path);
      CHECK(bits(g) == bits(dx));
      cpu::silu(x.data(), x.data(), x.size(), path);
      CHECK(bits(x) == bits(y));
    }
}

TEST_CASE("cpu silu: special values", "[backend][silu]") {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (auto path : paths_here()) {
    INFO("path " << static_cast<int>(path));
    // 16 + 3 entries: the vector paths and the scalar tail both see each value.
    std::vector<float> x(19, 0.0f);
    x[1] = nan, x[2] = inf, x[3] = -1e30f, x[4] = 1e30f, x[5] = -31.0f, x[17] = nan, x[18] = -1e30f;
    std::vector<float> y(x.size()), dx(x.size()), ones(x.size(), 1.0f);
    cpu::silu(x.data(), y.data(), x.size(), path);
    cpu::silu_backward(x.data(), ones.data(), dx.data(), x.size(), path);
    CHECK(y[0] == 0.0f);
    CHECK(dx[0] == 0.5f);
    CHECK(std::isnan(y[1]));
    CHECK(std::isnan(dx[1]));
    CHECK(std::isnan(y[17]));
    CHECK(y[2] == inf);
    CHECK(y[3] == 0.0f);  // -1e30 * 0: no NaN, no subnormal
    CHECK(dx[3] == 0.0f);
    CHECK(y[18] == 0.0f);
    CHECK(y[4] == 1e30f);
    CHECK(dx[4] == 1.0f);
    CHECK(y[5] == 0.0f);
    CHECK(dx[5] == 0.0f);
  }
}
