// SPDX-License-Identifier: MIT
// DirectProduct<G, H>: pairs acting componentwise.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

#include "ace/group/concepts.hpp"

namespace ace {

namespace detail {
template <class G, class H>
struct product_name {
  static constexpr std::size_t size = G::name().size() + 1 + H::name().size();
  static constexpr std::array<char, size + 1> make() {
    std::array<char, size + 1> s{};
    std::size_t n = 0;
    for (char c : G::name()) s[n++] = c;
    s[n++] = 'x';
    for (char c : H::name()) s[n++] = c;
    return s;
  }
  static constexpr auto storage = make();
};
}  // namespace detail

/// The direct product G x H: elements (g, h), (g, h)(g', h') = (g g', h h'), index = index(g) * |H| + index(h).
/// Generators are (s, e) for the generators s of G and (e, t) for those t of H.
template <class G, class H>
struct DirectProduct {
  static_assert(check_finite_group<G>() && check_finite_group<H>(),
                "ace: DirectProduct<G, H> needs two FiniteGroup types.");
  static_assert(G::order <= (std::size_t{1} << 62) / H::order, "ace: DirectProduct order overflows 64 bits.");

  using first_group = G;
  using second_group = H;

  struct element_type {
    element_t<G> first{G::identity()};
    element_t<H> second{H::identity()};
    friend constexpr bool operator==(const element_type&, const element_type&) = default;
  };

  static constexpr std::size_t order = G::order * H::order;

  static constexpr element_type identity() { return {G::identity(), H::identity()}; }
  static constexpr element_type compose(const element_type& a, const element_type& b) {
    return {G::compose(a.first, b.first), H::compose(a.second, b.second)};
  }
  static constexpr element_type inverse(const element_type& a) { return {G::inverse(a.first), H::inverse(a.second)}; }
  static constexpr auto generators() {
    constexpr auto gg = G::generators();
    constexpr auto hg = H::generators();
    std::array<element_type, std::size(gg) + std::size(hg)> out{};
    std::size_t n = 0;
    for (const auto& g : gg) out[n++] = {g, H::identity()};
    for (const auto& h : hg) out[n++] = {G::identity(), h};
    return out;
  }
  static constexpr std::size_t index(const element_type& a) { return G::index(a.first) * H::order + H::index(a.second); }
  static constexpr element_type element(std::size_t i) { return {G::element(i / H::order), H::element(i % H::order)}; }
  static constexpr std::string_view name() {
    return {detail::product_name<G, H>::storage.data(), detail::product_name<G, H>::size};
  }
};

}  // namespace ace
