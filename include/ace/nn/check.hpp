// SPDX-License-Identifier: MIT
// The verification harness: gradients against central differences, and equivariance on generators and random group
// elements, on any backend. Use it on your own modules exactly as ace's tests use it on ace's.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ace/error.hpp"
#include "ace/nn/core/sparse_map.hpp"
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
inline void check_sample_stride(std::size_t every) {
  ACE_THROW_IF(every == 0, invalid_argument, "gradient check: every = 0; pass 1 to check every entry, n > 1 to check "
               "every n-th");
}
}  // namespace detail

/// The worst relative gap (max over entries of |a - n| / max(1, |a|, |n|)) between `analytic` and the central
/// differences (loss(v + step) - loss(v - step)) / (2 step) of `loss()` with respect to each entry v of `values`
/// (host memory); every entry is restored. The building block of check_gradients, for models that are not Modules
/// (graphs, point clouds). `every` > 1 checks a fixed sample, the entries 0, every, 2 every, ... (two loss
/// evaluations per entry checked: large models under slow builds); 0 throws invalid_argument.
template <class F>
double central_difference_gap(std::span<double> values, std::span<const double> analytic, F&& loss,
                              double step = 1e-6, std::size_t every = 1) {
  detail::check_sample_stride(every);
  double worst = 0.0;
  for (std::size_t i = 0; i < values.size(); i += every) {
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

/// The same for entries in backend B's memory (a parameter view): each entry is moved through the backend.
template <Backend B, class F>
double central_difference_gap(VectorRef<double> values, std::span<const double> analytic, F&& loss,
                              double step = 1e-6, std::size_t every = 1) {
  detail::check_sample_stride(every);
  std::vector<double> host = to_host_vector<B>(values);
  double worst = 0.0;
  for (std::size_t i = 0; i < host.size(); i += every) {
    const auto entry = values.slice(i, 1).row();
    const auto set = [&](double v) { B::from_host(std::span<const double>(&v, 1), entry); };
    set(host[i] + step);
    const double up = loss();
    set(host[i] - step);
    const double down = loss();
    set(host[i]);
    worst = std::max(worst, detail::relative_gap(analytic[i], (up - down) / (2 * step)));
  }
  return worst;
}

/// Checks layer.backward against central differences of L(x) = Σ R ⊙ f(x) with a seeded random R, for every input
/// entry and every parameter entry (or every `every`-th, as central_difference_gap), on the layer's backend. Double
/// precision only (float differences are too coarse to trust).
template <Layer M>
GradientCheckResult check_gradients(M& layer, const layer_tensor_t<M>& x, std::uint64_t seed, double step = 1e-6,
                                    std::size_t every = 1) {
  static_assert(std::same_as<typename M::scalar, double>,
                "ace: check_gradients runs in double precision; instantiate the layer with double.");
  using B = typename M::backend;
  Rng rng(seed);
  const layer_tensor_t<M>& y0 = layer.forward(x);
  std::vector<double> r(y0.size());
  for (auto& v : r) v = rng.normal();
  auto weights = zeros<B, double>(y0.shape()[0], y0.shape()[1]);
  from_host_vector<B>(r, view(weights));
  layer_tensor_t<M> xp = x;
  auto loss = [&] { return B::dot(view(layer.forward(xp)), view(std::as_const(weights))); };

  zero_grad(layer);
  layer.forward(x);
  const std::vector<double> dx = to_host_vector<B>(flat(layer.backward(weights)));
  std::vector<std::vector<double>> analytic;
  layer.for_each_parameter([&](ParamView<double> p) { analytic.push_back(to_host_vector<B>(p.grad)); });

  GradientCheckResult result;
  result.input = central_difference_gap<B>(flat(xp), dx, loss, step, every);
  std::size_t index = 0;
  layer.for_each_parameter([&](ParamView<double> p) {
    result.parameters.emplace_back(p.name, central_difference_gap<B>(p.value, analytic[index++], loss, step, every));
  });
  layer.forward(x);  // leave the layer in the state of a forward at x
  return result;
}

namespace detail {
/// How a representation acts on a batch of row vectors (x -> x ρ(g)^T), in backend B: by moving columns (a sparse
/// map of weight-1 entries) for permutation representations, by a GEMM with ρ(g) otherwise.
template <class S, class T, class B>
class RepresentationAction {
 public:
  template <class G>
  explicit RepresentationAction(const G& g) {
    if constexpr (PermutationRepresentation<S>) {
      const auto p = S::permutation(g);  // ρ(g) e_i = e_p[i]: column p[i] of the result is column i of x
      std::vector<std::uint32_t> first(S::dim + 1), index(S::dim);
      for (std::size_t i = 0; i < S::dim; ++i) {
        index[p[i]] = static_cast<std::uint32_t>(i);
        first[i + 1] = static_cast<std::uint32_t>(i + 1);
      }
      move_ = SparseLinearMap<T, B>(first, index, std::vector<double>(S::dim, 1.0), S::dim);
    } else {
      const auto m = rep_matrix_dynamic<S>(g);
      std::vector<T> entries(S::dim * S::dim);
      for (std::size_t r = 0; r < S::dim; ++r)
        for (std::size_t c = 0; c < S::dim; ++c)
          entries[r * S::dim + c] = static_cast<T>(m(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(c)));
      matrix_ = zeros<B, T>(S::dim, S::dim);
      from_host_vector<B>(entries, view(matrix_));
    }
  }
  /// out = x ρ(g)^T (rows of x transformed).
  void apply(MatrixRef<const T> x, MatrixRef<T> out) const {
    if constexpr (PermutationRepresentation<S>) move_.apply(x, out);
    else B::gemm(Transpose::no, Transpose::yes, T(1), x, view(matrix_), T(0), out);
  }

 private:
  SparseLinearMap<T, B> move_;
  tensor_t<B, T, 2> matrix_;
};
}  // namespace detail

/// max over the generators of G and `random_elements` seeded random elements g of
/// ||f(x ρ_in(g)^T) - f(x) ρ_out(g)^T||_F / max(||f(x)||_F, tiny): the error relative to the output norm
/// (batch rows are feature vectors). Computed in the module's backend (permutation representations move entries,
/// others multiply by ρ(g)); 0 up to rounding for an equivariant module.
template <Module M>
double check_equivariance(M& module, const layer_tensor_t<M>& x, std::uint64_t seed,
                          std::size_t random_elements = 8) {
  using InSpace = typename M::input;
  using OutSpace = typename M::output;
  static_assert(Representation<InSpace> && Representation<OutSpace> && same_group_v<InSpace, OutSpace>,
                "ace: check_equivariance needs a module whose input and output are representations of one group.");
  using Grp = typename InSpace::group;
  using T = typename M::scalar;
  using B = typename M::backend;
  const auto generators = Grp::generators();
  std::vector<element_t<Grp>> elements(std::begin(generators), std::end(generators));
  Rng rng(seed);
  for (std::size_t i = 0; i < random_elements; ++i) elements.push_back(Grp::element(rng.below(Grp::order)));

  const std::size_t rows = x.shape()[0];
  const layer_tensor_t<M> y = module.forward(x);
  const double scale = std::max(std::sqrt(B::sum_squares(view(y))), 1e-30);
  auto xg = zeros<B, T>(rows, InSpace::dim), expected = zeros<B, T>(rows, OutSpace::dim);
  double worst = 0.0;
  for (const auto& g : elements) {
    detail::RepresentationAction<InSpace, T, B>(g).apply(view(x), view(xg));
    detail::RepresentationAction<OutSpace, T, B>(g).apply(view(y), view(expected));
    B::axpy(T(-1), view(module.forward(xg)), view(expected));
    worst = std::max(worst, std::sqrt(B::sum_squares(view(std::as_const(expected)))) / scale);
  }
  module.forward(x);
  return worst;
}

}  // namespace ace
