// SPDX-License-Identifier: MIT
// The N-body ACE experiment (METHOD.md §6–§8): an EGNN predicts where 5 charged particles are 1000 integration steps
// later; strict, free, schedule, ACE equality and ACE resilient training on equal footing (same data, same initial
// network, same optimiser), over several seeds. Prints a results table and writes CSV logs and SVG plots.
//
//   nbody                         the default preset: every method, one seed, a few minutes on 2 cores
//   nbody --preset paper          the published setup (3000 samples, 4 x 64 EGNN, Adam 5e-4, batch 100, long)
//   nbody --help                  every flag
#include <ace/ace.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

using namespace ace;
using Model = EGNNRegression<float>;
using Batch = GraphBatch<float>;

namespace {

struct Config {
  std::string preset = "default";
  std::vector<std::string> methods{"strict", "free", "schedule", "equality", "resilient"};
  std::vector<std::uint64_t> seeds{1};
  std::size_t train = 3000, valid = 1000, test = 2000;
  std::size_t epochs = 100, batch = 100, hidden = 64, layers = 4, eval_every = 1, workers = 2;
  double lr = 5e-4, weight_decay = 1e-12, dual_lr = 1e-3, augmented = 1.0, rho = 1.0, field = 0.0;
  std::size_t data_seed = 1;
  std::string out = "nbody_out", data = "nbody_data";
};

const char* usage =
    "usage: nbody [--preset default|paper] [--methods strict,free,schedule,equality,resilient] [--seeds 1,2,3]\n"
    "             [--train N] [--valid N] [--test N] [--epochs N] [--batch N] [--hidden N] [--layers N]\n"
    "             [--lr X] [--weight-decay X] [--dual-lr X] [--augmented C] [--rho X] [--field E]\n"
    "             [--eval-every N] [--workers N] [--data-seed N] [--data DIR] [--out DIR]\n"
    "  --augmented C  augmented-Lagrangian coefficient of the ACE methods (default 1: without it the equality\n"
    "                 gammas overshoot 0 and oscillate under Adam; 0 = the plain Lagrangian)\n"
    "  --eval-every N evaluate (validation, test at the best validation epoch, equivariance) every N epochs\n"
    "  --workers N    data-parallel chunks per batch (default 2; results depend on N at the rounding level only)\n"
    "  --field E      a constant external field of strength E along z acting on the charges (0 = symmetric data)\n"
    "  --data DIR     where the simulated data sets are cached (.npy)\n"
    "  --out DIR      where the logs, plots and results go: DIR/<method>/seed<s>/{log.csv,*.svg}, DIR/*.svg,\n"
    "                 DIR/results.csv\n";

/// The whole of `text` as a number (a finite one, for floating point), or invalid_argument naming the flag.
template <class T>
T parse_number(const std::string& flag, const std::string& text) {
  std::size_t used = 0;
  T v{};
  try {
    if constexpr (std::is_floating_point_v<T>) v = static_cast<T>(std::stod(text, &used));
    else v = static_cast<T>(std::stoull(text, &used));
  } catch (const std::exception&) {
    used = std::string::npos;
  }
  bool ok = used == text.size() && text.find('-') == std::string::npos;
  if constexpr (std::is_floating_point_v<T>) ok = used == text.size() && std::isfinite(v);
  ACE_THROW_IF(!ok, invalid_argument, flag, ": expected ", std::is_floating_point_v<T> ? "a number" : "an integer",
               ", got '", text, "'");
  return v;
}

template <class T>
std::vector<T> split_list(const std::string& flag, const std::string& text) {
  std::vector<T> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if constexpr (std::is_same_v<T, std::string>) out.push_back(item);
    else out.push_back(parse_number<T>(flag, item));
  }
  ACE_THROW_IF(out.empty(), invalid_argument, flag, ": empty list");
  return out;
}

Config parse(int argc, char** argv) {
  Config c;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i)  // the preset first, so later flags override it
    if (args[i] == "--preset" && i + 1 < args.size()) c.preset = args[i + 1];
  ACE_THROW_IF(c.preset != "default" && c.preset != "paper", invalid_argument, "--preset: unknown preset '", c.preset,
               "' (default or paper)");
  if (c.preset == "paper") {
    c.train = 3000;
    c.valid = 2000;
    c.test = 2000;
    c.epochs = 10000;
    c.seeds = {1, 2, 3};
  }
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(usage, stdout);
      std::exit(0);
    }
    ACE_THROW_IF(i + 1 >= args.size(), invalid_argument, flag, " needs a value\n", usage);
    const std::string value = args[++i];
    const auto count = [&] {
      const unsigned long long v = parse_number<unsigned long long>(flag, value);
      ACE_THROW_IF(v == 0, invalid_argument, flag, ": expected a positive integer, got '", value, "'");
      return static_cast<std::size_t>(v);
    };
    const auto real = [&] { return parse_number<double>(flag, value); };
    if (flag == "--preset") continue;
    else if (flag == "--methods") c.methods = split_list<std::string>(flag, value);
    else if (flag == "--seeds") c.seeds = split_list<std::uint64_t>(flag, value);
    else if (flag == "--train") c.train = count();
    else if (flag == "--valid") c.valid = count();
    else if (flag == "--test") c.test = count();
    else if (flag == "--epochs") c.epochs = count();
    else if (flag == "--batch") c.batch = count();
    else if (flag == "--hidden") c.hidden = count();
    else if (flag == "--layers") c.layers = count();
    else if (flag == "--lr") c.lr = real();
    else if (flag == "--weight-decay") c.weight_decay = real();
    else if (flag == "--dual-lr") c.dual_lr = real();
    else if (flag == "--augmented") c.augmented = real();
    else if (flag == "--rho") c.rho = real();
    else if (flag == "--field") c.field = real();
    else if (flag == "--data-seed") c.data_seed = count();
    else if (flag == "--eval-every") c.eval_every = count();
    else if (flag == "--workers") c.workers = count();
    else if (flag == "--data") c.data = value;
    else if (flag == "--out") c.out = value;
    else ACE_THROW_IF(true, invalid_argument, "unknown flag ", flag, "\n", usage);
  }
  for (const auto& m : c.methods)
    ACE_THROW_IF(m != "strict" && m != "free" && m != "schedule" && m != "equality" && m != "resilient",
                 invalid_argument, "--methods: unknown method '", m, "' (strict, free, schedule, equality, resilient)");
  ACE_THROW_IF(c.batch > c.train, invalid_argument, "--batch ", c.batch, " is larger than --train ", c.train);
  return c;
}

struct Data {
  Batch train, valid, test, probe;  // probe: the first validation systems, for the equivariance error
};

Batch whole(const data::NBodySamples& s, std::size_t count) {
  std::vector<std::size_t> idx(count);
  std::iota(idx.begin(), idx.end(), 0);
  return data::nbody_batch<float>(s, idx);
}

Data load(const Config& c) {
  data::NBodyOptions o;
  o.field = c.field;
  const auto get = [&](data::NBodySplit split, std::size_t n) {
    return whole(data::load_or_make_nbody(c.data, o, split, n, c.data_seed), n);
  };
  Data d{get(data::NBodySplit::train, c.train), get(data::NBodySplit::validation, c.valid),
         get(data::NBodySplit::test, c.test), {}};
  const std::vector<std::size_t> first = [&] {
    std::vector<std::size_t> v(std::min<std::size_t>(c.valid, 50));
    std::iota(v.begin(), v.end(), 0);
    return v;
  }();
  select_graphs(d.valid, first, 5, 20, d.probe);
  return d;
}

/// What one run reports.
struct RunResult {
  std::string method;
  std::uint64_t seed = 0;
  double test_mse = 0.0;     // the deployed model's test MSE at the best validation epoch
  double best_valid = 0.0;   // the deployed model's best validation MSE
  std::size_t best_epoch = 0;
  double equivariance = 0.0;  // the deployed model's E(3) equivariance error at the end
  double max_gamma = 0.0;     // final max |gamma|
  double seconds = 0.0;
  std::vector<double> valid_curve;  // deployed validation MSE per epoch
};

/// Mean squared error over a whole split, evaluated in chunks of at most 500 systems (gathered into `chunk`).
double mse(Model& model, const Batch& all, Batch& chunk) {
  const std::size_t systems = all.x.shape()[0] / 5;
  double sum = 0.0;
  for (std::size_t first = 0; first < systems; first += 500) {
    std::vector<std::size_t> idx(std::min<std::size_t>(500, systems - first));
    std::iota(idx.begin(), idx.end(), first);
    select_graphs(all, idx, 5, 20, chunk);
    sum += model.loss(chunk) * static_cast<double>(idx.size());
  }
  return sum / static_cast<double>(systems);
}

template <class Policy>
RunResult run(const Config& c, const Data& d, const std::string& method, std::uint64_t seed, Policy policy) {
  Rng rng(seed);  // the same initial network for every method with this seed
  Model model(EGNN<float>(Graph::complete(5),
                          {.node_features = 1, .edge_features = 2, .raw_features = 1, .hidden = c.hidden,
                           .layers = c.layers, .relaxed = true},
                          rng),
              {.workers = c.workers});
  const std::size_t steps_per_epoch = c.train / c.batch;
  ConstrainedTrainer trainer(model, Adam<float>({.lr = c.lr, .weight_decay = c.weight_decay}), policy,
                             DualSGD{.lr = c.dual_lr},
                             {.augmented = c.augmented, .total_steps = steps_per_epoch * c.epochs});
  Batch batch;
  std::vector<std::size_t> order(c.train);
  const auto batches = [&](std::size_t epoch, auto&& step) {
    std::iota(order.begin(), order.end(), 0);
    Rng shuffle(seed * 1000003 + epoch);  // per-epoch seed: reproducible and resumable
    for (std::size_t i = order.size() - 1; i > 0; --i) std::swap(order[i], order[shuffle.below(i + 1)]);
    for (std::size_t s = 0; s < steps_per_epoch; ++s) {
      select_graphs(d.train, std::span<const std::size_t>(order).subspan(s * c.batch, c.batch), 5, 20, batch);
      step(batch);
    }
  };
  Batch chunk;  // evaluation buffer, reused
  RunResult r;
  r.method = method;
  r.seed = seed;
  r.best_valid = std::numeric_limits<double>::infinity();
  const auto grid = so3_grid(8);
  const auto evaluate = [&](EpochSummary& s) {
    if (s.epoch % c.eval_every != 0 && s.epoch != c.epochs) {  // not evaluated: NaN in the logs, gaps in the plots
      for (const char* m : {"valid_mse", "test_mse_at_best", "equivariance_error", "valid_relaxed_mse"})
        s.metrics[m] = std::numeric_limits<double>::quiet_NaN();
      r.valid_curve.push_back(std::numeric_limits<double>::quiet_NaN());
      return;
    }
    trainer.deploy();
    const double valid = mse(model, d.valid, chunk);
    if (valid < r.best_valid) {  // model selection on the deployed model's validation error
      r.best_valid = valid;
      r.best_epoch = s.epoch;
      r.test_mse = mse(model, d.test, chunk);
    }
    s.metrics["valid_mse"] = valid;
    s.metrics["test_mse_at_best"] = r.test_mse;
    s.metrics["equivariance_error"] = euclidean_equivariance_error(model, d.probe, grid).max;
    model.set_relaxation(true);
    s.metrics["valid_relaxed_mse"] = mse(model, d.valid, chunk);
    r.valid_curve.push_back(valid);
  };
  const std::string dir = detail::concat(c.out, "/", method, "/seed", seed);
  std::printf("%s, seed %llu\n", method.c_str(), static_cast<unsigned long long>(seed));
  ProgressBar bar;
  CsvLogger csv(dir + "/log.csv");
  PlotWriter plots(dir, 10);
  const auto start = std::chrono::steady_clock::now();
  const FitResult fr = fit(trainer, c.epochs, batches, evaluate, 0, bar, csv, plots);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (fr.status == FitStatus::non_finite) std::printf("  %s\n", fr.message.c_str());
  const EpochSummary& last = plots.history().back();
  r.equivariance = last.metrics.at("equivariance_error");
  r.max_gamma = last.max_abs_gamma();
  return r;
}

RunResult run_method(const Config& c, const Data& d, const std::string& m, std::uint64_t seed) {
  if (m == "strict") return run(c, d, m, seed, StrictBaseline{});
  if (m == "free") return run(c, d, m, seed, FreeBaseline{});
  if (m == "schedule") return run(c, d, m, seed, ScheduleBaseline{});
  if (m == "equality") return run(c, d, m, seed, EqualityConstraint{});
  return run(c, d, m, seed, ResilientConstraint{.rho = c.rho});
}

std::pair<double, double> mean_std(const std::vector<double>& v) {
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double var = 0.0;
  for (double x : v) var += (x - mean) * (x - mean);
  return {mean, v.size() > 1 ? std::sqrt(var / static_cast<double>(v.size() - 1)) : 0.0};
}

void report(const Config& c, const std::vector<RunResult>& results) {
  std::printf("\nN-body, %zu training systems, field %g, %zu epochs, %zu seed(s); deployed models, test MSE at the\n"
              "best validation epoch (x 1e-3), mean +- std over seeds\n\n",
              c.train, c.field, c.epochs, c.seeds.size());
  std::printf("| method | test MSE x1e-3 | best epoch | equivariance error | final max abs gamma | time (s) |\n");
  std::printf("|---|---:|---:|---:|---:|---:|\n");
  io::LinePlot curves{"Validation MSE of the deployed model", "epoch", "MSE", true, {}};
  for (const auto& m : c.methods) {
    std::vector<double> test, epoch, eq, gamma, secs;
    for (const auto& r : results) {
      if (r.method != m) continue;
      test.push_back(1e3 * r.test_mse);
      epoch.push_back(static_cast<double>(r.best_epoch));
      eq.push_back(r.equivariance);
      gamma.push_back(r.max_gamma);
      secs.push_back(r.seconds);
      if (r.seed == c.seeds.front()) {
        io::Series s{m, {}, r.valid_curve};
        for (std::size_t e = 1; e <= r.valid_curve.size(); ++e) s.x.push_back(static_cast<double>(e));
        curves.series.push_back(std::move(s));
      }
    }
    if (test.empty()) continue;
    const auto [tm, ts] = mean_std(test);
    std::printf("| %s | %.2f +- %.2f | %.0f | %.1e | %.2e | %.0f |\n", m.c_str(), tm, ts, mean_std(epoch).first,
                *std::max_element(eq.begin(), eq.end()), mean_std(gamma).first, mean_std(secs).first);
  }
  io::write_svg(c.out + "/valid_curves.svg", curves);
  std::ofstream csv(c.out + "/results.csv");
  csv << "method,seed,test_mse,best_valid_mse,best_epoch,equivariance_error,max_abs_gamma,seconds\n";
  for (const auto& r : results)
    csv << r.method << "," << r.seed << "," << r.test_mse << "," << r.best_valid << "," << r.best_epoch << ","
        << r.equivariance << "," << r.max_gamma << "," << r.seconds << "\n";
  std::printf("\nlogs and plots: %s/<method>/seed<s>/, %s/valid_curves.svg, %s/results.csv\n", c.out.c_str(),
              c.out.c_str(), c.out.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Config c = parse(argc, argv);
    std::printf("simulating or loading the data (cache: %s) ...\n", c.data.c_str());
    const Data d = load(c);
    {
      // Reference points: predicting no motion, and moving on at the input velocity for the 1000 steps.
      double still = 0.0, linear = 0.0;
      for (std::size_t i = 0; i < d.test.x.size(); ++i) {
        const double a = d.test.target.data()[i] - d.test.x.data()[i];
        still += a * a;
        linear += (a - d.test.v.data()[i]) * (a - d.test.v.data()[i]);
      }
      std::printf("test MSE of x(t) = x(0): %.4f; of x(t) = x(0) + t v(0): %.4f\n",
                  still / static_cast<double>(d.test.x.size()), linear / static_cast<double>(d.test.x.size()));
    }
    std::vector<RunResult> results;
    for (std::uint64_t seed : c.seeds)
      for (const auto& m : c.methods) results.push_back(run_method(c, d, m, seed));
    report(c, results);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nbody: %s\n", e.what());
    return 1;
  }
}
