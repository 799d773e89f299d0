// SPDX-License-Identifier: MIT
// SEGNN in the ACE paper's N-body configuration (hidden 32x0e + 32x1o, attributes Y^{<=1}, 4 layers, float, complete
// 5-node graphs): one training step (forward, MSE, backward, Adam), strict and with ACE's branches, at batch 100 and
// 1000; and its largest tensor product alone (the first message layer: 258 -> 64x0e + 32x1o with Y^{<=1} over 2000
// edges), forward and forward + backward. Counters: GFLOP/s of the tensor products' own count (forward_flops, x3
// for a step's forward + backward; the relaxed branches' dense layers counted as 6 in out per sample for forward
// and backward).
#include <benchmark/benchmark.h>

#include <ace/data/nbody.hpp>
#include <ace/models/segnn.hpp>
#include <ace/optim/adam.hpp>
#include <numeric>

namespace {
using namespace ace;

GraphBatch<float> nbody_batch(std::size_t samples) {
  const data::NBodySamples s = data::make_nbody_samples({}, data::NBodySplit::train, samples, 1);
  std::vector<std::size_t> idx(samples);
  std::iota(idx.begin(), idx.end(), 0);
  return data::nbody_batch<float>(s, idx);
}

// The tensor products' forward FLOPs per sample of the N-body SEGNN (5 nodes, 20 edges), and the branches' dense
// layers' multiply-adds per sample.
double step_flops(bool relaxed) {
  Rng rng(1);
  using H = SEGNNHidden;
  using Attr = SEGNNAttributes;
  const std::size_t n = 5, e = 20, layers = 4, d = H::dim;
  const double tp = static_cast<double>(
      O3TensorProduct<O3Irreps<Mul<2, Vector1o>, Mul<1, Scalar0e>>, Attr, H, float>(rng).forward_flops(n) +
      layers * (O3TensorProduct<o3_concat_t<H, H, O3Irreps<Mul<2, Scalar0e>>>, Attr, o3_gate_input_t<H>, float>(rng)
                        .forward_flops(e) +
                    O3TensorProduct<H, Attr, o3_gate_input_t<H>, float>(rng).forward_flops(e) +
                    O3TensorProduct<o3_concat_t<H, H>, Attr, o3_gate_input_t<H>, float>(rng).forward_flops(n) +
                    O3TensorProduct<H, Attr, H, float>(rng).forward_flops(n)) +
      O3TensorProduct<H, Attr, o3_gate_input_t<H>, float>(rng).forward_flops(n) +
      O3TensorProduct<H, Attr, O3Irreps<Mul<1, Vector1o>>, float>(rng).forward_flops(n));
  const double dense = relaxed ? static_cast<double>(layers * n * 2 * (4 * d * d + 2 * d * d + d * d + 2 * d * d +
                                                                        2 * d * d + d * d))
                               : 0.0;
  return 3.0 * (tp + dense);
}

void BM_segnn_train_step(benchmark::State& state) {
  const bool relaxed = state.range(0) != 0;
  const auto samples = static_cast<std::size_t>(state.range(1));
  Rng rng(1);
  SEGNNRegression<float> model(SEGNN<float>(Graph::complete(5), {.layers = 4, .relaxed = relaxed}, rng),
                               {.workers = static_cast<std::size_t>(state.range(2))});
  const GraphBatch<float> batch = nbody_batch(samples);
  Adam<float> adam({.lr = 9e-4});
  for (auto _ : state) {
    zero_grad(model);
    benchmark::DoNotOptimize(model.loss_and_gradients(batch));
    adam.step(model);
  }
  state.SetItemsProcessed(state.iterations() * state.range(1));
  state.counters["GFLOP/s"] = benchmark::Counter(step_flops(relaxed) * static_cast<double>(samples) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void BM_segnn_forward(benchmark::State& state) {
  Rng rng(1);
  SEGNNRegression<float> model(SEGNN<float>(Graph::complete(5), {.layers = 4}, rng));
  const GraphBatch<float> batch = nbody_batch(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(model.predict(batch).data());
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_tensor_product(benchmark::State& state) {
  using H = SEGNNHidden;
  using In = o3_concat_t<H, H, O3Irreps<Mul<2, Scalar0e>>>;
  const bool backward = state.range(1) != 0;
  const auto rows = static_cast<std::size_t>(state.range(0));
  Rng rng(2);
  O3TensorProduct<In, SEGNNAttributes, o3_gate_input_t<H>, float> tp(rng);
  Tensor<float, 2> x({rows, In::dim}), a({rows, SEGNNAttributes::dim}), dy({rows, o3_gate_input_t<H>::dim});
  for (auto* t : {&x, &a, &dy})
    for (auto& v : *t) v = static_cast<float>(rng.normal());
  for (auto _ : state) {
    benchmark::DoNotOptimize(tp.forward(x, a).data());
    if (backward) benchmark::DoNotOptimize(tp.backward(dy).data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(static_cast<double>(tp.forward_flops(rows)) * (backward ? 3.0 : 1.0) * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK(BM_segnn_train_step)->Name("segnn/train_step")->ArgNames({"relaxed", "batch", "workers"})
    ->Args({0, 100, 1})->Args({0, 100, 2})->Args({1, 100, 1})->Args({1, 100, 2})->Args({0, 1000, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_segnn_forward)->Name("segnn/forward")->ArgNames({"batch"})->Arg(100)->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_tensor_product)->Name("segnn/tensor_product")->ArgNames({"rows", "backward"})
    ->Args({2000, 0})->Args({2000, 1})->Unit(benchmark::kMillisecond)->UseRealTime();
}  // namespace
