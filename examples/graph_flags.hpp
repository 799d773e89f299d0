// SPDX-License-Identifier: MIT
// The flags the EGNN experiments (examples/nbody.cpp, examples/mocap.cpp) share, and their parser.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "flags.hpp"

namespace experiment {

/// The flags every EGNN experiment shares.
struct Settings {
  std::vector<std::string> methods{"strict", "free", "schedule", "equality", "resilient"};
  std::vector<std::uint64_t> seeds{1};
  std::size_t epochs = 100, batch = 100, hidden = 64, layers = 4, eval_every = 1, workers = 2;
  std::size_t checkpoint_steps = 0;  // also checkpoint every N steps (0: after each epoch only)
  std::size_t shards = 0;            // shards per batch across processes (0: one per process; docs/distributed.md)
  std::string reduction = "shard-order";  // how the shards' gradients are added: shard-order or all-reduce
  double lr = 5e-4, weight_decay = 1e-12, dual_lr = 1e-3, augmented = 1.0, rho = 1.0;
  std::string gamma_opt = "auto";  // the primal steps on the gammas and slacks: auto, adam (as theta) or sgd
  double gamma_lr = 0.05;          // the plain steps' rate (sgd, and auto's equality runs)
  std::string dual_opt = "sgd";    // the dual steps: sgd (plain ascent) or adam
  std::string out;
  std::string device = "cpu";  // the backend the runs train on: cpu (ace::Cpu) or cuda (ace::Cuda)
  std::string model = "egnn";  // the network: egnn, or segnn where the experiment offers it
  bool resume = false;         // continue the runs whose state is in --out
};

inline const char* settings_usage =
    "  --methods LIST   strict, free, schedule, equality, resilient (comma-separated)\n"
    "  --seeds LIST     network seeds, e.g. 1,2,3 (each method of a seed starts from the same network)\n"
    "  --epochs N, --batch N, --hidden N, --layers N, --lr X, --weight-decay X\n"
    "  --dual-lr X      the ACE methods' dual step size\n"
    "  --dual-opt O     the dual steps on the multipliers: sgd (default, plain ascent) or adam\n"
    "  --augmented C    augmented-Lagrangian coefficient of the ACE methods (default 1: without it the equality\n"
    "                   gammas overshoot 0 and oscillate under Adam; 0 = the plain Lagrangian)\n"
    "  --rho X          the resilient method's slack cost (rho/2 |u|^2)\n"
    "  --gamma-opt O    the primal steps on the gammas and slacks: auto (default: plain steps for ACE equality,\n"
    "                   Adam for the others, as measured in docs/ace.md), adam (with theta's rate) or sgd (plain\n"
    "                   gradient steps, the paper's Algorithm 1 and 2, at --gamma-lr, for every method)\n"
    "  --gamma-lr X     the plain steps' rate (default 0.05)\n"
    "  --eval-every N   evaluate (validation, test at the best validation epoch, equivariance) every N epochs\n"
    "  --workers N      data-parallel chunks per batch (default 2; results depend on N at the rounding level only)\n"
    "  --shards N       cut every batch into N shards, trained as one data-parallel model across the processes\n"
    "                   of mpiexec (N a multiple of their count; default: one shard per process); one process with\n"
    "                   --shards N gives the same results, bit for bit, as any process count that divides N\n"
    "                   (docs/distributed.md)\n"
    "  --reduction R    how the shards' gradients are added across processes: shard-order (default: gathered and\n"
    "                   added in shard order, the same bits for any process count) or all-reduce (MPI's, for many\n"
    "                   processes; the results depend on their count at the rounding level)\n"
    "  --device D       cpu (default) or cuda (the CUDA backend; needs a build with ACE_WITH_CUDA and a GPU; there the\n"
    "                   workers' chunks run one after the other on one stream: --workers 1)\n"
    "  --out DIR        where the logs, plots and results go: DIR/<method>/seed<s>/{log.csv,*.svg,state/}, DIR/*.svg,\n"
    "                   DIR/results.csv; every run checkpoints its state after each epoch\n"
    "  --checkpoint-steps N   checkpoint also every N training steps, in the middle of epochs (default: off)\n"
    "  --resume         continue the runs in --out from their last checkpoints (bit for bit: the same results and\n"
    "                   logs as an uninterrupted run, timings aside); without it, an --out holding a run's state is\n"
    "                   an error\n";

/// Parses `args` (flag value pairs, for_each_flag): the shared flags go to `s`; every other flag goes to
/// `own(flag, value)`, which returns false for a flag it does not know (an error naming it).
template <class Own>
void parse_flags(const std::vector<std::string>& args, const std::string& usage, Settings& s, Own&& own) {
  for_each_flag(args, usage, s.resume, [&](const std::string& flag, const std::string& value) {
    const auto real = [&] { return parse_number<double>(flag, value); };
    if (flag == "--methods") s.methods = split_list<std::string>(flag, value);
    else if (flag == "--seeds") s.seeds = split_list<std::uint64_t>(flag, value);
    else if (flag == "--epochs") s.epochs = parse_count(flag, value);
    else if (flag == "--batch") s.batch = parse_count(flag, value);
    else if (flag == "--hidden") s.hidden = parse_count(flag, value);
    else if (flag == "--layers") s.layers = parse_count(flag, value);
    else if (flag == "--eval-every") s.eval_every = parse_count(flag, value);
    else if (flag == "--workers") s.workers = parse_count(flag, value);
    else if (flag == "--checkpoint-steps") s.checkpoint_steps = parse_count(flag, value);
    else if (flag == "--shards") s.shards = parse_count(flag, value);
    else if (flag == "--reduction") s.reduction = value;
    else if (flag == "--lr") s.lr = real();
    else if (flag == "--weight-decay") s.weight_decay = real();
    else if (flag == "--dual-lr") s.dual_lr = real();
    else if (flag == "--augmented") s.augmented = real();
    else if (flag == "--rho") s.rho = real();
    else if (flag == "--gamma-opt") s.gamma_opt = value;
    else if (flag == "--gamma-lr") s.gamma_lr = real();
    else if (flag == "--dual-opt") s.dual_opt = value;
    else if (flag == "--out") s.out = value;
    else if (flag == "--device") s.device = value;
    else return own(flag, value);
    return true;
  });
  for (const auto& m : s.methods)
    ACE_THROW_IF(m != "strict" && m != "free" && m != "schedule" && m != "equality" && m != "resilient",
                 ace::invalid_argument, "--methods: unknown method '", m,
                 "' (strict, free, schedule, equality, resilient)");
  ACE_THROW_IF(s.dual_opt != "sgd" && s.dual_opt != "adam", ace::invalid_argument, "--dual-opt: unknown dual step '",
               s.dual_opt, "' (sgd or adam)");
  ACE_THROW_IF(s.reduction != "shard-order" && s.reduction != "all-reduce", ace::invalid_argument,
               "--reduction: unknown reduction '", s.reduction, "' (shard-order or all-reduce)");
  check_device_name(s.device);
  check_gamma_opt(s.gamma_opt);
}

}  // namespace experiment
