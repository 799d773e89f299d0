// SPDX-License-Identifier: MIT
// OnRankZero: a fit() callback (logger, plots, checkpointer, progress line) run by rank 0 alone, with every rank
// agreeing on when to stop (docs/distributed.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "ace/constrained/fit.hpp"
#include "ace/distributed/communicator.hpp"

namespace ace {

/// Wraps a fit() callback so that only rank 0 runs it: the ranks of a data-parallel run hold the same trainer state,
/// so one CSV log, one set of plots and one checkpoint directory (written atomically by rank 0) describe them all,
/// and a run resumes from it on any rank count. Each hook the callback has is forwarded on rank 0 and skipped
/// elsewhere; at the end of each epoch rank 0's answer to "stop?" is broadcast (a collective: every rank's fit calls
/// it at the same point), so an early stop ends every rank after the same epoch, and the ranks wait for rank 0's
/// end-of-epoch work (a checkpoint) before the next epoch.
template <class Callback, Communicator C>
class OnRankZero {
 public:
  OnRankZero(Callback& callback, C& comm) : callback_(callback), comm_(comm) {}

  template <class Trainer>
  void on_fit_begin(Trainer& t, std::size_t epochs)
    requires requires(Callback& c, Trainer& tr, std::size_t n) { c.on_fit_begin(tr, n); }
  {
    if (comm_.rank() == 0) callback_.on_fit_begin(t, epochs);
  }
  template <class Trainer>
  void on_step(Trainer& t, const StepReport& r)
    requires requires(Callback& c, Trainer& tr, const StepReport& x) { c.on_step(tr, x); }
  {
    if (comm_.rank() == 0) callback_.on_step(t, r);
  }
  template <class Trainer>
  void on_batch_end(Trainer& t, const TrainingPosition& p)
    requires requires(Callback& c, Trainer& tr, const TrainingPosition& x) { c.on_batch_end(tr, x); }
  {
    if (comm_.rank() == 0) callback_.on_batch_end(t, p);
  }
  /// Every rank: rank 0 runs the callback's hook (if it has one) and its answer is broadcast.
  template <class Trainer>
  bool on_epoch_end(Trainer& t, const EpochSummary& s) {
    std::uint64_t stop = 0;
    if (comm_.rank() == 0) stop = detail::call_epoch_end(callback_, t, s) ? 1 : 0;
    comm_.broadcast(std::span<std::uint64_t>(&stop, 1), 0);
    return stop != 0;
  }
  template <class Trainer>
  void on_fit_end(Trainer& t, const FitResult& r)
    requires requires(Callback& c, Trainer& tr, const FitResult& x) { c.on_fit_end(tr, x); }
  {
    if (comm_.rank() == 0) callback_.on_fit_end(t, r);
  }

  Callback& callback() noexcept { return callback_; }

 private:
  Callback& callback_;
  C& comm_;
};

}  // namespace ace
