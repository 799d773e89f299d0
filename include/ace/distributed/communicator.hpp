// SPDX-License-Identifier: MIT
// The communicator concept data-parallel training is written against (docs/distributed.md): the few collectives a
// training step needs, a single-process communicator, and the reduction over fixed shards whose result does not
// depend on how many processes computed them.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ace/error.hpp"

namespace ace {

/// What data-parallel training needs from a transport between processes (ranks 0 … size()-1, each running the same
/// program). Every call is collective: all ranks make it, in the same order, with the same counts.
///  * `rank()`, `size()`;
///  * `all_gather(mine, all)`: every rank's `mine` (the same length on every rank) into `all`, in rank order
///    (`all.size() == size() * mine.size()`), for float, double and std::uint64_t;
///  * `all_reduce_sum(values)`: the elementwise sum over the ranks, in place (float and double). Fast, but the
///    order of the additions is the transport's: use reduce_shards for results that must not depend on the rank
///    count;
///  * `broadcast(values, root)`: root's values to every rank (float, double, std::uint64_t);
///  * `barrier()`.
/// Failures throw communication_error. Implementations: SingleProcess here, Mpi in ace/distributed/mpi.hpp.
template <class C>
concept Communicator = requires(C& c, const C& cc, std::span<const float> cf, std::span<float> f,
                                std::span<const double> cd, std::span<double> d, std::span<const std::uint64_t> cu,
                                std::span<std::uint64_t> u, std::size_t root) {
  { cc.rank() } -> std::convertible_to<std::size_t>;
  { cc.size() } -> std::convertible_to<std::size_t>;
  c.all_gather(cf, f);
  c.all_gather(cd, d);
  c.all_gather(cu, u);
  c.all_reduce_sum(f);
  c.all_reduce_sum(d);
  c.broadcast(f, root);
  c.broadcast(d, root);
  c.broadcast(u, root);
  c.barrier();
};

namespace detail {
/// Throws communication_error unless all.size() == ranks * mine (a collective's buffers).
inline void check_gather_sizes(std::string_view who, std::size_t mine, std::size_t all, std::size_t ranks) {
  ACE_THROW_IF(all != mine * ranks, communication_error, who, ": the gathered buffer holds ", all, " values, not ",
               ranks, " ranks x ", mine);
}
inline void check_root(std::string_view who, std::size_t root, std::size_t ranks) {
  ACE_THROW_IF(root >= ranks, communication_error, who, ": root rank ", root, " of ", ranks, " ranks");
}
}  // namespace detail

/// The communicator of a program that runs alone: rank 0 of 1; the collectives copy or do nothing.
struct SingleProcess {
  std::size_t rank() const noexcept { return 0; }
  std::size_t size() const noexcept { return 1; }
  template <class T>
  void all_gather(std::span<const T> mine, std::span<T> all) const {
    detail::check_gather_sizes("SingleProcess::all_gather", mine.size(), all.size(), 1);
    std::copy(mine.begin(), mine.end(), all.begin());
  }
  template <class T>
  void all_reduce_sum(std::span<T>) const noexcept {}
  template <class T>
  void broadcast(std::span<T>, std::size_t root) const {
    detail::check_root("SingleProcess::broadcast", root, 1);
  }
  void barrier() const noexcept {}
};
static_assert(Communicator<SingleProcess>);

/// The shards of a global batch that one rank computes: `shards` fixed parts of the batch (a function of the batch
/// alone, never of the rank count), dealt to the ranks in contiguous runs of shards / size: rank r holds shards
/// [r * per_rank, (r + 1) * per_rank). Throws invalid_argument unless the rank count divides the shard count.
struct ShardPlan {
  std::size_t shards = 1, rank = 0, size = 1;

  ShardPlan() = default;
  ShardPlan(std::size_t shard_count, std::size_t rank_index, std::size_t ranks)
      : shards(shard_count), rank(rank_index), size(ranks) {
    ACE_THROW_IF(ranks == 0 || rank_index >= ranks, invalid_argument, "ShardPlan: rank ", rank_index, " of ", ranks,
                 " ranks");
    ACE_THROW_IF(shard_count == 0 || shard_count % ranks != 0, invalid_argument, "ShardPlan: ", ranks,
                 " ranks do not divide the ", shard_count,
                 " shards of the global batch evenly; choose a shard count that is a multiple of the rank count");
  }
  template <Communicator C>
  ShardPlan(std::size_t shard_count, const C& comm) : ShardPlan(shard_count, comm.rank(), comm.size()) {}

  std::size_t per_rank() const noexcept { return shards / size; }
  std::size_t first() const noexcept { return rank * per_rank(); }
  /// The global index of this rank's k-th shard.
  std::size_t shard(std::size_t k) const noexcept { return first() + k; }
};

/// The sum over all shards of a global batch, the same bits on every rank and for every rank count: `mine` holds
/// this rank's shards' rows (plan.per_rank() rows of `width` values, in shard order); they are gathered from all
/// ranks (all_gather, rank order = shard order) into `scratch` and added row by row in shard order into `out`
/// (`width` values, overwritten). With SingleProcess and the same shard count the additions are the same, so a
/// process alone computes the same sum as any number of ranks.
template <Communicator C, class T>
void reduce_shards(C& comm, const ShardPlan& plan, std::span<const T> mine, std::size_t width, std::span<T> out,
                   std::vector<T>& scratch) {
  ACE_THROW_IF(mine.size() != plan.per_rank() * width || out.size() != width, invalid_argument,
               "reduce_shards: ", mine.size(), " local values and ", out.size(), " outputs for ", plan.per_rank(),
               " shards of ", width);
  ACE_THROW_IF(comm.size() != plan.size || comm.rank() != plan.rank, invalid_argument,
               "reduce_shards: the plan is for rank ", plan.rank, " of ", plan.size, ", the communicator is rank ",
               comm.rank(), " of ", comm.size());
  scratch.resize(plan.shards * width);
  comm.all_gather(mine, std::span<T>(scratch));
  std::copy(scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(width), out.begin());  // shard 0 as it is
  for (std::size_t s = 1; s < plan.shards; ++s) {
    const T* row = scratch.data() + s * width;
    for (std::size_t i = 0; i < width; ++i) out[i] += row[i];
  }
}

/// A 64-bit FNV-1a hash of a text (a model's signature, compared across ranks).
constexpr std::uint64_t fnv1a(std::string_view text) noexcept {
  std::uint64_t h = 14695981039346656037ull;
  for (const char c : text) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

/// Checks that every rank trains the same thing: each rank's hash of `what` (e.g. the model's signature and the shard
/// count) is gathered and compared; on a mismatch every rank throws communication_error naming the ranks that differ
/// from rank 0 (the same message everywhere, so no rank waits for another in a later collective).
template <Communicator C>
void require_same_on_all_ranks(C& comm, std::string_view what, std::string_view name) {
  const std::uint64_t mine = fnv1a(what);
  std::vector<std::uint64_t> all(comm.size());
  comm.all_gather(std::span<const std::uint64_t>(&mine, 1), std::span<std::uint64_t>(all));
  std::string differ;
  for (std::size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0]) differ += (differ.empty() ? "" : ", ") + std::to_string(r);
  ACE_THROW_IF(!differ.empty(), communication_error, "the ranks disagree on the ", name, ": rank(s) ", differ,
               " differ from rank 0 (", comm.size(), " ranks); rank ", comm.rank(), "'s is \"", what, "\"");
}

}  // namespace ace
