// SPDX-License-Identifier: MIT
// SupervisedModel: an ace network and a loss as a HomotopyModel the trainer can drive.
#pragma once

#include <concepts>
#include <string>

#include "ace/nn/module.hpp"
#include "ace/nn/relaxed.hpp"
#include "ace/tensor/tensor.hpp"

namespace ace {

/// A mini-batch of inputs [batch, In::dim] and targets (a tensor for regression losses, class indices for
/// cross-entropy). Holds references: the data outlives the step.
template <class T, class Target = Tensor<T, 2>>
struct SupervisedBatch {
  const Tensor<T, 2>& inputs;
  const Target& targets;
};

/// Network + loss as a HomotopyModel: loss_and_gradients runs forward, the loss and backward; set_relaxation
/// switches every Relaxed layer's branch. The parameters are the network's (θ and γ by their roles).
template <Module Net, class Loss, class Target = Tensor<typename Net::scalar, 2>>
class SupervisedModel {
 public:
  using scalar = typename Net::scalar;
  using batch = SupervisedBatch<scalar, Target>;

  SupervisedModel(Net net, Loss loss = {}) : net_(std::move(net)), loss_(std::move(loss)) {}

  double loss_and_gradients(const batch& b) {
    const double value = static_cast<double>(loss_.forward(net_.forward(b.inputs), b.targets));
    net_.backward(loss_.backward());
    return value;
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
