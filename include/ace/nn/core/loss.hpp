// SPDX-License-Identifier: MIT
// Losses: mean squared error, mean absolute error, softmax cross-entropy with logits.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "ace/backend/ops.hpp"
#include "ace/error.hpp"
#include "ace/nn/module.hpp"

namespace ace {

namespace detail {
template <class T>
void require_finite_loss(T value, const char* what) {
  ACE_THROW_IF(!std::isfinite(value), numerical_error, what, ": the loss is ", value,
               "; the model diverged or its input holds NaN/Inf (lower the learning rate, clip gradients, or check "
               "the data)");
}
}  // namespace detail

/// Elementwise regression losses: L = mean over all entries of Op::value(pred - target); backward() returns
/// dL/dpred = Op::derivative(pred - target) / size (the loss's own buffer).
template <class T, class Op, Backend B = Cpu>
class ElementwiseLoss {
 public:
  using scalar = T;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;

  T forward(const tensor& pred, const tensor& target) { return forward(view(pred), view(target)); }
  /// The same on views (e.g. a column block of a model's output).
  T forward(MatrixRef<const T> pred, MatrixRef<const T> target) {
    ACE_THROW_IF(pred.rows != target.rows || pred.cols != target.cols, shape_error, Op::name, ": prediction [",
                 pred.rows, ", ", pred.cols, "] and target [", target.rows, ", ", target.cols, "] differ");
    ensure_shape(grad_, pred.rows, pred.cols);
    const T loss = B::template elementwise_loss<Op>(pred, target, view(grad_));
    detail::require_finite_loss(loss, Op::name);
    return loss;
  }
  /// The loss written to `out` (a 1×1 double in backend memory) instead of returned, and not checked: on a device
  /// backend nothing is copied to the host (the caller checks the value when it reads it).
  void forward(MatrixRef<const T> pred, MatrixRef<const T> target, MatrixRef<double> out) {
    ACE_THROW_IF(pred.rows != target.rows || pred.cols != target.cols, shape_error, Op::name, ": prediction [",
                 pred.rows, ", ", pred.cols, "] and target [", target.rows, ", ", target.cols, "] differ");
    ensure_shape(grad_, pred.rows, pred.cols);
    B::template elementwise_loss<Op>(pred, target, view(grad_), out);
  }
  void forward(const tensor& pred, const tensor& target, MatrixRef<double> out) { forward(view(pred), view(target), out); }
  const tensor& backward() const { return grad_; }

 private:
  tensor grad_;
};

/// L = mean over all entries of (pred - target)^2 (PyTorch's MSELoss).
template <class T, Backend B = Cpu>
using MSELoss = ElementwiseLoss<T, SquaredError, B>;
/// L = mean over all entries of |pred - target| (PyTorch's L1Loss).
template <class T, Backend B = Cpu>
using L1Loss = ElementwiseLoss<T, AbsoluteError, B>;

/// L = mean over the batch of -log softmax(logits)[target] (PyTorch's CrossEntropyLoss on class indices), computed
/// with the log-sum-exp shift so large logits do not overflow. backward() returns dL/dlogits. The class indices come
/// from the host (checked there) and are copied to the backend once per call.
template <class T, Backend B = Cpu>
class CrossEntropyLoss {
 public:
  using scalar = T;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;

  T forward(const tensor& logits, std::span<const std::size_t> targets) {
    upload_labels(logits, targets);
    const T loss = B::softmax_cross_entropy(view(logits), view(std::as_const(labels_)), view(grad_));
    detail::require_finite_loss(loss, "CrossEntropyLoss");
    return loss;
  }
  /// The loss written to `out` (a 1×1 double in backend memory), not checked; the class indices are still copied
  /// from the host (checked there first).
  void forward(const tensor& logits, std::span<const std::size_t> targets, MatrixRef<double> out) {
    upload_labels(logits, targets);
    B::softmax_cross_entropy(view(logits), view(std::as_const(labels_)), view(grad_), out);
  }
  const tensor& backward() const { return grad_; }

 private:
  void upload_labels(const tensor& logits, std::span<const std::size_t> targets) {
    const std::size_t batch = logits.shape()[0], classes = logits.shape()[1];
    ACE_THROW_IF(targets.size() != batch, shape_error, "CrossEntropyLoss: ", batch, " rows of logits but ",
                 targets.size(), " targets");
    labels_host_.resize(batch);
    for (std::size_t r = 0; r < batch; ++r) {
      ACE_THROW_IF(targets[r] >= classes, invalid_argument, "CrossEntropyLoss: target ", targets[r], " of row ", r,
                   " is not a class index below ", classes);
      labels_host_[r] = static_cast<std::uint32_t>(targets[r]);
    }
    ensure_shape(labels_, 1, batch);
    B::from_host(std::span<const std::uint32_t>(labels_host_), view(labels_));
    ensure_shape(grad_, batch, classes);
  }

  std::vector<std::uint32_t> labels_host_;
  tensor_t<B, std::uint32_t, 2> labels_;
  tensor grad_;
};

}  // namespace ace
