// SPDX-License-Identifier: MIT
// Quotient<G, H>: the permutation representation of G on the left cosets G/H.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "ace/group/subgroup.hpp"
#include "ace/rep/concepts.hpp"

namespace ace {

/// ρ(g) e_{xH} = e_{gxH} on R^(|G|/|H|). Cosets are numbered by their smallest member index (so coset 0 is H).
/// Quotient<Dihedral<N>, Cyclic<N>> swaps the two orientations (it is Trivial + Sign); Quotient<G, TrivialGroup> is
/// Regular<G>; Quotient<G, G> is Trivial<G>. Needs a declared subgroup_embedding<H, G> and an enumerable G.
template <class G, class H>
struct Quotient {
  static_assert(check_finite_group<G>() && check_finite_group<H>(), "ace: Quotient<G, H> needs two FiniteGroups.");
  static_assert(SubgroupOf<H, G>, "ace: Quotient<G, H> needs H to be a declared subgroup of G (specialise "
                                  "ace::subgroup_embedding<H, G> with a static embed(h)).");
  static_assert(G::order <= 4096, "ace: Quotient<G, H> enumerates G, which must have order <= 4096.");
  using group = G;
  using subgroup = H;
  static constexpr std::size_t dim = G::order / H::order;

  struct Cosets {
    std::array<std::uint32_t, G::order> coset_of{};
    std::array<std::uint32_t, dim> representative{};
  };
  static constexpr Cosets cosets = [] {
    Cosets c{};
    std::array<bool, G::order> done{};
    std::size_t next = 0;
    for (std::size_t i = 0; i < G::order; ++i) {
      if (done[i]) continue;
      const auto g = G::element(i);
      for (std::size_t j = 0; j < H::order; ++j) {
        const std::size_t m = G::index(G::compose(g, subgroup_embedding<H, G>::embed(H::element(j))));
        done[m] = true;
        c.coset_of[m] = static_cast<std::uint32_t>(next);
      }
      c.representative[next++] = static_cast<std::uint32_t>(i);
    }
    return c;
  }();

  static constexpr RepPermutation<dim> permutation(const element_t<G>& g) {
    auto p = make_permutation<dim>();
    for (std::size_t c = 0; c < dim; ++c)
      p[c] = cosets.coset_of[G::index(G::compose(g, G::element(cosets.representative[c])))];
    return p;
  }
  static std::string_view name() {
    static const std::string s = detail::concat("Quotient(", G::name(), "/", H::name(), ")");
    return s;
  }
};

}  // namespace ace
