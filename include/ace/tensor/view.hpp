// SPDX-License-Identifier: MIT
// Views and storage shapes: matrix and vector views of any backend's memory, the DenseStorage concept and the shape
// helpers layers use. Nothing here reads or writes tensor entries (only backend operations do), and nothing here
// needs xtensor, so device code includes it too (docs/backends.md).
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <tuple>
#include <type_traits>

#include "ace/error.hpp"

namespace ace {

/// A row-major matrix view of memory owned elsewhere: rows x cols with `stride` elements between the starts of
/// consecutive rows (stride >= cols). The memory may belong to any backend (host or device): a view only carries the
/// address and the shape, and only the backend that owns the memory reads or writes through it. Views reshape a batch
/// without copying ([batch, n*f] as [batch*n, f]) and select column blocks (stride > cols) or row ranges.
template <class T>
struct MatrixRef {
  T* data = nullptr;
  std::size_t rows = 0, cols = 0, stride = 0;

  template <class U = T>
    requires(!std::is_const_v<U>)
  operator MatrixRef<const U>() const noexcept  // NOLINT: a mutable view is also a read-only one
  {
    return {data, rows, cols, stride};
  }
  /// rows x cols.
  std::size_t size() const noexcept { return rows * cols; }
  bool empty() const noexcept { return rows == 0 || cols == 0; }
  /// Whether the rows follow each other without gaps (one block of size() entries).
  bool contiguous() const noexcept { return stride == cols || rows <= 1; }
  /// Columns [first, first + count) of the same rows.
  MatrixRef columns(std::size_t first, std::size_t count) const {
    ACE_THROW_IF(first + count > cols, shape_error, "MatrixRef::columns: columns [", first, ", ", first + count,
                 ") of a view with ", cols, " columns");
    return {data + first, rows, count, stride};
  }
  /// Rows [first, first + count) of the same columns.
  MatrixRef row_range(std::size_t first, std::size_t count) const {
    ACE_THROW_IF(first + count > rows, shape_error, "MatrixRef::row_range: rows [", first, ", ", first + count,
                 ") of a view with ", rows, " rows");
    return {data + first * stride, count, cols, stride};
  }
};

/// A flat view of n contiguous entries of some backend's memory (a parameter, a gradient, a buffer). Like MatrixRef it
/// has no element access: backend operations read and write through it (as its row() view), host code copies with
/// the backend's to_host / from_host.
template <class T>
class VectorRef {
 public:
  VectorRef() = default;
  VectorRef(T* data, std::size_t size) noexcept : data_(data), size_(size) {}
  /// All entries of a contiguous container of the backend's memory (a std::vector of a hand-written model's
  /// parameters in host memory, a tensor).
  template <class R>
    requires(!std::is_same_v<std::remove_cvref_t<R>, VectorRef> && requires(R& r) {
      { r.data() } -> std::convertible_to<T*>;
      { r.size() } -> std::convertible_to<std::size_t>;
    })
  VectorRef(R& r) noexcept : data_(r.data()), size_(r.size()) {}  // NOLINT: a view of a whole container

  template <class U = T>
    requires(!std::is_const_v<U>)
  operator VectorRef<const U>() const noexcept  // NOLINT: a mutable view is also a read-only one
  {
    return {data_, size_};
  }
  T* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  /// The entries as a [1, size] matrix view.
  MatrixRef<T> row() const noexcept { return {data_, size_ == 0 ? 0u : 1u, size_, size_}; }
  /// Entries [first, first + count).
  VectorRef slice(std::size_t first, std::size_t count) const {
    ACE_THROW_IF(first + count > size_, shape_error, "VectorRef::slice: entries [", first, ", ", first + count,
                 ") of a view of ", size_, " entries");
    return {data_ + first, count};
  }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

/// What a backend's storage type offers (xtensor's Tensor, HostArray, device arrays): the entry type, a rank-N shape
/// indexed like an array, the entry count, the address of the first entry (not necessarily host memory), and
/// resize(shape). Views are formed from these; entries are touched by backend operations only.
template <class S>
concept DenseStorage = requires(S& s, const S& cs) {
  typename S::value_type;
  { cs.shape()[0] } -> std::convertible_to<std::size_t>;
  { cs.size() } -> std::convertible_to<std::size_t>;
  cs.data();
};

/// The rank of a storage type (the length of its shape).
template <class S>
inline constexpr std::size_t rank_v = std::tuple_size_v<std::remove_cvref_t<decltype(std::declval<const S&>().shape())>>;

namespace detail {
template <class S>
using entry_t = std::remove_reference_t<decltype(*std::declval<S&>().data())>;
}  // namespace detail

/// The whole rank-2 tensor as a [shape[0], shape[1]] view.
template <DenseStorage S>
  requires(rank_v<S> == 2)
MatrixRef<detail::entry_t<S>> view(S& t) {
  return {t.data(), t.shape()[0], t.shape()[1], t.shape()[1]};
}

/// The tensor's buffer as a rows x cols matrix (rows * cols must equal its size): e.g. a batch of sets [batch, n * f]
/// as [batch * n, f].
template <DenseStorage S>
MatrixRef<detail::entry_t<S>> reshaped(S& t, std::size_t rows, std::size_t cols) {
  ACE_THROW_IF(rows * cols != t.size(), shape_error, "reshaped: a tensor of ", t.size(), " entries viewed as ", rows,
               " x ", cols);
  return {t.data(), rows, cols, cols};
}

/// All entries of a tensor of any rank, flat.
template <DenseStorage S>
VectorRef<detail::entry_t<S>> flat(S& t) {
  return {t.data(), t.size()};
}

/// All entries as one [1, size] row (for operations on whole parameters, e.g. a bias vector).
template <DenseStorage S>
MatrixRef<detail::entry_t<S>> row_view(S& t) {
  return flat(t).row();
}

/// Resizes t to [rows, cols] only when its shape differs, so a buffer reused across steps of the same batch size never
/// reallocates.
template <DenseStorage S>
  requires(rank_v<S> == 2)
void ensure_shape(S& t, std::size_t rows, std::size_t cols) {
  if (t.shape()[0] != rows || t.shape()[1] != cols) t.resize(std::array<std::size_t, 2>{rows, cols});
}

/// A storage type of the given shape (entries not initialised for trivial types).
template <DenseStorage S, std::size_t N>
S make_storage(const std::array<std::size_t, N>& shape) {
  S s;
  s.resize(shape);
  return s;
}

/// Throws shape_error unless x is [*, cols]; `what` names the caller.
template <DenseStorage S>
  requires(rank_v<S> == 2)
void require_columns(const S& x, std::size_t cols, const char* what) {
  ACE_THROW_IF(x.shape()[1] != cols, shape_error, what, ": expected input of shape [batch, ", cols, "], got [",
               x.shape()[0], ", ", x.shape()[1], "]");
}

/// Throws shape_error unless a and b have the same shape; `what` names the caller.
template <DenseStorage A, DenseStorage B>
void require_same_shape(const A& a, const B& b, const char* what) {
  bool same = rank_v<A> == rank_v<B>;
  for (std::size_t i = 0; same && i < rank_v<A>; ++i) same = a.shape()[i] == b.shape()[i];
  ACE_THROW_IF(!same, shape_error, what, ": shapes differ (", a.size(), " and ", b.size(), " entries)");
}

}  // namespace ace
