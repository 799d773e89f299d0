// SPDX-License-Identifier: MIT
// The FiniteGroup concept: what ace asks of a group type, and why.
#pragma once

#include <concepts>
#include <cstddef>
#include <ranges>
#include <string_view>
#include <type_traits>

namespace ace {

/// The element type of a group.
template <class G>
using element_t = typename G::element_type;

/// A finite group as a type. Everything is static and constexpr, so groups cost nothing at run time and can be
/// checked at compile time.
///  * `element_type`: a small regular value type (== must be equality of group elements);
///  * `order`: |G|, so that representations and tables can be sized at compile time;
///  * `identity()`, `compose(a, b)` (= a·b, apply b first when acting), `inverse(a)`: the group law;
///  * `generators()`: a range of elements generating G. Equivariance to the generators implies equivariance to the
///    whole group, so checks and basis solvers use only these and never need to enumerate large groups;
///  * `index(g)` in [0, order) and `element(i)`: a bijection with 0..order-1, `index(identity()) == 0`; tables and
///    the regular representation are indexed by it;
///  * `name()`: for messages, signatures and printing.
template <class G>
concept FiniteGroup = requires(element_t<G> a, element_t<G> b, std::size_t i) {
  requires std::regular<element_t<G>>;
  { G::order } -> std::convertible_to<std::size_t>;
  { G::identity() } -> std::same_as<element_t<G>>;
  { G::compose(a, b) } -> std::same_as<element_t<G>>;
  { G::inverse(a) } -> std::same_as<element_t<G>>;
  { G::generators() } -> std::ranges::range;
  { G::index(a) } -> std::convertible_to<std::size_t>;
  { G::element(i) } -> std::same_as<element_t<G>>;
  { G::name() } -> std::convertible_to<std::string_view>;
  // The group law must be usable in constant expressions.
  typename std::integral_constant<std::size_t, G::index(G::compose(G::identity(), G::inverse(G::identity())))>;
};

namespace detail {
template <class G> concept has_element_type = requires { typename G::element_type; };
template <class G> concept has_order = requires { { G::order } -> std::convertible_to<std::size_t>; };
template <class G> concept has_group_law = requires(element_t<G> a) {
  { G::identity() } -> std::same_as<element_t<G>>;
  { G::compose(a, a) } -> std::same_as<element_t<G>>;
  { G::inverse(a) } -> std::same_as<element_t<G>>;
};
template <class G> concept has_generators = requires { { G::generators() } -> std::ranges::range; };
template <class G> concept has_indexing = requires(element_t<G> a, std::size_t i) {
  { G::index(a) } -> std::convertible_to<std::size_t>;
  { G::element(i) } -> std::same_as<element_t<G>>;
};
template <class G> concept has_name = requires { { G::name() } -> std::convertible_to<std::string_view>; };
}  // namespace detail

/// Static check with one sentence per missing piece; call as `static_assert(check_finite_group<G>())` in templates
/// that take a group, so a user type that is not a group fails with a message saying what to add.
template <class G>
consteval bool check_finite_group() {
  static_assert(detail::has_element_type<G>,
                "ace: a group type needs a nested `element_type` (an index or a small value type with ==).");
  if constexpr (detail::has_element_type<G>) {
    static_assert(detail::has_order<G>, "ace: a group type needs `static constexpr std::size_t order` (its |G|).");
    static_assert(detail::has_group_law<G>,
                  "ace: a group type needs static constexpr `identity()`, `compose(a, b)` and `inverse(a)` "
                  "returning element_type.");
    static_assert(detail::has_generators<G>,
                  "ace: a group type needs a static constexpr `generators()` returning a range of elements "
                  "(e.g. std::array) that generate the group.");
    static_assert(detail::has_indexing<G>,
                  "ace: a group type needs static constexpr `index(g)` (into 0..order-1) and `element(i)`.");
    static_assert(detail::has_name<G>, "ace: a group type needs a static `name()` returning a string_view.");
    static_assert(FiniteGroup<G>, "ace: the group law of this type is not usable in constant expressions; "
                                  "mark identity, compose, inverse, index and element constexpr.");
  }
  return FiniteGroup<G>;
}

/// Groups whose elements ace may enumerate (tables, group sums, Regular). Large groups such as Symmetric<10> still
/// work from their generators.
inline constexpr std::size_t max_enumerable_order = std::size_t{1} << 16;

template <class G>
inline constexpr bool enumerable_v = FiniteGroup<G> && (G::order <= max_enumerable_order);

/// Calls f(g) for every element, in index order.
template <FiniteGroup G, class F>
constexpr void for_each_element(F&& f) {
  static_assert(enumerable_v<G>, "ace: this group is too large to enumerate (order > 2^16); "
                                 "use an algorithm that works from generators instead.");
  for (std::size_t i = 0; i < G::order; ++i) f(G::element(i));
}

/// g^k for k >= 0.
template <FiniteGroup G>
constexpr element_t<G> power(element_t<G> g, std::size_t k) {
  element_t<G> out = G::identity();
  for (std::size_t i = 0; i < k; ++i) out = G::compose(out, g);
  return out;
}

/// The order of an element (smallest k >= 1 with g^k = e).
template <FiniteGroup G>
constexpr std::size_t element_order(element_t<G> g) {
  std::size_t k = 1;
  for (element_t<G> x = g; !(x == G::identity()); x = G::compose(x, g)) ++k;
  return k;
}

}  // namespace ace

namespace ace {
/// One conjugacy class: a representative and the number of elements in the class.
template <class G>
struct ConjugacyClass {
  element_t<G> representative;
  std::size_t size;
};
}  // namespace ace
