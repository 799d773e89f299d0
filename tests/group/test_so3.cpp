// SPDX-License-Identifier: MIT
// SO(3) samples: rotations, determinism, and uniformity (Haar moments).
#include "group_support.hpp"

using namespace ace;

namespace {
struct Moments {
  double mean_rv = 0.0;       // |mean of R v| for a fixed unit v (Haar: 0)
  double mean_entry = 0.0;    // max |mean of R_ij| (Haar: 0)
  double second_entry = 0.0;  // max |mean of R_ij^2 - 1/3| (Haar: 0)
};
Moments moments(const std::vector<Eigen::Matrix3d>& rs) {
  const Eigen::Vector3d v = Eigen::Vector3d(1.0, 2.0, -0.5).normalized();
  Eigen::Vector3d sum_rv = Eigen::Vector3d::Zero();
  Eigen::Matrix3d sum = Eigen::Matrix3d::Zero(), sum2 = Eigen::Matrix3d::Zero();
  for (const auto& r : rs) {
    sum_rv += r * v;
    sum += r;
    sum2 += r.cwiseProduct(r);
  }
  const double n = static_cast<double>(rs.size());
  return {(sum_rv / n).norm(), (sum / n).cwiseAbs().maxCoeff(),
          (sum2 / n - Eigen::Matrix3d::Constant(1.0 / 3.0)).cwiseAbs().maxCoeff()};
}
void check_rotations(const std::vector<Eigen::Matrix3d>& rs) {
  for (const auto& r : rs) {
    REQUIRE((r * r.transpose() - Eigen::Matrix3d::Identity()).norm() < 1e-12);
    REQUIRE(r.determinant() == Approx(1.0).margin(1e-12));
  }
}
}  // namespace

TEST_CASE("so3: the super-Fibonacci grid is a set of rotations, quasi-uniform, for any K", "[so3]") {
  for (std::size_t k : {1u, 2u, 7u, 100u, 1000u}) check_rotations(so3_grid(k));
  CHECK(so3_grid(37).size() == 37);
  const Moments m100 = moments(so3_grid(100)), m10k = moments(so3_grid(10000));
  // Low discrepancy: much closer to the Haar moments than K independent samples (~ 1/sqrt(K)).
  CHECK(m10k.mean_rv < 2e-3);
  CHECK(m10k.mean_entry < 2e-3);
  CHECK(m10k.second_entry < 2e-3);
  CHECK(m10k.mean_rv < m100.mean_rv);
  CHECK(m10k.second_entry < m100.second_entry);
  CHECK_THROWS_AS(so3_grid(0), invalid_argument);
  // Deterministic.
  CHECK(so3_grid(50)[17] == so3_grid(50)[17]);
}

TEST_CASE("so3: seeded Haar-random rotations", "[so3]") {
  const std::uint64_t s = test::seed(2025, "so3_random");
  const auto a = so3_random(20000, s);
  check_rotations(a);
  CHECK(a == so3_random(20000, s));          // same seed, same rotations
  CHECK_FALSE(a[0] == so3_random(1, s + 1)[0]);  // another seed, others
  const Moments m = moments(a);
  // Independent samples: standard error of each mean ~ sqrt(1/3 / K) = 0.004; allow 5 sigma.
  CHECK(m.mean_rv < 0.02);
  CHECK(m.mean_entry < 0.02);
  CHECK(m.second_entry < 0.02);
}

TEST_CASE("rng: bad ranges are rejected", "[rng]") {
  Rng rng(1);
  CHECK_THROWS_AS(rng.below(0), invalid_argument);
  CHECK(rng.below(1) == 0);
}
