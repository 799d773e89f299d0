// SPDX-License-Identifier: MIT
// The group battery: every library group satisfies the group axioms, exhaustively, with the right order, and its
// generators generate it. One line per group in the type list.
#include <map>
#include <set>
#include <vector>

#include "group_support.hpp"

using namespace ace;

namespace {

using SmallGroups =
    test::concat_t<test::PlanarGroups,
                   std::tuple<TrivialGroup, Symmetric<1>, Symmetric<2>, Symmetric<3>, Symmetric<4>, Symmetric<5>,
                              Tetrahedral, Octahedral, Icosahedral, DirectProduct<Cyclic<4>, Cyclic<2>>,
                              DirectProduct<Dihedral<4>, Symmetric<3>>>>;

/// Breadth-first closure of the generators, by index; needs an enumerable group.
template <class G>
std::size_t generated_order() {
  std::vector<bool> seen(G::order, false);
  std::vector<std::size_t> queue{0};
  seen[0] = true;
  for (std::size_t head = 0; head < queue.size(); ++head)
    for (const auto& s : G::generators()) {
      const std::size_t y = G::index(G::compose(G::element(queue[head]), s));
      if (!seen[y]) {
        seen[y] = true;
        queue.push_back(y);
      }
    }
  return queue.size();
}

template <class G>
std::size_t expected_order() {
  const std::map<std::string, std::size_t> known{
      {"1", 1},   {"C1", 1},  {"C2", 2},   {"C3", 3},   {"C4", 4},   {"C5", 5},  {"C6", 6},      {"C7", 7},
      {"C8", 8},  {"C12", 12}, {"D1", 2},  {"D2", 4},   {"D3", 6},   {"D4", 8},  {"D5", 10},     {"D6", 12},
      {"D7", 14}, {"D8", 16}, {"D12", 24}, {"S1", 1},   {"S2", 2},   {"S3", 6},  {"S4", 24},     {"S5", 120},
      {"T", 12},  {"O", 24},  {"I", 60},   {"C4xC2", 8}, {"D4xS3", 48}};
  return known.at(std::string(G::name()));
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("group: order, indexing and generators", "[group]", SmallGroups) {
  using G = TestType;
  CAPTURE(G::name());
  CHECK(G::order == expected_order<G>());
  CHECK(G::index(G::identity()) == 0);
  std::set<std::size_t> indices;
  for (std::size_t i = 0; i < G::order; ++i) {
    REQUIRE(G::index(G::element(i)) == i);
    indices.insert(G::index(G::element(i)));
  }
  CHECK(indices.size() == G::order);
  CHECK(generated_order<G>() == G::order);
}

TEMPLATE_LIST_TEST_CASE("group: axioms hold exhaustively", "[group]", SmallGroups) {
  using G = TestType;
  CAPTURE(G::name());
  const auto e = G::identity();
  std::size_t failures = 0;
  for (std::size_t i = 0; i < G::order; ++i) {
    const auto a = G::element(i);
    failures += !(G::compose(a, e) == a) + !(G::compose(e, a) == a);
    failures += !(G::compose(a, G::inverse(a)) == e) + !(G::compose(G::inverse(a), a) == e);
    for (std::size_t j = 0; j < G::order; ++j) {
      const auto ab = G::compose(a, G::element(j));
      failures += G::index(ab) >= G::order;  // closure: the product is an element of G
      for (std::size_t k = 0; k < G::order; ++k) {
        const auto c = G::element(k);
        failures += !(G::compose(ab, c) == G::compose(a, G::compose(G::element(j), c)));
      }
    }
  }
  CHECK(failures == 0);
}

TEMPLATE_LIST_TEST_CASE("group: the constexpr Cayley table agrees with compose", "[group][cayley]", SmallGroups) {
  using G = TestType;
  const auto& t = cayley_table<G>;
  for (std::size_t i = 0; i < G::order; ++i) {
    for (std::size_t j = 0; j < G::order; ++j)
      REQUIRE(t(i, j) == G::index(G::compose(G::element(i), G::element(j))));
    REQUIRE(t.inverse[i] == G::index(G::inverse(G::element(i))));
  }
}

TEMPLATE_LIST_TEST_CASE("group: conjugacy classes partition the group", "[group][classes]", SmallGroups) {
  using G = TestType;
  CAPTURE(G::name());
  const auto classes = conjugacy_classes<G>();
  std::size_t total = 0;
  for (const auto& c : classes) total += c.size;
  CHECK(total == G::order);
  CHECK(classes.front().representative == G::identity());
  CHECK(classes.front().size == 1);
  // Each class is exactly the set of conjugates of its representative, and classes are disjoint.
  std::set<std::size_t> covered;
  for (const auto& c : classes) {
    std::set<std::size_t> conjugates;
    for (std::size_t i = 0; i < G::order; ++i) {
      const auto g = G::element(i);
      conjugates.insert(G::index(G::compose(G::compose(g, c.representative), G::inverse(g))));
    }
    CHECK(conjugates.size() == c.size);
    for (std::size_t x : conjugates) CHECK(covered.insert(x).second);
  }
}

TEST_CASE("group: known numbers of conjugacy classes", "[group][classes]") {
  CHECK(conjugacy_classes<Cyclic<7>>().size() == 7);
  CHECK(conjugacy_classes<Dihedral<5>>().size() == 4);  // (N + 3) / 2
  CHECK(conjugacy_classes<Dihedral<8>>().size() == 7);  // N / 2 + 3
  CHECK(conjugacy_classes<Symmetric<5>>().size() == 7);  // partitions of 5
  CHECK(conjugacy_classes<Symmetric<10>>().size() == 42);
  CHECK(conjugacy_classes<Tetrahedral>().size() == 4);
  CHECK(conjugacy_classes<Octahedral>().size() == 5);
  CHECK(conjugacy_classes<Icosahedral>().size() == 5);
  std::multiset<std::size_t> ico;
  for (const auto& c : conjugacy_classes<Icosahedral>()) ico.insert(c.size);
  CHECK(ico == std::multiset<std::size_t>{1, 12, 12, 15, 20});
}

TEST_CASE("group: Symmetric<N> cycle-type classes match the generic computation", "[group][classes]") {
  // S_5's own classes (partitions) against the orbits of conjugation by the generators.
  const auto own = Symmetric<5>::conjugacy_classes();
  std::map<std::size_t, std::size_t> by_generic;  // representative's class size
  detail::DisjointSets sets(Symmetric<5>::order);
  for (std::size_t i = 0; i < Symmetric<5>::order; ++i)
    for (const auto& s : Symmetric<5>::generators())
      sets.unite(i, Symmetric<5>::index(Symmetric<5>::compose(Symmetric<5>::compose(s, Symmetric<5>::element(i)),
                                                              Symmetric<5>::inverse(s))));
  std::map<std::size_t, std::size_t> size_of_root;
  for (std::size_t i = 0; i < Symmetric<5>::order; ++i) ++size_of_root[sets.find(i)];
  for (const auto& c : own) CHECK(size_of_root[sets.find(Symmetric<5>::index(c.representative))] == c.size);
  CHECK(own.size() == size_of_root.size());
}

TEST_CASE("group: Symmetric<10> works from generators without enumeration", "[group][large]") {
  using G = Symmetric<10>;
  STATIC_REQUIRE(G::order == 3628800);
  Rng rng(test::seed(7, "Symmetric<10> sampling"));
  for (int t = 0; t < 2000; ++t) {
    const std::size_t i = rng.below(G::order), j = rng.below(G::order), k = rng.below(G::order);
    const auto a = G::element(i), b = G::element(j), c = G::element(k);
    REQUIRE(G::index(a) == i);
    REQUIRE(G::compose(G::compose(a, b), c) == G::compose(a, G::compose(b, c)));
    REQUIRE(G::compose(a, G::inverse(a)) == G::identity());
    REQUIRE(G::sign(G::compose(a, b)) == G::sign(a) * G::sign(b));
  }
  std::size_t total = 0;
  for (const auto& c : conjugacy_classes<G>()) total += c.size;
  CHECK(total == G::order);
  // The transposition and the long cycle generate S_8 (40320 elements, enumerated once).
  CHECK(generated_order<Symmetric<8>>() == Symmetric<8>::order);
}

TEST_CASE("group: element orders and signs", "[group]") {
  CHECK(element_order<Cyclic<12>>(Cyclic<12>::rotation(8)) == 3);
  CHECK(element_order<Dihedral<6>>(Dihedral<6>::reflection(2)) == 2);
  CHECK(element_order<Symmetric<5>>(Symmetric<5>::long_cycle()) == 5);
  CHECK(Symmetric<4>::sign(Symmetric<4>::transposition(1, 3)) == -1);
  CHECK(Symmetric<4>::sign(Symmetric<4>::long_cycle()) == -1);
  CHECK(Dihedral<5>::sign(Dihedral<5>::reflection(3)) == -1);
  std::multiset<std::size_t> orders;
  for_each_element<Icosahedral>([&](auto g) { orders.insert(element_order<Icosahedral>(g)); });
  CHECK(orders.count(1) == 1);
  CHECK(orders.count(2) == 15);
  CHECK(orders.count(3) == 20);
  CHECK(orders.count(5) == 24);
}

using GeometricGroups = std::tuple<Cyclic<1>, Cyclic<3>, Cyclic<4>, Cyclic<8>, Cyclic<12>, Dihedral<1>, Dihedral<2>,
                                   Dihedral<4>, Dihedral<5>, Dihedral<12>, Tetrahedral, Octahedral, Icosahedral>;

TEMPLATE_LIST_TEST_CASE("group: the spatial action is a faithful orthogonal homomorphism", "[group][geometry]",
                        GeometricGroups) {
  using G = TestType;
  CAPTURE(G::name());
  constexpr int d = G::spatial_dim;
  using M = Eigen::Matrix<double, d, d>;
  std::vector<M> mats;
  for_each_element<G>([&](auto g) { mats.push_back(G::matrix(g)); });
  for (std::size_t i = 0; i < G::order; ++i) {
    CHECK((mats[i] * mats[i].transpose() - M::Identity()).norm() < 1e-12);
    const double det = mats[i].determinant();
    const bool reflection = [&] {
      if constexpr (SignedGroup<G>) return G::sign(G::element(i)) < 0;
      else return false;
    }();
    CHECK(det == Approx(reflection ? -1.0 : 1.0).margin(1e-12));
    for (std::size_t j = 0; j < G::order; ++j) {
      const auto ij = G::index(G::compose(G::element(i), G::element(j)));
      REQUIRE((mats[i] * mats[j] - mats[ij]).norm() < 1e-12);
      if (i != j) REQUIRE((mats[i] - mats[j]).norm() > 1e-6);  // faithful
    }
  }
}

TEST_CASE("group: polyhedral matrices are exact", "[group][geometry]") {
  // Every entry of the octahedral group is 0 or +-1; the icosahedral ones are in {0, +-1/2, +-phi/2, +-1/(2 phi), +-1}.
  for_each_element<Octahedral>([](auto g) {
    for (const auto& row : Octahedral::exact_matrix(g))
      for (const auto& x : row) CHECK((x.b == 0 && (x.a == 0 || x.a == 4 || x.a == -4)));
  });
  const std::set<std::pair<long, long>> allowed{{0, 0}, {2, 0}, {-2, 0}, {1, 1}, {-1, -1}, {-1, 1}, {1, -1}, {4, 0}, {-4, 0}};
  for_each_element<Icosahedral>([&](auto g) {
    for (const auto& row : Icosahedral::exact_matrix(g))
      for (const auto& x : row) CHECK(allowed.count({x.a, x.b}) == 1);
  });
}
