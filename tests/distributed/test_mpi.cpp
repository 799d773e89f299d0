// SPDX-License-Identifier: MIT
// ace::Mpi under mpiexec (1, 2 or 3 ranks; tests/CMakeLists.txt): every collective, the shard reduction against a
// single process's bits, an ACE trainer over DataParallel against a single process's bits (float64), and the errors
// every rank must see. The program fails on every rank when one fails.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstring>
#include <deque>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "ace/constrained/callbacks.hpp"
#include "ace/constrained/trainer.hpp"
#include "ace/distributed/mpi.hpp"
#include "ace/distributed/on_rank_zero.hpp"
#include "ace/optim/adam.hpp"
#include "model_support.hpp"
#include "shard_support.hpp"

using namespace ace;

TEST_CASE("Mpi: rank, size and every collective", "[mpi]") {
  Mpi comm;
  const std::size_t r = comm.rank(), n = comm.size();
  REQUIRE(r < n);

  const std::vector<double> mine{double(r), 10.0 * double(r) + 1};
  std::vector<double> all(2 * n);
  comm.all_gather(std::span<const double>(mine), std::span<double>(all));
  for (std::size_t k = 0; k < n; ++k) {
    CHECK(all[2 * k] == double(k));
    CHECK(all[2 * k + 1] == 10.0 * double(k) + 1);
  }
  const std::uint64_t tag = 1000 + r;
  std::vector<std::uint64_t> tags(n);
  comm.all_gather(std::span<const std::uint64_t>(&tag, 1), std::span<std::uint64_t>(tags));
  for (std::size_t k = 0; k < n; ++k) CHECK(tags[k] == 1000 + k);

  std::vector<float> sum{1.0f, float(r)};
  comm.all_reduce_sum(std::span<float>(sum));
  CHECK(sum[0] == float(n));
  CHECK(sum[1] == float(n * (n - 1) / 2));

  std::vector<double> values{double(r) + 0.5, -double(r)};
  comm.broadcast(std::span<double>(values), n - 1);
  CHECK(values == std::vector<double>{double(n - 1) + 0.5, -double(n - 1)});
  comm.barrier();

  // One machine: every rank is on it, in rank order.
  CHECK(comm.node_rank() == r);
  CHECK(comm.node_size() == n);

  CHECK_THROWS_AS(comm.broadcast(std::span<double>(values), n), communication_error);  // checked before MPI
  std::vector<double> wrong(2 * n + 1);
  CHECK_THROWS_AS(comm.all_gather(std::span<const double>(mine), std::span<double>(wrong)), communication_error);
}

TEMPLATE_TEST_CASE("Mpi: reduce_shards gives the bits of a single process for any rank count", "[mpi]", float,
                   double) {
  using T = TestType;
  Mpi comm;
  constexpr std::size_t width = 257;
  for (const std::size_t per_rank : {std::size_t{1}, std::size_t{4}}) {
    const std::size_t shards = per_rank * comm.size() * (comm.size() == 3 ? 1 : 6 / comm.size());  // 6 or 12 for 1–2
    const ShardPlan plan(shards, comm);
    const auto mine = test::shard_rows<T>(5, plan.first(), plan.per_rank(), width);
    std::vector<T> out(width), scratch;
    reduce_shards(comm, plan, std::span<const T>(mine), width, std::span<T>(out), scratch);

    const SingleProcess alone;  // the reference: every shard computed here, the same shard count
    const auto every = test::shard_rows<T>(5, 0, shards, width);
    std::vector<T> reference(width);
    reduce_shards(alone, ShardPlan(shards, alone), std::span<const T>(every), width, std::span<T>(reference), scratch);
    CHECK(std::memcmp(out.data(), reference.data(), width * sizeof(T)) == 0);
  }
}

TEST_CASE("Mpi: a shard count the ranks do not divide, and ranks that disagree, fail on every rank", "[mpi]") {
  Mpi comm;
  if (comm.size() > 1) CHECK_THROWS_AS(ShardPlan(comm.size() + 1, comm), invalid_argument);
  CHECK_NOTHROW(require_same_on_all_ranks(comm, "EGNN 4 layers, 8 shards", "model signature"));
  if (comm.size() > 1) {
    const std::string mine = comm.rank() == 1 ? "EGNN 3 layers, 8 shards" : "EGNN 4 layers, 8 shards";
    CHECK_THROWS_WITH(require_same_on_all_ranks(comm, mine, "model signature"),
                      Catch::Contains("the ranks disagree on the model signature: rank(s) 1 differ from rank 0"));
  }
  comm.barrier();  // every rank got here: none is left waiting in a collective
}

namespace {
struct Trace {
  std::vector<double> parameters, multipliers, slacks, losses, evaluations;
};

/// 10 steps of ACE resilient (Adam on θ and γ, Adam dual ascent, slacks) on global batches of 30 samples in `shards`
/// shards over `comm`, each rank initialising its model from its own seed (DataParallel copies rank 0's).
template <class Comm>
Trace train(Comm& comm, std::size_t shards, std::uint64_t init_seed,
            ShardReduction reduction = ShardReduction::shard_order) {
  Rng init(init_seed);
  test::ShardModel model{test::ShardNet(init)};
  DataParallel parallel(model, comm, shards, reduction);
  ConstrainedTrainer trainer(parallel, Adam<double>({.lr = 1e-2}), ResilientConstraint{}, DualAdam{.lr = 1e-2});
  Trace t;
  Tensor<double, 2> x, y;
  std::deque<Tensor<double, 2>> store;
  for (std::size_t step = 0; step < 10; ++step) {
    test::global_batch(step, 30, x, y);
    t.losses.push_back(trainer.step(test::local_shards(parallel.plan(), x, y, store)).loss);
  }
  const Evaluation e = trainer.evaluate(test::local_shards(parallel.plan(), x, y, store));
  t.evaluations = {e.deployed, e.relaxed};
  t.multipliers = trainer.multipliers();
  t.slacks = trainer.slacks();
  t.parameters = test::parameter_values(model);
  return t;
}

using test::same_bits;
}  // namespace

TEST_CASE("Mpi: an ACE trainer over DataParallel gives a single process's parameters, multipliers and losses bit for "
          "bit", "[mpi][data_parallel]") {
  Mpi comm;
  const std::size_t shards = comm.size() == 3 ? 6 : 4;  // 4 on 1 or 2 ranks, 6 on 3
  const Trace ranks = train(comm, shards, 100 + comm.rank());  // the ranks start from different weights
  SingleProcess alone;
  const Trace reference = train(alone, shards, 100);  // rank 0's weights, every shard here
  CHECK(same_bits(ranks.parameters, reference.parameters));
  CHECK(same_bits(ranks.multipliers, reference.multipliers));
  CHECK(same_bits(ranks.slacks, reference.slacks));
  CHECK(same_bits(ranks.losses, reference.losses));
  CHECK(same_bits(ranks.evaluations, reference.evaluations));
  CHECK(reference.multipliers[0] != 0.0);
}

TEST_CASE("Mpi: DataParallel with the all-reduce: a single process's training up to rounding, the same on every rank",
          "[mpi][data_parallel]") {
  Mpi comm;
  const std::size_t shards = comm.size() == 3 ? 6 : 4;
  const Trace ranks = train(comm, shards, 100 + comm.rank(), ShardReduction::all_reduce);
  SingleProcess alone;
  const Trace reference = train(alone, shards, 100);
  REQUIRE(ranks.parameters.size() == reference.parameters.size());
  for (std::size_t i = 0; i < ranks.parameters.size(); ++i)
    CHECK(ranks.parameters[i] == Approx(reference.parameters[i]).margin(1e-12));
  for (std::size_t i = 0; i < ranks.losses.size(); ++i)
    CHECK(ranks.losses[i] == Approx(reference.losses[i]).epsilon(1e-12));
  // Every rank holds rank 0's parameters, bit for bit.
  std::vector<double> first = ranks.parameters;
  comm.broadcast(std::span<double>(first), 0);
  CHECK(same_bits(first, ranks.parameters));
  Rng init(1);
  test::ShardModel model{test::ShardNet(init)};
  CHECK(DataParallel(model, comm, shards, ShardReduction::all_reduce).reduction() == ShardReduction::all_reduce);
}

TEST_CASE("Mpi: DataParallel with its rows in the backend's memory (ace::Nccl's path) gives a single process's bits",
          "[mpi][data_parallel]") {
  test::InBackendMemory<Mpi, Cpu> comm;  // Mpi's collectives handed the Cpu tensors' memory
  const std::size_t shards = comm.size() == 3 ? 6 : 4;
  const Trace ranks = train(comm, shards, 100 + comm.rank());
  SingleProcess alone;
  const Trace reference = train(alone, shards, 100);  // rows in host memory
  CHECK(same_bits(ranks.parameters, reference.parameters));
  CHECK(same_bits(ranks.multipliers, reference.multipliers));
  CHECK(same_bits(ranks.slacks, reference.slacks));
  CHECK(same_bits(ranks.losses, reference.losses));
  CHECK(same_bits(ranks.evaluations, reference.evaluations));
  const Trace reduced = train(comm, shards, 100 + comm.rank(), ShardReduction::all_reduce);
  for (std::size_t i = 0; i < reduced.parameters.size(); ++i)
    CHECK(reduced.parameters[i] == Approx(reference.parameters[i]).margin(1e-12));
  // One rank's bad shards stop every rank.
  Rng init(1);
  test::ShardModel model{test::ShardNet(init)};
  DataParallel parallel(model, comm, 2 * comm.size());
  static_assert(decltype(parallel)::rows_in_backend);
  Tensor<double, 2> x, y;
  std::deque<Tensor<double, 2>> store;
  test::global_batch(0, 20, x, y);
  auto bad = test::local_shards(parallel.plan(), x, y, store);
  if (comm.rank() == 0) bad.shares[0] = 2.0;
  if (comm.rank() == 0)
    CHECK_THROWS_WITH(parallel.loss_and_gradients(bad), Catch::Contains("must be in (0, 1], got 2"));
  else
    CHECK_THROWS_WITH(parallel.loss_and_gradients(bad), Catch::Contains("another rank's shards were invalid"));
  comm.barrier();
}

TEST_CASE("Mpi: ranks that choose different reductions fail on every rank", "[mpi][data_parallel]") {
  Mpi comm;
  if (comm.size() == 1) return;
  Rng init(1);
  test::ShardModel model{test::ShardNet(init)};
  const auto reduction = comm.rank() == 1 ? ShardReduction::all_reduce : ShardReduction::shard_order;
  CHECK_THROWS_AS(DataParallel(model, comm, comm.size(), reduction), communication_error);
}

TEST_CASE("Mpi: one rank's bad shards stop every rank with an error", "[mpi][data_parallel]") {
  Mpi comm;
  Rng init(1);
  test::ShardModel model{test::ShardNet(init)};
  DataParallel parallel(model, comm, 2 * comm.size());
  Tensor<double, 2> x, y;
  std::deque<Tensor<double, 2>> store;
  test::global_batch(0, 20, x, y);
  auto shards = test::local_shards(parallel.plan(), x, y, store);
  if (comm.rank() == comm.size() - 1) shards.parts.pop_back();  // the last rank lost a shard
  if (comm.rank() == comm.size() - 1)
    CHECK_THROWS_WITH(parallel.loss_and_gradients(shards), Catch::Contains("but its batch has 1 parts"));
  else
    CHECK_THROWS_WITH(parallel.loss_and_gradients(shards), Catch::Contains("another rank's shards were invalid"));
  comm.barrier();
}

namespace {
struct StopAfter {  // rank 0's callback asks to stop after epoch 2; counts the steps it saw
  std::size_t steps = 0;
  template <class Tr>
  void on_step(Tr&, const StepReport&) { ++steps; }
  template <class Tr>
  bool on_epoch_end(Tr&, const EpochSummary& s) { return s.epoch == 2; }
};
}  // namespace

TEST_CASE("Mpi: fit over DataParallel with callbacks on rank 0: one log, the same stop on every rank", "[mpi][fit]") {
  Mpi comm;
  std::uint64_t pid = static_cast<std::uint64_t>(::getpid());  // rank 0's: one directory for the run
  comm.broadcast(std::span<std::uint64_t>(&pid, 1), 0);
  const auto dir = std::filesystem::temp_directory_path() / ("ace-test-mpi-" + std::to_string(pid));
  test::EqualityRun run(comm, 7, 2 * comm.size());
  auto& trainer = run.trainer;
  const auto batches = test::epoch_batches(run.parallel, 12, run.x, run.y, run.store);
  CsvLogger csv(dir / "log.csv");
  StopAfter stop;
  OnRankZero csv0(csv, comm);
  OnRankZero stop0(stop, comm);
  const FitResult r = fit(trainer, 5, batches, [](EpochSummary&) {}, 0, csv0, stop0);
  CHECK(r.status == FitStatus::stopped_early);  // on every rank, after rank 0's epoch 2
  CHECK(r.epochs == 2);
  CHECK(stop.steps == (comm.rank() == 0 ? 6u : 0u));
  comm.barrier();  // rank 0 has closed its log
  if (comm.rank() == 0) {
    std::ifstream in(dir / "log.csv");
    std::size_t lines = 0;
    for (std::string line; std::getline(in, line);) ++lines;
    CHECK(lines == 3);  // the header and epochs 1–2, written once
    std::filesystem::remove_all(dir);
  }
  comm.barrier();
}

namespace {
struct FailingLog {  // rank 0's logger hits a full disk at its second batch
  std::size_t batches = 0, epochs = 0;
  template <class Tr>
  void on_batch_end(Tr&, const TrainingPosition&) {
    if (++batches == 2) throw io_error("disk full");
  }
  template <class Tr>
  void on_epoch_end(Tr&, const EpochSummary&) { ++epochs; }
};
}  // namespace

TEST_CASE("Mpi: a callback failing on rank 0 ends fit on every rank at the end of that epoch", "[mpi][fit]") {
  Mpi comm;
  test::EqualityRun run(comm, 9, comm.size());
  auto& trainer = run.trainer;
  const auto batches = test::epoch_batches(run.parallel, 6, run.x, run.y, run.store);
  FailingLog log;
  OnRankZero log0(log, comm);
  if (comm.rank() == 0) {
    CHECK_THROWS_WITH(fit(trainer, 3, batches, [](EpochSummary&) {}, 0, log0), Catch::Contains("disk full"));
    CHECK(log.batches == 2);  // no hook of it ran after it failed
    CHECK(log.epochs == 0);
  } else {
    CHECK_THROWS_WITH(fit(trainer, 3, batches, [](EpochSummary&) {}, 0, log0),
                      Catch::Contains("rank 0's callback failed in epoch 1"));
  }
  CHECK(trainer.steps() == 3);  // the whole first epoch, on every rank
  comm.barrier();
}

namespace {
/// ShardModel whose loss_and_gradients throws a plain std::runtime_error while `fail` is set.
struct Flaky {
  using scalar = double;
  using batch = test::ShardModel::batch;
  test::ShardModel& model;
  bool fail = false;
  double loss_and_gradients(const batch& b) {
    if (fail) throw std::runtime_error("this rank's model failed");
    return model.loss_and_gradients(b);
  }
  void set_relaxation(bool on) { model.set_relaxation(on); }
  template <class F>
  void for_each_parameter(F&& f) {
    model.for_each_parameter(f);
  }
};
}  // namespace

TEST_CASE("Mpi: a non-finite loss or a failing model on one rank stops every rank alike", "[mpi][data_parallel]") {
  Mpi comm;
  test::EqualityRun run(comm, 5, 2 * comm.size());
  auto& model = run.model;
  auto& store = run.store;
  test::global_batch(0, 20, run.x, run.y);
  auto shards = test::local_shards(run.parallel.plan(), run.x, run.y, store);
  auto& trainer = run.trainer;
  if (comm.rank() == comm.size() - 1) store[0](0, 0) = std::numeric_limits<double>::quiet_NaN();  // one input NaN
  CHECK_THROWS_AS(trainer.step(shards), numerical_error);  // the reduced loss is NaN on every rank
  const auto before = test::parameter_values(model);
  if (comm.rank() == comm.size() - 1) store[0](0, 0) = 0.0;
  CHECK_NOTHROW(trainer.step(shards));  // every rank went on in step (nothing was updated by the failed step)
  CHECK(test::parameter_values(model) != before);

  Flaky flaky{model};
  DataParallel wrapped(flaky, comm, 2 * comm.size());
  flaky.fail = comm.rank() == comm.size() - 1;
  if (flaky.fail)
    CHECK_THROWS_WITH(wrapped.loss_and_gradients(shards), Catch::Contains("this rank's model failed"));
  else
    CHECK_THROWS_WITH(wrapped.loss_and_gradients(shards), Catch::Contains("its model failed"));
  comm.barrier();  // every rank got here
}

int main(int argc, char** argv) {
  MpiSession session(&argc, &argv);
  const int failed = Catch::Session().run(argc, argv);
  int any = failed != 0 ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);  // one rank's failure fails them all
  return any;
}
