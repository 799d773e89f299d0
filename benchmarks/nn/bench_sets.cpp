// SPDX-License-Identifier: MIT
// Set layers at the shapes of benchmarks/peers/deepsets_torch.py: DeepSets at batch 64, set size 100, 256 -> 256
// features (float), forward and forward+backward; the second-order PairLinear and set pooling for scale.
// FLOPs counted for DeepSets: forward 2·B·N·F² (element GEMM) + 2·B·F² (pooled GEMM); backward twice that.
#include <benchmark/benchmark.h>

#include <ace/ace.hpp>

namespace {
using namespace ace;

Tensor<float, 2> random_input(Rng& rng, std::size_t batch, std::size_t dim) {
  Tensor<float, 2> x({batch, dim});
  for (auto& v : x) v = static_cast<float>(rng.normal());
  return x;
}

template <class M>
void BM_forward(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  Rng rng(1);
  M layer = detail::make_with<M>(rng);
  const auto x = random_input(rng, batch, M::input::dim);
  for (auto _ : state) benchmark::DoNotOptimize(layer.forward(x).data());
}

template <class M>
void BM_forward_backward(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  Rng rng(1);
  M layer = detail::make_with<M>(rng);
  const auto x = random_input(rng, batch, M::input::dim);
  const auto dy = random_input(rng, batch, M::output::dim);
  for (auto _ : state) {
    zero_grad(layer);
    layer.forward(x);
    benchmark::DoNotOptimize(layer.backward(dy).data());
  }
  if constexpr (std::is_same_v<M, DeepSets<float, 100, 256, 256>>) {
    constexpr double n = M::input::set_size, fi = M::input::channels, fo = M::output::channels;
    const double flops = 3.0 * (2.0 * double(batch) * n * fi * fo + 2.0 * double(batch) * fi * fo);
    state.counters["GFLOP/s"] =
        benchmark::Counter(flops * double(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
  }
}

using DeepSets256 = DeepSets<float, 100, 256, 256>;
using Pair = PairLinear<float, 20, 32, 32>;
using MaxPool = SetMaxPool<float, 100, 256>;

BENCHMARK(BM_forward<DeepSets256>)->Name("deepsets/forward/B64_N100_F256")->Arg(64)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_forward_backward<DeepSets256>)
    ->Name("deepsets/forward+backward/B64_N100_F256")
    ->Arg(64)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_forward_backward<Pair>)
    ->Name("pair_linear/forward+backward/B16_N20_F32")
    ->Arg(16)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_forward_backward<MaxPool>)
    ->Name("set_max_pool/forward+backward/B64_N100_F256")
    ->Arg(64)
    ->Unit(benchmark::kMillisecond);
}  // namespace
