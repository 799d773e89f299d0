// SPDX-License-Identifier: MIT
// ace::Nccl's calls into NCCL (the target ace::nccl): the communicator's life, the collectives on the CUDA backend's
// stream, host buffers staged through device memory, and NCCL's errors as ace::communication_error.
#include <cuda_runtime.h>
#include <nccl.h>

#include <climits>
#include <cstring>
#include <exception>
#include <string>
#include <thread>
#include <utility>

#include "ace/distributed/nccl.hpp"

namespace ace::cuda {
cudaStream_t current_stream();  // runtime.cu: the calling thread's backend stream
}  // namespace ace::cuda

namespace ace {
namespace {

ncclComm_t handle(void* c) { return static_cast<ncclComm_t>(c); }

[[noreturn]] void fail(const char* call, ncclResult_t result, ncclComm_t comm, std::size_t rank, std::size_t size) {
  const char* last = ncclGetLastError(comm);
  throw communication_error(detail::concat("ace::Nccl: ", call, " failed on rank ", rank, " of ", size, ": ",
                                           ncclGetErrorString(result),
                                           last != nullptr && *last != '\0' ? std::string(" (") + last + ")" : ""));
}

void check_cuda(cudaError_t status, const char* what, std::size_t rank, std::size_t size) {
  if (status == cudaSuccess) return;
  (void)cudaGetLastError();
  throw communication_error(detail::concat("ace::Nccl: ", what, " failed on rank ", rank, " of ", size, ": ",
                                           cudaGetErrorString(status)));
}

template <class T>
ncclDataType_t type_of();
template <>
ncclDataType_t type_of<float>() { return ncclFloat32; }
template <>
ncclDataType_t type_of<double>() { return ncclFloat64; }
template <>
ncclDataType_t type_of<std::uint64_t>() { return ncclUint64; }

/// Whether NCCL can read and write `p` as it is (device or managed memory), not host memory to be staged.
bool in_device_memory(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

}  // namespace

int nccl::version() {
  int v = 0;
  if (ncclGetVersion(&v) != ncclSuccess) return 0;
  return v;
}

nccl::UniqueId nccl::make_unique_id() {
  ncclUniqueId id{};
  const ncclResult_t r = ncclGetUniqueId(&id);
  if (r != ncclSuccess) fail("ncclGetUniqueId", r, nullptr, 0, 1);
  static_assert(sizeof(ncclUniqueId) == sizeof(UniqueId), "ncclUniqueId is 128 bytes");
  UniqueId out{};
  std::memcpy(out.data(), &id, sizeof(id));
  return out;
}

/// The collectives' common path: buffers in device memory go to NCCL as they are, queued on the backend's stream;
/// buffers in host memory are copied into (and out of) the staging buffer around the call, which then waits.
struct NcclAccess {
  /// Throws communication_error for NCCL's `result` of `call`, and marks the communicator failed.
  [[noreturn]] static void fail(Nccl& n, const char* call, ncclResult_t result) {
    n.failed_ = true;
    ::ace::fail(call, result, handle(n.comm_), n.rank_, n.size_);
  }
  /// Waits for the backend's stream, watching NCCL's asynchronous error meanwhile (a peer that failed or vanished
  /// would otherwise leave this rank waiting for ever).
  static void wait(Nccl& n, cudaStream_t stream, const char* what) {
    for (;;) {
      const cudaError_t status = cudaStreamQuery(stream);
      if (status == cudaSuccess) return;
      if (status != cudaErrorNotReady) {
        n.failed_ = true;
        check_cuda(status, what, n.rank_, n.size_);
      }
      ncclResult_t async = ncclSuccess;
      const ncclResult_t queried = ncclCommGetAsyncError(handle(n.comm_), &async);
      if (queried != ncclSuccess) fail(n, "ncclCommGetAsyncError", queried);
      if (async != ncclSuccess && async != ncclInProgress) fail(n, what, async);
      std::this_thread::yield();
    }
  }

  /// `in_place`: the collective reads and writes the same buffer (all-reduce, broadcast); an all-gather's input and
  /// output are staged apart.
  template <class Call>
  static void run(Nccl& n, const char* name, const void* in, std::size_t in_bytes, void* out, std::size_t out_bytes,
                  bool in_place, Call&& call) {
    ACE_THROW_IF(n.comm_ == nullptr, communication_error, "ace::Nccl: ", name, " on rank ", n.rank_,
                 ": the communicator was aborted or moved from");
    if (out_bytes == 0) return;  // every rank passes the same counts: every rank returns
    int device = -1;
    check_cuda(cudaGetDevice(&device), "finding the current CUDA device", n.rank_, n.size_);
    ACE_THROW_IF(device != n.device_, communication_error, "ace::Nccl: ", name, " on rank ", n.rank_,
                 " from a thread whose current CUDA device is ", device, ", not the communicator's ", n.device_);
    cudaStream_t stream = cuda::current_stream();
    const bool device_in = in_device_memory(in), device_out = in_device_memory(out);
    if (device_in && device_out) {
      const ncclResult_t r = call(in, out, stream);
      if (r != ncclSuccess) fail(n, name, r);
      return;
    }
    const std::size_t bytes = in_place ? out_bytes : in_bytes + out_bytes;
    if (n.staging_bytes_ < bytes) {
      wait(n, stream, "waiting to grow the staging buffer");
      if (n.staging_ != nullptr) (void)cudaFree(n.staging_);
      n.staging_ = nullptr;
      n.staging_bytes_ = 0;
      check_cuda(cudaMalloc(&n.staging_, bytes), "allocating the staging buffer", n.rank_, n.size_);
      n.staging_bytes_ = bytes;
    }
    char* staging = static_cast<char*>(n.staging_);
    const void* device_input = device_in ? in : staging;
    void* device_output = device_out ? out : (in_place ? staging : staging + in_bytes);
    if (!device_in)
      check_cuda(cudaMemcpyAsync(staging, in, in_bytes, cudaMemcpyHostToDevice, stream), name, n.rank_, n.size_);
    const ncclResult_t r = call(device_input, device_output, stream);
    if (r != ncclSuccess) fail(n, name, r);
    if (!device_out)
      check_cuda(cudaMemcpyAsync(out, device_output, out_bytes, cudaMemcpyDeviceToHost, stream), name, n.rank_,
                 n.size_);
    wait(n, stream, name);
  }

  template <class T>
  static void all_gather(Nccl& n, std::span<const T> mine, std::span<T> all) {
    detail::check_gather_sizes("ace::Nccl::all_gather", mine.size(), all.size(), n.size_);
    run(n, "ncclAllGather", mine.data(), mine.size_bytes(), all.data(), all.size_bytes(), false,
        [&](const void* in, void* out, cudaStream_t s) {
          return ncclAllGather(in, out, mine.size(), type_of<T>(), handle(n.comm_), s);
        });
  }
  template <class T>
  static void all_reduce_sum(Nccl& n, std::span<T> values) {
    run(n, "ncclAllReduce", values.data(), values.size_bytes(), values.data(), values.size_bytes(), true,
        [&](const void* in, void* out, cudaStream_t s) {
          return ncclAllReduce(in, out, values.size(), type_of<T>(), ncclSum, handle(n.comm_), s);
        });
  }
  template <class T>
  static void broadcast(Nccl& n, std::span<T> values, std::size_t root) {
    detail::check_root("ace::Nccl::broadcast", root, n.size_);
    run(n, "ncclBroadcast", values.data(), values.size_bytes(), values.data(), values.size_bytes(), true,
        [&](const void* in, void* out, cudaStream_t s) {
          return ncclBroadcast(in, out, values.size(), type_of<T>(), static_cast<int>(root), handle(n.comm_), s);
        });
  }
};

Nccl::Nccl(const nccl::UniqueId& id, std::size_t rank, std::size_t size) : rank_(rank), size_(size) {
  ACE_THROW_IF(size == 0 || rank >= size || size > static_cast<std::size_t>(INT_MAX), communication_error,
               "ace::Nccl: rank ", rank, " of ", size, " ranks");
  check_cuda(cudaGetDevice(&device_), "finding the current CUDA device", rank, size);
  ncclUniqueId nid{};
  std::memcpy(&nid, id.data(), sizeof(nid));
  ncclComm_t comm = nullptr;
  const ncclResult_t r = ncclCommInitRank(&comm, static_cast<int>(size), nid, static_cast<int>(rank));
  if (r != ncclSuccess) {
    const std::string message = ncclGetLastError(comm) != nullptr ? ncclGetLastError(comm) : "";
    if (comm != nullptr) (void)ncclCommAbort(comm);  // NCCL may hand back a communicator it failed to set up
    throw communication_error(detail::concat("ace::Nccl: ncclCommInitRank failed on rank ", rank, " of ", size, ": ",
                                             ncclGetErrorString(r), message.empty() ? "" : " (" + message + ")"));
  }
  comm_ = comm;
}

Nccl::Nccl(Nccl&& o) noexcept
    : comm_(std::exchange(o.comm_, nullptr)), failed_(o.failed_), staging_(std::exchange(o.staging_, nullptr)),
      staging_bytes_(std::exchange(o.staging_bytes_, 0)), rank_(o.rank_), size_(o.size_), device_(o.device_) {}

Nccl& Nccl::operator=(Nccl&& o) noexcept {
  if (this != &o) {
    Nccl gone(std::move(*this));
    comm_ = std::exchange(o.comm_, nullptr);
    failed_ = o.failed_;
    staging_ = std::exchange(o.staging_, nullptr);
    staging_bytes_ = std::exchange(o.staging_bytes_, 0);
    rank_ = o.rank_;
    size_ = o.size_;
    device_ = o.device_;
  }
  return *this;
}

Nccl::~Nccl() {
  if (comm_ != nullptr) {
    ncclResult_t async = ncclSuccess;
    const bool healthy = !failed_ && std::uncaught_exceptions() == 0 &&
                         ncclCommGetAsyncError(handle(comm_), &async) == ncclSuccess && async == ncclSuccess;
    if (healthy) {
      (void)ncclCommFinalize(handle(comm_));  // waits for the queued collectives
      (void)ncclCommDestroy(handle(comm_));
    } else {
      (void)ncclCommAbort(handle(comm_));  // other ranks may never join what is queued
    }
  }
  if (staging_ != nullptr) (void)cudaFree(staging_);
}

void Nccl::abort() noexcept {
  if (comm_ != nullptr) (void)ncclCommAbort(handle(comm_));
  comm_ = nullptr;
  failed_ = true;
}

void Nccl::all_gather(std::span<const float> mine, std::span<float> all) { NcclAccess::all_gather(*this, mine, all); }
void Nccl::all_gather(std::span<const double> mine, std::span<double> all) {
  NcclAccess::all_gather(*this, mine, all);
}
void Nccl::all_gather(std::span<const std::uint64_t> mine, std::span<std::uint64_t> all) {
  NcclAccess::all_gather(*this, mine, all);
}
void Nccl::all_reduce_sum(std::span<float> values) { NcclAccess::all_reduce_sum(*this, values); }
void Nccl::all_reduce_sum(std::span<double> values) { NcclAccess::all_reduce_sum(*this, values); }
void Nccl::broadcast(std::span<float> values, std::size_t root) { NcclAccess::broadcast(*this, values, root); }
void Nccl::broadcast(std::span<double> values, std::size_t root) { NcclAccess::broadcast(*this, values, root); }
void Nccl::broadcast(std::span<std::uint64_t> values, std::size_t root) {
  NcclAccess::broadcast(*this, values, root);
}

void Nccl::barrier() {
  float one = 1.0f;  // a host value: the all-reduce is staged and waited for, after this rank's queued work
  all_reduce_sum(std::span<float>(&one, 1));  // staged: waits watching NCCL's asynchronous error
  ACE_THROW_IF(one != static_cast<float>(size_), communication_error, "ace::Nccl::barrier: ", one, " of ", size_,
               " ranks answered on rank ", rank_);
}

}  // namespace ace
