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
  const GradientCheckResult r = check_gradients(module, x, seed);
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

}  // namespace ace::test
