// SPDX-License-Identifier: MIT
// The one batch norm of the library: statistics shared within groups of channels ("fields"), learnable scale and
// shift per field, running statistics as buffers. FieldBatchNorm (images) and VNBatchNorm (vector norms) use it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ace/backend/geometry.hpp"
#include "ace/error.hpp"
#include "ace/nn/module.hpp"

namespace ace::detail {

/// Batch normalisation of an array seen as [outer, channels, inner] whose channels are grouped into fields: in
/// training mode each field is normalised with the mean and (biased) variance of its entries in the batch and the
/// running statistics follow them (momentum, unbiased variance, as PyTorch); in evaluation mode the running ones are
/// used. y = weight_f (x - mean_f) / sqrt(var_f + eps) + bias_f. Parameters "weight" (1) and "bias" (0) per field,
/// buffers "running_mean" (0) and "running_var" (1), float64 in backend memory.
template <class T, Backend B>
class BatchNormCore {
 public:
  using tensor = tensor_t<B, T, 2>;

  BatchNormCore() = default;
  BatchNormCore(const std::vector<std::uint32_t>& field_of, std::size_t fields, double momentum, double eps,
                const char* what)
      : weight_({1, fields}), bias_({1, fields}), running_mean_(zeros<B, double>(1, fields)),
        running_var_(zeros<B, double>(1, fields)), field_of_(index_tensor<B>(field_of)), fields_(fields),
        momentum_(momentum), eps_(eps) {
    ACE_THROW_IF(!(momentum >= 0.0 && momentum <= 1.0) || !(eps > 0.0), invalid_argument, what,
                 ": momentum must be in [0, 1] and eps > 0, got ", momentum, " and ", eps);
    ACE_THROW_IF(fields == 0, invalid_argument, what, ": needs at least one field");
    B::fill(view(weight_.value), T(1));
    B::fill(view(running_var_), 1.0);
  }

  void set_training(bool on) { training_ = on; }
  bool training() const { return training_; }

  /// y = the normalised x (x and y [rows, cols] views holding layout l).
  void forward(MatrixRef<const T> x, const FieldLayout& l, MatrixRef<T> y) {
    ensure_shape(mean_, 1, fields_);
    ensure_shape(inv_std_, 1, fields_);
    ensure_shape(xhat_, x.rows, x.cols);
    B::batch_norm_statistics(x, l, view(std::as_const(field_of_)), training_, momentum_, eps_, view(running_mean_),
                             view(running_var_), view(mean_), view(inv_std_));
    B::batch_norm_forward(x, l, view(std::as_const(field_of_)), view(std::as_const(mean_)),
                          view(std::as_const(inv_std_)), view(std::as_const(weight_.value)),
                          view(std::as_const(bias_.value)), view(xhat_), y);
    batch_stats_ = training_;
  }
  /// Accumulates the parameter gradients and writes dx for the last forward.
  void backward(MatrixRef<const T> dy, const FieldLayout& l, MatrixRef<T> dx) {
    B::batch_norm_backward(dy, view(std::as_const(xhat_)), l, view(std::as_const(field_of_)),
                           view(std::as_const(weight_.value)), view(std::as_const(inv_std_)), batch_stats_,
                           view(weight_.grad), view(bias_.grad), dx);
  }

  template <class F>
  void for_each_parameter(F&& f) {
    f(weight_.view("weight", Role::weight));
    f(bias_.view("bias", Role::bias));
  }
  template <class F>
  void for_each_buffer(F&& f) {
    f(BufferView{"running_mean", flat(running_mean_)});
    f(BufferView{"running_var", flat(running_var_)});
  }
  /// Host copies of the running statistics.
  std::vector<double> running_mean() const { return to_host_vector<B>(flat(running_mean_)); }
  std::vector<double> running_var() const { return to_host_vector<B>(flat(running_var_)); }
  tensor& weight() { return weight_.value; }
  tensor& bias() { return bias_.value; }

 private:
  Parameter<B, T> weight_, bias_;
  tensor_t<B, double, 2> running_mean_, running_var_;
  tensor_t<B, std::uint32_t, 2> field_of_;
  std::size_t fields_ = 0;
  double momentum_ = 0.1, eps_ = 1e-5;
  bool training_ = true, batch_stats_ = true;
  tensor mean_, inv_std_, xhat_;
};

}  // namespace ace::detail
