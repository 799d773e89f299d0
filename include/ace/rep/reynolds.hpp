// SPDX-License-Identifier: MIT
// The Reynolds operator (group average), projection onto equivariant maps, and the equivariance error.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <vector>

#include "ace/error.hpp"
#include "ace/rep/basis.hpp"
#include "ace/rep/concepts.hpp"

namespace ace {

namespace detail {
template <class In, class Out>
void check_map_shape(const Eigen::MatrixXd& w, const char* what) {
  ACE_THROW_IF(static_cast<std::size_t>(w.rows()) != Out::dim || static_cast<std::size_t>(w.cols()) != In::dim,
               shape_error, what, "<", rep_name<In>(), ", ", rep_name<Out>(), ">: expected a ", Out::dim, " x ",
               In::dim, " matrix (Out::dim x In::dim), got ", w.rows(), " x ", w.cols());
}
}  // namespace detail

/// The Reynolds operator R(W) = (1/|G|) Σ_g ρ_out(g) W ρ_in(g)^T, fused: no |G|-fold or (dim^2)^2 intermediate is
/// formed. Permutation representations are averaged by scattering entries (O(|G| rows cols)); others block by
/// block over their summands (DirectSum and Multiple are opened), two small products per element and block, so
/// the zero off-diagonal blocks of ρ(g) cost nothing. Groups too large to enumerate (order
/// above 2^16, e.g. Symmetric<10>) use the orthogonal projection onto the cached basis, which equals R for
/// orthogonal representations. R is idempotent and its image is exactly Hom_G(In, Out).
template <Representation In, Representation Out>
Eigen::MatrixXd reynolds(const Eigen::MatrixXd& w) {
  static_assert(same_group_v<In, Out>, "ace: reynolds<In, Out> needs In and Out to represent the same group.");
  detail::check_map_shape<In, Out>(w, "reynolds");
  using Grp = typename In::group;
  if constexpr (!enumerable_v<Grp>) {
    return equivariant_basis<In, Out>().project(w);
  } else if constexpr (PermutationRepresentation<In> && PermutationRepresentation<Out>) {
    Eigen::MatrixXd acc = Eigen::MatrixXd::Zero(w.rows(), w.cols());
    for_each_element<Grp>([&](const auto& g) {
      const auto po = Out::permutation(g);
      const auto pi = In::permutation(g);
      for (std::size_t j = 0; j < In::dim; ++j)
        for (std::size_t i = 0; i < Out::dim; ++i)
          acc(static_cast<Eigen::Index>(po[i]), static_cast<Eigen::Index>(pi[j])) +=
              w(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j));
    });
    return acc / static_cast<double>(Grp::order);
  } else {
    const std::vector<detail::Atom> ins = detail::atoms_of<In>(), outs = detail::atoms_of<Out>();
    // Each distinct atom's matrix once per element.
    std::vector<const detail::AtomData*> kinds;
    for (const auto* list : {&ins, &outs})
      for (const auto& a : *list)
        if (std::find(kinds.begin(), kinds.end(), a.data) == kinds.end()) kinds.push_back(a.data);
    auto slot = [&](const detail::AtomData* d) {
      return static_cast<std::size_t>(std::find(kinds.begin(), kinds.end(), d) - kinds.begin());
    };
    std::vector<std::size_t> in_slot, out_slot;
    for (const auto& a : ins) in_slot.push_back(slot(a.data));
    for (const auto& a : outs) out_slot.push_back(slot(a.data));
    std::vector<Eigen::MatrixXd> m(kinds.size());
    Eigen::MatrixXd acc = Eigen::MatrixXd::Zero(w.rows(), w.cols()), tmp;
    for (std::size_t g = 0; g < Grp::order; ++g) {
      for (std::size_t k = 0; k < kinds.size(); ++k) m[k] = kinds[k]->matrix_of(g);
      for (std::size_t o = 0; o < outs.size(); ++o)
        for (std::size_t i = 0; i < ins.size(); ++i) {
          const auto r0 = static_cast<Eigen::Index>(outs[o].offset), c0 = static_cast<Eigen::Index>(ins[i].offset);
          const auto nr = static_cast<Eigen::Index>(outs[o].data->dim), nc = static_cast<Eigen::Index>(ins[i].data->dim);
          tmp.noalias() = m[out_slot[o]] * w.block(r0, c0, nr, nc);
          acc.block(r0, c0, nr, nc).noalias() += tmp * m[in_slot[i]].transpose();
        }
    }
    return acc / static_cast<double>(Grp::order);
  }
}

/// The orthogonal projection of W onto Hom_G(In, Out) through the cached basis (equals reynolds for orthogonal
/// representations; O(rows cols) per call once the basis exists).
template <Representation In, Representation Out>
Eigen::MatrixXd project_equivariant(const Eigen::MatrixXd& w) {
  detail::check_map_shape<In, Out>(w, "project_equivariant");
  return equivariant_basis<In, Out>().project(w);
}

/// max over the generators s of ||ρ_out(s) W - W ρ_in(s)||_F (absolute; 0 exactly iff W is equivariant, since the
/// generators generate G). Divide by ||W||_F for a relative error.
template <Representation In, Representation Out>
double equivariance_error(const Eigen::MatrixXd& w) {
  static_assert(same_group_v<In, Out>, "ace: equivariance_error<In, Out> needs representations of the same group.");
  detail::check_map_shape<In, Out>(w, "equivariance_error");
  double worst = 0.0;
  for (const auto& s : In::group::generators())
    worst = std::max(worst, (rep_matrix<Out>(s) * w - w * rep_matrix<In>(s)).norm());
  return worst;
}

}  // namespace ace
