// SPDX-License-Identifier: MIT
// The per-step overhead of the primal–dual trainer over a plain optimiser step on the same model and batch: a
// two-layer relaxed D4 network (16 regular fields = 128 channels, batch 128, float), Adam on the primal side.
// "plain" = zero_grad + loss_and_gradients + Adam step; "ace-*" = ConstrainedTrainer::step with that policy.
// The "bookkeeping/*" pairs run the same steps on a model whose loss_and_gradients does no work (same parameter
// tensors, same relaxation switch): their difference is the trainer's own cost per step, measured without the
// forward/backward noise that swamps it in the full-step comparison.
#include <benchmark/benchmark.h>

#include <ace/ace.hpp>

namespace {
using namespace ace;
using G = Dihedral<4>;
using R = Multiple<Regular<G>, 16>;
using Layer = Relaxed<EquivariantLinear<float, R, R>, Linear<float, R, R>>;
using Net = Sequential<Layer, ReLU<float, R>, Layer>;
using Model = SupervisedModel<Net, MSELoss<float>>;
constexpr std::size_t batch = 128;

struct Setup {
  Rng rng{1};
  Model model{Net(rng)};
  Tensor<float, 2> x{Tensor<float, 2>::shape_type{batch, R::dim}}, y{Tensor<float, 2>::shape_type{batch, R::dim}};
  Setup() {
    for (auto& v : x) v = static_cast<float>(rng.normal());
    for (auto& v : y) v = static_cast<float>(rng.normal());
  }
};

void BM_plain_step(benchmark::State& state) {
  Setup s;
  Adam<float> adam({.lr = 1e-4});
  for (auto _ : state) {
    zero_grad(s.model);
    benchmark::DoNotOptimize(s.model.loss_and_gradients({s.x, s.y}));
    adam.step(s.model);
  }
}

template <class Policy>
void BM_trainer_step(benchmark::State& state) {
  Setup s;
  ConstrainedTrainer trainer(s.model, Adam<float>({.lr = 1e-4}), Policy{}, DualSGD{.lr = 1e-4});
  for (auto _ : state) benchmark::DoNotOptimize(trainer.step({s.x, s.y}).loss);
}

/// The model's parameters and relaxation switch without its forward and backward passes.
struct NoWorkModel {
  using scalar = float;
  using batch = Model::batch;
  Model& inner;
  double loss_and_gradients(const batch&) { return 1.0; }
  void set_relaxation(bool on) { inner.set_relaxation(on); }
  template <class F>
  void for_each_parameter(F&& f) {
    inner.for_each_parameter(f);
  }
};

void BM_plain_bookkeeping(benchmark::State& state) {
  Setup s;
  NoWorkModel model{s.model};
  Adam<float> adam({.lr = 1e-4});
  for (auto _ : state) {
    zero_grad(model);
    benchmark::DoNotOptimize(model.loss_and_gradients({s.x, s.y}));
    adam.step(model);
  }
}

template <class Policy>
void BM_trainer_bookkeeping(benchmark::State& state) {
  Setup s;
  NoWorkModel model{s.model};
  ConstrainedTrainer trainer(model, Adam<float>({.lr = 1e-4}), Policy{}, DualSGD{.lr = 1e-4});
  for (auto _ : state) benchmark::DoNotOptimize(trainer.step({s.x, s.y}).loss);
}

BENCHMARK(BM_plain_step)->Name("step/plain-adam")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_trainer_step<EqualityConstraint>)->Name("step/ace-equality")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_trainer_step<ResilientConstraint>)->Name("step/ace-resilient")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_plain_bookkeeping)->Name("bookkeeping/plain-adam")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_trainer_bookkeeping<EqualityConstraint>)->Name("bookkeeping/ace-equality")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_trainer_bookkeeping<ResilientConstraint>)
    ->Name("bookkeeping/ace-resilient")
    ->Unit(benchmark::kMicrosecond);
}  // namespace
