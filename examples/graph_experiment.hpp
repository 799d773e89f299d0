// SPDX-License-Identifier: MIT
// The shared part of the EGNN experiments (examples/nbody.cpp, examples/mocap.cpp): one training run of a method
// (strict, free, schedule, ACE equality, ACE resilient) with model selection on the deployed model's validation
// error, and the results table, CSV and plots. Every method of a seed starts from the same network and
// sees the same batches.
#pragma once

#include <ace/ace.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "experiment_support.hpp"
#include "graph_flags.hpp"

namespace experiment {

/// The data as loaded (host memory); each run moves it to the backend it trains on (--device).
using Batch = ace::GraphBatch<float>;
template <class B>
using ModelOn = ace::EGNNRegression<float, B>;
#if defined(ACE_EXPERIMENT_SEGNN)
/// SEGNN in the ACE paper's N-body configuration (hidden 32x0e + 32x1o, attributes Y^{<=1}).
template <class B>
using SegnnOn = ace::SEGNNRegression<float, B>;
#endif
template <class B>
using BatchOn = ace::GraphBatch<float, B>;

/// What an experiment trains on: the graph, the network's inputs, the splits and how to report errors.
struct Task {
  std::string title;         // the table's heading
  ace::Graph graph;
  ace::EGNNOptions network;  // node, edge and raw feature counts (hidden and layers come from the settings)
  Batch train, valid, test;
  Batch probe;               // a few validation graphs: the equivariance error of the deployed model
  double scale = 1e3;        // errors are reported x scale ...
  std::string scale_name = "x 1e-3";
  std::vector<std::string> gamma_names;  // one label per gamma, in the trainer's order

  template <class B>
  std::size_t graphs(const BatchOn<B>& b) const {
    return b.x.shape()[0] / graph.nodes();
  }
};

/// The gamma labels of a relaxed EGNN: "layer l h" and "layer l x" ("layers.<l>.gamma" = [gamma_h, gamma_x]).
inline std::vector<std::string> egnn_gamma_names(std::size_t layers) {
  std::vector<std::string> names;
  for (std::size_t l = 0; l < layers; ++l)
    for (const char* b : {"h", "x"}) names.push_back(ace::detail::concat("layer ", l, " ", b));
  return names;
}

/// The gamma labels of a relaxed SEGNN: "layer l update1" and "layer l update2" ("layers.<l>.gamma").
inline std::vector<std::string> segnn_gamma_names(std::size_t layers) {
  std::vector<std::string> names;
  for (std::size_t l = 0; l < layers; ++l)
    for (const char* b : {"update1", "update2"}) names.push_back(ace::detail::concat("layer ", l, " ", b));
  return names;
}

/// What one run reports.
struct RunResult {
  std::string method;
  std::uint64_t seed = 0;
  double test_mse = std::numeric_limits<double>::quiet_NaN();  // the deployed model's test MSE at the best
                                                                // validation epoch (NaN: never evaluated)
  double best_valid = 0.0;    // the deployed model's best validation MSE
  std::size_t best_epoch = 0;
  double equivariance = std::numeric_limits<double>::quiet_NaN();  // the deployed model's E(3) error at the end
  double max_gamma = 0.0;     // final max |gamma|
  std::size_t crossings = 0;  // swings of a gamma through 0 (gamma_crossings; largest over the gammas)
  double seconds = 0.0;
  std::vector<double> valid_curve;                 // deployed validation MSE per epoch
  std::vector<double> gammas, multipliers, slacks;  // at the end
};

/// Mean squared error over a whole split, evaluated in chunks of at most 500 graphs (gathered into `chunk`).
template <class Model, class B = typename Model::backend>
double mse(Model& model, const Task& t, const BatchOn<B>& all, BatchOn<B>& chunk) {
  const std::size_t graphs = t.graphs(all);
  double sum = 0.0;
  for (std::size_t first = 0; first < graphs; first += 500) {
    std::vector<std::size_t> idx(std::min<std::size_t>(500, graphs - first));
    std::iota(idx.begin(), idx.end(), first);
    ace::select_graphs(all, idx, t.graph.nodes(), t.graph.edges(), chunk);
    sum += model.loss(chunk) * static_cast<double>(idx.size());
  }
  return sum / static_cast<double>(graphs);
}

/// One run on backend B with the primal optimiser `primal`: the splits move to B once, mini-batches are gathered
/// there.
/// The relaxed network of the settings (every method trains it; strict runs keep its gammas at 0).
template <class Model, class B = typename Model::backend>
Model make_model(const Settings& c, const Task& t, ace::Rng& rng) {
#if defined(ACE_EXPERIMENT_SEGNN)
  if constexpr (std::is_same_v<Model, SegnnOn<B>>) {
    return Model(ace::SEGNN<float, B>(t.graph, {.layers = c.layers, .relaxed = true}, rng), {.workers = c.workers});
  } else
#endif
  {
    ace::EGNNOptions options = t.network;
    options.hidden = c.hidden;
    options.layers = c.layers;
    options.relaxed = true;
    return Model(ace::EGNN<float, B>(t.graph, options, rng), {.workers = c.workers});
  }
}

/// One run: `trained` is `model` itself, or an ace::DataParallel over it whose shards the processes of `comm` share
/// (--shards, mpiexec); evaluation runs the model on whole splits on every rank (the ranks hold the same weights), and
/// rank 0 alone writes the logs, plots and checkpoints (OnRankZero).
template <class Model, class Trained, class Comm, class Policy, class Primal, class B = typename Model::backend>
RunResult train_run(const Settings& c, const Task& t, const std::string& method, std::uint64_t seed, Policy policy,
                    Primal primal, Model& model, Trained& trained, Comm& comm) {
  constexpr bool sharded = !std::is_same_v<Trained, Model>;
  const BatchOn<B> train_data = ace::to_backend<B>(t.train), valid_data = ace::to_backend<B>(t.valid),
                   test_data = ace::to_backend<B>(t.test), probe = ace::to_backend<B>(t.probe);
  const std::size_t train = t.graphs(t.train), steps_per_epoch = train / c.batch;
  ACE_THROW_IF(steps_per_epoch == 0, ace::invalid_argument, "--batch ", c.batch, " is larger than the ", train,
               " training samples");
  ace::ConstrainedTrainer trainer(trained, std::move(primal), policy,
                                  ace::DualAscent{.lr = c.dual_lr, .adam = c.dual_opt == "adam"},
                                  {.augmented = c.augmented, .total_steps = steps_per_epoch * c.epochs});
  BatchOn<B> batch;
  ace::Shards<BatchOn<B>> mine;  // sharded: this rank's shards of each batch, gathered in place
  ace::GraphSelector<float, B> selector;
  std::vector<std::size_t> order(train);
  const auto batches = [&](std::size_t epoch, auto&& step) {
    std::iota(order.begin(), order.end(), 0);
    ace::Rng shuffle(seed * 1000003 + epoch);  // per-epoch seed: reproducible and resumable
    for (std::size_t i = order.size() - 1; i > 0; --i) std::swap(order[i], order[shuffle.below(i + 1)]);
    for (std::size_t s = 0; s < steps_per_epoch; ++s) {
      const auto graphs = std::span<const std::size_t>(order).subspan(s * c.batch, c.batch);
      if constexpr (sharded) {
        mine.parts.resize(trained.plan().per_rank());
        mine.shares.resize(trained.plan().per_rank());
        for (std::size_t k = 0; k < mine.parts.size(); ++k) {
          const ace::ShardRange r = ace::shard_range(c.batch, trained.plan(), k);
          selector.select(train_data, graphs.subspan(r.first, r.last - r.first), t.graph.nodes(), t.graph.edges(),
                          mine.parts[k]);
          mine.shares[k] = r.share;
        }
        step(mine);
      } else {
        selector.select(train_data, graphs, t.graph.nodes(), t.graph.edges(), batch);
        step(batch);
      }
    }
  };
  BatchOn<B> chunk;  // evaluation buffer, reused
  RunResult r;
  r.method = method;
  r.seed = seed;
  r.best_valid = std::numeric_limits<double>::infinity();
  const auto grid = ace::so3_grid(8);
  const auto evaluate = [&](ace::EpochSummary& s) {
    if (s.epoch % c.eval_every != 0 && s.epoch != c.epochs) {  // not evaluated: blank in the logs, gaps in the plots
      for (const char* m : {"valid_mse", "test_mse_at_best", "equivariance_error", "valid_relaxed_mse"}) s.skip(m);
      r.valid_curve.push_back(std::numeric_limits<double>::quiet_NaN());
      return;
    }
    trainer.deploy();
    const double valid = mse(model, t, valid_data, chunk);
    if (valid < r.best_valid) {  // model selection on the deployed model's validation error
      r.best_valid = valid;
      r.best_epoch = s.epoch;
      r.test_mse = mse(model, t, test_data, chunk);
    }
    s.metrics["valid_mse"] = valid;
    s.metrics["test_mse_at_best"] = r.test_mse;
    s.metrics["equivariance_error"] = ace::euclidean_equivariance_error(model, probe, grid).max;
    model.set_relaxation(true);
    s.metrics["valid_relaxed_mse"] = mse(model, t, valid_data, chunk);
    r.valid_curve.push_back(valid);
  };
  const std::string dir = ace::detail::concat(c.out, "/", method, "/seed", seed);
  std::printf("%s, seed %llu\n", method.c_str(), static_cast<unsigned long long>(seed));
  ace::PlotWriter plots(dir, 10, t.gamma_names);
  const ace::TrainingPosition start = resume_point(dir, c.resume, trainer, [&](const ace::EpochSummary& s) {
    const auto valid = s.metrics.find("valid_mse");  // what evaluate() recorded, from the log's exact values
    r.valid_curve.push_back(s.evaluated("valid_mse") ? valid->second : std::numeric_limits<double>::quiet_NaN());
    if (s.evaluated("valid_mse") && valid->second < r.best_valid) {
      r.best_valid = valid->second;
      r.best_epoch = s.epoch;
    }
    if (s.evaluated("test_mse_at_best")) r.test_mse = s.metrics.at("test_mse_at_best");
    if (comm.rank() == 0) plots.on_epoch_end(trainer, s);  // rank 0 alone writes the plots
  }, comm.rank() == 0);
  // Every rank must go on from the same point (a checkpoint directory the other ranks cannot see would not).
  ace::require_same_on_all_ranks(comm, ace::detail::concat("epoch ", start.epoch, ", batch ", start.batch, ", step ",
                                                           trainer.steps()),
                                 "training position to resume from");
  ace::ProgressBar bar;
  ace::CsvLogger csv(dir + "/log.csv", start.epoch > 0);
  ace::Checkpointer checkpointer({.directory = dir + "/state", .metric = {}, .maximize = false,  // "last" only
                                 .every_steps = c.checkpoint_steps});
  ace::OnRankZero bar0(bar, comm);  // the progress line, logs, plots and checkpoints of rank 0
  ace::OnRankZero csv0(csv, comm);
  ace::OnRankZero plots0(plots, comm);
  ace::OnRankZero checkpointer0(checkpointer, comm);
  const auto began = std::chrono::steady_clock::now();
  const ace::FitResult fr =
      ace::fit(trainer, epochs_left(c.epochs, start), batches, evaluate, start, bar0, csv0, plots0, checkpointer0);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  if (fr.status == ace::FitStatus::non_finite) std::printf("  %s\n", fr.message.c_str());
  if (plots.history().empty()) return r;  // stopped in its first epoch: nothing was evaluated
  const ace::EpochSummary& last = plots.history().back();
  if (last.evaluated("equivariance_error")) r.equivariance = last.metrics.at("equivariance_error");
  r.max_gamma = last.max_abs_gamma();
  r.crossings = gamma_crossings(plots.history());
  r.gammas = last.gammas;
  r.multipliers = last.multipliers;
  r.slacks = last.slacks;
  return r;
}

/// One run of `method` on the settings' processes and shards: the plain model in a process alone with one shard,
/// else an ace::DataParallel over it (docs/distributed.md).
template <class Model, class Policy, class Primal, class B = typename Model::backend>
RunResult run_with(const Settings& c, const Task& t, const std::string& method, std::uint64_t seed, Policy policy,
                   Primal primal) {
  ace::Rng rng(seed);  // the same initial network for every method with this seed
  Model model = make_model<Model>(c, t, rng);
  return processes().with_for<B>([&](auto& comm) {
    const std::size_t shards = c.shards != 0 ? c.shards : comm.size();
    if (shards == 1 && comm.size() == 1)
      return train_run<Model>(c, t, method, seed, policy, std::move(primal), model, model, comm);
    ace::DataParallel parallel(model, comm, shards,
                               c.reduction == "all-reduce" ? ace::ShardReduction::all_reduce
                                                           : ace::ShardReduction::shard_order);
    return train_run<Model>(c, t, method, seed, policy, std::move(primal), model, parallel, comm);
  });
}

/// A run with the primal optimiser --gamma-opt asks for (with_gamma_optimizer).
template <class Model, class Policy, class B = typename Model::backend>
RunResult run(const Settings& c, const Task& t, const std::string& method, std::uint64_t seed, Policy policy) {
  return with_gamma_optimizer<Policy>(
      c.gamma_opt, c.gamma_lr, ace::Adam<float, B>({.lr = c.lr, .weight_decay = c.weight_decay}),
      [&](auto primal) { return run_with<Model>(c, t, method, seed, policy, std::move(primal)); });
}

template <class Model>
RunResult run_method_with(const Settings& c, const Task& t, const std::string& m, std::uint64_t seed) {
  if (m == "strict") return run<Model>(c, t, m, seed, ace::StrictBaseline{});
  if (m == "free") return run<Model>(c, t, m, seed, ace::FreeBaseline{});
  if (m == "schedule") return run<Model>(c, t, m, seed, ace::ScheduleBaseline{});
  if (m == "equality") return run<Model>(c, t, m, seed, ace::EqualityConstraint{});
  return run<Model>(c, t, m, seed, ace::ResilientConstraint{.rho = c.rho});
}

template <class B>
RunResult run_method_on(const Settings& c, const Task& t, const std::string& m, std::uint64_t seed) {
#if defined(ACE_EXPERIMENT_SEGNN)
  if (c.model == "segnn") return run_method_with<SegnnOn<B>>(c, t, m, seed);
#endif
  return run_method_with<ModelOn<B>>(c, t, m, seed);
}

inline RunResult run_method(const Settings& c, const Task& t, const std::string& m, std::uint64_t seed) {
  return on_device(c.device, [&]<class B>(std::type_identity<B>) { return run_method_on<B>(c, t, m, seed); });
}

/// Says which device the runs will train on; throws DeviceUnavailable first if it cannot (call it before the data
/// are loaded or simulated).
inline void print_device(const Settings& c) {
  const std::size_t ranks = processes().size(), shards = c.shards != 0 ? c.shards : ranks;
  const std::string across = shards > 1 || ranks > 1
                                 ? ace::detail::concat("; ", shards, " shard(s) per batch across ", ranks,
                                                       " process(es)", ranks > 1 ? " (mpiexec)" : "")
                                 : std::string();
  print_device(c.device, ace::detail::concat(", ", c.workers, " data-parallel worker(s) per batch"), across);
}

/// Prints the results table (mean +- std over seeds) and, for the ACE methods, the final gamma, multiplier and
/// slack of every branch; writes DIR/valid_curves.svg and DIR/results.csv.
inline void report(const Settings& c, const Task& t, const std::vector<RunResult>& results) {
  std::printf("\n%s\n\n", t.title.c_str());
  std::printf("| method | test MSE %s | best epoch | equivariance error | final max abs gamma | gamma swings through 0 "
              "| time (s) |\n",
              t.scale_name.c_str());
  std::printf("|---|---:|---:|---:|---:|---:|---:|\n");
  ace::io::LinePlot curves{"Validation MSE of the deployed model", "epoch", "MSE", true, {}};
  for (const auto& m : c.methods) {
    std::vector<double> test, epoch, eq, gamma, crossings, secs;
    for (const auto& r : results) {
      if (r.method != m) continue;
      test.push_back(t.scale * r.test_mse);
      epoch.push_back(static_cast<double>(r.best_epoch));
      eq.push_back(r.equivariance);
      gamma.push_back(r.max_gamma);
      crossings.push_back(static_cast<double>(r.crossings));
      secs.push_back(r.seconds);
      if (r.seed == c.seeds.front()) {
        ace::io::Series s{m, {}, r.valid_curve};
        for (std::size_t e = 1; e <= r.valid_curve.size(); ++e) s.x.push_back(static_cast<double>(e));
        curves.series.push_back(std::move(s));
      }
    }
    if (test.empty()) continue;
    const auto [tm, ts] = mean_std(test);
    std::printf("| %s | %.2f +- %.2f | %.0f | %.1e | %.2e | %.1f | %.0f |\n", m.c_str(), tm, ts,
                mean_std(epoch).first, *std::max_element(eq.begin(), eq.end()), mean_std(gamma).first,
                mean_std(crossings).first, mean_std(secs).first);
  }
  for (const auto& m : c.methods) {  // per branch, for the methods with multipliers: which layers ask for slack
    if (m != "equality" && m != "resilient") continue;
    std::vector<const RunResult*> runs;
    for (const auto& r : results)
      if (r.method == m && !r.multipliers.empty()) runs.push_back(&r);
    if (runs.empty()) continue;
    std::printf("\n%s, at the end (mean over seeds):\n\n| branch | gamma | lambda |%s\n|---|---:|---:|%s\n", m.c_str(),
                runs.front()->slacks.empty() ? "" : " slack u |", runs.front()->slacks.empty() ? "" : "---:|");
    const auto mean_of = [&](auto member, std::size_t i) {
      double s = 0.0;
      for (const RunResult* r : runs) s += ((*r).*member)[i];
      return s / static_cast<double>(runs.size());
    };
    for (std::size_t i = 0; i < runs.front()->gammas.size(); ++i) {
      const std::string name = i < t.gamma_names.size() ? t.gamma_names[i] : ace::detail::concat("gamma ", i);
      std::printf("| %s | %.2e | %.2e |", name.c_str(), mean_of(&RunResult::gammas, i),
                  mean_of(&RunResult::multipliers, i));
      if (!runs.front()->slacks.empty()) std::printf(" %.2e |", mean_of(&RunResult::slacks, i));
      std::printf("\n");
    }
  }
  if (processes().rank() != 0) return;  // rank 0 writes the files; the others' output goes to /dev/null
  ace::io::create_directories(c.out);
  ace::io::write_svg(c.out + "/valid_curves.svg", curves);
  std::ostringstream csv;
  csv.precision(10);
  csv << "method,seed,test_mse,best_valid_mse,best_epoch,equivariance_error,max_abs_gamma,gamma_swings,seconds\n";
  for (const auto& r : results)
    csv << r.method << "," << r.seed << "," << r.test_mse << "," << r.best_valid << "," << r.best_epoch << ","
        << r.equivariance << "," << r.max_gamma << "," << r.crossings << "," << r.seconds << "\n";
  ace::io::write_file_atomically(c.out + "/results.csv", csv.str());
  std::printf("\nlogs and plots: %s/<method>/seed<s>/, %s/valid_curves.svg, %s/results.csv\n", c.out.c_str(),
              c.out.c_str(), c.out.c_str());
}

/// Prints the test MSE of two trivial predictors, the scale the learned errors are read against: no motion
/// (x(t) = x(0)) and moving on at the input velocity (x(t) = x(0) + horizon v(0)).
inline void print_reference_points(const Task& t, double horizon) {
  double still = 0.0, linear = 0.0;
  for (std::size_t i = 0; i < t.test.x.size(); ++i) {
    const double a = t.test.target.data()[i] - t.test.x.data()[i];
    const double b = a - horizon * t.test.v.data()[i];
    still += a * a;
    linear += b * b;
  }
  const double n = static_cast<double>(t.test.x.size());
  std::printf("test MSE %s of x(t) = x(0): %.4g; of x(t) = x(0) + %g v(0): %.4g\n", t.scale_name.c_str(),
              t.scale * still / n, horizon, t.scale * linear / n);
}

/// Trains every method for every seed (seed-major, so an interrupted run has whole seeds) and reports.
inline void run_all(const Settings& c, const Task& t) {
  std::vector<RunResult> results;
  for (std::uint64_t seed : c.seeds)
    for (const auto& m : c.methods) results.push_back(run_method(c, t, m, seed));
  report(c, t, results);
}

}  // namespace experiment
