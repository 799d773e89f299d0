// SPDX-License-Identifier: MIT
// Storage and views: the host tensor (xtensor) of the Cpu backend and of data sets, and the matrix and vector views of
// any backend's memory (view.hpp). Nothing here reads or writes tensor entries: only backend operations do
// (docs/backends.md).
#pragma once

#include <cstddef>
#include <xtensor/xtensor.hpp>

#include "ace/tensor/view.hpp"

namespace ace {

/// A row-major N-d array owning host memory (xtensor): the storage of the Cpu backend and of data sets. Batches are
/// the leading axis: a batch of feature vectors is Tensor<T, 2> of shape [batch, features].
template <class T, std::size_t N>
using Tensor = xt::xtensor<T, N, xt::layout_type::row_major>;

}  // namespace ace
