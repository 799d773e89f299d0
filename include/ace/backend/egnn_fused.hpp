// SPDX-License-Identifier: MIT
// A whole EGNN layer as one backend operation per direction, for backends that gain from fusing it (the CUDA
// backend: on a batch of small graphs the layer's dozen small kernels are launch-bound). The layer
// (nn/graph/egnn_layer.hpp) describes its tensors as views; a backend that models FusedEgnnBackend runs the row-wise
// work of the forward pass, and of the backward pass up to the pre-activation gradients, itself; the layer then forms
// the weight gradients with the backend's GEMMs. Backends without it run the layer operation by operation.
#pragma once

#include <cstdint>

#include "ace/backend/geometry.hpp"
#include "ace/tensor/view.hpp"

namespace ace {

/// ACE's two non-equivariant branches of a relaxed EGNN layer (models/egnn.hpp), run inside the fused layer when `on`:
/// on the branches' input [h, x, v, raw] (written to `input`, [node rows, H + 2D + R]),
///   zh = input Wh1^T + bh1, sh = silu(zh), oh = sh Wh2^T + bh2, h_out += γ_h oh     (only with the feature update)
///   zx = input[:, H:] Wx1^T + bx1, sx = silu(zx), ox = sx Wx2^T + bx2, x_out += γ_x ox
/// with γ_h, γ_x one entry each of backend memory.
template <class T>
struct EgnnBranchViews {
  bool on = false;
  MatrixRef<const T> raw;                                   // [node rows, R]
  MatrixRef<const T> gamma_h, gamma_x;                      // [1, 1]
  MatrixRef<const T> h1_w, h1_b, h2_w, h2_b;                // [H, H+2D+R], [1, H], [H, H], [1, H]
  MatrixRef<const T> x1_w, x1_b, x2_w, x2_b;                // [H, 2D+R], [1, H], [D, H], [1, D]
  MatrixRef<T> input, zh, sh, oh, zx, sx, ox;               // node rows: [., H+2D+R], [., H] x 5, [., D]
};

/// What one EGNN layer reads and writes (docs/modules.md, "EGNN"; H = hidden, D = the points' dimension, A = edge
/// features; node rows = graphs x nodes, edge rows = graphs x edges, GraphShape's order). Weights in PyTorch's
/// [out, in] layout. The forward pass computes, per graph:
///   p = h W1[:, :H]^T, q = h W1[:, H:2H]^T             diff_e = x_i - x_j, radial_e = |diff_e|²   (e = (i <- j))
///   z1 = p_i + q_j + b1 + radial W1[:, 2H] + a_e W1[:, 2H+1:]^T, s1 = silu(z1)
///   z2 = s1 W2^T + b2, m = silu(z2)                      zc = m Wc1^T + bc1, sc = silu(zc), cw = sc Wc2^T
///   zv = h Wv1^T + bv1, sv = silu(zv), cv = sv Wv2^T + bv2
///   x_out_i = x_i + inv_degree_i Σ_{e into i} clamp(diff_e cw_e) + cv_i v_i
///   agg_i = Σ_{e into i} m_e, z5 = h Wn1[:, :H]^T + agg Wn1[:, H:]^T + bn1, s5 = silu(z5), h_out = h + s5 Wn2^T + bn2
/// (the last line only with `features`). Every intermediate is kept for the backward pass.
template <class T>
struct EgnnLayerViews {
  GraphShape gs;
  MatrixRef<const std::uint32_t> row, col;  // [1, edges]: edge e goes from node col[e] to node row[e]
  MatrixRef<const T> inv_degree;            // [1, nodes]
  T clamp = T(100);
  bool features = true;
  MatrixRef<const T> h, x, v, edge_attr;    // [node rows, H], [node rows, D] twice, [edge rows, A]
  MatrixRef<const T> edge1_w, edge1_b, edge2_w, edge2_b;             // [H, 2H+1+A], [1, H], [H, H], [1, H]
  MatrixRef<const T> coord1_w, coord1_b, coord2_w;                   // [H, H], [1, H], [1, H]
  MatrixRef<const T> vel1_w, vel1_b, vel2_w, vel2_b;                 // [H, H], [1, H], [1, H], [1, 1]
  MatrixRef<const T> node1_w, node1_b, node2_w, node2_b;             // [H, 2H], [1, H], [H, H], [1, H]
  MatrixRef<T> p, q, zv, sv, cv, agg, z5, s5;                        // node rows: [., H] ([., 1] for cv)
  MatrixRef<T> diff, radial, z1, s1, z2, m, zc, sc, cw;              // edge rows: [., D], [., 1], [., H], [., 1]
  MatrixRef<T> x_out, h_out;                                         // [node rows, D], [node rows, H]
  EgnnBranchViews<T> branches;                                       // a relaxed EGNN's branches (off by default)
};

/// The backward pass of a fused EGNN layer: from dL/dh_out (read only with `features`) and dL/dx_out it writes
/// dL/dh, dL/dx (through x_i - x_j and the residual) and the gradients of the pre-activations and of the layer's
/// other row-wise quantities, from which the weight gradients are GEMMs (dW = dz^T input):
///   dz5 (node2's input side, features only), dagg (features only), dcv, dzv per node row [., H] ([., 1] for dcv);
///   dcw, dzc, dz2, dz1 per edge row; dp, dq per node row (dz1 summed over the edges into / out of each node).
/// With the branches on, also doh = γ_h dh_out, dzh, dox = γ_x dx_out and dzx (node rows; doh and dzh only with the
/// feature update), and dh, dx include the branches' paths; the gradients of γ (Σ dy ⊙ o) are left to the caller.
template <class T>
struct EgnnBranchGradients {
  MatrixRef<T> doh, dzh, dox, dzx;  // node rows: [., H] x 2 (with the feature update), [., D], [., H]
};
template <class T>
struct EgnnLayerGradients {
  MatrixRef<const T> dh_out, dx_out;
  MatrixRef<T> dh, dx;
  MatrixRef<T> dz5, dagg, dcv, dzv, dp, dq;  // node rows
  MatrixRef<T> dcw, dzc, dz2, dz1;           // edge rows
  EgnnBranchGradients<T> branches;           // with EgnnLayerViews::branches on
};

/// A backend that runs an EGNN layer as fused operations: B::egnn_layer_forward(views) and
/// B::egnn_layer_backward(views, gradients) for scalar T.
template <class B, class T>
concept FusedEgnnBackend = requires(const EgnnLayerViews<T>& a, const EgnnLayerGradients<T>& g) {
  B::egnn_layer_forward(a);
  B::egnn_layer_backward(a, g);
};

}  // namespace ace
