// SPDX-License-Identifier: MIT
// The conformance battery: every operation of the Backend concept on every backend of the list against the Reference
// backend, on random shapes (ragged ones, strided views, padding and strides for convolutions), float and double:
// 1e-12 relative (to the largest entry of the reference result) in double, 1e-5 in float; indices exactly. A new
// backend passes by joining ConformingBackends. Built again for the CUDA backend (cuda_backend) and for its kernels'
// host emulation (emulated_backend), each alone in the list (tests/CMakeLists.txt).
#include <cstdint>
#include <type_traits>
#include <vector>

#include "ace/nn/steerable/tensor_product.hpp"
#include "backend_support.hpp"

using namespace ace;

namespace {
#if defined(ACE_TEST_BACKEND_CUDA) || defined(ACE_TEST_BACKEND_EMULATION)
using ConformingBackends = std::tuple<test::Device>;  // the CUDA backend, or its kernels' host emulation
#else
using ConformingBackends = std::tuple<Cpu>;
#endif
using test::Host;
using test::random_values;

template <class T>
double tolerance() {
  return std::is_same_v<T, float> ? 1e-5 : 1e-12;
}

/// max |a - b| / max(1e-300, max |reference|).
template <class T>
double relative_gap(const std::vector<T>& reference, const std::vector<T>& other) {
  REQUIRE(reference.size() == other.size());
  double scale = 1e-300, gap = 0.0;
  for (std::size_t i = 0; i < reference.size(); ++i) {
    scale = std::max(scale, std::abs(static_cast<double>(reference[i])));
    gap = std::max(gap, std::abs(static_cast<double>(reference[i]) - static_cast<double>(other[i])));
  }
  return gap / scale;
}

/// Runs `op(std::type_identity<Bk>)` on Reference and on B; each returns a tuple of host vectors (outputs) that must
/// agree: floating-point ones within the tolerance of T, indices exactly.
template <class B, class T, class Op>
void agree(const char* what, Op&& op) {
  const auto expected = op(std::type_identity<Reference>{});
  const auto actual = op(std::type_identity<B>{});
  std::apply(
      [&](const auto&... e) {
        std::apply(
            [&](const auto&... a) {
              std::size_t k = 0;
              (
                  [&](const auto& ev, const auto& av) {
                    using V = typename std::decay_t<decltype(ev)>::value_type;
                    INFO(what << ", output " << k++ << " (" << B::name << " against Reference)");
                    if constexpr (std::is_floating_point_v<V>) CHECK(relative_gap(ev, av) <= tolerance<T>());
                    else CHECK(ev == av);
                  }(e, a),
                  ...);
            },
            actual);
      },
      expected);
}

template <class T>
using Types = std::tuple<T>;
}  // namespace

TEMPLATE_LIST_TEST_CASE("conformance: storage, transfers and vector operations", "[backend][conformance]",
                        ConformingBackends) {
  using B = TestType;
  Rng rng(test::seed(1, "conformance storage"));
  test::for_each_scalar([&]<class T>(std::type_identity<T>) {
    for (const auto& shape : {std::pair<std::size_t, std::size_t>{1, 1}, {3, 7}, {17, 5}, {64, 33}}) {
      const std::size_t rows = std::get<0>(shape), cols = std::get<1>(shape);
      const Host<T> x = random_values<T>(rows, cols + 2, rng), y = random_values<T>(rows, cols + 2, rng);
      const Host<T> s = random_values<T>(1, 1, rng);
      agree<B, T>("fill, copy, axpy, scale, add on column blocks", [&]<class Bk>(std::type_identity<Bk>) {
        auto a = test::upload<Bk>(x), b = test::upload<Bk>(y), c = test::upload<Bk>(y);
        Bk::copy(view(std::as_const(a)).columns(1, cols), view(b).columns(0, cols));
        Bk::axpy(T(0.75), view(std::as_const(a)).columns(2, cols), view(b).columns(1, cols));
        Bk::scale(T(-1.5), view(b).columns(2, cols));
        Bk::add(view(std::as_const(a)).columns(0, cols), view(std::as_const(b)).columns(1, cols), view(c).columns(1, cols));
        Bk::fill(view(c).columns(0, 1), T(3));
        return std::tuple{test::download<Bk>(b), test::download<Bk>(c)};
      });
      agree<B, T>("scalars in backend memory", [&]<class Bk>(std::type_identity<Bk>) {
        auto a = test::upload<Bk>(x), b = test::upload<Bk>(y), c = test::upload<Bk>(y), g = test::upload<Bk>(s), acc = test::upload<Bk>(s);
        Bk::add_scaled(view(std::as_const(g)), view(std::as_const(a)), view(b));
        Bk::scaled_copy(view(std::as_const(g)), view(std::as_const(a)).columns(1, cols), view(c).columns(0, cols));
        Bk::accumulate_dot(view(std::as_const(a)).columns(1, cols), view(std::as_const(b)).columns(2, cols), view(acc));
        return std::tuple{test::download<Bk>(b), test::download<Bk>(c), test::download<Bk>(acc)};
      });
      agree<B, T>("reductions", [&]<class Bk>(std::type_identity<Bk>) {
        auto a = test::upload<Bk>(x), b = test::upload<Bk>(y);
        const auto va = view(std::as_const(a)).columns(1, cols), vb = view(std::as_const(b)).columns(0, cols);
        return std::tuple{std::vector<double>{Bk::sum(va), Bk::dot(va, vb), Bk::sum_squares(va), Bk::max_abs(vb)}};
      });
      agree<B, T>("reductions into backend memory, clipping by a norm there", [&]<class Bk>(std::type_identity<Bk>) {
        auto a = test::upload<Bk>(x), b = test::upload<Bk>(y), c = test::upload<Bk>(y);
        const auto va = view(std::as_const(a)).columns(1, cols), vb = view(std::as_const(b)).columns(0, cols);
        auto acc = zeros<Bk, double>(1, 5);
        Bk::fill(view(acc), 0.25);
        Bk::fill(view(acc).columns(4, 1), -1e300);
        Bk::reduce_into(Accumulate::max, va, view(acc).columns(4, 1));
        Bk::reduce_into(Accumulate::sum, va, view(acc).columns(0, 1));
        Bk::reduce_into(Accumulate::sum_squares, va, view(acc).columns(1, 1));
        Bk::reduce_into(Accumulate::sum_squares, vb, view(acc).columns(1, 1));  // accumulates
        Bk::reduce_into(Accumulate::max_abs, vb, view(acc).columns(2, 1));
        Bk::reduce_into(Accumulate::max_abs, va.columns(0, 0), view(acc).columns(3, 1));  // empty: unchanged
        const double sq = Bk::sum_squares(va);
        auto small = test::upload<Bk>(Host<double>{{4.0 * sq}, 1, 1}), large = test::upload<Bk>(Host<double>{{sq}, 1, 1});
        Bk::scale_to_norm(view(std::as_const(small)), std::sqrt(sq), view(c).columns(0, cols));  // halves
        Bk::scale_to_norm(view(std::as_const(large)), 2.0 * std::sqrt(sq), view(c).columns(1, cols));  // unchanged
        return std::tuple{test::download<Bk>(acc), test::download<Bk>(c)};
      });
      agree<B, T>("transfers of strided views", [&]<class Bk>(std::type_identity<Bk>) {
        auto a = test::upload<Bk>(x);
        std::vector<T> host(rows * cols);
        Bk::to_host(MatrixRef<const T>(view(a).columns(1, cols)), std::span<T>(host));
        for (auto& v : host) v = v * T(2) + T(1);
        Bk::from_host(std::span<const T>(host), view(a).columns(2, cols));
        return std::tuple{host, test::download<Bk>(a)};
      });
    }
  });
}

TEMPLATE_LIST_TEST_CASE("conformance: GEMM, bias, row dots and elementwise maps", "[backend][conformance]",
                        ConformingBackends) {
  using B = TestType;
  Rng rng(test::seed(2, "conformance dense"));
  test::for_each_scalar([&]<class T>(std::type_identity<T>) {
    for (const auto& shape : {std::tuple<std::size_t, std::size_t, std::size_t>{1, 1, 1}, {5, 3, 7}, {33, 65, 17},
                                 {70, 9, 130}, {1000, 2, 3}}) {  // 1000 rows: sum_rows in two passes on KernelOps
      const std::size_t m = std::get<0>(shape), k = std::get<1>(shape), n = std::get<2>(shape);
      for (Transpose ta : {Transpose::no, Transpose::yes})
        for (Transpose tb : {Transpose::no, Transpose::yes})
          for (const T beta : {T(0), T(1), T(-0.5)}) {
            const Host<T> a = ta == Transpose::no ? random_values<T>(m, k + 1, rng) : random_values<T>(k, m + 1, rng);
            const Host<T> b = tb == Transpose::no ? random_values<T>(k, n, rng) : random_values<T>(n, k, rng);
            const Host<T> c = random_values<T>(m, n + 3, rng);
            agree<B, T>("gemm on strided views", [&]<class Bk>(std::type_identity<Bk>) {
              auto ta_ = test::upload<Bk>(a), tb_ = test::upload<Bk>(b), tc = test::upload<Bk>(c);
              const auto va = view(std::as_const(ta_)).columns(0, ta == Transpose::no ? k : m);
              Bk::gemm(ta, tb, T(1.25), va, view(std::as_const(tb_)), beta, view(tc).columns(2, n));
              return std::tuple{test::download<Bk>(tc)};
            });
          }
      const Host<T> x = random_values<T>(m, n, rng), y = random_values<T>(m, n, rng), v = random_values<T>(1, n, rng);
      agree<B, T>("add_row, sum_rows, row_dot", [&]<class Bk>(std::type_identity<Bk>) {
        auto tx = test::upload<Bk>(x), ty = test::upload<Bk>(y), tv = test::upload<Bk>(v), tw = test::upload<Bk>(v), dots = zeros<Bk, T>(m, 1);
        Bk::add_row(view(tx), view(std::as_const(tv)));
        Bk::sum_rows(view(std::as_const(ty)), T(1), view(tv));
        Bk::sum_rows(view(std::as_const(ty)), T(0), view(tw));
        Bk::row_dot(view(std::as_const(tx)), view(std::as_const(ty)), view(dots));
        return std::tuple{test::download<Bk>(tx), test::download<Bk>(tv), test::download<Bk>(tw),
                          test::download<Bk>(dots)};
      });
      const auto maps = [&]<class Op>(std::type_identity<Op>, const char* what) {
        agree<B, T>(what, [&]<class Bk>(std::type_identity<Bk>) {
          auto tx = test::upload<Bk>(x), ty = zeros<Bk, T>(m, n), tg = test::upload<Bk>(y), tdx = zeros<Bk, T>(m, n);
          Bk::template map<Op>(view(std::as_const(tx)), view(ty));
          Bk::template map_backward<Op>(view(std::as_const(tx)), view(std::as_const(ty)), view(std::as_const(tg)),
                                        view(tdx));
          Bk::template map_backward<Op>(view(std::as_const(tx)), view(std::as_const(ty)), view(std::as_const(tg)),
                                        view(tg));  // in place: dx = dy
          return std::tuple{test::download<Bk>(ty), test::download<Bk>(tdx), test::download<Bk>(tg)};
        });
      };
      maps(std::type_identity<ReLUOp>{}, "map relu");
      maps(std::type_identity<SiLUOp>{}, "map silu");
      maps(std::type_identity<GELUOp>{}, "map gelu");
      maps(std::type_identity<TanhOp>{}, "map tanh");
      maps(std::type_identity<SigmoidOp>{}, "map sigmoid");
    }
  });
}

TEMPLATE_LIST_TEST_CASE("conformance: sparse maps, gathers, segment reductions, pair layers", "[backend][conformance]",
                        ConformingBackends) {
  using B = TestType;
  Rng rng(test::seed(3, "conformance sets"));
  test::for_each_scalar([&]<class T>(std::type_identity<T>) {
    for (const auto& shape : {std::tuple<std::size_t, std::size_t, std::size_t>{1, 3, 5}, {4, 11, 2}, {9, 7, 30}}) {
      const std::size_t rows = std::get<0>(shape), in = std::get<1>(shape), out = std::get<2>(shape);
      std::vector<std::uint32_t> first{0}, index;
      std::vector<T> weights;
      for (std::size_t j = 0; j < out; ++j) {
        const std::size_t count = rng.below(4);  // 0 to 3 entries per output column
        for (std::size_t e = 0; e < count; ++e) {
          index.push_back(static_cast<std::uint32_t>(rng.below(in)));
          weights.push_back(static_cast<T>(rng.normal()));
        }
        first.push_back(static_cast<std::uint32_t>(index.size()));
      }
      const Host<T> x = random_values<T>(rows, in, rng), dy = random_values<T>(rows, out, rng);
      agree<B, T>("sparse_map and its adjoint", [&]<class Bk>(std::type_identity<Bk>) {
        auto f = index_tensor<Bk>(first), i = index_tensor<Bk>(index);
        auto w = test::upload<Bk>(Host<T>{weights, 1, weights.size()});
        auto tx = test::upload<Bk>(x), ty = zeros<Bk, T>(rows, out), tdy = test::upload<Bk>(dy), tdx = test::upload<Bk>(x);
        Bk::sparse_map(view(std::as_const(f)), view(std::as_const(i)), view(std::as_const(w)), view(std::as_const(tx)),
                       view(ty));
        Bk::sparse_map_adjoint(view(std::as_const(f)), view(std::as_const(i)), view(std::as_const(w)),
                               view(std::as_const(tdy)), view(tdx));
        return std::tuple{test::download<Bk>(ty), test::download<Bk>(tdx)};
      });
      std::vector<std::uint32_t> picks(out);
      for (auto& p : picks) p = static_cast<std::uint32_t>(rng.below(rows));
      const Host<T> src = random_values<T>(rows, in, rng), moved = random_values<T>(out, in, rng);
      agree<B, T>("gather_rows and scatter_add_rows", [&]<class Bk>(std::type_identity<Bk>) {
        auto idx = index_tensor<Bk>(picks);
        auto ts = test::upload<Bk>(src), td = zeros<Bk, T>(out, in), tm = test::upload<Bk>(moved), acc = test::upload<Bk>(src);
        Bk::gather_rows(view(std::as_const(ts)), view(std::as_const(idx)), view(td));
        Bk::scatter_add_rows(view(std::as_const(tm)), view(std::as_const(idx)), view(acc));
        return std::tuple{test::download<Bk>(td), test::download<Bk>(acc)};
      });
    }
    for (const auto& shape : {std::tuple<std::size_t, std::size_t, std::size_t>{1, 1, 1}, {3, 5, 7}, {40, 8, 130}}) {
      const std::size_t batch = std::get<0>(shape), segment = std::get<1>(shape), cols = std::get<2>(shape);
      for (Reduce kind : {Reduce::sum, Reduce::mean, Reduce::max}) {
        const Host<T> x = random_values<T>(batch * segment, cols, rng), dy = random_values<T>(batch, cols, rng);
        agree<B, T>("segment_reduce and its adjoint", [&]<class Bk>(std::type_identity<Bk>) {
          auto tx = test::upload<Bk>(x), ty = zeros<Bk, T>(batch, cols), tdy = test::upload<Bk>(dy), tdx = test::upload<Bk>(x);
          auto arg = zeros<Bk, std::uint32_t>(batch, cols);
          Bk::segment_reduce(kind, view(std::as_const(tx)), segment, view(ty), view(arg));
          Bk::segment_reduce_backward(kind, view(std::as_const(tdy)), segment, view(std::as_const(arg)), view(tdx));
          return std::tuple{test::download<Bk>(ty), test::download<Bk>(tdx), test::download<Bk>(arg)};
        });
      }
    }
    for (const auto& shape : {std::tuple<std::size_t, std::size_t, std::size_t>{1, 1, 1}, {2, 4, 3}, {7, 6, 5}}) {
      const std::size_t batch = std::get<0>(shape), n = std::get<1>(shape), f = std::get<2>(shape);
      for (bool mean : {false, true}) {
        const Host<T> x = random_values<T>(batch, n * n * f, rng), y = random_values<T>(batch, n * n * f, rng);
        const Host<T> u = random_values<T>(batch * n, 3 * f, rng), q = random_values<T>(batch, 2 * f, rng);
        agree<B, T>("pair_transpose, pair_pool, pair_broadcast", [&]<class Bk>(std::type_identity<Bk>) {
          auto tx = test::upload<Bk>(x), t1 = test::upload<Bk>(y), t2 = test::upload<Bk>(y), tu = test::upload<Bk>(u), tq = test::upload<Bk>(q);
          auto tv = zeros<Bk, T>(batch * n, 3 * f), ts = zeros<Bk, T>(batch, 2 * f);
          Bk::pair_transpose(view(std::as_const(tx)), n, view(t1), mean);
          Bk::pair_pool(view(std::as_const(tx)), n, mean, view(tv), view(ts));
          Bk::pair_broadcast(view(std::as_const(tu)), view(std::as_const(tq)), n, T(0.5), T(-2), T(1.5), view(t2));
          return std::tuple{test::download<Bk>(t1), test::download<Bk>(tv), test::download<Bk>(ts),
                            test::download<Bk>(t2)};
        });
      }
    }
  });
}

TEMPLATE_LIST_TEST_CASE("conformance: fields, batch norm, vectors", "[backend][conformance]", ConformingBackends) {
  using B = TestType;
  Rng rng(test::seed(4, "conformance fields"));
  test::for_each_scalar([&]<class T>(std::type_identity<T>) {
    const std::vector<std::uint32_t> offsets{0, 3, 4, 9, 11};
    for (std::size_t batch : {1u, 5u, 70u}) {
      const Host<T> x = random_values<T>(batch, 11, rng), dy = random_values<T>(batch, 11, rng);
      const Host<T> bias = random_values<T>(1, 4, rng), gx = random_values<T>(batch, 15, rng);
      agree<B, T>("norm nonlinearity and gates", [&]<class Bk>(std::type_identity<Bk>) {
        auto off = index_tensor<Bk>(offsets);
        auto tx = test::upload<Bk>(x), tb = test::upload<Bk>(bias), tdy = test::upload<Bk>(dy), tg = test::upload<Bk>(gx);
        auto norm = zeros<Bk, T>(batch, 4), y = zeros<Bk, T>(batch, 11), dx = zeros<Bk, T>(batch, 11);
        auto db = zeros<Bk, T>(batch, 4), gate = zeros<Bk, T>(batch, 4), gy = zeros<Bk, T>(batch, 11);
        auto gdx = zeros<Bk, T>(batch, 15);
        const auto o = view(std::as_const(off));
        Bk::template norm_nonlinearity<SiLUOp>(view(std::as_const(tx)), o, view(std::as_const(tb)), T(1e-6),
                                               view(norm), view(y));
        Bk::template norm_nonlinearity_backward<SiLUOp>(view(std::as_const(tx)), o, view(std::as_const(tb)),
                                                        view(std::as_const(norm)), view(std::as_const(tdy)), view(dx),
                                                        view(db));
        Bk::gate_fields(view(std::as_const(tg)), o, view(gate), view(gy));
        Bk::gate_fields_backward(view(std::as_const(tg)), o, view(std::as_const(gate)), view(std::as_const(tdy)),
                                 view(gdx));
        return std::tuple{test::download<Bk>(norm), test::download<Bk>(y), test::download<Bk>(dx),
                          test::download<Bk>(db), test::download<Bk>(gate), test::download<Bk>(gy),
                          test::download<Bk>(gdx)};
      });
    }
    const std::vector<std::uint32_t> field_of{0, 0, 1, 2, 2, 2};
    for (const auto& shape : {std::pair<std::size_t, std::size_t>{2, 1}, {7, 5}, {3, 16}}) {
      const std::size_t outer = std::get<0>(shape), inner = std::get<1>(shape);
      for (bool training : {true, false}) {
        const FieldLayout l{outer, 6, inner, 3};
        const Host<T> x = random_values<T>(outer, 6 * inner, rng), dy = random_values<T>(outer, 6 * inner, rng);
        const Host<T> w = random_values<T>(1, 3, rng), b = random_values<T>(1, 3, rng);
        agree<B, T>("batch norm statistics, forward and backward", [&]<class Bk>(std::type_identity<Bk>) {
          auto fo = index_tensor<Bk>(field_of);
          auto tx = test::upload<Bk>(x), tdy = test::upload<Bk>(dy), tw = test::upload<Bk>(w), tb = test::upload<Bk>(b);
          auto rm = zeros<Bk, double>(1, 3), rv = zeros<Bk, double>(1, 3);
          Bk::fill(view(rv), 1.5);
          auto mean = zeros<Bk, T>(1, 3), inv = zeros<Bk, T>(1, 3), xhat = zeros<Bk, T>(outer, 6 * inner);
          auto y = zeros<Bk, T>(outer, 6 * inner), dx = zeros<Bk, T>(outer, 6 * inner);
          auto dw = zeros<Bk, T>(1, 3), dbias = zeros<Bk, T>(1, 3);
          const auto f = view(std::as_const(fo));
          Bk::batch_norm_statistics(view(std::as_const(tx)), l, f, training, 0.1, 1e-5, view(rm), view(rv),
                                    view(mean), view(inv));
          Bk::batch_norm_forward(view(std::as_const(tx)), l, f, view(std::as_const(mean)), view(std::as_const(inv)),
                                 view(std::as_const(tw)), view(std::as_const(tb)), view(xhat), view(y));
          Bk::batch_norm_backward(view(std::as_const(tdy)), view(std::as_const(xhat)), l, f, view(std::as_const(tw)),
                                  view(std::as_const(inv)), training, view(dw), view(dbias), view(dx));
          return std::tuple{test::download<Bk>(rm), test::download<Bk>(rv), test::download<Bk>(mean),
                            test::download<Bk>(inv), test::download<Bk>(y), test::download<Bk>(dx),
                            test::download<Bk>(dw), test::download<Bk>(dbias)};
        });
      }
    }
    for (const auto& shape : {std::pair<std::size_t, std::size_t>{1, 1}, {5, 3}, {300, 9}}) {
      const std::size_t points = std::get<0>(shape), c = std::get<1>(shape);
      const Host<T> x = random_values<T>(3 * points, c, rng), d = random_values<T>(3 * points, c, rng);
      const Host<T> dy = random_values<T>(3 * points, c, rng), m = random_values<T>(points, c, rng);
      const Host<T> z = random_values<T>(3 * points, 3, rng), dinv = random_values<T>(points, 3 * c, rng);
      agree<B, T>("vector norms and rescaling", [&]<class Bk>(std::type_identity<Bk>) {
        auto tx = test::upload<Bk>(x), tdy = test::upload<Bk>(dy), tm = test::upload<Bk>(m);
        auto n = zeros<Bk, T>(points, c), y = zeros<Bk, T>(3 * points, c), dm = zeros<Bk, T>(points, c);
        auto dn = zeros<Bk, T>(points, c), dx = zeros<Bk, T>(3 * points, c);
        Bk::vector_norms(view(std::as_const(tx)), T(1e-6), view(n));
        Bk::vector_rescale(view(std::as_const(tx)), view(std::as_const(n)), view(std::as_const(tm)), view(y));
        Bk::vector_rescale_backward(view(std::as_const(tx)), view(std::as_const(n)), view(std::as_const(tm)),
                                    view(std::as_const(tdy)), view(dm), view(dn));
        Bk::vector_rescale_input_grad(view(std::as_const(tx)), view(std::as_const(n)), view(std::as_const(tm)),
                                      view(std::as_const(tdy)), view(std::as_const(dn)), T(1e-6), view(dx));
        return std::tuple{test::download<Bk>(n), test::download<Bk>(y), test::download<Bk>(dm),
                          test::download<Bk>(dn), test::download<Bk>(dx)};
      });
      agree<B, T>("VN leaky ReLU and invariant", [&]<class Bk>(std::type_identity<Bk>) {
        auto tx = test::upload<Bk>(x), td = test::upload<Bk>(d), tdy = test::upload<Bk>(dy), tz = test::upload<Bk>(z), tdi = test::upload<Bk>(dinv);
        auto y = zeros<Bk, T>(3 * points, c), dx = zeros<Bk, T>(3 * points, c), dd = zeros<Bk, T>(3 * points, c);
        auto inv = zeros<Bk, T>(points, 3 * c), idx = zeros<Bk, T>(3 * points, c), idz = zeros<Bk, T>(3 * points, 3);
        Bk::vn_leaky_relu(view(std::as_const(tx)), view(std::as_const(td)), T(0.2), T(1e-6), view(y));
        Bk::vn_leaky_relu_backward(view(std::as_const(tx)), view(std::as_const(td)), T(0.2), T(1e-6),
                                   view(std::as_const(tdy)), view(dx), view(dd));
        Bk::vn_invariant(view(std::as_const(tx)), view(std::as_const(tz)), view(inv));
        Bk::vn_invariant_backward(view(std::as_const(tx)), view(std::as_const(tz)), view(std::as_const(tdi)),
                                  view(idx), view(idz));
        return std::tuple{test::download<Bk>(y), test::download<Bk>(dx), test::download<Bk>(dd),
                          test::download<Bk>(inv), test::download<Bk>(idx), test::download<Bk>(idz)};
      });
    }
  });
}

TEMPLATE_LIST_TEST_CASE("conformance: convolutions and pooling", "[backend][conformance]", ConformingBackends) {
  using B = TestType;
  Rng rng(test::seed(5, "conformance images"));
  test::for_each_scalar([&]<class T>(std::type_identity<T>) {
    for (Layout layout : {Layout::channels_first, Layout::channels_last})
      for (const ConvGeometry g : {ConvGeometry{3, 5, 6, 7, 3, 1, 1, layout}, ConvGeometry{20, 17, 9, 8, 5, 2, 2, layout},
                                   ConvGeometry{1, 1, 4, 4, 1, 1, 0, layout}, ConvGeometry{64, 37, 12, 11, 3, 1, 0, layout},
                                   ConvGeometry{6, 18, 13, 13, 3, 3, 1, layout}})
        for (bool simd : {true, false}) {
          set_simd_kernels(simd);
          const std::size_t batch = 3;
          const Host<T> x = random_values<T>(batch, g.in_dim(), rng), w = random_values<T>(g.out_channels, g.patch(), rng);
          const Host<T> bias = random_values<T>(1, g.out_channels, rng), dy = random_values<T>(batch, g.out_dim(), rng);
          agree<B, T>("conv2d forward and backward", [&]<class Bk>(std::type_identity<Bk>) {
            typename Bk::template convolution<T> conv(g);
            auto tx = test::upload<Bk>(x), tw = test::upload<Bk>(w), tb = test::upload<Bk>(bias), tdy = test::upload<Bk>(dy);
            auto y = zeros<Bk, T>(batch, g.out_dim()), dx = zeros<Bk, T>(batch, g.in_dim());
            auto dw = test::upload<Bk>(w), db = test::upload<Bk>(bias);  // gradients accumulate onto these
            Bk::conv2d_forward(conv, view(std::as_const(tx)), view(std::as_const(tw)), view(std::as_const(tb)), view(y));
            Bk::conv2d_backward(conv, view(std::as_const(tx)), view(std::as_const(tw)), view(std::as_const(tdy)),
                                view(dw), view(db), view(dx));
            return std::tuple{test::download<Bk>(y), test::download<Bk>(dx), test::download<Bk>(dw),
                              test::download<Bk>(db)};
          });
        }
    set_simd_kernels(true);
    for (Layout layout : {Layout::channels_first, Layout::channels_last})
      for (const PoolGeometry g : {PoolGeometry{3, 4, 6, 2, 3, layout}, PoolGeometry{5, 8, 8, 8, 8, layout}})
        for (Reduce kind : {Reduce::sum, Reduce::mean, Reduce::max}) {
          const Host<T> x = random_values<T>(4, g.in_dim(), rng), dy = random_values<T>(4, g.out_dim(), rng);
          agree<B, T>("pool2d forward and backward", [&]<class Bk>(std::type_identity<Bk>) {
            auto tx = test::upload<Bk>(x), tdy = test::upload<Bk>(dy), y = zeros<Bk, T>(4, g.out_dim()), dx = test::upload<Bk>(x);
            auto arg = zeros<Bk, std::uint32_t>(4, g.out_dim());
            Bk::pool2d_forward(g, kind, view(std::as_const(tx)), view(y), view(arg));
            Bk::pool2d_backward(g, kind, view(std::as_const(tdy)), view(std::as_const(arg)), view(dx));
            return std::tuple{test::download<Bk>(y), test::download<Bk>(dx), test::download<Bk>(arg)};
          });
        }
  });
}

TEMPLATE_LIST_TEST_CASE("conformance: EGNN message passing", "[backend][conformance]", ConformingBackends) {
  using B = TestType;
  Rng rng(test::seed(6, "conformance graphs"));
  test::for_each_scalar([&]<class T>(std::type_identity<T>) {
    // A ragged graph: node 3 has no incoming edge, node 0 three.
    const std::vector<std::uint32_t> row{0, 0, 0, 1, 2, 2, 4}, col{1, 2, 4, 0, 1, 3, 3};
    const std::vector<T> inv{T(1) / 3, 1, T(0.5), 1, 1};
    for (std::size_t graphs : {1u, 3u, 12u}) {
      const GraphShape gs{graphs, 5, 7};
      const std::size_t nr = gs.node_rows(), er = gs.edge_rows(), hd = 6, dim = 3;
      const Host<T> x = random_values<T>(nr, dim, rng), v = random_values<T>(nr, dim, rng);
      const Host<T> p = random_values<T>(nr, hd, rng), q = random_values<T>(nr, hd, rng);
      const Host<T> bias = random_values<T>(1, hd, rng), w = random_values<T>(hd, 3, rng);
      Host<T> coef = random_values<T>(er, 1, rng);
      for (auto& c : coef.values) c *= T(40);  // some moves beyond the clamp
      const Host<T> speed = random_values<T>(nr, 1, rng), m = random_values<T>(er, hd, rng);
      const Host<T> dx_out = random_values<T>(nr, dim, rng), dagg = random_values<T>(nr, hd, rng);
      const Host<T> dz = random_values<T>(er, hd, rng);
      for (bool features : {true, false})
        agree<B, T>("egnn edge input, aggregation and their backward", [&]<class Bk>(std::type_identity<Bk>) {
          auto r = index_tensor<Bk>(row), c = index_tensor<Bk>(col);
          auto id = test::upload<Bk>(Host<T>{inv, 1, 5});
          auto tx = test::upload<Bk>(x), tv = test::upload<Bk>(v), tp = test::upload<Bk>(p), tq = test::upload<Bk>(q), tb = test::upload<Bk>(bias);
          auto tw = test::upload<Bk>(w), dw = test::upload<Bk>(w), tc = test::upload<Bk>(coef), ts = test::upload<Bk>(speed), tm = test::upload<Bk>(m);
          auto tdo = test::upload<Bk>(dx_out), tda = test::upload<Bk>(dagg), tdz = test::upload<Bk>(dz);
          auto diff = zeros<Bk, T>(er, dim), radial = zeros<Bk, T>(er, 1), z = zeros<Bk, T>(er, hd);
          auto xo = zeros<Bk, T>(nr, dim), agg = zeros<Bk, T>(nr, hd), dcoef = zeros<Bk, T>(er, 1);
          auto dm = zeros<Bk, T>(er, hd), dp = zeros<Bk, T>(nr, hd), dq = zeros<Bk, T>(nr, hd);
          auto dx = zeros<Bk, T>(nr, dim);
          const auto ri = view(std::as_const(r)), ci = view(std::as_const(c));
          const auto wr = view(std::as_const(tw)).columns(1, 1);
          const MatrixRef<const T> none{};
          Bk::egnn_edge_input(gs, ri, ci, view(std::as_const(tx)), view(std::as_const(tp)), view(std::as_const(tq)),
                              view(std::as_const(tb)), wr, view(diff), view(radial), view(z));
          Bk::egnn_aggregate(gs, ri, view(std::as_const(id)), view(std::as_const(tx)), view(std::as_const(tv)),
                             view(std::as_const(diff)), view(std::as_const(tc)), view(std::as_const(ts)), T(1.5),
                             features ? view(std::as_const(tm)) : none, view(xo), view(agg));
          Bk::egnn_aggregate_backward(gs, ri, view(std::as_const(id)), view(std::as_const(diff)),
                                      view(std::as_const(tc)), T(1.5), view(std::as_const(tdo)),
                                      features ? view(std::as_const(tda)) : none, view(dcoef), view(dm));
          Bk::egnn_edge_input_backward(gs, ri, ci, view(std::as_const(id)), view(std::as_const(diff)),
                                       view(std::as_const(radial)), view(std::as_const(tc)), T(1.5),
                                       view(std::as_const(tdo)), view(std::as_const(tdz)), wr, view(dp), view(dq),
                                       view(dx), view(dw).columns(1, 1));
          return std::tuple{test::download<Bk>(diff), test::download<Bk>(radial), test::download<Bk>(z),
                            test::download<Bk>(xo),   test::download<Bk>(agg),    test::download<Bk>(dcoef),
                            test::download<Bk>(dm),   test::download<Bk>(dp),     test::download<Bk>(dq),
                            test::download<Bk>(dx),   test::download<Bk>(dw)};
        });
    }
  });
}

TEMPLATE_LIST_TEST_CASE("conformance: O(3) features: tensor product contraction, swish gate, spherical harmonics",
                        "[backend][conformance]", ConformingBackends) {
  using B = TestType;
  Rng rng(test::seed(11, "conformance o3"));
  // x1 = 3x0e + 2x1o + 1x2e + 2x0e, x2 = 1x0e + 2x1o, out = 2x0e + 3x1o + 1x1e + 2x2e + 1x3o: every path kind (l up
  // to 3, both parities, copies on both sides, repeated irreps in x1)
  const auto term = [](std::size_t n, int l, Parity p) { return O3Term{n, l, p}; };
  const std::vector<O3Term> in1{term(3, 0, Parity::even), term(2, 1, Parity::odd), term(1, 2, Parity::even),
                                term(2, 0, Parity::even)};
  const std::vector<O3Term> in2{term(1, 0, Parity::even), term(2, 1, Parity::odd)};
  const std::vector<O3Term> out{term(2, 0, Parity::even), term(3, 1, Parity::odd), term(1, 1, Parity::even),
                                term(2, 2, Parity::even), term(1, 3, Parity::odd)};
  const O3ProductPlan plan = o3_product_plan(in1, in2, out);
  REQUIRE(plan.z_cols > 0);
  const std::size_t d1 = 3 + 6 + 5 + 2, d2 = 7;
  // the gate: 3 scalars, gated 2x1o + 1x2e (3 gates)
  const std::vector<std::uint32_t> gated{2, 3, 1, 5};
  const std::size_t gate_in = 3 + 3 + 6 + 5, gate_out = 3 + 6 + 5;
  test::for_each_scalar([&]<class T>(std::type_identity<T>) {
    const std::vector<T> values(plan.values.begin(), plan.values.end());
    for (std::size_t rows : {1u, 6u, 41u}) {
      const Host<T> x1 = random_values<T>(rows, d1, rng), x2 = random_values<T>(rows, d2, rng);
      const Host<T> dz = random_values<T>(rows, plan.z_cols, rng);
      agree<B, T>("tensor_product_contract and its backward", [&]<class Bk>(std::type_identity<Bk>) {
        auto paths = make_storage<tensor_t<Bk, std::uint32_t, 2>>(
            std::array<std::size_t, 2>{plan.paths.size() / TensorProductColumns::count, TensorProductColumns::count});
        Bk::from_host(std::span<const std::uint32_t>(plan.paths), view(paths));
        auto entries = index_tensor<Bk>(plan.entries);
        auto tv = test::upload<Bk>(Host<T>{values, 1, values.size()});
        auto t1 = test::upload<Bk>(x1), t2 = test::upload<Bk>(x2), tdz = test::upload<Bk>(dz);
        auto z = zeros<Bk, T>(rows, plan.z_cols), dx1 = zeros<Bk, T>(rows, d1), dx2 = zeros<Bk, T>(rows, d2);
        auto dx1_only = zeros<Bk, T>(rows, d1);
        const auto p = view(std::as_const(paths)), e = view(std::as_const(entries));
        Bk::tensor_product_contract(p, e, view(std::as_const(tv)), view(std::as_const(t1)), view(std::as_const(t2)),
                                    view(z));
        Bk::tensor_product_contract_backward(p, e, view(std::as_const(tv)), view(std::as_const(t1)),
                                             view(std::as_const(t2)), view(std::as_const(tdz)), view(dx1), view(dx2));
        Bk::tensor_product_contract_backward(p, e, view(std::as_const(tv)), view(std::as_const(t1)),
                                             view(std::as_const(t2)), view(std::as_const(tdz)), view(dx1_only),
                                             MatrixRef<T>{});
        return std::tuple{test::download<Bk>(z), test::download<Bk>(dx1), test::download<Bk>(dx2),
                          test::download<Bk>(dx1_only)};
      });
      const Host<T> gx = random_values<T>(rows, gate_in, rng), gdy = random_values<T>(rows, gate_out, rng);
      Host<T> vectors = random_values<T>(rows, 3, rng);
      if (rows > 1) std::fill_n(vectors.values.begin(), 3, T(0));  // a zero vector: direction 0, Y^0 alone
      agree<B, T>("swish_gate, its backward, spherical_harmonics", [&]<class Bk>(std::type_identity<Bk>) {
        auto g = make_storage<tensor_t<Bk, std::uint32_t, 2>>(std::array<std::size_t, 2>{2, 2});
        Bk::from_host(std::span<const std::uint32_t>(gated), view(g));
        auto tx = test::upload<Bk>(gx), tdy = test::upload<Bk>(gdy), tvec = test::upload<Bk>(vectors);
        auto y = zeros<Bk, T>(rows, gate_out), dx = zeros<Bk, T>(rows, gate_in);
        auto sh = zeros<Bk, T>(rows, 16), norms = zeros<Bk, T>(rows, 1), sh1 = zeros<Bk, T>(rows, 4);
        Bk::swish_gate(view(std::as_const(tx)), 3, view(std::as_const(g)), view(y));
        Bk::swish_gate_backward(view(std::as_const(tx)), 3, view(std::as_const(g)), view(std::as_const(tdy)), view(dx));
        Bk::spherical_harmonics(view(std::as_const(tvec)), 3, T(0.5), view(sh), view(norms));
        Bk::spherical_harmonics(view(std::as_const(tvec)), 1, T(1), view(sh1), MatrixRef<T>{});
        return std::tuple{test::download<Bk>(y), test::download<Bk>(dx), test::download<Bk>(sh),
                          test::download<Bk>(norms), test::download<Bk>(sh1)};
      });
    }
  });
}

TEMPLATE_LIST_TEST_CASE("conformance: losses and optimiser updates", "[backend][conformance]", ConformingBackends) {
  using B = TestType;
  Rng rng(test::seed(7, "conformance losses"));
  test::for_each_scalar([&]<class T>(std::type_identity<T>) {
    for (const auto& shape : {std::pair<std::size_t, std::size_t>{1, 2}, {9, 5}, {64, 10}}) {
      const std::size_t rows = std::get<0>(shape), cols = std::get<1>(shape);
      const Host<T> pred = random_values<T>(rows, cols, rng), target = random_values<T>(rows, cols, rng);
      std::vector<std::uint32_t> labels(rows);
      for (auto& l : labels) l = static_cast<std::uint32_t>(rng.below(cols));
      agree<B, T>("losses", [&]<class Bk>(std::type_identity<Bk>) {
        auto tp = test::upload<Bk>(pred), tt = test::upload<Bk>(target), g1 = zeros<Bk, T>(rows, cols), g2 = zeros<Bk, T>(rows, cols);
        auto g3 = zeros<Bk, T>(rows, cols);
        auto tl = index_tensor<Bk>(labels);
        const T mse = Bk::template elementwise_loss<SquaredError>(view(std::as_const(tp)), view(std::as_const(tt)), view(g1));
        const T l1 = Bk::template elementwise_loss<AbsoluteError>(view(std::as_const(tp)), view(std::as_const(tt)), view(g2));
        const T ce = Bk::softmax_cross_entropy(view(std::as_const(tp)), view(std::as_const(tl)), view(g3));
        auto out = zeros<Bk, double>(1, 3);
        Bk::template elementwise_loss<SquaredError>(view(std::as_const(tp)), view(std::as_const(tt)), view(g1),
                                                    view(out).columns(0, 1));
        Bk::template elementwise_loss<AbsoluteError>(view(std::as_const(tp)), view(std::as_const(tt)), view(g2),
                                                     view(out).columns(1, 1));
        Bk::softmax_cross_entropy(view(std::as_const(tp)), view(std::as_const(tl)), view(g3), view(out).columns(2, 1));
        const std::vector<double> in_memory = test::download<Bk>(out);
        CHECK(in_memory == std::vector<double>{mse, l1, ce});  // the same value, left in backend memory
        return std::tuple{std::vector<T>{mse, l1, ce}, test::download<Bk>(g1), test::download<Bk>(g2),
                          test::download<Bk>(g3), in_memory};
      });
      const Host<T> value = random_values<T>(rows, cols, rng), grad = random_values<T>(rows, cols, rng);
      for (const SgdStep step : {SgdStep{0.1, 0.0, 0.01, false, true}, SgdStep{0.1, 0.9, 0.0, true, false},
                                 SgdStep{0.05, 0.5, 0.1, false, true}})
        agree<B, T>("sgd_update", [&]<class Bk>(std::type_identity<Bk>) {
          auto tv = test::upload<Bk>(value), tg = test::upload<Bk>(grad), buf = test::upload<Bk>(grad);
          Bk::sgd_update(view(tv), view(std::as_const(tg)), view(buf), step);
          Bk::sgd_update(view(tv), view(std::as_const(tg)), view(buf), step);
          return std::tuple{test::download<Bk>(tv), test::download<Bk>(buf)};
        });
      for (bool decoupled : {false, true})
        agree<B, T>("adam_update", [&]<class Bk>(std::type_identity<Bk>) {
          auto tv = test::upload<Bk>(value), tg = test::upload<Bk>(grad), m = zeros<Bk, T>(rows, cols), v = zeros<Bk, T>(rows, cols);
          auto count = zeros<Bk, double>(1, 1);
          for (int t = 1; t <= 3; ++t) {
            Bk::fill(view(count), static_cast<double>(t));
            Bk::adam_update(view(tv), view(std::as_const(tg)), view(m), view(v),
                            AdamStep{1e-2, 0.9, 0.99, 1e-8, 0.1, decoupled}, view(std::as_const(count)));
          }
          return std::tuple{test::download<Bk>(tv), test::download<Bk>(m), test::download<Bk>(v)};
        });
    }
  });
}

TEST_CASE("conformance: multi-tensor Adam and zeroing equal the per-tensor operations on Reference",
          "[backend][conformance]") {
  using B = std::tuple_element_t<0, ConformingBackends>;
  static_assert(MultiTensorBackend<B, float> && MultiTensorBackend<B, double>);
  Rng rng(test::seed(9, "conformance many"));
  test::for_each_scalar([&]<class T>(std::type_identity<T>) {
    // 30 Adam tensors and 60 zeroed ones: more than one launch's worth of each; sizes 0, 1 and up to 300.
    std::vector<std::size_t> sizes;
    for (std::size_t k = 0; k < 60; ++k) sizes.push_back(k == 3 ? 0 : (k == 5 ? 1 : 1 + rng.below(300)));
    std::vector<Host<T>> values, grads;
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      values.push_back(random_values<T>(1, sizes[k], rng));
      grads.push_back(random_values<T>(1, sizes[k], rng));
    }
    const auto step = [](std::size_t k) {
      return AdamStep{1e-2 * static_cast<double>(1 + k % 3), 0.9, 0.99, 1e-8, k % 2 ? 0.1 : 0.0, k % 4 == 1};
    };
    agree<B, T>("adam_update_many, fill_many", [&]<class Bk>(std::type_identity<Bk>) {
      std::vector<tensor_t<Bk, T, 2>> v, g, m, u;
      for (std::size_t k = 0; k < sizes.size(); ++k) {
        v.push_back(test::upload<Bk>(values[k]));
        g.push_back(test::upload<Bk>(grads[k]));
        m.push_back(zeros<Bk, T>(1, sizes[k]));
        u.push_back(zeros<Bk, T>(1, sizes[k]));
      }
      auto count = zeros<Bk, double>(1, 1);
      for (int t = 1; t <= 3; ++t) {
        Bk::fill(view(count), static_cast<double>(t));
        if constexpr (std::is_same_v<Bk, Reference>) {
          for (std::size_t k = 0; k < 30; ++k)
            Bk::adam_update(flat(v[k]).row(), MatrixRef<const T>(flat(g[k]).row()), flat(m[k]).row(),
                            flat(u[k]).row(), step(k), view(std::as_const(count)));
        } else {
          std::vector<AdamTensor<T>> list;
          for (std::size_t k = 0; k < 30; ++k)
            list.push_back({v[k].data(), g[k].data(), m[k].data(), u[k].data(), sizes[k], step(k)});
          Bk::adam_update_many(std::span<const AdamTensor<T>>(list), view(std::as_const(count)));
        }
      }
      if constexpr (std::is_same_v<Bk, Reference>) {
        for (auto& t : g) Bk::fill(flat(t).row(), T(0));
      } else {
        std::vector<VectorRef<T>> all;
        for (auto& t : g) all.push_back(flat(t));
        Bk::fill_many(std::span<const VectorRef<T>>(all), T(0));
      }
      std::vector<T> out;
      for (const auto* list : {&v, &m, &u, &g})
        for (const auto& t : *list)
          for (T x : test::download<Bk>(t)) out.push_back(x);
      return std::tuple{out};
    });
  });
}

TEMPLATE_LIST_TEST_CASE("conformance: the Lagrangian's terms and the dual step", "[backend][conformance]",
                        ConformingBackends) {
  using B = TestType;
  Rng rng(test::seed(8, "conformance constraints"));
  const ConstraintForm forms[] = {
      {.dual = true},                                                               // equality
      {.dual = true, .absolute = true, .epsilon = 0.05, .augmented = 0.5},          // inequality, augmented
      {.dual = true, .absolute = true, .slack = true, .rho = 2.0, .scale = 0.25},  // resilient, averaged
      {.penalty = 0.3},                                                             // penalty baseline
      {.learn_gamma = false},                                                       // strict / schedule
  };
  test::for_each_scalar([&]<class T>(std::type_identity<T>) {
    for (const std::size_t n : {1u, 7u, 300u}) {
      Host<T> gamma = random_values<T>(1, n, rng);
      gamma.values[0] = T(0);  // sign(0) = 0 for the absolute forms
      const Host<T> slack = random_values<T>(1, n, rng), grad = random_values<T>(1, n, rng);
      const Host<double> lambda = random_values<double>(1, n, rng);  // negative entries: projected for |γ| forms
      for (const ConstraintForm& f : forms)
        for (const bool adam : {false, true})
          agree<B, T>("constraint_terms, dual_ascent", [&]<class Bk>(std::type_identity<Bk>) {
            auto g = test::upload<Bk>(gamma), u = test::upload<Bk>(slack);
            auto l = test::upload<Bk>(lambda);
            auto dg = test::upload<Bk>(grad), du = zeros<Bk, T>(1, n);
            auto s = zeros<Bk, double>(1, n);
            auto m = zeros<Bk, double>(1, n), v = zeros<Bk, double>(1, n), count = zeros<Bk, double>(1, 1);
            Bk::constraint_terms(f, view(std::as_const(g)), view(std::as_const(u)), view(std::as_const(l)), view(dg),
                                 view(du), view(s));
            for (int t = 1; t <= 3; ++t) {
              Bk::fill(view(count), static_cast<double>(t));
              Bk::dual_ascent(f, DualStep{0.1, 0.9, 0.99, 1e-8, adam}, view(std::as_const(count)),
                              view(std::as_const(s)), view(l), view(m), view(v));
            }
            return std::tuple{test::download<Bk>(dg), test::download<Bk>(du), test::download<Bk>(s),
                              test::download<Bk>(l), test::download<Bk>(m), test::download<Bk>(v)};
          });
    }
  });
}

TEMPLATE_LIST_TEST_CASE("conformance: shape errors name the backend and the operation", "[backend][conformance]",
                        test::Backends) {
  using B = TestType;
  auto a = zeros<B, double>(2, 3), c = zeros<B, double>(2, 2);
  CHECK_THROWS_AS(B::gemm(Transpose::no, Transpose::no, 1.0, view(std::as_const(a)), view(std::as_const(a)), 0.0, view(c)),
                  shape_error);
  CHECK_THROWS_WITH(B::copy(view(std::as_const(a)), view(c)), Catch::Contains(B::name) && Catch::Contains("copy"));
  auto y = zeros<B, double>(1, 3);
  auto arg = zeros<B, std::uint32_t>(1, 2);
  CHECK_THROWS_AS(B::segment_reduce(Reduce::max, view(std::as_const(a)), 2, view(y), view(arg)), shape_error);
  std::vector<double> host(5);
  CHECK_THROWS_AS(B::to_host(view(std::as_const(a)), std::span<double>(host)), shape_error);
  CHECK_THROWS_AS(view(a).columns(2, 2), shape_error);
  CHECK_THROWS_AS(reshaped(a, 4, 2), shape_error);
}

#if defined(ACE_TEST_BACKEND_CUDA) || defined(ACE_TEST_BACKEND_EMULATION)
using IndexCheckedBackends = std::tuple<test::Device>;
#else
using IndexCheckedBackends = std::tuple<Cpu, Reference>;
#endif
TEMPLATE_LIST_TEST_CASE("conformance: indices out of range reach the caller as invalid_argument",
                        "[backend][conformance]", IndexCheckedBackends) {
  using B = TestType;
  const auto src = zeros<B, double>(3, 2);
  auto dst = zeros<B, double>(2, 2);
  const auto bad = index_tensor<B>({0, 3});  // row 3 of 3
  CHECK_THROWS_AS(B::gather_rows(view(std::as_const(src)), view(std::as_const(bad)), view(dst)), invalid_argument);
  CHECK_THROWS_AS(B::scatter_add_rows(view(std::as_const(dst)), view(std::as_const(bad)), view(dst)),
                  invalid_argument);
  const auto labels = index_tensor<B>({1, 2});  // class 2 of 2
  auto grad = zeros<B, double>(2, 2);
  CHECK_THROWS_WITH(B::softmax_cross_entropy(view(std::as_const(dst)), view(std::as_const(labels)), view(grad)),
                    Catch::Contains("softmax_cross_entropy"));
  // After a reported error the backend works as before.
  const auto good = index_tensor<B>({2, 0});
  CHECK_NOTHROW(B::gather_rows(view(std::as_const(src)), view(std::as_const(good)), view(dst)));
}

#if defined(ACE_TEST_BACKEND_CUDA) || defined(ACE_TEST_BACKEND_EMULATION)
TEST_CASE("conformance: a recording replays its operations on the same memory and holds no host copy",
          "[backend][conformance][device]") {
  using B = test::Device;
  static_assert(RecordingBackend<B>);
  Rng rng(test::seed(9, "conformance recording"));
  const Host<float> x = random_values<float>(4, 9, rng);
  auto a = test::upload<B>(x), b = zeros<B, float>(4, 9);
  auto acc = zeros<B, double>(1, 1), warm = zeros<B, double>(1, 1);
  B::reduce_into(Accumulate::sum, view(std::as_const(a)), view(warm));  // scratch exists before recording
  const auto graph = B::capture([&] {
    B::axpy(2.0f, view(std::as_const(a)), view(b));                                  // a kernel
    B::gemm(Transpose::no, Transpose::yes, 1.0f, view(std::as_const(a)), view(std::as_const(a)), 0.0f,
            view(b).columns(0, 4));                                                  // GEMM
    B::copy(view(std::as_const(b)).columns(0, 1), view(b).columns(8, 1));            // a copy on the device
    B::reduce_into(Accumulate::sum, view(std::as_const(b)), view(acc));              // a reduction into memory
  });
  CHECK(test::download<B>(b) == std::vector<float>(36, 0.0f));  // recorded, not run
  graph.replay();
  const auto once = test::download<B>(b);
  B::from_host(std::span<const float>(x.values), view(a));  // new input values, same memory
  graph.replay();
  // The same operations run directly, twice, on Reference.
  auto ra = test::upload<Reference>(x), rb = zeros<Reference, float>(4, 9);
  auto racc = zeros<Reference, double>(1, 1);
  for (int k = 0; k < 2; ++k) {
    Reference::axpy(2.0f, view(std::as_const(ra)), view(rb));
    Reference::gemm(Transpose::no, Transpose::yes, 1.0f, view(std::as_const(ra)), view(std::as_const(ra)), 0.0f,
                    view(rb).columns(0, 4));
    Reference::copy(view(std::as_const(rb)).columns(0, 1), view(rb).columns(8, 1));
    Reference::reduce_into(Accumulate::sum, view(std::as_const(rb)), view(racc));
    if (k == 0) CHECK(relative_gap(test::download<Reference>(rb), once) <= 1e-5);
  }
  CHECK(relative_gap(test::download<Reference>(rb), test::download<B>(b)) <= 1e-5);
  CHECK(relative_gap(test::download<Reference>(racc), test::download<B>(acc)) <= 1e-5);
  // Host copies and growing scratch memory cannot be recorded.
  std::vector<float> host(36);
  CHECK_THROWS_AS(B::capture([&] { B::to_host(view(std::as_const(a)), std::span<float>(host)); }), unsupported);
  CHECK_THROWS_AS(B::capture([&] { B::from_host(std::span<const float>(host), view(a)); }), unsupported);
  CHECK_THROWS_AS(B::capture([&] { (void)B::sum(view(std::as_const(a))); }), unsupported);
  const std::size_t rows = std::size_t{1} << 21;  // a loss with more rows than any scratch so far
  auto logits = zeros<B, float>(rows, 1), grad = zeros<B, float>(rows, 1);
  const auto labels = zeros<B, std::uint32_t>(1, rows);
  CHECK_THROWS_AS(B::capture([&] {
                    B::softmax_cross_entropy(view(std::as_const(logits)), view(labels), view(grad), view(acc));
                  }),
                  unsupported);
}
#endif

TEMPLATE_LIST_TEST_CASE("conformance: parallel tasks each run once", "[backend][conformance]", test::Backends) {
  using B = TestType;
  std::vector<int> runs(9, 0);
  B::parallel_tasks(runs.size(), [&](std::size_t k) { runs[k] += static_cast<int>(k) + 1; });
  for (std::size_t k = 0; k < runs.size(); ++k) CHECK(runs[k] == static_cast<int>(k) + 1);
}
