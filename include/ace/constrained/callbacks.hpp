// SPDX-License-Identifier: MIT
// Callbacks for fit(): a progress bar, a CSV logger, early stopping, and SVG plots of the run.
#pragma once

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "ace/constrained/fit.hpp"
#include "ace/error.hpp"
#include "ace/io/files.hpp"
#include "ace/io/svg.hpp"

#if __has_include(<unistd.h>)
#include <unistd.h>
#endif

namespace ace {

/// One line per epoch — redrawn in place on a terminal (epoch, steps/s, ETA, loss, max|γ|, max λ), plain lines
/// otherwise (logs, CI).
class ProgressBar {
 public:
  explicit ProgressBar(std::ostream& out = std::cout, bool interactive = ProgressBar::stdout_is_terminal())
      : out_(out), interactive_(interactive) {}

  template <class Trainer>
  void on_fit_begin(Trainer& t, std::size_t epochs) {
    epochs_ = epochs;
    start_ = last_draw_ = std::chrono::steady_clock::now();
    start_steps_ = t.steps();
  }
  template <class Trainer>
  void on_step(Trainer& t, const StepReport& r) {
    if (!interactive_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_draw_ < std::chrono::milliseconds(200)) return;
    last_draw_ = now;
    out_ << "\r" << line(t.steps(), r.loss, r.max_abs_gamma, r.max_multiplier, epoch_ + 1) << std::flush;
  }
  template <class Trainer>
  void on_epoch_end(Trainer& t, const EpochSummary& s) {
    epoch_ = s.epoch;
    std::string text = line(t.steps(), s.train_loss, s.max_abs_gamma(), s.max_multiplier(), s.epoch);
    for (const auto& [name, value] : s.metrics)
      if (!s.skipped.count(name)) text += detail::concat("  ", name, " ", value);
    out_ << (interactive_ ? "\r\x1b[2K" : "") << text << "\n" << std::flush;
  }
  template <class Trainer>
  void on_fit_end(Trainer&, const FitResult& r) {
    if (!r.message.empty()) out_ << r.message << "\n" << std::flush;
  }

  static bool stdout_is_terminal() {
#if __has_include(<unistd.h>)
    return ::isatty(::fileno(stdout)) != 0;
#else
    return false;
#endif
  }

 private:
  std::string line(std::size_t steps, double loss, double gamma, double lambda, std::size_t epoch) const {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count() + 1e-9;
    const double rate = static_cast<double>(steps - start_steps_) / seconds;
    const double done = epoch > 0 ? static_cast<double>(epoch) : 1.0;
    const double eta = seconds / done * static_cast<double>(epochs_ > epoch ? epochs_ - epoch : 0);
    std::ostringstream s;
    s << "epoch " << epoch << "/" << epochs_ << "  " << std::fixed << std::setprecision(1) << rate << " steps/s  ETA "
      << static_cast<long>(eta) << "s  " << std::defaultfloat << std::setprecision(4) << "loss " << loss
      << "  max|gamma| " << gamma << "  max lambda " << lambda;
    return s.str();
  }

  std::ostream& out_;
  bool interactive_;
  std::size_t epochs_ = 0, epoch_ = 0, start_steps_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

/// Appends one CSV row per epoch: epoch, steps, seconds, train_loss, the evaluator's metrics (sorted by name; blank
/// where EpochSummary::skip marked one not evaluated), every gamma_i, lambda_i and u_i, with 17 significant digits
/// (read_csv_log gives the same doubles back). The file is flushed after every row, so a crash loses at most the epoch in progress.
/// With `append`, an existing file is continued (a resumed run) instead of replaced.
class CsvLogger {
 public:
  explicit CsvLogger(std::filesystem::path path, bool append = false) : path_(std::move(path)), append_(append) {}

  template <class Trainer>
  void on_fit_begin(Trainer&, std::size_t) {
    std::error_code ec;  // a file killed before its first row has no header yet: start it again
    const bool continuing = append_ && std::filesystem::file_size(path_, ec) > 0 && !ec;
    if (!path_.parent_path().empty()) io::create_directories(path_.parent_path());
    errno = 0;
    out_.open(path_, continuing ? std::ios::app : std::ios::trunc);
    ACE_THROW_IF(!out_, io_error, "CsvLogger: cannot open ", path_.string(), ": ", io::detail::reason(errno));
    header_written_ = continuing;
  }
  template <class Trainer>
  void on_epoch_end(Trainer&, const EpochSummary& s) {
    if (!header_written_) {
      out_ << "epoch,steps,seconds,train_loss";
      for (const auto& [name, value] : s.metrics) out_ << "," << name;
      for (std::size_t i = 0; i < s.gammas.size(); ++i) out_ << ",gamma_" << i;
      for (std::size_t i = 0; i < s.multipliers.size(); ++i) out_ << ",lambda_" << i;
      for (std::size_t i = 0; i < s.slacks.size(); ++i) out_ << ",u_" << i;
      out_ << "\n";
      header_written_ = true;
    }
    out_ << std::setprecision(17) << s.epoch << "," << s.steps << "," << s.seconds << "," << s.train_loss;
    for (const auto& [name, value] : s.metrics) {
      out_ << ",";
      if (!s.skipped.count(name)) out_ << value;  // blank: not evaluated this epoch
    }
    for (double v : s.gammas) out_ << "," << v;
    for (double v : s.multipliers) out_ << "," << v;
    for (double v : s.slacks) out_ << "," << v;
    errno = 0;
    out_ << "\n" << std::flush;
    ACE_THROW_IF(!out_, io_error, "CsvLogger: writing ", path_.string(), " failed: ",
                 io::detail::reason(errno != 0 ? errno : EIO));
  }

 private:
  std::filesystem::path path_;
  bool append_;
  std::ofstream out_;
  bool header_written_ = false;
};

/// The epoch summaries a CsvLogger wrote (the planned epoch count is not stored: 0), exactly as logged, at most
/// `max_rows` of them (the rows after those are not read); a blank metric reads back as skipped. Throws io_error
/// naming the file and line for a row that does not parse.
inline std::vector<EpochSummary> read_csv_log(const std::filesystem::path& path,
                                              std::size_t max_rows = std::numeric_limits<std::size_t>::max()) {
  std::ifstream in(path);
  ACE_THROW_IF(!in, io_error, "read_csv_log: cannot open ", path.string());
  const auto split = [](const std::string& line) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) cells.push_back(c);
    if (!line.empty() && line.back() == ',') cells.emplace_back();
    return cells;
  };
  std::string line;
  std::vector<EpochSummary> rows;
  if (!std::getline(in, line)) return rows;
  const std::vector<std::string> header = split(line);
  ACE_THROW_IF(header.size() < 4 || header[0] != "epoch" || header[3] != "train_loss", io_error, "read_csv_log: ",
               path.string(), " does not start with a CsvLogger header");
  for (std::size_t n = 2; rows.size() < max_rows && std::getline(in, line); ++n) {
    const std::vector<std::string> cells = split(line);
    ACE_THROW_IF(cells.size() != header.size(), io_error, "read_csv_log: ", path.string(), ":", n, " has ",
                 cells.size(), " cells, the header ", header.size());
    const auto number = [&](const std::string& cell) {
      std::size_t used = 0;
      double v = 0.0;
      try {
        v = std::stod(cell, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      ACE_THROW_IF(used != cell.size() || cell.empty(), io_error, "read_csv_log: ", path.string(), ":", n,
                   ": not a number: '", cell, "'");
      return v;
    };
    EpochSummary s;
    s.epoch = static_cast<std::size_t>(number(cells[0]));
    s.steps = static_cast<std::size_t>(number(cells[1]));
    s.seconds = number(cells[2]);
    s.train_loss = number(cells[3]);
    for (std::size_t k = 4; k < header.size(); ++k) {
      const std::string& name = header[k];
      const auto starts = [&](const char* prefix) { return name.rfind(prefix, 0) == 0; };
      if (starts("gamma_")) s.gammas.push_back(number(cells[k]));
      else if (starts("lambda_")) s.multipliers.push_back(number(cells[k]));
      else if (starts("u_")) s.slacks.push_back(number(cells[k]));
      else if (cells[k].empty()) s.skip(name);
      else s.metrics[name] = number(cells[k]);
    }
    rows.push_back(std::move(s));
  }
  return rows;
}

/// For a resumed run: the summaries of the first `epochs` epochs of a CsvLogger file, which is rewritten (atomically)
/// without the rows after them — rows a run logged before it was stopped and that its last checkpoint does not cover.
inline std::vector<EpochSummary> resume_csv_log(const std::filesystem::path& path, std::size_t epochs) {
  if (epochs == 0 && !std::filesystem::exists(path)) return {};  // stopped inside its first epoch
  std::vector<EpochSummary> rows = read_csv_log(path, epochs);
  std::ifstream in(path);
  std::string text, line;
  for (std::size_t k = 0; std::getline(in, line) && k <= epochs; ++k) text += line + "\n";
  in.close();
  ACE_THROW_IF(rows.size() < epochs, io_error, "resume_csv_log: ", path.string(), " logs ", rows.size(),
               " epochs, the checkpoint ", epochs);
  rows.resize(epochs);
  io::write_file_atomically(path, text);
  return rows;
}

struct EarlyStoppingOptions {
  std::string metric = "train_loss";  // an evaluator metric, or "train_loss"
  std::size_t patience = 10;
  double min_delta = 0.0;
  bool maximize = false;  // lower is better unless set
};

/// Stops when the metric has not improved by more than `min_delta` for `patience` epochs.
class EarlyStopping {
 public:
  explicit EarlyStopping(EarlyStoppingOptions options = {}) : o_(std::move(options)) {
    ACE_THROW_IF(o_.patience == 0, invalid_argument, "EarlyStoppingOptions::patience must be >= 1");
    detail::require_non_negative(o_.min_delta, "EarlyStoppingOptions::min_delta");
  }

  template <class Trainer>
  bool on_epoch_end(Trainer&, const EpochSummary& s) {
    const auto it = s.metrics.find(o_.metric);
    ACE_THROW_IF(o_.metric != "train_loss" && it == s.metrics.end(), invalid_argument,
                 "EarlyStopping: the evaluator reports no metric '", o_.metric, "'");
    const double value = (it == s.metrics.end() ? s.train_loss : it->second) * (o_.maximize ? -1.0 : 1.0);
    if (value < best_ - o_.min_delta) {
      best_ = value;
      waited_ = 0;
      return false;
    }
    return ++waited_ >= o_.patience;
  }

 private:
  EarlyStoppingOptions o_;
  double best_ = std::numeric_limits<double>::infinity();
  std::size_t waited_ = 0;
};

/// Records every epoch and writes SVG plots into `directory` at the end of the run (and every `every` epochs):
/// loss.svg (train loss and every metric whose name contains "loss" or "mse"), gamma.svg (each γ_i),
/// multipliers.svg (each λ_i) and, for resilient runs, slacks.svg (each u_i). `labels` names the constrained
/// parameters in the trainer's order (e.g. "layer 0 h"): series are "<symbol> <label>"; without labels, "<symbol>_i".
class PlotWriter {
 public:
  explicit PlotWriter(std::filesystem::path directory, std::size_t every = 0, std::vector<std::string> labels = {})
      : dir_(std::move(directory)), every_(every), labels_(std::move(labels)) {}

  template <class Trainer>
  void on_epoch_end(Trainer&, const EpochSummary& s) {
    history_.push_back(s);
    if (every_ > 0 && s.epoch % every_ == 0) write();
  }
  template <class Trainer>
  void on_fit_end(Trainer&, const FitResult&) {
    if (!history_.empty()) write();
  }
  const std::vector<EpochSummary>& history() const { return history_; }

  void write() const {
    io::create_directories(dir_);
    std::vector<double> epochs;
    for (const auto& s : history_) epochs.push_back(static_cast<double>(s.epoch));
    io::LinePlot loss{"Loss", "epoch", "loss", true, {}};
    loss.series.push_back({"train", epochs, column([](const EpochSummary& s) { return s.train_loss; })});
    for (const auto& [name, value] : history_.back().metrics)
      if (name.find("loss") != std::string::npos || name.find("mse") != std::string::npos)
        loss.series.push_back({name, epochs, column([&n = name](const EpochSummary& s) { return metric(s, n); })});
    io::write_svg(dir_ / "loss.svg", loss);
    write_family("gamma.svg", "Relaxation gammas", "gamma", [](const EpochSummary& s) -> const auto& {
      return s.gammas;
    }, epochs);
    write_family("multipliers.svg", "Dual multipliers", "lambda", [](const EpochSummary& s) -> const auto& {
      return s.multipliers;
    }, epochs);
    if (!history_.back().slacks.empty())
      write_family("slacks.svg", "Resilient slacks", "u", [](const EpochSummary& s) -> const auto& {
        return s.slacks;
      }, epochs);
  }

 private:
  static double metric(const EpochSummary& s, const std::string& name) {
    const auto it = s.metrics.find(name);
    return it == s.metrics.end() ? std::numeric_limits<double>::quiet_NaN() : it->second;
  }
  template <class F>
  std::vector<double> column(F&& f) const {
    std::vector<double> v;
    for (const auto& s : history_) v.push_back(f(s));
    return v;
  }
  template <class F>
  void write_family(const char* file, const char* title, const char* symbol, F&& values,
                    const std::vector<double>& epochs) const {
    io::LinePlot plot{title, "epoch", symbol, false, {}};
    const std::size_t n = values(history_.back()).size();
    for (std::size_t i = 0; i < n; ++i)
      plot.series.push_back({i < labels_.size() ? detail::concat(symbol, " ", labels_[i])
                                                : detail::concat(symbol, "_", i),
                             epochs, column([&](const EpochSummary& s) {
                               const auto& v = values(s);
                               return i < v.size() ? v[i] : std::numeric_limits<double>::quiet_NaN();
                             })});
    io::write_svg(dir_ / file, plot);
  }

  std::filesystem::path dir_;
  std::size_t every_;
  std::vector<std::string> labels_;
  std::vector<EpochSummary> history_;
};

}  // namespace ace
