// SPDX-License-Identifier: MIT
// What the group and representation batteries share: the groups they run over and the irreps of a group as a list.
#pragma once

#include <tuple>
#include <utility>

#include "ace/group.hpp"
#include "ace/rep.hpp"
#include "support.hpp"

namespace ace::test {

/// std::tuple<Irrep<G, 0>, ..., Irrep<G, irrep_count - 1>>.
template <class G, class Seq = std::make_index_sequence<irrep_count_v<G>>>
struct irreps_of;
template <class G, std::size_t... I>
struct irreps_of<G, std::index_sequence<I...>> {
  using type = std::tuple<Irrep<G, I>...>;
};
template <class G>
using irreps_of_t = typename irreps_of<G>::type;

/// Cyclic and dihedral groups the batteries run over.
using PlanarGroups = std::tuple<Cyclic<1>, Cyclic<2>, Cyclic<3>, Cyclic<4>, Cyclic<5>, Cyclic<6>, Cyclic<7>, Cyclic<8>,
                                Cyclic<12>, Dihedral<1>, Dihedral<2>, Dihedral<3>, Dihedral<4>, Dihedral<5>,
                                Dihedral<6>, Dihedral<7>, Dihedral<8>, Dihedral<12>>;

}  // namespace ace::test
