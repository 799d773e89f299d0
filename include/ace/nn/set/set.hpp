// SPDX-License-Identifier: MIT
// Permutation-equivariant set layers: feature spaces of sets and pairs, DeepSets, the second-order (15-basis) layer,
// and set pooling.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ace/group/symmetric.hpp"
#include "ace/nn/module.hpp"
#include "ace/random.hpp"
#include "ace/rep/basic.hpp"
#include "ace/rep/composite.hpp"

namespace ace {

namespace detail {
inline constexpr std::size_t max_symmetric_degree = 20;  // Symmetric<N> needs N! to fit in 64 bits

/// Sets of up to 20 elements are representations of Symmetric<N> (so the equivariance harness and Sequential's
/// checks apply); larger sets keep the layout without a group type.
template <std::size_t N, std::size_t F, std::size_t Order, bool HasGroup = (N <= max_symmetric_degree)>
struct SetGroup {};

template <std::size_t N, std::size_t F, std::size_t Order>
struct SetGroup<N, F, Order, true> {
  using group = Symmetric<N>;
  /// σ moves entry (i_1, ..., i_Order, c) to (σ(i_1), ..., σ(i_Order), c).
  static constexpr auto permutation(const element_t<group>& g) {
    constexpr std::size_t cells = Order == 1 ? N : N * N;
    auto p = make_permutation<cells * F>();
    for (std::size_t cell = 0; cell < cells; ++cell) {
      const std::size_t to = Order == 1 ? group::apply(g, cell)
                                        : group::apply(g, cell / N) * N + group::apply(g, cell % N);
      for (std::size_t c = 0; c < F; ++c) p[cell * F + c] = static_cast<std::uint32_t>(to * F + c);
    }
    return p;
  }
};

template <std::size_t N, std::size_t F, bool HasGroup = (N <= max_symmetric_degree)>
struct PooledSpace {
  using type = Features<F>;
};
template <std::size_t N, std::size_t F>
struct PooledSpace<N, F, true> {
  using type = Multiple<Trivial<Symmetric<N>>, F>;
};
}  // namespace detail

/// Features of a set of N elements with F channels each, stored element-major: a batch is [batch, N * F], the same
/// buffer as [batch, N, F]. Permuting the elements permutes the rows of each [N, F] block. For N <= 20 this is a
/// permutation representation of Symmetric<N> (Natural ⊗ F trivial channels).
template <std::size_t N, std::size_t F>
struct SetFeatures : detail::SetGroup<N, F, 1> {
  static_assert(N >= 1 && F >= 1, "ace: SetFeatures<N, F> needs N >= 1 elements and F >= 1 channels.");
  static constexpr std::size_t set_size = N;
  static constexpr std::size_t channels = F;
  static constexpr std::size_t dim = N * F;
  static std::string_view name() {
    static const std::string s = detail::concat("Set(", N, ")x", F);
    return s;
  }
};

/// Features on the ordered pairs (i, j) of a set of N elements (edge features, N x N matrices) with F channels,
/// stored [batch, N, N, F] as [batch, N * N * F]. A permutation σ acts by (i, j) -> (σ(i), σ(j)); for N <= 20 this
/// is a permutation representation of Symmetric<N> (Natural ⊗ Natural ⊗ F trivial channels).
template <std::size_t N, std::size_t F>
struct PairFeatures : detail::SetGroup<N, F, 2> {
  static_assert(N >= 1 && F >= 1, "ace: PairFeatures<N, F> needs N >= 1 elements and F >= 1 channels.");
  static constexpr std::size_t set_size = N;
  static constexpr std::size_t channels = F;
  static constexpr std::size_t dim = N * N * F;
  static std::string_view name() {
    static const std::string s = detail::concat("Pair(", N, ")x", F);
    return s;
  }
};

/// What pooling a set of N elements with F channels gives: F invariant channels — F copies of the trivial
/// representation of Symmetric<N> when N <= 20 (so invariance can be checked), Features<F> otherwise.
template <std::size_t N, std::size_t F>
using SetPooled = typename detail::PooledSpace<N, F>::type;

struct DeepSetsOptions {
  bool bias = true;
  /// How the set is summarised for the second term: mean (default, size-independent scale), sum or max.
  Reduce pool = Reduce::mean;
  /// Both weights ~ N(0, gain / (2 Fin)), so each output unit gets about gain * Var(x) (LeCun/He for the two terms).
  double gain = 1.0;
};

/// The DeepSets equivariant layer (Zaheer et al. 2017): y_i = x_i Λ^T + pool_j(x_j) Γ^T + b for every element i,
/// with Λ, Γ [Fout, Fin] shared by all elements, so permuting the input elements permutes the outputs. One GEMM
/// over all batch * N elements for Λ and one over the batch of pooled vectors for Γ.
/// Parameters: "weight" (Λ), "pool_weight" (Γ), "bias" (optional).
template <class T, std::size_t N, std::size_t Fin, std::size_t Fout, Backend B = Cpu>
class DeepSets {
 public:
  using scalar = T;
  using input = SetFeatures<N, Fin>;
  using output = SetFeatures<N, Fout>;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;

  explicit DeepSets(Rng& rng, DeepSetsOptions options = {})
      : lambda_({Fout, Fin}), gamma_({Fout, Fin}), bias_({1, Fout}), options_(options) {
    ACE_THROW_IF(!(options.gain > 0.0), invalid_argument, "DeepSetsOptions::gain must be > 0, got ", options.gain);
    const double sd = std::sqrt(options.gain / (2.0 * static_cast<double>(Fin)));
    std::vector<T> w(Fout * Fin);
    for (auto& v : w) v = static_cast<T>(sd * rng.normal());
    lambda_.assign(w);
    for (auto& v : w) v = static_cast<T>(sd * rng.normal());
    gamma_.assign(w);
  }

  const tensor& forward(const tensor& x) {
    require_columns(x, N * Fin, "DeepSets::forward");
    const std::size_t batch = x.shape()[0];
    x_.set(view(x));
    ensure_shape(y_, batch, N * Fout);
    ensure_shape(pooled_, batch, Fin);
    ensure_shape(z_, batch, Fout);
    if (options_.pool == Reduce::max) ensure_shape(argmax_, batch, Fin);
    const auto xs = reshaped(x, batch * N, Fin);
    const auto ys = reshaped(y_, batch * N, Fout);
    B::gemm(Transpose::no, Transpose::yes, T(1), xs, view(std::as_const(lambda_.value)), T(0), ys);
    B::segment_reduce(options_.pool, xs, N, view(pooled_), view(argmax_));
    B::gemm(Transpose::no, Transpose::yes, T(1), view(std::as_const(pooled_)), view(std::as_const(gamma_.value)), T(0),
            view(z_));
    if (options_.bias) B::add_row(view(z_), view(std::as_const(bias_.value)));
    B::segment_reduce_backward(Reduce::sum, view(std::as_const(z_)), N, {}, ys);  // y_i += z for every element
    return y_;
  }

  const tensor& backward(const tensor& dy) {
    const std::size_t batch = detail::backward_batch(x_, dy, N * Fout, "DeepSets");
    ensure_shape(dx_, batch, N * Fin);
    ensure_shape(dz_, batch, Fout);
    ensure_shape(dpooled_, batch, Fin);
    const MatrixRef<const T> xs{x_.get().data, batch * N, Fin, Fin};
    const auto dys = reshaped(dy, batch * N, Fout);
    const auto dxs = reshaped(dx_, batch * N, Fin);
    B::gemm(Transpose::yes, Transpose::no, T(1), dys, xs, T(1), view(lambda_.grad));
    B::segment_reduce(Reduce::sum, dys, N, view(dz_));  // dL/dz = Σ_i dL/dy_i
    B::gemm(Transpose::yes, Transpose::no, T(1), view(std::as_const(dz_)), view(std::as_const(pooled_)), T(1),
            view(gamma_.grad));
    if (options_.bias) B::sum_rows(view(std::as_const(dz_)), T(1), view(bias_.grad));
    B::gemm(Transpose::no, Transpose::no, T(1), dys, view(std::as_const(lambda_.value)), T(0), dxs);
    B::gemm(Transpose::no, Transpose::no, T(1), view(std::as_const(dz_)), view(std::as_const(gamma_.value)), T(0),
            view(dpooled_));
    B::segment_reduce_backward(options_.pool, view(std::as_const(dpooled_)), N, view(std::as_const(argmax_)), dxs);
    return dx_;
  }

  template <class F>
  void for_each_parameter(F&& f) {
    f(lambda_.view("weight", Role::weight));
    f(gamma_.view("pool_weight", Role::weight));
    if (options_.bias) f(bias_.view("bias", Role::bias));
  }

  const DeepSetsOptions& options() const { return options_; }

 private:
  detail::Parameter<B, T> lambda_, gamma_, bias_;
  DeepSetsOptions options_;
  detail::ForwardRef<T> x_;
  tensor y_, pooled_, z_, dx_, dz_, dpooled_;
  tensor_t<B, std::uint32_t, 2> argmax_;
};

/// Pooling over the elements of a set: [batch, N * F] -> [batch, F] by sum, mean or max, invariant to permutations
/// of the elements. The gradient of max goes to the first maximal element.
template <Reduce Kind, class T, std::size_t N, std::size_t F, Backend B = Cpu>
class SetPool {
 public:
  using scalar = T;
  using input = SetFeatures<N, F>;
  using output = SetPooled<N, F>;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;

  const tensor& forward(const tensor& x) {
    require_columns(x, N * F, "SetPool::forward");
    const std::size_t batch = x.shape()[0];
    x_.set(view(x));
    ensure_shape(y_, batch, F);
    if constexpr (Kind == Reduce::max) ensure_shape(argmax_, batch, F);
    B::segment_reduce(Kind, reshaped(x, batch * N, F), N, view(y_), view(argmax_));
    return y_;
  }
  const tensor& backward(const tensor& dy) {
    const std::size_t batch = detail::backward_batch(x_, dy, F, "SetPool");
    ensure_shape(dx_, batch, N * F);
    B::fill(view(dx_), T(0));
    B::segment_reduce_backward(Kind, view(dy), N, view(std::as_const(argmax_)), reshaped(dx_, batch * N, F));
    return dx_;
  }
  template <class Fn>
  void for_each_parameter(Fn&&) {}

 private:
  detail::ForwardRef<T> x_;
  tensor y_, dx_;
  tensor_t<B, std::uint32_t, 2> argmax_;
};

template <class T, std::size_t N, std::size_t F, Backend B = Cpu> using SetSumPool = SetPool<Reduce::sum, T, N, F, B>;
template <class T, std::size_t N, std::size_t F, Backend B = Cpu> using SetMeanPool = SetPool<Reduce::mean, T, N, F, B>;
template <class T, std::size_t N, std::size_t F, Backend B = Cpu> using SetMaxPool = SetPool<Reduce::max, T, N, F, B>;

}  // namespace ace
