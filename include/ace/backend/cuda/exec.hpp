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
/// Makes `device` (0 ... device_count() - 1) the calling thread's CUDA device. Call it before the thread's first
/// operation on the Cuda backend, whose stream and cuBLAS handle are made on the device current then: one device per
/// rank in data-parallel training (ace::Nccl). Throws invalid_argument for a device that does not exist, or when the
/// thread's stream was already made on another device.
void set_device(int device);
/// The calling thread's current CUDA device.
int current_device();
/// Waits for the calling thread's stream; throws cuda_error for a failed kernel, invalid_argument for an index out of
/// range that a kernel met (gather, scatter, labels).
void synchronize();
/// Whether cuBLAS may use TF32 tensor cores for float GEMM (off by default: float GEMM is full fp32, as on the CPU).
void allow_tf32(bool allow);

/// cuDNN's version (e.g. 90100) when ace::cuda was built with it (ACE_WITH_CUDNN), else 0: then the convolutions run
/// ace's own kernels.
int cudnn_version() noexcept;

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
bool tf32_allowed() noexcept;                                        // allow_tf32's current setting
}  // namespace detail

/// A recorded sequence of device work (an instantiated CUDA graph), replayed on the calling thread's stream with the
/// memory it was recorded on. Move-only; made by DeviceExec::capture.
class Graph {
 public:
  Graph() = default;
  explicit Graph(void* exec) noexcept : exec_(exec) {}
  Graph(Graph&& o) noexcept : exec_(o.exec_) { o.exec_ = nullptr; }
  Graph& operator=(Graph&& o) noexcept {
    if (this != &o) {
      reset();
      exec_ = o.exec_;
      o.exec_ = nullptr;
    }
    return *this;
  }
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  ~Graph() { reset(); }
  /// Launches the recorded work once (asynchronously, like the operations it records).
  void replay() const;
  explicit operator bool() const noexcept { return exec_ != nullptr; }

 private:
  void reset() noexcept;
  void* exec_ = nullptr;  // cudaGraphExec_t
};

/// The execution policy of ace::Cuda (defined in src/cuda/): kernel launches over a grid-stride loop on the calling
/// thread's stream, cuBLAS for GEMM, cudaMemcpy2DAsync for copies.
struct DeviceExec {
  using graph = Graph;
  /// Records the device work f() queues on this thread's stream into a graph instead of running it (stream
  /// capture). Inside f, copies between host and device and growing device memory throw ace::unsupported: run the
  /// work once before recording it, so its buffers exist.
  template <class F>
  static Graph capture(F&& f) {
    begin_capture();
    try {
      f();
    } catch (...) {
      abort_capture();
      throw;
    }
    return end_capture();
  }
  static void begin_capture();
  static Graph end_capture();
  static void abort_capture() noexcept;

  template <class F>
  static void run(const char* op, std::size_t n, const F& f);
  /// A block functor (cuda/egnn_kernels.hpp): `blocks` blocks of `threads` threads, __syncthreads() between phases.
  template <class F>
  static void run_blocks(const char* op, std::size_t blocks, unsigned threads, const F& f);
  static void* scratch(std::size_t bytes);
  static std::uint32_t* index_error();
  static void check_index_error(const char* who);
  static void read(void* host, const void* src, std::size_t bytes);
  static void copy_2d(void* dst, std::size_t dpitch, const void* src, std::size_t spitch, std::size_t width,
                      std::size_t rows, Direction d);
  /// cuDNN's convolutions (deterministic algorithms only; TF32 only with allow_tf32) where the build has cuDNN and it
  /// supports the geometry; false otherwise (KernelOps then runs its own kernels). dw accumulates; y, dx are written.
  static bool conv2d_forward(const ConvGeometry& g, std::size_t batch, const float* x, const float* w, float* y);
  static bool conv2d_forward(const ConvGeometry& g, std::size_t batch, const double* x, const double* w, double* y);
  static bool conv2d_backward(const ConvGeometry& g, std::size_t batch, const float* x, const float* w,
                              const float* dy, float* dw, float* dx);
  static bool conv2d_backward(const ConvGeometry& g, std::size_t batch, const double* x, const double* w,
                              const double* dy, double* dw, double* dx);
  static void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a,
                   std::size_t lda, const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc);
  static void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, double alpha, const double* a,
                   std::size_t lda, const double* b, std::size_t ldb, double beta, double* c, std::size_t ldc);
};

}  // namespace cuda

}  // namespace ace
