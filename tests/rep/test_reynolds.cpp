// SPDX-License-Identifier: MIT
// The Reynolds operator: idempotent, image equivariant, equal to the basis projection; the equivariance error.
#include "group_support.hpp"

using namespace ace;

namespace {
using Pairs = std::tuple<std::pair<Regular<Cyclic<8>>, Regular<Cyclic<8>>>,
                         std::pair<Regular<Icosahedral>, Standard<Icosahedral>>,
                         std::pair<DirectSum<Trivial<Dihedral<6>>, Regular<Dihedral<6>>>, Multiple<Standard<Dihedral<6>>, 2>>,
                         std::pair<TensorProduct<Natural<Symmetric<4>>, Natural<Symmetric<4>>>, Natural<Symmetric<4>>>,
                         std::pair<TensorProduct<Natural<Symmetric<10>>, Natural<Symmetric<10>>>,
                                   TensorProduct<Natural<Symmetric<10>>, Natural<Symmetric<10>>>>,
                         std::pair<Quotient<Dihedral<4>, Cyclic<4>>, Sign<Dihedral<4>>>>;

template <class In, class Out>
Eigen::MatrixXd random_map(Rng& rng) {
  return normal_matrix(Out::dim, In::dim, rng);
}
}  // namespace

TEMPLATE_LIST_TEST_CASE("reynolds: idempotent projection onto equivariant maps", "[reynolds]", Pairs) {
  using In = typename TestType::first_type;
  using Out = typename TestType::second_type;
  CAPTURE(rep_name<In>(), rep_name<Out>());
  Rng rng(test::seed(17, "reynolds"));
  const Eigen::MatrixXd w = random_map<In, Out>(rng);
  const Eigen::MatrixXd r = reynolds<In, Out>(w);
  const double scale = std::max(1.0, r.norm());
  CHECK(equivariance_error<In, Out>(w) > 1e-3);  // a random map is not equivariant...
  CHECK(equivariance_error<In, Out>(r) < 1e-12 * scale);  // ...its group average is
  CHECK((reynolds<In, Out>(r) - r).norm() < 1e-12 * scale);
  CHECK((project_equivariant<In, Out>(w) - r).norm() < 1e-10 * scale);
  // Linear.
  const Eigen::MatrixXd v = random_map<In, Out>(rng);
  CHECK((reynolds<In, Out>(2.0 * w - v) - (2.0 * r - reynolds<In, Out>(v))).norm() < 1e-10 * scale);
}

TEST_CASE("reynolds: shapes are checked and named", "[reynolds]") {
  using R = Regular<Cyclic<4>>;
  using S = Standard<Cyclic<4>>;
  CHECK_THROWS_AS((reynolds<R, S>(Eigen::MatrixXd::Zero(4, 2))), shape_error);
  CHECK_THROWS_WITH((reynolds<R, S>(Eigen::MatrixXd::Zero(4, 2))),
                    Catch::Contains("expected a 2 x 4 matrix") && Catch::Contains("got 4 x 2"));
  CHECK_THROWS_AS((equivariance_error<R, S>(Eigen::MatrixXd::Zero(3, 3))), shape_error);
  CHECK_THROWS_AS((project_equivariant<R, S>(Eigen::MatrixXd::Zero(2, 3))), shape_error);
}

TEST_CASE("reynolds: equivariance error detects a single broken entry", "[reynolds]") {
  using R = Regular<Dihedral<4>>;
  Eigen::MatrixXd w = reynolds<R, R>(Eigen::MatrixXd::Ones(8, 8) + Eigen::MatrixXd::Identity(8, 8));
  CHECK(equivariance_error<R, R>(w) == 0.0);
  w(3, 5) += 1e-6;
  CHECK(equivariance_error<R, R>(w) > 1e-7);
}
