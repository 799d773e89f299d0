// SPDX-License-Identifier: MIT
// Eigen views of host memory: tensors and views whose memory the host can read (the Cpu backend's, data sets, test
// and example code). Layers never use them; backends and host-side code (data, tests, examples) do.
#pragma once

#include <Eigen/Core>
#include <cstddef>
#include <type_traits>

#include "ace/tensor/tensor.hpp"

namespace ace {

template <class T>
using RowMajorMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// An Eigen view of a rank-2 host tensor (no copy): rows = shape[0], cols = shape[1].
template <class T>
Eigen::Map<RowMajorMatrix<T>> as_matrix(Tensor<T, 2>& t) {
  return {t.data(), static_cast<Eigen::Index>(t.shape()[0]), static_cast<Eigen::Index>(t.shape()[1])};
}
template <class T>
Eigen::Map<const RowMajorMatrix<T>> as_matrix(const Tensor<T, 2>& t) {
  return {t.data(), static_cast<Eigen::Index>(t.shape()[0]), static_cast<Eigen::Index>(t.shape()[1])};
}

/// An Eigen map of a view of host memory (outer stride = the view's stride).
template <class T>
auto as_matrix(MatrixRef<T> v) {
  using Plain = RowMajorMatrix<std::remove_const_t<T>>;
  using Mapped = std::conditional_t<std::is_const_v<T>, const Plain, Plain>;
  return Eigen::Map<Mapped, Eigen::Unaligned, Eigen::OuterStride<>>(
      v.data, static_cast<Eigen::Index>(v.rows), static_cast<Eigen::Index>(v.cols),
      Eigen::OuterStride<>(static_cast<Eigen::Index>(v.stride)));
}

}  // namespace ace
