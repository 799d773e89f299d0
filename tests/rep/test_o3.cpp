// SPDX-License-Identifier: MIT
// O(3) irreps: spherical harmonics (normalisation, homogeneity, equivariance), Wigner D matrices (orthogonal, a
// homomorphism, parity on improper rotations), Clebsch-Gordan coefficients (equivariant, orthonormal, the closed forms
// of the Cartesian basis), and irreps as compile-time types.
#include <catch2/catch.hpp>
#include <cmath>
#include <numbers>
#include <type_traits>

#include "ace/group/so3.hpp"
#include "ace/rep/o3.hpp"
#include "support.hpp"

using namespace ace;

namespace {

Eigen::Vector3d random_vector(Rng& rng) { return Eigen::Vector3d(rng.normal(), rng.normal(), rng.normal()); }

/// Rotations and improper rotations (a rotation times -I) from seeded Haar samples.
std::vector<Eigen::Matrix3d> samples(std::uint64_t seed, bool improper) {
  std::vector<Eigen::Matrix3d> r = so3_random(6, seed);
  if (improper)
    for (auto& m : r) m = -m;
  return r;
}

double cg(const std::vector<double>& c, int l2, int l3, int m1, int m2, int m3) {
  return c[static_cast<std::size_t>((m1 * (2 * l2 + 1) + m2) * (2 * l3 + 1) + m3)];
}

}  // namespace

TEST_CASE("o3: spherical harmonics are normalised per component, homogeneous, and Y^1 = sqrt(3) x", "[o3]") {
  Rng rng(test::seed(1, "o3 harmonics"));
  for (int l = 0; l <= o3_max_l; ++l) {
    CAPTURE(l);
    for (int k = 0; k < 5; ++k) {
      const Eigen::Vector3d x = random_vector(rng), u = x.normalized();
      CHECK(spherical_harmonics(l, u).squaredNorm() == Approx(2 * l + 1).epsilon(1e-13));  // the addition theorem
      const Eigen::VectorXd scaled = spherical_harmonics(l, 1.7 * u);
      CHECK((scaled - std::pow(1.7, l) * spherical_harmonics(l, u)).norm() < 1e-12);
      CHECK((spherical_harmonics(l, -x) - std::pow(-1.0, l) * spherical_harmonics(l, x)).norm() < 1e-12);
    }
  }
  const Eigen::Vector3d x(0.3, -1.2, 0.5);
  CHECK((spherical_harmonics(1, x) - std::sqrt(3.0) * x).norm() < 1e-15);
  // Mean square 1 per component over the sphere: a quadrature over a dense grid of directions.
  const std::vector<Eigen::Matrix3d> grid = so3_grid(4000);
  for (int l = 0; l <= o3_max_l; ++l) {
    Eigen::VectorXd mean = Eigen::VectorXd::Zero(2 * l + 1);
    for (const auto& r : grid) mean += spherical_harmonics(l, r.col(2)).cwiseAbs2();
    mean /= static_cast<double>(grid.size());
    CAPTURE(l);
    CHECK((mean.array() - 1.0).abs().maxCoeff() < 0.02);
  }
  CHECK_THROWS_WITH(spherical_harmonics(4, x), Catch::Contains("degree l = 4 outside 0 ... 3"));
}

TEST_CASE("o3: Wigner D matrices are orthogonal homomorphisms with Y^l(R x) = D^l(R) Y^l(x), D^1(R) = R", "[o3]") {
  Rng rng(test::seed(2, "o3 wigner"));
  const auto r = samples(test::seed(2, "o3 wigner rotations"), false);
  for (int l = 0; l <= o3_max_l; ++l) {
    CAPTURE(l);
    const Eigen::Index d = 2 * l + 1;
    CHECK((wigner_d(l, Eigen::Matrix3d::Identity()) - Eigen::MatrixXd::Identity(d, d)).norm() < 1e-12);
    for (std::size_t i = 0; i + 1 < r.size(); ++i) {
      const Eigen::MatrixXd a = wigner_d(l, r[i]), b = wigner_d(l, r[i + 1]);
      CHECK((a.transpose() * a - Eigen::MatrixXd::Identity(d, d)).norm() < 1e-12);
      CHECK((wigner_d(l, r[i] * r[i + 1]) - a * b).norm() < 1e-12);
      const Eigen::Vector3d x = random_vector(rng);
      CHECK((spherical_harmonics(l, r[i] * x) - a * spherical_harmonics(l, x)).norm() < 1e-12 * (1 + x.squaredNorm()));
    }
  }
  for (const auto& m : r) CHECK((wigner_d(1, m) - m).norm() < 1e-13);
  Eigen::Matrix3d skewed = r[0];
  skewed(0, 1) += 1e-3;
  CHECK_THROWS_WITH(wigner_d(2, skewed), Catch::Contains("not orthogonal: max |R^T R - I| = "));
  CHECK_THROWS_WITH(wigner_d(2, Eigen::Matrix3d(-r[0])), Catch::Contains("improper"));
}

TEST_CASE("o3: irreps with parity form a representation of O(3); the harmonics carry parity (-1)^l", "[o3]") {
  Rng rng(test::seed(3, "o3 parity"));
  const auto proper = samples(test::seed(3, "o3 proper"), false), improper = samples(test::seed(3, "o3 improper"), true);
  for (const Parity p : {Parity::even, Parity::odd})
    for (int l = 0; l <= o3_max_l; ++l) {
      CAPTURE(l, static_cast<int>(p));
      for (std::size_t i = 0; i < proper.size(); ++i) {
        const Eigen::Matrix3d& a = improper[i];
        const Eigen::Matrix3d& b = proper[(i + 1) % proper.size()];
        // improper x proper, improper x improper (a proper product)
        CHECK((o3_irrep_matrix(l, p, a * b) - o3_irrep_matrix(l, p, a) * o3_irrep_matrix(l, p, b)).norm() < 1e-12);
        const Eigen::Matrix3d& c = improper[(i + 1) % improper.size()];
        CHECK((o3_irrep_matrix(l, p, a * c) - o3_irrep_matrix(l, p, a) * o3_irrep_matrix(l, p, c)).norm() < 1e-12);
      }
    }
  for (int l = 0; l <= o3_max_l; ++l)
    for (const auto& a : improper) {
      const Eigen::Vector3d x = random_vector(rng);
      const Parity natural = l % 2 == 0 ? Parity::even : Parity::odd;
      CHECK((spherical_harmonics(l, a * x) - o3_irrep_matrix(l, natural, a) * spherical_harmonics(l, x)).norm() <
            1e-12 * (1 + x.squaredNorm()));
    }
  CHECK((Vector1o::matrix(improper[0]) - improper[0]).norm() < 1e-13);  // a vector (1o) turns with R, reflections too
  CHECK((O3Irrep<1, Parity::even>::matrix(improper[0]) + improper[0]).norm() < 1e-13);  // a pseudovector
}

TEST_CASE("o3: Clebsch-Gordan coefficients are equivariant, orthonormal, and the Cartesian closed forms", "[o3]") {
  const auto r = samples(test::seed(4, "o3 cg"), false);
  // Under the sanitizers (-O0), degrees <= 2: each degree-3 path solves an eigenproblem of up to 343 x 343 there.
  const int lmax = test::sanitized ? 2 : o3_max_l;
  std::size_t paths = 0;
  for (int l1 = 0; l1 <= lmax; ++l1)
    for (int l2 = 0; l2 <= lmax; ++l2)
      for (int l3 = std::abs(l1 - l2); l3 <= std::min(l1 + l2, lmax); ++l3) {
        CAPTURE(l1, l2, l3);
        ++paths;
        const std::vector<double>& c = clebsch_gordan(l1, l2, l3);
        const int d1 = 2 * l1 + 1, d2 = 2 * l2 + 1, d3 = 2 * l3 + 1;
        REQUIRE(c.size() == static_cast<std::size_t>(d1 * d2 * d3));
        double worst = 0.0;
        for (int a = 0; a < d3; ++a)
          for (int b = 0; b < d3; ++b) {
            double s = 0.0;
            for (int m1 = 0; m1 < d1; ++m1)
              for (int m2 = 0; m2 < d2; ++m2) s += cg(c, l2, l3, m1, m2, a) * cg(c, l2, l3, m1, m2, b);
            worst = std::max(worst, std::abs(s - (a == b ? 1.0 : 0.0)));
          }
        CHECK(worst < 1e-12);
        for (const auto& m : {r[0], r[3]}) {  // not the rotations the coefficients were computed from
          const Eigen::MatrixXd a = wigner_d(l1, m), b = wigner_d(l2, m), g = wigner_d(l3, m);
          double gap = 0.0;
          for (int i1 = 0; i1 < d1; ++i1)
            for (int i2 = 0; i2 < d2; ++i2)
              for (int i3 = 0; i3 < d3; ++i3) {
                double s = 0.0;
                for (int j1 = 0; j1 < d1; ++j1)
                  for (int j2 = 0; j2 < d2; ++j2)
                    for (int j3 = 0; j3 < d3; ++j3) s += a(i1, j1) * b(i2, j2) * g(i3, j3) * cg(c, l2, l3, j1, j2, j3);
                gap = std::max(gap, std::abs(s - cg(c, l2, l3, i1, i2, i3)));
              }
          CHECK(gap < 1e-12);
        }
      }
  CHECK(paths == (lmax == 3 ? 34u : 15u));  // every triangle-allowed triple with degrees <= lmax
  const std::vector<double>& dot = clebsch_gordan(1, 1, 0);
  const std::vector<double>& cross = clebsch_gordan(1, 1, 1);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      CHECK(cg(dot, 1, 0, i, j, 0) == Approx(i == j ? 1.0 / std::sqrt(3.0) : 0.0).margin(1e-14));
      for (int k = 0; k < 3; ++k) {
        const int eps = (i - j) * (j - k) * (k - i) / 2;  // the Levi-Civita symbol
        CHECK(cg(cross, 1, 1, i, j, k) == Approx(eps / std::sqrt(2.0)).margin(1e-14));
      }
    }
  for (int l = 0; l <= o3_max_l; ++l) {
    const std::vector<double>& id = clebsch_gordan(0, l, l);
    for (int m = 0; m < 2 * l + 1; ++m)
      for (int n = 0; n < 2 * l + 1; ++n) CHECK(cg(id, l, l, 0, m, n) == Approx(m == n ? 1.0 : 0.0).margin(1e-14));
  }
  CHECK_THROWS_WITH(clebsch_gordan(1, 1, 3), Catch::Contains("l3 = 3 is outside |l1 - l2| ... l1 + l2"));
  CHECK(&clebsch_gordan<Vector1o, Vector1o, O3Irrep<1, Parity::even>>() == &cross);  // cached: computed once
}

TEST_CASE("o3: irreps as types: dimensions at compile time, names, block-diagonal matrices", "[o3]") {
  using Hidden = O3Irreps<Mul<28, Scalar0e>, Mul<28, Vector1o>>;
  static_assert(Hidden::dim == 112);
  static_assert(O3Irreps<Mul<2, Vector1o>, Mul<1, Scalar0e>>::dim == 7);  // SEGNN's N-body node input
  static_assert(o3_path_allowed<Vector1o, Vector1o, O3Irrep<1, Parity::even>>);
  static_assert(!o3_path_allowed<Vector1o, Vector1o, Vector1o>);
  static_assert(!o3_path_allowed<Vector1o, Scalar0e, O3Irrep<2, Parity::odd>>);
  CHECK(Hidden::name() == "28x0e + 28x1o");
  using Small = O3Irreps<Mul<2, Vector1o>, Mul<1, O3Irrep<2, Parity::even>>>;
  const auto r = samples(test::seed(5, "o3 types"), true);
  const Eigen::MatrixXd a = Small::matrix(r[0]), b = Small::matrix(r[1]);
  REQUIRE(a.rows() == 11);
  // component-major blocks: copy w of "2x1o" holds entries w, 2 + w, 4 + w, on which the matrix acts as R
  for (Eigen::Index w = 0; w < 2; ++w)
    for (Eigen::Index k = 0; k < 3; ++k)
      for (Eigen::Index k2 = 0; k2 < 3; ++k2) {
        CHECK(a(2 * k + w, 2 * k2 + w) == Approx(r[0](k, k2)).margin(1e-13));
        CHECK(a(2 * k + w, 2 * k2 + 1 - w) == 0.0);  // copies do not mix
      }
  CHECK(a.block(0, 6, 6, 5).norm() == 0.0);
  CHECK((a.block(6, 6, 5, 5) - o3_irrep_matrix(2, Parity::even, r[0])).norm() < 1e-13);
  CHECK((Small::matrix(r[0] * r[1]) - a * b).norm() < 1e-12);
}

TEST_CASE("o3: irreps arithmetic at compile time: sums, weight counts, weight-balanced and gate irreps", "[o3]") {
  using Attr = o3_spherical_harmonics_t<1, 1>;
  static_assert(std::is_same_v<Attr, O3Irreps<Mul<1, Scalar0e>, Mul<1, Vector1o>>>);
  // SEGNN's N-body hidden irreps: width 64, L = 1, attributes Y^{<=1}
  using Hidden = o3_weight_balanced_t<64, 1, Attr>;
  static_assert(std::is_same_v<Hidden, O3Irreps<Mul<32, Scalar0e>, Mul<32, Vector1o>>>);
  static_assert(o3_tensor_product_weights<Hidden, Attr, Hidden> == 4 * 32 * 32);  // 0x0->0, 0x1->1, 1x0->1, 1x1->0
  static_assert(o3_tensor_product_weights<O3Irreps<Mul<64, Scalar0e>>, O3Irreps<Mul<1, Scalar0e>>,
                                          O3Irreps<Mul<64, Scalar0e>>> == 64 * 64);
  // 1o x 1o reaches 0e, 1e and 2e; 2e x 1o reaches 1o, 2o, 3o
  static_assert(o3_tensor_product_weights<O3Irreps<Mul<2, Vector1o>>, O3Irreps<Mul<3, Vector1o>>,
                                          O3Irreps<Mul<1, Scalar0e>, Mul<1, O3Irrep<1, Parity::even>>,
                                                   Mul<1, O3Irrep<2, Parity::even>>, Mul<1, Vector1o>>> == 3 * 6);
  static_assert(std::is_same_v<o3_spherical_harmonics_t<2, 3>,
                               O3Irreps<Mul<2, Scalar0e>, Mul<2, Vector1o>, Mul<2, O3Irrep<2, Parity::even>>,
                                        Mul<2, O3Irrep<3, Parity::odd>>>>);
  static_assert(std::is_same_v<o3_concat_t<Hidden, Hidden, O3Irreps<Mul<2, Scalar0e>>>,
                               O3Irreps<Mul<32, Scalar0e>, Mul<32, Vector1o>, Mul<32, Scalar0e>, Mul<32, Vector1o>,
                                        Mul<2, Scalar0e>>>);
  static_assert(o3_concat_t<Hidden, Hidden>::dim == 256);
  // the gate onto 32x0e + 32x1o + 4x2e reads 32 scalars, 36 gates, then the gated terms
  using GateOut = O3Irreps<Mul<32, Scalar0e>, Mul<32, Vector1o>, Mul<4, O3Irrep<2, Parity::even>>>;
  static_assert(std::is_same_v<o3_gate_input_t<GateOut>, O3Irreps<Mul<32, Scalar0e>, Mul<36, Scalar0e>,
                                                                   Mul<32, Vector1o>, Mul<4, O3Irrep<2, Parity::even>>>>);
  static_assert(std::is_same_v<o3_gate_input_t<O3Irreps<Mul<8, Scalar0e>>>, O3Irreps<Mul<8, Scalar0e>>>);
  CHECK(Hidden::term_list[1].count == 32);
  CHECK(Hidden::term_list[1].l == 1);
}

TEST_CASE("o3: the swish gate's constants give SiLU and sigmoid unit second moment under N(0, 1)", "[o3]") {
  // Simpson's rule on [-14, 14] (the Gaussian weight is below 1e-42 beyond)
  const auto second_moment = [](auto f) {
    const int n = 200000;
    const double a = -14.0, h = 28.0 / n;
    double s = 0.0;
    for (int i = 0; i <= n; ++i) {
      const double z = a + i * h, w = (i == 0 || i == n) ? 1.0 : (i % 2 ? 4.0 : 2.0);
      s += w * f(z) * f(z) * std::exp(-z * z / 2);
    }
    return s * h / 3 / std::sqrt(2 * std::numbers::pi);
  };
  CHECK(SwishGateConstants::silu == Approx(1.0 / std::sqrt(second_moment([](double z) { return SiLUOp::f(z); })))
                                        .epsilon(1e-12));
  CHECK(SwishGateConstants::sigmoid ==
        Approx(1.0 / std::sqrt(second_moment([](double z) { return SigmoidOp::f(z); }))).epsilon(1e-12));
}
