// SPDX-License-Identifier: MIT
// What every example experiment shares: main's error handling, the device and optimiser choices, resuming, mean and
// standard deviation over seeds and counting swings of the relaxation gammas through 0 (flag parsing: flags.hpp).
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
#if defined(ACE_WITH_NCCL) && defined(ACE_WITH_MPI)
#include <ace/distributed/nccl.hpp>
#define ACE_EXAMPLES_WITH_NCCL 1
#endif
#endif
#include <cstdlib>
#if defined(ACE_WITH_MPI)
#include <ace/distributed/mpi.hpp>

#include <memory>
#endif

#include "flags.hpp"

namespace experiment {

/// The processes of a run: MPI's ranks when the example was built with ace::mpi and started by mpiexec (docs/
/// distributed.md), else this process alone. Rank 0 prints and writes the logs, plots, checkpoints and results; the
/// other ranks train alongside it and stay quiet.
class Processes {
 public:
  Processes() {
#if defined(ACE_WITH_MPI)
    if (launched_by_mpiexec()) {
      session_ = std::make_unique<ace::MpiSession>(nullptr, nullptr);
      mpi_ = std::make_unique<ace::Mpi>();
    }
#else
    const char* ranks = std::getenv("OMPI_COMM_WORLD_SIZE");
    if (ranks == nullptr) ranks = std::getenv("PMI_SIZE");
    ACE_THROW_IF(ranks != nullptr && std::string(ranks) != "1", ace::unsupported,
                 "started by mpiexec on ", ranks, " processes, but this build has no MPI (ace::mpi): each process "
                 "would train alone into the same --out; install MPI (scripts/setup) and rebuild, or run one process");
#endif
  }
  /// f(communicator): ace::Mpi under mpiexec, ace::SingleProcess otherwise.
  template <class F>
  decltype(auto) with(F&& f) {
#if defined(ACE_WITH_MPI)
    if (mpi_) return f(*mpi_);
#endif
    return f(alone_);
  }
  template <class F>
  decltype(auto) with(F&& f) const {
#if defined(ACE_WITH_MPI)
    if (mpi_) return f(std::as_const(*mpi_));
#endif
    return f(alone_);
  }
  /// f(communicator) for training on backend B: ace::Nccl on the GPUs' memory for ace::Cuda where use_cuda() chose
  /// it, else with(f).
  template <class B, class F>
  decltype(auto) with_for(F&& f) {
#if defined(ACE_EXAMPLES_WITH_NCCL)
    if constexpr (std::is_same_v<B, ace::Cuda>)
      if (nccl_) return f(*nccl_);
#endif
    return with(std::forward<F>(f));
  }
#if defined(ACE_EXAMPLES_WITH_CUDA)
  /// Before the first CUDA operation, for --device cuda: under mpiexec each rank takes a GPU of its machine (its
  /// index there, modulo the GPUs), and the ranks reduce their gradients with NCCL on the GPUs' memory where the build
  /// has ace::nccl and every rank has a GPU of its own, else over MPI through host memory. Collective. Returns what
  /// was chosen, for the device line ("" for a process alone).
  std::string use_cuda() {
#if defined(ACE_WITH_MPI)
    if (!mpi_) return "";
    const std::size_t local = mpi_->node_rank(), local_ranks = mpi_->node_size();
    const auto devices = static_cast<std::size_t>(ace::cuda::device_count());
    if (devices != 0) ace::cuda::set_device(static_cast<int>(local % devices));
#if defined(ACE_EXAMPLES_WITH_NCCL)
    // Every rank decides alike (machines may differ): NCCL only if each rank on each machine has a GPU of its own.
    double own_gpu = devices != 0 && local_ranks <= devices ? 1.0 : 0.0;
    mpi_->all_reduce_sum(std::span<double>(&own_gpu, 1));
    if (devices == 0) return "";  // print_device says so
    if (own_gpu == static_cast<double>(mpi_->size())) {
      nccl_ = std::make_unique<ace::Nccl>(*mpi_);
      return ace::detail::concat("; gradients reduced by NCCL ", ace::nccl::version(), " on the GPUs' memory");
    }
    return "; gradients reduced over MPI through host memory (NCCL needs a GPU per rank, and some ranks share one)";
#else
    (void)local_ranks;
    return "; this build has no NCCL (ace::nccl): gradients reduced over MPI through host memory";
#endif
#else
    return "";
#endif
  }
#endif
  /// Ends what training used before the program ends (NCCL's communicator, while CUDA and MPI still run); after an
  /// error (`failed`) without waiting for collectives that other ranks may never join.
  void finish(bool failed = false) {
#if defined(ACE_EXAMPLES_WITH_NCCL)
    if (failed && nccl_) nccl_->abort();
    nccl_.reset();
#else
    (void)failed;
#endif
  }
  std::size_t rank() const { return with([](const auto& c) -> std::size_t { return c.rank(); }); }
  std::size_t size() const { return with([](const auto& c) -> std::size_t { return c.size(); }); }
  void barrier() {
    with([](auto& c) { c.barrier(); });
  }
  /// f() on rank 0 first, then on the others (e.g. rank 0 writes a data cache that the others then read).
  template <class F>
  decltype(auto) rank_zero_first(F&& f) {
    if (rank() != 0) barrier();
    struct After {  // the others start once rank 0 is done, also when f throws there
      Processes& p;
      ~After() noexcept(false) {
        if (p.rank() == 0 && std::uncaught_exceptions() == 0) p.barrier();
      }
    } after{*this};
    return f();  // (an error on rank 0 ends every rank in guarded_main: MPI_Abort)
  }
  /// Ends every rank's run after an error on one of them (MPI_Abort: the others would wait for it in a collective).
  [[noreturn]] void abort(int code) {
#if defined(ACE_WITH_MPI)
    if (mpi_) MPI_Abort(mpi_->native(), code);
#endif
    std::exit(code);
  }

 private:
#if defined(ACE_WITH_MPI)
  static bool launched_by_mpiexec() {  // Open MPI, MPICH and PMIx-based launchers set one of these
    for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
      if (std::getenv(v) != nullptr) return true;
    return false;
  }
  std::unique_ptr<ace::MpiSession> session_;
  std::unique_ptr<ace::Mpi> mpi_;
#endif
#if defined(ACE_EXAMPLES_WITH_NCCL)
  std::unique_ptr<ace::Nccl> nccl_;  // after mpi_: destroyed before it
#endif
  ace::SingleProcess alone_;
};

/// This program's processes (started on first use: main's first line).
inline Processes& processes() {
  static Processes p;
  return p;
}

/// --device names a backend this build or machine cannot run: the examples exit with 77 (CTest's "skipped").
struct DeviceUnavailable : ace::unsupported {
  using ace::unsupported::unsupported;
};

/// An example's main: runs `body`; --help (HelpRequested) prints the usage and exits with 0, DeviceUnavailable exits
/// with 77 (CTest's "skipped"), any other error prints "<name>: <message>" and exits with 1.
/// Under mpiexec (processes()) only rank 0 writes to stdout (the others' goes to /dev/null), and an error on any rank
/// prints "<name> (rank r of n): <message>" and ends every rank (MPI_Abort).
template <class Body>
int guarded_main(const char* name, Body&& body) {
  Processes* processes_ = nullptr;  // started first: MPI under mpiexec
  try {
    processes_ = &processes();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 1;
  }
  const auto failed = [&](int code, const char* what) {
    Processes& p = *processes_;
    p.finish(true);
    if (p.size() == 1) {
      std::fprintf(stderr, "%s: %s\n", name, what);
      return code;
    }
    std::fprintf(stderr, "%s (rank %zu of %zu): %s\n", name, p.rank(), p.size(), what);
    std::fflush(stderr);
    p.abort(code);
  };
  try {
    if (processes_->rank() != 0 && std::freopen("/dev/null", "w", stdout) == nullptr)
      throw ace::io_error("cannot send rank " + std::to_string(processes_->rank()) + "'s output to /dev/null");
    body();
    processes_->finish();
    return 0;
  } catch (const HelpRequested& help) {
    std::fputs(help.usage.c_str(), stdout);
    return 0;
  } catch (const DeviceUnavailable& e) {
    return failed(77, e.what());
  } catch (const std::exception& e) {
    return failed(1, e.what());
  }
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
/// are loaded or simulated). `cpu_detail` describes the CPU setup, `detail` what both devices share (the processes).
/// For cuda it chooses this rank's GPU and the ranks' communicator first (Processes::use_cuda).
inline void print_device(const std::string& device, const std::string& cpu_detail, const std::string& detail = "") {
  if (device == "cpu") {
    std::printf("device: cpu (ace::Cpu%s%s)\n", cpu_detail.c_str(), detail.c_str());
    return;
  }
#if defined(ACE_EXAMPLES_WITH_CUDA)
  const std::string reduction = processes().use_cuda();
  ACE_THROW_IF(ace::cuda::device_count() == 0, DeviceUnavailable, "--device cuda: no CUDA device is available");
  std::printf("device: cuda (ace::Cuda on %s%s%s)\n", ace::cuda::device_name().c_str(), detail.c_str(),
              reduction.c_str());
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

/// Where a run that checkpoints into `dir`/state starts: {0, 0} for a new run. If `dir` holds a run's state, --resume
/// (`resume`) loads its last checkpoint into `trainer`, cuts `dir`/log.csv to the epochs it covers, calls
/// `replay(summary)` for each of them (so the caller restores its bookkeeping: best epoch, curves, plots) and returns
/// the checkpoint's position (epochs done, and mini-batches of the next one when it was saved mid-epoch); without
/// --resume that is an error.
/// Under mpiexec every rank loads the checkpoint, and only rank 0 (`writer`) cuts the log back to it; the others read
/// it.
template <class Trainer, class Replay>
ace::TrainingPosition resume_point(const std::string& dir, bool resume, Trainer& trainer, Replay&& replay,
                                   bool writer = true) {
  const std::filesystem::path state = std::filesystem::path(dir) / "state" / "last";
  if (!ace::io::checkpoint_exists(state)) return {};
  ACE_THROW_IF(!resume, ace::invalid_argument, dir,
               " holds the state of an earlier run: pass --resume to continue it, or choose another --out");
  const ace::TrainingPosition at = ace::load_training_state(state, trainer);
  const auto rows = writer ? ace::resume_csv_log(dir + "/log.csv", at.epoch)
                           : (at.epoch == 0 && !std::filesystem::exists(dir + "/log.csv")
                                  ? std::vector<ace::EpochSummary>{}
                                  : ace::read_csv_log(dir + "/log.csv", at.epoch));
  for (const ace::EpochSummary& s : rows) replay(s);
  if (at.batch == 0) std::printf("  resumed after epoch %zu\n", at.epoch);
  else std::printf("  resumed after epoch %zu and %zu batches of the next\n", at.epoch, at.batch);
  return at;
}

/// The epochs left to train after `at` when the run has `epochs` in all (the partial one counts).
inline std::size_t epochs_left(std::size_t epochs, const ace::TrainingPosition& at) {
  return epochs > at.epoch ? epochs - at.epoch : 0;
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

}  // namespace experiment
