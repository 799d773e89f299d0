// SPDX-License-Identifier: MIT
// Helpers shared by the test batteries.
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "ace/ace.hpp"

namespace ace::test {

/// The seed of a random test: ACE_TEST_SEED from the environment if set, else the test's default. Printed, so a
/// failing run can be repeated exactly.
inline std::uint64_t seed(std::uint64_t fallback, const char* test) {
  std::uint64_t s = fallback;
  if (const char* env = std::getenv("ACE_TEST_SEED")) s = std::strtoull(env, nullptr, 10);
  std::cout << "[seed] " << test << ": " << s << " (set ACE_TEST_SEED to override)\n";
  return s;
}

/// Concatenation of std::tuple type lists.
template <class... Ts>
using concat_t = decltype(std::tuple_cat(std::declval<Ts>()...));

/// std::tuple<Irrep<G, 0>, ..., Irrep<G, irrep_count - 1>>.
template <class G, class Seq = std::make_index_sequence<irrep_count_v<G>>>
struct irreps_of;
template <class G, std::size_t... I>
struct irreps_of<G, std::index_sequence<I...>> {
  using type = std::tuple<Irrep<G, I>...>;
};
template <class G>
using irreps_of_t = typename irreps_of<G>::type;

/// Calls f(std::type_identity<T>{}) for each T in a tuple type list.
template <class List, class F>
void for_each_type(F&& f) {
  [&]<class... Ts>(std::tuple<Ts...>*) { (f(std::type_identity<Ts>{}), ...); }(static_cast<List*>(nullptr));
}

/// Cyclic and dihedral groups the batteries run over.
using PlanarGroups = std::tuple<Cyclic<1>, Cyclic<2>, Cyclic<3>, Cyclic<4>, Cyclic<5>, Cyclic<6>, Cyclic<7>, Cyclic<8>,
                                Cyclic<12>, Dihedral<1>, Dihedral<2>, Dihedral<3>, Dihedral<4>, Dihedral<5>,
                                Dihedral<6>, Dihedral<7>, Dihedral<8>, Dihedral<12>>;

}  // namespace ace::test
