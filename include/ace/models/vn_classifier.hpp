// SPDX-License-Identifier: MIT
// ACE's relaxed Vector Neurons point-cloud classifier (docs/method.md §2, §7).
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "ace/error.hpp"
#include "ace/nn/core/linear.hpp"
#include "ace/nn/core/loss.hpp"
#include "ace/nn/core/relaxation.hpp"
#include "ace/nn/module.hpp"
#include "ace/nn/point/vector_neurons.hpp"
#include "ace/random.hpp"

namespace ace {

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
/// With `relaxed`, VN block l gets ACE's non-equivariant branch (docs/method.md §2): x_{l+1} = block(x_l) +
/// gamma_l Dense(x_l flattened per point, 3 C_l -> 3 C_{l+1}), gamma_l = 1 initially ("blocks.<l>.gamma").
/// set_relaxation(false) skips the branches.
template <class T, Backend B = Cpu>
class VNClassifier {
 public:
  using scalar = T;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;
  struct batch {
    tensor points;                    // [clouds · N · 3, 1]: row 3(bN + p) + k = coordinate k of point p of cloud b
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
        b.branch = Dense<T, B>(3 * in, 3 * out, rng, {.init = LinearInit::torch});
        b.relax = Relaxation<T, B>(1);
      }
      blocks_.push_back(std::move(b));
      in = out;
    }
    invariant_ = VNInvariant<T, B>(in, rng);
    head1_ = Dense<T, B>(3 * in, options_.hidden, rng, {.init = LinearInit::torch});
    head2_ = Dense<T, B>(options_.hidden, options_.classes, rng, {.init = LinearInit::torch});
    set_relaxation(options_.relaxed);
  }

  /// Logits [clouds, classes] (the model's buffer).
  const tensor& forward(const tensor& points) {
    ACE_THROW_IF(points.shape()[1] != 1 || points.shape()[0] % (3 * options_.points) != 0, shape_error,
                 "VNClassifier::forward: expected points of shape [clouds * ", options_.points, " * 3, 1], got [",
                 points.shape()[0], ", ", points.shape()[1], "]");
    branches_ = options_.relaxed && relaxation_;
    const tensor* x = &points;
    for (Block& b : blocks_) {
      const tensor* h = &b.linear.forward(*x);
      if (options_.batch_norm) h = &b.norm.forward(*h);
      const tensor& y = b.relu.forward(*h);
      ensure_shape(b.out, y.shape()[0], y.shape()[1]);
      B::copy(view(y), view(b.out));  // the block's own buffer (same shape every step: no allocation)
      if (branches_) {
        const std::size_t p = x->shape()[0] / 3;
        const tensor& bo = b.branch.forward(reshaped(*x, p, 3 * x->shape()[1]));
        b.relax.add_branch(0, reshaped(bo, 3 * p, b.out.shape()[1]), view(b.out));
      }
      b.in = x;
      x = &b.out;
    }
    const tensor& inv = invariant_.forward(pool_.forward(*x));
    const tensor& z = head1_.forward(inv);
    ensure_shape(a_, z.shape()[0], z.shape()[1]);
    B::template map<ReLUOp>(view(z), view(a_));
    return head2_.forward(view(std::as_const(a_)));
  }

  /// Given dL/dlogits: accumulates every parameter gradient.
  void backward(const tensor& dlogits) {
    ACE_THROW_IF(blocks_.empty() || blocks_.front().in == nullptr, invalid_argument,
                 "VNClassifier::backward called before forward");
    ensure_shape(da_, a_.shape()[0], a_.shape()[1]);
    head2_.backward_into(view(dlogits), view(da_), T(0));
    B::template map_backward<ReLUOp>(view(head1_.output()), view(std::as_const(a_)), view(std::as_const(da_)),
                                     view(da_));
    const tensor* d = &pool_.backward(invariant_.backward(head1_.backward(da_)));
    for (std::size_t l = blocks_.size(); l-- > 0;) {
      Block& b = blocks_[l];
      const tensor* g = &b.relu.backward(*d);
      if (options_.batch_norm) g = &b.norm.backward(*g);
      const tensor& dx = b.linear.backward(*g);
      ensure_shape(b.din, dx.shape()[0], dx.shape()[1]);
      B::copy(view(dx), view(b.din));  // into the block's own buffer (same shape every step: no allocation)
      if (branches_) {
        const std::size_t p = b.in->shape()[0] / 3, width = b.branch.output().shape()[1];
        ensure_shape(b.dbranch, p, width);
        b.relax.branch_backward(0, reshaped(*d, p, width), view(b.branch.output()), view(b.dbranch));
        b.branch.backward_into(view(std::as_const(b.dbranch)), reshaped(b.din, p, 3 * b.in->shape()[1]), T(1));
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
  /// The same with the loss written to `loss` (1×1 double in backend memory); the labels still come from the host.
  void loss_and_gradients(const batch& b, MatrixRef<double> loss) {
    loss_.forward(forward(b.points), b.labels, loss);
    backward(loss_.backward());
  }
  double loss(const batch& b) { return static_cast<double>(loss_.forward(forward(b.points), b.labels)); }

  /// Batch norm in training (batch statistics) or evaluation (running statistics) mode.
  void set_training(bool on) {
    for (Block& b : blocks_) b.norm.set_training(on);
  }
  void set_relaxation(bool on) {
    relaxation_ = on;
    for (Block& b : blocks_) b.relax.set(on);
  }

  template <class F>
  void for_each_parameter(F&& f) {
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      Block& b = blocks_[l];
      const std::string prefix = detail::concat("blocks.", l, ".");
      detail::for_each_prefixed(b.linear, prefix + "linear", f);
      if (options_.batch_norm) detail::for_each_prefixed(b.norm, prefix + "norm", f);
      detail::for_each_prefixed(b.relu, prefix + "relu", f);
      if (options_.relaxed) {
        detail::for_each_prefixed(b.branch, prefix + "branch", f);
        f(b.relax.param(prefix + "gamma"));
      }
    }
    detail::for_each_prefixed(invariant_, "invariant", f);
    detail::for_each_prefixed(head1_, "head.0", f);
    detail::for_each_prefixed(head2_, "head.2", f);
  }

  /// The batch norms' running statistics ("blocks.<l>.norm.running_mean", ...; none without batch norm).
  template <class F>
  void for_each_buffer(F&& f) {
    if (!options_.batch_norm) return;
    for (std::size_t l = 0; l < blocks_.size(); ++l)
      detail::for_each_buffer_prefixed(blocks_[l].norm, detail::concat("blocks.", l, ".norm"), f);
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
    Relaxation<T, B> relax;
    tensor out, dbranch, din;
    const tensor* in = nullptr;
  };

  VNClassifierOptions options_;
  std::vector<Block> blocks_;
  VNMeanPool<T, B> pool_;
  VNInvariant<T, B> invariant_;
  Dense<T, B> head1_, head2_;
  CrossEntropyLoss<T, B> loss_;
  tensor a_, da_;
  bool relaxation_ = false, branches_ = false;
};

}  // namespace ace
