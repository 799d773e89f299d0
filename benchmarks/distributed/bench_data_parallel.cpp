// SPDX-License-Identifier: MIT
// Data-parallel scaling of the N-body EGNN's ACE training step (docs/distributed.md): the paper's network (hidden 64,
// 4 layers, relaxed) trained by ConstrainedTrainer (ACE equality, Adam) through DataParallel over the processes of
// mpiexec (or one process alone), on a fixed global batch cut into shards. Prints, from rank 0, the step time, the
// share of it spent in the shard reduction (gathering every rank's rows, waiting for the slowest rank, adding them),
// and the bytes each rank receives per step.
//
//   bench_data_parallel [--batch N] [--shards S] [--steps N] [--warmup N] [--reduction shard-order|all-reduce]
//   mpiexec -n 2 bench_data_parallel --shards 2        (default shards: one per process)
//
// Not a Google Benchmark: every rank must run the same number of steps (each one is collective).
#include <ace/ace.hpp>
#include <ace/distributed/mpi.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

namespace {
using namespace ace;

struct Options {
  std::size_t batch = 100, shards = 0, steps = 200, warmup = 20;
  ShardReduction reduction = ShardReduction::shard_order;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    ACE_THROW_IF(i + 1 >= argc, invalid_argument, flag, " needs a value");
    if (flag == "--reduction") {
      const std::string r = argv[++i];
      ACE_THROW_IF(r != "shard-order" && r != "all-reduce", invalid_argument,
                   "--reduction: shard-order or all-reduce, got '", r, "'");
      o.reduction = r == "all-reduce" ? ShardReduction::all_reduce : ShardReduction::shard_order;
      continue;
    }
    const long long v = std::atoll(argv[++i]);
    ACE_THROW_IF(v <= 0, invalid_argument, flag, ": expected a positive integer, got '", argv[i], "'");
    const auto n = static_cast<std::size_t>(v);
    if (flag == "--batch") o.batch = n;
    else if (flag == "--shards") o.shards = n;
    else if (flag == "--steps") o.steps = n;
    else if (flag == "--warmup") o.warmup = n;
    else throw invalid_argument("unknown flag " + flag + " (--batch, --shards, --steps, --warmup, --reduction)");
  }
  return o;
}

int run(int argc, char** argv) {
  Mpi comm;
  const Options o = parse(argc, argv);
  const std::size_t shards = o.shards != 0 ? o.shards : comm.size();

  Rng rng(1);
  EGNNRegression<float> model(EGNN<float>(Graph::complete(5), {.node_features = 1, .edge_features = 2,
                                                               .raw_features = 1, .hidden = 64, .layers = 4,
                                                               .relaxed = true},
                                          rng),
                              {.workers = 1});
  DataParallel parallel(model, comm, shards, o.reduction);
  ConstrainedTrainer trainer(parallel, Adam<float>({.lr = 5e-4}), EqualityConstraint{});

  const data::NBodySamples samples = data::make_nbody_samples({}, data::NBodySplit::train, o.batch, 1);
  std::vector<std::size_t> all(o.batch);
  std::iota(all.begin(), all.end(), 0);
  const GraphBatch<float> global = data::nbody_batch<float>(samples, all);
  Shards<GraphBatch<float>> mine;
  GraphSelector<float, Cpu> selector;
  for (std::size_t k = 0; k < parallel.plan().per_rank(); ++k) {
    const ShardRange r = shard_range(o.batch, parallel.plan(), k);
    mine.parts.emplace_back();
    selector.select(global, std::span<const std::size_t>(all).subspan(r.first, r.last - r.first), 5, 20,
                    mine.parts.back());
    mine.shares.push_back(r.share);
  }

  for (std::size_t i = 0; i < o.warmup; ++i) trainer.step(mine);
  comm.barrier();
  parallel.reset_reduction_seconds();
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < o.steps; ++i) trainer.step(mine);
  comm.barrier();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // The slowest rank's reduction share and the mean over the ranks.
  std::vector<double> reductions(comm.size());
  const double mine_seconds = parallel.reduction_seconds();
  comm.all_gather(std::span<const double>(&mine_seconds, 1), std::span<double>(reductions));
  if (comm.rank() == 0) {
    const double step_ms = 1e3 * seconds / static_cast<double>(o.steps);
    double most = 0, sum = 0;
    for (double r : reductions) most = std::max(most, r), sum += r;
    const double row_bytes = 8.0 * static_cast<double>(parallel.row_values());
    std::printf("processes %zu, shards %zu (%s), batch %zu, %zu steps (after %zu): %.3f ms per step, %.1f steps/s; "
                "reduction %.3f ms per step (%.1f %% of the step; mean over ranks %.3f ms); row %.0f bytes, received "
                "per rank per step %.0f bytes%s\n",
                comm.size(), shards, o.reduction == ShardReduction::all_reduce ? "all-reduce" : "shard order", o.batch,
                o.steps, o.warmup, step_ms, 1e3 / step_ms,
                1e3 * most / static_cast<double>(o.steps), 100.0 * most / seconds,
                1e3 * sum / static_cast<double>(comm.size()) / static_cast<double>(o.steps), row_bytes,
                o.reduction == ShardReduction::all_reduce
                    ? (comm.size() > 1 ? 2.0 * row_bytes * double(comm.size() - 1) / double(comm.size()) : 0.0)
                    : row_bytes * static_cast<double>(shards - parallel.plan().per_rank()),
                o.reduction == ShardReduction::all_reduce ? " (a ring all-reduce's)" : "");
  }
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  ace::MpiSession session(&argc, &argv);
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_data_parallel: %s\n", e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);  // the other ranks would wait for this one in a collective
    return 1;
  }
}
