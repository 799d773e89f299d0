// SPDX-License-Identifier: MIT
// PairLinear: the second-order permutation-equivariant layer on N x N inputs, spanned by the 15 basis maps.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "ace/nn/module.hpp"
#include "ace/nn/set/set.hpp"
#include "ace/random.hpp"

namespace ace {

struct PairLinearOptions {
  bool bias = true;
  /// Weights ~ N(0, gain / (4 Fin)): four of the maps carry a full-variance term to every off-diagonal entry, so
  /// for i.i.d. inputs each output entry gets about gain * Var(x).
  double gain = 1.0;
};

/// The second-order permutation-equivariant linear layer (Maron et al. 2019) on pair features X [N, N, Fin] ->
/// [N, N, Fout]: Y = Σ_k L_k(X) W_k^T + biases, where L_1..L_15 span Hom_{S_N}(Natural⊗Natural, Natural⊗Natural)
/// (15 = Bell(4) maps for N >= 4; the tests check that they span exactly the orbit basis of that space). With
/// d_i = X_ii, r_i = mean_j X_ij, c_j = mean_i X_ij, t = mean_i X_ii, s = mean_ij X_ij, the maps (index k of the
/// "weight" tensor [15, Fout, Fin]) are
///   0: Y_ij = X_ij        1: Y_ij = X_ji
///   2 + 3a + b: source a in (d, r, c) placed as b in (diagonal Y_ii = v_i, rows Y_ij = v_i, columns Y_ij = v_j)
///   11 + 2a + b: source a in (t, s) placed as b in (diagonal Y_ii = v, everywhere Y_ij = v)
/// and "bias" [2, Fout] adds to the diagonal (row 0) and to every entry (row 1): the invariant maps. Cost per
/// sample: two GEMMs over N² entries plus O(N) GEMMs on the pooled vectors, never an N² x N² matrix.
template <class T, std::size_t N, std::size_t Fin, std::size_t Fout, Backend B = Cpu>
class PairLinear {
 public:
  using scalar = T;
  using input = PairFeatures<N, Fin>;
  using output = PairFeatures<N, Fout>;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;

  explicit PairLinear(Rng& rng, PairLinearOptions options = {})
      : weight_({15, Fout, Fin}), bias_({2, Fout}), has_bias_(options.bias) {
    ACE_THROW_IF(!(options.gain > 0.0), invalid_argument, "PairLinearOptions::gain must be > 0, got ", options.gain);
    const double sd = std::sqrt(options.gain / (4.0 * static_cast<double>(Fin)));
    std::vector<T> w(15 * Fout * Fin);
    for (auto& v : w) v = static_cast<T>(sd * rng.normal());
    weight_.assign(w);
  }

  const tensor& forward(const tensor& x) {
    require_columns(x, N * N * Fin, "PairLinear::forward");
    const std::size_t batch = x.shape()[0];
    x_.set(view(x));
    ensure_shape(y_, batch, N * N * Fout);
    ensure_shape(xt_, batch, N * N * Fin);
    ensure_shape(v_, batch * N, 3 * Fin);
    ensure_shape(u_, batch * N, 3 * Fout);
    ensure_shape(s_, batch, 2 * Fin);
    ensure_shape(q_, batch, 2 * Fout);
    const auto xs = reshaped(x, batch * N * N, Fin);
    const auto ys = reshaped(y_, batch * N * N, Fout);
    B::pair_transpose(view(x), N, view(xt_), false);
    B::pair_pool(view(x), N, true, view(v_), view(s_));
    B::gemm(Transpose::no, Transpose::yes, T(1), xs, w(0), T(0), ys);
    B::gemm(Transpose::no, Transpose::yes, T(1), reshaped(std::as_const(xt_), batch * N * N, Fin), w(1), T(1), ys);
    for (std::size_t b = 0; b < 3; ++b)
      for (std::size_t a = 0; a < 3; ++a)
        B::gemm(Transpose::no, Transpose::yes, T(1), view(std::as_const(v_)).columns(a * Fin, Fin), w(2 + 3 * a + b),
                T(a == 0 ? 0 : 1), view(u_).columns(b * Fout, Fout));
    for (std::size_t b = 0; b < 2; ++b)
      for (std::size_t a = 0; a < 2; ++a)
        B::gemm(Transpose::no, Transpose::yes, T(1), view(std::as_const(s_)).columns(a * Fin, Fin), w(11 + 2 * a + b),
                T(a == 0 ? 0 : 1), view(q_).columns(b * Fout, Fout));
    if (has_bias_) B::add_row(view(q_), row_view(std::as_const(bias_.value)));  // [diagonal bias, all-entries bias]
    B::pair_broadcast(view(std::as_const(u_)), view(std::as_const(q_)), N, T(1), T(1), T(1), view(y_));
    return y_;
  }

  const tensor& backward(const tensor& dy) {
    const std::size_t batch = detail::backward_batch(x_, dy, N * N * Fout, "PairLinear");
    ensure_shape(dx_, batch, N * N * Fin);
    ensure_shape(dxt_, batch, N * N * Fin);
    ensure_shape(g_, batch * N, 3 * Fout);
    ensure_shape(h_, batch, 2 * Fout);
    ensure_shape(dv_, batch * N, 3 * Fin);
    ensure_shape(ds_, batch, 2 * Fin);
    const auto dys = reshaped(dy, batch * N * N, Fout);
    const auto dxs = reshaped(dx_, batch * N * N, Fin);
    // The pooled gradients: g = (dY_ii, Σ_j dY_ij, Σ_i dY_ij), h = (Σ_i dY_ii, Σ_ij dY_ij), the adjoint of broadcast.
    B::pair_pool(view(dy), N, false, view(g_), view(h_));
    const MatrixRef<const T> xs{x_.get().data, batch * N * N, Fin, Fin};
    B::gemm(Transpose::yes, Transpose::no, T(1), dys, xs, T(1), w_grad(0));
    B::gemm(Transpose::yes, Transpose::no, T(1), dys, reshaped(std::as_const(xt_), batch * N * N, Fin), T(1), w_grad(1));
    for (std::size_t a = 0; a < 3; ++a)
      for (std::size_t b = 0; b < 3; ++b) {
        B::gemm(Transpose::yes, Transpose::no, T(1), view(std::as_const(g_)).columns(b * Fout, Fout),
                view(std::as_const(v_)).columns(a * Fin, Fin), T(1), w_grad(2 + 3 * a + b));
        B::gemm(Transpose::no, Transpose::no, T(1), view(std::as_const(g_)).columns(b * Fout, Fout), w(2 + 3 * a + b),
                T(b == 0 ? 0 : 1), view(dv_).columns(a * Fin, Fin));
      }
    for (std::size_t a = 0; a < 2; ++a)
      for (std::size_t b = 0; b < 2; ++b) {
        B::gemm(Transpose::yes, Transpose::no, T(1), view(std::as_const(h_)).columns(b * Fout, Fout),
                view(std::as_const(s_)).columns(a * Fin, Fin), T(1), w_grad(11 + 2 * a + b));
        B::gemm(Transpose::no, Transpose::no, T(1), view(std::as_const(h_)).columns(b * Fout, Fout), w(11 + 2 * a + b),
                T(b == 0 ? 0 : 1), view(ds_).columns(a * Fin, Fin));
      }
    if (has_bias_) B::sum_rows(view(std::as_const(h_)), T(1), row_view(bias_.grad));
    B::gemm(Transpose::no, Transpose::no, T(1), dys, w(0), T(0), dxs);
    B::gemm(Transpose::no, Transpose::no, T(1), dys, w(1), T(0), reshaped(dxt_, batch * N * N, Fin));
    B::pair_transpose(view(std::as_const(dxt_)), N, view(dx_), true);
    B::pair_broadcast(view(std::as_const(dv_)), view(std::as_const(ds_)), N, inv_n, inv_nn, inv_n, view(dx_));
    return dx_;
  }

  template <class F>
  void for_each_parameter(F&& f) {
    f(weight_.view("weight", Role::weight));
    if (has_bias_) f(bias_.view("bias", Role::bias));
  }

  /// The weights W_k [Fout, Fin] of the 15 maps, as one [15, Fout, Fin] tensor (see the class comment for k).
  tensor_t<B, T, 3>& weight() { return weight_.value; }
  tensor& bias() { return bias_.value; }

 private:
  static constexpr T inv_n = T(1) / T(N);
  static constexpr T inv_nn = T(1) / T(N * N);

  MatrixRef<const T> w(std::size_t k) const { return {weight_.value.data() + k * Fout * Fin, Fout, Fin, Fin}; }
  MatrixRef<T> w_grad(std::size_t k) { return {weight_.grad.data() + k * Fout * Fin, Fout, Fin, Fin}; }

  detail::Parameter<B, T, 3> weight_;
  detail::Parameter<B, T> bias_;
  bool has_bias_;
  detail::ForwardRef<T> x_;
  tensor y_, xt_, v_, u_, s_, q_, dx_, dxt_, g_, h_, dv_, ds_;
};

}  // namespace ace
