// SPDX-License-Identifier: MIT
// What the layer batteries share: random batches, building layers, and the gradient and equivariance checks with a
// tolerance per scalar type, on any backend.
#pragma once

#include <type_traits>

#include "ace/nn/check.hpp"
#include "ace/nn/module.hpp"
#include "ace/rep/concepts.hpp"
#include "backend_support.hpp"

namespace ace::test {

/// A layer built from the generator if it takes one, default-built otherwise.
template <class M>
M make_module(Rng& rng) {
  if constexpr (std::is_constructible_v<M, Rng&>) return M(rng);
  else return M{};
}

/// A host [batch, S::dim] batch of standard normal entries.
template <class T, class S>
Tensor<T, 2> random_batch(std::size_t batch, Rng& rng) {
  Tensor<T, 2> x({batch, S::dim});
  for (auto& v : x) v = static_cast<T>(rng.normal());
  return x;
}

/// The same in backend B's memory.
template <class B, class T, class S>
tensor_t<B, T, 2> random_input(std::size_t batch, Rng& rng) {
  return to_backend<B>(random_batch<T, S>(batch, rng));
}

/// Normal values (standard deviation `scale`) for every parameter of a layer (e.g. non-zero biases, so every path is
/// exercised).
template <class M>
void randomise_parameters(M& layer, Rng& rng, double scale = 1.0) {
  using T = typename M::scalar;
  layer.for_each_parameter([&](ParamView<T> p) {
    std::vector<T> v(p.value.size());
    for (auto& e : v) e = static_cast<T>(scale * rng.normal());
    from_host_vector<backend_of_t<M>>(v, p.value);
  });
}

/// Runs check_gradients (double) and checks the worst relative error, reporting each parameter's.
template <class M>
void check_module_gradients(M& module, const layer_tensor_t<M>& x, std::uint64_t seed, double tolerance = 1e-6) {
  const GradientCheckResult r = check_gradients(module, x, seed, 1e-6, difference_every);
  for (const auto& [name, err] : r.parameters) UNSCOPED_INFO(name << " gradient error " << err);
  UNSCOPED_INFO("input gradient error " << r.input << " on " << M::backend::name);
  CHECK(r.max_error() < tolerance);
}

/// Runs check_equivariance and checks the error relative to the output norm against a tolerance per scalar type.
template <class M>
void check_module_equivariance(M& module, const layer_tensor_t<M>& x, std::uint64_t seed,
                               std::size_t random_elements = 16) {
  using T = typename M::scalar;
  const double err = check_equivariance(module, x, seed, random_elements);
  UNSCOPED_INFO(space_name<typename M::input>() << " -> " << space_name<typename M::output>() << " on "
                                                << M::backend::name << ": error " << err);
  CHECK(err < (std::is_same_v<T, float> ? 1e-5 : 1e-12));
}

/// A graph network's gradients (forward(GraphInput) -> positions, backward(dL/dpositions)) against central
/// differences of L = Σ R ⊙ net(b) for a seeded random R: the largest relative gap over every parameter entry and, when
/// the network has position_gradient(), over every input position entry. Parameters with a gap above 1e-5 are reported.
template <class Net, class Batch>
double graph_gradient_error(Net& net, Batch& b, std::uint64_t seed) {
  using B = typename Net::backend;
  Rng rng(seed);
  const auto& y0 = net.forward(b.input());
  std::vector<double> r(y0.size());
  for (auto& w : r) w = rng.normal();
  auto weights = zeros<B, double>(y0.shape()[0], y0.shape()[1]);
  from_host_vector<B>(r, view(weights));
  const auto loss = [&] { return B::dot(view(net.forward(b.input())), view(std::as_const(weights))); };
  zero_grad(net);
  net.forward(b.input());
  net.backward(weights);
  std::vector<std::vector<double>> analytic;
  net.for_each_parameter([&](ParamView<double> p) { analytic.push_back(to_host_vector<B>(p.grad)); });
  double worst = 0.0;
  if constexpr (requires { net.position_gradient(); })
    worst = central_difference_gap<B>(flat(b.x), to_host_vector<B>(flat(net.position_gradient())), loss, 1e-6,
                                      difference_every);
  std::size_t index = 0;
  net.for_each_parameter([&](ParamView<double> p) {
    const double err = central_difference_gap<B>(p.value, analytic[index++], loss, 1e-6, difference_every);
    if (err > 1e-5) UNSCOPED_INFO(p.name << ": gap " << err);
    worst = std::max(worst, err);
  });
  return worst;
}

}  // namespace ace::test
