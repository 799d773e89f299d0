// SPDX-License-Identifier: MIT
// The representation battery: ρ(gh) = ρ(g)ρ(h), ρ(e) = I, orthogonality, characters = traces (class functions),
// and 0/1 matrices for permutation representations. One line per representation in the type list.
#include "group_support.hpp"

using namespace ace;

namespace {
using D4xS3 = DirectProduct<Dihedral<4>, Symmetric<3>>;
using Reps = std::tuple<
    Trivial<Cyclic<4>>, Trivial<Icosahedral>, Regular<Cyclic<1>>, Regular<Cyclic<5>>, Regular<Dihedral<3>>,
    Regular<Symmetric<4>>, Regular<Tetrahedral>, Regular<Icosahedral>, Regular<DirectProduct<Cyclic<4>, Cyclic<2>>>,
    Regular<D4xS3>, Sign<Dihedral<4>>, Sign<Dihedral<1>>, Sign<Symmetric<4>>, Standard<Cyclic<3>>, Standard<Cyclic<8>>,
    Standard<Dihedral<6>>, Standard<Dihedral<1>>, Standard<Tetrahedral>, Standard<Octahedral>, Standard<Icosahedral>,
    Natural<Symmetric<3>>, Natural<Symmetric<5>>, Quotient<Dihedral<4>, Cyclic<4>>, Quotient<Dihedral<6>, Cyclic<3>>,
    Quotient<Cyclic<8>, Cyclic<2>>, Quotient<Dihedral<4>, Dihedral<2>>, Quotient<Dihedral<4>, TrivialGroup>,
    Quotient<D4xS3, Symmetric<3>>, DirectSum<Standard<Octahedral>, Trivial<Octahedral>, Regular<Octahedral>>,
    DirectSum<Sign<Dihedral<5>>, Irrep<Dihedral<5>, 2>>, TensorProduct<Natural<Symmetric<4>>, Natural<Symmetric<4>>>,
    TensorProduct<Standard<Icosahedral>, Standard<Icosahedral>>, TensorProduct<Standard<Dihedral<3>>, Sign<Dihedral<3>>>,
    Multiple<Regular<Cyclic<4>>, 3>, Multiple<Standard<Dihedral<3>>, 2>, Multiple<Regular<Cyclic<8>>, 16>>;

template <class R>
void check_homomorphism_pair(const element_t<typename R::group>& g, const element_t<typename R::group>& h) {
  using G = typename R::group;
  const Eigen::MatrixXd lhs = rep_matrix<R>(G::compose(g, h));
  const Eigen::MatrixXd rhs = Eigen::MatrixXd(rep_matrix<R>(g)) * Eigen::MatrixXd(rep_matrix<R>(h));
  REQUIRE((lhs - rhs).cwiseAbs().maxCoeff() < 1e-12);
}
}  // namespace

TEMPLATE_LIST_TEST_CASE("rep: homomorphism, identity and orthogonality", "[rep]", Reps) {
  using R = TestType;
  using G = typename R::group;
  STATIC_REQUIRE(Representation<R>);
  CAPTURE(rep_name<R>());
  const auto id = rep_matrix<R>(G::identity());
  CHECK((Eigen::MatrixXd(id) - Eigen::MatrixXd::Identity(R::dim, R::dim)).norm() == 0.0);
  // All pairs for small problems; every element against every generator (which implies the rest) otherwise.
  const bool all_pairs = G::order * G::order * R::dim <= 200000;
  for_each_element<G>([&](auto g) {
    const Eigen::MatrixXd m = rep_matrix<R>(g);
    REQUIRE(m.rows() == static_cast<Eigen::Index>(R::dim));
    REQUIRE((m * m.transpose() - Eigen::MatrixXd::Identity(R::dim, R::dim)).cwiseAbs().maxCoeff() < 1e-12);
    if (all_pairs) for_each_element<G>([&](auto h) { check_homomorphism_pair<R>(g, h); });
    else
      for (const auto& s : G::generators()) {
        check_homomorphism_pair<R>(g, s);
        check_homomorphism_pair<R>(s, g);
      }
  });
}

TEMPLATE_LIST_TEST_CASE("rep: characters are traces and class functions", "[rep][character]", Reps) {
  using R = TestType;
  using G = typename R::group;
  CAPTURE(rep_name<R>());
  for (const auto& c : conjugacy_classes<G>()) {
    const double chi = character<R>(c.representative);
    for (const auto& s : G::generators()) {
      const auto conj = G::compose(G::compose(s, c.representative), G::inverse(s));
      REQUIRE(character<R>(conj) == Approx(chi).margin(1e-12));
    }
  }
  for_each_element<G>([&](auto g) { REQUIRE(character<R>(g) == Approx(rep_matrix<R>(g).trace()).margin(1e-12)); });
  CHECK(character<R>(G::identity()) == Approx(static_cast<double>(R::dim)));
}

TEMPLATE_LIST_TEST_CASE("rep: permutation representations have 0/1 matrices", "[rep]", Reps) {
  using R = TestType;
  if constexpr (PermutationRepresentation<R>) {
    for_each_element<typename R::group>([&](auto g) {
      const Eigen::MatrixXd m = rep_matrix<R>(g);
      REQUIRE((m.array() * (m.array() - 1.0)).abs().maxCoeff() == 0.0);
      REQUIRE((m.colwise().sum().array() - 1.0).abs().maxCoeff() == 0.0);
    });
  } else {
    // Non-permutation representations in the list really have an entry outside {0, 1} somewhere.
    bool other = false;
    for_each_element<typename R::group>([&](auto g) {
      const Eigen::MatrixXd m = rep_matrix<R>(g);
      other = other || (m.array() * (m.array() - 1.0)).abs().maxCoeff() > 0.0;
    });
    CHECK(other);
  }
}

TEST_CASE("rep: dimensions and structure", "[rep]") {
  STATIC_REQUIRE(Regular<Icosahedral>::dim == 60);
  STATIC_REQUIRE(Quotient<Dihedral<4>, Cyclic<4>>::dim == 2);
  STATIC_REQUIRE(DirectSum<Standard<Octahedral>, Trivial<Octahedral>, Regular<Octahedral>>::dim == 28);
  STATIC_REQUIRE(DirectSum<Standard<Octahedral>, Trivial<Octahedral>, Regular<Octahedral>>::offsets[2] == 4);
  STATIC_REQUIRE(TensorProduct<Natural<Symmetric<10>>, Natural<Symmetric<10>>>::dim == 100);
  STATIC_REQUIRE(Multiple<Regular<Cyclic<8>>, 16>::dim == 128);
  // Quotient<G, 1> is the regular representation; Quotient<G, G> the trivial one.
  using G = Dihedral<3>;
  for_each_element<G>([](auto g) {
    CHECK(Eigen::MatrixXd(rep_matrix<Quotient<G, TrivialGroup>>(g)) == Eigen::MatrixXd(rep_matrix<Regular<G>>(g)));
    CHECK(rep_matrix<Quotient<G, G>>(g)(0, 0) == 1.0);
  });
  // D_N / C_N: rotations fix both cosets, reflections swap them (the orientation of the N-gon).
  CHECK(rep_matrix<Quotient<Dihedral<5>, Cyclic<5>>>(Dihedral<5>::rotation(2)) == Eigen::Matrix2d::Identity());
  CHECK(rep_matrix<Quotient<Dihedral<5>, Cyclic<5>>>(Dihedral<5>::reflection(1))(0, 0) == 0.0);
  // Names are readable.
  CHECK(std::string(rep_name<Multiple<Regular<Cyclic<8>>, 16>>()) == "16xRegular(C8)");
  CHECK(std::string(rep_name<TensorProduct<Natural<Symmetric<3>>, Sign<Symmetric<3>>>>()) ==
        "(Natural(S3) (x) Sign(S3))");
}

namespace {
/// A representation written by a user: only group, dim and matrix.
struct UserRotation {
  using group = Cyclic<6>;
  static constexpr std::size_t dim = 2;
  static Eigen::Matrix2d matrix(element_t<group> g) { return detail::plane_rotation(2 * g.k, 6); }
};
}  // namespace

TEST_CASE("rep: a user representation gets characters, names and bases from ace", "[rep]") {
  STATIC_REQUIRE(Representation<UserRotation>);
  STATIC_REQUIRE_FALSE(PermutationRepresentation<UserRotation>);
  CHECK(character<UserRotation>(Cyclic<6>::rotation(3)) == Approx(2.0));  // rotation by 2 pi: trace 2
  CHECK(rep_name<UserRotation>() == "user-representation");
  CHECK(hom_dim<UserRotation, CyclicIrrep<6, 2>>() == 2);
  CHECK(hom_dim<UserRotation, CyclicIrrep<6, 1>>() == 0);
}
