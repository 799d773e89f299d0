// SPDX-License-Identifier: MIT
// PairLinear: the second-order permutation-equivariant layer on N x N inputs, spanned by the 15 basis maps.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "ace/nn/module.hpp"
#include "ace/nn/set.hpp"
#include "ace/random.hpp"
#include "ace/tensor/cpu.hpp"
#include "ace/tensor/parallel.hpp"

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
  static constexpr std::size_t maps = 15;

  explicit PairLinear(Rng& rng, PairLinearOptions options = {})
      : weight_({maps, Fout, Fin}), weight_grad_({maps, Fout, Fin}), bias_({2, Fout}), bias_grad_({2, Fout}),
        has_bias_(options.bias) {
    ACE_THROW_IF(!(options.gain > 0.0), invalid_argument, "PairLinearOptions::gain must be > 0, got ", options.gain);
    const double sd = std::sqrt(options.gain / (4.0 * static_cast<double>(Fin)));
    for (auto& w : weight_) w = static_cast<T>(sd * rng.normal());
    B::fill(bias_, T(0));
    zero_grad(*this);
  }

  const Tensor<T, 2>& forward(const Tensor<T, 2>& x) {
    require_columns(x, N * N * Fin, "PairLinear::forward");
    const std::size_t batch = x.shape()[0];
    x_ = &x;
    ensure_shape(y_, batch, N * N * Fout);
    ensure_shape(xt_, batch, N * N * Fin);
    ensure_shape(v_, batch * N, 3 * Fin);
    ensure_shape(u_, batch * N, 3 * Fout);
    ensure_shape(s_, batch, 2 * Fin);
    ensure_shape(q_, batch, 2 * Fout);
    const auto xs = reshaped(x, batch * N * N, Fin);
    const auto ys = reshaped(y_, batch * N * N, Fout);
    transpose_pairs(x.data(), xt_.data(), batch, Fin, false);
    pool(x.data(), batch, Fin, true, view(v_), view(s_));
    B::gemm(Transpose::no, Transpose::yes, T(1), xs, w(0), T(0), ys);
    B::gemm(Transpose::no, Transpose::yes, T(1), reshaped(xt_, batch * N * N, Fin), w(1), T(1), ys);
    for (std::size_t b = 0; b < 3; ++b)
      for (std::size_t a = 0; a < 3; ++a)
        B::gemm(Transpose::no, Transpose::yes, T(1), view(v_).columns(a * Fin, Fin), w(2 + 3 * a + b),
                T(a == 0 ? 0 : 1), view(u_).columns(b * Fout, Fout));
    for (std::size_t b = 0; b < 2; ++b)
      for (std::size_t a = 0; a < 2; ++a)
        B::gemm(Transpose::no, Transpose::yes, T(1), view(s_).columns(a * Fin, Fin), w(11 + 2 * a + b),
                T(a == 0 ? 0 : 1), view(q_).columns(b * Fout, Fout));
    if (has_bias_)
      for (std::size_t b = 0; b < 2; ++b)
        for (std::size_t i = 0; i < batch; ++i)
          for (std::size_t o = 0; o < Fout; ++o) q_(i, b * Fout + o) += bias_(b, o);
    broadcast(view(u_), view(q_), batch, Fout, T(1), T(1), T(1), y_.data());
    return y_;
  }

  const Tensor<T, 2>& backward(const Tensor<T, 2>& dy) {
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
    pool(dy.data(), batch, Fout, false, view(g_), view(h_));
    B::gemm(Transpose::yes, Transpose::no, T(1), dys, reshaped(*x_, batch * N * N, Fin), T(1), w_grad(0));
    B::gemm(Transpose::yes, Transpose::no, T(1), dys, reshaped(xt_, batch * N * N, Fin), T(1), w_grad(1));
    for (std::size_t a = 0; a < 3; ++a)
      for (std::size_t b = 0; b < 3; ++b) {
        B::gemm(Transpose::yes, Transpose::no, T(1), view(g_).columns(b * Fout, Fout),
                view(v_).columns(a * Fin, Fin), T(1), w_grad(2 + 3 * a + b));
        B::gemm(Transpose::no, Transpose::no, T(1), view(g_).columns(b * Fout, Fout), w(2 + 3 * a + b),
                T(b == 0 ? 0 : 1), view(dv_).columns(a * Fin, Fin));
      }
    for (std::size_t a = 0; a < 2; ++a)
      for (std::size_t b = 0; b < 2; ++b) {
        B::gemm(Transpose::yes, Transpose::no, T(1), view(h_).columns(b * Fout, Fout),
                view(s_).columns(a * Fin, Fin), T(1), w_grad(11 + 2 * a + b));
        B::gemm(Transpose::no, Transpose::no, T(1), view(h_).columns(b * Fout, Fout), w(11 + 2 * a + b),
                T(b == 0 ? 0 : 1), view(ds_).columns(a * Fin, Fin));
      }
    if (has_bias_)
      for (std::size_t b = 0; b < 2; ++b)
        for (std::size_t i = 0; i < batch; ++i)
          for (std::size_t o = 0; o < Fout; ++o) bias_grad_(b, o) += h_(i, b * Fout + o);
    B::gemm(Transpose::no, Transpose::no, T(1), dys, w(0), T(0), dxs);
    B::gemm(Transpose::no, Transpose::no, T(1), dys, w(1), T(0), reshaped(dxt_, batch * N * N, Fin));
    transpose_pairs(dxt_.data(), dx_.data(), batch, Fin, true);
    broadcast(view(dv_), view(ds_), batch, Fin, inv_n, inv_nn, inv_n, dx_.data());
    return dx_;
  }

  template <class F>
  void for_each_parameter(F&& f) {
    f(detail::param_view("weight", weight_, weight_grad_, Role::weight));
    if (has_bias_) f(detail::param_view("bias", bias_, bias_grad_, Role::bias));
  }

  /// The weights W_k [Fout, Fin] of the 15 maps, as one [15, Fout, Fin] tensor (see the class comment for k).
  Tensor<T, 3>& weight() { return weight_; }
  Tensor<T, 2>& bias() { return bias_; }

 private:
  static constexpr std::size_t NN = N * N;
  static constexpr T inv_n = T(1) / T(N);
  static constexpr T inv_nn = T(1) / T(N * N);

  MatrixRef<const T> w(std::size_t k) const { return {weight_.data() + k * Fout * Fin, Fout, Fin, Fin}; }
  MatrixRef<T> w_grad(std::size_t k) { return {weight_grad_.data() + k * Fout * Fin, Fout, Fin, Fin}; }

  /// out[b, i, j, :] = in[b, j, i, :] (or += when accumulate).
  static void transpose_pairs(const T* in, T* out, std::size_t batch, std::size_t f, bool accumulate) {
    ACE_OMP_FOR(batch * NN * f > (std::size_t{1} << 16))
    for (std::size_t b = 0; b < batch; ++b)
      for (std::size_t i = 0; i < N; ++i)
        for (std::size_t j = 0; j < N; ++j) {
          const T* src = in + ((b * N + j) * N + i) * f;
          T* dst = out + ((b * N + i) * N + j) * f;
          if (accumulate)
            for (std::size_t c = 0; c < f; ++c) dst[c] += src[c];
          else
            for (std::size_t c = 0; c < f; ++c) dst[c] = src[c];
        }
  }

  /// Per sample, with f channels innermost: v[(b, i), :] = (x_ii, Σ_j x_ij, Σ_j x_ji) and s[b, :] = (Σ_i x_ii,
  /// Σ_ij x_ij), scaled by (1, 1/N, 1/N) and (1/N, 1/N²) when `mean` (the pooled inputs d, r, c, t, s). Without
  /// `mean` this is the adjoint of broadcast with unit scales (the pooled output gradients).
  static void pool(const T* x, std::size_t batch, std::size_t f, bool mean, MatrixRef<T> v, MatrixRef<T> s) {
    ACE_OMP_FOR(batch * NN * f > (std::size_t{1} << 16))
    for (std::size_t b = 0; b < batch; ++b) {
      T* sb = s.data + b * s.stride;
      std::fill_n(sb, 2 * f, T(0));
      for (std::size_t i = 0; i < N; ++i) std::fill_n(v.data + (b * N + i) * v.stride, 3 * f, T(0));
      for (std::size_t i = 0; i < N; ++i) {
        T* vi = v.data + (b * N + i) * v.stride;
        for (std::size_t j = 0; j < N; ++j) {
          const T* xij = x + ((b * N + i) * N + j) * f;
          T* vj = v.data + (b * N + j) * v.stride;
          for (std::size_t c = 0; c < f; ++c) {
            vi[f + c] += xij[c];      // row sum of i
            vj[2 * f + c] += xij[c];  // column sum of j
            sb[f + c] += xij[c];
          }
        }
        const T* xii = x + ((b * N + i) * N + i) * f;
        for (std::size_t c = 0; c < f; ++c) {
          vi[c] = xii[c];
          sb[c] += xii[c];
        }
      }
      if (!mean) continue;
      for (std::size_t i = 0; i < N; ++i) {
        T* vi = v.data + (b * N + i) * v.stride;
        for (std::size_t c = f; c < 3 * f; ++c) vi[c] *= inv_n;
      }
      for (std::size_t c = 0; c < f; ++c) {
        sb[c] *= inv_n;
        sb[f + c] *= inv_nn;
      }
    }
  }

  /// y[b, i, j, :] += ka u_row(b, i) + ka u_col(b, j) + kb q_all(b) + [i == j] (u_diag(b, i) + kc q_diag(b)), with
  /// u = (u_diag, u_row, u_col) and q = (q_diag, q_all) per sample. Unit scales place the layer's outputs; scales
  /// (1/N, 1/N², 1/N) are the adjoint of pool with `mean` (the input gradient of the pooled terms).
  static void broadcast(MatrixRef<const T> u, MatrixRef<const T> q, std::size_t batch, std::size_t f, T ka, T kb,
                        T kc, T* y) {
    ACE_OMP_FOR(batch * NN * f > (std::size_t{1} << 16))
    for (std::size_t b = 0; b < batch; ++b) {
      const T* qb = q.data + b * q.stride;
      for (std::size_t i = 0; i < N; ++i) {
        const T* ui = u.data + (b * N + i) * u.stride;
        for (std::size_t j = 0; j < N; ++j) {
          const T* uj = u.data + (b * N + j) * u.stride;
          T* yij = y + ((b * N + i) * N + j) * f;
          for (std::size_t o = 0; o < f; ++o) yij[o] += ka * (ui[f + o] + uj[2 * f + o]) + kb * qb[f + o];
          if (i == j)
            for (std::size_t o = 0; o < f; ++o) yij[o] += ui[o] + kc * qb[o];
        }
      }
    }
  }

  Tensor<T, 3> weight_, weight_grad_;
  Tensor<T, 2> bias_, bias_grad_;
  bool has_bias_;
  detail::ForwardRef<T> x_;
  Tensor<T, 2> y_, xt_, v_, u_, s_, q_, dx_, dxt_, g_, h_, dv_, ds_;
};

}  // namespace ace
