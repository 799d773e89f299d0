// SPDX-License-Identifier: MIT
// EquivariantLinear against a dense Linear of the same shape, forward and forward+backward, float, batch 256.
// FLOPs counted: forward 2*batch*in*out; backward adds 4*batch*in*out (dW and dx). The equivariant layer also
// materialises W from its coefficients every forward (O(in*out)) and projects dW back (O(in*out)).
#include <benchmark/benchmark.h>

#include <ace/ace.hpp>

namespace {
using namespace ace;
constexpr std::size_t batch = 256;

template <class M>
void BM_forward(benchmark::State& state) {
  Rng rng(1);
  M layer(rng);
  Tensor<float, 2> x({batch, M::input::dim});
  for (auto& v : x) v = static_cast<float>(rng.normal());
  for (auto _ : state) benchmark::DoNotOptimize(layer.forward(x).data());
  const double flops = 2.0 * batch * M::input::dim * M::output::dim;
  state.counters["GFLOP/s"] = benchmark::Counter(flops * double(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}

template <class M>
void BM_forward_backward(benchmark::State& state) {
  Rng rng(1);
  M layer(rng);
  Tensor<float, 2> x({batch, M::input::dim}), dy({batch, M::output::dim});
  for (auto& v : x) v = static_cast<float>(rng.normal());
  for (auto& v : dy) v = static_cast<float>(rng.normal());
  for (auto _ : state) {
    layer.forward(x);
    benchmark::DoNotOptimize(layer.backward(dy).data());
  }
  const double flops = 6.0 * batch * M::input::dim * M::output::dim;
  state.counters["GFLOP/s"] = benchmark::Counter(flops * double(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}

using C8x16 = Multiple<Regular<Cyclic<8>>, 16>;     // 128 channels
using D4x32 = Multiple<Regular<Dihedral<4>>, 32>;  // 256 channels
using Eq128 = EquivariantLinear<float, C8x16, C8x16>;
using Dense128 = Linear<float, C8x16, C8x16>;
using Eq256 = EquivariantLinear<float, D4x32, D4x32>;
using Dense256 = Linear<float, D4x32, D4x32>;

BENCHMARK(BM_forward<Eq128>)->Name("forward/equivariant/16xRegular(C8)")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_forward<Dense128>)->Name("forward/dense/128->128")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_forward_backward<Eq128>)->Name("forward+backward/equivariant/16xRegular(C8)")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_forward_backward<Dense128>)->Name("forward+backward/dense/128->128")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_forward<Eq256>)->Name("forward/equivariant/32xRegular(D4)")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_forward<Dense256>)->Name("forward/dense/256->256")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_forward_backward<Eq256>)->Name("forward+backward/equivariant/32xRegular(D4)")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_forward_backward<Dense256>)->Name("forward+backward/dense/256->256")->Unit(benchmark::kMicrosecond);
}  // namespace
