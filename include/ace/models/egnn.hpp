// SPDX-License-Identifier: MIT
// The E(n)-equivariant graph network that predicts positions (EGNN, velocity variant), ACE's relaxed EGNN
// (docs/method.md §2, §8), and the regression model the ACE trainer trains.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "ace/error.hpp"
#include "ace/models/graph_regression.hpp"
#include "ace/nn/core/linear.hpp"
#include "ace/nn/core/loss.hpp"
#include "ace/nn/core/mlp.hpp"
#include "ace/nn/core/relaxation.hpp"
#include "ace/nn/graph/egnn_layer.hpp"
#include "ace/nn/graph/graph.hpp"
#include "ace/nn/module.hpp"
#include "ace/random.hpp"

namespace ace {

struct EGNNOptions {
  std::size_t node_features = 1;  // columns of GraphInput::h
  std::size_t edge_features = 0;  // columns of GraphInput::edge_attr
  std::size_t raw_features = 0;   // columns of GraphInput::raw (only the relaxed branches read them)
  std::size_t hidden = 64;
  std::size_t layers = 4;
  std::size_t dim = 3;            // the space the points live in
  bool relaxed = false;           // add ACE's non-equivariant branches, two gammas per layer
  double coord_clamp = 100.0;
  bool fused = true;              // fused layer operations where the backend has them (EGNNLayerOptions::fused)
};

/// An EGNN that predicts positions: h^0 = Linear(node_features -> hidden)(h), then `layers` EGNN layers on
/// (h, x); the output is x after the last layer. Equivariant to rotations, reflections and translations of x and v
/// (and to permutations of the nodes that preserve the graph), invariant data h, edge_attr.
///
/// With `relaxed`, each layer l also gets ACE's non-equivariant branches (docs/method.md §2), on the node's raw input
/// u_i = [x_i^l, v_i, raw_i] (absolute coordinates, velocity and raw node data, e.g. charges):
///   h^{l+1} = EGNN_h + gamma_h^l * MLP_h([h^l_i, u_i]),   x^{l+1} = EGNN_x + gamma_x^l * MLP_x(u_i)
/// (both Linear-SiLU-Linear, hidden wide), gammas initialised to 1, exposed as "layers.<l>.gamma" [gamma_h, gamma_x]
/// with Role::gamma. With the relaxation off (set_relaxation(false)) the branches are skipped: the network is the
/// exactly equivariant EGNN at no extra cost, whatever the gammas hold.
template <class T, Backend B = Cpu>
class EGNN {
 public:
  using scalar = T;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;

  EGNN(Graph graph, EGNNOptions options, Rng& rng) : graph_(std::move(graph)), options_(options), tensors_(graph_) {
    ACE_THROW_IF(options.layers == 0 || options.hidden == 0 || options.dim == 0 || options.node_features == 0,
                 invalid_argument, "EGNNOptions: layers, hidden, dim and node_features must be >= 1, got layers ",
                 options.layers, ", hidden ", options.hidden, ", dim ", options.dim, ", node_features ",
                 options.node_features);
    embedding_ = Dense<T, B>(options.node_features, options.hidden, rng, {.init = LinearInit::torch});
    const std::size_t u = 2 * options.dim + options.raw_features;
    for (std::size_t l = 0; l < options.layers; ++l) {
      Block block;
      block.layer = EGNNLayer<T, B>({options.hidden, options.edge_features, options.coord_clamp, options.fused}, rng);
      if (options.relaxed) {
        block.relax_h = SiluMlp<T, B>(options.hidden + u, options.hidden, options.hidden, rng);
        block.relax_x = SiluMlp<T, B>(u, options.hidden, options.dim, rng);
        block.relax = Relaxation<T, B>(2);
      }
      blocks_.push_back(std::move(block));
    }
    h_.resize(options.layers + 1);
    x_.resize(options.layers + 1);
    set_relaxation(options.relaxed);
  }
  const Graph& graph() const { return graph_; }
  const EGNNOptions& options() const { return options_; }

  /// Positions [B*N, dim] after the last layer (the network's own buffer, valid until the next forward). The
  /// input must stay alive until backward.
  const tensor& forward(const GraphInput<T, B>& in) {
    const std::size_t rows = in.x.shape()[0];
    ACE_THROW_IF(in.x.shape()[1] != options_.dim || in.h.shape()[0] != rows || in.h.shape()[1] != options_.node_features ||
                     in.raw.shape()[0] != rows || in.raw.shape()[1] != options_.raw_features ||
                     rows % graph_.nodes() != 0,
                 shape_error, "EGNN::forward: x [", rows, ", ", in.x.shape()[1], "], h [", in.h.shape()[0], ", ",
                 in.h.shape()[1], "], raw [", in.raw.shape()[0], ", ", in.raw.shape()[1], "] for ", graph_.nodes(),
                 "-node graphs in ", options_.dim, " dimensions with ", options_.node_features,
                 " node features and ", options_.raw_features, " raw features");
    in_.set(view(in.h));
    const bool branches = relaxation();
    const tensor* h = &embedding_.forward(in.h);
    const tensor* x = &in.x;
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      Block& k = blocks_[l];
      const bool last = l + 1 == blocks_.size();  // its feature update could not reach the output: skipped
      if (branches && k.layer.fused()) {  // the branches inside the layer's fused operation
        k.layer.forward(tensors_, *h, *x, in.v, in.edge_attr, h_[l + 1], x_[l + 1], !last, fused_branches(k, in, last));
      } else {
        k.layer.forward(tensors_, *h, *x, in.v, in.edge_attr, h_[l + 1], x_[l + 1], !last);
      }
      if (branches && !k.layer.fused()) {
        // input = [h, x, v, raw]; u = its last columns
        const std::size_t hd = options_.hidden, dim = options_.dim;
        ensure_shape(k.input, rows, hd + 2 * dim + options_.raw_features);
        const auto input = view(k.input);
        B::copy(view(*h), input.columns(0, hd));
        B::copy(view(*x), input.columns(hd, dim));
        B::copy(view(in.v), input.columns(hd + dim, dim));
        if (options_.raw_features > 0) B::copy(view(in.raw), input.columns(hd + 2 * dim, options_.raw_features));
        const auto u = view(std::as_const(k.input)).columns(hd, k.input.shape()[1] - hd);
        if (!last) k.relax.add_branch(0, view(k.relax_h.forward(view(std::as_const(k.input)))), view(h_[l + 1]));
        k.relax.add_branch(1, view(k.relax_x.forward(u)), view(x_[l + 1]));
      }
      h = &h_[l + 1];
      x = &x_[l + 1];
    }
    forward_branches_ = branches;
    return x_.back();
  }

  /// Given dL/d(output positions): accumulates every parameter gradient (gammas included when the branches ran)
  /// and leaves dL/dx (input positions) in position_gradient().
  void backward(const tensor& dpos) {
    ACE_THROW_IF(!in_, invalid_argument, "EGNN::backward called before forward");
    ACE_THROW_IF(dpos.shape()[0] != x_.back().shape()[0] || dpos.shape()[1] != x_.back().shape()[1], shape_error,
                 "EGNN::backward: expected a gradient of shape [", x_.back().shape()[0], ", ", x_.back().shape()[1],
                 "], got [", dpos.shape()[0], ", ", dpos.shape()[1], "]");
    const std::size_t rows = dpos.shape()[0], hd = options_.hidden, dim = options_.dim;
    ensure_shape(dx_[0], rows, dim);
    B::copy(view(dpos), view(dx_[0]));
    ensure_shape(dh_[0], rows, hd);
    B::fill(view(dh_[0]), T(0));
    for (std::size_t l = blocks_.size(); l-- > 0;) {
      Block& k = blocks_[l];
      if (forward_branches_ && k.layer.fused()) {
        fused_branches_backward(k, l + 1 == blocks_.size());
        std::swap(dh_[0], dh_[1]);
        std::swap(dx_[0], dx_[1]);
        continue;
      }
      k.layer.backward(dh_[0], dx_[0], dh_[1], dx_[1]);
      if (forward_branches_) {
        ensure_shape(k.dinput, rows, k.input.shape()[1]);
        if (l + 1 < blocks_.size()) {
          // through the h branch: d input = (gamma_h dh) back through MLP_h
          ensure_shape(k.dout_h, rows, hd);
          k.relax.branch_backward(0, view(std::as_const(dh_[0])), view(k.relax_h.output()), view(k.dout_h));
          k.relax_h.backward_into(view(std::as_const(k.dout_h)), view(k.dinput), T(0));
        } else {
          B::fill(view(k.dinput), T(0));  // the last layer's h branch reaches nothing
        }
        // through the x branch, into the u columns of dinput
        ensure_shape(k.dout_x, rows, dim);
        k.relax.branch_backward(1, view(std::as_const(dx_[0])), view(k.relax_x.output()), view(k.dout_x));
        const std::size_t ucols = k.input.shape()[1] - hd;
        k.relax_x.backward_into(view(std::as_const(k.dout_x)), view(k.dinput).columns(hd, ucols), T(1));
        const auto di = view(std::as_const(k.dinput));
        B::axpy(T(1), di.columns(0, hd), view(dh_[1]));
        B::axpy(T(1), di.columns(hd, dim), view(dx_[1]));
      }
      std::swap(dh_[0], dh_[1]);
      std::swap(dx_[0], dx_[1]);
    }
    embedding_.accumulate_gradients(view(std::as_const(dh_[0])));
  }
  /// dL/d(input positions) of the last backward.
  const tensor& position_gradient() const { return dx_[0]; }

  /// Branches on (f_eq + gamma f_neq) or off (f_eq). Has no effect on an EGNN built without `relaxed`.
  void set_relaxation(bool on) {
    relaxation_ = on;
    for (Block& k : blocks_) k.relax.set(on);
  }
  bool relaxation() const { return relaxation_ && options_.relaxed; }

  template <class F>
  void for_each_parameter(F&& f) {
    detail::for_each_prefixed(embedding_, "embedding", f);
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      Block& k = blocks_[l];
      const std::string prefix = detail::concat("layers.", l);
      detail::for_each_prefixed(k.layer, prefix, f);
      if (!options_.relaxed) continue;
      detail::for_each_prefixed(k.relax_h, prefix + ".relax_h", f);
      detail::for_each_prefixed(k.relax_x, prefix + ".relax_x", f);
      f(k.relax.param(prefix + ".gamma"));
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
    Relaxation<T, B> relax;          // [gamma_h, gamma_x]
    tensor input;                    // [h, u]: the branches' input (u = its last columns)
    tensor dout_h, dout_x, dinput;   // backward buffers
    tensor zh, sh, oh, zx, sx, ox;   // the branches' intermediates when the layer runs them (fused)
    tensor zx_grad;                  // and dzx (doh, dzh, dox in dout_h, dinput, dout_x)
  };

  // The branches of block k as the fused layer runs them (backend/egnn_fused.hpp); the last layer has no h branch.
  EgnnBranchViews<T> fused_branches(Block& k, const GraphInput<T, B>& in, bool last) {
    const std::size_t rows = in.x.shape()[0], hd = options_.hidden, dim = options_.dim;
    ensure_shape(k.input, rows, hd + 2 * dim + options_.raw_features);
    for (tensor* t : {&k.zh, &k.sh, &k.oh}) ensure_shape(*t, last ? 0 : rows, hd);
    for (tensor* t : {&k.zx, &k.sx}) ensure_shape(*t, rows, hd);
    ensure_shape(k.ox, rows, dim);
    const auto w = [](const Dense<T, B>& d) { return view(d.weight()); };
    const auto b = [](const Dense<T, B>& d) { return view(d.bias()); };
    return {.on = true, .raw = view(in.raw), .gamma_h = k.relax.gamma(0), .gamma_x = k.relax.gamma(1),
            .h1_w = w(k.relax_h.first()), .h1_b = b(k.relax_h.first()), .h2_w = w(k.relax_h.second()),
            .h2_b = b(k.relax_h.second()), .x1_w = w(k.relax_x.first()), .x1_b = b(k.relax_x.first()),
            .x2_w = w(k.relax_x.second()), .x2_b = b(k.relax_x.second()), .input = view(k.input),
            .zh = view(k.zh), .sh = view(k.sh), .oh = view(k.oh), .zx = view(k.zx), .sx = view(k.sx),
            .ox = view(k.ox)};
  }

  // Block k's backward when its layer ran the branches: dh_[0], dx_[0] -> dh_[1], dx_[1], then the branches'
  // parameter gradients (dW = dz^T input) and dγ = Σ dy ⊙ branch output.
  void fused_branches_backward(Block& k, bool last) {
    const std::size_t rows = dx_[0].shape()[0], hd = options_.hidden, dim = options_.dim;
    for (tensor* t : {&k.dout_h, &k.dinput}) ensure_shape(*t, last ? 0 : rows, hd);  // doh, dzh
    ensure_shape(k.dout_x, rows, dim);                                                  // dox
    ensure_shape(k.zx_grad, rows, hd);                                                  // dzx
    k.layer.backward(dh_[0], dx_[0], dh_[1], dx_[1],
                     {.doh = view(k.dout_h), .dzh = view(k.dinput), .dox = view(k.dout_x), .dzx = view(k.zx_grad)});
    const auto c = [](const tensor& t) { return view(t); };
    const auto u = c(k.input).columns(hd, k.input.shape()[1] - hd);
    if (!last) {
      k.relax.accumulate_grad(0, c(dh_[0]), c(k.oh));
      k.relax_h.second().accumulate_gradients(c(k.dout_h), c(k.sh));
      k.relax_h.first().accumulate_gradients(c(k.dinput), c(k.input));
    }
    k.relax.accumulate_grad(1, c(dx_[0]), c(k.ox));
    k.relax_x.second().accumulate_gradients(c(k.dout_x), c(k.sx));
    k.relax_x.first().accumulate_gradients(c(k.zx_grad), u);
  }
  Graph graph_;
  EGNNOptions options_;
  GraphTensors<T, B> tensors_;
  Dense<T, B> embedding_;
  std::vector<Block> blocks_;
  std::vector<tensor> h_, x_;
  tensor dh_[2], dx_[2];
  detail::ForwardRef<T> in_;  // set by forward (copies start without one)
  bool relaxation_ = false, forward_branches_ = false;
};

/// Options of EGNNRegression (GraphRegression's).
using EGNNRegressionOptions = GraphRegressionOptions;

/// An EGNN that regresses positions with the mean squared error over all coordinates, as a HomotopyModel for the
/// ACE trainer (batch = GraphBatch<T, B>; data-parallel workers: GraphRegressionOptions).
template <class T, Backend B = Cpu>
using EGNNRegression = GraphRegression<T, B, EGNN<T, B>>;

}  // namespace ace
