// SPDX-License-Identifier: MIT
// The CUDA backend at the shapes of the PyTorch side-by-side scripts (benchmarks/peers/, --device cuda there):
//  * the N-body EGNN (docs/method.md §8: 5 particles, complete graph, hidden 64, 4 layers, float): one training step
//    (forward, MSE, backward, Adam; the loss is read back each step) and the forward alone, at batch 100, 1 000 and
//    10 000, and the step on the Cpu backend for scale;
//  * the same step through ConstrainedTrainer (strict: the plain EGNN; equality: the relaxed EGNN under ACE with the
//    Lagrangian's terms and the dual step), run step by step (advance: no copy to the host) and recorded once as a
//    CUDA graph and replayed (record / replay: one launch per step); each EGNN layer as the two fused operations
//    (the default on Cuda) and, for comparison, operation by operation ("layerwise": EGNNOptions::fused off);
//  * SEGNN in the ACE paper's N-body configuration through ConstrainedTrainer (strict and ACE equality, step by step
//    and as a CUDA graph) at batch 100 and 1 000: the authors' PyTorch + e3nn code takes 92 ms (strict) and 100 ms
//    (with the branches) per step at batch 100 on an NVIDIA H200 (docs/steerable.md);
//  * the DeepSets layer (batch 64, set size 100, 256 -> 256) forward+backward;
//  * the C4 group convolution (16 regular fields in and out = 64 -> 64 channels, 32x32, kernel 5, batch 32, both
//    layouts) forward+backward.
// Timings wait for the device (cuda::synchronize). Without a CUDA device the CUDA cases report an error
// ("no CUDA device") instead of a time.
#include <benchmark/benchmark.h>

#include <ace/backend/cuda/cuda.hpp>
#include <ace/constrained/trainer.hpp>
#include <ace/data/nbody.hpp>
#include <ace/group/cyclic.hpp>
#include <ace/models/egnn.hpp>
#include <ace/models/segnn.hpp>
#include <ace/nn/image/conv.hpp>
#include <ace/nn/set/set.hpp>
#include <ace/optim/adam.hpp>
#include <chrono>
#include <numeric>
#include <string>

namespace {
using namespace ace;

template <class B>
struct Setup {
  GraphBatch<float, B> batch;
  EGNNRegression<float, B> model;
  explicit Setup(std::size_t batch_size, bool relaxed = false, bool fused = true) : model(make(relaxed, fused)) {
    const data::NBodySamples s = data::make_nbody_samples({}, data::NBodySplit::train, batch_size, 1);
    std::vector<std::size_t> idx(batch_size);
    std::iota(idx.begin(), idx.end(), 0);
    batch = to_backend<B>(data::nbody_batch<float>(s, idx));
  }
  static EGNN<float, B> make(bool relaxed, bool fused) {
    Rng rng(1);
    return EGNN<float, B>(Graph::complete(5), {.node_features = 1, .edge_features = 2, .raw_features = 1,
                                               .hidden = 64, .layers = 4, .relaxed = relaxed, .fused = fused},
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

/// Times a trainer's steps on the device after one warm-up step (buffers and state allocated), as
/// benchmarks/peers/egnn_torch.py times PyTorch: steps queue freely, the device is waited for every 50 steps;
/// `recorded`: one CUDA graph replayed per step, else advance.
template <bool recorded, class Trainer, class Batch>
void time_trainer_steps(benchmark::State& state, Trainer& trainer, const Batch& batch) {
  trainer.advance(batch);
  const auto time_steps = [&](auto&& run) {
    constexpr int group = 50;
    for (auto _ : state) {
      const auto start = std::chrono::steady_clock::now();
      for (int k = 0; k < group; ++k) run();
      cuda::synchronize();
      state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / group);
    }
  };
  if constexpr (recorded) {
    auto step = trainer.record(batch);
    time_steps([&] { step.replay(); });
  } else {
    time_steps([&] { trainer.advance(batch); });
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));  // per step: the manual time is one step's
}

/// The ACE trainer's step on the device: Policy = StrictBaseline (the plain EGNN) or EqualityConstraint (the relaxed
/// EGNN); `recorded`: one CUDA graph replayed per step, else advance. Both copy nothing to the host per step.
/// `fused`: the EGNN layers as fused operations, else operation by operation.
template <class Policy, bool recorded, bool fused = true>
void BM_trainer_step(benchmark::State& state) {
  if (!have_device<Cuda>(state)) return;
  const auto n = static_cast<std::size_t>(state.range(0));
  Setup<Cuda> s(n, !std::is_same_v<Policy, StrictBaseline>, fused);
  ConstrainedTrainer trainer(s.model, Adam<float, Cuda>({.lr = 5e-4, .weight_decay = 1e-12}), Policy{},
                             DualSGD{.lr = 1e-3});
  time_trainer_steps<recorded>(state, trainer, s.batch);
}

/// The SEGNN of the ACE paper's N-body runs (hidden 32x0e + 32x1o, 4 layers; relaxed under ACE equality) through
/// ConstrainedTrainer with the paper's optimisers (Adam 9e-4, dual Adam 8e-4), step by step or recorded.
template <class Policy, bool recorded>
void BM_segnn_trainer_step(benchmark::State& state) {
  if (!have_device<Cuda>(state)) return;
  const auto n = static_cast<std::size_t>(state.range(0));
  Rng rng(1);
  const bool relaxed = !std::is_same_v<Policy, StrictBaseline>;
  SEGNNRegression<float, Cuda> model(SEGNN<float, Cuda>(Graph::complete(5), {.layers = 4, .relaxed = relaxed}, rng));
  const data::NBodySamples samples = data::make_nbody_samples({}, data::NBodySplit::train, n, 1);
  std::vector<std::size_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  const auto batch = to_backend<Cuda>(data::nbody_batch<float>(samples, idx));
  ConstrainedTrainer trainer(model, Adam<float, Cuda>({.lr = 9e-4}), Policy{}, DualAdam{.lr = 8e-4});
  time_trainer_steps<recorded>(state, trainer, batch);
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

/// forward + backward of a layer on a random batch, on backend B.
template <class M>
void BM_layer_forward_backward(benchmark::State& state) {
  using B = typename M::backend;
  if (!have_device<B>(state)) return;
  const auto batch = static_cast<std::size_t>(state.range(0));
  Rng rng(1);
  M layer(rng);
  const auto host_input = [&](std::size_t dim) {
    Tensor<float, 2> t({batch, dim});
    for (auto& v : t) v = static_cast<float>(rng.normal());
    return to_backend<B>(t);
  };
  const auto x = host_input(M::input::dim);
  const auto dy = host_input(M::output::dim);
  for (auto _ : state) {
    zero_grad(layer);
    layer.forward(x);
    benchmark::DoNotOptimize(layer.backward(dy).data());
    if constexpr (std::is_same_v<B, Cuda>) cuda::synchronize();
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

using DeepSetsCuda = DeepSets<float, 100, 256, 256, Cuda>;
template <Layout L>
using GroupConvCuda = GroupConv2d<float, Image<Multiple<Regular<Cyclic<4>>, 16>, 32, 32, L>,
                                  Multiple<Regular<Cyclic<4>>, 16>, same_padding(5), Cuda>;

BENCHMARK(BM_layer_forward_backward<DeepSetsCuda>)->Name("deepsets/forward+backward/cuda/B64_N100_F256")->Arg(64)
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_layer_forward_backward<GroupConvCuda<Layout::channels_last>>)
    ->Name("conv/group_c4/channels_last/forward+backward/cuda/B32")->Arg(32)->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_layer_forward_backward<GroupConvCuda<Layout::channels_first>>)
    ->Name("conv/group_c4/channels_first/forward+backward/cuda/B32")->Arg(32)->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_train_step<Cuda>)->Name("egnn/train_step/cuda")->ArgName("batch")->Arg(100)->Arg(1000)->Arg(10000)
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_trainer_step<StrictBaseline, false>)->Name("egnn/trainer_step/strict/advance/cuda")->ArgName("batch")
    ->Arg(100)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond)->UseManualTime();
BENCHMARK(BM_trainer_step<StrictBaseline, true>)->Name("egnn/trainer_step/strict/cuda_graph/cuda")->ArgName("batch")
    ->Arg(100)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond)->UseManualTime();
BENCHMARK(BM_trainer_step<StrictBaseline, true, false>)->Name("egnn/trainer_step/strict/cuda_graph/layerwise/cuda")
    ->ArgName("batch")->Arg(100)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond)->UseManualTime();
BENCHMARK(BM_trainer_step<EqualityConstraint, false>)->Name("egnn/trainer_step/ace_equality/advance/cuda")
    ->ArgName("batch")->Arg(100)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond)->UseManualTime();
BENCHMARK(BM_trainer_step<EqualityConstraint, true>)->Name("egnn/trainer_step/ace_equality/cuda_graph/cuda")
    ->ArgName("batch")->Arg(100)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond)->UseManualTime();
BENCHMARK(BM_trainer_step<EqualityConstraint, true, false>)
    ->Name("egnn/trainer_step/ace_equality/cuda_graph/layerwise/cuda")->ArgName("batch")->Arg(100)->Arg(1000)
    ->Arg(10000)->Unit(benchmark::kMillisecond)->UseManualTime();
BENCHMARK(BM_segnn_trainer_step<StrictBaseline, false>)->Name("segnn/trainer_step/strict/advance/cuda")
    ->ArgName("batch")->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond)->UseManualTime();
BENCHMARK(BM_segnn_trainer_step<StrictBaseline, true>)->Name("segnn/trainer_step/strict/cuda_graph/cuda")
    ->ArgName("batch")->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond)->UseManualTime();
BENCHMARK(BM_segnn_trainer_step<EqualityConstraint, true>)->Name("segnn/trainer_step/ace_equality/cuda_graph/cuda")
    ->ArgName("batch")->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond)->UseManualTime();
BENCHMARK(BM_forward<Cuda>)->Name("egnn/forward/cuda")->ArgName("batch")->Arg(100)->Arg(1000)->Arg(10000)
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_train_step<Cpu>)->Name("egnn/train_step/cpu")->ArgName("batch")->Arg(100)->Arg(1000)
    ->Unit(benchmark::kMillisecond)->UseRealTime();
}  // namespace
