// SPDX-License-Identifier: MIT
// The training loop around ConstrainedTrainer: epochs of mini-batches, an evaluation after every epoch, and callbacks
// whose hooks are detected at compile time (as in ensmallen).
#pragma once

#include <chrono>
#include <cmath>
#include <cstddef>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "ace/constrained/trainer.hpp"
#include "ace/error.hpp"

namespace ace {

/// What one epoch produced; callbacks and loggers read it.
struct EpochSummary {
  std::size_t epoch = 0;        // 1-based
  std::size_t steps = 0;        // trainer steps so far
  std::size_t epochs = 0;       // planned epochs
  double train_loss = 0.0;      // mean J0 over the epoch's steps
  double seconds = 0.0;         // wall time of the epoch (training and evaluation)
  std::map<std::string, double> metrics;  // from the evaluator: e.g. "val_deployed", "equivariance_error"
  std::set<std::string> skipped;          // metrics not evaluated this epoch (NaN in `metrics`, blank in the logs)
  std::vector<double> gammas, multipliers, slacks;

  /// Marks `name` as not evaluated this epoch: the logs leave it blank and the progress line leaves it out (a metric
  /// that was evaluated and is NaN stays "nan"); plots show a gap.
  void skip(const std::string& name) {
    metrics[name] = std::numeric_limits<double>::quiet_NaN();
    skipped.insert(name);
  }
  bool evaluated(const std::string& name) const { return metrics.count(name) != 0 && skipped.count(name) == 0; }

  double max_abs_gamma() const {
    double m = 0.0;
    for (double g : gammas) m = std::max(m, std::abs(g));
    return m;
  }
  double max_multiplier() const {
    double m = 0.0;
    for (double l : multipliers) m = std::max(m, l);
    return m;
  }
};

/// Where a run stands: the epochs it has completed and the mini-batches of the next epoch it has already trained on
/// (0 at an epoch's end). Checkpoints store it; fit() starts from it.
struct TrainingPosition {
  std::size_t epoch = 0;
  std::size_t batch = 0;
  bool operator==(const TrainingPosition&) const = default;
};

enum class FitStatus { completed, stopped_early, non_finite };

struct FitResult {
  FitStatus status = FitStatus::completed;
  std::size_t epochs = 0;  // epochs completed
  std::string message;     // why it stopped, when it did not complete
};

namespace detail {
template <class C, class Tr>
void call_fit_begin(C& c, Tr& t, std::size_t epochs) {
  if constexpr (requires { c.on_fit_begin(t, epochs); }) c.on_fit_begin(t, epochs);
}
template <class C, class Tr>
void call_step(C& c, Tr& t, const StepReport& r) {
  if constexpr (requires { c.on_step(t, r); }) c.on_step(t, r);
}
template <class C, class Tr>
void call_batch_end(C& c, Tr& t, const TrainingPosition& p) {
  if constexpr (requires { c.on_batch_end(t, p); }) c.on_batch_end(t, p);
}
/// True when the callback asks to stop.
template <class C, class Tr>
bool call_epoch_end(C& c, Tr& t, const EpochSummary& s) {
  if constexpr (requires { { c.on_epoch_end(t, s) } -> std::convertible_to<bool>; }) return c.on_epoch_end(t, s);
  else if constexpr (requires { c.on_epoch_end(t, s); }) c.on_epoch_end(t, s);
  return false;
}
template <class C, class Tr>
void call_fit_end(C& c, Tr& t, const FitResult& r) {
  if constexpr (requires { c.on_fit_end(t, r); }) c.on_fit_end(t, r);
}
}  // namespace detail

/// Runs `epochs` epochs from `start`: epoch start.epoch + 1 onwards, skipping the first start.batch mini-batches of
/// that epoch (a new run starts at {0, 0}; a resumed run passes the position its checkpoint stored).
///  * `batches(epoch, step)` calls `step(batch)` for every mini-batch of the (1-based) epoch, in an order that
///    depends on the epoch alone (shuffle with a seed derived from it), so runs are reproducible and resumable, also
///    in the middle of an epoch;
///  * `evaluate(summary)` fills `summary.metrics` after each epoch (validation of the deployed and relaxed models,
///    equivariance error); it may switch the model's branches, fit restores the training configuration after it;
///  * callbacks may define any of on_fit_begin(trainer, epochs), on_step(trainer, StepReport),
///    on_batch_end(trainer, TrainingPosition) (after every trained mini-batch: the position a checkpoint taken there
///    resumes from), on_epoch_end(trainer, EpochSummary) (returning true stops the run) and
///    on_fit_end(trainer, FitResult).
/// On a backend whose memory is the host's (Cpu, Reference) every step is checked (trainer.step): a non-finite loss or
/// gradient stops the run before the parameters are touched, and on_step sees each step's report. On a device
/// backend the steps run unchecked (trainer.advance: no copy to the host inside an epoch), on_step is not called,
/// and the epoch's mean loss, read once at its end, is the check. Either way a non-finite value stops the run: the
/// result says so (status non_finite, the message names the step or the epoch) and no callback sees that epoch, so a
/// checkpointer keeps the last good checkpoint (its last mid-epoch save, if it takes them, is from before the step).
template <class Trainer, class Batches, class Evaluate, class... Callbacks>
FitResult fit(Trainer& trainer, std::size_t epochs, Batches&& batches, Evaluate&& evaluate, TrainingPosition start,
              Callbacks&... callbacks) {
  FitResult result;
  constexpr bool checked = backend_host_memory_v<typename Trainer::backend>;
  const std::size_t first_epoch = start.epoch;
  (detail::call_fit_begin(callbacks, trainer, first_epoch + epochs), ...);
  if (start.batch == 0) trainer.take_mean_loss();  // a new mean (mid-epoch, the checkpoint restored the epoch's)
  for (std::size_t e = first_epoch + 1; e <= first_epoch + epochs; ++e) {
    const auto begin = std::chrono::steady_clock::now();
    EpochSummary summary;
    summary.epoch = e;
    summary.epochs = first_epoch + epochs;
    const std::size_t skip = e == first_epoch + 1 ? start.batch : 0;
    std::size_t batch = 0;
    try {
      batches(e, [&](const auto& b) {
        if (++batch <= skip) return;  // trained before the checkpoint this run resumed from
        if constexpr (checked) {
          const StepReport r = trainer.step(b);
          (detail::call_step(callbacks, trainer, r), ...);
        } else {
          trainer.advance(b);
        }
        (detail::call_batch_end(callbacks, trainer, TrainingPosition{e - 1, batch}), ...);
      });
    } catch (const numerical_error& err) {
      result.status = FitStatus::non_finite;
      result.message = detail::concat("stopped in epoch ", e, ": ", err.what());
      break;
    }
    ACE_THROW_IF(batch == 0, invalid_argument, "fit: epoch ", e,
                 " has no mini-batches (an empty training split, or a batch larger than the split?)");
    ACE_THROW_IF(batch < skip, invalid_argument, "fit: resuming epoch ", e, " after ", skip,
                 " mini-batches, but the epoch has only ", batch);
    summary.steps = trainer.steps();
    summary.train_loss = trainer.take_mean_loss();
    if (!std::isfinite(summary.train_loss)) {
      result.status = FitStatus::non_finite;
      result.message = detail::concat("stopped in epoch ", e, ": the mean training loss is ", summary.train_loss);
      break;
    }
    summary.gammas = trainer.gammas();
    summary.multipliers = trainer.multipliers();
    for (auto u : trainer.slacks()) summary.slacks.push_back(static_cast<double>(u));
    evaluate(summary);
    trainer.train();
    summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    result.epochs = e - first_epoch;
    bool stop = false;  // every callback sees the epoch, whatever the others answer
    ((stop = detail::call_epoch_end(callbacks, trainer, summary) || stop), ...);
    if (stop) {
      result.status = FitStatus::stopped_early;
      result.message = detail::concat("stopped early after epoch ", e);
      break;
    }
  }
  (detail::call_fit_end(callbacks, trainer, result), ...);
  return result;
}

/// fit() from the end of epoch `first_epoch` (0 for a new run).
template <class Trainer, class Batches, class Evaluate, class... Callbacks>
FitResult fit(Trainer& trainer, std::size_t epochs, Batches&& batches, Evaluate&& evaluate, std::size_t first_epoch,
              Callbacks&... callbacks) {
  return fit(trainer, epochs, std::forward<Batches>(batches), std::forward<Evaluate>(evaluate),
             TrainingPosition{first_epoch, 0}, callbacks...);
}

}  // namespace ace
