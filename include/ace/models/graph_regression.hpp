// SPDX-License-Identifier: MIT
// GraphRegression: a graph network that predicts positions, trained on the mean squared error as a HomotopyModel for
// the ACE trainer, with optional data parallelism over the batch's graphs (EGNNRegression, SEGNNRegression).
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ace/error.hpp"
#include "ace/nn/core/loss.hpp"
#include "ace/nn/graph/graph.hpp"
#include "ace/nn/module.hpp"

namespace ace {

struct GraphRegressionOptions {
  /// Data parallelism: the batch's graphs are split into this many contiguous chunks, each run forward and backward
  /// on its own copy of the network as one of the backend's parallel tasks (OpenMP threads on Cpu, with
  /// single-threaded operations inside), and the gradients are summed in chunk order. 1 = one pass over the whole
  /// batch (operations may still use several threads). Results depend on `workers` only at the rounding level (the
  /// order of the gradient sums), never on how many threads run them.
  std::size_t workers = 1;
};

/// A graph network Net that predicts positions (EGNN, SEGNN: forward(GraphInput) -> positions, backward(dL/dpositions),
/// graph(), set_relaxation, relaxation(), for_each_parameter, signature()) trained to regress them with the mean
/// squared error over all coordinates, as a HomotopyModel for the ACE trainer (batch = GraphBatch<T, B>).
template <class T, Backend B, class Net>
class GraphRegression {
 public:
  using scalar = T;
  using backend = B;
  using batch = GraphBatch<T, B>;
  using tensor = tensor_t<B, T, 2>;

  explicit GraphRegression(Net net, GraphRegressionOptions options = {})
      : net_(std::move(net)), workers_(options.workers) {
    ACE_THROW_IF(workers_ == 0, invalid_argument, "GraphRegressionOptions::workers must be >= 1, got 0");
  }
  GraphRegression(const GraphRegression& other) : net_(other.net_), workers_(other.workers_) {}
  GraphRegression& operator=(const GraphRegression& other) {
    if (this != &other) *this = GraphRegression(other);
    return *this;
  }
  GraphRegression(GraphRegression&&) = default;
  GraphRegression& operator=(GraphRegression&&) = default;

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
  Net& network() { return net_; }
  std::size_t workers() const { return workers_; }

 private:
  struct Worker {
    Net net;
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
    if (gradients)  // each parameter's sum over the workers in a fixed order: the same for any thread count
      B::parallel_tasks(grads_.size(), [&](std::size_t p) {
        for (std::size_t k = 0; k < w; ++k)
          B::axpy(T(1), MatrixRef<const T>(workers_state_[k].grads[p].row()), grads_[p].row());
      });
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

  Net net_;
  MSELoss<T, B> loss_;
  std::size_t workers_;
  std::vector<Worker> workers_state_;  // each Worker's tensors live on the heap: the views stay valid
  std::vector<VectorRef<T>> values_, grads_;
  std::vector<double> losses_;
};

}  // namespace ace
