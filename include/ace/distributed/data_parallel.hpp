// SPDX-License-Identifier: MIT
// DataParallel: a HomotopyModel whose gradients and loss are those of a global batch cut into shards that several
// ranks compute, reduced in shard order so that the result does not depend on the rank count (docs/distributed.md).
// ConstrainedTrainer drives it unchanged: every rank takes the same primal and dual step.
#pragma once

#include <chrono>
#include <cmath>
#include <algorithm>
#include <cstddef>
#include <exception>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ace/constrained/trainer.hpp"
#include "ace/distributed/communicator.hpp"
#include "ace/error.hpp"
#include "ace/tensor/parameter.hpp"

namespace ace {

/// This rank's shards of one global batch: `parts[k]` is shard plan.shard(k) as the model's own batch, `shares[k]`
/// its weight in the global mean loss (for a mean over samples: the shard's samples over the global batch's). The
/// shares of all shards on all ranks must add up to 1.
template <class Batch>
struct Shards {
  std::vector<Batch> parts;
  std::vector<double> shares;
};

/// Where this rank's k-th shard of a global batch of `count` samples lies: [first, last), and its share
/// (last - first) / count. The shards are contiguous and as equal as the count allows (shard s: [s·count/S,
/// (s+1)·count/S)), a function of the count and the shard count alone.
struct ShardRange {
  std::size_t first = 0, last = 0;
  double share = 0.0;
};
inline ShardRange shard_range(std::size_t count, const ShardPlan& plan, std::size_t k) {
  ACE_THROW_IF(k >= plan.per_rank(), invalid_argument, "shard_range: local shard ", k, " of ", plan.per_rank());
  ACE_THROW_IF(count < plan.shards, invalid_argument, "shard_range: a global batch of ", count, " samples has fewer "
               "samples than the ", plan.shards, " shards");
  const std::size_t s = plan.shard(k);
  const std::size_t first = count * s / plan.shards, last = count * (s + 1) / plan.shards;
  return {first, last, static_cast<double>(last - first) / static_cast<double>(count)};
}

/// How DataParallel adds the shards' rows of a step.
enum class ShardReduction {
  /// Every rank gathers every shard's row and adds them in shard order (reduce_shards): the same bits for any rank
  /// count that divides the shard count, and as one process with the same shards; each rank receives all the shards'
  /// rows, (N - 1) of them with one shard per rank: for a few ranks.
  shard_order,
  /// Each rank adds its own shards' rows in shard order, then the communicator's all-reduce adds the ranks' sums (a
  /// ring or tree of the library's choosing, about two rows of traffic per rank whatever N): for many ranks. The
  /// result depends on the rank count at the level of rounding; every rank still takes the same step as long as the
  /// library hands every rank the same sum (the MPI standard's advice for its built-in reductions, which Open MPI
  /// and MPICH follow).
  all_reduce
};

/// Data parallelism over a Communicator for any HomotopyModel M whose parameters are the same on every rank:
///  * construction checks that every rank holds the same model (signature, parameter count) and shard count, and
///    copies rank 0's parameters to all ranks (so ranks that initialised differently start alike);
///  * `loss_and_gradients(shards)` runs M on each of this rank's shards (the gradients zeroed before each), scales
///    the shard's gradients and loss by its share in double, adds the rows of all shards on all ranks (ShardReduction:
///    by default gathered and added in shard order, reduce_shards), then adds the sum to the gradients (the trainer
///    zeroed them) and returns the global mean loss: the same values on every rank and, in shard order, the same
///    bits for any rank count that divides the shard count — a single process with SingleProcess and the same
///    shards computes them too;
///  * `loss(shards)` (evaluation) likewise for the loss alone.
/// Models with buffers (batch-norm statistics) are not supported: each shard would update them in turn, which ranks
/// cannot reproduce without the other ranks' shards. The constraint values s_i of the trainer depend only on γ and
/// u, which every rank holds identically after identical steps, so they need no reduction.
template <HomotopyModel M, Communicator C>
class DataParallel {
 public:
  static_assert(!HasBuffers<M>,
                "ace::DataParallel: the model has buffers (e.g. batch-norm running statistics), which shards on "
                "different ranks would update differently; train it in one process, or use a model without buffers");
  using scalar = typename M::scalar;
  using backend = backend_of_t<M>;
  using batch = Shards<typename M::batch>;
  using T = scalar;
  using B = backend;

  /// Holds references to `model` and `comm` (both outlive this object). Collective: every rank constructs it, with
  /// the same shard count and reduction.
  DataParallel(M& model, C& comm, std::size_t shards, ShardReduction reduction = ShardReduction::shard_order)
      : model_(model), comm_(comm), plan_(agreed(model, comm, shards, reduction, width_)), reduction_(reduction) {
    broadcast_parameters();
  }

  double loss_and_gradients(const batch& b) {
    const std::string problem = validate(b, "loss_and_gradients");
    const std::size_t row = width_ + 2;  // the gradient, the loss, the share
    rows_.assign(plan_.per_rank() * row, problem.empty() ? 0.0 : nan);  // a bad batch still joins the collective
    incoming_.clear();  // what the gradients held before the call: the sum is added to it (accumulate)
    read_each<&ParamView<T>::grad>([&](T g) { incoming_.push_back(g); });
    std::exception_ptr failure;
    for (std::size_t k = 0; problem.empty() && !failure && k < plan_.per_rank(); ++k) {
      double* out = rows_.data() + k * row;
      const double share = b.shares[k];
      try {
        zero_gradients();
        const double loss = static_cast<double>(model_.loss_and_gradients(b.parts[k]));
        std::size_t at = 0;
        read_each<&ParamView<T>::grad>([&](T g) { out[at++] = share * static_cast<double>(g); });
        out[width_] = share * loss;
        out[width_ + 1] = share;
      } catch (const numerical_error&) {  // a non-finite loss: NaN for all to see, the trainer's check stops every rank
        std::fill(out, out + width_ + 1, nan);
        out[width_ + 1] = share;
      } catch (...) {  // anything else: NaN shares stop every rank in check_shares, this one with its own error
        failure = std::current_exception();
        std::fill(rows_.begin(), rows_.end(), nan);
      }
    }
    sum_.resize(row);
    reduce(row);
    if (failure) std::rethrow_exception(failure);
    check_shares(problem, sum_[width_ + 1], "loss_and_gradients");
    // The gradients = what they held before + the global sum (where they held 0, as the trainer leaves them, the
    // sum itself: the bits of a single process's gradients, the sign of a zero included).
    std::size_t at = 0;
    write_each<&ParamView<T>::grad>([&] {
      const T before = incoming_[at], sum = static_cast<T>(sum_[at]);
      ++at;
      return before == T(0) ? sum : before + sum;
    });
    return sum_[width_];
  }

  /// The global mean loss on the shards (no gradients; the branches as currently set).
  double loss(const batch& b)
    requires requires(M& m, const typename M::batch& part) {
      { m.loss(part) } -> std::convertible_to<double>;
    }
  {
    const std::string problem = validate(b, "loss");
    rows_.assign(plan_.per_rank() * 2, problem.empty() ? 0.0 : nan);
    std::exception_ptr failure;
    for (std::size_t k = 0; problem.empty() && !failure && k < plan_.per_rank(); ++k) {
      try {
        rows_[2 * k] = b.shares[k] * static_cast<double>(model_.loss(b.parts[k]));
      } catch (const numerical_error&) {
        rows_[2 * k] = nan;
      } catch (...) {
        failure = std::current_exception();
        std::fill(rows_.begin(), rows_.end(), nan);
        break;
      }
      rows_[2 * k + 1] = b.shares[k];
    }
    sum_.resize(2);
    reduce(2);
    if (failure) std::rethrow_exception(failure);
    check_shares(problem, sum_[1], "loss");
    return sum_[0];
  }

  void set_relaxation(bool on) { model_.set_relaxation(on); }
  template <class F>
  void for_each_parameter(F&& f) {
    model_.for_each_parameter(f);
  }
  std::string signature() const
    requires requires(const M& m) { m.signature(); }
  {
    return std::string(model_.signature()) + " DataParallel(" + std::to_string(plan_.shards) + " shards)";
  }

  const ShardPlan& plan() const noexcept { return plan_; }
  ShardReduction reduction() const noexcept { return reduction_; }
  /// The values one step sends per shard (the gradient, the loss, the share; doubles) and receives in all: every
  /// rank gathers all plan().shards rows.
  std::size_t row_values() const noexcept { return width_ + 2; }
  /// Seconds spent in the shard reductions since construction or the last reset: gathering every rank's rows (and
  /// waiting there for the slowest rank) and adding them.
  double reduction_seconds() const noexcept { return reduction_seconds_; }
  void reset_reduction_seconds() noexcept { reduction_seconds_ = 0.0; }
  C& communicator() noexcept { return comm_; }
  M& model() noexcept { return model_; }

 private:
  static constexpr double nan = std::numeric_limits<double>::quiet_NaN();

  /// The shard plan, once every rank has shown the same model, shard count and reduction (compared before the plan
  /// checks the shard count, so that ranks given different counts all fail in the comparison); counts the
  /// parameters into `width`.
  static ShardPlan agreed(M& model, C& comm, std::size_t shards, ShardReduction reduction, std::size_t& width) {
    model.for_each_parameter([&](ParamView<T> p) { width += p.value.size(); });
    std::string what = "parameters " + std::to_string(width) + ", shards " + std::to_string(shards) +
                       (reduction == ShardReduction::all_reduce ? ", all-reduce" : ", shard order");
    if constexpr (requires { model.signature(); }) what = std::string(model.signature()) + ", " + what;
    require_same_on_all_ranks(comm, what, "model and shard count");
    return ShardPlan(shards, comm);
  }

  /// What is wrong with this rank's shards, or nothing. A rank with bad shards still takes part in the reduction
  /// (its rows NaN), so that every rank learns of it there and throws, instead of the others waiting for it.
  std::string validate(const batch& b, const char* who) const {
    if (b.parts.size() != plan_.per_rank() || b.shares.size() != plan_.per_rank())
      return detail::concat("DataParallel::", who, ": rank ", plan_.rank, " holds ", plan_.per_rank(), " of the ",
                            plan_.shards, " shards, but its batch has ", b.parts.size(), " parts and ",
                            b.shares.size(), " shares");
    for (const double s : b.shares)
      if (!(s > 0.0 && s <= 1.0))
        return detail::concat("DataParallel::", who, ": rank ", plan_.rank, ": a shard's share must be in (0, 1], got ",
                              s);
    return {};
  }
  /// After the reduction (the same `total` on every rank, so every rank throws alike): this rank's own problem, a
  /// problem of another rank (NaN rows), or shares that do not add up to 1.
  void check_shares(const std::string& problem, double total, const char* who) const {
    ACE_THROW_IF(!problem.empty(), invalid_argument, problem);
    ACE_THROW_IF(std::isnan(total), invalid_argument, "DataParallel::", who,
                 ": another rank's shards were invalid or its model failed (its own message says how); rank ",
                 plan_.rank, " stops with it");
    ACE_THROW_IF(!(std::abs(total - 1.0) <= 1e-9), invalid_argument, "DataParallel::", who, ": the shares of the ",
                 plan_.shards, " shards add up to ", total, ", not 1");
  }
  /// rows_ (this rank's shards, `row` values each) -> sum_ over all shards, timed.
  void reduce(std::size_t row) {
    const auto start = std::chrono::steady_clock::now();
    if (reduction_ == ShardReduction::shard_order) {
      reduce_shards(comm_, plan_, std::span<const double>(rows_), row, std::span<double>(sum_), scratch_);
    } else {
      std::copy(rows_.begin(), rows_.begin() + static_cast<std::ptrdiff_t>(row), sum_.begin());
      for (std::size_t k = 1; k < plan_.per_rank(); ++k)
        for (std::size_t i = 0; i < row; ++i) sum_[i] += rows_[k * row + i];
      comm_.all_reduce_sum(std::span<double>(sum_));
    }
    reduction_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  void zero_gradients() {
    model_.for_each_parameter([&](ParamView<T> p) { B::fill(p.grad.row(), T(0)); });
  }
  /// Rank 0's parameters to every rank (one packed broadcast, in double: exact for float and double).
  void broadcast_parameters() {
    std::vector<double> packed;
    packed.reserve(width_);
    read_each<&ParamView<T>::value>([&](T v) { packed.push_back(static_cast<double>(v)); });
    comm_.broadcast(std::span<double>(packed), 0);
    std::size_t at = 0;
    write_each<&ParamView<T>::value>([&] { return static_cast<T>(packed[at++]); });
  }
  /// f(entry) for every entry of every parameter's values or gradients (Field: &ParamView::value or ::grad), read
  /// from the backend, in parameter order.
  template <VectorRef<T> ParamView<T>::*Field, class F>
  void read_each(F&& f) {
    model_.for_each_parameter([&](ParamView<T> p) {
      const VectorRef<T> v = p.*Field;
      host_.resize(v.size());
      B::to_host(MatrixRef<const T>(v.row()), std::span<T>(host_));
      for (const T x : host_) f(x);
    });
  }
  /// Every entry of every parameter's values or gradients set to f(), in parameter order.
  template <VectorRef<T> ParamView<T>::*Field, class F>
  void write_each(F&& f) {
    model_.for_each_parameter([&](ParamView<T> p) {
      const VectorRef<T> v = p.*Field;
      host_.resize(v.size());
      for (T& x : host_) x = f();
      B::from_host(std::span<const T>(host_), v.row());
    });
  }

  M& model_;
  C& comm_;
  std::size_t width_ = 0;  // before plan_: agreed() counts the parameters into it
  ShardPlan plan_;
  ShardReduction reduction_;
  double reduction_seconds_ = 0.0;
  std::vector<double> rows_, sum_, scratch_;
  std::vector<T> host_, incoming_;
};

}  // namespace ace
