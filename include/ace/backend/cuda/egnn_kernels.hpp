// SPDX-License-Identifier: MIT
// The fused EGNN layer (backend/egnn_fused.hpp) as block functors: one block per graph, the layer's stages as phases
// separated by a barrier. A block functor has `static constexpr unsigned phases` and
// operator()(phase, block, thread, threads), in which thread t of the block computes the outputs t, t + threads, ...
// of that phase; a phase reads only what earlier phases (or earlier kernels) wrote, and no two threads write the same
// entry, so results do not depend on scheduling. The device runs the phases of a block with __syncthreads() between
// them (src/cuda/launch.cuh); the host emulation runs them one after another (tests/backend/kernel_emulation.hpp).
// The intermediates live in the layer's buffers (global memory on the device), where the backward pass needs them.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ace/backend/cuda/kernels.hpp"
#include "ace/backend/egnn_fused.hpp"
#include "ace/backend/ops.hpp"

namespace ace::kernels {

/// Σ_j a[r, a_off + j] w[k, off + j], j < n (a row of a times a row block of w: one entry of a Linear's output).
/// `a` may be a mutable view (an intermediate of the same kernel): no conversion, which device code could not call.
template <class U, class T>
ACE_HOST_DEVICE inline T row_times_row(MatrixRef<U> a, size_t r, In<T> w, size_t k, size_t off, size_t n,
                                       size_t a_off = 0) {
  T s = T(0);
  for (size_t j = 0; j < n; ++j) s += at(a, r, a_off + j) * at(w, k, off + j);
  return s;
}
/// Σ_j a[r, j] w[j, off + k], j < n (a row of a times a column of w: one entry of a Linear's input gradient).
template <class U, class T>
ACE_HOST_DEVICE inline T row_times_column(MatrixRef<U> a, size_t r, In<T> w, size_t k, size_t off, size_t n) {
  T s = T(0);
  for (size_t j = 0; j < n; ++j) s += at(a, r, j) * at(w, j, off + k);
  return s;
}

/// A Linear's output entry z and its SiLU: z[r, k] = z_value, s[r, k] = silu(z_value) (the backward pass reads both).
template <class T>
ACE_HOST_DEVICE inline void store_silu(MatrixRef<T> z, MatrixRef<T> s, size_t r, size_t k, T z_value) {
  at(z, r, k) = z_value;
  at(s, r, k) = SiLUOp::f(z_value);
}

template <class T>
struct EgnnLayerForward {
  static constexpr unsigned phases = 6;
  EgnnLayerViews<T> a;

  ACE_HOST_DEVICE void operator()(unsigned phase, size_t graph, unsigned t, unsigned threads) const {
    const size_t nodes = a.gs.nodes, edges = a.gs.edges, hd = a.h.cols, dim = a.x.cols, attrs = a.edge_attr.cols;
    const size_t n0 = graph * nodes, e0 = graph * edges;
    const EgnnBranchViews<T>& br = a.branches;
    // The branches' hidden entries: the h branch's (with the feature update) first, then the x branch's.
    const size_t branch_nodes = br.on ? (a.features ? 2 : 1) * nodes * hd : 0;
    switch (phase) {
      case 0:  // p, q (the first edge Linear per node) and the velocity MLP's hidden layer; the branches' input
        for (size_t idx = t; idx < 3 * nodes * hd + (br.on ? nodes * br.input.cols : 0); idx += threads) {
          if (idx >= 3 * nodes * hd) {
            const size_t c = idx - 3 * nodes * hd, i = n0 + c / br.input.cols, k = c % br.input.cols;
            at(br.input, i, k) = k < hd                 ? at(a.h, i, k)
                                 : k < hd + dim         ? at(a.x, i, k - hd)
                                 : k < hd + 2 * dim     ? at(a.v, i, k - hd - dim)
                                                        : at(br.raw, i, k - hd - 2 * dim);
            continue;
          }
          const size_t part = idx / (nodes * hd), i = n0 + idx / hd % nodes, k = idx % hd;
          if (part == 2) {
            const T z = row_times_row(a.h, i, a.vel1_w, k, 0, hd) + a.vel1_b.data[k];
            store_silu(a.zv, a.sv, i, k, z);
          } else {
            at(part == 0 ? a.p : a.q, i, k) = row_times_row(a.h, i, a.edge1_w, k, part * hd, hd);
          }
        }
        break;
      case 1:  // the first edge layer per edge; the velocity coefficient per node; the branches' hidden layers
        for (size_t idx = t; idx < edges * hd + nodes + branch_nodes; idx += threads) {
          if (idx >= edges * hd + nodes) {
            const size_t c = idx - edges * hd - nodes, i = n0 + c / hd % nodes, k = c % hd;
            const bool x_branch = !a.features || c >= nodes * hd;
            const T z = x_branch ? row_times_row(br.input, i, br.x1_w, k, 0, br.x1_w.cols, hd) + br.x1_b.data[k]
                                 : row_times_row(br.input, i, br.h1_w, k, 0, br.h1_w.cols) + br.h1_b.data[k];
            store_silu(x_branch ? br.zx : br.zh, x_branch ? br.sx : br.sh, i, k, z);
            continue;
          }
          if (idx >= edges * hd) {
            const size_t i = n0 + idx - edges * hd;
            at(a.cv, i, 0) = row_times_row(a.sv, i, a.vel2_w, 0, 0, hd) + a.vel2_b.data[0];
            continue;
          }
          const size_t e = idx / hd, k = idx % hd, er = e0 + e, i = n0 + a.row.data[e], j = n0 + a.col.data[e];
          T r = T(0);
          for (size_t d = 0; d < dim; ++d) {
            const T diff = at(a.x, i, d) - at(a.x, j, d);
            if (k == 0) at(a.diff, er, d) = diff;
            r += diff * diff;
          }
          if (k == 0) at(a.radial, er, 0) = r;
          T z = at(a.p, i, k) + at(a.q, j, k) + a.edge1_b.data[k] + r * at(a.edge1_w, k, 2 * hd);
          for (size_t c = 0; c < attrs; ++c) z += at(a.edge_attr, er, c) * at(a.edge1_w, k, 2 * hd + 1 + c);
          store_silu(a.z1, a.s1, er, k, z);
        }
        break;
      case 2:  // the second edge layer: the messages m; the branches' outputs
        for (size_t idx = t; idx < edges * hd + (br.on ? (a.features ? nodes * hd : 0) + nodes * dim : 0);
             idx += threads) {
          if (idx >= edges * hd) {
            const size_t c = idx - edges * hd, h_block = a.features ? nodes * hd : 0;
            if (c < h_block) {
              const size_t i = n0 + c / hd, k = c % hd;
              at(br.oh, i, k) = row_times_row(br.sh, i, br.h2_w, k, 0, hd) + br.h2_b.data[k];
            } else {
              const size_t i = n0 + (c - h_block) / dim, d = (c - h_block) % dim;
              at(br.ox, i, d) = row_times_row(br.sx, i, br.x2_w, d, 0, hd) + br.x2_b.data[d];
            }
            continue;
          }
          const size_t er = e0 + idx / hd, k = idx % hd;
          const T z = row_times_row(a.s1, er, a.edge2_w, k, 0, hd) + a.edge2_b.data[k];
          store_silu(a.z2, a.m, er, k, z);
        }
        break;
      case 3:  // the coordinate MLP's hidden layer per edge; the message sums per node
        for (size_t idx = t; idx < edges * hd + (a.features ? nodes * hd : 0); idx += threads) {
          if (idx >= edges * hd) {
            const size_t n = (idx - edges * hd) / hd, k = idx % hd;
            T s = T(0);
            for (size_t e = 0; e < edges; ++e)
              if (a.row.data[e] == n) s += at(a.m, e0 + e, k);
            at(a.agg, n0 + n, k) = s;
            continue;
          }
          const size_t er = e0 + idx / hd, k = idx % hd;
          const T z = row_times_row(a.m, er, a.coord1_w, k, 0, hd) + a.coord1_b.data[k];
          store_silu(a.zc, a.sc, er, k, z);
        }
        break;
      case 4:  // the coordinate coefficient per edge; the node MLP's hidden layer
        for (size_t idx = t; idx < edges + (a.features ? nodes * hd : 0); idx += threads) {
          if (idx < edges) {
            at(a.cw, e0 + idx, 0) = row_times_row(a.sc, e0 + idx, a.coord2_w, 0, 0, hd);
            continue;
          }
          const size_t i = n0 + (idx - edges) / hd, k = (idx - edges) % hd;
          const T z = row_times_row(a.h, i, a.node1_w, k, 0, hd) + row_times_row(a.agg, i, a.node1_w, k, hd, hd) +
                      a.node1_b.data[k];
          store_silu(a.z5, a.s5, i, k, z);
        }
        break;
      case 5:  // the outputs: positions; features (residual)
        for (size_t idx = t; idx < nodes * dim + (a.features ? nodes * hd : 0); idx += threads) {
          if (idx < nodes * dim) {
            const size_t n = idx / dim, d = idx % dim, i = n0 + n;
            T s = T(0);
            for (size_t e = 0; e < edges; ++e)
              if (a.row.data[e] == n) s += clamp_to(at(a.diff, e0 + e, d) * at(a.cw, e0 + e, 0), a.clamp);
            const T moved = at(a.x, i, d) + a.inv_degree.data[n] * s + at(a.cv, i, 0) * at(a.v, i, d);
            at(a.x_out, i, d) = br.on ? moved + br.gamma_x.data[0] * at(br.ox, i, d) : moved;
            continue;
          }
          const size_t i = n0 + (idx - nodes * dim) / hd, k = (idx - nodes * dim) % hd;
          const T updated = row_times_row(a.s5, i, a.node2_w, k, 0, hd) + a.node2_b.data[k] + at(a.h, i, k);
          at(a.h_out, i, k) = br.on ? updated + br.gamma_h.data[0] * at(br.oh, i, k) : updated;
        }
        break;
      default:
        break;
    }
  }
};

template <class T>
struct EgnnLayerBackward {
  static constexpr unsigned phases = 6;
  EgnnLayerViews<T> a;
  EgnnLayerGradients<T> g;

  ACE_HOST_DEVICE void operator()(unsigned phase, size_t graph, unsigned t, unsigned threads) const {
    const size_t nodes = a.gs.nodes, edges = a.gs.edges, hd = a.h.cols, dim = a.x.cols;
    const size_t n0 = graph * nodes, e0 = graph * edges;
    const size_t node_block = a.features ? nodes * hd : 0;
    const EgnnBranchViews<T>& br = a.branches;
    const size_t branch_block = br.on ? node_block : 0;  // the h branch's node entries
    switch (phase) {
      case 0:  // dz5 (through node2 and the SiLU), dcv, dcw (through the clamped mean); the branches' γ dy
        for (size_t idx = t; idx < node_block + nodes + edges + (br.on ? branch_block + nodes * dim : 0);
             idx += threads) {
          if (idx >= node_block + nodes + edges) {
            const size_t c = idx - node_block - nodes - edges;
            if (c < branch_block) {
              at(g.branches.doh, n0 + c / hd, c % hd) = br.gamma_h.data[0] * at(g.dh_out, n0 + c / hd, c % hd);
            } else {
              const size_t i = n0 + (c - branch_block) / dim, d = (c - branch_block) % dim;
              at(g.branches.dox, i, d) = br.gamma_x.data[0] * at(g.dx_out, i, d);
            }
          } else if (idx < node_block) {
            const size_t i = n0 + idx / hd, k = idx % hd;
            at(g.dz5, i, k) = row_times_column(g.dh_out, i, a.node2_w, k, 0, hd) * SiLUOp::df(at(a.z5, i, k), T(0));
          } else if (idx < node_block + nodes) {
            const size_t i = n0 + idx - node_block;
            T s = T(0);
            for (size_t d = 0; d < dim; ++d) s += at(g.dx_out, i, d) * at(a.v, i, d);
            at(g.dcv, i, 0) = s;
          } else {
            const size_t e = idx - node_block - nodes, er = e0 + e, i = n0 + a.row.data[e];
            T s = T(0);
            for (size_t d = 0; d < dim; ++d) {
              const T m = at(a.diff, er, d) * at(a.cw, er, 0);
              if (m >= -a.clamp && m <= a.clamp)
                s += a.inv_degree.data[a.row.data[e]] * at(g.dx_out, i, d) * at(a.diff, er, d);
            }
            at(g.dcw, er, 0) = s;
          }
        }
        break;
      case 1:  // dagg; dzv and dzc (the two one-output MLPs' hidden pre-activations); the branches' dzh, dzx
        for (size_t idx = t; idx < node_block + nodes * hd + edges * hd + (br.on ? branch_block + nodes * hd : 0);
             idx += threads) {
          if (idx >= node_block + nodes * hd + edges * hd) {
            const size_t c = idx - node_block - nodes * hd - edges * hd, i = n0 + c / hd % nodes, k = c % hd;
            const EgnnBranchGradients<T>& bg = g.branches;
            if (c < branch_block)
              at(bg.dzh, i, k) = row_times_column(bg.doh, i, br.h2_w, k, 0, hd) * SiLUOp::df(at(br.zh, i, k), T(0));
            else
              at(bg.dzx, i, k) = row_times_column(bg.dox, i, br.x2_w, k, 0, dim) * SiLUOp::df(at(br.zx, i, k), T(0));
          } else if (idx < node_block) {
            const size_t i = n0 + idx / hd, k = idx % hd;
            at(g.dagg, i, k) = row_times_column(g.dz5, i, a.node1_w, k, hd, hd);
          } else if (idx < node_block + nodes * hd) {
            const size_t i = n0 + (idx - node_block) / hd, k = idx % hd;
            at(g.dzv, i, k) = at(g.dcv, i, 0) * a.vel2_w.data[k] * SiLUOp::df(at(a.zv, i, k), T(0));
          } else {
            const size_t er = e0 + (idx - node_block - nodes * hd) / hd, k = idx % hd;
            at(g.dzc, er, k) = at(g.dcw, er, 0) * a.coord2_w.data[k] * SiLUOp::df(at(a.zc, er, k), T(0));
          }
        }
        break;
      case 2:  // dz2: the messages' gradient (aggregation and coordinate MLP) through the SiLU
        for (size_t idx = t; idx < edges * hd; idx += threads) {
          const size_t e = idx / hd, k = idx % hd, er = e0 + e;
          T s = row_times_column(g.dzc, er, a.coord1_w, k, 0, hd);
          if (a.features) s += at(g.dagg, n0 + a.row.data[e], k);
          at(g.dz2, er, k) = s * SiLUOp::df(at(a.z2, er, k), T(0));
        }
        break;
      case 3:  // dz1
        for (size_t idx = t; idx < edges * hd; idx += threads) {
          const size_t er = e0 + idx / hd, k = idx % hd;
          at(g.dz1, er, k) = row_times_column(g.dz2, er, a.edge2_w, k, 0, hd) * SiLUOp::df(at(a.z1, er, k), T(0));
        }
        break;
      case 4:  // dp, dq (edges into / out of each node); dx through x_i - x_j and the residual
        for (size_t idx = t; idx < nodes * hd + nodes * dim; idx += threads) {
          if (idx < nodes * hd) {
            const size_t n = idx / hd, k = idx % hd;
            T sp = T(0), sq = T(0);
            for (size_t e = 0; e < edges; ++e) {
              if (a.row.data[e] == n) sp += at(g.dz1, e0 + e, k);
              if (a.col.data[e] == n) sq += at(g.dz1, e0 + e, k);
            }
            at(g.dp, n0 + n, k) = sp;
            at(g.dq, n0 + n, k) = sq;
            continue;
          }
          const size_t n = (idx - nodes * hd) / dim, d = (idx - nodes * hd) % dim, i = n0 + n;
          T dx = at(g.dx_out, i, d);
          for (size_t e = 0; e < edges; ++e) {
            if (a.row.data[e] != n && a.col.data[e] != n) continue;
            const size_t er = e0 + e, target = n0 + a.row.data[e];
            T dr = T(0);
            for (size_t c = 0; c < hd; ++c) dr += at(g.dz1, er, c) * at(a.edge1_w, c, 2 * hd);
            const T diff = at(a.diff, er, d), coef = at(a.cw, er, 0), moved = diff * coef;
            T grad = T(2) * dr * diff;
            if (moved >= -a.clamp && moved <= a.clamp)
              grad += a.inv_degree.data[a.row.data[e]] * at(g.dx_out, target, d) * coef;
            if (a.row.data[e] == n) dx += grad;
            if (a.col.data[e] == n) dx -= grad;
          }
          if (br.on) {  // the branches read x in the input's columns H + d (h branch) and d (x branch)
            T b = row_times_column(g.branches.dzx, i, br.x1_w, d, 0, hd);
            if (a.features) b += row_times_column(g.branches.dzh, i, br.h1_w, hd + d, 0, hd);
            dx += b;
          }
          at(g.dx, i, d) = dx;
        }
        break;
      case 5:  // dh: the residual, node1, the velocity MLP and the first edge layer's per-node halves
        for (size_t idx = t; idx < nodes * hd; idx += threads) {
          const size_t i = n0 + idx / hd, k = idx % hd;
          T s = row_times_column(g.dzv, i, a.vel1_w, k, 0, hd) +
                row_times_column(g.dp, i, a.edge1_w, k, 0, hd) +
                row_times_column(g.dq, i, a.edge1_w, k, hd, hd);
          if (a.features) s += at(g.dh_out, i, k) + row_times_column(g.dz5, i, a.node1_w, k, 0, hd);
          if (br.on && a.features) s += row_times_column(g.branches.dzh, i, br.h1_w, k, 0, hd);
          at(g.dh, i, k) = s;
        }
        break;
      default:
        break;
    }
  }
};

}  // namespace ace::kernels
