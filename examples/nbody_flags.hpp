// SPDX-License-Identifier: MIT
// nbody's command line (examples/nbody.cpp): its settings, usage text and parser.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "graph_flags.hpp"

namespace experiment {

/// What nbody runs: the shared settings and its own flags.
struct NBodyConfig {
  experiment::Settings run;
  std::string preset = "default";
  std::size_t train = 3000, valid = 1000, test = 2000, data_seed = 1;
  double field = 0.0;
  std::string data = "nbody_data";
  std::string reference_data;  // a data set of the EGNN reference generator (read instead of simulating)
  std::size_t clip_stats = 0;  // > 0: print the force-clip statistics of that many systems per split, and stop
};

inline const std::string nbody_usage = std::string(
    "usage: nbody [--preset default|paper] [--model egnn|segnn] [--train N] [--valid N] [--test N] [--field E]\n"
    "             [--data-seed N] [--data DIR] [--reference-data DIR] [--clip-stats N] [shared flags]\n"
    "  --model M      egnn (default: EGNN, hidden --hidden, Adam 5e-4, dual rate 1e-3, weight decay 1e-12) or segnn\n"
    "                 (SEGNN, hidden 32x0e + 32x1o fixed at compile time, and the ACE paper's SEGNN settings: Adam 9e-4\n"
    "                 on every primal variable (--gamma-opt adam), weight decay 0, Adam dual steps of 8e-4 (--dual-opt\n"
    "                 adam --dual-lr 8e-4), no augmented term (--augmented 0)); later flags override the settings\n"
    "  --preset P     default (every method, one seed, 100 epochs) or paper (3000 training systems, 2000\n"
    "                 validation, 2000 test, 10000 epochs, seeds 1,2,3); later flags override it\n"
    "  --field E      a constant external field of strength E along z acting on the charges (0 = symmetric data)\n"
    "  --data DIR     where the simulated data sets are cached (.npy)\n"
    "  --reference-data DIR\n"
    "                 train on a data set of the EGNN reference code's generator instead (its loc_, vel_ and\n"
    "                 charges_<split>_charged5_initvel1small.npy in DIR; the first --train/--valid/--test systems)\n"
    "  --clip-stats N simulate the first N systems of each split (data seed, field) and print how often the\n"
    "                 simulator's force clip (±100 per component) fired, then stop without training\n"
    "shared flags:\n") + settings_usage;

/// Parses nbody's command line (without the program name).
inline NBodyConfig parse_nbody(const std::vector<std::string>& args) {
  NBodyConfig c;
  c.run.out = "nbody_out";
  for (std::size_t i = 0; i + 1 < args.size(); ++i)  // the preset first, so later flags override it
    if (args[i] == "--preset") c.preset = args[i + 1];
  ACE_THROW_IF(c.preset != "default" && c.preset != "paper", ace::invalid_argument, "--preset: unknown preset '",
               c.preset, "' (default or paper)");
  for (std::size_t i = 0; i + 1 < args.size(); ++i)  // the model's settings next, before the flags that override them
    if (args[i] == "--model") c.run.model = args[i + 1];
  ACE_THROW_IF(c.run.model != "egnn" && c.run.model != "segnn", ace::invalid_argument, "--model: unknown model '",
               c.run.model, "' (egnn or segnn)");
  if (c.run.model == "segnn") {  // the ACE paper's SEGNN runs: Adam on every primal variable and on the multipliers
    c.run.lr = 9e-4;
    c.run.dual_lr = 8e-4;
    c.run.weight_decay = 0.0;
    c.run.gamma_opt = "adam";
    c.run.dual_opt = "adam";
    c.run.augmented = 0.0;
  }
  if (c.preset == "paper") {
    c.train = 3000;
    c.valid = 2000;
    c.test = 2000;
    c.run.epochs = 10000;
    c.run.seeds = {1, 2, 3};
  }
  parse_flags(args, nbody_usage, c.run, [&](const std::string& flag, const std::string& value) {
    if (flag == "--preset" || flag == "--model") return true;
    if (flag == "--train") c.train = parse_count(flag, value);
    else if (flag == "--valid") c.valid = parse_count(flag, value);
    else if (flag == "--test") c.test = parse_count(flag, value);
    else if (flag == "--data-seed") c.data_seed = parse_count(flag, value);
    else if (flag == "--field") c.field = parse_number<double>(flag, value);
    else if (flag == "--data") c.data = value;
    else if (flag == "--reference-data") c.reference_data = value;
    else if (flag == "--clip-stats") c.clip_stats = parse_count(flag, value);
    else return false;
    return true;
  });
  ACE_THROW_IF(c.run.batch > c.train, ace::invalid_argument, "--batch ", c.run.batch, " is larger than --train ",
               c.train);
  ACE_THROW_IF(c.run.model == "segnn" && c.run.hidden != 64, ace::invalid_argument, "--hidden ", c.run.hidden,
               ": SEGNN's hidden irreps are part of its type (32x0e + 32x1o, the weight-balanced irreps of width 64); "
               "--hidden applies to --model egnn");
  return c;
}

}  // namespace experiment
