// SPDX-License-Identifier: MIT
// SEGNN, the steerable E(3)-equivariant graph network (Brandstetter et al., ICLR 2022) in the configuration the ACE
// paper trains on N-body, its relaxed form with ACE's non-equivariant branches, and the regression model the ACE
// trainer trains (docs/steerable.md).
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>
#include <string>
#include <utility>
#include <vector>

#include "ace/error.hpp"
#include "ace/models/graph_regression.hpp"
#include "ace/nn/core/loss.hpp"
#include "ace/nn/core/mlp.hpp"
#include "ace/nn/core/relaxation.hpp"
#include "ace/nn/graph/graph.hpp"
#include "ace/nn/module.hpp"
#include "ace/nn/steerable/gate.hpp"
#include "ace/nn/steerable/tensor_product.hpp"
#include "ace/random.hpp"
#include "ace/rep/o3.hpp"

namespace ace {

/// The attributes of SEGNN's N-body configuration: spherical harmonics up to degree 1 (1x0e + 1x1o).
using SEGNNAttributes = o3_spherical_harmonics_t<1, 1>;
/// Its hidden irreps: weight-balanced for width 64 with L = 1, 32x0e + 32x1o (128 numbers per node).
using SEGNNHidden = o3_weight_balanced_t<64, 1, SEGNNAttributes>;

struct SEGNNOptions {
  std::size_t layers = 4;
  bool relaxed = false;  // add ACE's non-equivariant branches, two gammas per layer
};

/// SEGNN for graphs of points that predicts positions (the N-body configuration of the ACE paper):
///  * edge attributes a_ij = Y^{<=L}(x_j - x_i) (unit direction, "integral" normalisation: component / √(4π));
///    node attributes a_i = the mean of the incoming edges' a_ij plus Y^{<=L}(v_i), with the 0e entry set to 1;
///  * node input [x_i - centroid, v_i, h_i] as 2x1o + NodeScalars x 0e (centroid = the mean position of the
///    sample's nodes, so the network is translation-equivariant; h = GraphInput::h, e.g. |v|);
///  * message scalars [|x_i - x_j|, the first EdgeScalars columns of GraphInput::edge_attr] (e.g. q_i q_j);
///  * embedding h^0 = TP(input, a_i); `layers` message-passing layers; then TP-gate(h, a_i), TP(·, a_i) -> 1x1o:
///    a displacement added to x.
/// Each layer: m_ij = TPgate(TPgate([h_i, h_j, scalars_ij], a_ij), a_ij); M_i = Σ_j m_ij;
///   u = TPgate([h_i, M_i], a_i) (+ γ0 MLP1([h_i, M_i]));  u = TP(u, a_i) (+ γ1 MLP2(u));  h_i += u,
/// the γ terms only with `relaxed` (ACE's branches on the flattened features: MLP1 = Linear(2D, 2D)-GELU-
/// Linear(2D, D)-GELU-Linear(D, D), MLP2 = Linear(D, 2D)-GELU-Linear(2D, D)-GELU-Linear(D, D), D = Hidden::dim),
/// gammas "layers.<l>.gamma" [γ0, γ1] initialised to 1. Without the branches (or with the relaxation off) the network
/// is exactly E(3)-equivariant (rotations, reflections, translations of x and v) and permutation-equivariant.
/// Hidden: an O3Irreps whose first term holds scalars (the gates'); LAttr: the attributes' degree (<= 3).
template <class T, Backend B = Cpu, class Hidden = SEGNNHidden, int LAttr = 1, std::size_t NodeScalars = 1,
          std::size_t EdgeScalars = 1>
class SEGNN {
 public:
  using scalar = T;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;
  using attributes = o3_spherical_harmonics_t<1, LAttr>;
  using input = O3Irreps<Mul<2, Vector1o>, Mul<NodeScalars, Scalar0e>>;
  using hidden = Hidden;
  using output = O3Irreps<Mul<1, Vector1o>>;
  using message_input = o3_concat_t<Hidden, Hidden, O3Irreps<Mul<1 + EdgeScalars, Scalar0e>>>;
  using update_input = o3_concat_t<Hidden, Hidden>;
  static constexpr std::size_t D = Hidden::dim, A = attributes::dim;

  SEGNN(Graph graph, SEGNNOptions options, Rng& rng) : graph_(std::move(graph)), options_(options) {
    ACE_THROW_IF(options.layers == 0, invalid_argument, "SEGNNOptions::layers must be >= 1, got 0");
    embedding_ = Embedding(rng);
    for (std::size_t l = 0; l < options.layers; ++l) {
      Layer k;  // its tensor products drawn in this order: message1, message2, update1, update2
      k.message1 = MessageTP1(rng);
      k.message2 = MessageTP2(rng);
      k.update1 = UpdateTP1(rng);
      k.update2 = UpdateTP2(rng);
      if (options.relaxed) {
        k.mlp1 = Mlp<GELUOp, T, B>({2 * D, 2 * D, D, D}, rng);
        k.mlp2 = Mlp<GELUOp, T, B>({D, 2 * D, D, D}, rng);
        k.relax = Relaxation<T, B>(2);
      }
      layers_.push_back(std::move(k));
    }
    head1_ = HeadTP1(rng);
    head2_ = HeadTP2(rng);
    h_.resize(options.layers + 1);
    build_sums();
    set_relaxation(options.relaxed);
  }
  const Graph& graph() const { return graph_; }
  const SEGNNOptions& options() const { return options_; }

  /// Predicted positions [samples*N, 3] (the network's buffer, valid until the next forward). The input must stay
  /// alive until backward.
  const tensor& forward(const GraphInput<T, B>& in) {
    const std::size_t rows = in.x.shape()[0], n = graph_.nodes();
    ACE_THROW_IF(in.x.shape()[1] != 3 || in.v.shape()[0] != rows || in.v.shape()[1] != 3 || in.h.shape()[0] != rows ||
                     in.h.shape()[1] != NodeScalars || rows % n != 0 ||
                     in.edge_attr.shape()[0] != rows / n * graph_.edges() || in.edge_attr.shape()[1] < EdgeScalars,
                 shape_error, "SEGNN::forward: x [", rows, ", ", in.x.shape()[1], "], v [", in.v.shape()[0], ", ",
                 in.v.shape()[1], "], h [", in.h.shape()[0], ", ", in.h.shape()[1], "], edge_attr [",
                 in.edge_attr.shape()[0], ", ", in.edge_attr.shape()[1], "] for ", n, "-node graphs with ",
                 graph_.edges(), " edges in 3 dimensions, ", NodeScalars, " node scalars and at least ", EdgeScalars,
                 " edge scalars");
    forwarded_ = true;
    const std::size_t graphs = rows / n;
    geometry(in, graphs);
    const auto na = view(std::as_const(node_attr_)), ea = view(std::as_const(edge_sh_));
    const tensor* h = &embedding_.forward(view(std::as_const(input_)), na);
    const bool branches = relaxation();
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      layer_forward(layers_[l], *h, na, ea, graphs, branches, h_[l + 1]);
      h = &h_[l + 1];
    }
    const tensor& d = head2_.forward(view(head1_.forward(view(*h), na)), na);
    ensure_shape(out_, rows, 3);
    B::add(view(in.x), view(d), view(out_));
    forward_branches_ = branches;
    return out_;
  }

  /// Given dL/d(predicted positions): accumulates every parameter gradient (the gammas' when the branches ran). The
  /// geometric inputs (attributes, distances, positions) get no gradient.
  void backward(const tensor& dpos) {
    ACE_THROW_IF(!forwarded_, invalid_argument, "SEGNN::backward called before forward");
    ACE_THROW_IF(dpos.shape()[0] != out_.shape()[0] || dpos.shape()[1] != 3, shape_error,
                 "SEGNN::backward: expected a gradient of shape [", out_.shape()[0], ", 3], got [", dpos.shape()[0],
                 ", ", dpos.shape()[1], "]");
    const std::size_t rows = dpos.shape()[0];
    const tensor& dh1 = head2_.backward(dpos);
    ensure_shape(dh_, rows, D);
    head1_.backward_into(view(dh1), view(dh_), MatrixRef<T>{});
    for (std::size_t l = layers_.size(); l-- > 0;) layer_backward(layers_[l], rows / graph_.nodes());
    embedding_.backward(dh_);  // its input gradient is not needed
  }

  /// Branches on (f_eq + γ f_neq) or off (f_eq). No effect on a SEGNN built without `relaxed`.
  void set_relaxation(bool on) {
    relaxation_ = on;
    for (Layer& k : layers_) k.relax.set(on);
  }
  bool relaxation() const { return relaxation_ && options_.relaxed; }

  template <class F>
  void for_each_parameter(F&& f) {
    detail::for_each_prefixed(embedding_, "embedding", f);
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      Layer& k = layers_[l];
      const std::string p = detail::concat("layers.", l);
      detail::for_each_prefixed(k.message1, p + ".message1", f);
      detail::for_each_prefixed(k.message2, p + ".message2", f);
      detail::for_each_prefixed(k.update1, p + ".update1", f);
      detail::for_each_prefixed(k.update2, p + ".update2", f);
      if (!options_.relaxed) continue;
      detail::for_each_prefixed(k.mlp1, p + ".relax1", f);
      detail::for_each_prefixed(k.mlp2, p + ".relax2", f);
      f(k.relax.param(p + ".gamma"));
    }
    detail::for_each_prefixed(head1_, "head1", f);
    detail::for_each_prefixed(head2_, "head2", f);
  }

  /// The structure a checkpoint records.
  std::string signature() const {
    return detail::concat("SEGNN(input ", input::name(), ", hidden ", Hidden::name(), ", attributes ",
                          attributes::name(), ", message scalars ", 1 + EdgeScalars, ", layers ", options_.layers,
                          options_.relaxed ? ", relaxed" : "", ", graph ", graph_.nodes(), " nodes ", graph_.edges(),
                          " edges)");
  }

 private:
  using Embedding = O3TensorProduct<input, attributes, Hidden, T, B>;
  using MessageTP1 = O3GatedTensorProduct<message_input, attributes, Hidden, T, B>;
  using MessageTP2 = O3GatedTensorProduct<Hidden, attributes, Hidden, T, B>;
  using UpdateTP1 = O3GatedTensorProduct<update_input, attributes, Hidden, T, B>;
  using UpdateTP2 = O3TensorProduct<Hidden, attributes, Hidden, T, B>;
  using HeadTP1 = O3GatedTensorProduct<Hidden, attributes, Hidden, T, B>;
  using HeadTP2 = O3TensorProduct<Hidden, attributes, output, T, B>;

  struct Layer {
    MessageTP1 message1;
    MessageTP2 message2;
    UpdateTP1 update1;
    UpdateTP2 update2;
    Mlp<GELUOp, T, B> mlp1, mlp2;  // the non-equivariant branches (relaxed SEGNN only)
    Relaxation<T, B> relax;        // [γ0, γ1]
    tensor message_in, agg, update_in, u1, u2;  // u1, u2: the updates with their branches (relaxed runs)
    tensor d_agg, d_m2, d_update_in, d_u1, d_branch;
  };

  // A sum over edges per graph as a sparse map of the sample's flattened rows: column (i, c) of [samples, n w] sums
  // (scaled by `scale(i)`) columns (e, c) of [samples, e w] over the edges e into node i.
  struct EdgeSum {
    tensor_t<B, std::uint32_t, 2> first, index;
    tensor weight;
    std::size_t width = 0;
  };
  template <class Scale>
  EdgeSum edge_sum(std::size_t width, Scale&& scale) const {
    const std::size_t n = graph_.nodes();
    std::vector<std::uint32_t> first{0}, index;
    std::vector<T> weight;
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t c = 0; c < width; ++c) {
        for (std::size_t e = 0; e < graph_.edges(); ++e)
          if (graph_.row(e) == i) {
            index.push_back(static_cast<std::uint32_t>(e * width + c));
            weight.push_back(static_cast<T>(scale(i)));
          }
        first.push_back(static_cast<std::uint32_t>(index.size()));
      }
    EdgeSum s;
    s.first = index_tensor<B>(first);
    s.index = index_tensor<B>(index);
    s.weight = zeros<B, T>(1, weight.size());
    from_host_vector<B>(weight, view(s.weight));
    s.width = width;
    return s;
  }
  void build_sums() {
    messages_ = edge_sum(D, [](std::size_t) { return 1.0; });
    attribute_mean_ = edge_sum(A, [&](std::size_t i) {
      return 1.0 / static_cast<double>(std::max<std::size_t>(graph_.in_degree(i), 1));
    });
    std::vector<std::uint32_t> members;  // the centroid: a sum over each sample's nodes, scaled by 1 / n
    for (std::size_t c = 0; c < 3; ++c)
      for (std::size_t i = 0; i < graph_.nodes(); ++i) members.push_back(static_cast<std::uint32_t>(i * 3 + c));
    std::vector<std::uint32_t> first;
    for (std::size_t c = 0; c <= 3; ++c) first.push_back(static_cast<std::uint32_t>(c * graph_.nodes()));
    centroid_.first = index_tensor<B>(first);
    centroid_.index = index_tensor<B>(members);
    centroid_.weight = zeros<B, T>(1, members.size());
    B::fill(view(centroid_.weight), static_cast<T>(1.0 / static_cast<double>(graph_.nodes())));
    centroid_.width = 3;
  }
  // y [samples, n w] (flattened) = the sum's map of x [samples, e w] (flattened), or its adjoint accumulated.
  static MatrixRef<const T> per_sample(const tensor& t, std::size_t samples) {
    return MatrixRef<const T>{view(t).data, samples, t.size() / std::max<std::size_t>(samples, 1),
                              t.size() / std::max<std::size_t>(samples, 1)};
  }
  static MatrixRef<T> per_sample(tensor& t, std::size_t samples) {
    return MatrixRef<T>{view(t).data, samples, t.size() / std::max<std::size_t>(samples, 1),
                        t.size() / std::max<std::size_t>(samples, 1)};
  }
  static void apply(const EdgeSum& s, MatrixRef<const T> x, MatrixRef<T> y) {
    B::sparse_map(view(s.first), view(s.index), view(s.weight), x, y);
  }

  // The row indices of every sample's edge ends (row b e + e -> b n + row[e], b n + col[e]), built once per count.
  void index_rows(std::size_t graphs) {
    if (graphs == indexed_graphs_) return;
    std::vector<std::uint32_t> rows, cols;
    for (std::size_t b = 0; b < graphs; ++b)
      for (std::size_t e = 0; e < graph_.edges(); ++e) {
        rows.push_back(static_cast<std::uint32_t>(b * graph_.nodes() + graph_.row(e)));
        cols.push_back(static_cast<std::uint32_t>(b * graph_.nodes() + graph_.col(e)));
      }
    edge_row_ = index_tensor<B>(rows);
    edge_col_ = index_tensor<B>(cols);
    indexed_graphs_ = graphs;
  }

  // Attributes, message scalars and the node input of a batch.
  void geometry(const GraphInput<T, B>& in, std::size_t graphs) {
    const std::size_t rows = in.x.shape()[0], edges = graphs * graph_.edges();
    index_rows(graphs);
    const auto ri = view(std::as_const(edge_row_)), ci = view(std::as_const(edge_col_));
    // x_j - x_i per edge, its harmonics and length
    ensure_shape(rel_, edges, 3);
    ensure_shape(tmp3_, edges, 3);
    B::gather_rows(view(in.x), ci, view(rel_));
    B::gather_rows(view(in.x), ri, view(tmp3_));
    B::axpy(T(-1), view(std::as_const(tmp3_)), view(rel_));
    const T scale = static_cast<T>(0.5 / std::sqrt(std::numbers::pi));  // 1 / √(4π): "integral" normalisation
    ensure_shape(edge_sh_, edges, A);
    ensure_shape(scalars_, edges, 1 + EdgeScalars);
    ensure_shape(dist_, edges, 1);
    B::spherical_harmonics(view(std::as_const(rel_)), std::size_t{LAttr}, scale, view(edge_sh_), view(dist_));
    B::copy(view(std::as_const(dist_)), view(scalars_).columns(0, 1));
    B::copy(view(in.edge_attr).columns(0, EdgeScalars), view(scalars_).columns(1, EdgeScalars));
    // node attributes: mean of the incoming edges' harmonics + Y(v), the 0e entry set to 1
    ensure_shape(node_attr_, rows, A);
    ensure_shape(vel_sh_, rows, A);
    apply(attribute_mean_, per_sample(edge_sh_, graphs), per_sample(node_attr_, graphs));
    B::spherical_harmonics(view(in.v), std::size_t{LAttr}, scale, view(vel_sh_), MatrixRef<T>{});
    B::axpy(T(1), view(std::as_const(vel_sh_)), view(node_attr_));
    B::fill(view(node_attr_).columns(0, 1), T(1));
    // node input [x - centroid, v, h] as 2x1o + NodeScalars x 0e (component-major: x_x, v_x, x_y, v_y, x_z, v_z)
    ensure_shape(centroid_rows_, graphs, 3);
    ensure_shape(centered_, rows, 3);
    apply(centroid_, MatrixRef<const T>{view(in.x).data, graphs, 3 * graph_.nodes(), 3 * graph_.nodes()},
          view(centroid_rows_));
    node_of_sample(graphs);
    B::gather_rows(view(std::as_const(centroid_rows_)), view(std::as_const(sample_of_)), view(centered_));
    B::scale(T(-1), view(centered_));
    B::axpy(T(1), view(in.x), view(centered_));
    ensure_shape(input_, rows, input::dim);
    for (std::size_t c = 0; c < 3; ++c) {
      B::copy(view(std::as_const(centered_)).columns(c, 1), view(input_).columns(2 * c, 1));
      B::copy(view(in.v).columns(c, 1), view(input_).columns(2 * c + 1, 1));
    }
    B::copy(view(in.h), view(input_).columns(6, NodeScalars));
  }
  // sample_of_[b n + i] = b.
  void node_of_sample(std::size_t graphs) {
    if (sample_of_.size() == graphs * graph_.nodes()) return;
    std::vector<std::uint32_t> s;
    for (std::size_t b = 0; b < graphs; ++b)
      for (std::size_t i = 0; i < graph_.nodes(); ++i) s.push_back(static_cast<std::uint32_t>(b));
    sample_of_ = index_tensor<B>(s);
  }

  void layer_forward(Layer& k, const tensor& h, MatrixRef<const T> na, MatrixRef<const T> ea, std::size_t graphs,
                     bool branches, tensor& next) {
    const std::size_t rows = h.shape()[0], edges = graphs * graph_.edges();
    ensure_shape(k.message_in, edges, message_input::dim);
    const auto mi = view(k.message_in);
    B::gather_rows(view(h), view(std::as_const(edge_row_)), mi.columns(0, D));  // h_i (the receiving node)
    B::gather_rows(view(h), view(std::as_const(edge_col_)), mi.columns(D, D));  // h_j
    B::copy(view(std::as_const(scalars_)), mi.columns(2 * D, 1 + EdgeScalars));
    const tensor& m1 = k.message1.forward(view(std::as_const(k.message_in)), ea);
    const tensor& m2 = k.message2.forward(view(m1), ea);
    ensure_shape(k.agg, rows, D);
    apply(messages_, per_sample(m2, graphs), per_sample(k.agg, graphs));
    ensure_shape(k.update_in, rows, 2 * D);
    B::copy(view(h), view(k.update_in).columns(0, D));
    B::copy(view(std::as_const(k.agg)), view(k.update_in).columns(D, D));
    const auto ui = view(std::as_const(k.update_in));
    // f_eq's output, or (with the branches) a copy of it that the branch is added to
    const auto relaxed = [&](std::size_t i, const tensor& eq, auto& mlp, MatrixRef<const T> in, tensor& out) {
      if (!branches) return &eq;
      ensure_shape(out, rows, D);
      B::copy(view(eq), view(out));
      k.relax.add_branch(i, view(mlp.forward(in)), view(out));
      return &std::as_const(out);
    };
    const tensor* u1 = relaxed(0, k.update1.forward(ui, na), k.mlp1, ui, k.u1);
    const tensor* u2 = relaxed(1, k.update2.forward(view(*u1), na), k.mlp2, view(*u1), k.u2);
    ensure_shape(next, rows, D);
    B::add(view(h), view(*u2), view(next));  // the residual
  }

  // dh_ holds dL/d(the layer's output); leaves dL/d(its input) there.
  void layer_backward(Layer& k, std::size_t graphs) {
    const std::size_t rows = dh_.shape()[0];
    const bool branches = forward_branches_;
    const auto dout = view(std::as_const(dh_));  // dL/du2 = dL/dnext (the residual passes it on unchanged)
    ensure_shape(k.d_u1, rows, D);
    k.update2.backward_into(dout, view(k.d_u1), MatrixRef<T>{});
    if (branches) {
      ensure_shape(k.d_branch, rows, D);
      k.relax.branch_backward(1, dout, view(k.mlp2.output()), view(k.d_branch));
      k.mlp2.backward_into(view(std::as_const(k.d_branch)), view(k.d_u1), T(1));
    }
    ensure_shape(k.d_update_in, rows, 2 * D);
    k.update1.backward_into(view(std::as_const(k.d_u1)), view(k.d_update_in), MatrixRef<T>{});
    if (branches) {
      k.relax.branch_backward(0, view(std::as_const(k.d_u1)), view(k.mlp1.output()), view(k.d_branch));
      k.mlp1.backward_into(view(std::as_const(k.d_branch)), view(k.d_update_in), T(1));
    }
    B::axpy(T(1), view(std::as_const(k.d_update_in)).columns(0, D), view(dh_));
    ensure_shape(k.d_agg, rows, D);
    B::copy(view(std::as_const(k.d_update_in)).columns(D, D), view(k.d_agg));
    ensure_shape(k.d_m2, graphs * graph_.edges(), D);
    B::fill(view(k.d_m2), T(0));
    B::sparse_map_adjoint(view(messages_.first), view(messages_.index), view(messages_.weight),
                          per_sample(std::as_const(k.d_agg), graphs), per_sample(k.d_m2, graphs));
    const tensor& dmi = k.message1.backward(k.message2.backward(k.d_m2));
    B::scatter_add_rows(view(dmi).columns(0, D), view(std::as_const(edge_row_)), view(dh_));
    B::scatter_add_rows(view(dmi).columns(D, D), view(std::as_const(edge_col_)), view(dh_));
  }

  Graph graph_;
  SEGNNOptions options_;
  Embedding embedding_;
  std::vector<Layer> layers_;
  HeadTP1 head1_;
  HeadTP2 head2_;
  EdgeSum messages_, attribute_mean_, centroid_;
  tensor_t<B, std::uint32_t, 2> edge_row_, edge_col_, sample_of_;
  std::size_t indexed_graphs_ = 0;
  tensor rel_, tmp3_, edge_sh_, dist_, scalars_, node_attr_, vel_sh_, centroid_rows_, centered_, input_, out_, dh_;
  std::vector<tensor> h_;
  bool relaxation_ = false, forward_branches_ = false, forwarded_ = false;
};

/// A SEGNN that regresses positions with the mean squared error over all coordinates, as a HomotopyModel for the ACE
/// trainer (batch = GraphBatch<T, B>; data-parallel workers: GraphRegressionOptions).
template <class T, Backend B = Cpu, class Net = SEGNN<T, B>>
using SEGNNRegression = GraphRegression<T, B, Net>;

}  // namespace ace
