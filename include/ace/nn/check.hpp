// SPDX-License-Identifier: MIT
// The verification harness: gradients against central differences, and equivariance on generators and random
// group elements. Use it on your own modules exactly as ace's tests use it on ace's.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ace/nn/module.hpp"
#include "ace/random.hpp"
#include "ace/rep/concepts.hpp"

namespace ace {

/// Worst disagreement between backward and central differences: max over entries of
/// |analytic - numeric| / max(1, |analytic|, |numeric|).
struct GradientCheckResult {
  double input = 0.0;
  std::vector<std::pair<std::string, double>> parameters;
  double max_error() const {
    double m = input;
    for (const auto& p : parameters) m = std::max(m, p.second);
    return m;
  }
};

namespace detail {
inline double relative_gap(double a, double b) {
  return std::abs(a - b) / std::max({1.0, std::abs(a), std::abs(b)});
}
}  // namespace detail

/// The worst relative gap (max over entries of |a - n| / max(1, |a|, |n|)) between `analytic` and the central
/// differences (loss(v + step) - loss(v - step)) / (2 step) of `loss()` with respect to each entry v of `values`;
/// every entry is restored. The building block of check_gradients, for models that are not Modules (graphs, point
/// clouds).
template <class F>
double central_difference_gap(std::span<double> values, std::span<const double> analytic, F&& loss,
                              double step = 1e-6) {
  double worst = 0.0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double keep = values[i];
    values[i] = keep + step;
    const double up = loss();
    values[i] = keep - step;
    const double down = loss();
    values[i] = keep;
    worst = std::max(worst, detail::relative_gap(analytic[i], (up - down) / (2 * step)));
  }
  return worst;
}

/// Checks module.backward against central differences of L(x) = Σ R ⊙ f(x) with a seeded random R, for every
/// input entry and every parameter entry. Double precision only (float differences are too coarse to trust).
template <Module M>
GradientCheckResult check_gradients(M& module, const Tensor<double, 2>& x, std::uint64_t seed, double step = 1e-6) {
  static_assert(std::same_as<typename M::scalar, double>,
                "ace: check_gradients runs in double precision; instantiate the module with double.");
  Rng rng(seed);
  Tensor<double, 2> weights = module.forward(x);
  for (auto& w : weights) w = rng.normal();
  auto loss = [&](const Tensor<double, 2>& in) {
    const Tensor<double, 2>& y = module.forward(in);
    double s = 0.0;
    for (std::size_t i = 0; i < y.size(); ++i) s += y.data()[i] * weights.data()[i];
    return s;
  };

  zero_grad(module);
  module.forward(x);
  const Tensor<double, 2> dx = module.backward(weights);
  std::vector<std::vector<double>> analytic;
  module.for_each_parameter([&](ParamView<double> p) { analytic.emplace_back(p.grad.begin(), p.grad.end()); });

  GradientCheckResult result;
  Tensor<double, 2> xp = x;
  result.input = central_difference_gap({xp.data(), xp.size()}, {dx.data(), dx.size()}, [&] { return loss(xp); },
                                        step);
  std::size_t index = 0;
  module.for_each_parameter([&](ParamView<double> p) {
    result.parameters.emplace_back(p.name, central_difference_gap(p.value, analytic[index++], [&] { return loss(x); },
                                                                  step));
  });
  module.forward(x);  // leave the module in the state of a forward at x
  return result;
}

/// max over the generators of G and `random_elements` seeded random elements g of
/// ||f(x ρ_in(g)^T) - f(x) ρ_out(g)^T||_F / max(||f(x)||_F, tiny): the error relative to the output norm
/// (batch rows are feature vectors). 0 up to rounding for an equivariant module.
template <Module M>
double check_equivariance(M& module, const Tensor<typename M::scalar, 2>& x, std::uint64_t seed,
                          std::size_t random_elements = 8) {
  using InSpace = typename M::input;
  using OutSpace = typename M::output;
  static_assert(Representation<InSpace> && Representation<OutSpace> && same_group_v<InSpace, OutSpace>,
                "ace: check_equivariance needs a module whose input and output are representations of one group.");
  using Grp = typename InSpace::group;
  using Scalar = typename M::scalar;
  using DenseMatrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  const auto generators = Grp::generators();
  std::vector<element_t<Grp>> elements(std::begin(generators), std::end(generators));
  Rng rng(seed);
  for (std::size_t i = 0; i < random_elements; ++i) elements.push_back(Grp::element(rng.below(Grp::order)));

  const Tensor<Scalar, 2> y = module.forward(x);
  const double scale = std::max(static_cast<double>(as_matrix(y).template cast<double>().norm()), 1e-30);
  Tensor<Scalar, 2> xg(x.shape());
  double worst = 0.0;
  for (const auto& g : elements) {
    double err = 0.0;
    if constexpr (PermutationRepresentation<InSpace> && PermutationRepresentation<OutSpace>) {
      // Permutations move entries (images: 50 000-dimensional spaces without dense matrices): ρ(g) e_i = e_p[i].
      const auto pin = InSpace::permutation(g);
      const auto pout = OutSpace::permutation(g);
      for (std::size_t r = 0; r < x.shape()[0]; ++r)
        for (std::size_t i = 0; i < InSpace::dim; ++i) xg(r, pin[i]) = x(r, i);
      const Tensor<Scalar, 2>& yg = module.forward(xg);
      for (std::size_t r = 0; r < y.shape()[0]; ++r)
        for (std::size_t i = 0; i < OutSpace::dim; ++i) {
          const double d = static_cast<double>(yg(r, pout[i])) - static_cast<double>(y(r, i));
          err += d * d;
        }
      err = std::sqrt(err);
    } else {
      const DenseMatrix rin = rep_matrix_dynamic<InSpace>(g).template cast<Scalar>();
      const DenseMatrix rout = rep_matrix_dynamic<OutSpace>(g).template cast<Scalar>();
      as_matrix(xg) = as_matrix(x) * rin.transpose();
      const Tensor<Scalar, 2>& yg = module.forward(xg);
      err = (as_matrix(yg) - as_matrix(y) * rout.transpose()).template cast<double>().norm();
    }
    worst = std::max(worst, err / scale);
  }
  module.forward(x);
  return worst;
}

}  // namespace ace
