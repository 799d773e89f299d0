// SPDX-License-Identifier: MIT
// OnRankZero: a fit() callback (logger, plots, checkpointer, progress line) run by rank 0 alone, with every rank
// agreeing on when to stop (docs/distributed.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <span>
#include <utility>

#include "ace/constrained/fit.hpp"
#include "ace/distributed/communicator.hpp"
#include "ace/error.hpp"

namespace ace {

/// Wraps a fit() callback so that only rank 0 runs it: the ranks of a data-parallel run hold the same trainer state,
/// so one CSV log, one set of plots and one checkpoint directory (written atomically by rank 0) describe them all,
/// and a run resumes from it on any rank count. Each hook the callback has is forwarded on rank 0 and skipped
/// elsewhere; at the end of each epoch rank 0's answer to "stop?" is broadcast (a collective: every rank's fit calls
/// it at the same point), so an early stop ends every rank after the same epoch, and the ranks wait for rank 0's
/// end-of-epoch work (a checkpoint) before the next epoch. An exception from rank 0's callback (a full disk under
/// the log or the checkpoints) is kept until that end of epoch and then thrown on every rank — rank 0 its own, the
/// others a communication_error saying so — instead of leaving the other ranks waiting in the next step's reduction;
/// one from on_fit_end, after the last collective, is thrown on rank 0 at once. The wrapped hooks must not call
/// collectives themselves (they run on rank 0 only).
template <class Callback, Communicator C>
class OnRankZero {
 public:
  OnRankZero(Callback& callback, C& comm) : callback_(callback), comm_(comm) {}

  template <class Trainer>
  void on_fit_begin(Trainer& t, std::size_t epochs)
    requires requires(Callback& c, Trainer& tr, std::size_t n) { c.on_fit_begin(tr, n); }
  {
    on_rank_zero([&] { callback_.on_fit_begin(t, epochs); });
  }
  template <class Trainer>
  void on_step(Trainer& t, const StepReport& r)
    requires requires(Callback& c, Trainer& tr, const StepReport& x) { c.on_step(tr, x); }
  {
    on_rank_zero([&] { callback_.on_step(t, r); });
  }
  template <class Trainer>
  void on_batch_end(Trainer& t, const TrainingPosition& p)
    requires requires(Callback& c, Trainer& tr, const TrainingPosition& x) { c.on_batch_end(tr, x); }
  {
    on_rank_zero([&] { callback_.on_batch_end(t, p); });
  }
  /// Every rank: rank 0 runs the callback's hook (if it has one) and its answer (go on, stop, or failed) is broadcast.
  template <class Trainer>
  bool on_epoch_end(Trainer& t, const EpochSummary& s) {
    std::uint64_t status = 0;  // 0 go on, 1 stop, 2 rank 0's callback failed
    if (comm_.rank() == 0) {
      on_rank_zero([&] { status = detail::call_epoch_end(callback_, t, s) ? 1 : 0; });
      if (failure_) status = 2;
    }
    comm_.broadcast(std::span<std::uint64_t>(&status, 1), 0);
    if (status == 2) {
      if (failure_) std::rethrow_exception(std::exchange(failure_, nullptr));
      throw communication_error(detail::concat("OnRankZero: rank 0's callback failed in epoch ", s.epoch,
                                               " (rank 0 reports its error); rank ", comm_.rank(), " stops with it"));
    }
    return status == 1;
  }
  template <class Trainer>
  void on_fit_end(Trainer& t, const FitResult& r)
    requires requires(Callback& c, Trainer& tr, const FitResult& x) { c.on_fit_end(tr, x); }
  {
    on_rank_zero([&] { callback_.on_fit_end(t, r); });
    if (failure_) std::rethrow_exception(std::exchange(failure_, nullptr));
  }

  Callback& callback() noexcept { return callback_; }

 private:
  /// hook() on rank 0, its first exception kept for the end of the epoch (later hooks are skipped once one failed).
  template <class Hook>
  void on_rank_zero(Hook&& hook) {
    if (comm_.rank() != 0 || failure_) return;
    try {
      hook();
    } catch (...) {
      failure_ = std::current_exception();
    }
  }

  Callback& callback_;
  C& comm_;
  std::exception_ptr failure_;
};

}  // namespace ace
