// SPDX-License-Identifier: MIT
// DataParallel: a HomotopyModel whose gradients and loss are those of a global batch cut into shards that several
// ranks compute, reduced in shard order so that the result does not depend on the rank count (docs/distributed.md).
// ConstrainedTrainer drives it unchanged: every rank takes the same primal and dual step.
#pragma once

#include <chrono>
#include <cmath>
#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <exception>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ace/backend/concept.hpp"
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

/// Whether communicator C's collectives take pointers into backend B's tensors (C::backend names B, as ace::Nccl
/// does for ace::Cuda): DataParallel then packs, reduces and unpacks every step in B's memory with B's operations,
/// instead of through host memory.
template <class C, class B>
concept CollectivesIn = requires { typename C::backend; } && std::same_as<typename C::backend, B>;

namespace detail {

/// The sum of the shards' rows (`row` values each, this rank's in `rows`) over all ranks into `sum`, host memory.
template <Communicator C>
void host_reduce(C& comm, const ShardPlan& plan, ShardReduction reduction, const std::vector<double>& rows,
                 std::size_t row, std::vector<double>& sum, std::vector<double>& scratch) {
  if (reduction == ShardReduction::shard_order) {
    reduce_shards(comm, plan, std::span<const double>(rows), row, std::span<double>(sum), scratch);
    return;
  }
  std::copy(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(row), sum.begin());
  for (std::size_t k = 1; k < plan.per_rank(); ++k)
    for (std::size_t i = 0; i < row; ++i) sum[i] += rows[k * row + i];
  comm.all_reduce_sum(std::span<double>(sum));
}

/// Each shard's row of one step through host memory, in double: a transfer of every parameter's gradient per shard,
/// the products share x gradient and the sums in double (exact for float models' gradients up to the last sum).
template <class M>
class HostRows {
 public:
  using T = typename M::scalar;
  using B = backend_of_t<M>;

  HostRows(std::size_t width, std::size_t per_rank) : width_(width), per_rank_(per_rank) {}

  /// Starts a step: rows of zeros (NaN where this rank's shards are bad), the incoming gradients kept.
  void begin(M& model, bool valid) {
    rows_.assign(per_rank_ * row(), valid ? 0.0 : nan);
    incoming_.clear();  // what the gradients held before the call: the sum is added to it (accumulate)
    read_each<&ParamView<T>::grad>(model, [&](T g) { incoming_.push_back(g); });
  }
  /// Shard k's row: its share of the model's gradients and of its loss.
  void store(M& model, std::size_t k, double share, double loss) {
    double* out = rows_.data() + k * row();
    std::size_t at = 0;
    read_each<&ParamView<T>::grad>(model, [&](T g) { out[at++] = share * static_cast<double>(g); });
    out[width_] = share * loss;
    out[width_ + 1] = share;
  }
  /// Shard k's loss was not finite: NaN for all to see (the trainer's check stops every rank).
  void poison(std::size_t k, double share) {
    double* out = rows_.data() + k * row();
    std::fill(out, out + width_ + 1, nan);
    out[width_ + 1] = share;
  }
  /// The model failed otherwise: NaN shares stop every rank in check_shares.
  void poison_all() { std::fill(rows_.begin(), rows_.end(), nan); }
  void settle() {}  // the rows were read to the host already
  /// The sum of all shards' rows on all ranks; returns its loss and share.
  template <Communicator C>
  std::array<double, 2> reduce(C& comm, const ShardPlan& plan, ShardReduction reduction) {
    sum_.resize(row());
    host_reduce(comm, plan, reduction, rows_, row(), sum_, scratch_);
    return {sum_[width_], sum_[width_ + 1]};
  }
  /// The gradients = what they held before + the global sum (where they held 0, as the trainer leaves them, the sum
  /// itself: the bits of a single process's gradients, the sign of a zero included).
  void add_to_gradients(M& model) {
    std::size_t at = 0;
    write_each<&ParamView<T>::grad>(model, [&] {
      const T before = incoming_[at], sum = static_cast<T>(sum_[at]);
      ++at;
      return before == T(0) ? sum : before + sum;
    });
  }
  /// Rank 0's parameters to every rank (one packed broadcast, in double: exact for float and double).
  template <Communicator C>
  void broadcast_parameters(M& model, C& comm) {
    std::vector<double> packed;
    packed.reserve(width_);
    read_each<&ParamView<T>::value>(model, [&](T v) { packed.push_back(static_cast<double>(v)); });
    comm.broadcast(std::span<double>(packed), 0);
    std::size_t at = 0;
    write_each<&ParamView<T>::value>(model, [&] { return static_cast<T>(packed[at++]); });
  }

 private:
  static constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  std::size_t row() const noexcept { return width_ + 2; }  // the gradient, the loss, the share
  /// f(entry) for every entry of every parameter's values or gradients (Field: &ParamView::value or ::grad), read
  /// from the backend, in parameter order.
  template <VectorRef<T> ParamView<T>::*Field, class F>
  void read_each(M& model, F&& f) {
    model.for_each_parameter([&](ParamView<T> p) {
      const VectorRef<T> v = p.*Field;
      host_.resize(v.size());
      B::to_host(MatrixRef<const T>(v.row()), std::span<T>(host_));
      for (const T x : host_) f(x);
    });
  }
  /// Every entry of every parameter's values or gradients set to f(), in parameter order.
  template <VectorRef<T> ParamView<T>::*Field, class F>
  void write_each(M& model, F&& f) {
    model.for_each_parameter([&](ParamView<T> p) {
      const VectorRef<T> v = p.*Field;
      host_.resize(v.size());
      for (T& x : host_) x = f();
      B::from_host(std::span<const T>(host_), v.row());
    });
  }

  std::size_t width_, per_rank_;
  std::vector<double> rows_, sum_, scratch_;
  std::vector<T> host_, incoming_;
};

/// Each shard's row of one step in the backend's memory, in the model's scalar T, for a communicator whose
/// collectives take that memory (CollectivesIn): the gradients are copied into the rows and scaled by the shares,
/// gathered (or all-reduced) and added with the backend's operations; only the loss and the share of each shard come
/// from the host, and only scalars go back to it (whether the incoming gradients are zero, one value once the shards
/// are done, the summed loss and share). For double models the products and sums are those of HostRows, so both give
/// the same bits; for float models they are float's. Gradients that held values before the call get the sum added
/// (IEEE: a +0 there and a -0 sum give +0, where HostRows keeps the sum's -0).
template <class M>
class BackendRows {
 public:
  using T = typename M::scalar;
  using B = backend_of_t<M>;

  BackendRows(std::size_t width, std::size_t per_rank) : width_(width), per_rank_(per_rank) {}

  void begin(M& model, bool valid) {
    sized(rows_, per_rank_ * row());
    if (!valid) B::fill(all(rows_), nan);
    sized(incoming_, width_);
    pack<&ParamView<T>::grad>(model, 0, incoming_);
    // The trainer zeroes the gradients before the call: then the sum is copied into them, as HostRows' bits; held
    // values (a caller that accumulates) get the sum added.
    // max_abs passes over NaN: the sum catches it.
    const MatrixRef<const T> incoming = all(incoming_);
    accumulate_ = width_ != 0 && (B::max_abs(incoming) != 0.0 || std::isnan(B::sum(incoming)));
  }
  /// Waits for this rank's shards before the collective, so that a failure there (an index out of range that a
  /// kernel met) is thrown while the rows can still be poisoned for every rank to see.
  void settle() {
    T last = 0;
    B::to_host(MatrixRef<const T>(segment(rows_, rows_.size() - 1, 1)), std::span<T>(&last, 1));
  }
  void store(M& model, std::size_t k, double share, double loss) {
    pack<&ParamView<T>::grad>(model, k * row(), rows_);
    B::scale(static_cast<T>(share), segment(rows_, k * row(), width_));
    set_tail(k, share * loss, share);
  }
  void poison(std::size_t k, double share) {
    B::fill(segment(rows_, k * row(), width_), nan);
    set_tail(k, static_cast<double>(nan), share);
  }
  void poison_all() { B::fill(all(rows_), nan); }
  template <Communicator C>
  std::array<double, 2> reduce(C& comm, const ShardPlan& plan, ShardReduction reduction) {
    sized(sum_, row());
    const MatrixRef<T> sum = all(sum_);
    if (reduction == ShardReduction::shard_order) {  // gathered, then added in shard order: reduce_shards' sums
      sized(scratch_, plan.shards * row());
      comm.all_gather(std::span<const T>(rows_.data(), rows_.size()), std::span<T>(scratch_.data(), scratch_.size()));
      add_rows(scratch_, plan.shards, sum);
    } else {  // this rank's shards in order, then the communicator's all-reduce
      add_rows(rows_, per_rank_, sum);
      comm.all_reduce_sum(std::span<T>(sum_.data(), sum_.size()));
    }
    T tail[2] = {};
    B::to_host(MatrixRef<const T>(segment(sum_, width_, 2)), std::span<T>(tail, 2));
    return {static_cast<double>(tail[0]), static_cast<double>(tail[1])};
  }
  void add_to_gradients(M& model) {
    std::size_t at = 0;
    model.for_each_parameter([&](ParamView<T> p) {
      const MatrixRef<T> sum = segment(sum_, at, p.grad.size());
      if (accumulate_) B::add(segment(incoming_, at, p.grad.size()), sum, p.grad.row());
      else B::copy(sum, p.grad.row());
      at += p.grad.size();
    });
  }
  template <Communicator C>
  void broadcast_parameters(M& model, C& comm) {
    sized(incoming_, width_);
    pack<&ParamView<T>::value>(model, 0, incoming_);
    comm.broadcast(std::span<T>(incoming_.data(), incoming_.size()), 0);
    std::size_t at = 0;
    model.for_each_parameter([&](ParamView<T> p) {
      B::copy(segment(incoming_, at, p.value.size()), p.value.row());
      at += p.value.size();
    });
  }

 private:
  using Buffer = tensor_t<B, T, 1>;
  static constexpr T nan = std::numeric_limits<T>::quiet_NaN();
  std::size_t row() const noexcept { return width_ + 2; }
  static void sized(Buffer& b, std::size_t n) {
    if (b.size() != n) b = zeros<B, T, 1>(std::array<std::size_t, 1>{n});
  }
  static MatrixRef<T> segment(Buffer& b, std::size_t first, std::size_t count) {
    return VectorRef<T>(b.data() + first, count).row();
  }
  static MatrixRef<T> all(Buffer& b) { return segment(b, 0, b.size()); }
  /// Every parameter's values or gradients, in parameter order, into `to` from entry `first` on.
  template <VectorRef<T> ParamView<T>::*Field>
  void pack(M& model, std::size_t first, Buffer& to) {
    model.for_each_parameter([&](ParamView<T> p) {
      const VectorRef<T> v = p.*Field;
      B::copy(MatrixRef<const T>(v.row()), segment(to, first, v.size()));
      first += v.size();
    });
  }
  void set_tail(std::size_t k, double loss, double share) {
    const T tail[2] = {static_cast<T>(loss), static_cast<T>(share)};
    B::from_host(std::span<const T>(tail, 2), segment(rows_, k * row() + width_, 2));
  }
  /// sum = rows 0, 1, ..., count - 1 of `rows`, added in that order.
  void add_rows(Buffer& rows, std::size_t count, MatrixRef<T> sum) {
    B::copy(MatrixRef<const T>(segment(rows, 0, row())), sum);
    for (std::size_t s = 1; s < count; ++s) B::add(MatrixRef<const T>(sum), segment(rows, s * row(), row()), sum);
  }

  std::size_t width_, per_rank_;
  bool accumulate_ = false;
  Buffer rows_, scratch_, sum_, incoming_;
};

}  // namespace detail

/// Data parallelism over a Communicator for any HomotopyModel M whose parameters are the same on every rank:
///  * construction checks that every rank holds the same model (signature, parameter count) and shard count, and
///    copies rank 0's parameters to all ranks (so ranks that initialised differently start alike);
///  * `loss_and_gradients(shards)` runs M on each of this rank's shards (the gradients zeroed before each), scales
///    the shard's gradients and loss by its share, adds the rows of all shards on all ranks (ShardReduction: by
///    default gathered and added in shard order, reduce_shards), then adds the sum to the gradients (the trainer
///    zeroed them) and returns the global mean loss: the same values on every rank and, in shard order, the same
///    bits for any rank count that divides the shard count — a single process with SingleProcess and the same
///    shards computes them too;
///  * `loss(shards)` (evaluation) likewise for the loss alone.
/// Where the rows live: with a communicator whose collectives take the backend's memory (CollectivesIn: ace::Nccl
/// and ace::Cuda), in backend tensors of M's scalar, with no host copies but the loss and the share (BackendRows);
/// otherwise in host memory, in double (HostRows). For double models both give the same bits.
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
  /// Whether the rows of a step stay in the backend's memory (see above).
  static constexpr bool rows_in_backend = CollectivesIn<C, B>;

  /// Holds references to `model` and `comm` (both outlive this object). Collective: every rank constructs it, with
  /// the same shard count and reduction.
  DataParallel(M& model, C& comm, std::size_t shards, ShardReduction reduction = ShardReduction::shard_order)
      : model_(model), comm_(comm), plan_(agreed(model, comm, shards, reduction, width_)), reduction_(reduction),
        rows_(width_, plan_.per_rank()) {
    rows_.broadcast_parameters(model_, comm_);
  }

  double loss_and_gradients(const batch& b) {
    const std::string problem = validate(b, "loss_and_gradients");
    rows_.begin(model_, problem.empty());  // a bad batch still joins the collective
    std::exception_ptr failure;
    for (std::size_t k = 0; problem.empty() && !failure && k < plan_.per_rank(); ++k) {
      const double share = b.shares[k];
      try {
        zero_gradients();
        rows_.store(model_, k, share, static_cast<double>(model_.loss_and_gradients(b.parts[k])));
      } catch (const numerical_error&) {  // a non-finite loss: NaN for all to see, the trainer's check stops every rank
        rows_.poison(k, share);
      } catch (...) {  // anything else: NaN shares stop every rank in check_shares, this one with its own error
        failure = std::current_exception();
        rows_.poison_all();
      }
    }
    if (problem.empty() && !failure) {
      try {
        rows_.settle();
      } catch (...) {
        failure = std::current_exception();
        rows_.poison_all();
      }
    }
    const auto start = std::chrono::steady_clock::now();
    const auto [loss, total] = rows_.reduce(comm_, plan_, reduction_);
    reduction_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (failure) std::rethrow_exception(failure);
    check_shares(problem, total, "loss_and_gradients");
    rows_.add_to_gradients(model_);
    return loss;
  }

  /// The global mean loss on the shards (no gradients; the branches as currently set).
  double loss(const batch& b)
    requires requires(M& m, const typename M::batch& part) {
      { m.loss(part) } -> std::convertible_to<double>;
    }
  {
    const std::string problem = validate(b, "loss");
    loss_rows_.assign(plan_.per_rank() * 2, problem.empty() ? 0.0 : nan);
    std::exception_ptr failure;
    for (std::size_t k = 0; problem.empty() && !failure && k < plan_.per_rank(); ++k) {
      try {
        loss_rows_[2 * k] = b.shares[k] * static_cast<double>(model_.loss(b.parts[k]));
      } catch (const numerical_error&) {
        loss_rows_[2 * k] = nan;
      } catch (...) {
        failure = std::current_exception();
        std::fill(loss_rows_.begin(), loss_rows_.end(), nan);
        break;
      }
      loss_rows_[2 * k + 1] = b.shares[k];
    }
    loss_sum_.resize(2);
    const auto start = std::chrono::steady_clock::now();
    detail::host_reduce(comm_, plan_, reduction_, loss_rows_, 2, loss_sum_, loss_scratch_);
    reduction_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (failure) std::rethrow_exception(failure);
    check_shares(problem, loss_sum_[1], "loss");
    return loss_sum_[0];
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
  /// The values one step sends per shard (the gradient, the loss, the share; doubles in host memory, M's scalar in
  /// the backend's) and receives in all: every rank gathers all plan().shards rows.
  std::size_t row_values() const noexcept { return width_ + 2; }
  /// Seconds spent in the shard reductions since construction or the last reset: gathering every rank's rows (and
  /// waiting there for the slowest rank) and adding them; with the rows in a device's memory, also the wait for the
  /// rank's own queued work, which the read of the summed loss includes.
  double reduction_seconds() const noexcept { return reduction_seconds_; }
  void reset_reduction_seconds() noexcept { reduction_seconds_ = 0.0; }
  C& communicator() noexcept { return comm_; }
  M& model() noexcept { return model_; }

 private:
  static constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  using Rows = std::conditional_t<rows_in_backend, detail::BackendRows<M>, detail::HostRows<M>>;

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
  /// problem of another rank (NaN rows), or shares that do not add up to 1 (up to the rounding of the scalar they
  /// were added in).
  void check_shares(const std::string& problem, double total, const char* who) const {
    ACE_THROW_IF(!problem.empty(), invalid_argument, problem);
    ACE_THROW_IF(std::isnan(total), invalid_argument, "DataParallel::", who,
                 ": another rank's shards were invalid or its model failed (its own message says how); rank ",
                 plan_.rank, " stops with it");
    // Backend rows add the shares in T: a few roundings of T per shard.
    const double eps = static_cast<double>(std::numeric_limits<T>::epsilon());
    const double tolerance = rows_in_backend ? std::max(1e-9, 8.0 * static_cast<double>(plan_.shards) * eps) : 1e-9;
    ACE_THROW_IF(!(std::abs(total - 1.0) <= tolerance), invalid_argument, "DataParallel::", who,
                 ": the shares of the ", plan_.shards, " shards add up to ", total, ", not 1");
  }
  void zero_gradients() {
    model_.for_each_parameter([&](ParamView<T> p) { B::fill(p.grad.row(), T(0)); });
  }

  M& model_;
  C& comm_;
  std::size_t width_ = 0;  // before plan_: agreed() counts the parameters into it
  ShardPlan plan_;
  ShardReduction reduction_;
  Rows rows_;
  double reduction_seconds_ = 0.0;
  std::vector<double> loss_rows_, loss_sum_, loss_scratch_;
};

}  // namespace ace
