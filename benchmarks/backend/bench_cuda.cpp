// SPDX-License-Identifier: MIT
// The CUDA backend on the N-body EGNN (docs/method.md §8: 5 particles, complete graph, hidden 64, 4 layers, float):
// one training step (forward, MSE, backward, Adam; the loss is read back each step) and the forward alone, at batch
// 100, 1 000 and 10 000, and the same step on the Cpu backend for scale. Without a CUDA device the CUDA cases report
// an error ("no CUDA device") instead of a time. benchmarks/peers/egnn_torch.py runs the same network in PyTorch.
#include <benchmark/benchmark.h>

#include <ace/backend/cuda/cuda.hpp>
#include <ace/data/nbody.hpp>
#include <ace/models/egnn.hpp>
#include <ace/optim/adam.hpp>
#include <numeric>
#include <string>

namespace {
using namespace ace;

template <class B>
struct Setup {
  GraphBatch<float, B> batch;
  EGNNRegression<float, B> model;
  explicit Setup(std::size_t batch_size) : model(make()) {
    const data::NBodySamples s = data::make_nbody_samples({}, data::NBodySplit::train, batch_size, 1);
    std::vector<std::size_t> idx(batch_size);
    std::iota(idx.begin(), idx.end(), 0);
    batch = to_backend<B>(data::nbody_batch<float>(s, idx));
  }
  static EGNN<float, B> make() {
    Rng rng(1);
    return EGNN<float, B>(Graph::complete(5), {.node_features = 1, .edge_features = 2, .raw_features = 1,
                                               .hidden = 64, .layers = 4},
                          rng);
  }
};

template <class B>
bool have_device(benchmark::State& state) {
  if constexpr (std::is_same_v<B, Cuda>) {
    if (cuda::device_count() == 0) {
      state.SkipWithError("no CUDA device");
      return false;
    }
    state.SetLabel(cuda::device_name());
  }
  return true;
}

template <class B>
void BM_train_step(benchmark::State& state) {
  if (!have_device<B>(state)) return;
  const auto n = static_cast<std::size_t>(state.range(0));
  Setup<B> s(n);
  Adam<float, B> adam({.lr = 5e-4, .weight_decay = 1e-12});
  for (auto _ : state) {
    zero_grad(s.model);
    benchmark::DoNotOptimize(s.model.loss_and_gradients(s.batch));
    adam.step(s.model);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

template <class B>
void BM_forward(benchmark::State& state) {
  if (!have_device<B>(state)) return;
  Setup<B> s(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    benchmark::DoNotOptimize(s.model.predict(s.batch).data());
    if constexpr (std::is_same_v<B, Cuda>) cuda::synchronize();
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

BENCHMARK(BM_train_step<Cuda>)->Name("egnn/train_step/cuda")->ArgName("batch")->Arg(100)->Arg(1000)->Arg(10000)
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_forward<Cuda>)->Name("egnn/forward/cuda")->ArgName("batch")->Arg(100)->Arg(1000)->Arg(10000)
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_train_step<Cpu>)->Name("egnn/train_step/cpu")->ArgName("batch")->Arg(100)->Arg(1000)
    ->Unit(benchmark::kMillisecond)->UseRealTime();
}  // namespace
