// SPDX-License-Identifier: MIT
// The basis battery: size = hom_dim, every element equivariant, exact 0/1 orbits for permutation pairs,
// orthonormal dense blocks, linear independence, completeness (the projection of anything lands in the span and
// equivariant maps are fixed), and known dimensions.
#include "group_support.hpp"

using namespace ace;

namespace {
template <class G>
using NN = TensorProduct<Natural<G>, Natural<G>>;
using D4xS3 = DirectProduct<Dihedral<4>, Symmetric<3>>;
using OctaMix = DirectSum<Standard<Octahedral>, Trivial<Octahedral>, Regular<Octahedral>>;
using IcoStdReg = TensorProduct<Standard<Icosahedral>, Regular<Icosahedral>>;
using IcoStdStd = TensorProduct<Standard<Icosahedral>, Standard<Icosahedral>>;

using Pairs = std::tuple<
    std::pair<Regular<Cyclic<4>>, Regular<Cyclic<4>>>, std::pair<Regular<Dihedral<3>>, Regular<Dihedral<3>>>,
    std::pair<Regular<Icosahedral>, Regular<Icosahedral>>, std::pair<Regular<Symmetric<4>>, Regular<Symmetric<4>>>,
    std::pair<Regular<D4xS3>, Regular<D4xS3>>, std::pair<Natural<Symmetric<5>>, Natural<Symmetric<5>>>,
    std::pair<NN<Symmetric<4>>, NN<Symmetric<4>>>, std::pair<Natural<Symmetric<5>>, Trivial<Symmetric<5>>>,
    std::pair<Trivial<Symmetric<5>>, NN<Symmetric<5>>>,
    std::pair<Multiple<Regular<Cyclic<8>>, 4>, Multiple<Regular<Cyclic<8>>, 3>>,
    std::pair<Quotient<Dihedral<4>, Cyclic<4>>, Regular<Dihedral<4>>>, std::pair<Standard<Cyclic<4>>, Standard<Cyclic<4>>>,
    std::pair<Standard<Cyclic<5>>, Standard<Cyclic<5>>>, std::pair<Standard<Dihedral<4>>, Standard<Dihedral<4>>>,
    std::pair<Standard<Icosahedral>, Standard<Icosahedral>>, std::pair<IcoStdStd, IcoStdStd>,
    std::pair<Regular<Octahedral>, Standard<Octahedral>>, std::pair<OctaMix, OctaMix>,
    std::pair<DirectSum<Irrep<Dihedral<4>, 0>, Irrep<Dihedral<4>, 4>>, Regular<Dihedral<4>>>,
    std::pair<Multiple<Standard<Dihedral<6>>, 3>, DirectSum<Regular<Dihedral<6>>, Sign<Dihedral<6>>>>,
    std::pair<Sign<Symmetric<4>>, NN<Symmetric<4>>>, std::pair<IcoStdReg, IcoStdStd>,
    std::pair<Standard<Icosahedral>, IcoStdReg>,
    // 1200 unknowns with a permutation atom on the sampling path (rows are moved, no 600 x 600 matrices formed).
    std::pair<Regular<Cyclic<600>>, CyclicIrrep<600, 1>>>;

/// Basis elements as the columns of a (rows*cols) x size matrix.
Eigen::MatrixXd stacked(const EquivariantBasis& b) {
  Eigen::MatrixXd out(b.rows() * b.cols(), b.size());
  for (std::size_t k = 0; k < b.size(); ++k) {
    const Eigen::MatrixXd e = b.element(k);
    out.col(static_cast<Eigen::Index>(k)) = Eigen::Map<const Eigen::VectorXd>(e.data(), e.size());
  }
  return out;
}
}  // namespace

TEMPLATE_LIST_TEST_CASE("basis: size, equivariance, structure and completeness", "[basis]", Pairs) {
  using In = typename TestType::first_type;
  using Out = typename TestType::second_type;
  CAPTURE(rep_name<In>(), rep_name<Out>());
  const EquivariantBasis& basis = equivariant_basis<In, Out>();
  REQUIRE(basis.rows() == Out::dim);
  REQUIRE(basis.cols() == In::dim);
  CHECK(basis.size() == hom_dim<In, Out>());
  if constexpr (PermutationRepresentation<In> && PermutationRepresentation<Out>) CHECK(basis.exact());
  if (basis.size() == 0) return;

  const Eigen::MatrixXd columns = stacked(basis);
  for (std::size_t k = 0; k < basis.size(); ++k) {
    const Eigen::MatrixXd e = basis.element(k);
    if (basis.exact()) {
      REQUIRE(equivariance_error<In, Out>(e) == 0.0);
      REQUIRE((e.array() * (e.array() - 1.0)).abs().maxCoeff() == 0.0);  // 0/1
    } else {
      REQUIRE(equivariance_error<In, Out>(e) < 1e-10);
    }
  }
  if constexpr (PermutationRepresentation<In> && PermutationRepresentation<Out>) {
    // Orbits partition the entries: every entry belongs to exactly one element.
    CHECK((columns.rowwise().sum().array() - 1.0).abs().maxCoeff() == 0.0);
  }
  // Mutually orthogonal, hence linearly independent: disjoint supports across blocks and orbits, orthonormal
  // columns within dense blocks.
  Eigen::MatrixXd gram = columns.transpose() * columns;
  CHECK(gram.diagonal().minCoeff() > 0.5);
  gram.diagonal().setZero();
  CHECK(gram.cwiseAbs().maxCoeff() < 1e-10);

  Rng rng(test::seed(11, "basis completeness"));
  const Eigen::MatrixXd w = normal_matrix(Out::dim, In::dim, rng);
  const Eigen::MatrixXd p = basis.project(w);
  CHECK(equivariance_error<In, Out>(p) < 1e-10 * std::max(1.0, p.norm()));
  CHECK((basis.project(p) - p).norm() < 1e-10 * std::max(1.0, p.norm()));  // idempotent: equivariant maps are fixed
  // The residual is orthogonal to every basis element (orthogonal projection).
  const Eigen::MatrixXd residual = w - p;
  CHECK((columns.transpose() * Eigen::Map<const Eigen::VectorXd>(residual.data(), residual.size())).cwiseAbs().maxCoeff() <
        1e-9);
}

TEST_CASE("basis: known dimensions", "[basis]") {
  CHECK(equivariant_basis<Regular<Cyclic<8>>, Regular<Cyclic<8>>>().size() == 8);
  CHECK(equivariant_basis<Regular<Dihedral<12>>, Regular<Dihedral<12>>>().size() == 24);
  CHECK(equivariant_basis<Regular<Icosahedral>, Regular<Icosahedral>>().size() == 60);
  CHECK(equivariant_basis<Regular<Symmetric<5>>, Regular<Symmetric<5>>>().size() == 120);
  CHECK(equivariant_basis<Natural<Symmetric<2>>, Natural<Symmetric<2>>>().size() == 2);
  CHECK(equivariant_basis<Natural<Symmetric<3>>, Natural<Symmetric<3>>>().size() == 2);
  CHECK(equivariant_basis<Natural<Symmetric<6>>, Natural<Symmetric<6>>>().size() == 2);
  CHECK(equivariant_basis<Natural<Symmetric<10>>, Natural<Symmetric<10>>>().size() == 2);
  CHECK(equivariant_basis<Natural<Symmetric<7>>, Trivial<Symmetric<7>>>().size() == 1);
  // Second-order permutation equivariance (Maron et al. 2019): Bell(4) = 15 for n >= 4, fewer for smaller n.
  CHECK(equivariant_basis<NN<Symmetric<2>>, NN<Symmetric<2>>>().size() == 8);
  CHECK(equivariant_basis<NN<Symmetric<3>>, NN<Symmetric<3>>>().size() == 14);
  CHECK(equivariant_basis<NN<Symmetric<4>>, NN<Symmetric<4>>>().size() == 15);
  CHECK(equivariant_basis<NN<Symmetric<5>>, NN<Symmetric<5>>>().size() == 15);
  CHECK(equivariant_basis<NN<Symmetric<10>>, NN<Symmetric<10>>>().size() == 15);
  CHECK(hom_dim<NN<Symmetric<10>>, NN<Symmetric<10>>>() == 15);
  // Channel-wise: 16 x 16 regular fields of C8 give 16 * 16 * 8 coefficients.
  using R = Multiple<Regular<Cyclic<8>>, 16>;
  CHECK(equivariant_basis<R, R>().size() == 2048);
  // Complex-type irreps: rotations commute with rotations, so Hom(Std C_N, Std C_N) is 2-dimensional for N >= 3.
  CHECK(equivariant_basis<Standard<Cyclic<3>>, Standard<Cyclic<3>>>().size() == 2);
  CHECK(equivariant_basis<Standard<Dihedral<3>>, Standard<Dihedral<3>>>().size() == 1);
  // 3 (x) 3 = 1 + 3 + 5 for the icosahedral group.
  CHECK(equivariant_basis<IcoStdStd, IcoStdStd>().size() == 3);
}

TEST_CASE("basis: the Reynolds-sampling path spans the image of the group average", "[basis]") {
  const auto& out = detail::atom_data<IcoStdStd>();
  const auto& big = detail::atom_data<IcoStdReg>();  // 9 x 180 = 1620 unknowns > 1024: Reynolds sampling
  const BlockBasis sampled = detail::dense_basis(out, big);
  CHECK(sampled.size == 27);
  // Projector onto the sampled span applied to an exactly known equivariant map (Reynolds of a random matrix).
  Rng rng(test::seed(5, "sampling vs nullspace"));
  const Eigen::MatrixXd w = normal_matrix(9, 180, rng);
  const Eigen::MatrixXd r = reynolds<IcoStdReg, IcoStdStd>(w);
  const Eigen::Map<const Eigen::VectorXd> v(r.data(), r.size());
  CHECK((sampled.dense * (sampled.dense.transpose() * v) - v).norm() < 1e-10 * v.norm());
}

namespace {
/// Not a representation: ρ(g) = 2 is not orthogonal, and its "characters" claim 4 maps of a 1 x 1 matrix.
struct NotAHomomorphism {
  using group = Cyclic<3>;
  static constexpr std::size_t dim = 1;
  static Eigen::Matrix<double, 1, 1> matrix(element_t<group>) { return Eigen::Matrix<double, 1, 1>::Constant(2.0); }
};
}  // namespace

TEST_CASE("basis: matrices that are not a homomorphism are reported, not solved", "[basis]") {
  CHECK(hom_dim<NotAHomomorphism, NotAHomomorphism>() == 4);
  CHECK_THROWS_AS((make_equivariant_basis<NotAHomomorphism, NotAHomomorphism>()), numerical_error);
  CHECK_THROWS_WITH((make_equivariant_basis<NotAHomomorphism, NotAHomomorphism>()),
                    Catch::Contains("not a homomorphism"));
}

TEST_CASE("basis: expand and adjoint are adjoint, in float and double", "[basis]") {
  using In = DirectSum<Regular<Dihedral<4>>, Standard<Dihedral<4>>>;
  using Out = DirectSum<Trivial<Dihedral<4>>, Regular<Dihedral<4>>, Standard<Dihedral<4>>>;
  const auto& b = equivariant_basis<In, Out>();
  Rng rng(test::seed(3, "expand/adjoint"));
  const Eigen::VectorXd c = normal_matrix(static_cast<Eigen::Index>(b.size()), 1, rng);
  const Eigen::MatrixXd g = normal_matrix(Out::dim, In::dim, rng);
  const double lhs = (b.expand(c).array() * g.array()).sum();
  const double rhs = c.dot(b.adjoint(g));
  CHECK(lhs == Approx(rhs).epsilon(1e-12));
  // Float storage, row-major: the same map up to float rounding.
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> wf(Out::dim, In::dim);
  const Eigen::VectorXf cf = c.cast<float>();
  b.expand(cf, wf);
  CHECK((wf.cast<double>() - b.expand(c)).cwiseAbs().maxCoeff() < 1e-5);
  Eigen::VectorXf gf(b.size());
  b.adjoint(g.cast<float>().eval(), gf);
  CHECK((gf.cast<double>() - b.adjoint(g)).cwiseAbs().maxCoeff() < 1e-4);
  // Wrong shapes are reported with both shapes.
  CHECK_THROWS_AS(b.expand(Eigen::VectorXd::Zero(3)), shape_error);
  CHECK_THROWS_WITH(b.adjoint(Eigen::MatrixXd::Zero(2, 5)), Catch::Contains("expected a 11 x 10") &&
                                                               Catch::Contains("got 2 x 5"));
  CHECK_THROWS_AS(b.element(b.size()), invalid_argument);
}
