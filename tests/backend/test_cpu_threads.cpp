// SPDX-License-Identifier: MIT
// The Cpu backend's parallel elementwise operations, bias gradients (sum_rows), optimiser updates and fused dense
// operations (GEMM epilogues) on shapes large enough to split across threads: against the Reference backend (the
// fused operations against gemm, add_row and map there), and the same bits with 1 and 2 threads.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <span>
#include <vector>

#include "ace/backend/dense_fused.hpp"
#include "backend_support.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

using namespace ace;
using test::Host;
using test::random_values;

namespace {

/// Runs `run(std::type_identity<B>)` (host vectors out) on Reference, and on Cpu with 1 and then 2 OpenMP threads:
/// Cpu within 1e-5 (relative to the largest reference entry) of Reference in float, 1e-12 in double, and the two
/// thread counts bit for bit.
template <class T, class Run>
void same_on_threads(const char* what, Run&& run) {
  INFO(what);
  const std::vector<T> expected = run(std::type_identity<Reference>{});
#if defined(_OPENMP)
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<T> one = run(std::type_identity<Cpu>{});
  omp_set_num_threads(2);
  const std::vector<T> two = run(std::type_identity<Cpu>{});
  omp_set_num_threads(saved);
  REQUIRE(one.size() == two.size());
  std::size_t differing = 0;  // entries whose bits differ
  for (std::size_t i = 0; i < one.size(); ++i) differing += std::memcmp(&one[i], &two[i], sizeof(T)) != 0;
  CHECK(differing == 0);
#else
  const std::vector<T> one = run(std::type_identity<Cpu>{});
#endif
  REQUIRE(one.size() == expected.size());
  double scale = 1e-300, gap = 0.0;
  for (std::size_t i = 0; i < one.size(); ++i) {
    scale = std::max(scale, std::abs(static_cast<double>(expected[i])));
    gap = std::max(gap, std::abs(static_cast<double>(expected[i]) - static_cast<double>(one[i])));
  }
  CHECK(gap / scale <= (std::is_same_v<T, float> ? 1e-5 : 1e-12));
}

}  // namespace

TEST_CASE("Cpu: bias gradients (sum_rows) over one and several row blocks", "[backend][threads]") {
  Rng rng(test::seed(5, "cpu sum_rows"));
  test::for_each_scalar([&]<class T>(std::type_identity<T>) {
    // one block, exactly two, several with a ragged last one, narrow and wide rows
    for (const auto& shape : {std::pair<std::size_t, std::size_t>{200, 64}, {512, 33}, {2000, 64}, {4099, 3},
                              {700, 257}}) {
      const std::size_t rows = shape.first, cols = shape.second;  // named: lambdas below capture them
      const Host<T> a = random_values<T>(rows, cols, rng), v0 = random_values<T>(1, cols, rng);
      for (const T beta : {T(0), T(1), T(0.5)}) {
        same_on_threads<T>("sum_rows", [&]<class B>(std::type_identity<B>) {
          auto ta = test::upload<B>(a);
          auto v = test::upload<B>(v0);
          if (beta == T(0)) B::fill(view(v), std::numeric_limits<T>::quiet_NaN());  // beta = 0 ignores it
          B::sum_rows(view(std::as_const(ta)), beta, view(v));
          return test::download<B>(v);
        });
      }
    }
  });
}

TEST_CASE("Cpu: SiLU, its backward pass, bias rows and sums on blocks of rows", "[backend][threads]") {
  Rng rng(test::seed(6, "cpu elementwise"));
  test::for_each_scalar([&]<class T>(std::type_identity<T>) {
    for (const auto& shape : {std::pair<std::size_t, std::size_t>{3001, 64}, {2999, 7}, {40, 5}}) {
      const std::size_t rows = shape.first, cols = shape.second;
      const Host<T> x = random_values<T>(rows, cols, rng), dy = random_values<T>(rows, cols, rng);
      const Host<T> b = random_values<T>(1, cols, rng);
      same_on_threads<T>("map, map_backward, add_row, add", [&]<class B>(std::type_identity<B>) {
        auto tx = test::upload<B>(x);
        auto tdy = test::upload<B>(dy);
        auto tb = test::upload<B>(b);
        auto y = zeros<B, T>(rows, cols), dx = zeros<B, T>(rows, cols), s = zeros<B, T>(rows, cols);
        B::template map<SiLUOp>(view(std::as_const(tx)), view(y));
        B::template map_backward<SiLUOp>(view(std::as_const(tx)), view(std::as_const(y)), view(std::as_const(tdy)),
                                         view(dx));
        B::add(view(std::as_const(y)), view(std::as_const(dx)), view(s));
        B::add_row(view(s), view(std::as_const(tb)));
        std::vector<T> out = test::download<B>(y);
        for (const auto* t : {&dx, &s})
          for (T v : test::download<B>(*t)) out.push_back(v);
        return out;
      });
      // a strided view: the middle columns of a wider matrix, row by row
      same_on_threads<T>("map on a strided view", [&]<class B>(std::type_identity<B>) {
        auto tx = test::upload<B>(x);
        auto y = zeros<B, T>(rows, cols);
        const auto inner = view(std::as_const(tx)).columns(1, cols - 2);
        B::template map<SiLUOp>(inner, view(y).columns(1, cols - 2));
        return test::download<B>(y);
      });
    }
  });
}

TEST_CASE("Cpu: Adam on one large tensor and on many at once, and zeroing many", "[backend][threads]") {
  Rng rng(test::seed(7, "cpu adam"));
  test::for_each_scalar([&]<class T>(std::type_identity<T>) {
    // sizes: empty, one entry, small, and tensors larger than one thread's piece
    const std::vector<std::size_t> sizes{50000, 0, 1, 300, 70001, 64, 4096};
    std::vector<Host<T>> values, grads;
    for (std::size_t n : sizes) {
      values.push_back(random_values<T>(1, n, rng));
      grads.push_back(random_values<T>(1, n, rng));
    }
    const auto step = [](std::size_t k) {  // learning rates, plain and decoupled weight decay, none
      return AdamStep{1e-2 * static_cast<double>(1 + k % 3), 0.9, 0.99, 1e-8, k % 2 ? 0.1 : 0.0, k % 4 == 1};
    };
    for (const bool many : {false, true}) {
      same_on_threads<T>(many ? "adam_update_many, fill_many" : "adam_update", [&]<class B>(std::type_identity<B>) {
        std::vector<tensor_t<B, T, 2>> v, g, m, u;
        for (std::size_t k = 0; k < sizes.size(); ++k) {
          v.push_back(test::upload<B>(values[k]));
          g.push_back(test::upload<B>(grads[k]));
          m.push_back(zeros<B, T>(1, sizes[k]));
          u.push_back(zeros<B, T>(1, sizes[k]));
        }
        auto count = zeros<B, double>(1, 1);
        for (int t = 1; t <= 3; ++t) {
          B::fill(view(count), static_cast<double>(t));
          if constexpr (std::is_same_v<B, Cpu>) {
            if (many) {
              std::vector<AdamTensor<T>> list;
              for (std::size_t k = 0; k < sizes.size(); ++k)
                list.push_back({v[k].data(), g[k].data(), m[k].data(), u[k].data(), sizes[k], step(k)});
              B::adam_update_many(std::span<const AdamTensor<T>>(list), view(std::as_const(count)));
              continue;
            }
          }
          for (std::size_t k = 0; k < sizes.size(); ++k)
            B::adam_update(view(v[k]), view(std::as_const(g[k])), view(m[k]), view(u[k]), step(k),
                           view(std::as_const(count)));
        }
        if constexpr (std::is_same_v<B, Cpu>) {
          if (many) {
            std::vector<VectorRef<T>> all;
            for (auto& t : g) all.push_back(flat(t));
            B::fill_many(std::span<const VectorRef<T>>(all), T(0));
          }
        }
        if (!many || !std::is_same_v<B, Cpu>)
          for (auto& t : g) B::fill(view(t), T(0));
        std::vector<T> out;
        for (const auto* list : {&v, &m, &u, &g})
          for (const auto& t : *list)
            for (T x : test::download<B>(t)) out.push_back(x);
        return out;
      });
    }
  });
}

namespace {
struct FusedCase {
  std::size_t m, n, k;
  Transpose ta, tb;
};

/// The fused forward (z, y) and backward (d) for activation Op on one case, operands as column blocks of wider
/// matrices (strided views): with and without bias and beta 0 (over NaN) and 1 where `every_epilogue`, else with
/// bias and beta 1 (the activations' own formulas are what such a case adds).
template <class Op, class T>
void check_fused(const FusedCase& fc, Rng& rng, bool every_epilogue = true) {
  constexpr std::size_t pad = 3;
  const std::size_t ar = fc.ta == Transpose::no ? fc.m : fc.k, ac = fc.ta == Transpose::no ? fc.k : fc.m;
  const std::size_t br = fc.tb == Transpose::no ? fc.k : fc.n, bc = fc.tb == Transpose::no ? fc.n : fc.k;
  const Host<T> a = random_values<T>(ar, ac + pad, rng), b = random_values<T>(br, bc + pad, rng);
  const Host<T> bias = random_values<T>(1, fc.n, rng), z0 = random_values<T>(fc.m, fc.n + pad, rng);
  const Host<T> x = random_values<T>(fc.m, fc.n, rng);
  for (const bool with_bias : {true, false})
    for (const T beta : {T(0), T(1)}) {
      if (!every_epilogue && (!with_bias || beta == T(0))) continue;
      INFO("m " << fc.m << " n " << fc.n << " k " << fc.k << " ta " << (fc.ta == Transpose::yes) << " tb "
                << (fc.tb == Transpose::yes) << " bias " << with_bias << " beta " << beta);
      same_on_threads<T>("gemm_bias_act, gemm_act_grad", [&]<class B>(std::type_identity<B>) {
        auto ta_ = test::upload<B>(a);
        auto tb_ = test::upload<B>(b);
        auto tbias = test::upload<B>(bias);
        auto z = test::upload<B>(z0);
        auto d = test::upload<B>(z0);
        auto tx = test::upload<B>(x);
        auto y = zeros<B, T>(fc.m, fc.n), fx = zeros<B, T>(fc.m, fc.n);
        const auto av = view(std::as_const(ta_)).columns(0, ac), bv = view(std::as_const(tb_)).columns(0, bc);
        const auto zv = view(z).columns(0, fc.n), dv = view(d).columns(0, fc.n);
        if (beta == T(0)) {  // beta = 0 ignores the old contents, NaN included
          B::fill(zv, std::numeric_limits<T>::quiet_NaN());
          if constexpr (!std::is_same_v<Op, NoActivation>) B::fill(dv, std::numeric_limits<T>::quiet_NaN());
        }
        const MatrixRef<const T> bias_view = with_bias ? view(std::as_const(tbias)) : MatrixRef<const T>{};
        if constexpr (!std::is_same_v<Op, NoActivation>) {
          B::template map<Op>(view(std::as_const(tx)), view(fx));  // y = Op(x) for the backward pass
          gemm_bias_act<Op, B, T>(fc.ta, fc.tb, T(0.75), av, bv, beta, bias_view, zv, view(y));
          gemm_act_grad<Op, B, T>(fc.ta, fc.tb, T(0.75), av, bv, beta, view(std::as_const(tx)),
                                  view(std::as_const(fx)), dv);
        } else {
          gemm_bias_act<Op, B, T>(fc.ta, fc.tb, T(0.75), av, bv, beta, bias_view, zv, {});
        }
        std::vector<T> out = test::download<B>(z);
        for (const auto* t : {&y, &d})
          for (T v : test::download<B>(*t)) out.push_back(v);
        return out;
      });
    }
}
}  // namespace

TEST_CASE("Cpu: fused dense operations equal gemm, add_row and map (and map_backward) on Reference",
          "[backend][threads][fused]") {
  Rng rng(test::seed(8, "cpu fused dense"));
  // below the size that forks, several row blocks (EGNN-like), few rows and many columns (column blocks), every
  // transposition; short inner dimensions (the blocks, hence the epilogues, depend on the output's shape alone) keep
  // the Reference products cheap under the sanitizers
  const std::vector<FusedCase> cases{{7, 5, 3, Transpose::no, Transpose::yes},
                                     {520, 64, 40, Transpose::no, Transpose::yes},
                                     {300, 200, 7, Transpose::no, Transpose::no},
                                     {600, 70, 5, Transpose::yes, Transpose::no},
                                     {90, 130, 11, Transpose::yes, Transpose::yes}};
  test::for_each_scalar([&]<class T>(std::type_identity<T>) {
    for (std::size_t i = 0; i < cases.size(); ++i) {
      check_fused<SiLUOp, T>(cases[i], rng);
      check_fused<NoActivation, T>(cases[i], rng, i % 2 == 0);
    }
    check_fused<ReLUOp, T>(cases[3], rng, false);
    check_fused<GELUOp, T>(cases[2], rng, false);
    check_fused<TanhOp, T>(cases[3], rng, false);
  });
  // the epilogue after each float GEMM implementation this build and CPU have
  const CpuGemm before = cpu_gemm();
  for (const CpuGemm g : {CpuGemm::eigen, CpuGemm::onednn, CpuGemm::ace, CpuGemm::libxsmm}) {
    if ((g == CpuGemm::onednn && !onednn_available()) || (g == CpuGemm::ace && !simd_kernels_available()) ||
        (g == CpuGemm::libxsmm && !libxsmm_available()))
      continue;
    set_cpu_gemm(g);
    check_fused<SiLUOp, float>(cases[1], rng, g == CpuGemm::ace);
    check_fused<SiLUOp, float>({20, 28, 1100, Transpose::yes, Transpose::no}, rng, false);  // one block: inner slabs
  }
  set_cpu_gemm(before);
}
