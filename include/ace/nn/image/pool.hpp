// SPDX-License-Identifier: MIT
// Spatial pooling of feature maps: max, mean or sum over windows that tile the grid, or over the whole grid.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "ace/backend/geometry.hpp"
#include "ace/nn/image/image.hpp"
#include "ace/nn/module.hpp"

namespace ace {

/// Pools each channel of an image over non-overlapping WinRows x WinCols windows (max, mean or sum). The windows
/// must tile the grid: then every flip and quarter turn maps windows onto windows and pooling commutes with it
/// (exactly, for a max; to rounding for a mean). Global = true pools the whole grid and outputs the fiber itself
/// (In::fiber: e.g. Multiple<Trivial<C4>, F> after a GroupPool), ready for dense layers.
template <Reduce Kind, class T, class In, std::size_t WinRows, std::size_t WinCols, bool Global = false,
          Backend B = Cpu>
class SpatialPool {
  static_assert(is_image_v<In>, "ace: SpatialPool pools an Image<R, H, W, Layout>.");
  static_assert(WinRows >= 1 && WinCols >= 1 && In::rows % WinRows == 0 && In::cols % WinCols == 0,
                "ace: SpatialPool's windows must tile the grid (rows and cols divisible by the window), otherwise "
                "rotations and flips would not map windows onto windows.");
  static_assert(!Global || (WinRows == In::rows && WinCols == In::cols),
                "ace: a global pool's window is the whole grid.");
  using Grid = Image<typename In::fiber, In::rows / WinRows, In::cols / WinCols, In::layout>;

 public:
  using scalar = T;
  using input = In;
  using output = std::conditional_t<Global, typename In::fiber, Grid>;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;
  static constexpr std::size_t window = WinRows * WinCols;
  static constexpr PoolGeometry geometry{In::channels, In::rows, In::cols, WinRows, WinCols, In::layout};

  const tensor& forward(const tensor& x) {
    require_columns(x, In::dim, "SpatialPool::forward");
    x_.set(view(x));
    const std::size_t batch = x.shape()[0];
    ensure_shape(y_, batch, Grid::dim);
    if constexpr (Kind == Reduce::max) ensure_shape(argmax_, batch, Grid::dim);
    B::pool2d_forward(geometry, Kind, view(x), view(y_), view(argmax_));
    return y_;
  }

  const tensor& backward(const tensor& dy) {
    const std::size_t batch = detail::backward_batch(x_, dy, Grid::dim, "SpatialPool");
    ensure_shape(dx_, batch, In::dim);
    B::pool2d_backward(geometry, Kind, view(dy), view(std::as_const(argmax_)), view(dx_));
    return dx_;
  }
  template <class F>
  void for_each_parameter(F&&) {}

 private:
  detail::ForwardRef<T> x_;
  tensor y_, dx_;
  tensor_t<B, std::uint32_t, 2> argmax_;  // per output entry: the input offset that won
};

template <class T, class In, std::size_t Size, Backend B = Cpu>
using MaxPool2d = SpatialPool<Reduce::max, T, In, Size, Size, false, B>;
template <class T, class In, std::size_t Size, Backend B = Cpu>
using AvgPool2d = SpatialPool<Reduce::mean, T, In, Size, Size, false, B>;
template <class T, class In, Backend B = Cpu>
using GlobalMaxPool = SpatialPool<Reduce::max, T, In, In::rows, In::cols, true, B>;
template <class T, class In, Backend B = Cpu>
using GlobalAvgPool = SpatialPool<Reduce::mean, T, In, In::rows, In::cols, true, B>;

}  // namespace ace
