// SPDX-License-Identifier: MIT
// Group operations: composing through the constexpr Cayley table versus the closed-form law, Lehmer indexing of
// large symmetric groups, and conjugacy classes from cycle types. Counter "ops": operations per second.
#include <benchmark/benchmark.h>

#include <ace/ace.hpp>

namespace {
using namespace ace;

template <class G>
void BM_compose_law(benchmark::State& state) {
  auto x = G::generators()[0];
  const auto g = G::generators()[std::size(G::generators()) - 1];
  for (auto _ : state) {
    x = G::compose(x, g);
    benchmark::DoNotOptimize(x);
  }
  state.counters["ops"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

template <class G>
void BM_compose_table(benchmark::State& state) {
  const auto& t = cayley_table<G>;
  std::size_t x = G::index(G::generators()[0]);
  const std::size_t g = G::index(G::generators()[std::size(G::generators()) - 1]);
  for (auto _ : state) {
    x = t(x, g);
    benchmark::DoNotOptimize(x);
  }
  state.counters["ops"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_symmetric_index_roundtrip(benchmark::State& state) {
  using G = Symmetric<10>;
  std::size_t i = 12345;
  for (auto _ : state) {
    i = (G::index(G::element(i)) + 7919) % G::order;
    benchmark::DoNotOptimize(i);
  }
  state.counters["ops"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_classes_s10(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(conjugacy_classes<Symmetric<10>>());
}

BENCHMARK(BM_compose_law<Icosahedral>)->Name("compose/law/I");
BENCHMARK(BM_compose_table<Icosahedral>)->Name("compose/table/I");
BENCHMARK(BM_compose_law<Symmetric<5>>)->Name("compose/law/S5");
BENCHMARK(BM_compose_table<Symmetric<5>>)->Name("compose/table/S5");
BENCHMARK(BM_compose_law<Dihedral<12>>)->Name("compose/law/D12");
BENCHMARK(BM_symmetric_index_roundtrip)->Name("index/lehmer-roundtrip/S10");
BENCHMARK(BM_classes_s10)->Name("classes/cycle-types/S10")->Unit(benchmark::kMicrosecond);
}  // namespace
