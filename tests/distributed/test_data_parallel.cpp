// SPDX-License-Identifier: MIT
// DataParallel in one process (SingleProcess): one shard is the plain model bit for bit; several shards are the
// plain model's gradient of the global mean up to rounding; bad shards are clear errors. The same model over MPI
// ranks against a single process: test_mpi.cpp.
#include <cstring>
#include <deque>

#include "../support.hpp"
#include "ace/constrained/trainer.hpp"
#include "ace/backend/reference/reference.hpp"
#include "ace/distributed/on_rank_zero.hpp"
#include "ace/optim/adam.hpp"
#include "model_support.hpp"

using namespace ace;
using test::ShardModel;
using test::ShardNet;

namespace {
using Trace = test::EqualityTrace;

/// test::train_equality with a new communicator Comm.
template <class Comm = SingleProcess, class T = double, class B = Cpu>
Trace train(std::size_t shards, ShardReduction reduction = ShardReduction::shard_order) {
  Comm comm;
  return test::train_equality<T, B>(comm, shards, reduction);
}

using test::same_bits;
}  // namespace

TEST_CASE("DataParallel over one shard trains as the plain model, bit for bit", "[distributed][data_parallel]") {
  const Trace plain = train(0), one = train(1);
  CHECK(same_bits(plain.parameters, one.parameters));
  CHECK(same_bits(plain.multipliers, one.multipliers));
  CHECK(same_bits(plain.losses, one.losses));
}

TEST_CASE("DataParallel over several shards trains as the plain model, up to rounding",
          "[distributed][data_parallel]") {
  const Trace plain = train(0);
  for (const std::size_t shards : {std::size_t{3}, std::size_t{8}}) {
    CAPTURE(shards);
    const Trace sharded = train(shards);
    REQUIRE(sharded.parameters.size() == plain.parameters.size());
    for (std::size_t i = 0; i < plain.parameters.size(); ++i)
      CHECK(sharded.parameters[i] == Approx(plain.parameters[i]).margin(1e-11));
    for (std::size_t i = 0; i < plain.losses.size(); ++i)
      CHECK(sharded.losses[i] == Approx(plain.losses[i]).epsilon(1e-12));
    CHECK(sharded.multipliers[0] == Approx(plain.multipliers[0]).margin(1e-12));
    CHECK(plain.multipliers[0] != 0.0);  // the dual step ran
  }
}

/// SingleProcess with DataParallel's rows in the Cpu backend's tensors (ace::Nccl's path on the GPU).
using CpuRows = test::InBackendMemory<SingleProcess, Cpu>;
using ReferenceRows = test::InBackendMemory<SingleProcess, Reference>;

TEST_CASE("DataParallel with its rows in the backend's memory trains as with host rows, bit for bit in double",
          "[distributed][data_parallel]") {
  const auto check_same = [](const Trace& a, const Trace& b) {
    CHECK(same_bits(a.parameters, b.parameters));
    CHECK(same_bits(a.multipliers, b.multipliers));
    CHECK(same_bits(a.losses, b.losses));
  };
  check_same(train<CpuRows>(3), train<SingleProcess>(3));
  check_same(train<CpuRows>(1), train(0));  // one shard: the plain model
  check_same(train<CpuRows>(4, ShardReduction::all_reduce), train<SingleProcess>(4, ShardReduction::all_reduce));
  check_same(train<ReferenceRows, double, Reference>(3), train<SingleProcess, double, Reference>(3));
  // Reference and Cpu compute the same model to rounding; the rows add them alike.
  const Trace reference = train<ReferenceRows, double, Reference>(3), cpu = train<CpuRows>(3);
  for (std::size_t i = 0; i < cpu.parameters.size(); ++i)
    CHECK(reference.parameters[i] == Approx(cpu.parameters[i]).margin(1e-11));
}

TEST_CASE("DataParallel with float rows in the backend's memory: the host rows' training up to float rounding",
          "[distributed][data_parallel]") {
  const Trace in_backend = train<CpuRows, float>(3), host = train<SingleProcess, float>(3);
  REQUIRE(in_backend.parameters.size() == host.parameters.size());
  for (std::size_t i = 0; i < host.parameters.size(); ++i)
    CHECK(in_backend.parameters[i] == Approx(host.parameters[i]).margin(2e-5));
  for (std::size_t i = 0; i < host.losses.size(); ++i)
    CHECK(in_backend.losses[i] == Approx(host.losses[i]).epsilon(1e-5));
  CHECK(in_backend.multipliers[0] == Approx(host.multipliers[0]).margin(1e-5));
}

TEMPLATE_TEST_CASE("DataParallel: evaluation reduces the loss, and bad shards are errors",
                   "[distributed][data_parallel]", SingleProcess, CpuRows) {
  Rng init(3);
  ShardModel model{ShardNet(init)};
  TestType comm;
  DataParallel parallel(model, comm, 4);
  Tensor<double, 2> x, y;
  std::deque<Tensor<double, 2>> store;
  test::global_batch(0, 10, x, y);  // 10 samples in 4 shards: 2, 3, 2, 3
  auto shards = test::local_shards(parallel.plan(), x, y, store);
  CHECK(shards.shares == std::vector<double>{0.2, 0.3, 0.2, 0.3});
  CHECK(parallel.loss(shards) == Approx(model.loss({x, y})).epsilon(1e-13));

  auto missing = shards;
  missing.parts.pop_back();
  CHECK_THROWS_WITH(parallel.loss_and_gradients(missing),
                    Catch::Contains("holds 4 of the 4 shards, but its batch has 3 parts"));
  auto short_shares = shards;
  short_shares.shares[0] = 0.1;
  CHECK_THROWS_WITH(parallel.loss_and_gradients(short_shares), Catch::Contains("add up to 0.9, not 1"));
  auto zero = shards;
  zero.shares[1] = 0.0;
  CHECK_THROWS_AS(parallel.loss(zero), invalid_argument);
  CHECK_THROWS_WITH(shard_range(3, parallel.plan(), 0), Catch::Contains("fewer samples than the 4 shards"));
  CHECK(parallel.signature().find("DataParallel(4 shards)") != std::string::npos);
  // The gradients accumulate: a second call without zeroing them doubles them.
  zero_grad(parallel);
  parallel.loss_and_gradients(shards);
  std::vector<double> once;
  model.for_each_parameter(
      [&](ParamView<double> p) { once.insert(once.end(), p.grad.data(), p.grad.data() + p.grad.size()); });
  parallel.loss_and_gradients(shards);
  std::size_t parameters = 0, doubled = 0;
  model.for_each_parameter([&](ParamView<double> p) {
    for (std::size_t i = 0; i < p.grad.size(); ++i)
      doubled += p.grad.data()[i] == Approx(2 * once[parameters + i]).margin(1e-15) ? 1 : 0;
    parameters += p.value.size();
  });
  CHECK(doubled == parameters);
  CHECK(parallel.row_values() == parameters + 2);
  CHECK(parallel.reduction_seconds() > 0.0);  // the reductions above were timed
  parallel.reset_reduction_seconds();
  CHECK(parallel.reduction_seconds() == 0.0);
}

namespace {
struct Hooks {  // counts the hooks it sees; asks to stop after epoch `stop_after`
  std::size_t begins = 0, steps = 0, batch_ends = 0, epochs = 0, ends = 0, stop_after = 0;
  template <class Tr>
  void on_fit_begin(Tr&, std::size_t) { ++begins; }
  template <class Tr>
  void on_step(Tr&, const StepReport&) { ++steps; }
  template <class Tr>
  void on_batch_end(Tr&, const TrainingPosition&) { ++batch_ends; }
  template <class Tr>
  bool on_epoch_end(Tr&, const EpochSummary& s) { return ++epochs, s.epoch == stop_after; }
  template <class Tr>
  void on_fit_end(Tr&, const FitResult&) { ++ends; }
};
struct EpochsOnly {  // only on_epoch_end, returning nothing
  std::size_t epochs = 0;
  template <class Tr>
  void on_epoch_end(Tr&, const EpochSummary&) { ++epochs; }
};
}  // namespace

TEST_CASE("OnRankZero forwards every hook on rank 0 and its stop answer", "[distributed][fit]") {
  Rng init(3);
  ShardModel model{ShardNet(init)};
  SingleProcess comm;
  DataParallel parallel(model, comm, 2);
  ConstrainedTrainer trainer(parallel, Adam<double>({.lr = 1e-2}), EqualityConstraint{});
  Tensor<double, 2> x, y;
  std::deque<Tensor<double, 2>> store;
  const auto batches = test::epoch_batches(parallel, 8, x, y, store);
  Hooks hooks{.stop_after = 2};
  EpochsOnly plain;
  OnRankZero wrapped(hooks, comm);
  OnRankZero wrapped_plain(plain, comm);
  const FitResult r = fit(trainer, 5, batches, [](EpochSummary&) {}, 0, wrapped, wrapped_plain);
  CHECK(r.status == FitStatus::stopped_early);
  CHECK(r.epochs == 2);
  CHECK(hooks.begins == 1);
  CHECK(hooks.steps == 6);
  CHECK(hooks.batch_ends == 6);
  CHECK(hooks.epochs == 2);
  CHECK(hooks.ends == 1);
  CHECK(plain.epochs == 2);
}
