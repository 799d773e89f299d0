// SPDX-License-Identifier: MIT
// Trainer checkpoints: the whole state of a primal–dual run (parameters, gammas, multipliers, slacks, dual and
// optimiser moments, step counters, the epoch), saved atomically and restored all-or-nothing, so a resumed run
// continues bit for bit; and the Checkpointer callback that keeps the last and the best.
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <limits>
#include <map>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "ace/constrained/fit.hpp"
#include "ace/error.hpp"
#include "ace/io/checkpoint.hpp"
#include "ace/optim/optimizer.hpp"

namespace ace {

namespace detail {
struct StateSaver {
  io::CheckpointWriter& writer;
  template <class S>
  void tensor(const std::string& name, std::span<S> data) {
    using Plain = std::remove_const_t<S>;
    const std::size_t shape[1] = {data.size()};
    writer.add<Plain>(name, std::span<const Plain>(data.data(), data.size()), shape);
  }
  /// State in backend memory: copied to the host first.
  template <class S, class B>
  void tensor(const std::string& name, VectorRef<S> data, on_backend<B>) {
    auto host = to_host_vector<B>(data);
    tensor(name, std::span<const std::remove_const_t<S>>(host));
  }
  void counter(const std::string& name, std::size_t& value) { writer.set_value(name, std::to_string(value)); }
};

/// State that training states gained with mid-epoch checkpoints: the position inside the epoch ("batch") and the
/// running sum behind the epoch's mean loss. All are zero at an epoch's end, the only place earlier versions saved,
/// so a state without them reads them as zero (a run saved before the upgrade resumes); a state saved in the middle
/// of an epoch must have them.
inline bool zero_when_missing(std::string_view name, bool mid_epoch) {
  return name == "batch" || (!mid_epoch && (name == "trainer/loss_sum" || name == "trainer/loss_count"));
}

/// Reads state in two passes: `apply = false` reads and verifies everything into scratch buffers (nothing of the
/// run changes), `apply = true` then writes into the run.
struct StateLoader {
  const io::CheckpointReader& reader;
  bool apply;
  bool mid_epoch = false;  // the state's "batch" is not 0 (read before the trainer's state)
  template <class S>
  void tensor(const std::string& name, std::span<S> data) {
    const std::size_t shape[1] = {data.size()};
    if (reader.find(name) == nullptr && zero_when_missing(name, mid_epoch)) {
      if (apply) std::fill(data.begin(), data.end(), S(0));
    } else if (apply) {
      reader.read<S>(name, data, shape);
    } else {
      std::vector<S> scratch(data.size());
      reader.read<S>(name, std::span<S>(scratch), shape);
    }
  }
  /// State in backend memory: read and verified on the host, copied to the backend when applied.
  template <class S, class B>
  void tensor(const std::string& name, VectorRef<S> data, on_backend<B>) {
    std::vector<S> host(data.size());
    tensor(name, std::span<S>(host));
    if (apply) from_host_vector<B>(host, data);
  }
  void counter(const std::string& name, std::size_t& value) {
    const std::size_t parsed =
        !reader.value(name) && zero_when_missing(name, mid_epoch) ? 0 : stored_count(reader, name);
    if (name == "batch") mid_epoch = parsed != 0;
    if (apply) value = parsed;
  }

  /// The count stored under `name`.
  static std::size_t stored_count(const io::CheckpointReader& reader, const std::string& name) {
    const auto text = reader.value(name);
    ACE_THROW_IF(!text, checkpoint_mismatch, "checkpoint ", reader.directory().string(), " has no value '", name, "'");
    std::size_t parsed = 0;
    const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), parsed);
    ACE_THROW_IF(ec != std::errc() || end != text->data() + text->size(), io_error, "checkpoint ",
                 reader.directory().string(), ": value '", name, "' is not a count: '", *text, "'");
    return parsed;
  }
};

template <class Trainer>
std::string training_signature(Trainer& t) {
  using M = std::remove_reference_t<decltype(t.model())>;
  std::string s = std::string(std::remove_cvref_t<decltype(t.policy())>::name);
  if constexpr (requires { { t.model().signature() } -> std::convertible_to<std::string>; } || requires {
                  typename M::input;
                  typename M::output;
                })
    s += " " + io::detail::model_signature(t.model());
  return s;
}
}  // namespace detail

/// Saves the complete state of `trainer` at `position` (epochs completed, mini-batches of the next epoch trained) to
/// the directory `dir` (atomically: see io::CheckpointWriter), with optional extra text values.
template <class Trainer>
void save_training_state(const std::filesystem::path& dir, Trainer& trainer, TrainingPosition position,
                         const std::map<std::string, std::string>& extra = {}) {
  io::CheckpointWriter writer(dir);
  writer.set_signature(detail::training_signature(trainer));
  detail::StateSaver saver{writer};
  saver.counter("epoch", position.epoch);
  saver.counter("batch", position.batch);
  for (const auto& [key, value] : extra) writer.set_value(key, value);
  trainer.visit_state(saver);
  writer.commit();
}

/// save_training_state at the end of epoch `epoch`.
template <class Trainer>
void save_training_state(const std::filesystem::path& dir, Trainer& trainer, std::size_t epoch,
                         const std::map<std::string, std::string>& extra = {}) {
  save_training_state(dir, trainer, TrainingPosition{epoch, 0}, extra);
}

/// Restores a state saved by save_training_state into `trainer` (built the same way: same model, optimiser and
/// policy types) and returns the position it was saved at — pass it to fit() as the start. All or nothing: every
/// tensor and value is read and verified before the first one is applied. Throws checkpoint_mismatch for another
/// model, policy or optimiser, io_error for damaged files.
template <class Trainer>
TrainingPosition load_training_state(const std::filesystem::path& dir, Trainer& trainer) {
  const io::CheckpointReader reader(dir);
  const std::string expected = detail::training_signature(trainer);
  ACE_THROW_IF(reader.signature() != expected, checkpoint_mismatch, "checkpoint ", reader.directory().string(),
               " was saved by a run with signature\n  ", reader.signature(), "\nnot\n  ", expected);
  TrainingPosition position;
  for (bool apply : {false, true}) {
    detail::StateLoader loader{reader, apply};
    loader.counter("epoch", position.epoch);
    loader.counter("batch", position.batch);
    trainer.visit_state(loader);
  }
  return position;
}

struct CheckpointerOptions {
  std::filesystem::path directory;  // "last" and "best" checkpoints go here
  std::string metric;               // select "best" by this evaluator metric (empty: keep only "last")
  bool maximize = false;            // lower is better unless set
  std::size_t every_steps = 0;      // also save "last" after every this many trainer steps (0: at epoch ends only)
};

/// Saves the whole run to <directory>/last after every epoch (and every `every_steps` steps, in the middle of epochs)
/// and to <directory>/best whenever `metric` improves (for ACE, the deployed model's validation metric). Both are
/// written atomically, "best" before "last", so a run killed between the two re-runs that epoch and finds its "best"
/// already written (the same state, and the same best value and epoch restored from it). A run stopped by the
/// non-finite guard never reaches on_epoch_end for the broken epoch, so both stay at the last good state; mid-epoch
/// saves are skipped once the epoch's running loss is not finite (on device backends the steps themselves are not
/// checked). A Checkpointer created for an existing directory continues the best value stored there (a resumed run).
class Checkpointer {
 public:
  explicit Checkpointer(CheckpointerOptions options) : o_(std::move(options)) {
    ACE_THROW_IF(o_.directory.empty(), invalid_argument, "CheckpointerOptions::directory must be set");
    io::tidy_checkpoint(o_.directory / "last");
    io::tidy_checkpoint(o_.directory / "best");
    if (!o_.metric.empty() && io::checkpoint_exists(o_.directory / "best")) {
      const io::CheckpointReader best(o_.directory / "best");
      const auto v = best.value("best_metric");
      if (v) {
        double stored = 0.0;
        const auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), stored);
        ACE_THROW_IF(ec != std::errc() || end != v->data() + v->size(), io_error, "checkpoint ",
                     (o_.directory / "best").string(), ": best_metric is not a number: '", *v, "'");
        best_ = stored * (o_.maximize ? -1.0 : 1.0);
        best_epoch_ = detail::StateLoader::stored_count(best, "epoch");
      }
    }
  }

  template <class Trainer>
  void on_batch_end(Trainer& t, const TrainingPosition& p) {
    if (o_.every_steps == 0 || t.steps() % o_.every_steps != 0 || !std::isfinite(t.running_loss())) return;
    save_training_state(o_.directory / "last", t, p);
  }

  template <class Trainer>
  void on_epoch_end(Trainer& t, const EpochSummary& s) {
    if (!o_.metric.empty()) {
      const auto it = s.metrics.find(o_.metric);
      ACE_THROW_IF(it == s.metrics.end(), invalid_argument, "Checkpointer: the evaluator reports no metric '",
                   o_.metric, "'");
      const double value = it->second * (o_.maximize ? -1.0 : 1.0);
      if (std::isfinite(value) && value < best_) {
        best_ = value;
        best_epoch_ = s.epoch;
        std::ostringstream text;
        text.precision(17);
        text << it->second;
        save_training_state(o_.directory / "best", t, s.epoch, {{"best_metric", text.str()}});
      }
    }
    save_training_state(o_.directory / "last", t, s.epoch);
  }

  std::size_t best_epoch() const { return best_epoch_; }

 private:
  CheckpointerOptions o_;
  double best_ = std::numeric_limits<double>::infinity();
  std::size_t best_epoch_ = 0;
};

}  // namespace ace
