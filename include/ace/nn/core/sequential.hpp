// SPDX-License-Identifier: MIT
// Sequential<M...>: a model whose layers, shapes and symmetries are fixed at compile time.
#pragma once

#include <concepts>
#include <cstddef>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "ace/nn/module.hpp"
#include "ace/random.hpp"

namespace ace {

namespace detail {
/// Instantiated for every adjacent pair; on a mismatch the compiler's context names Left and Right.
template <class Left, class Right>
struct adjacent_modules {
  static_assert(std::same_as<typename Left::output, typename Right::input>,
                "ace: Sequential: a module's output space differs from the next module's input space (the two "
                "module types are the template arguments of ace::detail::adjacent_modules<Left, Right> in the "
                "context above); make them the same representation or Features<N>.");
  static_assert(std::same_as<typename Left::scalar, typename Right::scalar>,
                "ace: Sequential: adjacent modules use different scalar types (float vs double).");
  static_assert(std::same_as<typename Left::backend, typename Right::backend>,
                "ace: Sequential: adjacent modules run on different backends; build every layer with the same one.");
  static constexpr bool value = true;
};

template <class... M>
constexpr bool chain_agrees() {
  return []<std::size_t... I>(std::index_sequence<I...>) {
    using Chain = std::tuple<M...>;
    return (adjacent_modules<std::tuple_element_t<I, Chain>, std::tuple_element_t<I + 1, Chain>>::value && ...);
  }(std::make_index_sequence<sizeof...(M) - 1>{});
}

template <class M>
M make_with(Rng& rng) {
  if constexpr (std::is_constructible_v<M, Rng&>) return M(rng);
  else return M{};
}
}  // namespace detail

/// Layers applied in order: forward runs M0, M1, ...; backward runs them in reverse. Adjacent modules must agree on
/// the feature space (the same Representation or Features<N>) and scalar type, checked at compile time. Parameters
/// are named "<index>.<name>", e.g. "0.weight".
template <class M0, class... Ms>
class Sequential {
  static_assert(detail::chain_agrees<M0, Ms...>());

 public:
  using scalar = typename M0::scalar;
  using backend = typename M0::backend;
  using tensor = tensor_t<backend, scalar, 2>;
  using input = typename M0::input;
  using output = typename std::tuple_element_t<sizeof...(Ms), std::tuple<M0, Ms...>>::output;
  static constexpr std::size_t size = 1 + sizeof...(Ms);

  /// Every layer constructed from the same generator, in order (layers without parameters are default-built).
  explicit Sequential(Rng& rng) : layers_{detail::make_with<M0>(rng), detail::make_with<Ms>(rng)...} {}
  explicit Sequential(M0 m0, Ms... ms) : layers_{std::move(m0), std::move(ms)...} {}

  const tensor& forward(const tensor& x) { return forward_from<0>(x); }
  const tensor& backward(const tensor& dy) { return backward_from<size - 1>(dy); }

  template <class F>
  void for_each_parameter(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (detail::for_each_prefixed(std::get<I>(layers_), std::to_string(I), f), ...);
    }(std::make_index_sequence<size>{});
  }

  /// Calls f(BufferView) for the buffers of every layer that has them (batch-norm statistics), named
  /// "<index>.<name>".
  template <class F>
    requires(HasBuffers<M0> || (HasBuffers<Ms> || ...))
  void for_each_buffer(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (
          [&] {
            if constexpr (HasBuffers<std::tuple_element_t<I, std::tuple<M0, Ms...>>>)
              detail::for_each_buffer_prefixed(std::get<I>(layers_), std::to_string(I), f);
          }(),
          ...);
    }(std::make_index_sequence<size>{});
  }

  /// Calls f(layer) for every layer, in order.
  template <class F>
  void for_each_module(F&& f) {
    std::apply([&](auto&... layer) { (f(layer), ...); }, layers_);
  }

  /// "[<layer 0>; <layer 1>; ...]" with each layer's module_signature.
  static std::string signature() {
    std::string s = "[" + module_signature<M0>();
    ((s += "; " + module_signature<Ms>()), ...);
    return s + "]";
  }

  template <std::size_t I>
  auto& get() {
    return std::get<I>(layers_);
  }
  template <std::size_t I>
  const auto& get() const {
    return std::get<I>(layers_);
  }

 private:
  template <std::size_t I>
  const tensor& forward_from(const tensor& x) {
    const tensor& y = std::get<I>(layers_).forward(x);
    if constexpr (I + 1 < size) return forward_from<I + 1>(y);
    else return y;
  }
  template <std::size_t I>
  const tensor& backward_from(const tensor& dy) {
    const tensor& dx = std::get<I>(layers_).backward(dy);
    if constexpr (I > 0) return backward_from<I - 1>(dx);
    else return dx;
  }

  std::tuple<M0, Ms...> layers_;
};


}  // namespace ace
