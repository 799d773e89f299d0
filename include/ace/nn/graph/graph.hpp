// SPDX-License-Identifier: MIT
// Graphs for message passing: one directed edge list shared by every sample of a batch, the batch of node and edge
// arrays that graph layers read, and mini-batches of graphs selected in the backend.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "ace/backend/geometry.hpp"
#include "ace/error.hpp"
#include "ace/nn/module.hpp"

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
  const std::vector<std::uint32_t>& rows() const { return row_; }
  const std::vector<std::uint32_t>& cols() const { return col_; }

 private:
  std::size_t nodes_ = 0;
  std::vector<std::uint32_t> row_, col_;
  std::vector<std::size_t> in_degree_;
};

/// A graph in backend memory, as the backend's graph operations take it: the edge list (row, col as [1, edges]
/// index rows) and 1 / max(in-degree, 1) per node (for mean aggregation).
template <class T, Backend B>
struct GraphTensors {
  GraphTensors() = default;
  explicit GraphTensors(const Graph& g)
      : nodes(g.nodes()), edges(g.edges()), row(index_tensor<B>(g.rows())), col(index_tensor<B>(g.cols())) {
    std::vector<T> inv(g.nodes());
    for (std::size_t i = 0; i < g.nodes(); ++i) inv[i] = T(1) / static_cast<T>(std::max<std::size_t>(g.in_degree(i), 1));
    inv_degree = zeros<B, T>(1, g.nodes());
    from_host_vector<B>(inv, view(inv_degree));
  }
  /// The shape of a batch of `graphs` copies.
  GraphShape shape(std::size_t graphs) const { return {graphs, nodes, edges}; }

  std::size_t nodes = 0, edges = 0;
  tensor_t<B, std::uint32_t, 2> row, col;
  tensor_t<B, T, 2> inv_degree;
};

/// One batch of graphs for a graph network: samples of graph.nodes() nodes, rows ordered sample-major (backend
/// tensors, which must stay alive until backward).
template <class T, Backend B = Cpu>
struct GraphInput {
  const tensor_t<B, T, 2>& h;          // [samples*N, node features]: invariant node features
  const tensor_t<B, T, 2>& x;          // [samples*N, D]: positions
  const tensor_t<B, T, 2>& v;          // [samples*N, D]: velocities (the velocity variant moves x along them)
  const tensor_t<B, T, 2>& edge_attr;  // [samples*E, edge features]: invariant edge attributes (0 columns allowed)
  const tensor_t<B, T, 2>& raw;        // [samples*N, raw features]: node data for the non-equivariant stream
};

/// A mini-batch of graphs with position targets, owning its backend tensors (see GraphInput for the shapes).
template <class T, Backend B = Cpu>
struct GraphBatch {
  using backend = B;
  tensor_t<B, T, 2> h, x, v, edge_attr, raw, target;

  GraphInput<T, B> input() const { return {h, x, v, edge_attr, raw}; }

  /// The batch moved by the Euclidean transformation p -> R p + t: positions and targets rotated and translated,
  /// velocities rotated, invariant data (h, edge_attr) and raw node data unchanged. R may be any orthogonal matrix.
  /// (A GEMM and a bias add in the backend; for equivariance checks.)
  GraphBatch transformed(const Eigen::MatrixXd& rotation, const Eigen::VectorXd& translation) const {
    const auto dim = static_cast<std::size_t>(x.shape()[1]);
    ACE_THROW_IF(rotation.rows() != static_cast<Eigen::Index>(dim) || rotation.cols() != static_cast<Eigen::Index>(dim) ||
                     translation.size() != static_cast<Eigen::Index>(dim),
                 shape_error, "GraphBatch::transformed: a ", rotation.rows(), " x ", rotation.cols(), " matrix and a ",
                 translation.size(), "-vector for points in ", dim, " dimensions");
    std::vector<T> r(dim * dim), t(dim);
    for (std::size_t i = 0; i < dim; ++i) {
      t[i] = static_cast<T>(translation(static_cast<Eigen::Index>(i)));
      for (std::size_t j = 0; j < dim; ++j)
        r[i * dim + j] = static_cast<T>(rotation(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)));
    }
    auto rb = zeros<B, T>(dim, dim), tb = zeros<B, T>(1, dim);
    from_host_vector<B>(r, view(rb));
    from_host_vector<B>(t, view(tb));
    GraphBatch out = *this;
    const auto move = [&](const tensor_t<B, T, 2>& from, tensor_t<B, T, 2>& to, bool translate) {
      B::gemm(Transpose::no, Transpose::yes, T(1), view(from), view(std::as_const(rb)), T(0), view(to));  // p R^T
      if (translate) B::add_row(view(to), view(std::as_const(tb)));
    };
    move(x, out.x, true);
    move(target, out.target, true);
    move(v, out.v, false);
    return out;
  }
};

/// The same batch in another backend's memory.
template <class To, class T, class From>
GraphBatch<T, To> to_backend(const GraphBatch<T, From>& b) {
  const auto move = [](const tensor_t<From, T, 2>& t) { return to_backend<To>(to_host_tensor<From>(t)); };
  return {move(b.h), move(b.x), move(b.v), move(b.edge_attr), move(b.raw), move(b.target)};
}

/// Selects graphs of a batch in the backend (gather_rows), reusing its index buffers: mini-batches without allocations
/// once the sizes repeat.
template <class T, Backend B = Cpu>
class GraphSelector {
 public:
  /// out = the graphs `graphs` of `all` (a batch of graphs with `nodes` nodes and `edges` edges each); out's
  /// buffers are reused when the shapes match.
  void select(const GraphBatch<T, B>& all, std::span<const std::size_t> graphs, std::size_t nodes, std::size_t edges,
              GraphBatch<T, B>& out) {
    const std::size_t count = nodes == 0 ? 0 : all.x.shape()[0] / nodes;
    ACE_THROW_IF(nodes == 0 || all.x.shape()[0] % nodes != 0 || all.edge_attr.shape()[0] != count * edges,
                 shape_error, "select_graphs: a batch of ", all.x.shape()[0], " node rows and ",
                 all.edge_attr.shape()[0], " edge rows is not made of graphs with ", nodes, " nodes and ", edges,
                 " edges");
    node_rows_.clear();
    edge_rows_.clear();
    for (std::size_t g : graphs) {
      ACE_THROW_IF(g >= count, invalid_argument, "select_graphs: graph ", g, " of ", count);
      for (std::size_t i = 0; i < nodes; ++i) node_rows_.push_back(static_cast<std::uint32_t>(g * nodes + i));
      for (std::size_t e = 0; e < edges; ++e) edge_rows_.push_back(static_cast<std::uint32_t>(g * edges + e));
    }
    upload(node_rows_, node_index_);
    upload(edge_rows_, edge_index_);
    gather(all.h, node_index_, out.h);
    gather(all.x, node_index_, out.x);
    gather(all.v, node_index_, out.v);
    gather(all.raw, node_index_, out.raw);
    gather(all.target, node_index_, out.target);
    gather(all.edge_attr, edge_index_, out.edge_attr);
  }

 private:
  static void upload(const std::vector<std::uint32_t>& host, tensor_t<B, std::uint32_t, 2>& t) {
    ensure_shape(t, 1, host.size());
    B::from_host(std::span<const std::uint32_t>(host), view(t));
  }
  static void gather(const tensor_t<B, T, 2>& from, const tensor_t<B, std::uint32_t, 2>& index,
                     tensor_t<B, T, 2>& to) {
    ensure_shape(to, index.shape()[1], from.shape()[1]);
    B::gather_rows(view(from), view(index), view(to));
  }

  std::vector<std::uint32_t> node_rows_, edge_rows_;
  tensor_t<B, std::uint32_t, 2> node_index_, edge_index_;
};

/// Copies the graphs `graphs` of `all` into `out` (see GraphSelector; this form allocates its index buffers).
template <class T, Backend B>
void select_graphs(const GraphBatch<T, B>& all, std::span<const std::size_t> graphs, std::size_t nodes,
                   std::size_t edges, GraphBatch<T, B>& out) {
  GraphSelector<T, B>().select(all, graphs, nodes, edges, out);
}

}  // namespace ace
