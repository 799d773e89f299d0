// SPDX-License-Identifier: MIT
// Single-precision GEMM on the shapes ace runs, by every implementation this build found (gemm_libraries.hpp): ace's
// Cpu backend (Eigen), OpenBLAS, BLIS, libxsmm, oneDNN's sgemm and matmul primitive; 1 and 2 threads. Every result
// is checked against a double-precision product (sampled rows) before it is timed. Counters: GFLOP/s and peak% (the
// rate over the FMA peak measured at start-up on one core with the widest vectors the CPU has, times the threads).
// "+silu" shapes are a dense layer's forward pass, C = SiLU(A B + bias): fused into oneDNN matmul's epilogue and into
// ace's block epilogue (ace-*-fused: Cpu::gemm_bias_act), ace's own two passes after the others.
// silu/*: the epilogue's activation alone, SiLU and its backward pass on one core over 4 096 entries (in L1) and the
// EGNN's 2 000 x 64 block (in L2 or L3), on each instruction-set path of cpu/sigmoid.hpp and as the Cpu backend ran it
// before (x (1/2 + tanh(x/2)/2) through Eigen's vectorised tanh, the backward pass reading SiLU(x) too: "eigen-tanh").
// The libraries found and the kernels they picked are printed first. docs/benchmarks.md has the tables.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <ace/backend/cpu/elementwise.hpp>
#include <ace/random.hpp>

#include "../common/fma_peak.hpp"
#include "gemm_libraries.hpp"

namespace {
using ace::bench::GemmLibrary;
using ace::bench::GemmShape;

struct NamedShape {
  const char* name;
  GemmShape shape;
};

// The EGNN (hidden 64, batch 100 of 5 bodies: 2 000 edges, 500 nodes): the edge MLP's input layer (2*64 + 1 + 2 = 131
// features), its hidden layer, the node MLP's input layer, and the input layer's two backward products; DeepSets'
// 6 400 x 256 x 256 and its backward products; the C4 convolution of bench_conv as the GEMM of its unfolded input.
const NamedShape shapes[] = {
    {"square256", {256, 256, 256}},
    {"square1024", {1024, 1024, 1024}},
    {"egnn_edge_in", {2000, 64, 131}},
    {"egnn_edge_in+silu", {2000, 64, 131, false, false, true}},
    {"egnn_hidden+silu", {2000, 64, 64, false, false, true}},
    {"egnn_node_in+silu", {500, 64, 128, false, false, true}},
    {"egnn_edge_in_dx", {2000, 131, 64, false, true}},  // dX = dY W^T
    {"egnn_edge_in_dw", {131, 64, 2000, true, false}},  // dW = X^T dY
    {"deepsets", {6400, 256, 256}},
    {"deepsets_dx", {6400, 256, 256, false, true}},
    {"deepsets_dw", {256, 256, 6400, true, false}},
    {"conv_im2col", {32768, 64, 1600}},
};

struct Operands {
  std::vector<float> a, b, bias, c;
};

const Operands& operands(const NamedShape& s) {
  static std::map<std::string, Operands> cache;
  auto [it, fresh] = cache.try_emplace(s.name);
  if (fresh) {
    ace::Rng rng(7);
    auto fill = [&](std::vector<float>& v, std::size_t n) {
      v.resize(n);
      for (auto& x : v) x = static_cast<float>(rng.normal());
    };
    const auto m = static_cast<std::size_t>(s.shape.m), n = static_cast<std::size_t>(s.shape.n),
               k = static_cast<std::size_t>(s.shape.k);
    fill(it->second.a, m * k);
    fill(it->second.b, k * n);
    fill(it->second.bias, n);
    it->second.c.assign(m * n, 0.0f);
  }
  return it->second;
}

/// The largest error over sampled rows of C against the double product, each entry's error relative to
/// sum_k |a_ik b_kj| (so it reads in units of float rounding whatever the scale).
double checked_error(const GemmShape& s, const Operands& x, const std::vector<float>& c) {
  const int rows = std::min(s.m, 48);
  double worst = 0;
  for (int r = 0; r < rows; ++r) {
    const int i = rows == 1 ? 0 : static_cast<int>(static_cast<long>(r) * (s.m - 1) / (rows - 1));
    for (int j = 0; j < s.n; ++j) {
      double sum = 0, scale = 0;
      for (int l = 0; l < s.k; ++l) {
        const double a = x.a[s.ta ? static_cast<std::size_t>(l) * s.m + i : static_cast<std::size_t>(i) * s.k + l];
        const double b = x.b[s.tb ? static_cast<std::size_t>(j) * s.k + l : static_cast<std::size_t>(l) * s.n + j];
        sum += a * b;
        scale += std::abs(a * b);
      }
      if (s.bias_silu) {
        sum += x.bias[j];
        scale += std::abs(x.bias[j]);
        sum = sum / (1 + std::exp(-sum));
      }
      worst = std::max(worst, std::abs(c[static_cast<std::size_t>(i) * s.n + j] - sum) / std::max(scale, 1.0));
    }
  }
  return worst;
}

/// The core's FMA peak in GFLOP/s, best of 3 rounds: with AVX2 vectors, or AVX-512 ones (wide) where available.
double fma_peak_gflops(bool wide) {
#if ACE_HAS_X86_KERNELS
  if (!ace::bench::fma_loop_available(wide)) return 0;
  constexpr std::int64_t steps = 20'000'000;
  double best = 0;
  for (int round = 0; round < 3; ++round) {
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(ace::bench::fma_loop(wide, steps, 0.001f));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, ace::bench::fma_loop_flops(wide, steps) / s * 1e-9);
  }
  return best;
#else
  (void)wide;
  return 0;
#endif
}

void run(benchmark::State& state, const GemmLibrary& lib, const NamedShape& named, int threads, double peak) {
  const auto& s = named.shape;
  lib.threads(threads);
  std::string why;
  auto plan = lib.plan(s, why);
  if (!plan) {
    state.SkipWithError(why.c_str());
    return;
  }
  auto x = operands(named);  // a copy: C is written
  plan->run(x.a.data(), x.b.data(), x.bias.data(), x.c.data());
  if (const double err = checked_error(s, x, x.c); !(err < 1e-5)) {
    const std::string msg = "wrong result: error " + std::to_string(err) + " x sum|ab| against the double product";
    state.SkipWithError(msg.c_str());
    return;
  }
  for (auto _ : state) {
    plan->run(x.a.data(), x.b.data(), x.bias.data(), x.c.data());
    benchmark::ClobberMemory();
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(s.flops() * n * 1e-9, benchmark::Counter::kIsRate);
  if (peak > 0)
    state.counters["peak%"] = benchmark::Counter(s.flops() * n * 1e-7 / (peak * threads), benchmark::Counter::kIsRate);
}

/// SiLU (Backward false) or its backward pass on the EGNN's 2 000 x 64 block, on `path` or (path < 0) in the earlier
/// tanh form. Counter: entries per second.
template <bool Backward>
void silu(benchmark::State& state, int path, std::size_t n) {
  std::vector<float> x(n), dy(n), out(n);
  ace::Rng rng(5);
  for (std::size_t i = 0; i < n; ++i) {
    x[i] = static_cast<float>(rng.normal() * 3);
    dy[i] = static_cast<float>(rng.normal());
  }
  std::vector<float> y(n);  // SiLU(x), which the earlier backward pass read
  ace::cpu::silu(x.data(), y.data(), n);
  for (auto _ : state) {
    if (path >= 0) {
      const auto p = static_cast<ace::cpu::SigmoidPath>(path);
      if constexpr (Backward) ace::cpu::silu_backward(x.data(), dy.data(), out.data(), n, p);
      else ace::cpu::silu(x.data(), out.data(), n, p);
    } else if constexpr (Backward) {  // the earlier Cpu::map_backward<SiLUOp>: dx = dy (s + y (1 - s))
      ace::cpu::detail::vector_steps<float, 3>({x.data(), y.data(), dy.data()}, out.data(), n, [](const auto& a) {
        const auto s = (0.5f + 0.5f * (0.5f * a[0]).tanh()).eval();
        return (a[2] * (s + a[1] * (1.0f - s))).eval();
      });
    } else {  // the earlier Cpu::map<SiLUOp>
      ace::cpu::detail::vector_steps<float, 1>({x.data()}, out.data(), n, [](const auto& a) {
        return (a[0] * (0.5f + 0.5f * (0.5f * a[0]).tanh())).eval();
      });
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["entries/ns"] = benchmark::Counter(static_cast<double>(n * state.iterations()) * 1e-9,
                                                    benchmark::Counter::kIsRate);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const double avx2 = fma_peak_gflops(false), avx512 = fma_peak_gflops(true);
  const double peak = std::max(avx2, avx512);  // the ceiling of the widest vectors this CPU has
  std::printf("fma peak (one core, measured now): AVX2 %.1f GFLOP/s, AVX-512 %.1f GFLOP/s (0: absent); peak%% is "
              "against %.1f\n", avx2, avx512, peak);
  static const auto libraries = ace::bench::gemm_libraries();
  for (const auto& lib : libraries) std::printf("%-14s %s\n", lib.name.c_str(), lib.detail.c_str());
  std::fflush(stdout);
  benchmark::RegisterBenchmark("fma_peak/one_core", ace::bench::BM_fma_peak<false>)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("fma_peak/one_core/avx512", ace::bench::BM_fma_peak<true>)
      ->Unit(benchmark::kMillisecond);
  for (int path : {-1, 0, 1, 2}) {
    if (path >= 0 && !ace::cpu::sigmoid_path_available(static_cast<ace::cpu::SigmoidPath>(path))) continue;
    const std::string where = path < 0 ? "eigen-tanh" : path == 0 ? "portable" : path == 1 ? "avx2" : "avx512";
    for (const std::size_t n : {std::size_t{4096}, std::size_t{2000 * 64}}) {
      const std::string size = "/entries:" + std::to_string(n);
      benchmark::RegisterBenchmark(("silu/forward/" + where + size).c_str(),
                                   [path, n](auto& st) { silu<false>(st, path, n); })
          ->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark(("silu/backward/" + where + size).c_str(),
                                   [path, n](auto& st) { silu<true>(st, path, n); })
          ->Unit(benchmark::kMicrosecond);
    }
  }
  for (const auto& named : shapes)
    for (int threads : {1, 2})
      for (const auto& lib : libraries) {
        const std::string name =
            "gemm/" + std::string(named.name) + "/" + lib.name + "/threads:" + std::to_string(threads);
        benchmark::RegisterBenchmark(name.c_str(), [&lib, &named, threads, peak](benchmark::State& st) {
          run(st, lib, named, threads, peak);
        })->Unit(benchmark::kMicrosecond)->UseRealTime();
      }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
