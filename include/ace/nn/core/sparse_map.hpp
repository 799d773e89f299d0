// SPDX-License-Identifier: MIT
// A fixed sparse linear map in backend memory: how equivariant layers build their weights from a few shared
// parameters (basis coefficients, filter banks) and send the gradients back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ace/error.hpp"
#include "ace/nn/module.hpp"

namespace ace {

/// y[r, j] = Σ_{e in [first[j], first[j+1])} weight[e] x[r, index[e]] for every row r: a sparse matrix stored by
/// output column, applied with the backend's sparse_map; adjoint() accumulates its transpose (sparse_map_adjoint).
template <class T, Backend B = Cpu>
class SparseLinearMap {
 public:
  SparseLinearMap() = default;
  SparseLinearMap(const std::vector<std::uint32_t>& first, const std::vector<std::uint32_t>& index,
                  const std::vector<double>& weight, std::size_t inputs)
      : inputs_(inputs) {
    ACE_THROW_IF(first.empty() || first.back() != index.size() || index.size() != weight.size(), invalid_argument,
                 "SparseLinearMap: ", first.size(), " column starts for ", index.size(), " indices and ",
                 weight.size(), " weights");
    for (std::uint32_t i : index)
      ACE_THROW_IF(i >= inputs, invalid_argument, "SparseLinearMap: index ", i, " of ", inputs, " inputs");
    first_ = index_tensor<B>(first);
    index_ = index_tensor<B>(index);
    std::vector<T> w(weight.begin(), weight.end());
    weight_ = zeros<B, T>(1, w.size());
    from_host_vector<B>(w, view(weight_));
  }

  std::size_t inputs() const { return inputs_; }
  std::size_t outputs() const { return first_.size() - 1; }

  /// y = the map applied to x, row by row (x [rows, inputs], y [rows, outputs]).
  void apply(MatrixRef<const T> x, MatrixRef<T> y) const {
    B::sparse_map(view(first_), view(index_), view(weight_), x, y);
  }
  /// dx += the transpose applied to dy.
  void adjoint(MatrixRef<const T> dy, MatrixRef<T> dx) const {
    B::sparse_map_adjoint(view(first_), view(index_), view(weight_), dy, dx);
  }

 private:
  std::size_t inputs_ = 0;
  tensor_t<B, std::uint32_t, 2> first_, index_;
  tensor_t<B, T, 2> weight_;
};

}  // namespace ace
