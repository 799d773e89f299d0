// SPDX-License-Identifier: MIT
// fit() and its callbacks: hooks detected at compile time, CSV rows with every gamma and multiplier, SVG plots,
// the progress line, early stopping, and the non-finite guard that stops before touching the parameters.
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "ace/constrained/callbacks.hpp"
#include "ace/constrained/checkpoint.hpp"
#include "ace/constrained/fit.hpp"
#include "ace/constrained/supervised.hpp"
#include "ace/group/cyclic.hpp"
#include "ace/nn/core/equivariant_linear.hpp"
#include "ace/nn/core/linear.hpp"
#include "ace/nn/core/loss.hpp"
#include "ace/nn/core/relaxed.hpp"
#include "ace/nn/core/sequential.hpp"
#include "ace/optim/adam.hpp"
#include "ace/optim/sgd.hpp"
#include "ace/rep/basic.hpp"
#include "ace/rep/composite.hpp"
#include "backend_support.hpp"
#include "constrained/quadratic.hpp"
#include "failing_files.hpp"

using namespace ace;
namespace fs = std::filesystem;

namespace {
using Quadratic = test::Quadratic<>;
using test::TempDir;

/// Ten steps per epoch on the quadratic model (its batch is an int).
auto ten_steps = [](std::size_t, auto&& step) {
  for (int i = 0; i < 10; ++i) step(i);
};

struct CountingCallback {  // only on_step: the other hooks are optional
  std::size_t steps = 0;
  template <class Trainer>
  void on_step(Trainer&, const StepReport&) {
    ++steps;
  }
};

std::vector<std::string> lines_of(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace

TEST_CASE("fit: epochs, evaluation, CSV, plots and the progress line", "[ace][fit]") {
  const TempDir tmp("fit-run");
  const fs::path& dir = tmp.path;
  Quadratic m;
  ConstrainedTrainer trainer(m, SGD<double>({.lr = 0.05}), ResilientConstraint{}, DualSGD{.lr = 0.05});
  std::ostringstream progress;
  ProgressBar bar(progress, false);
  CsvLogger csv(dir / "log.csv");
  PlotWriter plots(dir);
  CountingCallback counter;
  const auto evaluate = [&](EpochSummary& s) {
    s.metrics["val_loss"] = 0.5 * (m.theta - m.a) * (m.theta - m.a);
    if (s.epoch % 4 != 0) s.skip("val_every_4");  // evaluated every fourth epoch only
    else s.metrics["val_every_4"] = s.epoch == 8 ? std::numeric_limits<double>::quiet_NaN() : 1.0;  // NaN: a value
  };
  const FitResult r = fit(trainer, 12, ten_steps, evaluate, 0, bar, csv, plots, counter);
  CHECK(r.status == FitStatus::completed);
  CHECK(r.epochs == 12);
  CHECK(counter.steps == 120);
  CHECK(trainer.steps() == 120);

  const auto rows = lines_of(dir / "log.csv");
  REQUIRE(rows.size() == 13);
  CHECK(rows[0] == "epoch,steps,seconds,train_loss,val_every_4,val_loss,gamma_0,lambda_0,u_0");
  CHECK(rows[12].rfind("12,120,", 0) == 0);
  const auto cell = [&](std::size_t row, std::size_t column) {  // the CSV's column of a row
    std::stringstream in(rows[row]);
    std::string c;
    for (std::size_t k = 0; k <= column; ++k) std::getline(in, c, ',');
    return c;
  };
  CHECK(cell(3, 4).empty());  // epoch 3: not evaluated, blank
  CHECK(cell(4, 4) == "1");
  CHECK(cell(8, 4) == "nan");  // evaluated, and not a number
  std::string epoch3, epoch4;
  {
    std::istringstream lines(progress.str());
    for (std::string l; std::getline(lines, l);) {
      if (l.rfind("epoch 3/", 0) == 0) epoch3 = l;
      if (l.rfind("epoch 4/", 0) == 0) epoch4 = l;
    }
  }
  CHECK(epoch3.find("val_every_4") == std::string::npos);  // the progress line leaves it out
  CHECK(epoch4.find("val_every_4 1") != std::string::npos);
  for (const char* f : {"loss.svg", "gamma.svg", "multipliers.svg", "slacks.svg"}) {
    const auto svg = lines_of(dir / f);
    CAPTURE(f);
    REQUIRE(!svg.empty());
    CHECK(svg.front().rfind("<svg", 0) == 0);
    CHECK(std::count_if(svg.begin(), svg.end(), [](const std::string& l) { return l.rfind("<polyline", 0) == 0; }) >= 1);
  }
  CHECK(progress.str().find("epoch 12/12") != std::string::npos);
  CHECK(plots.history().back().slacks.size() == 1);

  // Series are named by the constrained parameters' labels when given, by index otherwise.
  const auto has = [](const fs::path& file, const std::string& text) {
    const auto svg = lines_of(file);
    return std::any_of(svg.begin(), svg.end(), [&](const std::string& l) { return l.find(text) != std::string::npos; });
  };
  PlotWriter labelled(dir / "labelled", 0, {"theta"});
  for (const auto& s : plots.history()) labelled.on_epoch_end(trainer, s);
  labelled.write();
  CHECK(has(dir / "labelled" / "gamma.svg", "gamma theta"));
  CHECK(has(dir / "labelled" / "slacks.svg", "u theta"));
  CHECK(has(dir / "gamma.svg", "gamma_0"));
  CHECK_FALSE(has(dir / "gamma.svg", "gamma theta"));
}

TEST_CASE("fit: early stopping on a metric that stops improving", "[ace][fit]") {
  Quadratic m;
  ConstrainedTrainer trainer(m, SGD<double>({.lr = 0.05}), FreeBaseline{});
  EarlyStopping stop({.metric = "constant", .patience = 3});
  const FitResult r = fit(trainer, 50, ten_steps, [](EpochSummary& s) { s.metrics["constant"] = 1.0; }, 0, stop);
  CHECK(r.status == FitStatus::stopped_early);
  CHECK(r.epochs == 4);  // the first epoch sets the best value, three more without improvement

  EarlyStopping missing({.metric = "val_acc"});
  CHECK_THROWS_AS(fit(trainer, 2, ten_steps, [](EpochSummary&) {}, 0, missing), invalid_argument);
}

TEST_CASE("fit: a non-finite loss stops the run cleanly before the parameters change", "[ace][fit]") {
  const TempDir tmp("fit-nan");
  const fs::path& dir = tmp.path;
  Quadratic m;
  ConstrainedTrainer trainer(m, SGD<double>({.lr = 0.05}), EqualityConstraint{});
  CsvLogger csv(dir / "log.csv");
  double theta_before_failure = 0.0;
  const auto batches = [&](std::size_t epoch, auto&& step) {
    for (int i = 0; i < 10; ++i) {
      if (epoch == 3 && i == 5) {
        theta_before_failure = m.theta;
        m.a = std::numeric_limits<double>::quiet_NaN();  // the data turns bad mid-epoch
      }
      step(i);
    }
  };
  const FitResult r = fit(trainer, 10, batches, [](EpochSummary&) {}, 0, csv);
  CHECK(r.status == FitStatus::non_finite);
  CHECK(r.epochs == 2);
  CHECK(r.message.find("epoch 3") != std::string::npos);
  CHECK(r.message.find("non-finite") != std::string::npos);
  CHECK(m.theta == theta_before_failure);
  CHECK(lines_of(dir / "log.csv").size() == 3);  // header and the two completed epochs
}

TEST_CASE("svg: ticks, escaping, log axes and non-finite points", "[io][svg]") {
  io::LinePlot plot{"a < b & c", "x", "y", true, {}};
  plot.series.push_back({"s", {1, 2, 3, 4}, {1e-3, 1e-2, std::nan(""), 1.0}});
  const std::string svg = io::render_svg(plot);
  CHECK(svg.find("a &lt; b &amp; c") != std::string::npos);
  CHECK(svg.find("(log scale)") != std::string::npos);
  CHECK(svg.find("nan") == std::string::npos);
  const auto ticks = io::detail::nice_ticks(0.0, 1.0);
  CHECK(ticks.front() == 0.0);
  CHECK(ticks.back() == Approx(1.0));
  CHECK(ticks.size() >= 5);
}

namespace {
using C4 = Cyclic<4>;
using R = Multiple<Regular<C4>, 2>;
template <class B = Cpu>
using Net = Sequential<Relaxed<EquivariantLinear<double, R, R, B>, Linear<double, R, R, B>>>;
template <class B = Cpu>
using Model = SupervisedModel<Net<B>, MSELoss<double, B>>;

template <class B = Cpu>
struct Run {
  using Trainer = ConstrainedTrainer<Model<B>, Adam<double, B>, ResilientConstraint, DualAdam>;
  Rng init;
  Model<B> model;
  Trainer trainer;
  Tensor<double, 2> x{Tensor<double, 2>::shape_type{64, R::dim}}, y{Tensor<double, 2>::shape_type{64, R::dim}};
  Tensor<double, 2> xb{Tensor<double, 2>::shape_type{16, R::dim}}, yb{Tensor<double, 2>::shape_type{16, R::dim}};
  tensor_t<B, double, 2> xd, yd, xbd, ybd;  // the same in the backend

  explicit Run(std::uint64_t init_seed)
      : init(init_seed),
        model(Net<B>(init)),
        trainer(model, Adam<double, B>({.lr = 1e-2}), ResilientConstraint{}, DualAdam{.lr = 1e-2}) {
    Rng data(99);
    for (auto& v : x) v = data.normal();
    for (auto& v : y) v = data.normal();
    xd = to_backend<B>(x);
    yd = to_backend<B>(y);
  }
  Run(const Run&) = delete;

  /// Batches depend on the epoch only, so a resumed run sees the same data as an uninterrupted one.
  auto batches() {
    return [this](std::size_t epoch, auto&& step) {
      Rng order(epoch);
      for (int b = 0; b < 4; ++b) {
        for (std::size_t r = 0; r < 16; ++r) {
          const std::size_t i = order.below(64);
          for (std::size_t c = 0; c < R::dim; ++c) {
            xb(r, c) = x(i, c);
            yb(r, c) = y(i, c);
          }
        }
        xbd = to_backend<B>(xb);
        ybd = to_backend<B>(yb);
        step(typename Model<B>::batch{xbd, ybd});
      }
    };
  }
  auto evaluate() {
    return [this](EpochSummary& s) { s.metrics["val"] = model.loss({xd, yd}); };
  }
  std::vector<double> state() {
    std::vector<double> v;
    model.for_each_parameter([&](ParamView<double> p) {
      const auto h = to_host_vector<B>(p.value);
      v.insert(v.end(), h.begin(), h.end());
    });
    v.insert(v.end(), trainer.multipliers().begin(), trainer.multipliers().end());
    const auto u = trainer.slacks();
    v.insert(v.end(), u.begin(), u.end());
    v.push_back(static_cast<double>(trainer.steps()));
    return v;
  }
};
}  // namespace

TEMPLATE_LIST_TEST_CASE("trainer checkpoints: a resumed run continues bit for bit", "[ace][checkpoint]",
                        test::Backends) {
  using B = TestType;
  using Run = ::Run<B>;
  const TempDir tmp("fit-resume");
  const fs::path& dir = tmp.path;
  Run straight(1);
  fit(straight.trainer, 6, straight.batches(), straight.evaluate(), 0);

  {
    Run first(1);
    Checkpointer ckpt({.directory = dir, .metric = "val"});
    fit(first.trainer, 3, first.batches(), first.evaluate(), 0, ckpt);
    CHECK(ckpt.best_epoch() >= 1);
    CHECK(fs::exists(dir / "best" / "manifest.txt"));
  }
  Run resumed(2);  // another initialisation: everything must come from the checkpoint
  CHECK(resumed.state() != straight.state());
  const TrainingPosition at = load_training_state(dir / "last", resumed.trainer);
  CHECK(at == TrainingPosition{3, 0});
  fit(resumed.trainer, 3, resumed.batches(), resumed.evaluate(), at);
  CHECK(resumed.state() == straight.state());  // parameters, gammas, multipliers, slacks, moments: bit for bit

  // A state as versions before mid-epoch checkpoints saved it (no "batch", no running loss) resumes the same way;
  // one saved mid-epoch without the running loss is refused.
  const auto without = [&](const fs::path& from, const fs::path& to, bool keep_batch) {
    fs::copy(from, to, fs::copy_options::recursive);
    std::ifstream in(to / "manifest.txt");
    std::string text, line;
    std::size_t dropped = 0;
    while (std::getline(in, line)) {
      if ((!keep_batch && line.rfind("value batch ", 0) == 0) || line.rfind("value trainer/loss_count ", 0) == 0 ||
          line.rfind("tensor trainer/loss_sum ", 0) == 0) {
        dropped += line.rfind("tensor", 0) == 0;
        continue;
      }
      if (line.rfind("end ", 0) == 0) line = "end " + std::to_string(std::stoul(line.substr(4)) - dropped);
      text += line + "\n";
    }
    in.close();
    std::ofstream(to / "manifest.txt", std::ios::trunc) << text;
  };
  without(dir / "last", dir / "legacy", false);
  Run legacy(5);
  REQUIRE(load_training_state(dir / "legacy", legacy.trainer) == TrainingPosition{3, 0});
  fit(legacy.trainer, 3, legacy.batches(), legacy.evaluate(), TrainingPosition{3, 0});
  CHECK(legacy.state() == straight.state());
  without(dir / "last", dir / "mid-epoch", true);  // the same with a mid-epoch position: the running loss is needed
  {
    std::ifstream in(dir / "mid-epoch" / "manifest.txt");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    in.close();
    text.replace(text.find("value batch 0"), 13, "value batch 2");
    std::ofstream(dir / "mid-epoch" / "manifest.txt", std::ios::trunc) << text;
  }
  Run refused(6);
  CHECK_THROWS_WITH(load_training_state(dir / "mid-epoch", refused.trainer), Catch::Contains("trainer/loss"));

  // Another policy cannot load it; a damaged checkpoint changes nothing.
  Rng other_init(3);
  Model<B> other_model{Net<B>(other_init)};
  ConstrainedTrainer other(other_model, Adam<double, B>({.lr = 1e-2}), EqualityConstraint{}, DualAdam{.lr = 1e-2});
  CHECK_THROWS_AS(load_training_state(dir / "last", other), checkpoint_mismatch);
  Run target(4);
  const auto before = target.state();
  std::ofstream(dir / "last" / "t0.npy", std::ios::trunc) << "garbage";
  CHECK_THROWS_AS(load_training_state(dir / "last", target.trainer), io_error);
  CHECK(target.state() == before);
}

namespace {
/// Stands for a kill: throws once the trainer has taken `at` steps (after the callbacks before it saw the step).
struct KillAtStep {
  std::size_t at;
  struct Killed {};
  template <class Trainer>
  void on_batch_end(Trainer& t, const TrainingPosition&) {
    if (t.steps() == at) throw Killed{};
  }
};
/// Lists the positions at which a Checkpointer saving every `every` steps saves.
struct SavedPositions {
  std::vector<TrainingPosition>* out;
  std::size_t every;
  template <class Trainer>
  void on_batch_end(Trainer& t, const TrainingPosition& p) {
    if (t.steps() % every == 0) out->push_back(p);
  }
};
/// Keeps every epoch's summary.
struct Summaries {
  std::vector<EpochSummary> all;
  template <class Trainer>
  void on_epoch_end(Trainer&, const EpochSummary& s) {
    all.push_back(s);
  }
};
}  // namespace

TEMPLATE_LIST_TEST_CASE("trainer checkpoints: a run resumed from the middle of an epoch continues bit for bit",
                        "[ace][checkpoint]", test::Backends) {
  using B = TestType;
  using Run = ::Run<B>;
  const TempDir tmp("fit-resume-steps");
  const fs::path& dir = tmp.path;
  Run straight(1);
  Summaries straight_epochs;
  fit(straight.trainer, 4, straight.batches(), straight.evaluate(), 0, straight_epochs);

  std::vector<TrainingPosition> saved;  // 4 batches an epoch, a save every 3 steps
  {
    Run first(1);
    Checkpointer ckpt({.directory = dir, .metric = {}, .maximize = false, .every_steps = 3});
    SavedPositions positions{&saved, 3};
    KillAtStep kill{10};  // the last save was at step 9: epoch 3, after its first batch
    CHECK_THROWS_AS(fit(first.trainer, 4, first.batches(), first.evaluate(), 0, ckpt, positions, kill),
                    KillAtStep::Killed);
  }
  CHECK(saved == std::vector<TrainingPosition>{{0, 3}, {1, 2}, {2, 1}});
  Run resumed(2);
  const TrainingPosition at = load_training_state(dir / "last", resumed.trainer);
  REQUIRE(at == TrainingPosition{2, 1});
  CHECK(resumed.trainer.steps() == 9);
  Summaries resumed_epochs;
  fit(resumed.trainer, 2, resumed.batches(), resumed.evaluate(), at, resumed_epochs);
  CHECK(resumed.state() == straight.state());
  REQUIRE(resumed_epochs.all.size() == 2);
  for (std::size_t k = 0; k < 2; ++k) {  // the partial epoch's mean loss counts its batches from before the kill
    CHECK(resumed_epochs.all[k].epoch == straight_epochs.all[k + 2].epoch);
    CHECK(resumed_epochs.all[k].train_loss == straight_epochs.all[k + 2].train_loss);
    CHECK(resumed_epochs.all[k].metrics == straight_epochs.all[k + 2].metrics);
  }
  // An epoch without mini-batches (an empty split) and a position past the epoch's mini-batches are refused.
  Run empty(1);
  CHECK_THROWS_WITH(fit(empty.trainer, 1, [](std::size_t, auto&&) {}, empty.evaluate(), 0),
                    Catch::Contains("epoch 1 has no mini-batches"));
  Run beyond(1);
  CHECK_THROWS_AS(fit(beyond.trainer, 1, beyond.batches(), beyond.evaluate(), TrainingPosition{0, 5}),
                  invalid_argument);
}

TEST_CASE("csv logs: a log killed before its first row starts again; a resume reads only the rows it keeps",
          "[ace][fit]") {
  const TempDir tmp("csv-resume");
  const fs::path log = tmp.path / "log.csv";
  std::ofstream(log).flush();  // created, killed before the first epoch ended
  {
    CsvLogger csv(log, true);
    Run<> run(3);
    fit(run.trainer, 2, run.batches(), run.evaluate(), 0, csv);
  }
  REQUIRE(read_csv_log(log).size() == 2);
  std::ofstream(log, std::ios::app) << "3,12,0.5,0.25,1";  // a third row cut short
  CHECK_THROWS_AS(read_csv_log(log), io_error);
  CHECK(read_csv_log(log, 2).size() == 2);
  const auto kept = resume_csv_log(log, 2);
  CHECK(kept.size() == 2);
  CHECK(read_csv_log(log).size() == 2);
  CHECK(resume_csv_log(tmp.path / "absent.csv", 0).empty());  // killed inside its first epoch: nothing logged
  CHECK_THROWS_AS(resume_csv_log(tmp.path / "absent.csv", 1), io_error);
}

TEST_CASE("trainer checkpoints: a disk that fills mid-run stops it with io_error; the last checkpoint resumes it",
          "[ace][checkpoint][reliability]") {
  const TempDir tmp("fit-disk-full");
  const fs::path& dir = tmp.path;
  Run<> straight(1);
  fit(straight.trainer, 4, straight.batches(), straight.evaluate(), 0);
  {
    Run<> first(1);
    Checkpointer ckpt({.directory = dir / "state", .metric = "val"});
    CsvLogger csv(dir / "log.csv");
    fit(first.trainer, 2, first.batches(), first.evaluate(), 0, csv, ckpt);
    const test::FileSizeLimit full(512);  // from here on no file may grow past 512 bytes
    test::require_io_error([&] { fit(first.trainer, 2, first.batches(), first.evaluate(), 2, ckpt); }, dir / "state",
                           "File too large");
    const test::FileSizeLimit log_full(fs::file_size(dir / "log.csv") + 16);  // room for a part of one more row
    CsvLogger more(dir / "log.csv", true);
    test::require_io_error([&] { fit(first.trainer, 1, first.batches(), first.evaluate(), 3, more); },
                           dir / "log.csv", "");
  }
  Run<> resumed(2);
  const TrainingPosition at = load_training_state(dir / "state" / "last", resumed.trainer);
  CHECK(at == TrainingPosition{2, 0});  // the checkpoint of the last epoch that could be saved, whole
  CHECK(resume_csv_log(dir / "log.csv", at.epoch).size() == 2);
  fit(resumed.trainer, 2, resumed.batches(), resumed.evaluate(), at);
  CHECK(resumed.state() == straight.state());
}

TEST_CASE("callbacks: a log, plots or checkpoints in a read-only directory are an io_error naming the path",
          "[ace][checkpoint][reliability]") {
  const TempDir tmp("fit-read-only");
  test::ReadOnlyDirectory dir(tmp.path / "ro");
  if (!dir.usable()) {
    WARN("not run: as root, a read-only directory needs a tmpfs mount (CAP_SYS_ADMIN)");
    return;
  }
  Run<> run(1);
  {
    Checkpointer ckpt({.directory = dir.path() / "state", .metric = "val"});
    fit(run.trainer, 1, run.batches(), run.evaluate(), 0, ckpt);
  }
  REQUIRE(dir.make_read_only());
  const auto refused = [&](auto& callback, const fs::path& path) {
    test::require_io_error([&] { fit(run.trainer, 1, run.batches(), run.evaluate(), 1, callback); }, path, "");
  };
  CsvLogger csv(dir.path() / "log.csv");
  refused(csv, dir.path() / "log.csv");
  PlotWriter plots(dir.path() / "plots");
  refused(plots, dir.path() / "plots");
  Checkpointer ckpt({.directory = dir.path() / "state", .metric = "val"});
  refused(ckpt, dir.path() / "state");
  Run<> resumed(2);
  CHECK(load_training_state(dir.path() / "state" / "last", resumed.trainer) == TrainingPosition{1, 0});
}

TEST_CASE("trainer evaluation: deployed and relaxed losses per policy", "[ace][evaluate]") {
  Run<> run(5);
  fit(run.trainer, 2, run.batches(), run.evaluate(), 0);
  const Evaluation resilient = run.trainer.evaluate(Model<>::batch{run.x, run.y});
  CHECK(resilient.deployed == resilient.relaxed);  // resilient deploys with the branches
  CHECK(resilient.relaxed == run.model.loss({run.x, run.y}));

  ConstrainedTrainer eq(run.model, Adam<double>({.lr = 1e-2}), EqualityConstraint{});
  const Evaluation e = eq.evaluate(Model<>::batch{run.x, run.y});
  run.model.set_relaxation(false);
  CHECK(e.deployed == run.model.loss({run.x, run.y}));  // equality deploys f_eq alone
  run.model.set_relaxation(true);
  CHECK(e.relaxed == run.model.loss({run.x, run.y}));
  CHECK(e.deployed != e.relaxed);
}
