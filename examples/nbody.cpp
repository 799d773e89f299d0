// SPDX-License-Identifier: MIT
// The N-body ACE experiment (docs/method.md §6–§8): an EGNN predicts where 5 charged particles are 1000 integration steps
// later; strict, free, schedule, ACE equality and ACE resilient training on equal footing (same data, same initial
// network, same optimiser), over several seeds. Prints a results table and writes CSV logs and SVG plots.
//
//   nbody                         the default preset: every method, one seed, a few minutes on 2 cores
//   nbody --preset paper          the published setup (3000 samples, 4 x 64 EGNN, Adam 5e-4, batch 100, long)
//   nbody --help                  every flag
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#define ACE_EXPERIMENT_SEGNN 1  // this experiment offers --model segnn
#include "graph_experiment.hpp"

using namespace ace;
using experiment::Batch;

namespace {

struct Config {
  experiment::Settings run;
  std::string preset = "default";
  std::size_t train = 3000, valid = 1000, test = 2000, data_seed = 1;
  double field = 0.0;
  std::string data = "nbody_data";
  std::string reference_data;  // a data set of the EGNN reference generator (read instead of simulating)
};

const std::string usage = std::string(
    "usage: nbody [--preset default|paper] [--model egnn|segnn] [--train N] [--valid N] [--test N] [--field E]\n"
    "             [--data-seed N] [--data DIR] [--reference-data DIR] [shared flags]\n"
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
    "shared flags:\n") + experiment::settings_usage;

Config parse(int argc, char** argv) {
  Config c;
  c.run.out = "nbody_out";
  const std::vector<std::string> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i + 1 < args.size(); ++i)  // the preset first, so later flags override it
    if (args[i] == "--preset") c.preset = args[i + 1];
  ACE_THROW_IF(c.preset != "default" && c.preset != "paper", invalid_argument, "--preset: unknown preset '", c.preset,
               "' (default or paper)");
  for (std::size_t i = 0; i + 1 < args.size(); ++i)  // the model's settings next, before the flags that override them
    if (args[i] == "--model") c.run.model = args[i + 1];
  ACE_THROW_IF(c.run.model != "egnn" && c.run.model != "segnn", invalid_argument, "--model: unknown model '",
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
  experiment::parse_flags(args, usage, c.run, [&](const std::string& flag, const std::string& value) {
    if (flag == "--preset" || flag == "--model") return true;
    if (flag == "--train") c.train = experiment::parse_count(flag, value);
    else if (flag == "--valid") c.valid = experiment::parse_count(flag, value);
    else if (flag == "--test") c.test = experiment::parse_count(flag, value);
    else if (flag == "--data-seed") c.data_seed = experiment::parse_count(flag, value);
    else if (flag == "--field") c.field = experiment::parse_number<double>(flag, value);
    else if (flag == "--data") c.data = value;
    else if (flag == "--reference-data") c.reference_data = value;
    else return false;
    return true;
  });
  ACE_THROW_IF(c.run.batch > c.train, invalid_argument, "--batch ", c.run.batch, " is larger than --train ", c.train);
  ACE_THROW_IF(c.run.model == "segnn" && c.run.hidden != 64, invalid_argument, "--hidden ", c.run.hidden,
               ": SEGNN's hidden irreps are part of its type (32x0e + 32x1o, the weight-balanced irreps of width 64); "
               "--hidden applies to --model egnn");
  return c;
}

Batch whole(const data::NBodySamples& s, std::size_t count) {
  std::vector<std::size_t> idx(count);
  std::iota(idx.begin(), idx.end(), 0);
  return data::nbody_batch<float>(s, idx);
}

experiment::Task load(const Config& c) {
  data::NBodyOptions o;
  o.field = c.field;
  ACE_THROW_IF(!c.reference_data.empty() && c.field != 0.0, invalid_argument,
               "--field applies to simulated data, not to --reference-data");
  const auto get = [&](data::NBodySplit split, std::size_t n) {
    if (!c.reference_data.empty()) return whole(data::read_reference_nbody(c.reference_data, split, n, o), n);
    return whole(data::load_or_make_nbody(c.data, o, split, n, c.data_seed), n);
  };
  experiment::Task t;
  t.title = detail::concat("N-body, ", c.run.model == "segnn" ? "SEGNN" : "EGNN",
                           c.reference_data.empty() ? "" : " (the reference generator's data)", ", ", c.train, " training systems, field ", c.field, ", ", c.run.epochs, " epochs, ",
                           c.run.seeds.size(),
                           " seed(s); deployed models, test MSE at the best validation epoch (x 1e-3), mean +- std "
                           "over seeds");
  t.graph = Graph::complete(5);
  t.network = {.node_features = 1, .edge_features = 2, .raw_features = 1};
  t.train = get(data::NBodySplit::train, c.train);
  t.valid = get(data::NBodySplit::validation, c.valid);
  t.test = get(data::NBodySplit::test, c.test);
  std::vector<std::size_t> first(std::min<std::size_t>(c.valid, 50));
  std::iota(first.begin(), first.end(), 0);
  select_graphs(t.valid, first, 5, 20, t.probe);
  t.gamma_names = c.run.model == "segnn" ? experiment::segnn_gamma_names(c.run.layers)
                                         : experiment::egnn_gamma_names(c.run.layers);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Config c = parse(argc, argv);
    experiment::print_device(c.run);
    if (c.reference_data.empty()) std::printf("simulating or loading the data (cache: %s) ...\n", c.data.c_str());
    else std::printf("reading the reference generator's data set from %s ...\n", c.reference_data.c_str());
    const experiment::Task t = load(c);
    experiment::print_reference_points(t, 1.0);  // 1000 steps of dt 0.001
    experiment::run_all(c.run, t);
  } catch (const experiment::DeviceUnavailable& e) {
    std::fprintf(stderr, "nbody: %s\n", e.what());
    return 77;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nbody: %s\n", e.what());
    return 1;
  }
}
