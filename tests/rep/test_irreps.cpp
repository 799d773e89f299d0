// SPDX-License-Identifier: MIT
// Irreps of C_N and D_N: homomorphisms, character orthogonality, completeness, and irreducibility.
#include "group_support.hpp"

using namespace ace;

namespace {
using IrrepList = test::concat_t<
    test::irreps_of_t<Cyclic<1>>, test::irreps_of_t<Cyclic<2>>, test::irreps_of_t<Cyclic<3>>,
    test::irreps_of_t<Cyclic<4>>, test::irreps_of_t<Cyclic<5>>, test::irreps_of_t<Cyclic<6>>,
    test::irreps_of_t<Cyclic<7>>, test::irreps_of_t<Cyclic<8>>, test::irreps_of_t<Cyclic<12>>,
    test::irreps_of_t<Dihedral<1>>, test::irreps_of_t<Dihedral<2>>, test::irreps_of_t<Dihedral<3>>,
    test::irreps_of_t<Dihedral<4>>, test::irreps_of_t<Dihedral<5>>, test::irreps_of_t<Dihedral<6>>,
    test::irreps_of_t<Dihedral<7>>, test::irreps_of_t<Dihedral<8>>, test::irreps_of_t<Dihedral<12>>>;
}  // namespace

TEMPLATE_LIST_TEST_CASE("irrep: homomorphism and orthogonality on all pairs", "[irrep]", IrrepList) {
  using R = TestType;
  using G = typename R::group;
  CAPTURE(rep_name<R>());
  for_each_element<G>([&](auto g) {
    const auto m = rep_matrix<R>(g);
    REQUIRE((m * m.transpose() - decltype(m)::Identity()).norm() < 1e-12);
    for_each_element<G>([&](auto h) { REQUIRE((rep_matrix<R>(G::compose(g, h)) - m * rep_matrix<R>(h)).norm() < 1e-12); });
  });
}

TEMPLATE_LIST_TEST_CASE("irrep: <χ, χ> and dim Hom(ρ, ρ) equal the endomorphism dimension", "[irrep]", IrrepList) {
  using R = TestType;
  CAPTURE(rep_name<R>());
  // Absolutely irreducible (real type): 1. The 2-D irreps of C_N are of complex type: 2.
  CHECK(character_inner_product<R, R>() == Approx(static_cast<double>(R::endomorphism_dim)));
  CHECK(equivariant_basis<R, R>().size() == R::endomorphism_dim);
}

TEMPLATE_LIST_TEST_CASE("irrep: distinct irreps are orthogonal and complete", "[irrep]", test::PlanarGroups) {
  using G = TestType;
  CAPTURE(G::name());
  std::vector<std::vector<double>> chars;
  std::vector<double> ends, dims;
  test::for_each_type<test::irreps_of_t<G>>([&]<class R>(std::type_identity<R>) {
    chars.push_back(class_characters<R>());
    ends.push_back(static_cast<double>(R::endomorphism_dim));
    dims.push_back(static_cast<double>(R::dim));
  });
  const auto weights = detail::class_weights<G>();
  for (std::size_t a = 0; a < chars.size(); ++a)
    for (std::size_t b = 0; b < chars.size(); ++b) {
      double ip = 0.0;
      for (std::size_t c = 0; c < weights.size(); ++c) ip += weights[c] * chars[a][c] * chars[b][c];
      CHECK(ip == Approx(a == b ? ends[a] : 0.0).margin(1e-12));
    }
  // Completeness over the reals: Σ dim² / end = |G| (a complex-type irrep stands for two complex ones).
  double sum = 0.0;
  for (std::size_t a = 0; a < dims.size(); ++a) sum += dims[a] * dims[a] / ends[a];
  CHECK(sum == Approx(static_cast<double>(G::order)));
  // The regular representation contains each irrep dim / end times.
  test::for_each_type<test::irreps_of_t<G>>([&]<class R>(std::type_identity<R>) {
    CHECK(hom_dim<R, Regular<G>>() == R::dim);
  });
}

TEST_CASE("irrep: Standard<C_N> and Standard<D_N> are the frequency-1 irreps for N >= 3", "[irrep]") {
  for_each_element<Cyclic<7>>([](auto g) {
    CHECK((Eigen::Matrix2d(rep_matrix<Standard<Cyclic<7>>>(g)) - rep_matrix<Irrep<Cyclic<7>, 1>>(g)).norm() == 0.0);
  });
  for_each_element<Dihedral<5>>([](auto g) {
    CHECK((Eigen::Matrix2d(rep_matrix<Standard<Dihedral<5>>>(g)) - rep_matrix<DihedralIrrep<5, 1, 1>>(g)).norm() == 0.0);
    CHECK(rep_matrix<Sign<Dihedral<5>>>(g)(0, 0) == rep_matrix<DihedralIrrep<5, 1, 0>>(g)(0, 0));
  });
  STATIC_REQUIRE(irrep_count_v<Dihedral<4>> == 5);
  STATIC_REQUIRE(irrep_count_v<Dihedral<5>> == 4);
  STATIC_REQUIRE(irrep_count_v<Cyclic<8>> == 5);
}
