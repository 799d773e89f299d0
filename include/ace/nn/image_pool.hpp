// SPDX-License-Identifier: MIT
// Spatial pooling of feature maps (max/average over windows, or over the whole grid) and a batch norm whose
// statistics are shared within each field.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "ace/error.hpp"
#include "ace/nn/fields.hpp"
#include "ace/nn/image.hpp"
#include "ace/nn/module.hpp"

namespace ace {

/// Pools each channel of an image over non-overlapping WinRows x WinCols windows (max, mean or sum). The windows
/// must tile the grid: then every flip and quarter turn maps windows onto windows and pooling commutes with it
/// (exactly, for a max; to rounding for a mean). Global = true pools the whole grid and outputs the fiber itself
/// (In::fiber: e.g. Multiple<Trivial<C4>, F> after a GroupPool), ready for dense layers.
template <Reduce Kind, class T, class In, std::size_t WinRows, std::size_t WinCols, bool Global = false>
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
  static constexpr std::size_t window = WinRows * WinCols;

  const Tensor<T, 2>& forward(const Tensor<T, 2>& x) {
    require_columns(x, In::dim, "SpatialPool::forward");
    x_ = &x;
    const std::size_t batch = x.shape()[0];
    ensure_shape(y_, batch, Grid::dim);
    if constexpr (Kind == Reduce::max) argmax_.resize(batch * Grid::dim);
    for (std::size_t b = 0; b < batch; ++b) {
      const T* in = x.data() + b * In::dim;
      T* out = y_.data() + b * Grid::dim;
      for_each_window([&](std::size_t c, std::size_t q, const auto& pixels) {
        T acc = Kind == Reduce::max ? -std::numeric_limits<T>::infinity() : T(0);
        std::uint32_t arg = 0;
        for (std::size_t p : pixels) {
          const T v = in[In::offset(c, p)];
          if constexpr (Kind == Reduce::max) {
            if (v > acc || p == pixels[0]) {
              acc = v;
              arg = static_cast<std::uint32_t>(In::offset(c, p));
            }
          } else {
            acc += v;
          }
        }
        out[Grid::offset(c, q)] = Kind == Reduce::mean ? acc / static_cast<T>(window) : acc;
        if constexpr (Kind == Reduce::max) argmax_[b * Grid::dim + Grid::offset(c, q)] = arg;
      });
    }
    return y_;
  }

  const Tensor<T, 2>& backward(const Tensor<T, 2>& dy) {
    const std::size_t batch = detail::backward_batch(x_, dy, Grid::dim, "SpatialPool");
    ensure_shape(dx_, batch, In::dim);
    std::fill(dx_.begin(), dx_.end(), T(0));
    const T scale = Kind == Reduce::mean ? T(1) / static_cast<T>(window) : T(1);
    for (std::size_t b = 0; b < batch; ++b) {
      const T* g = dy.data() + b * Grid::dim;
      T* dx = dx_.data() + b * In::dim;
      if constexpr (Kind == Reduce::max) {
        for (std::size_t j = 0; j < Grid::dim; ++j) dx[argmax_[b * Grid::dim + j]] += g[j];
      } else {
        for_each_window([&](std::size_t c, std::size_t q, const auto& pixels) {
          for (std::size_t p : pixels) dx[In::offset(c, p)] += scale * g[Grid::offset(c, q)];
        });
      }
    }
    return dx_;
  }
  template <class F>
  void for_each_parameter(F&&) {}

 private:
  // f(channel, output pixel, the input pixels of its window) for every channel and window.
  template <class F>
  static void for_each_window(F&& f) {
    std::array<std::size_t, window> pixels{};
    for (std::size_t oy = 0; oy < Grid::rows; ++oy)
      for (std::size_t ox = 0; ox < Grid::cols; ++ox) {
        for (std::size_t r = 0; r < WinRows; ++r)
          for (std::size_t c = 0; c < WinCols; ++c)
            pixels[r * WinCols + c] = (oy * WinRows + r) * In::cols + ox * WinCols + c;
        for (std::size_t ch = 0; ch < In::channels; ++ch) f(ch, oy * Grid::cols + ox, pixels);
      }
  }

  detail::ForwardRef<T> x_;
  Tensor<T, 2> y_, dx_;
  std::vector<std::uint32_t> argmax_;  // per output entry: the input offset that won
};

template <class T, class In, std::size_t Size>
using MaxPool2d = SpatialPool<Reduce::max, T, In, Size, Size>;
template <class T, class In, std::size_t Size>
using AvgPool2d = SpatialPool<Reduce::mean, T, In, Size, Size>;
template <class T, class In>
using GlobalMaxPool = SpatialPool<Reduce::max, T, In, In::rows, In::cols, true>;
template <class T, class In>
using GlobalAvgPool = SpatialPool<Reduce::mean, T, In, In::rows, In::cols, true>;

namespace detail {
template <class R>
constexpr auto norm_fields() {
  if constexpr (Representation<R>) {
    return field_dims_v<R>;
  } else {
    std::array<std::size_t, R::dim> ones{};
    for (auto& d : ones) d = 1;
    return ones;
  }
}
}  // namespace detail

/// Batch normalisation of a feature map with statistics shared within each field: one mean and variance per field
/// over the batch, the pixels and the field's channels (all |G| channels of a regular field), one learnable scale
/// ("weight", 1) and shift ("bias", 0) per field. Subtracting a per-field constant and scaling commute with any
/// permutation fiber and any pixel permutation, so the layer is equivariant (escnn's InnerBatchNorm). Plain
/// Features<C> fibers get one field per channel (PyTorch's BatchNorm2d).
/// Training mode (default) normalises with the batch statistics and updates the running ones (momentum, unbiased
/// variance, as PyTorch); evaluation (set_training(false)) uses the running ones. They are buffers
/// ("running_mean", "running_var"), saved by checkpoints.
template <class T, class In>
class FieldBatchNorm {
  static_assert(is_image_v<In>, "ace: FieldBatchNorm normalises an Image<R, H, W, Layout>.");
  static_assert(!Representation<typename In::fiber> || PermutationRepresentation<typename In::fiber>,
                "ace: FieldBatchNorm shifts fields by a constant, which is equivariant only for permutation fibers "
                "(Trivial, Regular, their multiples) or plain Features<C>.");
  static constexpr auto dims = detail::norm_fields<typename In::fiber>();

 public:
  using scalar = T;
  using input = In;
  using output = In;
  static constexpr std::size_t fields = dims.size();
  static constexpr std::array<std::size_t, 1> shape{fields};

  explicit FieldBatchNorm(double momentum = 0.1, double eps = 1e-5)
      : weight_(shape), weight_grad_(shape), bias_(shape), bias_grad_(shape),
        running_mean_(fields, 0.0), running_var_(fields, 1.0), momentum_(momentum), eps_(eps) {
    ACE_THROW_IF(!(momentum >= 0.0 && momentum <= 1.0) || !(eps > 0.0), invalid_argument,
                 "FieldBatchNorm: momentum must be in [0, 1] and eps > 0, got ", momentum, " and ", eps);
    std::fill(weight_.begin(), weight_.end(), T(1));
    std::fill(bias_.begin(), bias_.end(), T(0));
    std::fill(weight_grad_.begin(), weight_grad_.end(), T(0));
    std::fill(bias_grad_.begin(), bias_grad_.end(), T(0));
    for (std::size_t f = 0, c = 0; f < fields; ++f)
      for (std::size_t i = 0; i < dims[f]; ++i) field_of_[c++] = f;
  }

  void set_training(bool on) { training_ = on; }
  bool training() const { return training_; }

  const Tensor<T, 2>& forward(const Tensor<T, 2>& x) {
    require_columns(x, In::dim, "FieldBatchNorm::forward");
    const std::size_t batch = x.shape()[0];
    const double count = static_cast<double>(batch * In::pixels);
    ACE_THROW_IF(training_ && batch * In::pixels < 2, invalid_argument,
                 "FieldBatchNorm: training needs at least 2 values per channel, got a batch of ", batch);
    x_ = &x;
    batch_stats_ = training_;
    std::array<double, fields> mean{}, var{};
    if (training_) {
      std::array<double, fields> sum{}, sq{};
      std::array<double, fields> size{};
      for (std::size_t b = 0; b < batch; ++b)
        for_each_entry(x.data() + b * In::dim, [&](std::size_t f, T v) {
          sum[f] += static_cast<double>(v);
          sq[f] += static_cast<double>(v) * static_cast<double>(v);
        });
      for (std::size_t f = 0; f < fields; ++f) {
        size[f] = count * static_cast<double>(dims[f]);
        mean[f] = sum[f] / size[f];
        var[f] = std::max(sq[f] / size[f] - mean[f] * mean[f], 0.0);
        running_mean_[f] = (1.0 - momentum_) * running_mean_[f] + momentum_ * mean[f];
        running_var_[f] = (1.0 - momentum_) * running_var_[f] + momentum_ * var[f] * size[f] / (size[f] - 1.0);
      }
    } else {
      mean = to_array(running_mean_);
      var = to_array(running_var_);
    }
    for (std::size_t f = 0; f < fields; ++f) {
      mean_[f] = static_cast<T>(mean[f]);
      inv_std_[f] = static_cast<T>(1.0 / std::sqrt(var[f] + eps_));
    }
    ensure_shape(y_, batch, In::dim);
    ensure_shape(xhat_, batch, In::dim);
    for (std::size_t i = 0; i < x.size(); ++i) {
      const std::size_t f = field_at(i % In::dim);
      xhat_.data()[i] = (x.data()[i] - mean_[f]) * inv_std_[f];
      y_.data()[i] = weight_[f] * xhat_.data()[i] + bias_[f];
    }
    return y_;
  }

  const Tensor<T, 2>& backward(const Tensor<T, 2>& dy) {
    const std::size_t batch = detail::backward_batch(x_, dy, In::dim, "FieldBatchNorm");
    std::array<double, fields> sum_dy{}, sum_dy_xhat{};
    for (std::size_t i = 0; i < dy.size(); ++i) {
      const std::size_t f = field_at(i % In::dim);
      sum_dy[f] += static_cast<double>(dy.data()[i]);
      sum_dy_xhat[f] += static_cast<double>(dy.data()[i]) * static_cast<double>(xhat_.data()[i]);
    }
    for (std::size_t f = 0; f < fields; ++f) {
      weight_grad_[f] += static_cast<T>(sum_dy_xhat[f]);
      bias_grad_[f] += static_cast<T>(sum_dy[f]);
    }
    ensure_shape(dx_, batch, In::dim);
    const double count = static_cast<double>(batch * In::pixels);
    for (std::size_t i = 0; i < dy.size(); ++i) {
      const std::size_t f = field_at(i % In::dim);
      const T scale = weight_[f] * inv_std_[f];
      if (batch_stats_) {
        const double size = count * static_cast<double>(dims[f]);
        const T m_dy = static_cast<T>(sum_dy[f] / size), m_dy_xhat = static_cast<T>(sum_dy_xhat[f] / size);
        dx_.data()[i] = scale * (dy.data()[i] - m_dy - xhat_.data()[i] * m_dy_xhat);
      } else {
        dx_.data()[i] = scale * dy.data()[i];
      }
    }
    return dx_;
  }

  template <class F>
  void for_each_parameter(F&& f) {
    f(detail::param_view("weight", weight_, weight_grad_, Role::weight));
    f(detail::param_view("bias", bias_, bias_grad_, Role::bias));
  }
  /// The running statistics ("running_mean", "running_var"; float64).
  template <class F>
  void for_each_buffer(F&& f) {
    f(BufferView{"running_mean", running_mean_});
    f(BufferView{"running_var", running_var_});
  }
  const std::vector<double>& running_mean() const { return running_mean_; }
  const std::vector<double>& running_var() const { return running_var_; }

 private:
  static std::array<double, fields> to_array(const std::vector<double>& v) {
    std::array<double, fields> a{};
    std::copy(v.begin(), v.end(), a.begin());
    return a;
  }
  // The field of the entry at `offset` of a batch row.
  std::size_t field_at(std::size_t offset) const {
    const std::size_t c = In::layout == Layout::channels_first ? offset / In::pixels : offset % In::channels;
    return field_of_[c];
  }
  template <class F>
  void for_each_entry(const T* row, F&& f) const {
    for (std::size_t i = 0; i < In::dim; ++i) f(field_at(i), row[i]);
  }

  Tensor<T, 1> weight_, weight_grad_, bias_, bias_grad_;
  std::vector<double> running_mean_, running_var_;
  double momentum_, eps_;
  bool training_ = true, batch_stats_ = true;
  std::array<std::size_t, In::channels> field_of_{};
  std::array<T, fields> mean_{}, inv_std_{};
  detail::ForwardRef<T> x_;
  Tensor<T, 2> y_, xhat_, dx_;
};

}  // namespace ace
