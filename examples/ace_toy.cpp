// SPDX-License-Identifier: MIT
// ACE end to end on a toy problem: learn y = x W_eqᵀ + δ x W_neqᵀ, where W_eq commutes with the rotations of C4 and
// δ breaks the symmetry, with one relaxed layer f_eq + γ f_neq. Runs ACE-equality and ACE-resilient with the same
// seed and writes <out>/<method>/log.csv and loss/gamma/multiplier/slack plots (SVG).
// Usage: ace_toy [out_dir] [delta] [augmented]      (defaults: ace_toy_out, 0.5, 0: no augmented-Lagrangian term)
#include <ace/constrained.hpp>
#include <ace/group.hpp>
#include <ace/nn.hpp>
#include <ace/optim.hpp>
#include <cstdio>
#include <string>

#include "ace_toy_flags.hpp"

using namespace ace;
using G = Cyclic<4>;
using R = Multiple<Regular<G>, 2>;  // two regular C4 fields: 8 channels
using Net = Sequential<Relaxed<EquivariantLinear<float, R, R>, Linear<float, R, R>>>;
using Model = SupervisedModel<Net, MSELoss<float>>;

template <class Policy>
void run(const std::string& out, const Tensor<float, 2>& x, const Tensor<float, 2>& y, Policy policy,
         double augmented) {
  Rng rng(7);  // the same initial network and batches for every method
  Model model{Net(rng)};
  ConstrainedTrainer trainer(model, Adam<float>({.lr = 1e-2}), policy, DualSGD{.lr = 5e-2},
                             {.augmented = augmented});
  Tensor<float, 2> xb({32, R::dim}), yb({32, R::dim});
  const auto batches = [&](std::size_t epoch, auto&& step) {
    Rng order(1000 + epoch);  // per-epoch seed: reproducible and resumable
    for (int b = 0; b < 16; ++b) {
      for (std::size_t r = 0; r < 32; ++r) {
        const std::size_t i = order.below(x.shape()[0]);
        for (std::size_t c = 0; c < R::dim; ++c) {
          xb(r, c) = x(i, c);
          yb(r, c) = y(i, c);
        }
      }
      step(typename Model::batch{xb, yb});
    }
  };
  const auto evaluate = [&](EpochSummary& s) {
    model.set_relaxation(false);
    s.metrics["deployed_mse"] = model.loss({x, y});  // f_eq alone: exactly equivariant
    model.set_relaxation(true);
    s.metrics["relaxed_mse"] = model.loss({x, y});  // f_eq + gamma f_neq
    s.metrics["equivariance_error"] = check_equivariance(model.network(), x, 1);
  };
  const std::string dir = out + "/" + std::string(Policy::name);
  ProgressBar bar;
  CsvLogger csv(dir + "/log.csv");
  PlotWriter plots(dir);
  fit(trainer, 60, batches, evaluate, 0, bar, csv, plots);
  const EpochSummary& last = plots.history().back();
  std::printf("%s: deployed MSE %.4g, relaxed MSE %.4g, gamma %.3g, lambda %.3g -> %s\n\n", dir.c_str(),
              last.metrics.at("deployed_mse"), last.metrics.at("relaxed_mse"), last.gammas[0], last.multipliers[0],
              (dir + "/*.svg").c_str());
}

int main(int argc, char** argv) {
  try {
    const experiment::AceToyConfig args = experiment::parse_ace_toy({argv + 1, argv + argc});
    Rng rng(1);
    const EquivariantBasis& basis = equivariant_basis<R, R>();
    const Eigen::VectorXd c = normal_matrix(static_cast<Eigen::Index>(basis.size()), 1, rng).col(0) / 3.0;
    const Eigen::MatrixXd w = basis.expand(c) + double(args.delta) * normal_matrix(R::dim, R::dim, rng) / 3.0;
    Tensor<float, 2> x({1024, R::dim}), y({1024, R::dim});
    for (auto& v : x) v = static_cast<float>(rng.normal());
    as_matrix(y) = as_matrix(x) * w.transpose().cast<float>();
    run(args.out, x, y, EqualityConstraint{}, args.augmented);
    run(args.out, x, y, ResilientConstraint{.rho = 1.0}, args.augmented);
  } catch (const experiment::HelpRequested& help) {
    std::fputs(help.usage.c_str(), stdout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ace_toy: %s\n", e.what());
    return 1;
  }
  return 0;
}
