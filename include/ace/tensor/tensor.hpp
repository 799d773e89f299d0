// SPDX-License-Identifier: MIT
// Tensor aliases over xtensor (row-major) and Eigen views of their buffers.
#pragma once

#include <Eigen/Core>
#include <cstddef>
#include <xtensor/xtensor.hpp>

#include "ace/error.hpp"

namespace ace {

/// A row-major N-d array owning its storage (host memory). Batches are the leading axis: a batch of feature
/// vectors is Tensor<T, 2> of shape [batch, features].
template <class T, std::size_t N>
using Tensor = xt::xtensor<T, N, xt::layout_type::row_major>;

template <class T>
using RowMajorMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// An Eigen view of a rank-2 tensor (no copy): rows = shape[0], cols = shape[1].
template <class T>
Eigen::Map<RowMajorMatrix<T>> as_matrix(Tensor<T, 2>& t) {
  return {t.data(), static_cast<Eigen::Index>(t.shape()[0]), static_cast<Eigen::Index>(t.shape()[1])};
}
template <class T>
Eigen::Map<const RowMajorMatrix<T>> as_matrix(const Tensor<T, 2>& t) {
  return {t.data(), static_cast<Eigen::Index>(t.shape()[0]), static_cast<Eigen::Index>(t.shape()[1])};
}

/// Resizes t to [rows, cols] only when its shape differs, so a buffer reused across steps of the same batch size
/// never reallocates.
template <class T>
void ensure_shape(Tensor<T, 2>& t, std::size_t rows, std::size_t cols) {
  if (t.shape()[0] != rows || t.shape()[1] != cols) t.resize({rows, cols});
}

/// Throws shape_error unless x is [*, cols]; `what` names the caller.
template <class T>
void require_columns(const Tensor<T, 2>& x, std::size_t cols, const char* what) {
  ACE_THROW_IF(x.shape()[1] != cols, shape_error, what, ": expected input of shape [batch, ", cols, "], got [",
               x.shape()[0], ", ", x.shape()[1], "]");
}

}  // namespace ace
