// SPDX-License-Identifier: MIT
// Losses: mean squared error, mean absolute error, softmax cross-entropy with logits.
#pragma once

#include <cmath>
#include <cstddef>
#include <span>

#include "ace/error.hpp"
#include "ace/tensor/tensor.hpp"

namespace ace {

namespace detail {
template <class T>
void require_finite_loss(T value, const char* what) {
  ACE_THROW_IF(!std::isfinite(value), numerical_error, what, ": the loss is ", value,
               "; the model diverged or its input holds NaN/Inf (lower the learning rate, clip gradients, or check "
               "the data)");
}
template <class T>
void require_same_shape(const Tensor<T, 2>& a, const Tensor<T, 2>& b, const char* what) {
  ACE_THROW_IF(a.shape() != b.shape(), shape_error, what, ": prediction [", a.shape()[0], ", ", a.shape()[1],
               "] and target [", b.shape()[0], ", ", b.shape()[1], "] differ");
}
}  // namespace detail

/// Elementwise regression losses: L = mean over all entries of Op::value(pred - target); backward() returns
/// dL/dpred = Op::derivative(pred - target) / size.
template <class T, class Op>
class ElementwiseLoss {
 public:
  T forward(const Tensor<T, 2>& pred, const Tensor<T, 2>& target) {
    detail::require_same_shape(pred, target, Op::name);
    ensure_shape(grad_, pred.shape()[0], pred.shape()[1]);
    const T scale = T(1) / static_cast<T>(pred.size());
    T sum = 0;
    for (std::size_t i = 0; i < pred.size(); ++i) {
      const T d = pred.data()[i] - target.data()[i];
      sum += Op::value(d);
      grad_.data()[i] = scale * Op::derivative(d);
    }
    const T loss = sum * scale;
    detail::require_finite_loss(loss, Op::name);
    return loss;
  }
  const Tensor<T, 2>& backward() const { return grad_; }

 private:
  Tensor<T, 2> grad_;
};

struct SquaredError {
  static constexpr const char* name = "MSELoss";
  template <class T> static T value(T d) { return d * d; }
  template <class T> static T derivative(T d) { return T(2) * d; }
};
struct AbsoluteError {  // subgradient 0 at 0
  static constexpr const char* name = "L1Loss";
  template <class T> static T value(T d) { return std::abs(d); }
  template <class T> static T derivative(T d) { return d > T(0) ? T(1) : (d < T(0) ? T(-1) : T(0)); }
};

/// L = mean over all entries of (pred - target)^2 (PyTorch's MSELoss).
template <class T>
using MSELoss = ElementwiseLoss<T, SquaredError>;
/// L = mean over all entries of |pred - target| (PyTorch's L1Loss).
template <class T>
using L1Loss = ElementwiseLoss<T, AbsoluteError>;

/// L = mean over the batch of -log softmax(logits)[target] (PyTorch's CrossEntropyLoss on class indices),
/// computed with the log-sum-exp shift so large logits do not overflow. backward() returns dL/dlogits.
template <class T>
class CrossEntropyLoss {
 public:
  T forward(const Tensor<T, 2>& logits, std::span<const std::size_t> targets) {
    const std::size_t batch = logits.shape()[0], classes = logits.shape()[1];
    ACE_THROW_IF(targets.size() != batch, shape_error, "CrossEntropyLoss: ", batch, " rows of logits but ",
                 targets.size(), " targets");
    ensure_shape(grad_, batch, classes);
    T sum = 0;
    for (std::size_t r = 0; r < batch; ++r) {
      ACE_THROW_IF(targets[r] >= classes, invalid_argument, "CrossEntropyLoss: target ", targets[r], " of row ", r,
                   " is not a class index below ", classes);
      const T* z = logits.data() + r * classes;
      T* g = grad_.data() + r * classes;
      T shift = z[0];
      for (std::size_t c = 1; c < classes; ++c) shift = std::max(shift, z[c]);
      T total = 0;
      for (std::size_t c = 0; c < classes; ++c) total += (g[c] = std::exp(z[c] - shift));
      sum += std::log(total) + shift - z[targets[r]];
      for (std::size_t c = 0; c < classes; ++c) g[c] = g[c] / total / static_cast<T>(batch);
      g[targets[r]] -= T(1) / static_cast<T>(batch);
    }
    const T loss = sum / static_cast<T>(batch);
    detail::require_finite_loss(loss, "CrossEntropyLoss");
    return loss;
  }
  const Tensor<T, 2>& backward() const { return grad_; }

 private:
  Tensor<T, 2> grad_;
};

}  // namespace ace
