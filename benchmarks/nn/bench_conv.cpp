// SPDX-License-Identifier: MIT
// Convolutions at the shape of benchmarks/peers/conv_torch.py: a C4 group convolution with 16 regular fields in and
// out (64 -> 64 channels), 32x32, kernel 5, same padding, batch 32 (float), forward and forward+backward, in both
// layouts; the plain Conv2d of the same dense shape; and Eigen's sgemm on a large square product, the rate the
// convolutions are read against (same process, same threads); and the core's FMA peak (one thread, registers only).
// FLOPs: forward 2·B·H·W·Cout·Cin·k² (the GEMM of the unfolded input); forward+backward three times that.
#include <benchmark/benchmark.h>

#include <ace/ace.hpp>

#include "../common/fma_peak.hpp"

namespace {
using namespace ace;
using C4 = Cyclic<4>;

template <Layout L>
using Fields = Image<Multiple<Regular<C4>, 16>, 32, 32, L>;
template <Layout L>
using GroupConv = GroupConv2d<float, Fields<L>, Multiple<Regular<C4>, 16>, same_padding(5)>;
template <Layout L>
using DenseConv = Conv2d<float, Image<Features<64>, 32, 32, L>, Features<64>, same_padding(5)>;

constexpr double conv_flops(double batch) { return 2.0 * batch * 32 * 32 * 64 * 64 * 25; }

Tensor<float, 2> random_input(Rng& rng, std::size_t batch, std::size_t dim) {
  Tensor<float, 2> x({batch, dim});
  for (auto& v : x) v = static_cast<float>(rng.normal());
  return x;
}

void rate(benchmark::State& state, double flops) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * double(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}

template <class M>
void BM_forward(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  Rng rng(1);
  M layer(rng);
  const auto x = random_input(rng, batch, M::input::dim);
  layer.forward(x);  // warm-up: the filter bank, scratch buffers and output are set up by the first call
  for (auto _ : state) benchmark::DoNotOptimize(layer.forward(x).data());
  rate(state, conv_flops(double(batch)));
}

template <class M>
void BM_forward_backward(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  Rng rng(1);
  M layer(rng);
  const auto x = random_input(rng, batch, M::input::dim);
  const auto dy = random_input(rng, batch, M::output::dim);
  layer.forward(x);  // warm-up, as above
  layer.backward(dy);
  for (auto _ : state) {
    zero_grad(layer);
    layer.forward(x);
    benchmark::DoNotOptimize(layer.backward(dy).data());
  }
  rate(state, 3.0 * conv_flops(double(batch)));
}

void BM_sgemm(benchmark::State& state) {
  const auto n = static_cast<Eigen::Index>(state.range(0));
  Eigen::MatrixXf a = Eigen::MatrixXf::Random(n, n), b = Eigen::MatrixXf::Random(n, n), c(n, n);
  c.noalias() = a * b;  // warm-up
  for (auto _ : state) {
    c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
  }
  rate(state, 2.0 * double(n) * double(n) * double(n));
}

BENCHMARK(bench::BM_fma_peak<false>)->Name("fma_peak/one_core")->Unit(benchmark::kMillisecond);

constexpr auto CL = Layout::channels_last;
constexpr auto CF = Layout::channels_first;
BENCHMARK(BM_forward<GroupConv<CL>>)
    ->Name("conv/group_c4/channels_last/forward/B32")
    ->Arg(32)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_forward_backward<GroupConv<CL>>)
    ->Name("conv/group_c4/channels_last/forward+backward/B32")
    ->Arg(32)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_forward<GroupConv<CF>>)
    ->Name("conv/group_c4/channels_first/forward/B32")
    ->Arg(32)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_forward_backward<GroupConv<CF>>)
    ->Name("conv/group_c4/channels_first/forward+backward/B32")
    ->Arg(32)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_forward<DenseConv<CL>>)
    ->Name("conv/dense/channels_last/forward/B32")
    ->Arg(32)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_forward_backward<DenseConv<CL>>)
    ->Name("conv/dense/channels_last/forward+backward/B32")
    ->Arg(32)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_sgemm)->Name("sgemm/N1024")->Arg(1024)->Unit(benchmark::kMillisecond);
}  // namespace
