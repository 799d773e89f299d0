// SPDX-License-Identifier: MIT
// One layer of the E(n)-equivariant graph network (Satorras, Hoogeboom, Welling 2021), velocity variant, with forward
// and backward by hand on batches of graphs that share one edge list (docs/method.md §8).
#pragma once

#include <cstddef>
#include <string>
#include <utility>

#include "ace/backend/egnn_fused.hpp"
#include "ace/backend/ops.hpp"
#include "ace/error.hpp"
#include "ace/nn/core/linear.hpp"
#include "ace/nn/core/mlp.hpp"
#include "ace/nn/graph/graph.hpp"
#include "ace/nn/module.hpp"
#include "ace/random.hpp"

namespace ace {

struct EGNNLayerOptions {
  std::size_t hidden = 64;
  std::size_t edge_features = 0;
  double coord_clamp = 100.0;  // |(x_i - x_j) phi_x(m_ij)| is clamped per component, as the reference code does
  bool fused = true;           // one fused operation per direction where the backend has them (FusedEgnnBackend)
};

/// One EGNN layer (velocity variant), for the current positions x and features h:
///   m_ij = phi_e([h_i, h_j, |x_i - x_j|², a_ij])                  phi_e = Linear-SiLU-Linear-SiLU
///   x_i' = x_i + mean_j clamp((x_i - x_j) phi_x(m_ij)) + phi_v(h_i) v_i
///   h_i' = h_i + phi_h([h_i, Σ_j m_ij])
/// phi_x = Linear-SiLU-Linear(H -> 1, no bias, Xavier gain 0.001), phi_v = Linear-SiLU-Linear(H -> 1),
/// phi_h = Linear-SiLU-Linear. The first edge Linear is applied per node (h W_i^T and h W_j^T once per node, then
/// gathered per edge by the backend's egnn_edge_input), which saves most of its cost on dense graphs. A graph layer:
/// the layer protocol with several inputs and outputs (forward keeps views of them for backward, which accumulates
/// the parameter gradients). On a backend that models FusedEgnnBackend (the CUDA backend and its emulation) the layer
/// runs as one fused forward operation and one fused backward operation followed by the weight gradients' GEMMs,
/// unless `fused` is off; the results are the same up to rounding. Parameter names follow the reference code
/// (edge_mlp.0, edge_mlp.2, coord_mlp.0, coord_mlp.2, coord_mlp_vel.0, coord_mlp_vel.2, node_mlp.0, node_mlp.2).
template <class T, Backend B = Cpu>
class EGNNLayer {
 public:
  using scalar = T;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;

  EGNNLayer() = default;
  EGNNLayer(EGNNLayerOptions options, Rng& rng) : options_(options) {
    const std::size_t hd = options.hidden;
    ACE_THROW_IF(hd == 0, invalid_argument, "EGNNLayerOptions::hidden must be >= 1");
    ACE_THROW_IF(!(options.coord_clamp > 0.0), invalid_argument, "EGNNLayerOptions::coord_clamp must be > 0, got ",
                 options.coord_clamp);
    const LinearOptions torch{.init = LinearInit::torch};
    edge1_ = Dense<T, B>(2 * hd + 1 + options.edge_features, hd, rng, torch);
    edge2_ = Dense<T, B>(hd, hd, rng, torch);
    node1_ = Dense<T, B>(2 * hd, hd, rng, torch);
    node2_ = Dense<T, B>(hd, hd, rng, torch);
    coord_ = SiluMlp<T, B>(hd, hd, 1, rng, {.bias = false, .init = LinearInit::xavier, .gain = 0.001});
    vel_ = SiluMlp<T, B>(hd, hd, 1, rng);
  }

  std::size_t hidden() const { return options_.hidden; }

  /// Whether forward runs the fused operations (the backend has them and EGNNLayerOptions::fused is on).
  bool fused() const { return FusedEgnnBackend<B, T> && options_.fused; }

  /// (h, x) -> (h_out, x_out) for a batch on `graph`. h, x, v and edge_attr must stay alive until backward. With
  /// `features` false the feature update is skipped (h_out is left alone): for a last layer whose h reaches nothing.
  /// `branches` (only where fused()): a relaxed EGNN's branches to run inside the fused operations, on this layer's
  /// h, x and v and the branches' own raw data (models/egnn.hpp).
  void forward(const GraphTensors<T, B>& graph, const tensor& h, const tensor& x, const tensor& v,
               const tensor& edge_attr, tensor& h_out, tensor& x_out, bool features = true,
               const EgnnBranchViews<T>& branches = {}) {
    ACE_THROW_IF(branches.on && !fused(), invalid_argument,
                 "EGNNLayer::forward: branches run inside the layer only where it is fused");
    const std::size_t hd = options_.hidden, nn = graph.nodes, ne = graph.edges;
    const std::size_t rows = h.shape()[0], dim = x.shape()[1], batch = nn == 0 ? 0 : rows / nn;
    ACE_THROW_IF(h.shape()[1] != hd || rows % nn != 0 || x.shape()[0] != rows || v.shape()[0] != rows ||
                     v.shape()[1] != dim || edge_attr.shape()[0] != batch * ne ||
                     edge_attr.shape()[1] != options_.edge_features,
                 shape_error, "EGNNLayer::forward: h [", rows, ", ", h.shape()[1], "], x [", x.shape()[0], ", ", dim,
                 "], v [", v.shape()[0], ", ", v.shape()[1], "], edge_attr [", edge_attr.shape()[0], ", ",
                 edge_attr.shape()[1], "] do not fit ", nn, " nodes, ", ne, " edges per graph, hidden ", hd, " and ",
                 options_.edge_features, " edge features");
    graph_ = &graph;
    gs_ = graph.shape(batch);
    features_ = features;
    h_.set(view(h));
    x_.set(view(x));
    v_.set(view(v));
    a_.set(view(edge_attr));
    fused_forward_ = false;
    branches_ = branches;
    if constexpr (FusedEgnnBackend<B, T>) {
      if (options_.fused) return forward_fused(h_out, x_out);
    }

    // Per-node halves of the first edge Linear: p = h W_i^T, q = h W_j^T; then per edge z1 = p_i + q_j + b + w_d r.
    const auto w1 = view(std::as_const(edge1_.weight()));
    ensure_shape(p_, rows, hd);
    ensure_shape(q_, rows, hd);
    B::gemm(Transpose::no, Transpose::yes, T(1), view(h), w1.columns(0, hd), T(0), view(p_));
    B::gemm(Transpose::no, Transpose::yes, T(1), view(h), w1.columns(hd, hd), T(0), view(q_));
    ensure_shape(diff_, gs_.edge_rows(), dim);
    ensure_shape(radial_, gs_.edge_rows(), 1);
    ensure_shape(z1_, gs_.edge_rows(), hd);
    B::egnn_edge_input(gs_, indices(graph.row), indices(graph.col), view(x), view(std::as_const(p_)),
                       view(std::as_const(q_)), view(std::as_const(edge1_.bias())), w1.columns(2 * hd, 1),
                       view(diff_), view(radial_), view(z1_));
    if (options_.edge_features > 0)
      B::gemm(Transpose::no, Transpose::yes, T(1), view(edge_attr), w1.columns(2 * hd + 1, options_.edge_features),
              T(1), view(z1_));
    ensure_shape(s1_, gs_.edge_rows(), hd);
    B::template map<SiLUOp>(view(std::as_const(z1_)), view(s1_));
    ensure_shape(m_, gs_.edge_rows(), hd);
    edge2_.template forward_activated<SiLUOp>(view(std::as_const(s1_)), view(m_));

    // Coordinates: mean of the clamped relative moves, plus phi_v(h_i) v_i; the sum of the messages at each node.
    const tensor& cw = coord_.forward(view(std::as_const(m_)));  // phi_x(m_ij)
    const tensor& cv = vel_.forward(view(h));                    // phi_v(h_i)
    ensure_shape(x_out, rows, dim);
    ensure_shape(agg_, rows, hd);
    B::egnn_aggregate(gs_, indices(graph.row), view(std::as_const(graph.inv_degree)), view(x), view(v),
                      view(std::as_const(diff_)), view(cw), view(cv), static_cast<T>(options_.coord_clamp),
                      features ? view(std::as_const(m_)) : MatrixRef<const T>{}, view(x_out), view(agg_));

    if (!features) return;
    // Features: h + phi_h([h, Σ_j m_ij]).
    const auto wn = view(std::as_const(node1_.weight()));
    ensure_shape(z5_, rows, hd);
    B::gemm(Transpose::no, Transpose::yes, T(1), view(h), wn.columns(0, hd), T(0), view(z5_));
    ensure_shape(s5_, rows, hd);
    gemm_bias_act<SiLUOp, B, T>(Transpose::no, Transpose::yes, T(1), view(std::as_const(agg_)), wn.columns(hd, hd),
                                T(1), view(std::as_const(node1_.bias())), view(z5_), view(s5_));
    const tensor& update = node2_.forward(view(std::as_const(s5_)));
    ensure_shape(h_out, rows, hd);
    B::add(view(update), view(h), view(h_out));
  }

  /// Given dL/dh_out and dL/dx_out: accumulates the parameter gradients and writes dL/dh and dL/dx (the gradient
  /// with respect to the positions flows through x_i - x_j and the residual; velocities and edge attributes are
  /// data). After a forward without the feature update, dh_out is not read. After a forward with branches, `branch`
  /// receives their gradients (EgnnLayerGradients) and dh, dx include their paths.
  void backward(const tensor& dh_out, const tensor& dx_out, tensor& dh, tensor& dx,
                const EgnnBranchGradients<T>& branch = {}) {
    ACE_THROW_IF(!h_, invalid_argument, "EGNNLayer::backward called before forward");  // then graph_ is this forward's
    const GraphTensors<T, B>& graph = *graph_;
    const std::size_t hd = options_.hidden, rows = h_.rows(), dim = x_.get().cols;
    ACE_THROW_IF((features_ && (dh_out.shape()[0] != rows || dh_out.shape()[1] != hd)) || dx_out.shape()[0] != rows ||
                     dx_out.shape()[1] != dim,
                 shape_error, "EGNNLayer::backward: gradients of shape [", dh_out.shape()[0], ", ", dh_out.shape()[1],
                 "] and [", dx_out.shape()[0], ", ", dx_out.shape()[1], "] for h [", rows, ", ", hd, "] and x [",
                 rows, ", ", dim, "]");
    if constexpr (FusedEgnnBackend<B, T>) {
      if (fused_forward_) return backward_fused(dh_out, dx_out, dh, dx, branch);
    }
    ensure_shape(dh, rows, hd);
    const tensor& cw = coord_.output();

    // Node update: h_out = h + node2(silu(z5)), z5 = h Wa^T + agg Wb^T + b.
    ensure_shape(dagg_, rows, hd);
    if (!features_) {
      B::fill(view(dh), T(0));
    } else {
      ensure_shape(ds5_, rows, hd);
      node2_.template backward_into_through<SiLUOp>(view(dh_out), view(std::as_const(z5_)), view(ds5_), T(0));
      const auto wn = view(std::as_const(node1_.weight()));
      const auto gn = view(node1_.weight_grad());
      B::gemm(Transpose::yes, Transpose::no, T(1), view(std::as_const(ds5_)), h_.get(), T(1), gn.columns(0, hd));
      B::gemm(Transpose::yes, Transpose::no, T(1), view(std::as_const(ds5_)), view(std::as_const(agg_)), T(1),
              gn.columns(hd, hd));
      B::sum_rows(view(std::as_const(ds5_)), T(1), view(node1_.bias_grad()));
      B::copy(view(dh_out), view(dh));  // the residual
      B::gemm(Transpose::no, Transpose::no, T(1), view(std::as_const(ds5_)), wn.columns(0, hd), T(1), view(dh));
      B::gemm(Transpose::no, Transpose::no, T(1), view(std::as_const(ds5_)), wn.columns(hd, hd), T(0), view(dagg_));
    }

    // Velocity term: x_out += cv v, cv = vel(h).
    ensure_shape(dcv_, rows, 1);
    B::row_dot(view(dx_out), v_.get(), view(dcv_));
    vel_.backward_into(view(std::as_const(dcv_)), view(dh), T(1));

    // Coordinate messages and the edge model: dm, dc per edge, then back through phi_x, phi_e.
    ensure_shape(dm_, gs_.edge_rows(), hd);
    ensure_shape(dc_, gs_.edge_rows(), 1);
    const T clamp = static_cast<T>(options_.coord_clamp);
    B::egnn_aggregate_backward(gs_, indices(graph.row), view(std::as_const(graph.inv_degree)),
                               view(std::as_const(diff_)), view(cw), clamp, view(dx_out),
                               features_ ? view(std::as_const(dagg_)) : MatrixRef<const T>{}, view(dc_), view(dm_));
    coord_.template backward_into_through<SiLUOp>(view(std::as_const(dc_)), view(edge2_.output()), view(dm_),
                                                  T(1));  // dm_ is now dz2
    ensure_shape(ds1_, gs_.edge_rows(), hd);
    edge2_.template backward_into_through<SiLUOp>(view(std::as_const(dm_)), view(std::as_const(z1_)), view(ds1_),
                                                  T(0));  // ds1_ is dz1

    // z1 = p_i + q_j + b + w_d |x_i - x_j|² + W_a a: gradients of W (per block), b, and of p, q and x.
    const auto w1 = view(std::as_const(edge1_.weight()));
    const auto g1 = view(edge1_.weight_grad());
    const auto dz1 = view(std::as_const(ds1_));
    if (options_.edge_features > 0)
      B::gemm(Transpose::yes, Transpose::no, T(1), dz1, a_.get(), T(1), g1.columns(2 * hd + 1, options_.edge_features));
    B::sum_rows(dz1, T(1), view(edge1_.bias_grad()));
    ensure_shape(dp_, rows, hd);
    ensure_shape(dq_, rows, hd);
    ensure_shape(dx, rows, dim);
    B::egnn_edge_input_backward(gs_, indices(graph.row), indices(graph.col), view(std::as_const(graph.inv_degree)),
                                view(std::as_const(diff_)), view(std::as_const(radial_)), view(cw), clamp,
                                view(dx_out), dz1, w1.columns(2 * hd, 1), view(dp_), view(dq_), view(dx),
                                g1.columns(2 * hd, 1));
    B::gemm(Transpose::yes, Transpose::no, T(1), view(std::as_const(dp_)), h_.get(), T(1), g1.columns(0, hd));
    B::gemm(Transpose::yes, Transpose::no, T(1), view(std::as_const(dq_)), h_.get(), T(1), g1.columns(hd, hd));
    B::gemm(Transpose::no, Transpose::no, T(1), view(std::as_const(dp_)), w1.columns(0, hd), T(1), view(dh));
    B::gemm(Transpose::no, Transpose::no, T(1), view(std::as_const(dq_)), w1.columns(hd, hd), T(1), view(dh));
  }

  template <class F>
  void for_each_parameter(F&& f) {
    detail::for_each_prefixed(edge1_, "edge_mlp.0", f);
    detail::for_each_prefixed(edge2_, "edge_mlp.2", f);
    detail::for_each_prefixed(node1_, "node_mlp.0", f);
    detail::for_each_prefixed(node2_, "node_mlp.2", f);
    detail::for_each_prefixed(coord_, "coord_mlp", f);
    detail::for_each_prefixed(vel_, "coord_mlp_vel", f);
  }

 private:
  static MatrixRef<const std::uint32_t> indices(const tensor_t<B, std::uint32_t, 2>& t) { return view(t); }

  // A buffer of the feature update: empty when the last forward skipped it.
  MatrixRef<T> feature_view(tensor& t) { return features_ ? view(t) : MatrixRef<T>{}; }

  // The layer's tensors as the fused operations see them (x_out and h_out only for the forward pass).
  EgnnLayerViews<T> fused_views(tensor* x_out, tensor* h_out) {
    const GraphTensors<T, B>& graph = *graph_;
    const auto w = [](const Dense<T, B>& d) { return view(d.weight()); };
    const auto b = [](const Dense<T, B>& d) { return view(d.bias()); };
    return {.gs = gs_, .row = indices(graph.row), .col = indices(graph.col),
            .inv_degree = view(std::as_const(graph.inv_degree)), .clamp = static_cast<T>(options_.coord_clamp),
            .features = features_, .h = h_.get(), .x = x_.get(), .v = v_.get(), .edge_attr = a_.get(),
            .edge1_w = w(edge1_), .edge1_b = b(edge1_), .edge2_w = w(edge2_), .edge2_b = b(edge2_),
            .coord1_w = w(coord_.first()), .coord1_b = b(coord_.first()), .coord2_w = w(coord_.second()),
            .vel1_w = w(vel_.first()), .vel1_b = b(vel_.first()), .vel2_w = w(vel_.second()),
            .vel2_b = b(vel_.second()), .node1_w = w(node1_), .node1_b = b(node1_), .node2_w = w(node2_),
            .node2_b = b(node2_), .p = view(p_), .q = view(q_), .zv = view(zv_), .sv = view(sv_), .cv = view(cv_),
            .agg = feature_view(agg_), .z5 = feature_view(z5_), .s5 = feature_view(s5_), .diff = view(diff_),
            .radial = view(radial_), .z1 = view(z1_), .s1 = view(s1_), .z2 = view(z2_), .m = view(m_), .zc = view(zc_), .sc = view(sc_),
            .cw = view(cw_), .x_out = x_out ? view(*x_out) : MatrixRef<T>{},
            .h_out = h_out && features_ ? view(*h_out) : MatrixRef<T>{}, .branches = branches_};
  }

  void forward_fused(tensor& h_out, tensor& x_out) {
    const std::size_t hd = options_.hidden, rows = h_.rows(), dim = x_.get().cols, edge_rows = gs_.edge_rows();
    for (tensor* t : {&p_, &q_, &zv_, &sv_}) ensure_shape(*t, rows, hd);
    if (features_)
      for (tensor* t : {&agg_, &z5_, &s5_, &h_out}) ensure_shape(*t, rows, hd);
    ensure_shape(cv_, rows, 1);
    ensure_shape(x_out, rows, dim);
    ensure_shape(diff_, edge_rows, dim);
    ensure_shape(radial_, edge_rows, 1);
    ensure_shape(cw_, edge_rows, 1);
    for (tensor* t : {&z1_, &s1_, &z2_, &m_, &zc_, &sc_}) ensure_shape(*t, edge_rows, hd);
    B::egnn_layer_forward(fused_views(&x_out, &h_out));
    fused_forward_ = true;
  }

  // The fused backward operation, then dW += dz^T input and db += Σ dz for every dense layer.
  void backward_fused(const tensor& dh_out, const tensor& dx_out, tensor& dh, tensor& dx,
                      const EgnnBranchGradients<T>& branch) {
    const std::size_t hd = options_.hidden, rows = h_.rows(), dim = x_.get().cols, edge_rows = gs_.edge_rows();
    ensure_shape(dh, rows, hd);
    ensure_shape(dx, rows, dim);
    for (tensor* t : {&dzv_, &dp_, &dq_}) ensure_shape(*t, rows, hd);
    if (features_)
      for (tensor* t : {&ds5_, &dagg_}) ensure_shape(*t, rows, hd);
    ensure_shape(dcv_, rows, 1);
    ensure_shape(dc_, edge_rows, 1);
    for (tensor* t : {&dzc_, &dm_, &ds1_}) ensure_shape(*t, edge_rows, hd);
    B::egnn_layer_backward(fused_views(nullptr, nullptr),
                           EgnnLayerGradients<T>{.dh_out = features_ ? view(dh_out) : MatrixRef<const T>{},
                                                 .dx_out = view(dx_out), .dh = view(dh), .dx = view(dx),
                                                 .dz5 = feature_view(ds5_), .dagg = feature_view(dagg_),
                                                 .dcv = view(dcv_), .dzv = view(dzv_), .dp = view(dp_), .dq = view(dq_),
                                                 .dcw = view(dc_), .dzc = view(dzc_), .dz2 = view(dm_),
                                                 .dz1 = view(ds1_), .branches = branch});
    const auto c = [](const tensor& t) { return view(t); };
    if (features_) {
      node2_.accumulate_gradients(view(dh_out), c(s5_));
      node1_.accumulate_gradients(c(ds5_), h_.get());
      node1_.accumulate_gradients(c(ds5_), c(agg_), hd, false);
    }
    vel_.second().accumulate_gradients(c(dcv_), c(sv_));
    vel_.first().accumulate_gradients(c(dzv_), h_.get());
    coord_.second().accumulate_gradients(c(dc_), c(sc_));
    coord_.first().accumulate_gradients(c(dzc_), c(m_));
    edge2_.accumulate_gradients(c(dm_), c(s1_));
    edge1_.accumulate_gradients(c(ds1_), c(radial_), 2 * hd);
    edge1_.accumulate_gradients(c(dp_), h_.get(), 0, false);
    edge1_.accumulate_gradients(c(dq_), h_.get(), hd, false);
    if (options_.edge_features > 0) edge1_.accumulate_gradients(c(ds1_), a_.get(), 2 * hd + 1, false);
  }

  EGNNLayerOptions options_;
  Dense<T, B> edge1_, edge2_, node1_, node2_;
  SiluMlp<T, B> coord_, vel_;  // phi_x and phi_v
  const GraphTensors<T, B>* graph_ = nullptr;
  GraphShape gs_;
  bool features_ = true, fused_forward_ = false;
  EgnnBranchViews<T> branches_;  // the last forward's (fused only)
  detail::ForwardRef<T> h_, x_, v_, a_;
  // forward caches (z2_ ... cv_: the fused forward's, which the generic one keeps inside the sub-layers)
  tensor p_, q_, diff_, radial_, z1_, s1_, m_, agg_, z5_, s5_, z2_, zc_, sc_, cw_, zv_, sv_, cv_;
  // backward buffers (dzv_, dzc_: the fused backward's)
  tensor ds5_, dagg_, dcv_, dm_, dc_, ds1_, dp_, dq_, dzv_, dzc_;
};

}  // namespace ace
