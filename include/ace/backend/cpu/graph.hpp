// SPDX-License-Identifier: MIT
// The Cpu backend's EGNN message passing: the edge and node loops of one layer, each graph of the batch in its own
// OpenMP iteration (graphs write disjoint rows, so results do not depend on the thread count).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "ace/backend/cpu/parallel.hpp"
#include "ace/backend/geometry.hpp"
#include "ace/tensor/tensor.hpp"

namespace ace::cpu {

/// Σ_c a[c] b[c] over n entries in one 64-byte vector's worth of partial sums (entry c goes to sum c mod lanes), the
/// sums then added pairwise: the compiler vectorises it, where one running sum would be a chain of n dependent
/// additions, and the order is fixed by n alone.
template <class T>
T dot_in_lanes(const T* a, const T* b, std::size_t n) {
  constexpr std::size_t lanes = 64 / sizeof(T);
  T acc[lanes] = {};
  std::size_t c = 0;
  for (; c + lanes <= n; c += lanes)
    for (std::size_t l = 0; l < lanes; ++l) acc[l] += a[c + l] * b[c + l];
  for (std::size_t l = 0; c + l < n; ++l) acc[l] += a[c + l] * b[c + l];
  for (std::size_t w = lanes / 2; w > 0; w /= 2)
    for (std::size_t l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

template <class T>
void egnn_edge_input(const GraphShape& gs, const std::uint32_t* row, const std::uint32_t* col, MatrixRef<const T> x,
                     MatrixRef<const T> p, MatrixRef<const T> q, const T* bias, MatrixRef<const T> w_radial,
                     MatrixRef<T> diff, MatrixRef<T> radial, MatrixRef<T> z) {
  const std::size_t dim = x.cols, hd = z.cols;
  ACE_OMP_FOR(gs.graphs >= 8)
  for (std::size_t b = 0; b < gs.graphs; ++b)
    for (std::size_t e = 0; e < gs.edges; ++e) {
      const std::size_t er = b * gs.edges + e, i = b * gs.nodes + row[e], j = b * gs.nodes + col[e];
      T r = T(0);
      for (std::size_t k = 0; k < dim; ++k) {
        const T d = x.data[i * x.stride + k] - x.data[j * x.stride + k];
        diff.data[er * diff.stride + k] = d;
        r += d * d;
      }
      radial.data[er * radial.stride] = r;
      T* out = z.data + er * z.stride;
      const T* pi = p.data + i * p.stride;
      const T* qj = q.data + j * q.stride;
      for (std::size_t c = 0; c < hd; ++c) out[c] = pi[c] + qj[c] + bias[c] + r * w_radial.data[c * w_radial.stride];
    }
}

template <class T>
void egnn_aggregate(const GraphShape& gs, const std::uint32_t* row, const T* inv_degree, MatrixRef<const T> x,
                    MatrixRef<const T> v, MatrixRef<const T> diff, MatrixRef<const T> coef,
                    MatrixRef<const T> speed, T clamp, MatrixRef<const T> m, MatrixRef<T> x_out, MatrixRef<T> agg) {
  const std::size_t dim = x.cols, hd = m.cols;
  const bool features = !m.empty();
  ACE_OMP_FOR(gs.graphs >= 8)
  for (std::size_t b = 0; b < gs.graphs; ++b) {
    for (std::size_t n = 0; n < gs.nodes; ++n) {
      const std::size_t r = b * gs.nodes + n;
      std::fill_n(x_out.data + r * x_out.stride, dim, T(0));
      if (features) std::fill_n(agg.data + r * agg.stride, hd, T(0));
    }
    for (std::size_t e = 0; e < gs.edges; ++e) {
      const std::size_t er = b * gs.edges + e, i = b * gs.nodes + row[e];
      const T c = coef.data[er * coef.stride];
      for (std::size_t k = 0; k < dim; ++k)
        x_out.data[i * x_out.stride + k] += std::clamp(diff.data[er * diff.stride + k] * c, -clamp, clamp);
      if (!features) continue;
      const T* me = m.data + er * m.stride;
      T* a = agg.data + i * agg.stride;
      for (std::size_t ch = 0; ch < hd; ++ch) a[ch] += me[ch];
    }
    for (std::size_t n = 0; n < gs.nodes; ++n) {
      const std::size_t r = b * gs.nodes + n;
      T* out = x_out.data + r * x_out.stride;
      for (std::size_t k = 0; k < dim; ++k)
        out[k] = x.data[r * x.stride + k] + inv_degree[n] * out[k] + speed.data[r * speed.stride] * v.data[r * v.stride + k];
    }
  }
}

template <class T>
void egnn_aggregate_backward(const GraphShape& gs, const std::uint32_t* row, const T* inv_degree,
                             MatrixRef<const T> diff, MatrixRef<const T> coef, T clamp, MatrixRef<const T> dx_out,
                             MatrixRef<const T> dagg, MatrixRef<T> dcoef, MatrixRef<T> dm) {
  const std::size_t dim = diff.cols, hd = dm.cols;
  ACE_OMP_FOR(gs.graphs >= 8)
  for (std::size_t b = 0; b < gs.graphs; ++b)
    for (std::size_t e = 0; e < gs.edges; ++e) {
      const std::size_t er = b * gs.edges + e, i = b * gs.nodes + row[e];
      const T inv = inv_degree[row[e]], c = coef.data[er * coef.stride];
      T dc = T(0);
      for (std::size_t k = 0; k < dim; ++k) {
        const T d = diff.data[er * diff.stride + k], t = d * c;
        if (t >= -clamp && t <= clamp) dc += inv * dx_out.data[i * dx_out.stride + k] * d;
      }
      dcoef.data[er * dcoef.stride] = dc;
      T* out = dm.data + er * dm.stride;
      if (dagg.empty()) std::fill_n(out, hd, T(0));
      else std::copy_n(dagg.data + i * dagg.stride, hd, out);  // Σ-aggregation passes dagg to every incoming edge
    }
}

template <class T>
void egnn_edge_input_backward(const GraphShape& gs, const std::uint32_t* row, const std::uint32_t* col,
                              const T* inv_degree, MatrixRef<const T> diff, MatrixRef<const T> radial,
                              MatrixRef<const T> coef, T clamp, MatrixRef<const T> dx_out, MatrixRef<const T> dz,
                              MatrixRef<const T> w_radial, MatrixRef<T> dp, MatrixRef<T> dq, MatrixRef<T> dx,
                              MatrixRef<T> dw_radial) {
  const std::size_t dim = diff.cols, hd = dz.cols;
  struct RadialPartials;  // scratch tags: each graph's share of d w_radial, added in graph order below; w_radial
  struct RadialWeights;   // contiguous (it is a column of the edge layer's weight)
  T* partial = thread_scratch<RadialPartials, T>(gs.graphs * hd);
  T* w = thread_scratch<RadialWeights, T>(hd);
  for (std::size_t c = 0; c < hd; ++c) w[c] = w_radial.data[c * w_radial.stride];
  ACE_OMP_FOR(gs.graphs >= 8)
  for (std::size_t b = 0; b < gs.graphs; ++b) {
    T* dw = partial + b * hd;  // d w_radial = Σ_e dz_e |x_i - x_j|², this graph's edges
    std::fill_n(dw, hd, T(0));
    for (std::size_t e = 0; e < gs.edges; ++e) {
      const std::size_t er = b * gs.edges + e;
      const T r2 = radial.data[er * radial.stride];
      for (std::size_t c = 0; c < hd; ++c) dw[c] += dz.data[er * dz.stride + c] * r2;
    }
    for (std::size_t n = 0; n < gs.nodes; ++n) {
      const std::size_t r = b * gs.nodes + n;
      std::fill_n(dp.data + r * dp.stride, hd, T(0));
      std::fill_n(dq.data + r * dq.stride, hd, T(0));
      std::copy_n(dx_out.data + r * dx_out.stride, dim, dx.data + r * dx.stride);  // the residual
    }
    for (std::size_t e = 0; e < gs.edges; ++e) {
      const std::size_t er = b * gs.edges + e, i = b * gs.nodes + row[e], j = b * gs.nodes + col[e];
      const T* g = dz.data + er * dz.stride;
      T* dpi = dp.data + i * dp.stride;
      T* dqj = dq.data + j * dq.stride;
      for (std::size_t c = 0; c < hd; ++c) {
        dpi[c] += g[c];
        dqj[c] += g[c];
      }
      const T dr = dot_in_lanes(g, w, hd);
      const T c = coef.data[er * coef.stride];
      for (std::size_t k = 0; k < dim; ++k) {
        const T d = diff.data[er * diff.stride + k], t = d * c;
        T gk = T(2) * dr * d;                  // through |x_i - x_j|²
        if (t >= -clamp && t <= clamp)         // through the clamped move (x_i - x_j) c_ij, averaged at i
          gk += inv_degree[row[e]] * dx_out.data[i * dx_out.stride + k] * c;
        dx.data[i * dx.stride + k] += gk;
        dx.data[j * dx.stride + k] -= gk;
      }
    }
  }
  for (std::size_t b = 0; b < gs.graphs; ++b)  // the graphs' shares in order: the same sum for any thread count
    for (std::size_t c = 0; c < hd; ++c) dw_radial.data[c * dw_radial.stride] += partial[b * hd + c];
}

}  // namespace ace::cpu
