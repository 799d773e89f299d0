// SPDX-License-Identifier: MIT
// E(n)-equivariant graph networks (Satorras, Hoogeboom, Welling 2021), velocity variant, with forward and backward
// by hand, on batches of graphs that share one edge list; and the relaxed EGNN of ACE (METHOD.md §2, §8).
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ace/error.hpp"
#include "ace/nn/dense.hpp"
#include "ace/nn/loss.hpp"
#include "ace/nn/module.hpp"
#include "ace/random.hpp"
#include "ace/tensor/cpu.hpp"
#include "ace/tensor/parallel.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace ace {

/// A directed graph on `nodes` nodes, shared by every sample of a batch. Edge e carries a message from node col[e]
/// (j) to node row[e] (i): m_ij is aggregated at i.
class Graph {
 public:
  Graph() = default;
  /// Edges as (i, j) pairs: the message of j reaches i. Throws on an index out of range or a self-loop.
  Graph(std::size_t nodes, const std::vector<std::pair<std::uint32_t, std::uint32_t>>& edges) : nodes_(nodes) {
    ACE_THROW_IF(nodes == 0, invalid_argument, "Graph: needs at least one node");
    for (const auto& [i, j] : edges) {
      ACE_THROW_IF(i >= nodes || j >= nodes, invalid_argument, "Graph: edge (", i, ", ", j, ") on ", nodes,
                   " nodes");
      ACE_THROW_IF(i == j, invalid_argument, "Graph: self-loop at node ", i, " (x_i - x_i carries no direction)");
      row_.push_back(i);
      col_.push_back(j);
    }
    in_degree_.assign(nodes, 0);
    for (auto i : row_) ++in_degree_[i];
  }
  /// Every ordered pair i != j, in row-major order (i = 0: j = 1..n-1; i = 1: j = 0, 2, ...).
  static Graph complete(std::size_t nodes) {
    std::vector<std::pair<std::uint32_t, std::uint32_t>> edges;
    for (std::uint32_t i = 0; i < nodes; ++i)
      for (std::uint32_t j = 0; j < nodes; ++j)
        if (i != j) edges.emplace_back(i, j);
    return Graph(nodes, edges);
  }

  std::size_t nodes() const { return nodes_; }
  std::size_t edges() const { return row_.size(); }
  std::uint32_t row(std::size_t e) const { return row_[e]; }
  std::uint32_t col(std::size_t e) const { return col_[e]; }
  std::size_t in_degree(std::size_t i) const { return in_degree_[i]; }

 private:
  std::size_t nodes_ = 0;
  std::vector<std::uint32_t> row_, col_;
  std::vector<std::size_t> in_degree_;
};

/// One batch of graphs for an EGNN: B samples of graph.nodes() nodes, rows ordered sample-major.
template <class T>
struct GraphInput {
  const Tensor<T, 2>& h;          // [B*N, node features]: invariant node features
  const Tensor<T, 2>& x;          // [B*N, D]: positions
  const Tensor<T, 2>& v;          // [B*N, D]: velocities (the velocity variant moves x along them)
  const Tensor<T, 2>& edge_attr;  // [B*E, edge features]: invariant edge attributes (0 columns allowed)
  const Tensor<T, 2>& raw;        // [B*N, raw features]: node data for the non-equivariant stream (0 columns allowed)
};

struct EGNNLayerOptions {
  std::size_t hidden = 64;
  std::size_t edge_features = 0;
  double coord_clamp = 100.0;  // |(x_i - x_j) phi_x(m_ij)| is clamped per component, as the reference code does
};

/// One EGNN layer (velocity variant, METHOD.md §8), for the current positions x and features h:
///   m_ij = phi_e([h_i, h_j, |x_i - x_j|², a_ij])                  phi_e = Linear-SiLU-Linear-SiLU
///   x_i' = x_i + mean_j clamp((x_i - x_j) phi_x(m_ij)) + phi_v(h_i) v_i
///   h_i' = h_i + phi_h([h_i, Σ_j m_ij])
/// phi_x = Linear-SiLU-Linear(H -> 1, no bias, Xavier gain 0.001), phi_v = Linear-SiLU-Linear(H -> 1),
/// phi_h = Linear-SiLU-Linear. The first edge Linear is applied per node (h W_i^T and h W_j^T once per node, then
/// gathered per edge), which saves most of its cost on dense graphs. Parameter names follow the reference code
/// (edge_mlp.0, edge_mlp.2, coord_mlp.0, coord_mlp.2, coord_mlp_vel.0, coord_mlp_vel.2, node_mlp.0, node_mlp.2).
template <class T, Backend B = Cpu>
class EGNNLayer {
 public:
  EGNNLayer() = default;
  EGNNLayer(EGNNLayerOptions options, Rng& rng) : options_(options) {
    const std::size_t hd = options.hidden;
    ACE_THROW_IF(hd == 0, invalid_argument, "EGNNLayerOptions::hidden must be >= 1");
    ACE_THROW_IF(!(options.coord_clamp > 0.0), invalid_argument, "EGNNLayerOptions::coord_clamp must be > 0, got ",
                 options.coord_clamp);
    edge1_ = Dense<T, B>(2 * hd + 1 + options.edge_features, hd, rng);
    edge2_ = Dense<T, B>(hd, hd, rng);
    node1_ = Dense<T, B>(2 * hd, hd, rng);
    node2_ = Dense<T, B>(hd, hd, rng);
    coord_ = SiluMlp<T, B>(hd, hd, 1, rng, {.bias = false, .init = DenseInit::xavier, .gain = 0.001});
    vel_ = SiluMlp<T, B>(hd, hd, 1, rng);
  }

  std::size_t hidden() const { return options_.hidden; }

  /// (h, x) -> (h_out, x_out) for a batch on `graph`. h, x, v and edge_attr must stay alive until backward. With
  /// `features` false the feature update is skipped (h_out is left alone): for a last layer whose h reaches nothing.
  void forward(const Graph& graph, const Tensor<T, 2>& h, const Tensor<T, 2>& x, const Tensor<T, 2>& v,
               const Tensor<T, 2>& edge_attr, Tensor<T, 2>& h_out, Tensor<T, 2>& x_out, bool features = true) {
    const std::size_t hd = options_.hidden, nn = graph.nodes(), ne = graph.edges();
    const std::size_t rows = h.shape()[0], dim = x.shape()[1], batch = rows / nn, erows = batch * ne;
    ACE_THROW_IF(h.shape()[1] != hd || rows % nn != 0 || x.shape()[0] != rows || v.shape() != x.shape() ||
                     edge_attr.shape()[0] != erows || edge_attr.shape()[1] != options_.edge_features,
                 shape_error, "EGNNLayer::forward: h [", rows, ", ", h.shape()[1], "], x [", x.shape()[0], ", ", dim,
                 "], v [", v.shape()[0], ", ", v.shape()[1], "], edge_attr [", edge_attr.shape()[0], ", ",
                 edge_attr.shape()[1], "] do not fit ", nn, " nodes, ", ne, " edges per graph, hidden ", hd, " and ",
                 options_.edge_features, " edge features");
    graph_ = &graph;
    features_ = features;
    h_ = &h;
    x_ = &x;
    v_ = &v;
    a_ = &edge_attr;

    // Per-node halves of the first edge Linear: p = h W_i^T, q = h W_j^T.
    const auto w1 = view(std::as_const(edge1_.weight()));
    ensure_shape(p_, rows, hd);
    ensure_shape(q_, rows, hd);
    B::template gemm<T>(Transpose::no, Transpose::yes, T(1), view(h), w1.columns(0, hd), T(0), view(p_));
    B::template gemm<T>(Transpose::no, Transpose::yes, T(1), view(h), w1.columns(hd, hd), T(0), view(q_));
    ensure_shape(diff_, erows, dim);
    ensure_shape(radial_, erows, 1);
    ensure_shape(z1_, erows, hd);
    const T* bias1 = edge1_.bias().data();
    ACE_OMP_FOR(batch >= 8)
    for (std::size_t b = 0; b < batch; ++b) {
      for (std::size_t e = 0; e < ne; ++e) {
        const std::size_t er = b * ne + e, i = b * nn + graph.row(e), j = b * nn + graph.col(e);
        T& radial = radial_(er, 0);
        radial = T(0);
        for (std::size_t k = 0; k < dim; ++k) {
          const T d = x(i, k) - x(j, k);
          diff_(er, k) = d;
          radial += d * d;
        }
        T* z = &z1_(er, 0);
        const T* pi = &p_(i, 0);
        const T* qj = &q_(j, 0);
        for (std::size_t c = 0; c < hd; ++c) z[c] = pi[c] + qj[c] + bias1[c] + radial * w1.data[c * w1.stride + 2 * hd];
      }
    }
    if (options_.edge_features > 0)
      B::template gemm<T>(Transpose::no, Transpose::yes, T(1), view(edge_attr),
                          w1.columns(2 * hd + 1, options_.edge_features), T(1), view(z1_));
    detail::silu_forward(z1_, sig1_, s1_);
    edge2_.forward(view(s1_), z2_);
    detail::silu_forward(z2_, sig2_, m_);

    // Coordinates: mean of the clamped relative moves, plus phi_v(h_i) v_i.
    const Tensor<T, 2>& cw = coord_.forward(view(std::as_const(m_)));  // phi_x(m_ij)
    const Tensor<T, 2>& cv = vel_.forward(view(h));                    // phi_v(h_i)
    ensure_shape(x_out, rows, dim);
    ensure_shape(agg_, rows, hd);
    const T clamp = static_cast<T>(options_.coord_clamp);
    ACE_OMP_FOR(batch >= 8)
    for (std::size_t b = 0; b < batch; ++b) {
      for (std::size_t n = 0; n < nn; ++n) {
        const std::size_t r = b * nn + n;
        for (std::size_t k = 0; k < dim; ++k) x_out(r, k) = T(0);
        for (std::size_t c = 0; c < hd; ++c) agg_(r, c) = T(0);
      }
      for (std::size_t e = 0; e < ne; ++e) {
        const std::size_t er = b * ne + e, i = b * nn + graph.row(e);
        for (std::size_t k = 0; k < dim; ++k) x_out(i, k) += std::clamp(diff_(er, k) * cw(er, 0), -clamp, clamp);
        if (!features) continue;
        const T* m = &m_(er, 0);
        T* a = &agg_(i, 0);
        for (std::size_t c = 0; c < hd; ++c) a[c] += m[c];
      }
      for (std::size_t n = 0; n < nn; ++n) {
        const std::size_t r = b * nn + n;
        const T inv = T(1) / static_cast<T>(std::max<std::size_t>(graph.in_degree(n), 1));
        for (std::size_t k = 0; k < dim; ++k) x_out(r, k) = x(r, k) + inv * x_out(r, k) + cv(r, 0) * v(r, k);
      }
    }

    if (!features) return;
    // Features: h + phi_h([h, Σ_j m_ij]).
    const auto wn = view(std::as_const(node1_.weight()));
    ensure_shape(z5_, rows, hd);
    B::template gemm<T>(Transpose::no, Transpose::yes, T(1), view(h), wn.columns(0, hd), T(0), view(z5_));
    B::template gemm<T>(Transpose::no, Transpose::yes, T(1), view(std::as_const(agg_)), wn.columns(hd, hd), T(1),
                        view(z5_));
    as_matrix(z5_).rowwise() += as_matrix(view(std::as_const(node1_.bias()))).row(0);
    detail::silu_forward(z5_, sig5_, s5_);
    node2_.forward(view(s5_), h_out);
    as_matrix(h_out) += as_matrix(h);
  }

  /// Given dL/dh_out and dL/dx_out: accumulates the parameter gradients and writes dL/dh and dL/dx (the gradient
  /// with respect to the positions flows through x_i - x_j and the residual; velocities and edge attributes are data).
  /// After a forward without the feature update, dh_out is not read.
  void backward(const Tensor<T, 2>& dh_out, const Tensor<T, 2>& dx_out, Tensor<T, 2>& dh, Tensor<T, 2>& dx) {
    ACE_THROW_IF(graph_ == nullptr, invalid_argument, "EGNNLayer::backward called before forward");
    const Graph& graph = *graph_;
    const std::size_t hd = options_.hidden, nn = graph.nodes(), ne = graph.edges();
    const std::size_t rows = h_->shape()[0], dim = x_->shape()[1], batch = rows / nn;
    ACE_THROW_IF((features_ && dh_out.shape() != h_->shape()) || dx_out.shape() != x_->shape(), shape_error,
                 "EGNNLayer::backward: gradients of shape [", dh_out.shape()[0], ", ", dh_out.shape()[1], "] and [",
                 dx_out.shape()[0], ", ", dx_out.shape()[1], "] for h [", rows, ", ", hd, "] and x [", rows, ", ",
                 dim, "]");
    ensure_shape(dh, rows, hd);
    const MatrixRef<T> dh_view = view(dh);
    const Tensor<T, 2>& cw = coord_.output();

    // Node update: h_out = h + node2(silu(z5)), z5 = h Wa^T + agg Wb^T + b.
    ensure_shape(dagg_, rows, hd);
    if (!features_) {
      B::fill(dh, T(0));
      B::fill(dagg_, T(0));
    } else {
      ensure_shape(ds5_, rows, hd);
      node2_.backward(view(s5_), view(dh_out), view(ds5_));
      detail::silu_backward(sig5_, s5_, ds5_);
      auto& wn = node1_.weight();
      auto& gn = node1_.weight_grad();
      B::template gemm<T>(Transpose::yes, Transpose::no, T(1), view(std::as_const(ds5_)), view(*h_), T(1),
                          view(gn).columns(0, hd));
      B::template gemm<T>(Transpose::yes, Transpose::no, T(1), view(std::as_const(ds5_)), view(std::as_const(agg_)),
                          T(1), view(gn).columns(hd, hd));
      as_matrix(view(node1_.bias_grad())).row(0) += as_matrix(view(std::as_const(ds5_))).colwise().sum();
      as_matrix(dh_view) = as_matrix(dh_out);  // the residual
      B::template gemm<T>(Transpose::no, Transpose::no, T(1), view(std::as_const(ds5_)),
                          view(std::as_const(wn)).columns(0, hd), T(1), dh_view);
      B::template gemm<T>(Transpose::no, Transpose::no, T(1), view(std::as_const(ds5_)),
                          view(std::as_const(wn)).columns(hd, hd), T(0), view(dagg_));
    }

    // Velocity term: x_out += cv v, cv = vel2(silu(vel1(h))).
    ensure_shape(dcv_, rows, 1);
    for (std::size_t r = 0; r < rows; ++r) {
      T s = T(0);
      for (std::size_t k = 0; k < dim; ++k) s += dx_out(r, k) * (*v_)(r, k);
      dcv_(r, 0) = s;
    }
    vel_.backward(view(*h_), view(std::as_const(dcv_)), dh_view, T(1));

    // Coordinate messages and the edge model, per graph: dm, dc, d(diff) and dz1 row by row.
    ensure_shape(dx, rows, dim);
    ensure_shape(dm_, batch * ne, hd);
    ensure_shape(dc_, batch * ne, 1);
    const T clamp = static_cast<T>(options_.coord_clamp);
    ACE_OMP_FOR(batch >= 8)
    for (std::size_t b = 0; b < batch; ++b) {
      for (std::size_t e = 0; e < ne; ++e) {
        const std::size_t er = b * ne + e, i = b * nn + graph.row(e);
        const T inv = T(1) / static_cast<T>(std::max<std::size_t>(graph.in_degree(graph.row(e)), 1));
        T dc = T(0);
        for (std::size_t k = 0; k < dim; ++k) {
          const T t = diff_(er, k) * cw(er, 0);
          if (t >= -clamp && t <= clamp) dc += inv * dx_out(i, k) * diff_(er, k);
        }
        dc_(er, 0) = dc;
        const T* da = &dagg_(i, 0);
        T* dm = &dm_(er, 0);
        for (std::size_t c = 0; c < hd; ++c) dm[c] = da[c];  // Σ-aggregation passes dagg to every incoming edge
      }
    }
    coord_.backward(view(std::as_const(m_)), view(std::as_const(dc_)), view(dm_), T(1));
    detail::silu_backward(sig2_, m_, dm_);  // dm_ is now dz2
    ensure_shape(ds1_, batch * ne, hd);
    edge2_.backward(view(s1_), view(std::as_const(dm_)), view(ds1_));
    detail::silu_backward(sig1_, s1_, ds1_);  // ds1_ is now dz1

    // z1 = p_i + q_j + b + w_d |x_i - x_j|² + W_a a: gradients of W (per block), b, and of p, q and x.
    auto& w1 = edge1_.weight();
    auto g1 = view(edge1_.weight_grad());
    const auto dz1 = view(std::as_const(ds1_));
    if (options_.edge_features > 0)
      B::template gemm<T>(Transpose::yes, Transpose::no, T(1), dz1, view(*a_), T(1),
                          g1.columns(2 * hd + 1, options_.edge_features));
    as_matrix(view(edge1_.bias_grad())).row(0) += as_matrix(dz1).colwise().sum();
    ensure_shape(dp_, rows, hd);
    ensure_shape(dq_, rows, hd);
    ACE_OMP_FOR(batch >= 8)
    for (std::size_t b = 0; b < batch; ++b) {
      for (std::size_t n = 0; n < nn; ++n) {
        const std::size_t r = b * nn + n;
        for (std::size_t c = 0; c < hd; ++c) dp_(r, c) = dq_(r, c) = T(0);
        for (std::size_t k = 0; k < dim; ++k) dx(r, k) = dx_out(r, k);  // the residual
      }
      for (std::size_t e = 0; e < ne; ++e) {
        const std::size_t er = b * ne + e, i = b * nn + graph.row(e), j = b * nn + graph.col(e);
        const T* dz = &ds1_(er, 0);
        T* dpi = &dp_(i, 0);
        T* dqj = &dq_(j, 0);
        T dr = T(0);
        for (std::size_t c = 0; c < hd; ++c) {
          dpi[c] += dz[c];
          dqj[c] += dz[c];
          dr += dz[c] * w1(c, 2 * hd);
        }
        for (std::size_t k = 0; k < dim; ++k) {
          const T d = diff_(er, k);
          const T t = d * cw(er, 0);
          T g = T(2) * dr * d;  // through |x_i - x_j|²
          if (t >= -clamp && t <= clamp) {  // through the clamped move (x_i - x_j) c_ij, averaged at i
            const T inv = T(1) / static_cast<T>(std::max<std::size_t>(graph.in_degree(graph.row(e)), 1));
            g += inv * dx_out(i, k) * cw(er, 0);
          }
          dx(i, k) += g;
          dx(j, k) -= g;
        }
      }
    }
    // d w_d = Σ_e dz1[e] |x_i - x_j|²: the radial column of W.
    for (std::size_t er = 0; er < batch * ne; ++er)
      for (std::size_t c = 0; c < hd; ++c) g1.data[c * g1.stride + 2 * hd] += ds1_(er, c) * radial_(er, 0);
    B::template gemm<T>(Transpose::yes, Transpose::no, T(1), view(std::as_const(dp_)), view(*h_), T(1),
                        g1.columns(0, hd));
    B::template gemm<T>(Transpose::yes, Transpose::no, T(1), view(std::as_const(dq_)), view(*h_), T(1),
                        g1.columns(hd, hd));
    B::template gemm<T>(Transpose::no, Transpose::no, T(1), view(std::as_const(dp_)),
                        view(std::as_const(w1)).columns(0, hd), T(1), dh_view);
    B::template gemm<T>(Transpose::no, Transpose::no, T(1), view(std::as_const(dq_)),
                        view(std::as_const(w1)).columns(hd, hd), T(1), dh_view);
  }

  template <class F>
  void for_each_parameter(const std::string& prefix, F&& f) {
    edge1_.for_each_parameter(prefix + "edge_mlp.0.", f);
    edge2_.for_each_parameter(prefix + "edge_mlp.2.", f);
    node1_.for_each_parameter(prefix + "node_mlp.0.", f);
    node2_.for_each_parameter(prefix + "node_mlp.2.", f);
    coord_.for_each_parameter(prefix + "coord_mlp.", f);
    vel_.for_each_parameter(prefix + "coord_mlp_vel.", f);
  }

 private:
  EGNNLayerOptions options_;
  Dense<T, B> edge1_, edge2_, node1_, node2_;
  SiluMlp<T, B> coord_, vel_;  // phi_x and phi_v
  const Graph* graph_ = nullptr;
  bool features_ = true;
  const Tensor<T, 2>*h_ = nullptr, *x_ = nullptr, *v_ = nullptr, *a_ = nullptr;
  // forward caches
  Tensor<T, 2> p_, q_, diff_, radial_, z1_, sig1_, s1_, z2_, sig2_, m_, agg_, z5_,
      sig5_, s5_;
  // backward buffers
  Tensor<T, 2> ds5_, dagg_, dcv_, dm_, dc_, ds1_, dp_, dq_;
};

struct EGNNOptions {
  std::size_t node_features = 1;  // columns of GraphInput::h
  std::size_t edge_features = 0;  // columns of GraphInput::edge_attr
  std::size_t raw_features = 0;   // columns of GraphInput::raw (only the relaxed branches read them)
  std::size_t hidden = 64;
  std::size_t layers = 4;
  std::size_t dim = 3;            // the space the points live in
  bool relaxed = false;           // add ACE's non-equivariant branches, two gammas per layer
  double coord_clamp = 100.0;
};

/// An EGNN that predicts positions: h^0 = Linear(node_features -> hidden)(h), then `layers` EGNN layers on
/// (h, x); the output is x after the last layer. Equivariant to rotations, reflections and translations of x and v
/// (and to permutations of the nodes that preserve the graph), invariant data h, edge_attr.
///
/// With `relaxed`, each layer l also gets ACE's non-equivariant branches (METHOD.md §2), on the node's raw input
/// u_i = [x_i^l, v_i, raw_i] (absolute coordinates, velocity and raw node data, e.g. charges):
///   h^{l+1} = EGNN_h + gamma_h^l * MLP_h([h^l_i, u_i]),   x^{l+1} = EGNN_x + gamma_x^l * MLP_x(u_i)
/// (both Linear-SiLU-Linear, hidden wide), gammas initialised to 1, exposed as "layers.<l>.gamma" [gamma_h, gamma_x]
/// with Role::gamma. With the relaxation off (set_relaxation(false)) the branches are skipped: the network is the
/// exactly equivariant EGNN at no extra cost, whatever the gammas hold.
template <class T, Backend B = Cpu>
class EGNN {
 public:
  using scalar = T;

  EGNN(Graph graph, EGNNOptions options, Rng& rng) : graph_(std::move(graph)), options_(options) {
    ACE_THROW_IF(options.layers == 0 || options.hidden == 0 || options.dim == 0 || options.node_features == 0,
                 invalid_argument, "EGNNOptions: layers, hidden, dim and node_features must be >= 1, got layers ",
                 options.layers, ", hidden ", options.hidden, ", dim ", options.dim, ", node_features ",
                 options.node_features);
    embedding_ = Dense<T, B>(options.node_features, options.hidden, rng);
    const std::size_t u = 2 * options.dim + options.raw_features;
    for (std::size_t l = 0; l < options.layers; ++l) {
      Block block;
      block.layer = EGNNLayer<T, B>({options.hidden, options.edge_features, options.coord_clamp}, rng);
      if (options.relaxed) {
        block.relax_h = SiluMlp<T, B>(options.hidden + u, options.hidden, options.hidden, rng);
        block.relax_x = SiluMlp<T, B>(u, options.hidden, options.dim, rng);
        block.gamma = Tensor<T, 2>({1, 2});
        block.gamma_grad = Tensor<T, 2>({1, 2});
        B::fill(block.gamma, T(1));
        B::fill(block.gamma_grad, T(0));
      }
      blocks_.push_back(std::move(block));
    }
    h_.resize(options.layers + 1);
    x_.resize(options.layers + 1);
    relaxation_ = options.relaxed;
  }

  const Graph& graph() const { return graph_; }
  const EGNNOptions& options() const { return options_; }

  /// Positions [B*N, dim] after the last layer (the network's own buffer, valid until the next forward). The
  /// input must stay alive until backward.
  const Tensor<T, 2>& forward(const GraphInput<T>& in) {
    const std::size_t rows = in.x.shape()[0];
    ACE_THROW_IF(in.x.shape()[1] != options_.dim || in.h.shape()[0] != rows || in.h.shape()[1] != options_.node_features ||
                     in.raw.shape()[0] != rows || in.raw.shape()[1] != options_.raw_features ||
                     rows % graph_.nodes() != 0,
                 shape_error, "EGNN::forward: x [", rows, ", ", in.x.shape()[1], "], h [", in.h.shape()[0], ", ",
                 in.h.shape()[1], "], raw [", in.raw.shape()[0], ", ", in.raw.shape()[1], "] for ", graph_.nodes(),
                 "-node graphs in ", options_.dim, " dimensions with ", options_.node_features,
                 " node features and ", options_.raw_features, " raw features");
    in_ = &in.h;
    embedding_.forward(view(in.h), h_[0]);
    x_[0] = in.x;
    const bool branches = options_.relaxed && relaxation_;
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      Block& k = blocks_[l];
      const bool last = l + 1 == blocks_.size();  // its feature update could not reach the output: skipped
      k.layer.forward(graph_, h_[l], x_[l], in.v, in.edge_attr, h_[l + 1], x_[l + 1], !last);
      if (!branches) continue;
      // input = [h, x, v, raw]; u = its last columns
      const std::size_t hd = options_.hidden, dim = options_.dim;
      ensure_shape(k.input, rows, hd + 2 * dim + options_.raw_features);
      auto m = as_matrix(k.input);
      m.leftCols(static_cast<Eigen::Index>(hd)) = as_matrix(h_[l]);
      m.middleCols(static_cast<Eigen::Index>(hd), static_cast<Eigen::Index>(dim)) = as_matrix(x_[l]);
      m.middleCols(static_cast<Eigen::Index>(hd + dim), static_cast<Eigen::Index>(dim)) = as_matrix(in.v);
      if (options_.raw_features > 0) m.rightCols(static_cast<Eigen::Index>(options_.raw_features)) = as_matrix(in.raw);
      const auto u = view(std::as_const(k.input)).columns(hd, k.input.shape()[1] - hd);
      if (!last) {
        as_matrix(h_[l + 1]) += k.gamma(0, 0) * as_matrix(k.relax_h.forward(view(std::as_const(k.input))));
      }
      as_matrix(x_[l + 1]) += k.gamma(0, 1) * as_matrix(k.relax_x.forward(u));
    }
    forward_branches_ = branches;
    return x_.back();
  }

  /// Given dL/d(output positions): accumulates every parameter gradient (gammas included when the branches ran)
  /// and leaves dL/dx (input positions) in position_gradient().
  void backward(const Tensor<T, 2>& dpos) {
    ACE_THROW_IF(in_ == nullptr, invalid_argument, "EGNN::backward called before forward");
    ACE_THROW_IF(dpos.shape() != x_.back().shape(), shape_error, "EGNN::backward: expected a gradient of shape [",
                 x_.back().shape()[0], ", ", x_.back().shape()[1], "], got [", dpos.shape()[0], ", ",
                 dpos.shape()[1], "]");
    const std::size_t rows = dpos.shape()[0], hd = options_.hidden, dim = options_.dim;
    dx_[0] = dpos;
    ensure_shape(dh_[0], rows, hd);
    B::fill(dh_[0], T(0));
    for (std::size_t l = blocks_.size(); l-- > 0;) {
      Block& k = blocks_[l];
      k.layer.backward(dh_[0], dx_[0], dh_[1], dx_[1]);
      if (forward_branches_) {
        ensure_shape(k.dinput, rows, k.input.shape()[1]);
        if (l + 1 < blocks_.size()) {
          // through the h branch: d input = (gamma_h dh) back through MLP_h
          k.gamma_grad(0, 0) += (as_matrix(dh_[0]).array() * as_matrix(k.relax_h.output()).array()).sum();
          ensure_shape(k.dout_h, rows, hd);
          as_matrix(k.dout_h) = k.gamma(0, 0) * as_matrix(dh_[0]);
          k.relax_h.backward(view(std::as_const(k.input)), view(std::as_const(k.dout_h)), view(k.dinput));
        } else {
          B::fill(k.dinput, T(0));  // the last layer's h branch reaches nothing
        }
        k.gamma_grad(0, 1) += (as_matrix(dx_[0]).array() * as_matrix(k.relax_x.output()).array()).sum();
        // through the x branch, into the u columns of dinput
        ensure_shape(k.dout_x, rows, dim);
        as_matrix(k.dout_x) = k.gamma(0, 1) * as_matrix(dx_[0]);
        const auto u = view(std::as_const(k.input)).columns(hd, k.input.shape()[1] - hd);
        k.relax_x.backward(u, view(std::as_const(k.dout_x)), view(k.dinput).columns(hd, u.cols), T(1));
        const auto di = as_matrix(view(std::as_const(k.dinput)));
        as_matrix(dh_[1]) += di.leftCols(static_cast<Eigen::Index>(hd));
        as_matrix(dx_[1]) += di.middleCols(static_cast<Eigen::Index>(hd), static_cast<Eigen::Index>(dim));
      }
      std::swap(dh_[0], dh_[1]);
      std::swap(dx_[0], dx_[1]);
    }
    embedding_.backward(view(*in_), view(std::as_const(dh_[0])));
  }
  /// dL/d(input positions) of the last backward.
  const Tensor<T, 2>& position_gradient() const { return dx_[0]; }

  /// Branches on (f_eq + gamma f_neq) or off (f_eq). Has no effect on an EGNN built without `relaxed`.
  void set_relaxation(bool on) { relaxation_ = on; }
  bool relaxation() const { return relaxation_ && options_.relaxed; }

  template <class F>
  void for_each_parameter(F&& f) {
    embedding_.for_each_parameter("embedding.", f);
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      Block& k = blocks_[l];
      const std::string prefix = detail::concat("layers.", l, ".");
      k.layer.for_each_parameter(prefix, f);
      if (!options_.relaxed) continue;
      k.relax_h.for_each_parameter(prefix + "relax_h.", f);
      k.relax_x.for_each_parameter(prefix + "relax_x.", f);
      f(detail::param_view(prefix + "gamma", k.gamma, k.gamma_grad, Role::gamma));
    }
  }

  /// The structure a checkpoint records.
  std::string signature() const {
    return detail::concat("EGNN(dim ", options_.dim, ", node ", options_.node_features, ", edge ",
                          options_.edge_features, ", raw ", options_.raw_features, ", hidden ", options_.hidden,
                          ", layers ", options_.layers, options_.relaxed ? ", relaxed" : "", ", graph ",
                          graph_.nodes(), " nodes ", graph_.edges(), " edges)");
  }

 private:
  struct Block {
    EGNNLayer<T, B> layer;
    SiluMlp<T, B> relax_h, relax_x;  // the non-equivariant branches (relaxed EGNN only)
    Tensor<T, 2> gamma, gamma_grad;
    Tensor<T, 2> input;                   // [h, u]: the branches' input (u = its last columns)
    Tensor<T, 2> dout_h, dout_x, dinput;  // backward buffers
  };

  Graph graph_;
  EGNNOptions options_;
  Dense<T, B> embedding_;
  std::vector<Block> blocks_;
  std::vector<Tensor<T, 2>> h_, x_;
  Tensor<T, 2> dh_[2], dx_[2];
  const Tensor<T, 2>* in_ = nullptr;
  bool relaxation_ = false, forward_branches_ = false;
};

/// A mini-batch of graphs with position targets, owning its tensors (see GraphInput for the shapes).
template <class T>
struct GraphBatch {
  Tensor<T, 2> h, x, v, edge_attr, raw, target;

  GraphInput<T> input() const { return {h, x, v, edge_attr, raw}; }

  /// The batch moved by the Euclidean transformation p -> R p + t: positions and targets rotated and translated,
  /// velocities rotated, invariant data (h, edge_attr) and raw node data unchanged. R may be any orthogonal matrix.
  GraphBatch transformed(const Eigen::MatrixXd& rotation, const Eigen::VectorXd& translation) const {
    const auto dim = static_cast<Eigen::Index>(x.shape()[1]);
    ACE_THROW_IF(rotation.rows() != dim || rotation.cols() != dim || translation.size() != dim, shape_error,
                 "GraphBatch::transformed: a ", rotation.rows(), " x ", rotation.cols(), " matrix and a ",
                 translation.size(), "-vector for points in ", dim, " dimensions");
    GraphBatch out = *this;
    const auto rt = rotation.transpose().template cast<T>().eval();
    const auto shift = translation.transpose().template cast<T>().eval();
    as_matrix(out.x) = (as_matrix(x) * rt).rowwise() + shift;
    as_matrix(out.target) = (as_matrix(target) * rt).rowwise() + shift;
    as_matrix(out.v) = as_matrix(v) * rt;
    return out;
  }
};

/// Copies the graphs `graphs` of `all` (a batch of graphs with `nodes` nodes and `edges` edges each) into `out`,
/// reusing out's buffers when the shapes match: mini-batches without allocations.
template <class T>
void select_graphs(const GraphBatch<T>& all, std::span<const std::size_t> graphs, std::size_t nodes,
                   std::size_t edges, GraphBatch<T>& out) {
  const std::size_t count = all.x.shape()[0] / nodes;
  ACE_THROW_IF(nodes == 0 || all.x.shape()[0] % nodes != 0 || all.edge_attr.shape()[0] != count * edges, shape_error,
               "select_graphs: a batch of ", all.x.shape()[0], " node rows and ", all.edge_attr.shape()[0],
               " edge rows is not made of graphs with ", nodes, " nodes and ", edges, " edges");
  const auto copy = [&](const Tensor<T, 2>& from, Tensor<T, 2>& to, std::size_t per) {
    const std::size_t cols = from.shape()[1];
    ensure_shape(to, graphs.size() * per, cols);
    for (std::size_t g = 0; g < graphs.size(); ++g) {
      ACE_THROW_IF(graphs[g] >= count, invalid_argument, "select_graphs: graph ", graphs[g], " of ", count);
      std::copy_n(from.data() + graphs[g] * per * cols, per * cols, to.data() + g * per * cols);
    }
  };
  copy(all.h, out.h, nodes);
  copy(all.x, out.x, nodes);
  copy(all.v, out.v, nodes);
  copy(all.raw, out.raw, nodes);
  copy(all.target, out.target, nodes);
  copy(all.edge_attr, out.edge_attr, edges);
}

struct EGNNRegressionOptions {
  /// Data parallelism: the batch's graphs are split into this many contiguous chunks, each run forward and backward
  /// on its own copy of the network in its own OpenMP thread (single-threaded GEMMs inside), and the gradients are
  /// summed. 1 = one pass over the whole batch (GEMMs and loops may still use several threads). Results depend on
  /// `workers` only at the rounding level (the order of the gradient sums), never on how many threads run them.
  std::size_t workers = 1;
};

/// An EGNN that regresses positions with the mean squared error over all coordinates, as a HomotopyModel for the
/// ACE trainer (batch = GraphBatch<T>).
template <class T, Backend B = Cpu>
class EGNNRegression {
 public:
  using scalar = T;
  using batch = GraphBatch<T>;

  explicit EGNNRegression(EGNN<T, B> net, EGNNRegressionOptions options = {})
      : net_(std::move(net)), workers_(options.workers) {
    ACE_THROW_IF(workers_ == 0, invalid_argument, "EGNNRegressionOptions::workers must be >= 1, got 0");
  }

  double loss_and_gradients(const batch& b) { return run(b, true); }
  /// The loss on a batch without gradients (evaluation), with the branches as currently set.
  double loss(const batch& b) { return run(b, false); }
  /// Predicted positions (the network's buffer).
  const Tensor<T, 2>& predict(const batch& b) { return net_.forward(b.input()); }

  void set_relaxation(bool on) { net_.set_relaxation(on); }
  std::string signature() const { return net_.signature() + " MSELoss"; }
  template <class F>
  void for_each_parameter(F&& f) {
    net_.for_each_parameter(f);
  }
  EGNN<T, B>& network() { return net_; }
  std::size_t workers() const { return workers_; }

 private:
  struct Worker {
    EGNN<T, B> net;
    MSELoss<T> loss;
    batch part;
    Tensor<T, 2> dy;
    std::vector<std::span<T>> values, grads;
  };

  double run(const batch& b, bool gradients) {
    const std::size_t nodes = net_.graph().nodes(), graphs = b.x.shape()[0] / nodes;
    const std::size_t w = std::min(workers_, graphs);
    if (w <= 1) {
      const double value = static_cast<double>(loss_.forward(net_.forward(b.input()), b.target));
      if (gradients) net_.backward(loss_.backward());
      return value;
    }
    prepare(w);
    std::vector<double> losses(w);
    const double total = static_cast<double>(b.x.size());
#if defined(_OPENMP)
    const int threads = std::min(static_cast<int>(w), omp_get_max_threads());
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
    for (std::size_t k = 0; k < w; ++k) {
      Worker& wk = workers_state_[k];
      const std::size_t first = graphs * k / w, last = graphs * (k + 1) / w;
      std::vector<std::size_t> idx(last - first);
      for (std::size_t g = first; g < last; ++g) idx[g - first] = g;
      select_graphs(b, idx, nodes, net_.graph().edges(), wk.part);
      wk.net.set_relaxation(net_.relaxation());
      for (std::size_t p = 0; p < wk.values.size(); ++p)  // this step's weights
        std::copy(values_[p].begin(), values_[p].end(), wk.values[p].begin());
      const T part = wk.loss.forward(wk.net.forward(wk.part.input()), wk.part.target);
      const T share = static_cast<T>(static_cast<double>(wk.part.x.size()) / total);
      losses[k] = static_cast<double>(part) * static_cast<double>(share);
      if (gradients) {
        ensure_shape(wk.dy, wk.part.x.shape()[0], wk.part.x.shape()[1]);
        as_matrix(wk.dy) = share * as_matrix(wk.loss.backward());
        for (auto& g : wk.grads) std::fill(g.begin(), g.end(), T(0));
        wk.net.backward(wk.dy);
      }
    }
    if (gradients)
      for (std::size_t k = 0; k < w; ++k)  // a fixed order: the same sums for any thread count
        for (std::size_t p = 0; p < grads_.size(); ++p)
          for (std::size_t i = 0; i < grads_[p].size(); ++i) grads_[p][i] += workers_state_[k].grads[p][i];
    double value = 0.0;
    for (double l : losses) value += l;
    return value;
  }

  void prepare(std::size_t w) {
    if (values_.empty())
      net_.for_each_parameter([&](ParamView<T> p) {
        values_.push_back(p.value);
        grads_.push_back(p.grad);
      });
    while (workers_state_.size() < w) {
      workers_state_.push_back(Worker{net_, {}, {}, {}, {}, {}});
      Worker& wk = workers_state_.back();
      wk.net.for_each_parameter([&](ParamView<T> p) {
        wk.values.push_back(p.value);
        wk.grads.push_back(p.grad);
      });
    }
  }

  EGNN<T, B> net_;
  MSELoss<T> loss_;
  std::size_t workers_;
  std::vector<Worker> workers_state_;  // std::vector<Worker>: spans stay valid, Worker's tensors live on the heap
  std::vector<std::span<T>> values_, grads_;
};

}  // namespace ace
