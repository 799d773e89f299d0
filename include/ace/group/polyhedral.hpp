// SPDX-License-Identifier: MIT
// The rotation groups of the regular polyhedra, exact: Tetrahedral (12), Octahedral (24), Icosahedral (60).
#pragma once

#include <Eigen/Core>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ace/group/concepts.hpp"

namespace ace {

namespace detail {

/// An exact number (a + b*sqrt(5)) / 4 with integer a, b. The entries of every tetrahedral, octahedral and
/// icosahedral rotation matrix (in the orientations used here) lie in this set, so the groups are closed exactly.
struct Golden {
  std::int64_t a = 0, b = 0;
  friend constexpr bool operator==(Golden, Golden) = default;
  double value() const { return (static_cast<double>(a) + static_cast<double>(b) * std::sqrt(5.0)) / 4.0; }
};

using ExactMatrix3 = std::array<std::array<Golden, 3>, 3>;

/// Exact product of two matrices whose product again has entries in (1/4) Z[sqrt 5]; otherwise a constant
/// expression fails here (a compile error), which is the closure check of the generated group.
constexpr ExactMatrix3 exact_product(const ExactMatrix3& x, const ExactMatrix3& y) {
  ExactMatrix3 z{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      std::int64_t a16 = 0, b16 = 0;  // numerators over 16
      for (int k = 0; k < 3; ++k) {
        const Golden p = x[i][k], q = y[k][j];
        a16 += p.a * q.a + 5 * p.b * q.b;
        b16 += p.a * q.b + p.b * q.a;
      }
      if (a16 % 4 != 0 || b16 % 4 != 0) throw "ace: generated rotation left (1/4) Z[sqrt 5]";
      z[i][j] = {a16 / 4, b16 / 4};
    }
  return z;
}

constexpr ExactMatrix3 exact_identity3() {
  ExactMatrix3 m{};
  for (int i = 0; i < 3; ++i) m[i][i] = {4, 0};
  return m;
}

/// The closure of a set of exact generators: elements in breadth-first order from the identity (index 0), and the
/// Cayley table computed exactly. Fails to compile if the closure does not have exactly Order elements.
template <std::size_t Order, std::size_t NG>
struct ExactRotationTable {
  std::array<ExactMatrix3, Order> elements{};
  std::array<std::array<std::uint8_t, Order>, Order> product{};
  std::array<std::uint8_t, Order> inverse{};
  std::array<std::uint8_t, NG> generators{};

  constexpr explicit ExactRotationTable(const std::array<ExactMatrix3, NG>& gens) {
    // Breadth-first closure: element i (> 0) is element parent[i] times generator via[i]; right[i][s] is the index
    // of element i times generator s. Only these |G| * NG exact products and look-ups are needed.
    std::array<std::array<std::uint8_t, NG>, Order> right{};
    std::array<std::uint8_t, Order> parent{}, via{};
    std::size_t count = 1;
    elements[0] = exact_identity3();
    auto find = [&](const ExactMatrix3& m) -> std::size_t {
      for (std::size_t i = 0; i < count; ++i)
        if (elements[i] == m) return i;
      return Order;
    };
    for (std::size_t i = 0; i < count; ++i)
      for (std::size_t s = 0; s < NG; ++s) {
        const ExactMatrix3 m = exact_product(elements[i], gens[s]);
        std::size_t j = find(m);
        if (j == Order) {
          if (count == Order) throw "ace: the generators produce more elements than the group order";
          j = count++;
          elements[j] = m;
          parent[j] = static_cast<std::uint8_t>(i);
          via[j] = static_cast<std::uint8_t>(s);
        }
        right[i][s] = static_cast<std::uint8_t>(j);
      }
    if (count != Order) throw "ace: the generators produce fewer elements than the group order";
    // x * e_j = (x * e_parent(j)) * g_via(j), filled in breadth-first order of j.
    for (std::size_t i = 0; i < Order; ++i) {
      product[i][0] = static_cast<std::uint8_t>(i);
      for (std::size_t j = 1; j < Order; ++j) product[i][j] = right[product[i][parent[j]]][via[j]];
      for (std::size_t j = 0; j < Order; ++j)
        if (product[i][j] == 0) inverse[i] = static_cast<std::uint8_t>(j);
    }
    for (std::size_t s = 0; s < NG; ++s) generators[s] = right[0][s];
  }
};

/// A finite rotation group of R^3 given by exact generators (Spec::generators(), Spec::order, Spec::name).
template <class Spec>
struct ExactRotationGroup {
  static constexpr std::size_t order = Spec::order;
  static constexpr int spatial_dim = 3;

  struct element_type {
    std::uint8_t i = 0;  ///< index into the exact element list
    friend constexpr bool operator==(element_type, element_type) = default;
  };

  static constexpr ExactRotationTable<Spec::order, Spec::generators().size()> table{Spec::generators()};

  static constexpr element_type identity() { return {0}; }
  static constexpr element_type compose(element_type a, element_type b) { return {table.product[a.i][b.i]}; }
  static constexpr element_type inverse(element_type a) { return {table.inverse[a.i]}; }
  static constexpr auto generators() {
    std::array<element_type, Spec::generators().size()> g{};
    for (std::size_t k = 0; k < g.size(); ++k) g[k] = {table.generators[k]};
    return g;
  }
  static constexpr std::size_t index(element_type a) { return a.i; }
  static constexpr element_type element(std::size_t i) { return {static_cast<std::uint8_t>(i)}; }
  static constexpr std::string_view name() { return Spec::name; }

  /// The exact rotation matrix, entries (a + b sqrt 5) / 4.
  static constexpr const ExactMatrix3& exact_matrix(element_type g) { return table.elements[g.i]; }
  /// The rotation matrix in double precision (entries 0, +-1/2, +-1 are exact).
  static Eigen::Matrix3d matrix(element_type g) {
    Eigen::Matrix3d m;
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 3; ++c) m(r, c) = table.elements[g.i][r][c].value();
    return m;
  }
};

constexpr ExactMatrix3 integer_matrix3(std::array<std::array<int, 3>, 3> m) {
  ExactMatrix3 out{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) out[i][j] = {4 * m[i][j], 0};
  return out;
}
/// Rotation by 2*pi/3 about (1, 1, 1): x -> y -> z -> x.
constexpr ExactMatrix3 three_fold() { return integer_matrix3({{{0, 0, 1}, {1, 0, 0}, {0, 1, 0}}}); }

struct TetrahedralSpec {
  static constexpr std::size_t order = 12;
  static constexpr std::string_view name = "T";
  static constexpr std::array<ExactMatrix3, 2> generators() {
    return {three_fold(), integer_matrix3({{{-1, 0, 0}, {0, -1, 0}, {0, 0, 1}}})};
  }
};
struct OctahedralSpec {
  static constexpr std::size_t order = 24;
  static constexpr std::string_view name = "O";
  static constexpr std::array<ExactMatrix3, 2> generators() {
    return {three_fold(), integer_matrix3({{{0, -1, 0}, {1, 0, 0}, {0, 0, 1}}})};
  }
};
struct IcosahedralSpec {
  static constexpr std::size_t order = 60;
  static constexpr std::string_view name = "I";
  /// The 3-fold rotation about (1, 1, 1) and the 5-fold rotation about the vertex (0, 1, phi), phi the golden
  /// ratio; entries 1/2, phi/2, 1/(2 phi). The group maps the icosahedron with vertices the cyclic permutations of
  /// (0, +-1, +-phi) to itself, and contains Tetrahedral.
  static constexpr std::array<ExactMatrix3, 2> generators() {
    constexpr Golden half{2, 0}, mhalf{-2, 0}, phi2{1, 1}, mphi2{-1, -1}, iphi2{-1, 1};
    return {three_fold(), ExactMatrix3{{{iphi2, mphi2, half}, {phi2, half, iphi2}, {mhalf, iphi2, phi2}}}};
  }
};

}  // namespace detail

/// The rotation group of the tetrahedron (A_4), order 12, acting on R^3 by exact signed permutation matrices.
struct Tetrahedral : detail::ExactRotationGroup<detail::TetrahedralSpec> {};
/// The rotation group of the cube and octahedron (S_4), order 24.
struct Octahedral : detail::ExactRotationGroup<detail::OctahedralSpec> {};
/// The rotation group of the icosahedron and dodecahedron (A_5), order 60; matrices exact in Q(sqrt 5).
struct Icosahedral : detail::ExactRotationGroup<detail::IcosahedralSpec> {};

}  // namespace ace
