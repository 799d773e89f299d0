// SPDX-License-Identifier: MIT
// mocap's command line (examples/mocap.cpp): its settings, usage text and parser.
#pragma once

#include <ace/data/mocap.hpp>
#include <string>
#include <vector>

#include "graph_flags.hpp"

#ifndef ACE_MOCAP_DEFAULT_DIR
#define ACE_MOCAP_DEFAULT_DIR "data/mocap-run"
#endif

namespace experiment {

/// What mocap runs: the shared settings and its own flags.
struct MocapConfig {
  experiment::Settings run;
  std::string preset = "default";
  ace::data::MocapOptions protocol;
  std::string data = ACE_MOCAP_DEFAULT_DIR;
  std::string node_features = "speed-height";  // or "height": the earlier y / 10 alone
};

inline const std::string mocap_usage = std::string(
    "usage: mocap [--preset default|paper] [--data DIR] [--train N] [--delta N] [shared flags]\n"
    "  --preset P     default (strict, free, equality, resilient; seed 1; 300 epochs) or paper (the same for\n"
    "                 seeds 1-5 and 1000 epochs); later flags override it\n"
    "  --data DIR     the motion capture release (trial_*.npy, edges.npy, split_*.npy; default: the\n"
    "                 repository's data/mocap-run)\n"
    "  --train N      training samples (the protocol's 200: the first N/5 starts of each training trial)\n"
    "  --delta N      frames ahead to predict (30)\n"
    "  --node-features F\n"
    "                 speed-height (default: [|v_i|, y_i / the largest y in the training split], as the\n"
    "                 reference code's scripts feed the EGNN) or height (y_i / 10 alone: the runs of\n"
    "                 docs/results-mocap.md before 2026-12-02)\n"
    "shared flags:\n") + settings_usage;

/// Parses mocap's command line (without the program name).
inline MocapConfig parse_mocap(const std::vector<std::string>& args) {
  MocapConfig c;
  c.run.methods = {"strict", "free", "equality", "resilient"};
  c.run.batch = 12;
  c.run.epochs = 300;
  c.run.eval_every = 5;
  c.run.out = "mocap_out";
  for (std::size_t i = 0; i + 1 < args.size(); ++i)  // the preset first, so later flags override it
    if (args[i] == "--preset") c.preset = args[i + 1];
  ACE_THROW_IF(c.preset != "default" && c.preset != "paper", ace::invalid_argument, "--preset: unknown preset '",
               c.preset, "' (default or paper)");
  if (c.preset == "paper") {
    c.run.seeds = {1, 2, 3, 4, 5};
    c.run.epochs = 1000;
  }
  parse_flags(args, mocap_usage, c.run, [&](const std::string& flag, const std::string& value) {
    if (flag == "--preset") return true;
    if (flag == "--data") c.data = value;
    else if (flag == "--train") c.protocol.max_train = parse_count(flag, value);
    else if (flag == "--delta") c.protocol.delta = parse_count(flag, value);
    else if (flag == "--node-features") {
      ACE_THROW_IF(value != "speed-height" && value != "height", ace::invalid_argument,
                   "--node-features: unknown choice '", value, "' (speed-height or height)");
      c.node_features = value;
    } else return false;
    return true;
  });
  return c;
}

}  // namespace experiment
