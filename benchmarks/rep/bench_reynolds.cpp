// SPDX-License-Identifier: MIT
// Reynolds projection throughput: the fused group average, the projection through the cached basis, and a naive
// baseline that forms every ρ(g) as a dense matrix and multiplies. Counter "maps": projected matrices per second.
// FLOP count of the naive baseline: |G| * 2 * (out^2 in + out in^2).
#include <benchmark/benchmark.h>

#include <ace/ace.hpp>

namespace {
using namespace ace;

template <class In, class Out>
Eigen::MatrixXd input() {
  Rng rng(1);
  return normal_matrix(Out::dim, In::dim, rng);
}

template <class In, class Out>
void BM_reynolds_fused(benchmark::State& state) {
  const Eigen::MatrixXd w = input<In, Out>();
  for (auto _ : state) benchmark::DoNotOptimize(reynolds<In, Out>(w));
  state.counters["maps"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

template <class In, class Out>
void BM_reynolds_basis(benchmark::State& state) {
  const Eigen::MatrixXd w = input<In, Out>();
  (void)equivariant_basis<In, Out>();  // built once, outside the timing
  for (auto _ : state) benchmark::DoNotOptimize(project_equivariant<In, Out>(w));
  state.counters["maps"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

template <class In, class Out>
void BM_reynolds_naive(benchmark::State& state) {
  using G = typename In::group;
  const Eigen::MatrixXd w = input<In, Out>();
  for (auto _ : state) {
    Eigen::MatrixXd acc = Eigen::MatrixXd::Zero(w.rows(), w.cols());
    for_each_element<G>([&](const auto& g) {
      const Eigen::MatrixXd ro = rep_matrix<Out>(g), ri = rep_matrix<In>(g);
      acc += ro * w * ri.transpose();
    });
    benchmark::DoNotOptimize(acc);
  }
  const double flops = static_cast<double>(G::order) * 2.0 *
                       (double(Out::dim) * double(Out::dim) * double(In::dim) + double(Out::dim) * double(In::dim) * double(In::dim));
  state.counters["maps"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * static_cast<double>(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}

using C8x16 = Multiple<Regular<Cyclic<8>>, 16>;
using RegI = Regular<Icosahedral>;
using Mixed = DirectSum<Multiple<Standard<Octahedral>, 4>, Multiple<Regular<Octahedral>, 2>>;

BENCHMARK(BM_reynolds_fused<C8x16, C8x16>)->Name("reynolds/fused/16xRegular(C8)")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_reynolds_basis<C8x16, C8x16>)->Name("reynolds/basis/16xRegular(C8)")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_reynolds_naive<C8x16, C8x16>)->Name("reynolds/naive/16xRegular(C8)")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_reynolds_fused<RegI, RegI>)->Name("reynolds/fused/Regular(I)")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_reynolds_basis<RegI, RegI>)->Name("reynolds/basis/Regular(I)")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_reynolds_naive<RegI, RegI>)->Name("reynolds/naive/Regular(I)")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_reynolds_fused<Mixed, Mixed>)->Name("reynolds/fused/4xStd(O)+2xRegular(O)")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_reynolds_basis<Mixed, Mixed>)->Name("reynolds/basis/4xStd(O)+2xRegular(O)")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_reynolds_naive<Mixed, Mixed>)->Name("reynolds/naive/4xStd(O)+2xRegular(O)")->Unit(benchmark::kMicrosecond);
}  // namespace
