// SPDX-License-Identifier: MIT
// The O(3)-equivariant linear layer: channels mixed within each irrep (docs/steerable.md).
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "ace/error.hpp"
#include "ace/nn/module.hpp"
#include "ace/nn/steerable/tensor_product.hpp"
#include "ace/random.hpp"
#include "ace/rep/o3.hpp"

namespace ace {

namespace detail {
/// Whether every term of Out has a term of In with the same irrep.
template <class In, class Out>
constexpr bool o3_linear_reached() {
  for (const O3Term& c : Out::term_list) {
    bool reached = false;
    for (const O3Term& a : In::term_list) reached = reached || a.same_irrep(c);
    if (!reached) return false;
  }
  return true;
}
}  // namespace detail

/// y_c = Σ_{a: irrep of a = irrep of c} x_a W_ac (+ bias on 0e terms): the general O(3)-equivariant linear map
/// between In and Out (Schur: irreps of different type or parity do not mix; copies of one irrep mix freely). In the
/// layout of backend/o3_ops.hpp every component k of a term is a [rows, m] view, so each (a, c) pair is one GEMM per
/// component. Weights W_ac [m_a, m_c] and the biases start U(-1/√K_c, 1/√K_c), K_c = Σ_a m_a (PyTorch's nn.Linear
/// for that fan-in; equal to O3TensorProduct with the attribute 1 x 0e set to 1). A Module. Parameters "weight"
/// (the W_ac row-major, in order of c then a) and "bias" (the 0e terms').
template <class In, class Out, class T, Backend B = Cpu>
class O3Linear {
  static_assert(detail::is_o3_irreps<In> && detail::is_o3_irreps<Out>, "ace: O3Linear<In, Out, T, B> takes two "
                "O3Irreps types.");
  static_assert(detail::o3_linear_reached<In, Out>(), "ace: O3Linear: a term of Out has no term of In with the same "
                "degree and parity, so an equivariant linear map can only give it zero; remove it or add that irrep "
                "to In.");

  struct Pair {
    std::size_t a, c, weight;
  };
  static constexpr auto pair_list = [] {
    constexpr std::size_t n = [] {
      std::size_t k = 0;
      for (const O3Term& c : Out::term_list)
        for (const O3Term& a : In::term_list) k += a.same_irrep(c) ? 1 : 0;
      return k;
    }();
    std::array<Pair, n> pairs{};
    std::size_t k = 0, w = 0;
    for (std::size_t c = 0; c < Out::terms; ++c)
      for (std::size_t a = 0; a < In::terms; ++a)
        if (In::term_list[a].same_irrep(Out::term_list[c])) {
          pairs[k++] = {a, c, w};
          w += In::term_list[a].count * Out::term_list[c].count;
        }
    return pairs;
  }();

 public:
  using scalar = T;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;
  using input = In;
  using output = Out;
  static constexpr std::size_t weights = [] {
    std::size_t w = 0;
    for (const Pair& p : pair_list) w += In::term_list[p.a].count * Out::term_list[p.c].count;
    return w;
  }();
  static constexpr std::size_t biases = detail::o3_scalar_entries<Out>();

  O3Linear() = default;
  explicit O3Linear(Rng& rng) : weight_({1, weights}), bias_({1, biases}) {
    std::vector<T> w(weights), b;
    for (std::size_t c = 0; c < Out::terms; ++c) {
      std::size_t fan_in = 0;
      for (const Pair& p : pair_list)
        if (p.c == c) fan_in += In::term_list[p.a].count;
      const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
      for (const Pair& p : pair_list)
        if (p.c == c)
          for (std::size_t i = 0; i < In::term_list[p.a].count * Out::term_list[c].count; ++i)
            w[p.weight + i] = static_cast<T>(rng.uniform(-bound, bound));
      if (Out::term_list[c].l == 0 && Out::term_list[c].parity == Parity::even)
        for (std::size_t i = 0; i < Out::term_list[c].count; ++i) b.push_back(static_cast<T>(rng.uniform(-bound, bound)));
    }
    weight_.assign(w);
    if (biases > 0) bias_.assign(b);
  }

  const tensor& forward(const tensor& x) { return forward(view(x)); }
  const tensor& forward(MatrixRef<const T> x) {
    ACE_THROW_IF(x.cols != In::dim, shape_error, "O3Linear::forward: expected input of shape [batch, ", In::dim, "] (",
                 In::name(), "), got [", x.rows, ", ", x.cols, "]");
    x_ = x;
    ensure_shape(y_, x.rows, Out::dim);
    const auto y = view(y_);
    std::array<bool, Out::terms> written{};
    for (const Pair& p : pair_list) {  // the first pair of each output term writes, the others accumulate
      for (std::size_t k = 0; k < components(p.c); ++k)
        B::gemm(Transpose::no, Transpose::no, T(1), component<In>(x, p.a, k), block(view(std::as_const(weight_.value)), p),
                written[p.c] ? T(1) : T(0), component<Out>(y, p.c, k));
      written[p.c] = true;
    }
    add_biases(y);
    return y_;
  }
  const tensor& backward(const tensor& dy) {
    ensure_shape(dx_, x_.rows, In::dim);
    backward_into(view(dy), view(dx_));
    return dx_;
  }
  /// Accumulates the parameter gradients; dx overwritten in a view of the caller's.
  void backward_into(MatrixRef<const T> dy, MatrixRef<T> dx) {
    ACE_THROW_IF(dy.rows != x_.rows || dy.cols != Out::dim, shape_error, "O3Linear::backward: expected a gradient of "
                 "shape [", x_.rows, ", ", Out::dim, "], got [", dy.rows, ", ", dy.cols, "]");
    B::fill(dx, T(0));
    for (const Pair& p : pair_list)
      for (std::size_t k = 0; k < components(p.c); ++k) {
        const auto dyk = component<Out>(dy, p.c, k);
        B::gemm(Transpose::yes, Transpose::no, T(1), component<In>(x_, p.a, k), dyk, T(1), block(view(weight_.grad), p));
        B::gemm(Transpose::no, Transpose::yes, T(1), dyk, block(view(std::as_const(weight_.value)), p), T(1),
                component<In>(dx, p.a, k));
      }
    std::size_t at = 0;
    for (std::size_t c = 0; c < Out::terms; ++c)
      if (Out::term_list[c].l == 0 && Out::term_list[c].parity == Parity::even) {
        B::sum_rows(component<Out>(dy, c, 0), T(1), view(bias_.grad).columns(at, Out::term_list[c].count));
        at += Out::term_list[c].count;
      }
  }

  template <class F>
  void for_each_parameter(F&& f) {
    f(weight_.view("weight", Role::weight));
    if (biases > 0) f(bias_.view("bias", Role::bias));
  }
  static std::string signature() { return detail::concat("O3Linear(", In::name(), " -> ", Out::name(), ")"); }

 private:
  static constexpr std::size_t components(std::size_t c) { return static_cast<std::size_t>(2 * Out::term_list[c].l + 1); }
  template <class S, class V>
  static MatrixRef<V> component(MatrixRef<V> x, std::size_t term, std::size_t k) {
    constexpr auto offsets = detail::o3_offsets<S>();
    return x.columns(offsets[term] + k * S::term_list[term].count, S::term_list[term].count);
  }
  template <class V>
  static MatrixRef<V> block(MatrixRef<V> row, const Pair& p) {
    return MatrixRef<V>{row.data + p.weight, In::term_list[p.a].count, Out::term_list[p.c].count,
                        Out::term_list[p.c].count};
  }
  void add_biases(MatrixRef<T> y) {
    std::size_t at = 0;
    for (std::size_t c = 0; c < Out::terms; ++c)
      if (Out::term_list[c].l == 0 && Out::term_list[c].parity == Parity::even) {
        B::add_row(component<Out>(y, c, 0), view(std::as_const(bias_.value)).columns(at, Out::term_list[c].count));
        at += Out::term_list[c].count;
      }
  }

  detail::Parameter<B, T> weight_, bias_;
  MatrixRef<const T> x_;
  tensor y_, dx_;
};

}  // namespace ace
