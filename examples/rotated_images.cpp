// SPDX-License-Identifier: MIT
// Group CNNs and ACE on Fashion-MNIST: P4-CNN (C4) and P4M-CNN (D4) trained strict (exactly equivariant), with ACE
// equality (gamma driven to 0, deployed equivariant) and ACE resilient (learned slack), against a plain CNN with
// about the same number of parameters, on (a) rotated Fashion-MNIST (train and test images rotated: the symmetry
// holds) and (b) upright Fashion-MNIST (orientation carries information: the symmetry is partial).
//
//   rotated_images [--data DIR] [--tasks rotated,upright] [--models p4,p4m,cnn] [--methods strict,equality,resilient]
//                  [--seeds 1,2,3] [--epochs N] [--train N] [--valid N] [--test N] [--batch N] [--lr X]
//                  [--dual-lr X] [--augmented C] [--rho X] [--rotation continuous|quarter] [--device cpu|cuda]
//                  [--out DIR] [--checkpoint-steps N] [--resume]
#include <ace/ace.hpp>
#include <chrono>
#include <cstdio>
#include <limits>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "experiment_support.hpp"
#include "rotated_images_flags.hpp"

namespace {

using Settings = experiment::ImagesConfig;
using ace::Image;
using ace::Layout;
using ace::Multiple;
using ace::Regular;
using ace::Trivial;
constexpr Layout CL = Layout::channels_last;
constexpr ace::ConvSpec k5 = ace::same_padding(5), k3 = ace::same_padding(3);

/// conv -> field batch norm -> ReLU (the types), the conv relaxed (a plain Conv2d branch producing the same fields),
/// on backend Bk.
template <class In, class Fiber, ace::ConvSpec S, class Bk>
struct GroupBlock {
  using conv = ace::Relaxed<ace::GroupConv2d<float, In, Fiber, S, Bk>, ace::Conv2d<float, In, Fiber, S, Bk>>;
  using out = typename conv::output;
  using norm = ace::FieldBatchNorm<float, out, Bk>;
  using relu = ace::Pointwise<ace::ReLUOp, float, out, Bk>;
};

/// P4-CNN / P4M-CNN: lift (k5) -> pool -> group conv (k5) -> pool -> group conv (k3) -> pool over the group and the
/// grid -> linear classifier on invariant features. F1, F2, F3 regular fields per layer.
template <class G, std::size_t F1, std::size_t F2, std::size_t F3, class Bk>
struct GroupCnn {
  using X = Image<Multiple<Trivial<G>, 1>, 28, 28, CL>;
  using B1 = GroupBlock<X, Multiple<Regular<G>, F1>, k5, Bk>;
  using P1 = ace::MaxPool2d<float, typename B1::out, 2, Bk>;
  using B2 = GroupBlock<typename P1::output, Multiple<Regular<G>, F2>, k5, Bk>;
  using P2 = ace::MaxPool2d<float, typename B2::out, 2, Bk>;
  using B3 = GroupBlock<typename P2::output, Multiple<Regular<G>, F3>, k3, Bk>;
  using GP = ace::GroupMaxPool<float, typename B3::out, Bk>;
  using Net = ace::Sequential<typename B1::conv, typename B1::norm, typename B1::relu, P1, typename B2::conv,
                              typename B2::norm, typename B2::relu, P2, typename B3::conv, typename B3::norm,
                              typename B3::relu, GP, ace::GlobalAvgPool<float, typename GP::output, Bk>,
                              ace::Linear<float, Multiple<Trivial<G>, F3>, ace::Features<10>, Bk>>;
};

/// The plain CNN with the same layout and about the same parameters as the P4-CNN (C = 2F channels).
template <std::size_t C1, std::size_t C2, std::size_t C3, class Bk>
struct PlainCnn {
  using X = Image<ace::Features<1>, 28, 28, CL>;
  using L1 = ace::Conv2d<float, X, ace::Features<C1>, k5, Bk>;
  using P1 = ace::MaxPool2d<float, typename L1::output, 2, Bk>;
  using L2 = ace::Conv2d<float, typename P1::output, ace::Features<C2>, k5, Bk>;
  using P2 = ace::MaxPool2d<float, typename L2::output, 2, Bk>;
  using L3 = ace::Conv2d<float, typename P2::output, ace::Features<C3>, k3, Bk>;
  using Net = ace::Sequential<
      L1, ace::FieldBatchNorm<float, typename L1::output, Bk>, ace::Pointwise<ace::ReLUOp, float, typename L1::output, Bk>,
      P1, L2, ace::FieldBatchNorm<float, typename L2::output, Bk>,
      ace::Pointwise<ace::ReLUOp, float, typename L2::output, Bk>, P2, L3,
      ace::FieldBatchNorm<float, typename L3::output, Bk>, ace::Pointwise<ace::ReLUOp, float, typename L3::output, Bk>,
      ace::GlobalAvgPool<float, typename L3::output, Bk>, ace::Linear<float, ace::Features<C3>, ace::Features<10>, Bk>>;
};

/// The three networks on backend Bk.
template <class Bk>
struct Nets {
  using P4 = typename GroupCnn<ace::Cyclic<4>, 4, 8, 16, Bk>::Net;
  using P4M = typename GroupCnn<ace::Dihedral<4>, 3, 6, 12, Bk>::Net;
  using Cnn = typename PlainCnn<8, 16, 32, Bk>::Net;
};


/// A split as network inputs: images [n, 784] (one channel: both layouts agree) and labels.
struct Split {
  ace::Tensor<float, 2> x;
  std::vector<std::size_t> y;
};

Split take(const ace::ImageSet& set, std::size_t first, std::size_t count) {
  ACE_THROW_IF(first + count > set.size(), ace::invalid_argument, "asked for images [", first, ", ", first + count,
               ") of a set of ", set.size());
  Split s{ace::Tensor<float, 2>({count, 784}), {}};
  std::copy(set.image(first), set.image(first) + count * 784, s.x.data());
  for (std::size_t i = 0; i < count; ++i) s.y.push_back(set.labels[first + i]);
  return s;
}

struct Task {
  std::string name;
  Split train, valid, test;
};

struct RunResult {
  std::string task, model, method;
  std::uint64_t seed = 0;
  double test_accuracy = 0.0, best_valid = 0.0, rotation_error = 0.0, flip_error = 0.0, max_gamma = 0.0;
  std::size_t best_epoch = 0, parameters = 0;
  double seconds = 0.0;
  std::vector<double> valid_curve;
};

/// Accuracy over a split, evaluated in chunks of 500 images (moved to the model's backend; the logits come back).
template <class Model>
double accuracy(Model& model, const Split& s, ace::Tensor<float, 2>& chunk) {
  using Bk = typename Model::backend;
  std::size_t correct = 0;
  const std::size_t n = s.y.size();
  for (std::size_t first = 0; first < n; first += 500) {
    const std::size_t count = std::min<std::size_t>(500, n - first);
    ace::ensure_shape(chunk, count, 784);
    std::copy(s.x.data() + first * 784, s.x.data() + (first + count) * 784, chunk.data());
    const auto input = ace::to_backend<Bk>(chunk);
    const ace::Tensor<float, 2> z = ace::to_host_tensor<Bk>(model.network().forward(input));
    for (std::size_t i = 0; i < count; ++i) {
      const float* row = z.data() + i * 10;
      correct += static_cast<std::size_t>(std::max_element(row, row + 10) - row) == s.y[first + i];
    }
  }
  return static_cast<double>(correct) / static_cast<double>(n);
}

/// The largest relative change of the logits ||f(g x) - f(x)|| / ||f(x)|| over the quarter turns (g in C4) or the
/// flip (mirror image), on the probe images: 0 up to rounding for an invariant model.
template <class Model>
std::pair<double, double> invariance_errors(Model& model, const ace::Tensor<float, 2>& probe) {
  using Bk = typename Model::backend;
  const auto logits = [&](const ace::Tensor<float, 2>& images) {
    const auto input = ace::to_backend<Bk>(images);
    return ace::to_host_tensor<Bk>(model.network().forward(input));
  };
  const ace::Tensor<float, 2> reference = logits(probe);
  const double scale = std::max(1e-30, static_cast<double>(ace::as_matrix(reference).norm()));
  ace::Tensor<float, 2> moved(probe.shape());
  const auto error = [&] {
    const ace::Tensor<float, 2> moved_logits = logits(moved);
    return static_cast<double>((ace::as_matrix(moved_logits) - ace::as_matrix(reference)).norm()) / scale;
  };
  double rotation = 0.0;
  for (std::size_t q = 1; q < 4; ++q) {
    for (std::size_t i = 0; i < probe.shape()[0]; ++i)
      ace::rotate_quarter_turns(probe.data() + i * 784, moved.data() + i * 784, 28, 28, q);
    rotation = std::max(rotation, error());
  }
  for (std::size_t i = 0; i < probe.shape()[0]; ++i)
    for (std::size_t r = 0; r < 28; ++r)
      for (std::size_t c = 0; c < 28; ++c) moved(i, r * 28 + c) = probe(i, r * 28 + 27 - c);
  return {rotation, error()};
}

/// One training run of network Net (its backend: --device). The training images move to the backend once; each
/// epoch's order goes there as indices, and each batch is gathered there (the class labels come from the host).
template <class Net, class Policy, class Primal>
RunResult run_with(const Settings& c, const Task& t, const std::string& model_name, const std::string& method,
                   std::uint64_t seed, Policy policy, Primal primal) {
  using Bk = typename Net::backend;
  ace::Rng rng(seed);  // the same initial network for every method of this model and seed
  using Model = ace::SupervisedModel<Net, ace::CrossEntropyLoss<float, Bk>, std::vector<std::size_t>>;
  Model model{Net(rng)};
  const std::size_t n = t.train.y.size(), steps = n / c.batch;
  ACE_THROW_IF(steps == 0, ace::invalid_argument, "--batch ", c.batch, " is larger than the ", n, " training images");
  ace::ConstrainedTrainer trainer(model, std::move(primal), policy, ace::DualSGD{.lr = c.dual_lr},
                                  {.augmented = c.augmented, .total_steps = steps * c.epochs});
  const auto images = ace::to_backend<Bk>(t.train.x);
  auto xb = ace::zeros<Bk, float>(c.batch, 784);
  auto order_on_backend = ace::zeros<Bk, std::uint32_t>(1, n);
  std::vector<std::size_t> yb(c.batch), order(n);
  std::vector<std::uint32_t> order32(n);
  const auto batches = [&](std::size_t epoch, auto&& step) {
    ace::set_training(model.network(), true);
    std::iota(order.begin(), order.end(), 0);
    ace::Rng shuffle(seed * 1000003 + epoch);
    for (std::size_t i = n - 1; i > 0; --i) std::swap(order[i], order[shuffle.below(i + 1)]);
    std::copy(order.begin(), order.end(), order32.begin());
    Bk::from_host(std::span<const std::uint32_t>(order32), ace::view(order_on_backend));
    for (std::size_t s = 0; s < steps; ++s) {
      Bk::gather_rows(ace::view(images), ace::view(std::as_const(order_on_backend)).columns(s * c.batch, c.batch),
                      ace::view(xb));
      for (std::size_t i = 0; i < c.batch; ++i) yb[i] = t.train.y[order[s * c.batch + i]];
      step(typename Model::batch{xb, yb});
    }
  };
  RunResult r;
  r.task = t.name;
  r.model = model_name;
  r.method = method;
  r.seed = seed;
  model.for_each_parameter([&](ace::ParamView<float> p) {  // the deployed network's (no branch, no gamma)
    if (p.role != ace::Role::gamma && p.name.find("neq.") == std::string::npos) r.parameters += p.value.size();
  });
  r.best_valid = -1.0;
  ace::Tensor<float, 2> chunk, probe({64, 784});
  std::copy(t.test.x.data(), t.test.x.data() + 64 * 784, probe.data());
  const auto evaluate = [&](ace::EpochSummary& s) {
    trainer.deploy();
    ace::set_training(model.network(), false);
    const double valid = accuracy(model, t.valid, chunk);
    if (valid > r.best_valid) {
      r.best_valid = valid;
      r.best_epoch = s.epoch;
      r.test_accuracy = accuracy(model, t.test, chunk);
    }
    std::tie(r.rotation_error, r.flip_error) = invariance_errors(model, probe);
    s.metrics["valid_accuracy"] = valid;
    s.metrics["test_accuracy_at_best"] = r.test_accuracy;
    s.metrics["rotation_error"] = r.rotation_error;
    s.metrics["flip_error"] = r.flip_error;
    r.valid_curve.push_back(valid);
    ace::set_training(model.network(), true);
  };
  const std::string dir = ace::detail::concat(c.out, "/", t.name, "/", model_name, "-", method, "/seed", seed);
  std::printf("%s: %s %s, seed %llu (%zu parameters)\n", t.name.c_str(), model_name.c_str(), method.c_str(),
              static_cast<unsigned long long>(seed), r.parameters);
  ace::PlotWriter plots(dir, 1);
  const ace::TrainingPosition start = experiment::resume_point(dir, c.resume, trainer, [&](const ace::EpochSummary& s) {
    const double valid = s.metrics.at("valid_accuracy");  // what evaluate() recorded, from the log's exact values
    if (valid > r.best_valid) {
      r.best_valid = valid;
      r.best_epoch = s.epoch;
    }
    r.test_accuracy = s.metrics.at("test_accuracy_at_best");
    r.rotation_error = s.metrics.at("rotation_error");
    r.flip_error = s.metrics.at("flip_error");
    r.valid_curve.push_back(valid);
    plots.on_epoch_end(trainer, s);
  });
  ace::ProgressBar bar;
  ace::CsvLogger csv(dir + "/log.csv", start.epoch > 0);
  ace::Checkpointer checkpointer({.directory = dir + "/state", .metric = {}, .maximize = false,  // "last" only
                                 .every_steps = c.checkpoint_steps});
  const auto began = std::chrono::steady_clock::now();
  const ace::FitResult fr = ace::fit(trainer, experiment::epochs_left(c.epochs, start), batches, evaluate, start, bar,
                                     csv, plots, checkpointer);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  if (fr.status == ace::FitStatus::non_finite) std::printf("  %s\n", fr.message.c_str());
  r.max_gamma = plots.history().back().max_abs_gamma();
  return r;
}

/// A run with the primal optimiser --gamma-opt asks for (experiment::with_gamma_optimizer).
template <class Net, class Policy>
RunResult run(const Settings& c, const Task& t, const std::string& model_name, const std::string& method,
              std::uint64_t seed, Policy policy) {
  return experiment::with_gamma_optimizer<Policy>(
      c.gamma_opt, c.gamma_lr, ace::Adam<float, typename Net::backend>({.lr = c.lr}),
      [&](auto primal) { return run_with<Net>(c, t, model_name, method, seed, policy, std::move(primal)); });
}

template <class Net>
RunResult run_method(const Settings& c, const Task& t, const std::string& model, const std::string& m,
                     std::uint64_t seed) {
  if (m == "strict") return run<Net>(c, t, model, m, seed, ace::StrictBaseline{});
  if (m == "equality") return run<Net>(c, t, model, m, seed, ace::EqualityConstraint{});
  return run<Net>(c, t, model, m, seed, ace::ResilientConstraint{.rho = c.rho});
}

/// The runs of one model and seed on the backend --device names.
void run_model(const Settings& c, const Task& t, const std::string& model, std::uint64_t seed,
               std::vector<RunResult>& results) {
  experiment::on_device(c.device, [&]<class Bk>(std::type_identity<Bk>) {
    using N = Nets<Bk>;
    if (model == "cnn") {
      results.push_back(run<typename N::Cnn>(c, t, model, "plain", seed, ace::StrictBaseline{}));
      return;
    }
    for (const auto& m : c.methods)
      results.push_back(model == "p4" ? run_method<typename N::P4>(c, t, model, m, seed)
                                      : run_method<typename N::P4M>(c, t, model, m, seed));
  });
}

void report(const Settings& c, const std::vector<RunResult>& results) {
  std::printf("\n| task | model | method | test accuracy %% | best epoch | rotation error | flip error | max |gamma| "
              "| parameters | time (s) |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
  std::map<std::string, ace::io::LinePlot> curves;
  std::vector<std::string> seen;
  for (const auto& r : results) {
    const std::string key = r.task + "|" + r.model + "|" + r.method;
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) continue;
    seen.push_back(key);
    std::vector<double> acc, epoch, rot, flip, gamma, secs;
    for (const auto& q : results)
      if (q.task == r.task && q.model == r.model && q.method == r.method) {
        acc.push_back(100.0 * q.test_accuracy);
        epoch.push_back(static_cast<double>(q.best_epoch));
        rot.push_back(q.rotation_error);
        flip.push_back(q.flip_error);
        gamma.push_back(q.max_gamma);
        secs.push_back(q.seconds);
      }
    const auto [am, as] = experiment::mean_std(acc);
    std::printf("| %s | %s | %s | %.2f +- %.2f | %.1f | %.1e | %.1e | %.2e | %zu | %.0f |\n", r.task.c_str(),
                r.model.c_str(), r.method.c_str(), am, as, experiment::mean_std(epoch).first,
                *std::max_element(rot.begin(), rot.end()), *std::max_element(flip.begin(), flip.end()),
                experiment::mean_std(gamma).first, r.parameters, experiment::mean_std(secs).first);
    auto& plot = curves.try_emplace(r.task, ace::io::LinePlot{"Validation accuracy of the deployed model (" + r.task +
                                                                  ")", "epoch", "accuracy", false, {}})
                     .first->second;
    ace::io::Series s{r.model + " " + r.method, {}, r.valid_curve};
    for (std::size_t e = 1; e <= r.valid_curve.size(); ++e) s.x.push_back(static_cast<double>(e));
    plot.series.push_back(std::move(s));
  }
  ace::io::create_directories(c.out);
  for (const auto& [task, plot] : curves) ace::io::write_svg(c.out + "/valid_accuracy_" + task + ".svg", plot);
  std::ostringstream csv;
  csv.precision(10);
  csv << "task,model,method,seed,test_accuracy,best_valid_accuracy,best_epoch,rotation_error,flip_error,"
         "max_abs_gamma,parameters,seconds\n";
  for (const auto& r : results)
    csv << r.task << "," << r.model << "," << r.method << "," << r.seed << "," << r.test_accuracy << ","
        << r.best_valid << "," << r.best_epoch << "," << r.rotation_error << "," << r.flip_error << ","
        << r.max_gamma << "," << r.parameters << "," << r.seconds << "\n";
  ace::io::write_file_atomically(c.out + "/results.csv", csv.str());
  std::printf("\nlogs and plots: %s/<task>/<model>-<method>/seed<s>/, %s/valid_accuracy_<task>.svg, %s/results.csv\n",
              c.out.c_str(), c.out.c_str(), c.out.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  return experiment::guarded_main("rotated_images", [&] {
    const Settings c = experiment::parse_rotated_images({argv + 1, argv + argc});
    experiment::print_device(c.device, "");
    const ace::ImageSet train_file = ace::load_fashion_mnist(c.data, true);
    const ace::ImageSet test_file = ace::load_fashion_mnist(c.data, false);
    ACE_THROW_IF(c.test > test_file.size(), ace::invalid_argument, "--test ", c.test, ": the test file has ",
                 test_file.size(), " images");
    ACE_THROW_IF(c.test < 64, ace::invalid_argument, "--test ", c.test, ": at least 64 (the invariance probe)");
    std::vector<RunResult> results;
    for (const auto& name : c.tasks) {
      // Rotated: every image of both files turned by its own seeded angle (the data is rotation invariant).
      const bool rot = name == "rotated";
      const ace::ImageSet tr = ace::rotated(train_file, rot ? c.rotation : ace::Rotation::none, 11);
      const ace::ImageSet te = ace::rotated(test_file, rot ? c.rotation : ace::Rotation::none, 12);
      const Task t{name, take(tr, 0, c.train), take(tr, c.train, c.valid), take(te, 0, c.test)};
      for (std::uint64_t seed : c.seeds)
        for (const auto& model : c.models) run_model(c, t, model, seed, results);
    }
    report(c, results);
  });
}
