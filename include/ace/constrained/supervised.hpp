// SPDX-License-Identifier: MIT
// SupervisedModel: an ace network and a loss as a HomotopyModel the trainer can drive.
#pragma once

#include <concepts>
#include <string>

#include "ace/nn/module.hpp"

namespace ace {

/// A mini-batch of inputs [batch, In::dim] (backend B's tensor) and targets (a tensor for regression losses, class
/// indices for cross-entropy). Holds references: the data outlives the step.
template <class T, class Target, Backend B = Cpu>
struct SupervisedBatch {
  const tensor_t<B, T, 2>& inputs;
  const Target& targets;
};

/// Network + loss as a HomotopyModel: loss_and_gradients runs forward, the loss and backward; set_relaxation
/// switches every Relaxed layer's branch. The parameters are the network's (θ and γ by their roles).
template <Module Net, class Loss, class Target = layer_tensor_t<Net>>
class SupervisedModel {
 public:
  using scalar = typename Net::scalar;
  using backend = typename Net::backend;
  using batch = SupervisedBatch<scalar, Target, backend>;

  SupervisedModel(Net net, Loss loss = {}) : net_(std::move(net)), loss_(std::move(loss)) {}

  double loss_and_gradients(const batch& b) {
    const double value = static_cast<double>(loss_.forward(net_.forward(b.inputs), b.targets));
    net_.backward(loss_.backward());
    return value;
  }
  /// The same with J0 written to `loss` (1×1 double in backend memory): no transfer (ConstrainedTrainer uses it).
  void loss_and_gradients(const batch& b, MatrixRef<double> loss)
    requires requires(Loss& l, const layer_tensor_t<Net>& y) { l.forward(y, b.targets, loss); }
  {
    loss_.forward(net_.forward(b.inputs), b.targets, loss);
    net_.backward(loss_.backward());
  }
  /// The loss on a batch without gradients (evaluation), with the branches as currently set.
  double loss(const batch& b) { return static_cast<double>(loss_.forward(net_.forward(b.inputs), b.targets)); }

  void set_relaxation(bool on) { ace::set_relaxation(net_, on); }

  /// The network's signature (checkpoints compare it).
  static std::string signature() { return module_signature<Net>(); }

  template <class F>
  void for_each_parameter(F&& f) {
    net_.for_each_parameter(f);
  }
  template <class F>
    requires HasBuffers<Net>
  void for_each_buffer(F&& f) {
    net_.for_each_buffer(f);
  }

  Net& network() { return net_; }
  Loss& loss_function() { return loss_; }

 private:
  Net net_;
  Loss loss_;
};

}  // namespace ace
