// SPDX-License-Identifier: MIT
// Vector Neurons (Deng et al., ICCV 2021): SO(3)-equivariant layers on lists of 3-D vectors per point, with
// forward and backward by hand, and ACE's relaxed VN point-cloud classifier (METHOD.md §2, §7).
//
// Layout: a VN feature map of P points with C vector channels is a [P·3, C] tensor; row 3p + k holds coordinate k of
// the C vectors of point p. A rotation R acts on each point's 3 x C block from the left, so a VN linear map (mixing
// channels) is one GEMM [P·3, C_in] x W^T, and the same buffer read as [P, 3C] is the flattened per-point feature a
// non-equivariant branch sees.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "ace/error.hpp"
#include "ace/nn/dense.hpp"
#include "ace/nn/loss.hpp"
#include "ace/nn/module.hpp"
#include "ace/random.hpp"
#include "ace/tensor/cpu.hpp"
#include "ace/tensor/parallel.hpp"

namespace ace {

namespace detail {
inline void require_vn_rows(std::size_t rows, const char* what) {
  ACE_THROW_IF(rows % 3 != 0, shape_error, what, ": a VN feature map has 3 rows per point, got ", rows, " rows");
}
}  // namespace detail

/// V' = W V: mixes the vector channels of every point (no bias: a bias vector would not rotate). [P·3, C_in] ->
/// [P·3, C_out].
template <class T, Backend B = Cpu>
class VNLinear {
 public:
  VNLinear() = default;
  VNLinear(std::size_t in, std::size_t out, Rng& rng) : dense_(in, out, rng, {.bias = false}) {}

  const Tensor<T, 2>& forward(const Tensor<T, 2>& x) {
    detail::require_vn_rows(x.shape()[0], "VNLinear::forward");
    x_ = &x;
    dense_.forward(view(x), y_);
    return y_;
  }
  const Tensor<T, 2>& backward(const Tensor<T, 2>& dy) {
    ACE_THROW_IF(!x_, invalid_argument, "VNLinear::backward called before forward");
    ensure_shape(dx_, x_->shape()[0], dense_.in());
    dense_.backward(view(*x_), view(dy), view(dx_));
    return dx_;
  }
  template <class F>
  void for_each_parameter(const std::string& prefix, F&& f) {
    dense_.for_each_parameter(prefix, f);
  }
  std::size_t in() const { return dense_.in(); }
  std::size_t out() const { return dense_.out(); }
  /// The output of the last forward.
  const Tensor<T, 2>& output() const { return y_; }

 private:
  Dense<T, B> dense_;
  detail::ForwardRef<T> x_;
  Tensor<T, 2> y_, dx_;
};

/// The VN leaky ReLU: a learned direction d_c = (U V)_c per channel; where <v_c, d_c> < 0 the component of v_c along
/// d_c is removed, elsewhere v_c passes; the output is slope v + (1 - slope) (that). Equivariant because d rotates
/// with v.
template <class T, Backend B = Cpu>
class VNLeakyReLU {
 public:
  VNLeakyReLU() = default;
  VNLeakyReLU(std::size_t channels, Rng& rng, double slope = 0.2) : dir_(channels, channels, rng, {.bias = false}),
                                                                      slope_(static_cast<T>(slope)) {
    ACE_THROW_IF(!(slope >= 0.0 && slope < 1.0), invalid_argument, "VNLeakyReLU: slope must be in [0, 1), got ",
                 slope);
  }

  const Tensor<T, 2>& forward(const Tensor<T, 2>& x) {
    detail::require_vn_rows(x.shape()[0], "VNLeakyReLU::forward");
    x_ = &x;
    dir_.forward(view(x), d_);
    const std::size_t points = x.shape()[0] / 3, c = x.shape()[1];
    ensure_shape(y_, x.shape()[0], c);
    ACE_OMP_FOR(points >= 256)
    for (std::size_t p = 0; p < points; ++p) {
      const T* xr[3] = {&x(3 * p, 0), &x(3 * p + 1, 0), &x(3 * p + 2, 0)};
      const T* dr[3] = {&d_(3 * p, 0), &d_(3 * p + 1, 0), &d_(3 * p + 2, 0)};
      T* yr[3] = {&y_(3 * p, 0), &y_(3 * p + 1, 0), &y_(3 * p + 2, 0)};
      for (std::size_t j = 0; j < c; ++j) {
        const T dot = xr[0][j] * dr[0][j] + xr[1][j] * dr[1][j] + xr[2][j] * dr[2][j];
        const T dd = dr[0][j] * dr[0][j] + dr[1][j] * dr[1][j] + dr[2][j] * dr[2][j] + eps;
        const T a = dot < T(0) ? (T(1) - slope_) * dot / dd : T(0);
        for (int k = 0; k < 3; ++k) yr[k][j] = xr[k][j] - a * dr[k][j];
      }
    }
    return y_;
  }

  const Tensor<T, 2>& backward(const Tensor<T, 2>& dy) {
    detail::backward_batch(x_, dy, dir_.in(), "VNLeakyReLU");  // dy must have the input's shape
    const Tensor<T, 2>& x = *x_;
    const std::size_t points = x.shape()[0] / 3, c = x.shape()[1];
    ensure_shape(dx_, x.shape()[0], c);
    ensure_shape(dd_, x.shape()[0], c);
    ACE_OMP_FOR(points >= 256)
    for (std::size_t p = 0; p < points; ++p) {
      for (std::size_t j = 0; j < c; ++j) {
        T xv[3], dv[3], g[3];
        for (int k = 0; k < 3; ++k) {
          xv[k] = x(3 * p + k, j);
          dv[k] = d_(3 * p + k, j);
          g[k] = dy(3 * p + k, j);
        }
        const T dot = xv[0] * dv[0] + xv[1] * dv[1] + xv[2] * dv[2];
        const T dd = dv[0] * dv[0] + dv[1] * dv[1] + dv[2] * dv[2] + eps;
        if (dot >= T(0)) {  // y = x
          for (int k = 0; k < 3; ++k) {
            dx_(3 * p + k, j) = g[k];
            dd_(3 * p + k, j) = T(0);
          }
          continue;
        }
        // y = x - s a d with s = 1 - slope, a = <x, d> / (|d|² + eps)
        const T s = T(1) - slope_, a = dot / dd, gd = g[0] * dv[0] + g[1] * dv[1] + g[2] * dv[2];
        for (int k = 0; k < 3; ++k) {
          dx_(3 * p + k, j) = g[k] - s * gd * dv[k] / dd;
          dd_(3 * p + k, j) = -s * (a * g[k] + gd * (xv[k] / dd - T(2) * dot * dv[k] / (dd * dd)));
        }
      }
    }
    dir_.backward(view(x), view(std::as_const(dd_)), view(dx_), T(1));
    return dx_;
  }

  template <class F>
  void for_each_parameter(const std::string& prefix, F&& f) {
    dir_.for_each_parameter(prefix + "map_to_dir.", f);
  }

 private:
  static constexpr T eps = T(1e-6);
  Dense<T, B> dir_;
  T slope_ = T(0.2);
  detail::ForwardRef<T> x_;
  Tensor<T, 2> d_, y_, dx_, dd_;
};

/// Batch norm on the vector norms: n_c = |v_c| + 1e-6 is normalised over the points of the batch (per channel, with
/// a learnable scale and shift; running statistics in evaluation mode) and v_c is rescaled to the new norm. Norms
/// are invariant, so the layer is equivariant.
template <class T, Backend B = Cpu>
class VNBatchNorm {
 public:
  VNBatchNorm() = default;
  explicit VNBatchNorm(std::size_t channels, double momentum = 0.1, double eps = 1e-5)
      : weight_({1, channels}), weight_grad_({1, channels}), bias_({1, channels}), bias_grad_({1, channels}),
        running_mean_(channels, 0.0), running_var_(channels, 1.0), momentum_(momentum), eps_(eps) {
    ACE_THROW_IF(channels == 0, invalid_argument, "VNBatchNorm: needs at least one channel");
    ACE_THROW_IF(!(momentum >= 0.0 && momentum <= 1.0) || !(eps > 0.0), invalid_argument,
                 "VNBatchNorm: momentum must be in [0, 1] and eps > 0, got ", momentum, " and ", eps);
    B::fill(weight_, T(1));
    B::fill(bias_, T(0));
    B::fill(weight_grad_, T(0));
    B::fill(bias_grad_, T(0));
  }

  /// Training mode (batch statistics, running statistics updated) or evaluation mode (running statistics).
  void set_training(bool on) { training_ = on; }

  const Tensor<T, 2>& forward(const Tensor<T, 2>& x) {
    detail::require_vn_rows(x.shape()[0], "VNBatchNorm::forward");
    const std::size_t points = x.shape()[0] / 3, c = x.shape()[1];
    ACE_THROW_IF(c != running_mean_.size(), shape_error, "VNBatchNorm::forward: ", c, " channels, the layer has ",
                 running_mean_.size());
    ACE_THROW_IF(training_ && points < 2, invalid_argument,
                 "VNBatchNorm::forward: batch statistics need at least 2 points, got ", points);
    x_ = &x;
    ensure_shape(norm_, points, c);
    ensure_shape(nhat_, points, c);
    for (std::size_t p = 0; p < points; ++p)
      for (std::size_t j = 0; j < c; ++j)
        norm_(p, j) = std::sqrt(x(3 * p, j) * x(3 * p, j) + x(3 * p + 1, j) * x(3 * p + 1, j) +
                                x(3 * p + 2, j) * x(3 * p + 2, j)) + T(1e-6);
    inv_std_.assign(c, T(0));
    for (std::size_t j = 0; j < c; ++j) {
      double mean = 0.0, var = 0.0;
      if (training_) {
        for (std::size_t p = 0; p < points; ++p) mean += static_cast<double>(norm_(p, j));
        mean /= static_cast<double>(points);
        for (std::size_t p = 0; p < points; ++p) {
          const double d = static_cast<double>(norm_(p, j)) - mean;
          var += d * d;
        }
        var /= static_cast<double>(points);  // biased, as BatchNorm normalises
        running_mean_[j] = (1.0 - momentum_) * running_mean_[j] + momentum_ * mean;
        running_var_[j] = (1.0 - momentum_) * running_var_[j] +
                          momentum_ * var * static_cast<double>(points) / static_cast<double>(points - 1);
      } else {
        mean = running_mean_[j];
        var = running_var_[j];
      }
      inv_std_[j] = static_cast<T>(1.0 / std::sqrt(var + eps_));
      for (std::size_t p = 0; p < points; ++p) nhat_(p, j) = (norm_(p, j) - static_cast<T>(mean)) * inv_std_[j];
    }
    ensure_shape(y_, x.shape()[0], c);
    for (std::size_t p = 0; p < points; ++p)
      for (std::size_t j = 0; j < c; ++j) {
        const T scale = (weight_(0, j) * nhat_(p, j) + bias_(0, j)) / norm_(p, j);
        for (std::size_t k = 0; k < 3; ++k) y_(3 * p + k, j) = x(3 * p + k, j) * scale;
      }
    batch_stats_ = training_;
    return y_;
  }

  const Tensor<T, 2>& backward(const Tensor<T, 2>& dy) {
    detail::backward_batch(x_, dy, running_mean_.size(), "VNBatchNorm");  // dy must have the input's shape
    const Tensor<T, 2>& x = *x_;
    const std::size_t points = x.shape()[0] / 3, c = x.shape()[1];
    ensure_shape(dx_, x.shape()[0], c);
    ensure_shape(dn_, points, c);
    ensure_shape(dnhat_, points, c);
    for (std::size_t j = 0; j < c; ++j) {
      // y = x * m / n with m = w n̂ + b: dm = Σ_k g_k x_k / n; dn (direct) = -Σ_k g_k x_k m / n².
      double sum_dnhat = 0.0, sum_dnhat_nhat = 0.0;
      for (std::size_t p = 0; p < points; ++p) {
        const T gx = dy(3 * p, j) * x(3 * p, j) + dy(3 * p + 1, j) * x(3 * p + 1, j) + dy(3 * p + 2, j) * x(3 * p + 2, j);
        const T n = norm_(p, j), m = weight_(0, j) * nhat_(p, j) + bias_(0, j);
        const T dm = gx / n;
        weight_grad_(0, j) += dm * nhat_(p, j);
        bias_grad_(0, j) += dm;
        const T dnhat = dm * weight_(0, j);
        dn_(p, j) = -gx * m / (n * n);
        dnhat_(p, j) = dnhat;
        sum_dnhat += static_cast<double>(dnhat);
        sum_dnhat_nhat += static_cast<double>(dnhat * nhat_(p, j));
      }
      const T mean_dnhat = static_cast<T>(sum_dnhat / static_cast<double>(points));
      const T mean_dnhat_nhat = static_cast<T>(sum_dnhat_nhat / static_cast<double>(points));
      for (std::size_t p = 0; p < points; ++p) {
        T through = dnhat_(p, j);  // dn from n̂ = (n - mean) / std
        if (batch_stats_) through -= mean_dnhat + nhat_(p, j) * mean_dnhat_nhat;
        dn_(p, j) += through * inv_std_[j];
        const T n = norm_(p, j), m = weight_(0, j) * nhat_(p, j) + bias_(0, j);
        const T r = n - T(1e-6);  // |v|
        for (std::size_t k = 0; k < 3; ++k)
          dx_(3 * p + k, j) = dy(3 * p + k, j) * m / n + (r > T(0) ? dn_(p, j) * x(3 * p + k, j) / r : T(0));
      }
    }
    return dx_;
  }

  template <class F>
  void for_each_parameter(const std::string& prefix, F&& f) {
    f(detail::param_view(prefix + "weight", weight_, weight_grad_, Role::weight));
    f(detail::param_view(prefix + "bias", bias_, bias_grad_, Role::bias));
  }
  /// The running statistics, as buffers "<prefix>running_mean" and "<prefix>running_var" (checkpointed).
  template <class F>
  void for_each_buffer(const std::string& prefix, F&& f) {
    f(BufferView{prefix + "running_mean", running_mean_});
    f(BufferView{prefix + "running_var", running_var_});
  }
  const std::vector<double>& running_mean() const { return running_mean_; }
  const std::vector<double>& running_var() const { return running_var_; }

 private:
  Tensor<T, 2> weight_, weight_grad_, bias_, bias_grad_;
  std::vector<double> running_mean_, running_var_;
  double momentum_ = 0.1, eps_ = 1e-5;
  bool training_ = true, batch_stats_ = true;
  detail::ForwardRef<T> x_;
  std::vector<T> inv_std_;
  Tensor<T, 2> norm_, nhat_, y_, dx_, dn_, dnhat_;
};

/// Mean over the N points of each cloud: [B·N·3, C] -> [B·3, C].
template <class T>
class VNMeanPool {
 public:
  explicit VNMeanPool(std::size_t points = 1) : n_(points) {
    ACE_THROW_IF(points == 0, invalid_argument, "VNMeanPool: needs at least one point per cloud");
  }
  const Tensor<T, 2>& forward(const Tensor<T, 2>& x) {
    ACE_THROW_IF(x.shape()[0] % (3 * n_) != 0, shape_error, "VNMeanPool::forward: ", x.shape()[0],
                 " rows are not clouds of ", n_, " points x 3");
    rows_ = x.shape()[0];
    const std::size_t clouds = rows_ / (3 * n_), c = x.shape()[1];
    ensure_shape(y_, 3 * clouds, c);
    const T inv = T(1) / static_cast<T>(n_);
    for (std::size_t b = 0; b < clouds; ++b)
      for (std::size_t k = 0; k < 3; ++k) {
        auto out = as_matrix(y_).row(static_cast<Eigen::Index>(3 * b + k));
        out.setZero();
        for (std::size_t p = 0; p < n_; ++p) out += as_matrix(x).row(static_cast<Eigen::Index>(3 * (b * n_ + p) + k));
        out *= inv;
      }
    return y_;
  }
  const Tensor<T, 2>& backward(const Tensor<T, 2>& dy) {
    ACE_THROW_IF(rows_ == 0, invalid_argument, "VNMeanPool::backward called before forward");
    const std::size_t clouds = rows_ / (3 * n_), c = dy.shape()[1];
    ensure_shape(dx_, rows_, c);
    const T inv = T(1) / static_cast<T>(n_);
    for (std::size_t b = 0; b < clouds; ++b)
      for (std::size_t p = 0; p < n_; ++p)
        for (std::size_t k = 0; k < 3; ++k)
          as_matrix(dx_).row(static_cast<Eigen::Index>(3 * (b * n_ + p) + k)) =
              inv * as_matrix(dy).row(static_cast<Eigen::Index>(3 * b + k));
    return dx_;
  }

 private:
  std::size_t n_ = 1, rows_ = 0;
  Tensor<T, 2> y_, dx_;
};

/// The invariant layer: a frame Z = V W_z^T (3 VN channels, i.e. a 3 x 3 matrix per point) and the features
/// V^T Z, [P·3, C] -> [P, 3C] (column 3c + j = <v_c, z_j>). Rotations cancel: (R V)^T (R Z) = V^T Z.
template <class T, Backend B = Cpu>
class VNInvariant {
 public:
  VNInvariant() = default;
  VNInvariant(std::size_t channels, Rng& rng) : frame_(channels, 3, rng) {}

  const Tensor<T, 2>& forward(const Tensor<T, 2>& x) {
    const Tensor<T, 2>& z = frame_.forward(x);
    x_ = &x;
    const std::size_t points = x.shape()[0] / 3, c = x.shape()[1];
    ensure_shape(y_, points, 3 * c);
    for (std::size_t p = 0; p < points; ++p)
      for (std::size_t j = 0; j < c; ++j)
        for (std::size_t f = 0; f < 3; ++f)
          y_(p, 3 * j + f) = x(3 * p, j) * z(3 * p, f) + x(3 * p + 1, j) * z(3 * p + 1, f) + x(3 * p + 2, j) * z(3 * p + 2, f);
    return y_;
  }
  const Tensor<T, 2>& backward(const Tensor<T, 2>& dy) {
    ACE_THROW_IF(!x_, invalid_argument, "VNInvariant::backward called before forward");
    const Tensor<T, 2>& x = *x_;
    const Tensor<T, 2>& z = frame_.output();
    const std::size_t points = x.shape()[0] / 3, c = x.shape()[1];
    ACE_THROW_IF(dy.shape()[0] != points || dy.shape()[1] != 3 * c, shape_error,
                 "VNInvariant::backward: expected a gradient of [", points, ", ", 3 * c, "]");
    ensure_shape(dz_, 3 * points, 3);
    ensure_shape(dx_, 3 * points, c);
    for (std::size_t p = 0; p < points; ++p)
      for (std::size_t k = 0; k < 3; ++k) {
        for (std::size_t f = 0; f < 3; ++f) {
          T s = T(0);
          for (std::size_t j = 0; j < c; ++j) s += dy(p, 3 * j + f) * x(3 * p + k, j);
          dz_(3 * p + k, f) = s;
        }
        for (std::size_t j = 0; j < c; ++j)
          dx_(3 * p + k, j) = dy(p, 3 * j) * z(3 * p + k, 0) + dy(p, 3 * j + 1) * z(3 * p + k, 1) +
                              dy(p, 3 * j + 2) * z(3 * p + k, 2);
      }
    as_matrix(dx_) += as_matrix(frame_.backward(dz_));
    return dx_;
  }
  template <class F>
  void for_each_parameter(const std::string& prefix, F&& f) {
    frame_.for_each_parameter(prefix + "frame.", f);
  }

 private:
  VNLinear<T, B> frame_;
  detail::ForwardRef<T> x_;
  Tensor<T, 2> y_, dz_, dx_;
};

struct VNClassifierOptions {
  std::size_t points = 0;                      // points per cloud
  std::vector<std::size_t> channels{64, 64};   // VN channels after each VN block (the input has 1: the position)
  std::size_t hidden = 64;                     // width of the invariant head
  std::size_t classes = 2;
  double slope = 0.2;                          // VN leaky ReLU
  bool batch_norm = true;
  bool relaxed = false;                        // ACE's branches: one gamma per VN block
};

/// A Vector Neurons point-cloud classifier (PointNet-style): VN blocks (VNLinear, VNBatchNorm, VNLeakyReLU) on the
/// points, VN mean pooling over each cloud, the invariant layer, and a ReLU MLP head to logits. The logits are
/// invariant to rotations of a cloud (about the origin: centre clouds first for translation invariance) and to
/// permutations of its points.
///
/// With `relaxed`, VN block l gets ACE's non-equivariant branch (METHOD.md §2): x_{l+1} = block(x_l) +
/// gamma_l Dense(x_l flattened per point, 3 C_l -> 3 C_{l+1}), gamma_l = 1 initially ("blocks.<l>.gamma").
/// set_relaxation(false) skips the branches.
template <class T, Backend B = Cpu>
class VNClassifier {
 public:
  using scalar = T;
  struct batch {
    Tensor<T, 2> points;              // [clouds · N · 3, 1]: row 3(bN + p) + k = coordinate k of point p of cloud b
    std::vector<std::size_t> labels;  // one per cloud
  };

  VNClassifier(VNClassifierOptions options, Rng& rng) : options_(validated(std::move(options))), pool_(options_.points) {
    std::size_t in = 1;
    for (std::size_t out : options_.channels) {
      Block b;
      b.linear = VNLinear<T, B>(in, out, rng);
      if (options_.batch_norm) b.norm = VNBatchNorm<T, B>(out);
      b.relu = VNLeakyReLU<T, B>(out, rng, options_.slope);
      if (options_.relaxed) {
        b.branch = Dense<T, B>(3 * in, 3 * out, rng);
        b.gamma = Tensor<T, 2>({1, 1});
        b.gamma_grad = Tensor<T, 2>({1, 1});
        B::fill(b.gamma, T(1));
        B::fill(b.gamma_grad, T(0));
      }
      blocks_.push_back(std::move(b));
      in = out;
    }
    invariant_ = VNInvariant<T, B>(in, rng);
    head1_ = Dense<T, B>(3 * in, options_.hidden, rng);
    head2_ = Dense<T, B>(options_.hidden, options_.classes, rng);
    relaxation_ = options_.relaxed;
  }

  /// Logits [clouds, classes] (the model's buffer).
  const Tensor<T, 2>& forward(const Tensor<T, 2>& points) {
    ACE_THROW_IF(points.shape()[1] != 1 || points.shape()[0] % (3 * options_.points) != 0, shape_error,
                 "VNClassifier::forward: expected points of shape [clouds * ", options_.points, " * 3, 1], got [",
                 points.shape()[0], ", ", points.shape()[1], "]");
    branches_ = options_.relaxed && relaxation_;
    const Tensor<T, 2>* x = &points;
    for (Block& b : blocks_) {
      const Tensor<T, 2>* h = &b.linear.forward(*x);
      if (options_.batch_norm) h = &b.norm.forward(*h);
      b.out = b.relu.forward(*h);
      if (branches_) {
        const std::size_t p = x->shape()[0] / 3;
        b.branch.forward(reshaped(*x, p, 3 * x->shape()[1]), b.branch_out);
        as_matrix(b.out) += b.gamma(0, 0) * as_matrix(reshaped(std::as_const(b.branch_out), 3 * p, b.out.shape()[1]));
      }
      b.in = x;
      x = &b.out;
    }
    const Tensor<T, 2>& inv = invariant_.forward(pool_.forward(*x));
    inv_ = &inv;
    head1_.forward(view(inv), z_);
    ensure_shape(a_, z_.shape()[0], z_.shape()[1]);
    as_matrix(a_) = as_matrix(z_).cwiseMax(T(0));
    head2_.forward(view(std::as_const(a_)), logits_);
    return logits_;
  }

  /// Given dL/dlogits: accumulates every parameter gradient.
  void backward(const Tensor<T, 2>& dlogits) {
    ACE_THROW_IF(inv_ == nullptr, invalid_argument, "VNClassifier::backward called before forward");
    ensure_shape(da_, a_.shape()[0], a_.shape()[1]);
    head2_.backward(view(std::as_const(a_)), view(dlogits), view(da_));
    as_matrix(da_).array() *= (as_matrix(z_).array() > T(0)).template cast<T>();
    ensure_shape(dinv_, inv_->shape()[0], inv_->shape()[1]);
    head1_.backward(view(*inv_), view(std::as_const(da_)), view(dinv_));
    const Tensor<T, 2>* d = &pool_.backward(invariant_.backward(dinv_));
    for (std::size_t l = blocks_.size(); l-- > 0;) {
      Block& b = blocks_[l];
      const Tensor<T, 2>* g = &b.relu.backward(*d);
      if (options_.batch_norm) g = &b.norm.backward(*g);
      b.din = b.linear.backward(*g);  // into the block's own buffer (same shape every step: no allocation)
      if (branches_) {
        const std::size_t p = b.in->shape()[0] / 3, width = b.branch_out.shape()[1];
        b.gamma_grad(0, 0) += (as_matrix(reshaped(*d, p, width)).array() *
                               as_matrix(view(std::as_const(b.branch_out))).array())
                                  .sum();
        ensure_shape(b.dbranch, p, width);
        as_matrix(b.dbranch) = b.gamma(0, 0) * as_matrix(reshaped(*d, p, width));
        b.branch.backward(reshaped(*b.in, p, 3 * b.in->shape()[1]), view(std::as_const(b.dbranch)),
                          reshaped(b.din, p, 3 * b.in->shape()[1]), T(1));
      }
      d = &b.din;
    }
  }

  /// Mean cross-entropy and gradients (a HomotopyModel).
  double loss_and_gradients(const batch& b) {
    const double value = static_cast<double>(loss_.forward(forward(b.points), b.labels));
    backward(loss_.backward());
    return value;
  }
  double loss(const batch& b) { return static_cast<double>(loss_.forward(forward(b.points), b.labels)); }

  /// Batch norm in training (batch statistics) or evaluation (running statistics) mode.
  void set_training(bool on) {
    for (Block& b : blocks_) b.norm.set_training(on);
  }
  void set_relaxation(bool on) { relaxation_ = on; }

  template <class F>
  void for_each_parameter(F&& f) {
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      Block& b = blocks_[l];
      const std::string prefix = detail::concat("blocks.", l, ".");
      b.linear.for_each_parameter(prefix + "linear.", f);
      if (options_.batch_norm) b.norm.for_each_parameter(prefix + "norm.", f);
      b.relu.for_each_parameter(prefix + "relu.", f);
      if (options_.relaxed) {
        b.branch.for_each_parameter(prefix + "branch.", f);
        f(detail::param_view(prefix + "gamma", b.gamma, b.gamma_grad, Role::gamma));
      }
    }
    invariant_.for_each_parameter("invariant.", f);
    head1_.for_each_parameter("head.0.", f);
    head2_.for_each_parameter("head.2.", f);
  }

  /// The batch norms' running statistics ("blocks.<l>.norm.running_mean", ...; none without batch norm).
  template <class F>
  void for_each_buffer(F&& f) {
    if (!options_.batch_norm) return;
    for (std::size_t l = 0; l < blocks_.size(); ++l)
      blocks_[l].norm.for_each_buffer(detail::concat("blocks.", l, ".norm."), f);
  }

  std::string signature() const {
    std::string s = detail::concat("VNClassifier(points ", options_.points, ", channels");
    for (std::size_t c : options_.channels) s += detail::concat(" ", c);
    return s + detail::concat(", hidden ", options_.hidden, ", classes ", options_.classes,
                              options_.batch_norm ? ", batch norm" : "", options_.relaxed ? ", relaxed" : "", ")");
  }

 private:
  static VNClassifierOptions validated(VNClassifierOptions o) {
    ACE_THROW_IF(o.points == 0 || o.channels.empty() || o.classes < 2 || o.hidden == 0, invalid_argument,
                 "VNClassifierOptions: points, channels and hidden must be non-empty and classes >= 2 (points ",
                 o.points, ", ", o.channels.size(), " blocks, hidden ", o.hidden, ", classes ", o.classes, ")");
    for (std::size_t c : o.channels)
      ACE_THROW_IF(c == 0, invalid_argument, "VNClassifierOptions: a VN block with 0 channels");
    return o;
  }

  struct Block {
    VNLinear<T, B> linear;
    VNBatchNorm<T, B> norm;
    VNLeakyReLU<T, B> relu;
    Dense<T, B> branch;
    Tensor<T, 2> gamma, gamma_grad, out, branch_out, dbranch, din;
    const Tensor<T, 2>* in = nullptr;
  };

  VNClassifierOptions options_;
  std::vector<Block> blocks_;
  VNMeanPool<T> pool_;
  VNInvariant<T, B> invariant_;
  Dense<T, B> head1_, head2_;
  CrossEntropyLoss<T> loss_;
  const Tensor<T, 2>* inv_ = nullptr;
  Tensor<T, 2> z_, a_, logits_, da_, dinv_;
  bool relaxation_ = false, branches_ = false;
};

}  // namespace ace
