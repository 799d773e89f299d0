// SPDX-License-Identifier: MIT
// The CUDA backend's runtime: device memory, the per-thread stream and cuBLAS handle, the scratch buffer and the
// index-error word, host <-> device copies (counted), GEMM through cuBLAS, and CUDA errors as ace::cuda_error.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <atomic>
#include <climits>
#include <cstdint>
#include <string>
#include <type_traits>

#include "ace/backend/cuda/exec.hpp"

namespace ace::cuda {
namespace {

void check(cudaError_t status, const char* what, std::size_t bytes = 0) {
  if (status == cudaSuccess) return;
  (void)cudaGetLastError();  // clear a sticky launch error so the next call reports its own
  if (bytes != 0)
    throw cuda_error(::ace::detail::concat("Cuda::", what, ": ", cudaGetErrorString(status), " (", bytes, " bytes)"));
  throw cuda_error(::ace::detail::concat("Cuda::", what, ": ", cudaGetErrorString(status)));
}

void check(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw cuda_error(::ace::detail::concat("Cuda::", what, ": cuBLAS ", cublasGetStatusName(status), " (",
                                  cublasGetStatusString(status), ")"));
}

std::atomic<std::uint64_t> to_host_count{0}, from_host_count{0}, byte_count{0};
thread_local bool capturing = false;  // this thread's stream is being recorded (DeviceExec::capture)
thread_local int context_device = -1;  // the device this thread's Context was made on (-1: none yet)

// Operations a recording cannot hold: they would run once, now, not at each replay.
void refuse_in_capture(const char* what) {
  if (!capturing) return;
  throw unsupported(::ace::detail::concat(
      "Cuda::", what, ": not possible while a step is being recorded (a CUDA graph replays device work only: no "
      "copies between host and device, no allocation); run the step once before recording it, and keep host reads "
      "out of it"));
}
constexpr std::size_t blas_workspace_bytes = std::size_t{32} << 20;  // cuBLAS's own, so a recording allocates none
std::atomic<bool> tf32_allowed{false};

/// What one host thread uses: its stream, cuBLAS handle, scratch buffer and index-error word.
struct Context {
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  void* scratch = nullptr;
  std::size_t scratch_bytes = 0;
  std::uint32_t* error = nullptr;
  void* blas_workspace = nullptr;
  bool tf32 = false;

  Context() {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
      (void)cudaGetLastError();
      throw cuda_error("Cuda: no CUDA device is available (the Cuda backend needs one; the Cpu backend does not)");
    }
    int device = 0;
    check(cudaGetDevice(&device), "device query");
    check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream creation");
    check(cublasCreate(&blas), "cuBLAS initialisation");
    check(cublasSetStream(blas, stream), "cuBLAS stream");
    check(cublasSetMathMode(blas, CUBLAS_PEDANTIC_MATH), "cuBLAS math mode");
    check(cudaMalloc(&blas_workspace, blas_workspace_bytes), "cuBLAS workspace", blas_workspace_bytes);
    check(cublasSetWorkspace(blas, blas_workspace, blas_workspace_bytes), "cuBLAS workspace");
    check(cudaMalloc(&error, sizeof(std::uint32_t)), "allocation of the index-error word", sizeof(std::uint32_t));
    check(cudaMemsetAsync(error, 0, sizeof(std::uint32_t), stream), "index-error word");
    context_device = device;  // made: set_device may no longer move this thread elsewhere
  }
  ~Context() {
    if (stream) (void)cudaStreamSynchronize(stream);
    if (scratch) (void)cudaFree(scratch);
    if (error) (void)cudaFree(error);
    if (blas_workspace) (void)cudaFree(blas_workspace);
    if (blas) (void)cublasDestroy(blas);
    if (stream) (void)cudaStreamDestroy(stream);
  }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
};

Context& context() {
  static thread_local Context c;
  const bool tf32 = tf32_allowed.load();
  if (c.tf32 != tf32) {
    check(cublasSetMathMode(c.blas, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_PEDANTIC_MATH), "cuBLAS math mode");
    c.tf32 = tf32;
  }
  return c;
}

int to_int(std::size_t v, const char* what) {
  if (v > static_cast<std::size_t>(INT_MAX))
    throw cuda_error(::ace::detail::concat("Cuda::gemm: ", what, " = ", v, " exceeds cuBLAS's 32-bit sizes"));
  return static_cast<int>(v);
}

cudaMemcpyKind kind_of(Direction d) {
  return d == Direction::to_host ? cudaMemcpyDeviceToHost
                                 : (d == Direction::from_host ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToDevice);
}

}  // namespace

cudaStream_t current_stream() { return context().stream; }

int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

std::string device_name() {
  if (device_count() == 0) return "";
  int device = 0;
  check(cudaGetDevice(&device), "device query");
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "device query");
  return prop.name;
}

void set_device(int device) {
  const int count = device_count();
  if (device < 0 || device >= count)
    throw invalid_argument(::ace::detail::concat("cuda::set_device(", device, "): this process sees ", count,
                                                 " CUDA device(s)"));
  if (context_device >= 0 && context_device != device)
    throw invalid_argument(::ace::detail::concat("cuda::set_device(", device, "): this thread already works on device ",
                                                 context_device, " (set the device before its first Cuda operation)"));
  check(cudaSetDevice(device), "set device");
}

int current_device() {
  int device = 0;
  check(cudaGetDevice(&device), "device query");
  return device;
}

void synchronize() {
  check(cudaStreamSynchronize(context().stream), "synchronize");
  DeviceExec::check_index_error("Cuda");
}

void allow_tf32(bool allow) { tf32_allowed.store(allow); }
bool detail::tf32_allowed() noexcept { return ::ace::cuda::tf32_allowed.load(); }

Transfers transfers() noexcept { return {to_host_count.load(), from_host_count.load(), byte_count.load()}; }

namespace detail {
void* allocate(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  context();  // a device must exist
  refuse_in_capture("allocate");
  void* p = nullptr;
  check(cudaMalloc(&p, bytes), "allocate", bytes);
  return p;
}
void release(void* p) noexcept {
  if (p) (void)cudaFree(p);
}
void copy_bytes(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, context().stream), "copy", bytes);
}
void zero_bytes(void* dst, std::size_t bytes) {
  if (bytes == 0) return;
  check(cudaMemsetAsync(dst, 0, bytes, context().stream), "fill with zeros", bytes);
}
}  // namespace detail

void* DeviceExec::scratch(std::size_t bytes) {
  Context& c = context();
  if (c.scratch_bytes < bytes) {
    refuse_in_capture("scratch allocation");
    if (c.scratch) check(cudaFree(c.scratch), "scratch release");  // cudaFree waits for the kernels that use it
    c.scratch = nullptr;
    c.scratch_bytes = 0;
    check(cudaMalloc(&c.scratch, bytes), "scratch allocation", bytes);
    c.scratch_bytes = bytes;
  }
  return c.scratch;
}

std::uint32_t* DeviceExec::index_error() { return context().error; }

namespace {
// Waits for the stream after a copy to the host was queued, with the index-error word copied in the same wait: a
// kernel that met an index out of range before it is reported here (one synchronisation for both).
void finish_read(Context& c, const char* what, std::size_t bytes, const char* who) {
  std::uint32_t word = 0;
  check(cudaMemcpyAsync(&word, c.error, sizeof(word), cudaMemcpyDeviceToHost, c.stream), what, bytes);
  check(cudaStreamSynchronize(c.stream), what, bytes);
  to_host_count.fetch_add(1);
  byte_count.fetch_add(bytes);
  if (word == 0) return;
  check(cudaMemsetAsync(c.error, 0, sizeof(word), c.stream), "index check");
  throw invalid_argument(kernels::index_error_message(who, word));
}
}  // namespace

void DeviceExec::check_index_error(const char* who) {
  refuse_in_capture("index check");
  Context& c = context();
  std::uint32_t word = 0;
  check(cudaMemcpyAsync(&word, c.error, sizeof(word), cudaMemcpyDeviceToHost, c.stream), "index check");
  check(cudaStreamSynchronize(c.stream), "index check");
  if (word == 0) return;
  check(cudaMemsetAsync(c.error, 0, sizeof(word), c.stream), "index check");
  throw invalid_argument(kernels::index_error_message(who, word));
}

void DeviceExec::read(void* host, const void* src, std::size_t bytes) {
  refuse_in_capture("read");
  Context& c = context();
  check(cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, c.stream), "read", bytes);
  finish_read(c, "read", bytes, "Cuda");
}

void DeviceExec::copy_2d(void* dst, std::size_t dpitch, const void* src, std::size_t spitch, std::size_t width,
                         std::size_t rows, Direction d) {
  Context& c = context();
  const char* what = d == Direction::to_host ? "to_host" : (d == Direction::from_host ? "from_host" : "copy");
  if (d != Direction::on_device) refuse_in_capture(what);
  check(cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, rows, kind_of(d), c.stream), what, width * rows);
  if (d == Direction::on_device) return;
  if (d == Direction::to_host) return finish_read(c, what, width * rows, "Cuda");
  // Host memory is pageable: wait, so the caller may reuse it at once.
  check(cudaStreamSynchronize(c.stream), what, width * rows);
  from_host_count.fetch_add(1);
  byte_count.fetch_add(width * rows);
}

void DeviceExec::begin_capture() {
  Context& c = context();
  if (capturing) throw unsupported("Cuda::capture: a step is already being recorded on this thread");
  check(cudaStreamBeginCapture(c.stream, cudaStreamCaptureModeThreadLocal), "capture");
  capturing = true;
}

Graph DeviceExec::end_capture() {
  Context& c = context();
  capturing = false;
  cudaGraph_t graph = nullptr;
  check(cudaStreamEndCapture(c.stream, &graph), "capture");
  cudaGraphExec_t exec = nullptr;
  const cudaError_t status = cudaGraphInstantiate(&exec, graph, 0);
  (void)cudaGraphDestroy(graph);
  check(status, "graph instantiation");
  return Graph(exec);
}

void DeviceExec::abort_capture() noexcept {
  if (!capturing) return;
  capturing = false;
  cudaGraph_t graph = nullptr;
  if (cudaStreamEndCapture(context().stream, &graph) == cudaSuccess && graph) (void)cudaGraphDestroy(graph);
  (void)cudaGetLastError();
}

void Graph::replay() const {
  if (!exec_) throw invalid_argument("cuda::Graph::replay: an empty graph (made by capture only)");
  check(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), context().stream), "graph replay");
}

void Graph::reset() noexcept {
  if (exec_) (void)cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  exec_ = nullptr;
}

namespace {
// cublasSgemm or cublasDgemm with ace's sizes checked against cuBLAS's int.
template <class T>
void blas_gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, T alpha, const T* a, std::size_t lda,
               const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc) {
  constexpr auto gemm = [] {
    if constexpr (std::is_same_v<T, float>) return cublasSgemm;
    else return cublasDgemm;
  }();
  check(gemm(context().blas, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, to_int(m, "m"),
             to_int(n, "n"), to_int(k, "k"), &alpha, a, to_int(lda, "lda"), b, to_int(ldb, "ldb"), &beta, c,
             to_int(ldc, "ldc")),
        std::is_same_v<T, float> ? "gemm (float)" : "gemm (double)");
}
}  // namespace

void DeviceExec::gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a,
                      std::size_t lda, const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc) {
  blas_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void DeviceExec::gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, double alpha, const double* a,
                      std::size_t lda, const double* b, std::size_t ldb, double beta, double* c, std::size_t ldc) {
  blas_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace ace::cuda
