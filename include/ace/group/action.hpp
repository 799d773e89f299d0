// SPDX-License-Identifier: MIT
// Group actions: C_N and D_N on the plane, exactly on the pixel grid for the groups that map pixels to pixels,
// the polyhedral groups on R^3, and S_N on indices.
#pragma once

#include <Eigen/Core>
#include <cstddef>
#include <span>
#include <cstdint>
#include <utility>
#include <vector>

#include "ace/error.hpp"
#include "ace/group/concepts.hpp"
#include "ace/group/cyclic.hpp"
#include "ace/group/dihedral.hpp"
#include "ace/group/geometry.hpp"
#include "ace/group/trivial.hpp"

namespace ace {

/// Whether G maps the square pixel grid to itself exactly: rotations by multiples of 90 degrees and the flips,
/// i.e. C1, C2, C4, D1, D2, D4 (and the trivial group). Other C_N and D_N need interpolation.
template <class G>
inline constexpr bool grid_exact_v = false;
template <>
inline constexpr bool grid_exact_v<TrivialGroup> = true;
template <std::size_t N>
inline constexpr bool grid_exact_v<Cyclic<N>> = (N == 1 || N == 2 || N == 4);
template <std::size_t N>
inline constexpr bool grid_exact_v<Dihedral<N>> = (N == 1 || N == 2 || N == 4);

/// A pixel position (row, column).
struct Pixel {
  std::size_t row, col;
  friend constexpr bool operator==(Pixel, Pixel) = default;
};

namespace detail {
// Quarter-turns of the element and whether it flips (rows are y pointing down, so the plane's x-axis flip
// reverses rows).
template <class G>
constexpr std::pair<std::size_t, bool> grid_motion(const element_t<G>& g) {
  if constexpr (std::same_as<G, TrivialGroup>) return {0, false};
  else if constexpr (requires { g.flip; }) return {g.k * (4 / (G::order / 2)), g.flip != 0};
  else return {g.k * (4 / G::order), false};
}
}  // namespace detail

/// Where g sends pixel p of a rows x cols grid, rotating about the grid centre (counter-clockwise for positive
/// rotations, y up) and flipping across the horizontal axis, like G::matrix on the plane. Exact, integer only.
/// Quarter turns need a square grid (throws shape_error otherwise).
template <class G>
Pixel act_on_pixel(const element_t<G>& g, Pixel p, std::size_t rows, std::size_t cols) {
  static_assert(grid_exact_v<G>, "ace: this group does not map the pixel grid to itself; only C1, C2, C4, D1, D2 "
                                 "and D4 act exactly on pixels (use an interpolated rotation for others).");
  const auto [quarters, flip] = detail::grid_motion<G>(g);
  ACE_THROW_IF(quarters % 2 == 1 && rows != cols, shape_error, "act_on_pixel: a quarter turn of ", G::name(),
               " needs a square grid, got ", rows, " x ", cols);
  ACE_THROW_IF(p.row >= rows || p.col >= cols, invalid_argument, "act_on_pixel: pixel (", p.row, ", ", p.col,
               ") is outside the ", rows, " x ", cols, " grid");
  // Doubled centred coordinates: x = 2 col - (cols - 1), y = (rows - 1) - 2 row.
  using Coord = std::int64_t;
  Coord x = 2 * static_cast<Coord>(p.col) - static_cast<Coord>(cols - 1);
  Coord y = static_cast<Coord>(rows - 1) - 2 * static_cast<Coord>(p.row);
  if (flip) y = -y;
  for (std::size_t q = 0; q < quarters; ++q) {
    const Coord t = x;
    x = -y;
    y = t;
  }
  return {static_cast<std::size_t>((static_cast<Coord>(rows - 1) - y) / 2),
          static_cast<std::size_t>((x + static_cast<Coord>(cols - 1)) / 2)};
}

/// Moves entry i of `in` to position g(i) of `out`: out[g(i)] = in[i] (the natural representation).
template <PermutationGroup G, class T>
void act_on_indices(const element_t<G>& g, std::span<const T> in, std::span<T> out) {
  ACE_THROW_IF(in.size() != G::degree || out.size() != G::degree, shape_error, "act_on_indices: ", G::name(),
               " permutes ", G::degree, " entries, got input of ", in.size(), " and output of ", out.size());
  for (std::size_t i = 0; i < G::degree; ++i) out[G::apply(g, i)] = in[i];
}

}  // namespace ace
