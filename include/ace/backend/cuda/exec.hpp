// SPDX-License-Identifier: MIT
// What the CUDA backend's compiled part (src/cuda/, the target ace::cuda) offers the headers: the device query and
// synchronisation API, the transfer counters, device memory, and DeviceExec, the execution policy of KernelOps on the
// device. Plain C++ without CUDA headers, included by the backend's header and by its .cu files alike.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "ace/backend/cuda/kernels.hpp"
#include "ace/error.hpp"

namespace ace {

/// A CUDA runtime, cuBLAS or device-memory failure: the operation, the sizes where they matter, and the CUDA message.
class cuda_error : public error {
 public:
  using error::error;
};

namespace cuda {

/// The number of CUDA devices this process sees (0 without a driver or a device; never throws).
int device_count() noexcept;
/// The current device's name ("" when there is none).
std::string device_name();
/// Waits for the calling thread's stream; throws cuda_error for a failed kernel, invalid_argument for an index out of
/// range that a kernel met (gather, scatter, labels).
void synchronize();
/// Whether cuBLAS may use TF32 tensor cores for float GEMM (off by default: float GEMM is full fp32, as on the CPU).
void allow_tf32(bool allow);

/// Host <-> device traffic of this process: a test counts the copies a training step makes.
struct Transfers {
  std::uint64_t to_host = 0, from_host = 0, bytes = 0;
};
Transfers transfers() noexcept;

namespace detail {
void* allocate(std::size_t bytes);                                   // cudaMalloc; throws cuda_error
void release(void* p) noexcept;                                      // cudaFree
void copy_bytes(void* dst, const void* src, std::size_t bytes);      // device to device, on the stream
void zero_bytes(void* dst, std::size_t bytes);                       // cudaMemsetAsync
}  // namespace detail

/// The execution policy of ace::Cuda (defined in src/cuda/): kernel launches over a grid-stride loop on the calling
/// thread's stream, cuBLAS for GEMM, cudaMemcpy2DAsync for copies.
struct DeviceExec {
  template <class F>
  static void run(const char* op, std::size_t n, const F& f);
  static void* scratch(std::size_t bytes);
  static std::uint32_t* index_error();
  static void check_index_error(const char* who);
  static void read(void* host, const void* src, std::size_t bytes);
  static void copy_2d(void* dst, std::size_t dpitch, const void* src, std::size_t spitch, std::size_t width,
                      std::size_t rows, Direction d);
  static void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a,
                   std::size_t lda, const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc);
  static void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, double alpha, const double* a,
                   std::size_t lda, const double* b, std::size_t ldb, double beta, double* c, std::size_t ldc);
};

}  // namespace cuda

}  // namespace ace
