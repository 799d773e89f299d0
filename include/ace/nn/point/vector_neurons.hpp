// SPDX-License-Identifier: MIT
// Vector Neurons (Deng et al., ICCV 2021): SO(3)-equivariant layers on lists of 3-D vectors per point, with forward
// and backward by hand.
//
// Layout: a VN feature map of P points with C vector channels is a [P·3, C] tensor; row 3p + k holds coordinate k of
// the C vectors of point p. A rotation R acts on each point's 3 x C block from the left, so a VN linear map (mixing
// channels) is one GEMM [P·3, C_in] x W^T, and the same buffer read as [P, 3C] is the flattened per-point feature a
// non-equivariant branch sees.
#pragma once

#include <cstddef>
#include <cstdint>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "ace/backend/geometry.hpp"
#include "ace/error.hpp"
#include "ace/nn/core/batch_norm.hpp"
#include "ace/nn/core/linear.hpp"
#include "ace/nn/module.hpp"
#include "ace/random.hpp"

namespace ace {

namespace detail {
template <DenseStorage S>
void require_vn_rows(const S& x, const char* what) {
  ACE_THROW_IF(x.shape()[0] % 3 != 0, shape_error, what, ": a VN feature map has 3 rows per point, got ",
               x.shape()[0], " rows");
}
}  // namespace detail

/// V' = W V: mixes the vector channels of every point (no bias: a bias vector would not rotate). [P·3, C_in] ->
/// [P·3, C_out]. A Layer (the weight starts as PyTorch's nn.Linear). Parameter "weight".
template <class T, Backend B = Cpu>
class VNLinear {
 public:
  using scalar = T;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;

  VNLinear() = default;
  VNLinear(std::size_t in, std::size_t out, Rng& rng)
      : dense_(in, out, rng, {.bias = false, .init = LinearInit::torch}) {}

  const tensor& forward(const tensor& x) {
    detail::require_vn_rows(x, "VNLinear::forward");
    return dense_.forward(x);
  }
  const tensor& backward(const tensor& dy) { return dense_.backward(dy); }
  /// The same with dx = dx_beta dx + dL/dx into a view of the caller's.
  void backward_into(MatrixRef<const T> dy, MatrixRef<T> dx, T dx_beta) { dense_.backward_into(dy, dx, dx_beta); }
  template <class F>
  void for_each_parameter(F&& f) {
    dense_.for_each_parameter(f);
  }
  std::size_t in() const { return dense_.in(); }
  std::size_t out() const { return dense_.out(); }
  /// The output of the last forward.
  const tensor& output() const { return dense_.output(); }

 private:
  Dense<T, B> dense_;
};

/// The VN leaky ReLU: a learned direction d_c = (U V)_c per channel; where <v_c, d_c> < 0 the component of v_c along
/// d_c is removed, elsewhere v_c passes; the output is slope v + (1 - slope) (that). Equivariant because d rotates
/// with v. Parameter "map_to_dir.weight".
template <class T, Backend B = Cpu>
class VNLeakyReLU {
 public:
  using scalar = T;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;

  VNLeakyReLU() = default;
  VNLeakyReLU(std::size_t channels, Rng& rng, double slope = 0.2)
      : dir_(channels, channels, rng, {.bias = false, .init = LinearInit::torch}), slope_(static_cast<T>(slope)) {
    ACE_THROW_IF(!(slope >= 0.0 && slope < 1.0), invalid_argument, "VNLeakyReLU: slope must be in [0, 1), got ",
                 slope);
  }

  const tensor& forward(const tensor& x) {
    detail::require_vn_rows(x, "VNLeakyReLU::forward");
    x_.set(view(x));
    const tensor& d = dir_.forward(x);
    ensure_shape(y_, x.shape()[0], x.shape()[1]);
    B::vn_leaky_relu(view(x), view(d), slope_, eps, view(y_));
    return y_;
  }

  const tensor& backward(const tensor& dy) {
    detail::backward_batch(x_, dy, dir_.in(), "VNLeakyReLU");  // dy must have the input's shape
    ensure_shape(dx_, dy.shape()[0], dy.shape()[1]);
    ensure_shape(dd_, dy.shape()[0], dy.shape()[1]);
    B::vn_leaky_relu_backward(x_.get(), view(dir_.output()), slope_, eps, view(dy), view(dx_), view(dd_));
    dir_.backward_into(view(std::as_const(dd_)), view(dx_), T(1));
    return dx_;
  }

  template <class F>
  void for_each_parameter(F&& f) {
    detail::for_each_prefixed(dir_, "map_to_dir", f);
  }

 private:
  static constexpr T eps = T(1e-6);
  Dense<T, B> dir_;
  T slope_ = T(0.2);
  detail::ForwardRef<T> x_;
  tensor y_, dx_, dd_;
};

/// Batch norm on the vector norms: n_c = |v_c| + 1e-6 is normalised over the points of the batch (per channel, with
/// a learnable scale and shift; running statistics in evaluation mode) by the library's one batch norm, and v_c is
/// rescaled to the new norm. Norms are invariant, so the layer is equivariant. Parameters "weight", "bias"; buffers
/// "running_mean", "running_var".
template <class T, Backend B = Cpu>
class VNBatchNorm {
 public:
  using scalar = T;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;

  VNBatchNorm() = default;
  explicit VNBatchNorm(std::size_t channels, double momentum = 0.1, double eps = 1e-5)
      : channels_(channels), core_(identity(channels), channels, momentum, eps, "VNBatchNorm") {
    ACE_THROW_IF(channels == 0, invalid_argument, "VNBatchNorm: needs at least one channel");
  }

  /// Training mode (batch statistics, running statistics updated) or evaluation mode (running statistics).
  void set_training(bool on) { core_.set_training(on); }

  const tensor& forward(const tensor& x) {
    detail::require_vn_rows(x, "VNBatchNorm::forward");
    const std::size_t points = x.shape()[0] / 3, c = x.shape()[1];
    ACE_THROW_IF(c != channels_, shape_error, "VNBatchNorm::forward: ", c, " channels, the layer has ", channels_);
    ACE_THROW_IF(core_.training() && points < 2, invalid_argument,
                 "VNBatchNorm::forward: batch statistics need at least 2 points, got ", points);
    x_.set(view(x));
    ensure_shape(norm_, points, c);
    ensure_shape(m_, points, c);
    ensure_shape(y_, x.shape()[0], c);
    B::vector_norms(view(x), norm_eps, view(norm_));
    core_.forward(view(std::as_const(norm_)), layout(points), view(m_));
    B::vector_rescale(view(x), view(std::as_const(norm_)), view(std::as_const(m_)), view(y_));
    return y_;
  }

  const tensor& backward(const tensor& dy) {
    detail::backward_batch(x_, dy, channels_, "VNBatchNorm");  // dy must have the input's shape
    const std::size_t points = dy.shape()[0] / 3;
    ensure_shape(dm_, points, channels_);
    ensure_shape(dn_, points, channels_);
    ensure_shape(dn_norm_, points, channels_);
    ensure_shape(dx_, dy.shape()[0], channels_);
    // y = x m / n with m = the batch norm of n: dm and the direct dn, then dn through the batch norm, then dx.
    B::vector_rescale_backward(x_.get(), view(std::as_const(norm_)), view(std::as_const(m_)), view(dy), view(dm_),
                               view(dn_));
    core_.backward(view(std::as_const(dm_)), layout(points), view(dn_norm_));
    B::axpy(T(1), view(std::as_const(dn_norm_)), view(dn_));
    B::vector_rescale_input_grad(x_.get(), view(std::as_const(norm_)), view(std::as_const(m_)), view(dy),
                                 view(std::as_const(dn_)), norm_eps, view(dx_));
    return dx_;
  }

  template <class F>
  void for_each_parameter(F&& f) {
    core_.for_each_parameter(f);
  }
  /// The running statistics, as buffers "running_mean" and "running_var" (checkpointed).
  template <class F>
  void for_each_buffer(F&& f) {
    core_.for_each_buffer(f);
  }
  std::vector<double> running_mean() const { return core_.running_mean(); }
  std::vector<double> running_var() const { return core_.running_var(); }

 private:
  static constexpr T norm_eps = T(1e-6);
  static std::vector<std::uint32_t> identity(std::size_t channels) {
    std::vector<std::uint32_t> f(channels);
    std::iota(f.begin(), f.end(), 0u);
    return f;
  }
  FieldLayout layout(std::size_t points) const { return {points, channels_, 1, channels_}; }

  std::size_t channels_ = 0;
  detail::BatchNormCore<T, B> core_;
  detail::ForwardRef<T> x_;
  tensor norm_, m_, y_, dm_, dn_, dn_norm_, dx_;
};

/// Mean over the N points of each cloud: [B·N·3, C] -> [B·3, C] (the rows of a cloud's points, read as [B·N, 3C],
/// averaged in segments of N).
template <class T, Backend B = Cpu>
class VNMeanPool {
 public:
  using scalar = T;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;

  explicit VNMeanPool(std::size_t points = 1) : n_(points) {
    ACE_THROW_IF(points == 0, invalid_argument, "VNMeanPool: needs at least one point per cloud");
  }
  const tensor& forward(const tensor& x) {
    ACE_THROW_IF(x.shape()[0] % (3 * n_) != 0, shape_error, "VNMeanPool::forward: ", x.shape()[0],
                 " rows are not clouds of ", n_, " points x 3");
    x_.set(view(x));
    const std::size_t clouds = x.shape()[0] / (3 * n_), c = x.shape()[1];
    ensure_shape(y_, 3 * clouds, c);
    B::segment_reduce(Reduce::mean, reshaped(x, clouds * n_, 3 * c), n_, reshaped(y_, clouds, 3 * c));
    return y_;
  }
  const tensor& backward(const tensor& dy) {
    ACE_THROW_IF(!x_, invalid_argument, "VNMeanPool::backward called before forward");
    const std::size_t clouds = x_.rows() / (3 * n_), c = x_.get().cols;
    ACE_THROW_IF(dy.shape()[0] != 3 * clouds || dy.shape()[1] != c, shape_error,
                 "VNMeanPool::backward: expected a gradient of [", 3 * clouds, ", ", c, "]");
    ensure_shape(dx_, x_.rows(), c);
    B::fill(view(dx_), T(0));
    B::segment_reduce_backward(Reduce::mean, reshaped(dy, clouds, 3 * c), n_, {}, reshaped(dx_, clouds * n_, 3 * c));
    return dx_;
  }
  template <class F>
  void for_each_parameter(F&&) {}

 private:
  std::size_t n_ = 1;
  detail::ForwardRef<T> x_;
  tensor y_, dx_;
};

/// The invariant layer: a frame Z = V W_z^T (3 VN channels, i.e. a 3 x 3 matrix per point) and the features
/// V^T Z, [P·3, C] -> [P, 3C] (column 3c + j = <v_c, z_j>). Rotations cancel: (R V)^T (R Z) = V^T Z. Parameter
/// "frame.weight".
template <class T, Backend B = Cpu>
class VNInvariant {
 public:
  using scalar = T;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;

  VNInvariant() = default;
  VNInvariant(std::size_t channels, Rng& rng) : frame_(channels, 3, rng) {}

  const tensor& forward(const tensor& x) {
    const tensor& z = frame_.forward(x);
    x_.set(view(x));
    ensure_shape(y_, x.shape()[0] / 3, 3 * x.shape()[1]);
    B::vn_invariant(view(x), view(z), view(y_));
    return y_;
  }
  const tensor& backward(const tensor& dy) {
    ACE_THROW_IF(!x_, invalid_argument, "VNInvariant::backward called before forward");
    const std::size_t points = x_.rows() / 3, c = x_.get().cols;
    ACE_THROW_IF(dy.shape()[0] != points || dy.shape()[1] != 3 * c, shape_error,
                 "VNInvariant::backward: expected a gradient of [", points, ", ", 3 * c, "]");
    ensure_shape(dz_, 3 * points, 3);
    ensure_shape(dx_, 3 * points, c);
    B::vn_invariant_backward(x_.get(), view(frame_.output()), view(dy), view(dx_), view(dz_));
    frame_.backward_into(view(std::as_const(dz_)), view(dx_), T(1));
    return dx_;
  }
  template <class F>
  void for_each_parameter(F&& f) {
    detail::for_each_prefixed(frame_, "frame", f);
  }

 private:
  VNLinear<T, B> frame_;
  detail::ForwardRef<T> x_;
  tensor y_, dz_, dx_;
};

}  // namespace ace
