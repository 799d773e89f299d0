// SPDX-License-Identifier: MIT
// Subgroups: declared embeddings are injective homomorphisms; cosets, generated subgroups and normality.
#include <set>

#include "group_support.hpp"

using namespace ace;

namespace {
using Embeddings =
    std::tuple<std::pair<Cyclic<4>, Dihedral<4>>, std::pair<Cyclic<2>, Dihedral<4>>, std::pair<Cyclic<3>, Cyclic<12>>,
               std::pair<Dihedral<2>, Dihedral<4>>, std::pair<Dihedral<3>, Dihedral<12>>,
               std::pair<TrivialGroup, Icosahedral>, std::pair<Dihedral<4>, Dihedral<4>>,
               std::pair<Cyclic<4>, DirectProduct<Cyclic<4>, Cyclic<2>>>,
               std::pair<Symmetric<3>, DirectProduct<Dihedral<4>, Symmetric<3>>>>;
}

TEMPLATE_LIST_TEST_CASE("subgroup: embeddings are injective homomorphisms", "[subgroup]", Embeddings) {
  using H = typename TestType::first_type;
  using G = typename TestType::second_type;
  STATIC_REQUIRE(SubgroupOf<H, G>);
  using E = subgroup_embedding<H, G>;
  std::set<std::size_t> image;
  for_each_element<H>([&](auto a) {
    image.insert(G::index(E::embed(a)));
    for_each_element<H>([&](auto b) { REQUIRE(E::embed(H::compose(a, b)) == G::compose(E::embed(a), E::embed(b))); });
  });
  CHECK(image.size() == H::order);
  const auto members = subgroup_indices<H, G>();
  CHECK(is_subgroup<G>(members));
  const auto cosets = left_cosets<G>(members);
  CHECK(cosets.count() == G::order / H::order);
  // Each element lies in exactly one coset, and x, y are in the same coset iff x^-1 y is in H.
  const std::set<std::size_t> in_h(members.begin(), members.end());
  for (std::size_t x = 0; x < G::order; ++x)
    for (std::size_t y = 0; y < G::order; ++y) {
      const bool same = cosets.coset_of[x] == cosets.coset_of[y];
      REQUIRE(same == (in_h.count(G::index(G::compose(G::inverse(G::element(x)), G::element(y)))) == 1));
    }
}

TEST_CASE("subgroup: undeclared pairs are not subgroups", "[subgroup]") {
  STATIC_REQUIRE_FALSE(SubgroupOf<Cyclic<3>, Cyclic<8>>);
  STATIC_REQUIRE_FALSE(SubgroupOf<Dihedral<4>, Cyclic<8>>);
  STATIC_REQUIRE_FALSE(SubgroupOf<Cyclic<4>, DirectProduct<Cyclic<4>, Cyclic<4>>>);  // ambiguous factor
}

TEST_CASE("subgroup: generated subgroups, normality and bad input", "[subgroup]") {
  using G = Dihedral<6>;
  const std::array<element_t<G>, 1> r2{G::rotation(2)};
  const auto c3 = generated_subgroup<G>(r2);
  CHECK(c3.size() == 3);
  CHECK(is_subgroup<G>(c3));
  CHECK(is_normal_subgroup<G>(c3));
  const std::array<element_t<G>, 1> s{G::reflection()};
  const auto flips = generated_subgroup<G>(s);
  CHECK(flips.size() == 2);
  CHECK_FALSE(is_normal_subgroup<G>(flips));  // s is not central in D_6
  const std::array<element_t<G>, 2> both{G::rotation(1), G::reflection()};
  CHECK(generated_subgroup<G>(both).size() == G::order);
  const std::vector<std::size_t> not_a_subgroup{0, 1};
  CHECK_FALSE(is_subgroup<G>(not_a_subgroup));
  CHECK_THROWS_AS(left_cosets<G>(not_a_subgroup), invalid_argument);
  const std::vector<std::size_t> out_of_range{0, 99};
  CHECK_THROWS_WITH(is_subgroup<G>(out_of_range), Catch::Contains("99") && Catch::Contains("D6"));
  CHECK_THROWS_AS(is_normal_subgroup<G>(out_of_range), invalid_argument);
  // Duplicated members are the same subgroup.
  const std::vector<std::size_t> twice{0, 2, 4, 0, 2, 4};
  CHECK(left_cosets<G>(twice).count() == 4);
  // The rotation subgroup of the icosahedral group is simple: its only normal subgroups are trivial or everything.
  const std::array<element_t<Icosahedral>, 1> one{Icosahedral::generators()[0]};
  CHECK_FALSE(is_normal_subgroup<Icosahedral>(generated_subgroup<Icosahedral>(one)));
}
