// SPDX-License-Identifier: MIT
// The N-body EGNN (docs/method.md §8: 5 particles, complete graph, hidden 64, 4 layers, batch 100, float): one training
// step (forward, MSE, backward, Adam) and the forward alone, strict and relaxed. Reports training samples per
// second ("items_per_second"); workers = EGNNRegressionOptions::workers (data parallelism over the batch). benchmarks/peers/egnn_torch.py runs the same network in PyTorch.
#include <benchmark/benchmark.h>

#include <ace/ace.hpp>
#include <numeric>

namespace {
using namespace ace;

struct Setup {
  GraphBatch<float> batch;
  EGNNRegression<float> model;
  Setup(bool relaxed, std::size_t batch_size, std::size_t workers = 1)
      : model(make(relaxed), {.workers = workers}) {
    const data::NBodySamples s = data::make_nbody_samples({}, data::NBodySplit::train, batch_size, 1);
    std::vector<std::size_t> idx(batch_size);
    std::iota(idx.begin(), idx.end(), 0);
    batch = data::nbody_batch<float>(s, idx);
  }
  static EGNN<float> make(bool relaxed) {
    Rng rng(1);
    return EGNN<float>(Graph::complete(5), {.node_features = 1, .edge_features = 2, .raw_features = 1, .hidden = 64,
                                            .layers = 4, .relaxed = relaxed},
                       rng);
  }
};

void BM_egnn_train_step(benchmark::State& state) {
  Setup s(state.range(0) != 0, static_cast<std::size_t>(state.range(1)), static_cast<std::size_t>(state.range(2)));
  Adam<float> adam({.lr = 5e-4, .weight_decay = 1e-12});
  for (auto _ : state) {
    zero_grad(s.model);
    benchmark::DoNotOptimize(s.model.loss_and_gradients(s.batch));
    adam.step(s.model);
  }
  state.SetItemsProcessed(state.iterations() * state.range(1));
}

void BM_egnn_forward(benchmark::State& state) {
  Setup s(state.range(0) != 0, static_cast<std::size_t>(state.range(1)));
  for (auto _ : state) benchmark::DoNotOptimize(s.model.predict(s.batch).data());
  state.SetItemsProcessed(state.iterations() * state.range(1));
}

BENCHMARK(BM_egnn_train_step)->Name("egnn/train_step")->ArgNames({"relaxed", "batch", "workers"})
    ->Args({0, 100, 1})->Args({0, 100, 2})->Args({0, 100, 4})->Args({0, 100, 10})->Args({1, 100, 1})->Args({1, 100, 2})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_egnn_forward)->Name("egnn/forward")->ArgNames({"relaxed", "batch"})
    ->Args({0, 100})->Unit(benchmark::kMillisecond)->UseRealTime();
}  // namespace
