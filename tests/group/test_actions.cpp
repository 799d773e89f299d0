// SPDX-License-Identifier: MIT
// Actions: the pixel grid (exact for C1, C2, C4, D1, D2, D4), the plane, and S_N on indices.
#include <xtensor/xtensor.hpp>

#include "ace/nn/image/image.hpp"
#include "group_support.hpp"

using namespace ace;

namespace {
using GridGroups = std::tuple<TrivialGroup, Cyclic<1>, Cyclic<2>, Cyclic<4>, Dihedral<1>, Dihedral<2>, Dihedral<4>>;

/// The centre of pixel (r, c) in the plane, y up, origin at the grid centre.
Eigen::Vector2d pixel_centre(Pixel p, std::size_t rows, std::size_t cols) {
  return {static_cast<double>(p.col) - 0.5 * static_cast<double>(cols - 1),
          0.5 * static_cast<double>(rows - 1) - static_cast<double>(p.row)};
}
}  // namespace

TEMPLATE_LIST_TEST_CASE("action: pixel grid action is a group action matching the plane", "[action][grid]",
                        GridGroups) {
  using G = TestType;
  STATIC_REQUIRE(grid_exact_v<G>);
  for (std::size_t n : {1u, 4u, 5u}) {  // even and odd sizes
    CAPTURE(G::name(), n);
    for_each_element<G>([&](auto g) {
      for (std::size_t r = 0; r < n; ++r)
        for (std::size_t c = 0; c < n; ++c) {
          const Pixel p{r, c};
          const Pixel q = act_on_pixel<G>(g, p, n, n);
          REQUIRE(q.row < n);
          REQUIRE(q.col < n);
          if constexpr (!std::same_as<G, TrivialGroup>) {
            const Eigen::Vector2d moved = G::matrix(g) * pixel_centre(p, n, n);
            REQUIRE((moved - pixel_centre(q, n, n)).norm() < 1e-12);
          }
          for_each_element<G>([&](auto h) {  // (gh) p = g (h p)
            REQUIRE(act_on_pixel<G>(G::compose(g, h), p, n, n) == act_on_pixel<G>(g, act_on_pixel<G>(h, p, n, n), n, n));
          });
        }
    });
  }
}

TEST_CASE("action: flips and half turns work on rectangles, quarter turns need squares", "[action][grid]") {
  CHECK(act_on_pixel<Dihedral<2>>(Dihedral<2>::reflection(), {0, 1}, 3, 4) == Pixel{2, 1});
  CHECK(act_on_pixel<Cyclic<2>>(Cyclic<2>::rotation(1), {0, 0}, 3, 4) == Pixel{2, 3});
  CHECK_THROWS_AS(act_on_pixel<Cyclic<4>>(Cyclic<4>::rotation(1), {0, 0}, 3, 4), shape_error);
  CHECK_THROWS_AS(act_on_pixel<Cyclic<2>>(Cyclic<2>::rotation(1), {3, 0}, 3, 4), invalid_argument);
  CHECK_THROWS_WITH(act_on_pixel<Cyclic<4>>(Cyclic<4>::rotation(1), {0, 0}, 3, 4),
                    Catch::Contains("3 x 4"));
  // A quarter turn counter-clockwise sends the top-left corner to the bottom-left.
  CHECK(act_on_pixel<Cyclic<4>>(Cyclic<4>::rotation(1), {0, 0}, 4, 4) == Pixel{3, 0});
  STATIC_REQUIRE_FALSE(grid_exact_v<Cyclic<8>>);
  STATIC_REQUIRE_FALSE(grid_exact_v<Dihedral<3>>);
}

TEST_CASE("action: images transform on their last two axes", "[action][grid]") {
  xt::xtensor<double, 3> img({2, 3, 3});
  for (std::size_t i = 0; i < img.size(); ++i) img.data()[i] = static_cast<double>(i);
  const auto r = Cyclic<4>::rotation(1);
  const auto out = act_on_image<Cyclic<4>>(r, img);
  // Channel 1, pixel (0, 0) moves to (2, 0).
  CHECK(double(out(1, 2, 0)) == double(img(1, 0, 0)));
  // Four quarter turns are the identity; a flip twice too.
  auto x = img;
  for (int k = 0; k < 4; ++k) x = act_on_image<Cyclic<4>>(r, x);
  CHECK(bool(x == img));
  const auto s = Dihedral<4>::reflection();
  CHECK(bool(act_on_image<Dihedral<4>>(s, act_on_image<Dihedral<4>>(s, img)) == img));
  // Compatible with composition: (r s) . img = r . (s . img).
  const bool composed = act_on_image<Dihedral<4>>(Dihedral<4>::compose(Dihedral<4>::rotation(1), s), img) ==
                        act_on_image<Dihedral<4>>(Dihedral<4>::rotation(1), act_on_image<Dihedral<4>>(s, img));
  CHECK(composed);
}

TEST_CASE("action: the plane and space", "[action]") {
  const Eigen::Vector2d x(1.0, 0.0);
  CHECK((act<Cyclic<4>>(Cyclic<4>::rotation(1), x) - Eigen::Vector2d(0.0, 1.0)).norm() == 0.0);  // exact
  CHECK((act<Cyclic<8>>(Cyclic<8>::rotation(1), x) - Eigen::Vector2d(std::sqrt(0.5), std::sqrt(0.5))).norm() < 1e-15);
  CHECK((act<Dihedral<3>>(Dihedral<3>::reflection(), Eigen::Vector2d(0.3, 0.7)) - Eigen::Vector2d(0.3, -0.7)).norm() == 0.0);
  // The icosahedral group maps the 12 vertices (0, +-1, +-phi) and cyclic permutations to themselves.
  const double phi = (1.0 + std::sqrt(5.0)) / 2.0;
  std::vector<Eigen::Vector3d> vertices;
  for (double a : {-1.0, 1.0})
    for (double b : {-phi, phi}) {
      vertices.emplace_back(0.0, a, b);
      vertices.emplace_back(a, b, 0.0);
      vertices.emplace_back(b, 0.0, a);
    }
  for_each_element<Icosahedral>([&](auto g) {
    for (const auto& v : vertices) {
      const Eigen::Vector3d w = act<Icosahedral>(g, v);
      double best = 1e9;
      for (const auto& u : vertices) best = std::min(best, (u - w).norm());
      REQUIRE(best < 1e-12);
    }
  });
}

TEST_CASE("action: S_N permutes indices as its natural representation", "[action]") {
  using G = Symmetric<4>;
  const std::array<int, 4> in{10, 11, 12, 13};
  std::array<int, 4> out{};
  act_on_indices<G, int>(G::long_cycle(), in, out);
  CHECK(out == std::array<int, 4>{13, 10, 11, 12});
  const auto m = rep_matrix<Natural<G>>(G::long_cycle());
  const Eigen::Vector4d v = m * Eigen::Vector4d(10, 11, 12, 13);
  for (int i = 0; i < 4; ++i) CHECK(v(i) == out[static_cast<std::size_t>(i)]);
  std::array<int, 3> small{};
  CHECK_THROWS_AS((act_on_indices<G, int>(G::identity(), in, small)), shape_error);
}
