// SPDX-License-Identifier: MIT
// The contract of backend operations, on every backend: BLAS semantics of beta = 0 (old contents ignored, even NaN),
// GEMM on reshaped views and column blocks, segment reductions and their adjoints, transfers and the storage types.
#include <cmath>
#include <limits>
#include <vector>

#include "ace/tensor/eigen.hpp"
#include "backend_support.hpp"

using namespace ace;

TEMPLATE_LIST_TEST_CASE("backend: beta = 0 overwrites outputs that hold NaN", "[backend]", test::Backends) {
  using B = TestType;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const auto a = test::upload<B>(test::Host<double>{{1.0, 2.0, 3.0, 4.0}, 2, 2});
  auto c = test::upload<B>(test::Host<double>{{nan, nan, nan, nan}, 2, 2});
  auto v = test::upload<B>(test::Host<double>{{nan, nan}, 1, 2});
  B::gemm(Transpose::no, Transpose::yes, 1.0, view(a), view(a), 0.0, view(c));
  CHECK(test::download<B>(c) == std::vector<double>{5.0, 11.0, 11.0, 25.0});
  B::sum_rows(view(a), 0.0, view(v));
  CHECK(test::download<B>(v) == std::vector<double>{4.0, 6.0});
  B::sum_rows(view(a), 1.0, view(v));
  CHECK(test::download<B>(v) == std::vector<double>{8.0, 12.0});
}

TEMPLATE_LIST_TEST_CASE("backend: GEMM on reshaped views and column blocks", "[backend]", test::Backends) {
  using B = TestType;
  Rng rng(test::seed(31, "backend views"));
  // 2 sets of 2 elements with 3 channels: [2, 6] viewed as [4, 3].
  const auto hx = test::random_values<double>(2, 6, rng), hwide = test::random_values<double>(4, 5, rng);
  const auto hw = test::random_values<double>(2, 3, rng);
  const auto x = test::upload<B>(hx), wide = test::upload<B>(hwide), w = test::upload<B>(hw);
  auto out = zeros<B, double>(4, 2), block_out = zeros<B, double>(4, 2);
  B::gemm(Transpose::no, Transpose::yes, 1.0, reshaped(x, 4, 3), view(w), 0.0, view(out));
  const auto o = test::download<B>(out);
  for (std::size_t r = 0; r < 4; ++r)
    for (std::size_t k = 0; k < 2; ++k) {
      double expected = 0;
      for (std::size_t c = 0; c < 3; ++c) expected += hx.values[r * 3 + c] * hw.values[k * 3 + c];
      CHECK(o[r * 2 + k] == Approx(expected).epsilon(1e-14));
    }
  B::gemm(Transpose::no, Transpose::yes, 1.0, view(wide).columns(1, 3), view(w), 0.0, view(block_out));
  const auto bo = test::download<B>(block_out);
  for (std::size_t r = 0; r < 4; ++r)
    for (std::size_t k = 0; k < 2; ++k) {
      double expected = 0;
      for (std::size_t c = 0; c < 3; ++c) expected += hwide.values[r * 5 + 1 + c] * hw.values[k * 3 + c];
      CHECK(bo[r * 2 + k] == Approx(expected).epsilon(1e-14));
    }
  CHECK_THROWS_AS(B::gemm(Transpose::no, Transpose::no, 1.0, view(wide), view(w), 0.0, view(out)), shape_error);
  CHECK_THROWS_AS(reshaped(x, 5, 3), shape_error);
  CHECK_THROWS_AS(view(wide).columns(3, 3), shape_error);
  CHECK_THROWS_AS(view(wide).row_range(3, 2), shape_error);
}

TEMPLATE_LIST_TEST_CASE("backend: segment reductions and their adjoints", "[backend]", test::Backends) {
  using B = TestType;
  const auto x = test::upload<B>(test::Host<double>{{1.0, -1.0, 3.0, 5.0, 2.0, 0.0, 4.0, 4.0}, 4, 2});  // 2 segments
  auto y = zeros<B, double>(2, 2);
  auto arg = zeros<B, std::uint32_t>(2, 2);
  B::segment_reduce(Reduce::sum, view(x), 2, view(y));
  CHECK(test::download<B>(y) == std::vector<double>{4.0, 4.0, 6.0, 4.0});
  B::segment_reduce(Reduce::mean, view(x), 2, view(y));
  CHECK(test::download<B>(y) == std::vector<double>{2.0, 2.0, 3.0, 2.0});
  B::segment_reduce(Reduce::max, view(x), 2, view(y), view(arg));
  CHECK(test::download<B>(y) == std::vector<double>{3.0, 5.0, 4.0, 4.0});
  CHECK(test::download<B>(arg) == std::vector<std::uint32_t>{1, 1, 1, 1});  // the first on ties
  // <reduce(x), g> = <x, adjoint(g)> for sum and mean (the adjoint accumulates into dx).
  const auto g = test::upload<B>(test::Host<double>{{0.5, -2.0, 1.5, 3.0}, 2, 2});
  for (Reduce kind : {Reduce::sum, Reduce::mean}) {
    auto dx = zeros<B, double>(4, 2);
    B::segment_reduce(kind, view(x), 2, view(y));
    B::segment_reduce_backward(kind, view(g), 2, {}, view(dx));
    CHECK(B::dot(view(y), view(g)) == Approx(B::dot(view(x), view(dx))).epsilon(1e-14));
  }
  CHECK_THROWS_AS(B::segment_reduce(Reduce::sum, view(x), 3, view(y)), shape_error);
  CHECK_THROWS_AS(B::segment_reduce(Reduce::max, view(x), 2, view(y)), shape_error);  // no argmax of y's shape
}

TEMPLATE_LIST_TEST_CASE("backend: storage, views and transfers", "[backend]", test::Backends) {
  using B = TestType;
  STATIC_REQUIRE(Backend<B>);
  STATIC_REQUIRE(DenseStorage<tensor_t<B, float, 4>>);
  STATIC_REQUIRE(rank_v<tensor_t<B, double, 3>> == 3);
  auto t = zeros<B, float>(3, 4);
  CHECK(t.size() == 12);
  CHECK(test::download<B>(t) == std::vector<float>(12, 0.f));
  ensure_shape(t, 2, 6);  // same size, new shape
  CHECK(view(t).rows == 2);
  CHECK(view(t).cols == 6);
  const std::vector<float> host{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  from_host_vector<B>(host, flat(t));
  CHECK(to_host_vector<B>(view(t).columns(4, 2)) == std::vector<float>{5, 6, 11, 12});
  CHECK(to_host_vector<B>(flat(t).slice(3, 2)) == std::vector<float>{4, 5});
  const Tensor<float, 2> round = to_host_tensor<B>(to_backend<B>(to_host_tensor<B>(t)));
  CHECK(std::vector<float>(round.begin(), round.end()) == host);
  CHECK_THROWS_AS(flat(t).slice(11, 2), shape_error);
}
