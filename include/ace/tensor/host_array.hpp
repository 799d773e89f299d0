// SPDX-License-Identifier: MIT
// HostArray: the plainest storage there is (a std::vector and a shape), the Reference backend's tensor.
#pragma once

#include <array>
#include <cstddef>
#include <initializer_list>
#include <vector>

#include "ace/error.hpp"

namespace ace {

/// A row-major N-d array of host memory: a std::vector of entries and an N-entry shape. It offers what DenseStorage
/// asks and nothing more (no element access, no expressions), so code written against it uses backend operations
/// only. std::vector value-initialises: a new or grown array holds zeros.
template <class T, std::size_t N>
class HostArray {
 public:
  using value_type = T;
  using shape_type = std::array<std::size_t, N>;

  HostArray() = default;
  explicit HostArray(const shape_type& shape) { resize(shape); }

  const shape_type& shape() const noexcept { return shape_; }
  std::size_t size() const noexcept { return data_.size(); }
  T* data() noexcept { return data_.data(); }
  const T* data() const noexcept { return data_.data(); }

  void resize(const shape_type& shape) {
    std::size_t n = 1;
    for (std::size_t d : shape) n *= d;
    shape_ = shape;
    data_.resize(n);
  }

 private:
  shape_type shape_{};
  std::vector<T> data_;
};

}  // namespace ace
