// SPDX-License-Identifier: MIT
// What every example experiment shares: flag parsing, mean and standard deviation over seeds, atomic result files
// and counting swings of the relaxation gammas through 0.
#pragma once

#include <ace/ace.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>
#if defined(ACE_EXAMPLES_WITH_CUDA)
#include <ace/backend/cuda/cuda.hpp>
#endif

namespace experiment {

/// --device names a backend this build or machine cannot run: the examples exit with 77 (CTest's "skipped").
struct DeviceUnavailable : ace::unsupported {
  using ace::unsupported::unsupported;
};

/// Checks the --device value (cpu or cuda).
inline void check_device_name(const std::string& device) {
  ACE_THROW_IF(device != "cpu" && device != "cuda", ace::invalid_argument, "--device: unknown device '", device,
               "' (cpu or cuda)");
}

/// Checks the --gamma-opt value: auto (plain gradient steps on the gammas of ACE equality, Adam for every other
/// method: docs/ace.md), adam or sgd (plain steps for every method that learns its gammas).
inline void check_gamma_opt(const std::string& opt) {
  ACE_THROW_IF(opt != "auto" && opt != "adam" && opt != "sgd", ace::invalid_argument, "--gamma-opt: unknown optimiser '",
               opt, "' (auto, adam or sgd)");
}

/// run(primal) with the primal optimiser --gamma-opt asks for under Policy: `adam` on every parameter, or
/// ByRole<Adam, SGD>: `adam` on the weights and plain gradient steps at `gamma_lr` on the gammas and slacks.
template <class Policy, class B, class Run>
auto with_gamma_optimizer(const std::string& opt, double gamma_lr, const ace::Adam<float, B>& adam, Run&& run) {
  if constexpr (Policy::learn_gamma)
    if (opt == "sgd" || (opt == "auto" && std::is_same_v<Policy, ace::EqualityConstraint>))
      return run(ace::ByRole<ace::Adam<float, B>, ace::SGD<float, B>>(adam, ace::SGD<float, B>({.lr = gamma_lr})));
  return run(adam);
}

/// Says which device the runs will train on; throws DeviceUnavailable first if it cannot (call it before the data
/// are loaded or simulated). `cpu_detail` describes the CPU setup.
inline void print_device(const std::string& device, const std::string& cpu_detail) {
  if (device == "cpu") {
    std::printf("device: cpu (ace::Cpu%s)\n", cpu_detail.c_str());
    return;
  }
#if defined(ACE_EXAMPLES_WITH_CUDA)
  ACE_THROW_IF(ace::cuda::device_count() == 0, DeviceUnavailable, "--device cuda: no CUDA device is available");
  std::printf("device: cuda (ace::Cuda on %s)\n", ace::cuda::device_name().c_str());
#else
  throw DeviceUnavailable("--device cuda: this build has no CUDA backend (configure with ACE_WITH_CUDA=ON)");
#endif
}

/// f(std::type_identity<B>{}) with B the backend --device names.
template <class F>
decltype(auto) on_device(const std::string& device, F&& f) {
  if (device == "cpu") return f(std::type_identity<ace::Cpu>{});
#if defined(ACE_EXAMPLES_WITH_CUDA)
  return f(std::type_identity<ace::Cuda>{});
#else
  throw DeviceUnavailable("--device cuda: this build has no CUDA backend (configure with ACE_WITH_CUDA=ON)");
#endif
}

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
  ACE_THROW_IF(!ok, ace::invalid_argument, flag, ": expected ", std::is_floating_point_v<T> ? "a number" : "an integer",
               ", got '", text, "'");
  return v;
}

/// A positive integer flag value.
inline std::size_t parse_count(const std::string& flag, const std::string& text) {
  const unsigned long long v = parse_number<unsigned long long>(flag, text);
  ACE_THROW_IF(v == 0, ace::invalid_argument, flag, ": expected a positive integer, got '", text, "'");
  return static_cast<std::size_t>(v);
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
  ACE_THROW_IF(out.empty(), ace::invalid_argument, flag, ": empty list");
  return out;
}

/// Where a run that checkpoints into `dir`/state starts: 0 for a new run. If `dir` holds a run's state, --resume
/// (`resume`) loads its last checkpoint into `trainer`, cuts `dir`/log.csv to the epochs it covers, calls
/// `replay(summary)` for each of them (so the caller restores its bookkeeping: best epoch, curves, plots) and returns
/// the checkpoint's epoch; without --resume that is an error.
template <class Trainer, class Replay>
std::size_t resume_point(const std::string& dir, bool resume, Trainer& trainer, Replay&& replay) {
  const std::filesystem::path state = std::filesystem::path(dir) / "state" / "last";
  if (!std::filesystem::exists(state)) return 0;
  ACE_THROW_IF(!resume, ace::invalid_argument, dir,
               " holds the state of an earlier run: pass --resume to continue it, or choose another --out");
  const std::size_t epoch = ace::load_training_state(state, trainer);
  for (const ace::EpochSummary& s : ace::resume_csv_log(dir + "/log.csv", epoch)) replay(s);
  std::printf("  resumed after epoch %zu\n", epoch);
  return epoch;
}

/// The largest number of swings of one gamma through 0 across the epoch summaries: sign changes between epochs
/// where |gamma| > 0.01, so that a gamma resting at 0 (rounding-level jitter) does not count.
inline std::size_t gamma_crossings(const std::vector<ace::EpochSummary>& history) {
  std::size_t most = 0;
  const std::size_t n = history.empty() ? 0 : history.back().gammas.size();
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t count = 0;
    double previous = 0.0;
    for (const auto& s : history) {
      const double g = s.gammas[i];
      if (std::abs(g) <= 0.01) continue;
      if (previous != 0.0 && (g > 0.0) != (previous > 0.0)) ++count;
      previous = g;
    }
    most = std::max(most, count);
  }
  return most;
}

inline std::pair<double, double> mean_std(const std::vector<double>& v) {
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double var = 0.0;
  for (double x : v) var += (x - mean) * (x - mean);
  return {mean, v.size() > 1 ? std::sqrt(var / static_cast<double>(v.size() - 1)) : 0.0};
}

/// Writes `text` to `path` through a temporary file renamed into place: readers never see a partial file.
inline void write_text_atomically(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.flush();
    ACE_THROW_IF(!out, ace::io_error, "writing ", tmp.string(), " failed");
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace experiment
