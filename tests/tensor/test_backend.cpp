// SPDX-License-Identifier: MIT
// The CPU backend's contract: views, GEMM on views and column blocks, beta = 0 ignoring old contents (BLAS
// semantics, even when they hold NaN), and segment reductions with their adjoints.
#include <cmath>
#include <limits>
#include <vector>

#include "support.hpp"

using namespace ace;

TEST_CASE("cpu: beta = 0 overwrites outputs that hold NaN", "[backend]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor<double, 2> a = {{1.0, 2.0}, {3.0, 4.0}};
  Tensor<double, 2> c({2, 2}), v({1, 2});
  c.fill(nan);
  v.fill(nan);
  Cpu::gemm(Transpose::no, Transpose::yes, 1.0, a, a, 0.0, c);
  CHECK(bool(c == Tensor<double, 2>{{5.0, 11.0}, {11.0, 25.0}}));
  Cpu::sum_rows(a, 0.0, v);
  CHECK(bool(v == Tensor<double, 2>{{4.0, 6.0}}));
  Cpu::sum_rows(a, 1.0, v);
  CHECK(bool(v == Tensor<double, 2>{{8.0, 12.0}}));
}

TEST_CASE("cpu: GEMM on reshaped views and column blocks", "[backend]") {
  Rng rng(test::seed(31, "backend views"));
  Tensor<double, 2> x({2, 6}), wide({4, 5}), w({2, 3}), out({4, 2}), block_out({4, 2});
  for (auto& v : x) v = rng.normal();  // 2 sets of 2 elements with 3 channels: [4, 3] as a matrix
  for (auto& v : wide) v = rng.normal();
  for (auto& v : w) v = rng.normal();
  Cpu::gemm<double>(Transpose::no, Transpose::yes, 1.0, reshaped(x, 4, 3), view(w), 0.0, view(out));
  for (std::size_t r = 0; r < 4; ++r)
    for (std::size_t o = 0; o < 2; ++o) {
      double expected = 0;
      for (std::size_t c = 0; c < 3; ++c) expected += x(r / 2, (r % 2) * 3 + c) * w(o, c);
      CHECK(out(r, o) == Approx(expected).epsilon(1e-14));
    }
  Cpu::gemm<double>(Transpose::no, Transpose::yes, 1.0, view(wide).columns(1, 3), view(w), 0.0, view(block_out));
  const Eigen::MatrixXd expected = as_matrix(wide).middleCols(1, 3) * as_matrix(w).transpose();
  CHECK((as_matrix(block_out) - expected).norm() < 1e-13);
  CHECK_THROWS_AS(Cpu::gemm<double>(Transpose::no, Transpose::no, 1.0, view(wide), view(w), 0.0, view(out)),
                  shape_error);
  CHECK_THROWS_AS(reshaped(x, 5, 3), shape_error);
  CHECK_THROWS_AS(view(wide).columns(3, 3), shape_error);
}

TEST_CASE("cpu: segment reductions and their adjoints", "[backend]") {
  const Tensor<double, 2> x = {{1.0, -1.0}, {3.0, 5.0}, {2.0, 0.0}, {4.0, 4.0}};  // 2 segments of 2 rows
  Tensor<double, 2> y({2, 2});
  std::vector<std::uint32_t> arg(4);
  Cpu::segment_reduce(Reduce::sum, view(x), 2, view(y));
  CHECK(bool(y == Tensor<double, 2>{{4.0, 4.0}, {6.0, 4.0}}));
  Cpu::segment_reduce(Reduce::mean, view(x), 2, view(y));
  CHECK(bool(y == Tensor<double, 2>{{2.0, 2.0}, {3.0, 2.0}}));
  Cpu::segment_reduce(Reduce::max, view(x), 2, view(y), arg.data());
  CHECK(bool(y == Tensor<double, 2>{{3.0, 5.0}, {4.0, 4.0}}));
  CHECK(arg == std::vector<std::uint32_t>{1, 1, 1, 1});
  // <reduce(x), g> = <x, adjoint(g)> for sum and mean (the adjoint accumulates into dx).
  const Tensor<double, 2> g = {{0.5, -2.0}, {1.5, 3.0}};
  for (Reduce kind : {Reduce::sum, Reduce::mean}) {
    Tensor<double, 2> dx({4, 2});
    dx.fill(0.0);
    Cpu::segment_reduce(kind, view(x), 2, view(y));
    Cpu::segment_reduce_backward(kind, view(g), 2, nullptr, view(dx));
    CHECK(xt::sum(y * g)() == Approx(xt::sum(x * dx)()).epsilon(1e-14));
  }
  CHECK_THROWS_AS(Cpu::segment_reduce(Reduce::sum, view(x), 3, view(y)), shape_error);
  CHECK_THROWS_AS(Cpu::segment_reduce(Reduce::max, view(x), 2, view(y)), invalid_argument);  // no argmax buffer
}
