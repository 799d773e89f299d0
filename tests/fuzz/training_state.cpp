// SPDX-License-Identifier: MIT
// libFuzzer target: a training state (load_training_state: the checkpoint directory a resumed run restores, all or
// nothing). The input holds the directory's files cut at "\n=ACE=\n" lines: the manifest, then t0.npy, t1.npy, ...
// A state that loads must leave a trainer that takes a step and saves again; a refused one must leave the trainer
// exactly as it was. The seed is a real state of this target's trainer:
//   build/fuzz/tests/fuzz/fuzz_training_state -ace_write_seed=tests/fuzz/corpus/training_state/state.ckpt
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "ace/constrained/checkpoint.hpp"
#include "ace/constrained/supervised.hpp"
#include "ace/constrained/trainer.hpp"
#include "ace/nn/core/linear.hpp"
#include "ace/nn/core/loss.hpp"
#include "ace/nn/core/relaxed.hpp"
#include "ace/nn/core/sequential.hpp"
#include "ace/optim/adam.hpp"
#include "checkpoint_parts.hpp"

namespace {
using R = ace::Features<8>;  // plain channels: the trainer, not a group, is what this target exercises
using Net = ace::Sequential<ace::Relaxed<ace::Linear<float, R, R>, ace::Linear<float, R, R>>>;
using Model = ace::SupervisedModel<Net, ace::MSELoss<float>>;
using Trainer = ace::ConstrainedTrainer<Model, ace::Adam<float>, ace::ResilientConstraint, ace::DualAdam>;

struct Run {
  ace::Rng init{7};
  Model model{Net(init)};
  Trainer trainer{model, ace::Adam<float>({.lr = 1e-2f}), ace::ResilientConstraint{}, ace::DualAdam{.lr = 1e-2}};
  ace::Tensor<float, 2> x{ace::Tensor<float, 2>::shape_type{4, R::dim}}, y{ace::Tensor<float, 2>::shape_type{4, R::dim}};
  Run() {
    ace::Rng data(3);
    for (auto& v : x) v = static_cast<float>(data.normal());
    for (auto& v : y) v = static_cast<float>(data.normal());
  }
  void step() { trainer.step(Model::batch{x, y}); }
  /// Everything visit_state covers, as bytes.
  std::string state() {
    std::string s;
    trainer.visit_state(Collect{&s});
    return s;
  }
  struct Collect {
    std::string* out;
    template <class S>
    void tensor(const std::string& name, ace::VectorRef<S> v, ace::on_backend<ace::Cpu>) {
      *out += name;
      out->append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(S));
    }
    void counter(const std::string& name, std::size_t& n) { *out += name + std::to_string(n); }
  };
};
}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  constexpr const char* flag = "-ace_write_seed=";
  for (int i = 1; i < *argc; ++i) {
    if (std::strncmp((*argv)[i], flag, std::strlen(flag)) != 0) continue;
    Run run;  // two steps in: moments, multipliers and slacks away from their initial values
    run.step();
    run.step();
    const auto dir = ace::fuzz::scratch_directory() / "seed";
    ace::save_training_state(dir, run.trainer, ace::TrainingPosition{1, 2});
    ace::fuzz::write_file((*argv)[i] + std::strlen(flag), ace::fuzz::packed_checkpoint(dir));
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto dir =
      ace::fuzz::write_parts("training_state", ace::fuzz::chars(data, size), ace::fuzz::checkpoint_part);
  Run run;
  const std::string before = run.state();
  bool loaded = false;
  ace::fuzz::refusing_cleanly([&] {
    ace::load_training_state(dir, run.trainer);
    loaded = true;
  });
  if (!loaded) {
    ace::fuzz::require(run.state() == before);  // all or nothing
    return 0;
  }
  ace::fuzz::refusing_cleanly([&] { run.step(); });  // loaded values may be anything finite or not: a clean refusal
  ace::save_training_state(ace::fuzz::scratch_directory() / "resaved", run.trainer, 0);
  return 0;
}
