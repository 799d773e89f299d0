// SPDX-License-Identifier: MIT
// Tensor aliases over xtensor (row-major) and Eigen views of their buffers.
#pragma once

#include <Eigen/Core>
#include <cstddef>
#include <type_traits>
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

/// A row-major matrix view of memory the caller owns: rows x cols with `stride` elements between the starts of
/// consecutive rows (stride >= cols). Views reshape a batch without copying ([batch, n*f] as [batch*n, f]) and
/// select column blocks (stride > cols); backends run their GEMM on views.
template <class T>
struct MatrixRef {
  T* data = nullptr;
  std::size_t rows = 0, cols = 0, stride = 0;

  operator MatrixRef<const T>() const noexcept  // NOLINT: a mutable view is also a read-only one
    requires(!std::is_const_v<T>)
  {
    return {data, rows, cols, stride};
  }
  /// Columns [first, first + count) of the same rows.
  MatrixRef columns(std::size_t first, std::size_t count) const {
    ACE_THROW_IF(first + count > cols, shape_error, "MatrixRef::columns: columns [", first, ", ", first + count,
                 ") of a view with ", cols, " columns");
    return {data + first, rows, count, stride};
  }
};

/// The whole tensor as a [shape[0], shape[1]] view.
template <class T>
MatrixRef<T> view(Tensor<T, 2>& t) {
  return {t.data(), t.shape()[0], t.shape()[1], t.shape()[1]};
}
template <class T>
MatrixRef<const T> view(const Tensor<T, 2>& t) {
  return {t.data(), t.shape()[0], t.shape()[1], t.shape()[1]};
}

/// The tensor's buffer as a rows x cols matrix (rows * cols must equal its size): e.g. a batch of sets
/// [batch, n * f] as [batch * n, f].
template <class T, std::size_t N>
MatrixRef<T> reshaped(Tensor<T, N>& t, std::size_t rows, std::size_t cols) {
  ACE_THROW_IF(rows * cols != t.size(), shape_error, "reshaped: a tensor of ", t.size(), " entries viewed as ", rows,
               " x ", cols);
  return {t.data(), rows, cols, cols};
}
template <class T, std::size_t N>
MatrixRef<const T> reshaped(const Tensor<T, N>& t, std::size_t rows, std::size_t cols) {
  ACE_THROW_IF(rows * cols != t.size(), shape_error, "reshaped: a tensor of ", t.size(), " entries viewed as ", rows,
               " x ", cols);
  return {t.data(), rows, cols, cols};
}

/// An Eigen map of a view (outer stride = the view's stride).
template <class T>
auto as_matrix(MatrixRef<T> v) {
  using Plain = RowMajorMatrix<std::remove_const_t<T>>;
  using Mapped = std::conditional_t<std::is_const_v<T>, const Plain, Plain>;
  return Eigen::Map<Mapped, Eigen::Unaligned, Eigen::OuterStride<>>(
      v.data, static_cast<Eigen::Index>(v.rows), static_cast<Eigen::Index>(v.cols),
      Eigen::OuterStride<>(static_cast<Eigen::Index>(v.stride)));
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
