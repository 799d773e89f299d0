// SPDX-License-Identifier: MIT
// Compile-time Cayley and inverse tables for small groups, with the group axioms checked when they are built;
// conjugacy classes for any library group.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <type_traits>
#include <vector>

#include "ace/group/concepts.hpp"

namespace ace {

/// Groups up to this order carry a constexpr Cayley table.
inline constexpr std::size_t max_table_order = 256;

template <class G>
concept TabulatedGroup = FiniteGroup<G> && (G::order <= max_table_order);

/// product[i][j] = index(element(i) * element(j)); inverse[i] = index(element(i)^-1).
template <class G>
struct CayleyTable {
  using index_type = std::conditional_t<(G::order <= 256), std::uint8_t, std::uint16_t>;
  std::array<std::array<index_type, G::order>, G::order> product{};
  std::array<index_type, G::order> inverse{};
  constexpr std::size_t operator()(std::size_t i, std::size_t j) const { return product[i][j]; }
};

namespace detail {

template <class G>
constexpr CayleyTable<G> build_cayley_table() {
  CayleyTable<G> t{};
  using Index = typename CayleyTable<G>::index_type;
  std::array<element_t<G>, G::order> elements{};
  for (std::size_t i = 0; i < G::order; ++i) elements[i] = G::element(i);
  for (std::size_t i = 0; i < G::order; ++i) {
    for (std::size_t j = 0; j < G::order; ++j)
      t.product[i][j] = static_cast<Index>(G::index(G::compose(elements[i], elements[j])));
    t.inverse[i] = static_cast<Index>(G::index(G::inverse(elements[i])));
  }
  return t;
}

/// Every element is a product of generators (breadth-first closure from the identity).
template <class G>
constexpr bool generators_generate(const CayleyTable<G>& t) {
  std::array<bool, G::order> seen{};
  std::array<std::size_t, G::order> queue{};
  std::size_t head = 0, tail = 0;
  seen[0] = true;
  queue[tail++] = 0;
  while (head < tail) {
    const std::size_t x = queue[head++];
    for (const auto& s : G::generators()) {
      const std::size_t y = t(x, G::index(s));
      if (!seen[y]) {
        seen[y] = true;
        queue[tail++] = y;
      }
    }
  }
  return tail == G::order;
}

/// The group axioms on the table: index/element form a bijection, the identity has index 0 and is neutral, every
/// row is a permutation, inverses are two-sided, and the law is associative. Associativity is checked with Light's
/// test, (xy)s = x(ys) for all x, y and every generator s, which implies associativity once the generators generate.
template <class G>
constexpr bool table_satisfies_axioms(const CayleyTable<G>& t) {
  constexpr std::size_t n = G::order;
  if (G::index(G::identity()) != 0) return false;
  for (std::size_t i = 0; i < n; ++i)
    if (G::index(G::element(i)) != i) return false;
  for (std::size_t i = 0; i < n; ++i) {
    if (t(0, i) != i || t(i, 0) != i) return false;
    if (t(i, t.inverse[i]) != 0 || t(t.inverse[i], i) != 0) return false;
    std::array<bool, n> hit{};
    for (std::size_t j = 0; j < n; ++j) hit[t(i, j)] = true;
    for (bool h : hit)
      if (!h) return false;
  }
  if (!generators_generate<G>(t)) return false;
  for (const auto& s : G::generators()) {
    const std::size_t si = G::index(s);
    for (std::size_t x = 0; x < n; ++x)
      for (std::size_t y = 0; y < n; ++y)
        if (t(t(x, y), si) != t(x, t(y, si))) return false;
  }
  return true;
}

template <class G>
struct cayley_holder {
  static_assert(check_finite_group<G>());
  static_assert(G::order <= max_table_order,
                "ace: Cayley tables are built only for groups of order <= 256; larger groups work from generators.");
  static constexpr CayleyTable<G> table = build_cayley_table<G>();
  static_assert(table_satisfies_axioms<G>(table),
                "ace: this type violates the group axioms (identity, inverses, associativity, or its generators do "
                "not generate it); see table_satisfies_axioms for the exact checks.");
};

}  // namespace detail

/// The constexpr Cayley table of a small group; instantiating it proves the group axioms at compile time.
template <class G>
inline constexpr const CayleyTable<G>& cayley_table = detail::cayley_holder<G>::table;

/// Compile-time proof of the group axioms for a tabulated group (usable in static_assert).
template <TabulatedGroup G>
consteval bool group_axioms_hold() {
  return detail::table_satisfies_axioms<G>(cayley_table<G>);
}

namespace detail {
/// Union-find over 0..n-1 with path halving; roots are the smallest members.
struct DisjointSets {
  std::vector<std::size_t> parent;
  explicit DisjointSets(std::size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), std::size_t{0}); }
  std::size_t find(std::size_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  }
  void unite(std::size_t a, std::size_t b) {
    a = find(a);
    b = find(b);
    if (a == b) return;
    if (a < b) parent[b] = a;
    else parent[a] = b;
  }
  /// Labels 0..k-1 in order of first appearance, and k.
  std::size_t labels(std::vector<std::uint32_t>& out) {
    const std::size_t n = parent.size();
    out.assign(n, 0);
    std::vector<std::uint32_t> root_label(n, UINT32_MAX);
    std::uint32_t k = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t r = find(i);
      if (root_label[r] == UINT32_MAX) root_label[r] = k++;
      out[i] = root_label[r];
    }
    return k;
  }
};
template <class G>
concept has_own_classes = requires { { G::conjugacy_classes() }; };
}  // namespace detail

/// The conjugacy classes of G, the identity's class first. Groups may supply their own (Symmetric<N> uses cycle
/// types and never enumerates); otherwise the classes are the orbits of conjugation by the generators.
template <FiniteGroup G>
std::vector<ConjugacyClass<G>> conjugacy_classes() {
  if constexpr (detail::has_own_classes<G>) {
    return G::conjugacy_classes();
  } else {
    static_assert(enumerable_v<G>, "ace: conjugacy classes of a group this large need a G::conjugacy_classes().");
    detail::DisjointSets sets(G::order);
    for (std::size_t i = 0; i < G::order; ++i) {
      const auto x = G::element(i);
      for (const auto& s : G::generators()) sets.unite(i, G::index(G::compose(G::compose(s, x), G::inverse(s))));
    }
    std::vector<std::uint32_t> label;
    const std::size_t k = sets.labels(label);
    std::vector<ConjugacyClass<G>> out(k, ConjugacyClass<G>{G::identity(), 0});
    std::vector<bool> have(k, false);
    for (std::size_t i = 0; i < G::order; ++i) {
      if (!have[label[i]]) {
        out[label[i]].representative = G::element(i);
        have[label[i]] = true;
      }
      ++out[label[i]].size;
    }
    return out;
  }
}

}  // namespace ace
