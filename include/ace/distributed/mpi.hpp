// SPDX-License-Identifier: MIT
// ace::Mpi: the Communicator of data-parallel training on MPI (Open MPI, MPICH; docs/distributed.md). Optional: include
// it only in programs built against MPI (CMake: link ace::mpi, found where MPI is installed).
#pragma once

// Only the C API: keep the deprecated C++ bindings of older MPI headers out.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "ace/distributed/communicator.hpp"
#include "ace/error.hpp"

namespace ace {

namespace detail {
template <class T>
MPI_Datatype mpi_type();
template <>
inline MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <>
inline MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }
template <>
inline MPI_Datatype mpi_type<std::uint64_t>() { return MPI_UINT64_T; }

/// Throws communication_error with MPI's own message unless `code` is MPI_SUCCESS.
inline void check_mpi(int code, const char* call, int rank) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw communication_error(concat("ace::Mpi: ", call, " failed on rank ", rank, ": ", std::string(text, length)));
}

/// MPI counts are int: throws for buffers beyond that.
inline int mpi_count(std::size_t n, const char* call) {
  ACE_THROW_IF(n > static_cast<std::size_t>(INT32_MAX), communication_error, "ace::Mpi: ", call, " of ", n,
               " values (MPI counts are int)");
  return static_cast<int>(n);
}
}  // namespace detail

/// Starts MPI for the lifetime of the object (MPI_Init_thread, funneled: collectives from the main thread while
/// OpenMP threads compute) and ends it (MPI_Finalize); does nothing where MPI is already running. One per program,
/// before any Mpi.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv) {
    int running = 0;
    MPI_Initialized(&running);
    if (running) return;
    int provided = 0;
    detail::check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread", -1);
    owner_ = true;
    if (provided < MPI_THREAD_FUNNELED) {
      MPI_Finalize();
      owner_ = false;
      throw communication_error(detail::concat("ace::MpiSession: this MPI provides thread level ", provided,
                                               ", below MPI_THREAD_FUNNELED (OpenMP threads next to MPI calls)"));
    }
  }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  ~MpiSession() {
    int finished = 0;
    MPI_Finalized(&finished);
    if (owner_ && !finished) MPI_Finalize();
  }

 private:
  bool owner_ = false;
};

/// A Communicator over an MPI communicator (MPI_COMM_WORLD by default): the collectives of ace/distributed/
/// communicator.hpp as MPI_Allgather, MPI_Allreduce, MPI_Bcast and MPI_Barrier. Errors come back as
/// communication_error with MPI's message: the constructor sets the communicator's error handler to
/// MPI_ERRORS_RETURN, and leaves it so (for the program's other MPI calls on it too). A rank that dies ends the run
/// under mpirun, which stops the others.
class Mpi {
 public:
  explicit Mpi(MPI_Comm comm = MPI_COMM_WORLD) : comm_(comm) {
    int running = 0;
    MPI_Initialized(&running);
    ACE_THROW_IF(!running, communication_error, "ace::Mpi: MPI is not initialised (create an ace::MpiSession first)");
    detail::check_mpi(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", -1);
    int r = 0, n = 0;
    detail::check_mpi(MPI_Comm_rank(comm_, &r), "MPI_Comm_rank", -1);
    detail::check_mpi(MPI_Comm_size(comm_, &n), "MPI_Comm_size", r);
    rank_ = static_cast<std::size_t>(r);
    size_ = static_cast<std::size_t>(n);
  }

  std::size_t rank() const noexcept { return rank_; }
  std::size_t size() const noexcept { return size_; }
  MPI_Comm native() const noexcept { return comm_; }

  template <class T>
  void all_gather(std::span<const T> mine, std::span<T> all) const {
    detail::check_gather_sizes("ace::Mpi::all_gather", mine.size(), all.size(), size_);
    const int n = detail::mpi_count(mine.size(), "MPI_Allgather");
    detail::check_mpi(MPI_Allgather(mine.data(), n, detail::mpi_type<T>(), all.data(), n, detail::mpi_type<T>(), comm_),
                      "MPI_Allgather", static_cast<int>(rank_));
  }
  template <class T>
  void all_reduce_sum(std::span<T> values) const {
    const int n = detail::mpi_count(values.size(), "MPI_Allreduce");
    detail::check_mpi(MPI_Allreduce(MPI_IN_PLACE, values.data(), n, detail::mpi_type<T>(), MPI_SUM, comm_),
                      "MPI_Allreduce", static_cast<int>(rank_));
  }
  template <class T>
  void broadcast(std::span<T> values, std::size_t root) const {
    detail::check_root("ace::Mpi::broadcast", root, size_);
    const int n = detail::mpi_count(values.size(), "MPI_Bcast");
    detail::check_mpi(MPI_Bcast(values.data(), n, detail::mpi_type<T>(), static_cast<int>(root), comm_), "MPI_Bcast",
                      static_cast<int>(rank_));
  }
  void barrier() const { detail::check_mpi(MPI_Barrier(comm_), "MPI_Barrier", static_cast<int>(rank_)); }

  /// This rank's index among the ranks on its machine, and their count (MPI_Comm_split_type over shared memory):
  /// e.g. the GPU a rank takes, cuda::set_device(node_rank() % cuda::device_count()). Collective.
  std::size_t node_rank() const { return node()[0]; }
  std::size_t node_size() const { return node()[1]; }

 private:
  std::array<std::size_t, 2> node() const {
    MPI_Comm local = MPI_COMM_NULL;
    const int r = static_cast<int>(rank_);
    detail::check_mpi(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, r, MPI_INFO_NULL, &local),
                      "MPI_Comm_split_type", r);
    int index = 0, count = 0;
    const int a = MPI_Comm_rank(local, &index), b = MPI_Comm_size(local, &count);
    MPI_Comm_free(&local);
    detail::check_mpi(a, "MPI_Comm_rank", r);
    detail::check_mpi(b, "MPI_Comm_size", r);
    return {static_cast<std::size_t>(index), static_cast<std::size_t>(count)};
  }

  MPI_Comm comm_;
  std::size_t rank_ = 0, size_ = 1;
};
static_assert(Communicator<Mpi>);

}  // namespace ace
