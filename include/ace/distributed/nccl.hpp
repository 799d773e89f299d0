// SPDX-License-Identifier: MIT
// ace::Nccl: the Communicator of data-parallel training on NVIDIA GPUs: NCCL's collectives, queued on the CUDA
// backend's stream, on the ace::Cuda tensors' device memory directly (docs/distributed.md). Plain C++ like the
// backend's header: NCCL's calls are in the compiled target ace::nccl (src/cuda/nccl.cpp), which CMake provides where
// the CUDA backend is built and NCCL is installed (the CUDA toolkit's, or NVIDIA's libnccl-dev); link it to use this.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <span>
#include <type_traits>

#include "ace/backend/cuda/cuda.hpp"
#include "ace/distributed/communicator.hpp"
#include "ace/error.hpp"

namespace ace {

namespace nccl {
/// The identifier the ranks of one NCCL communicator share (ncclUniqueId's 128 bytes as 16 words, so that any
/// Communicator can broadcast it).
using UniqueId = std::array<std::uint64_t, 16>;
/// A new identifier (ncclGetUniqueId: rank 0 makes it, the others receive it). Throws communication_error.
UniqueId make_unique_id();
/// The version of the NCCL library linked (e.g. 22809 for 2.28.9).
int version();
}  // namespace nccl

/// A Communicator over NCCL: one rank per CUDA device, each rank a process (mpiexec) or a thread. Collectives on
/// device memory (the ace::Cuda tensors' pointers) are queued on the calling thread's backend stream, after the
/// kernels that wrote their input and before those that read their output, without waiting; collectives on host
/// memory (the model's signature hash, the shard plan's checks) are copied through a device buffer and waited for.
/// `backend` says that DataParallel may hand it ace::Cuda tensors: it then keeps the rows of a step on the device
/// (CollectivesIn). Failures, NCCL's own included, throw communication_error with NCCL's message and the rank:
/// at the call, or, for a collective on device memory (queued, not waited for), at the next wait of a staged
/// collective or barrier, which watch NCCL's asynchronous error while they wait. (Elsewhere, a read of the backend's
/// memory waits for the stream alone: a rank that died is then noticed by the launcher, mpiexec, which ends the run.)
/// Each rank's collectives must be called from threads whose current device is device(). Move-only; the
/// communicator is destroyed with the object (aborted after a failure).
class Nccl {
 public:
  using backend = Cuda;

  /// The ranks of `host` (every rank calls this, collective) form one NCCL communicator, rank for rank, each on its
  /// current CUDA device: choose it first, one device per rank (cuda::set_device, e.g. with Mpi::node_rank()). Rank 0
  /// makes NCCL's identifier and `host` broadcasts it; if rank 0 cannot, every rank throws.
  template <Communicator Host>
    requires(!std::same_as<std::remove_cvref_t<Host>, Nccl>)  // not a copy: Nccl is move-only
  explicit Nccl(Host& host) : Nccl(shared_id(host), host.rank(), host.size()) {}
  /// Rank `rank` of `size` of the communicator `id` names (every rank calls it with the same id and size).
  Nccl(const nccl::UniqueId& id, std::size_t rank, std::size_t size);
  Nccl(Nccl&& o) noexcept;
  Nccl& operator=(Nccl&& o) noexcept;
  Nccl(const Nccl&) = delete;
  Nccl& operator=(const Nccl&) = delete;
  ~Nccl();

  std::size_t rank() const noexcept { return rank_; }
  std::size_t size() const noexcept { return size_; }
  /// The CUDA device this rank's collectives run on.
  int device() const noexcept { return device_; }

  void all_gather(std::span<const float> mine, std::span<float> all);
  void all_gather(std::span<const double> mine, std::span<double> all);
  void all_gather(std::span<const std::uint64_t> mine, std::span<std::uint64_t> all);
  void all_reduce_sum(std::span<float> values);
  void all_reduce_sum(std::span<double> values);
  void broadcast(std::span<float> values, std::size_t root);
  void broadcast(std::span<double> values, std::size_t root);
  void broadcast(std::span<std::uint64_t> values, std::size_t root);
  /// Waits for every rank, and for this rank's queued work (its collectives included).
  void barrier();
  /// Ends the communicator at once without waiting for queued collectives (ncclCommAbort): for error paths, where
  /// other ranks may never join them. The destructor does this itself after a failure or during unwinding; after it
  /// every collective throws.
  void abort() noexcept;

 private:
  template <Communicator Host>
  static nccl::UniqueId shared_id(Host& host) {
    nccl::UniqueId id{};  // all zeros: rank 0 could not make one
    std::exception_ptr failure;
    if (host.rank() == 0) {
      try {
        id = nccl::make_unique_id();
      } catch (...) {
        failure = std::current_exception();
      }
    }
    host.broadcast(std::span<std::uint64_t>(id), 0);
    if (failure) std::rethrow_exception(failure);
    bool made = false;
    for (const std::uint64_t w : id) made = made || w != 0;
    ACE_THROW_IF(!made, communication_error, "ace::Nccl: rank 0 could not create NCCL's identifier (its own error "
                 "says why); rank ", host.rank(), " of ", host.size(), " stops with it");
    return id;
  }

  void* comm_ = nullptr;     // ncclComm_t
  bool failed_ = false;      // a collective failed: the destructor aborts instead of waiting
  void* staging_ = nullptr;  // device memory for collectives on host memory
  std::size_t staging_bytes_ = 0;
  std::size_t rank_ = 0, size_ = 1;
  int device_ = 0;

  friend struct NcclAccess;  // src/cuda/nccl.cpp
};
static_assert(Communicator<Nccl>);

}  // namespace ace
