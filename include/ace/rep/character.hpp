// SPDX-License-Identifier: MIT
// Character inner products and dim Hom_G from characters alone.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

#include "ace/error.hpp"
#include "ace/group/cayley.hpp"
#include "ace/rep/concepts.hpp"

namespace ace {

/// The characters of R on the conjugacy classes of its group, in the order of conjugacy_classes<G>().
template <Representation R>
std::vector<double> class_characters() {
  std::vector<double> out;
  for (const auto& c : conjugacy_classes<typename R::group>()) out.push_back(character<R>(c.representative));
  return out;
}

namespace detail {
/// The weights |C| / |G| of the conjugacy classes.
template <FiniteGroup G>
std::vector<double> class_weights() {
  std::vector<double> out;
  for (const auto& c : conjugacy_classes<G>()) out.push_back(static_cast<double>(c.size) / static_cast<double>(G::order));
  return out;
}

/// Rounds a character inner product, which must be a non-negative integer.
inline std::size_t integer_inner_product(double value, std::string_view what) {
  const double r = std::round(value);
  ACE_THROW_IF(!(std::abs(value - r) < 1e-6) || r < 0, numerical_error, what, ": character inner product ", value,
               " is not a non-negative integer; the representation matrices are not a homomorphism");
  return static_cast<std::size_t>(r);
}
}  // namespace detail

/// <χ_A, χ_B> = (1/|G|) Σ_g χ_A(g) χ_B(g), summed over conjugacy classes (real characters, so no conjugate).
template <Representation A, Representation B>
double character_inner_product() {
  static_assert(same_group_v<A, B>, "ace: character_inner_product<A, B> needs representations of the same group.");
  const auto ca = class_characters<A>();
  const auto cb = class_characters<B>();
  const auto w = detail::class_weights<typename A::group>();
  double s = 0.0;
  for (std::size_t c = 0; c < w.size(); ++c) s += w[c] * ca[c] * cb[c];
  return s;
}

/// dim Hom_G(In, Out): the number of independent equivariant linear maps In -> Out, from characters alone.
/// Over the reals this is <χ_In, χ_Out> (for irreps of complex type it counts both commuting maps).
template <Representation In, Representation Out>
std::size_t hom_dim() {
  static_assert(same_group_v<In, Out>, "ace: hom_dim<In, Out> needs In and Out to represent the same group.");
  return detail::integer_inner_product(character_inner_product<In, Out>(), "hom_dim");
}

}  // namespace ace
