// SPDX-License-Identifier: MIT
// Set layers at the shapes of benchmarks/peers/deepsets_torch.py: DeepSets at batch 64, set size 100, 256 -> 256
// features (float), forward and forward+backward; the second-order PairLinear and set pooling for scale.
// FLOPs counted for DeepSets: forward 2·B·N·F² (element GEMM) + 2·B·F² (pooled GEMM); backward twice that.
// Also: the same layer's forward+backward taken apart into the Cpu operations it calls, each timed (where its time
// goes), and the core's FMA peak, the ceiling of its rates.
#include <benchmark/benchmark.h>

#include <array>
#include <chrono>
#include <vector>

#include <ace/ace.hpp>

#include "../common/fma_peak.hpp"

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

/// DeepSets' forward+backward (mean pooling, bias) as the Cpu operations DeepSets::forward and ::backward
/// (ace/nn/set/set.hpp) call, in their order, on the layer's shapes: one counter per operation, its milliseconds per
/// pass, each timed with a steady clock around it (the operations see the caches the layer leaves them).
void BM_deepsets_operations(benchmark::State& state) {
  const std::size_t sets = static_cast<std::size_t>(state.range(0)), n = 100, f = 256, rows = sets * n;
  Rng rng(1);
  auto filled = [&](std::size_t size) {
    std::vector<float> v(size);
    for (auto& e : v) e = static_cast<float>(rng.normal());
    return v;
  };
  const auto x = filled(rows * f), dy = filled(rows * f), lambda = filled(f * f), gamma = filled(f * f),
             bias = filled(f);
  std::vector<float> y(rows * f), dx(rows * f), pooled(sets * f), z(sets * f), dz(sets * f), dpooled(sets * f),
      dlambda(f * f), dgamma(f * f), dbias(f);
  const auto in = [](const std::vector<float>& v, std::size_t r, std::size_t c) {
    return MatrixRef<const float>{v.data(), r, c, c};
  };
  const auto out = [](std::vector<float>& v, std::size_t r, std::size_t c) { return MatrixRef<float>{v.data(), r, c, c}; };
  constexpr const char* names[] = {"x_lambda_ms",      "pool_x_ms",     "pooled_gamma_ms", "add_bias_ms",
                                   "broadcast_z_ms",   "dlambda_ms",    "sum_dy_ms",       "dgamma_ms",
                                   "dbias_ms",         "dy_lambda_ms",  "dz_gamma_ms",     "broadcast_dpooled_ms"};
  constexpr std::size_t ops = std::size(names);
  std::array<double, ops> seconds{};
  using clock = std::chrono::steady_clock;
  for (auto _ : state) {
    std::size_t op = 0;
    auto t0 = clock::now();
    const auto lap = [&] {
      const auto t1 = clock::now();
      seconds[op++] += std::chrono::duration<double>(t1 - t0).count();
      t0 = t1;
    };
    Cpu::gemm(Transpose::no, Transpose::yes, 1.0f, in(x, rows, f), in(lambda, f, f), 0.0f, out(y, rows, f)), lap();
    Cpu::segment_reduce(Reduce::mean, in(x, rows, f), n, out(pooled, sets, f)), lap();
    Cpu::gemm(Transpose::no, Transpose::yes, 1.0f, in(pooled, sets, f), in(gamma, f, f), 0.0f, out(z, sets, f)), lap();
    Cpu::add_row(out(z, sets, f), in(bias, 1, f)), lap();
    Cpu::segment_reduce_backward(Reduce::sum, in(z, sets, f), n, {}, out(y, rows, f)), lap();
    Cpu::gemm(Transpose::yes, Transpose::no, 1.0f, in(dy, rows, f), in(x, rows, f), 1.0f, out(dlambda, f, f)), lap();
    Cpu::segment_reduce(Reduce::sum, in(dy, rows, f), n, out(dz, sets, f)), lap();
    Cpu::gemm(Transpose::yes, Transpose::no, 1.0f, in(dz, sets, f), in(pooled, sets, f), 1.0f, out(dgamma, f, f)), lap();
    Cpu::sum_rows(in(dz, sets, f), 1.0f, out(dbias, 1, f)), lap();
    Cpu::gemm(Transpose::no, Transpose::no, 1.0f, in(dy, rows, f), in(lambda, f, f), 0.0f, out(dx, rows, f)), lap();
    Cpu::gemm(Transpose::no, Transpose::no, 1.0f, in(dz, sets, f), in(gamma, f, f), 0.0f, out(dpooled, sets, f)), lap();
    Cpu::segment_reduce_backward(Reduce::mean, in(dpooled, sets, f), n, {}, out(dx, rows, f)), lap();
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  for (std::size_t op = 0; op < ops; ++op)
    state.counters[names[op]] = benchmark::Counter(seconds[op] * 1e3, benchmark::Counter::kAvgIterations);
}

using DeepSets256 = DeepSets<float, 100, 256, 256>;
using Pair = PairLinear<float, 20, 32, 32>;
using MaxPool = SetMaxPool<float, 100, 256>;

BENCHMARK(BM_forward<DeepSets256>)->Name("deepsets/forward/B64_N100_F256")->Arg(64)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_forward_backward<DeepSets256>)
    ->Name("deepsets/forward+backward/B64_N100_F256")
    ->Arg(64)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_deepsets_operations)
    ->Name("deepsets/operations/B64_N100_F256")
    ->Arg(64)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(bench::BM_fma_peak<false>)->Name("fma_peak/one_core")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_forward_backward<Pair>)
    ->Name("pair_linear/forward+backward/B16_N20_F32")
    ->Arg(16)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_forward_backward<MaxPool>)
    ->Name("set_max_pool/forward+backward/B64_N100_F256")
    ->Arg(64)
    ->Unit(benchmark::kMillisecond);
}  // namespace
