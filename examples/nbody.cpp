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
#include "nbody_flags.hpp"

using namespace ace;
using experiment::Batch;
using experiment::NBodyConfig;

namespace {

Batch whole(const data::NBodySamples& s, std::size_t count) {
  std::vector<std::size_t> idx(count);
  std::iota(idx.begin(), idx.end(), 0);
  return data::nbody_batch<float>(s, idx);
}

experiment::Task load(const NBodyConfig& c) {
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

/// --clip-stats: how often the simulator's force clip fires, per split (docs/results-nbody.md §6).
void print_clip_statistics(const NBodyConfig& c) {
  data::NBodyOptions o;
  o.field = c.field;
  std::printf("force clip (|F| > %g per component), first %zu systems of each split, data seed %zu, field %g; the "
              "window is from the input frame (%zu) to the target frame (%zu)\n\n",
              o.force_clip, c.clip_stats, c.data_seed, c.field, o.input_frame, o.target_frame);
  std::printf("| split | systems | clipped components, whole simulation | in the window | systems with a clip in "
              "the window |\n|---|---:|---:|---:|---:|\n");
  for (auto split : {data::NBodySplit::train, data::NBodySplit::validation, data::NBodySplit::test}) {
    const auto n = std::min(c.clip_stats, data::nbody_split_capacity(split));
    const auto s = data::nbody_clip_statistics(o, split, n, c.data_seed);
    const auto rate = [](std::size_t part, std::size_t whole) { return whole ? double(part) / double(whole) : 0.0; };
    std::printf("| %s | %zu | %zu of %zu (%.2e) | %zu of %zu (%.2e) | %zu (%.2f %%) |\n", data::nbody_split_name(split),
                s.systems, s.clipped, s.force_components, rate(s.clipped, s.force_components), s.window_clipped,
                s.window_components, rate(s.window_clipped, s.window_components), s.systems_clipped_in_window,
                100.0 * rate(s.systems_clipped_in_window, s.systems));
  }
}

}  // namespace

int main(int argc, char** argv) {
  return experiment::guarded_main("nbody", [&] {
    const NBodyConfig c = experiment::parse_nbody({argv + 1, argv + argc});
    if (c.clip_stats > 0) return print_clip_statistics(c);
    experiment::print_device(c.run);
    if (c.reference_data.empty()) std::printf("simulating or loading the data (cache: %s) ...\n", c.data.c_str());
    else std::printf("reading the reference generator's data set from %s ...\n", c.reference_data.c_str());
    // Under mpiexec rank 0 simulates and caches the data first; the other ranks then read the cache.
    const experiment::Task t = experiment::processes().rank_zero_first([&] { return load(c); });
    experiment::print_reference_points(t, 1.0);  // 1000 steps of dt 0.001
    experiment::run_all(c.run, t);
  });
}
