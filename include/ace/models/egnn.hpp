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

struct EGNNRegressionOptions {
  /// Data parallelism: the batch's graphs are split into this many contiguous chunks, each run forward and backward
  /// on its own copy of the network as one of the backend's parallel tasks (OpenMP threads on Cpu, with
  /// single-threaded operations inside), and the gradients are summed in chunk order. 1 = one pass over the whole
  /// batch (operations may still use several threads). Results depend on `workers` only at the rounding level (the
  /// order of the gradient sums), never on how many threads run them.
  std::size_t workers = 1;
};

/// An EGNN that regresses positions with the mean squared error over all coordinates, as a HomotopyModel for the
/// ACE trainer (batch = GraphBatch<T, B>).
template <class T, Backend B = Cpu>
class EGNNRegression {
 public:
  using scalar = T;
  using backend = B;
  using batch = GraphBatch<T, B>;
  using tensor = tensor_t<B, T, 2>;

  explicit EGNNRegression(EGNN<T, B> net, EGNNRegressionOptions options = {})
      : net_(std::move(net)), workers_(options.workers) {
    ACE_THROW_IF(workers_ == 0, invalid_argument, "EGNNRegressionOptions::workers must be >= 1, got 0");
  }
  EGNNRegression(const EGNNRegression& other) : net_(other.net_), workers_(other.workers_) {}
  EGNNRegression& operator=(const EGNNRegression& other) {
    if (this != &other) *this = EGNNRegression(other);
    return *this;
  }
  EGNNRegression(EGNNRegression&&) = default;
  EGNNRegression& operator=(EGNNRegression&&) = default;

  double loss_and_gradients(const batch& b) { return run(b, true); }
  /// The same with the loss written to `loss` (1×1 double in backend memory): with one worker nothing is copied to
  /// the host (ConstrainedTrainer uses it); with several (a Cpu feature) the workers' losses are summed on the host.
  void loss_and_gradients(const batch& b, MatrixRef<double> loss) {
    const std::size_t graphs = b.x.shape()[0] / net_.graph().nodes();
    if (std::min(workers_, graphs) <= 1) {
      loss_.forward(net_.forward(b.input()), b.target, loss);
      net_.backward(loss_.backward());
    } else {
      const double value = run(b, true);
      B::from_host(std::span<const double>(&value, 1), loss);
    }
  }
  /// The loss on a batch without gradients (evaluation), with the branches as currently set.
  double loss(const batch& b) { return run(b, false); }
  /// Predicted positions (the network's buffer).
  const tensor& predict(const batch& b) { return net_.forward(b.input()); }

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
    MSELoss<T, B> loss;
    batch part;
    GraphSelector<T, B> selector;
    std::vector<std::size_t> graphs;
    tensor dy;
    std::vector<VectorRef<T>> values, grads;
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
    losses_.assign(w, 0.0);
    const double total = static_cast<double>(b.x.size());
    B::parallel_tasks(w, [&](std::size_t k) {
      Worker& wk = workers_state_[k];
      const std::size_t first = graphs * k / w, last = graphs * (k + 1) / w;
      wk.graphs.resize(last - first);
      for (std::size_t g = first; g < last; ++g) wk.graphs[g - first] = g;
      wk.selector.select(b, wk.graphs, nodes, net_.graph().edges(), wk.part);
      wk.net.set_relaxation(net_.relaxation());
      for (std::size_t p = 0; p < wk.values.size(); ++p) B::copy(values_[p].row(), wk.values[p].row());  // this step's weights
      const T part = wk.loss.forward(wk.net.forward(wk.part.input()), wk.part.target);
      const T share = static_cast<T>(static_cast<double>(wk.part.x.size()) / total);
      losses_[k] = static_cast<double>(part) * static_cast<double>(share);
      if (gradients) {
        const tensor& dl = wk.loss.backward();
        ensure_shape(wk.dy, dl.shape()[0], dl.shape()[1]);
        B::copy(view(dl), view(wk.dy));
        B::scale(share, view(wk.dy));
        for (auto& g : wk.grads) B::fill(g.row(), T(0));
        wk.net.backward(wk.dy);
      }
    });
    if (gradients)
      for (std::size_t k = 0; k < w; ++k)  // a fixed order: the same sums for any thread count
        for (std::size_t p = 0; p < grads_.size(); ++p)
          B::axpy(T(1), MatrixRef<const T>(workers_state_[k].grads[p].row()), grads_[p].row());
    double value = 0.0;
    for (double l : losses_) value += l;
    return value;
  }

  void prepare(std::size_t w) {
    if (values_.empty())
      net_.for_each_parameter([&](ParamView<T> p) {
        values_.push_back(p.value);
        grads_.push_back(p.grad);
      });
    while (workers_state_.size() < w) {
      workers_state_.push_back(Worker{net_, {}, {}, {}, {}, {}, {}, {}});
      Worker& wk = workers_state_.back();
      wk.net.for_each_parameter([&](ParamView<T> p) {
        wk.values.push_back(p.value);
        wk.grads.push_back(p.grad);
      });
    }
  }

  EGNN<T, B> net_;
  MSELoss<T, B> loss_;
  std::size_t workers_;
  std::vector<Worker> workers_state_;  // each Worker's tensors live on the heap: the views stay valid
  std::vector<VectorRef<T>> values_, grads_;
  std::vector<double> losses_;
};

}  // namespace ace
