// SPDX-License-Identifier: MIT
// The GEMM implementations bench_gemm compares, behind one interface: ace's Cpu backend on Eigen always (and on
// oneDNN in builds with ACE_WITH_ONEDNN); and, where CMake found them, OpenBLAS and BLIS (loaded with dlopen, each
// with its own symbols: both export the CBLAS names), libxsmm's JIT kernels over row tiles, and oneDNN's sgemm and
// matmul primitive (the latter with the bias and SiLU fused into its epilogue).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ace::bench {

/// Row-major C[m x n] = op(A) op(B) with op(A) m x k and op(B) k x n; A is stored m x k (k x m when ta), B k x n
/// (n x k when tb), all contiguous. With bias_silu, C = SiLU(op(A) op(B) + bias), bias of n entries (a dense
/// layer's forward pass).
struct GemmShape {
  int m = 0, n = 0, k = 0;
  bool ta = false, tb = false;
  bool bias_silu = false;
  double flops() const { return 2.0 * m * n * k; }
};

/// One shape made ready to run (kernels generated, primitives created) outside the timed loop.
class GemmPlan {
 public:
  virtual ~GemmPlan() = default;
  virtual void run(const float* a, const float* b, const float* bias, float* c) = 0;
};

struct GemmLibrary {
  std::string name;
  std::string detail;                  ///< version and the kernels it picked on this CPU
  std::function<void(int)> threads;    ///< sets the threads it may use
  /// A plan for the shape; nullptr where the library has no kernel for it (`why` then says what is missing).
  std::function<std::unique_ptr<GemmPlan>(const GemmShape&, std::string& why)> plan;
};

/// Every implementation available in this build and on this machine (ace's first).
std::vector<GemmLibrary> gemm_libraries();

}  // namespace ace::bench
