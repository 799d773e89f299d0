// SPDX-License-Identifier: MIT
// Stochastic gradient descent with momentum, Nesterov momentum and weight decay (PyTorch's SGD semantics).
#pragma once

#include <cstddef>
#include <string>

#include "ace/optim/optimizer.hpp"

namespace ace {

struct SGDOptions {
  double lr = 1e-2;
  double momentum = 0.0;      ///< in [0, 1)
  bool nesterov = false;      ///< needs momentum > 0
  double weight_decay = 0.0;  ///< L2 term added to the gradient, >= 0
  RoleRates role_lr{};        ///< per-role learning rates (e.g. .gamma = 1e-3)
};

/// For each parameter p with gradient g (all roles; the rate may depend on the role):
///   g <- g + weight_decay p;  b <- momentum b + g (b = g on the first step);
///   g <- g + momentum b (Nesterov) or g <- b (classical);  p <- p - lr g.
/// Each parameter's update is one backend operation (sgd_update) on the model's backend; the momentum buffers live
/// there too.
template <class T, Backend B = Cpu>
class SGD {
 public:
  explicit SGD(SGDOptions options = {}) : options_(options), state_(1) {
    detail::require_positive(options.lr, "SGDOptions::lr");
    detail::require_in(options.momentum, 0.0, 1.0, "SGDOptions::momentum");
    detail::require_non_negative(options.weight_decay, "SGDOptions::weight_decay");
    ACE_THROW_IF(options.nesterov && options.momentum == 0.0, invalid_argument,
                 "SGDOptions::nesterov needs momentum > 0, got momentum = ", options.momentum);
    detail::require_rates(options.role_lr);
  }

  template <Parameterised M>
  void step(M& model) {
    static_assert(std::same_as<typename M::scalar, T>, "ace: SGD<T> and the model must use the same scalar type.");
    static_assert(std::same_as<backend_of_t<M>, B>,
                  "ace: SGD<T, B> updates parameters in backend B's memory; build it with the model's backend.");
    std::size_t index = 0;
    model.for_each_parameter([&](ParamView<T> p) {
      const SgdStep s{options_.role_lr.rate(p.role, options_.lr), options_.momentum, options_.weight_decay,
                      options_.nesterov, steps_ == 0};
      tensor_t<B, T, 2>* buf = options_.momentum != 0.0 ? state_.get(index, p.name, p.value.size()) : nullptr;
      B::sgd_update(p.value.row(), MatrixRef<const T>(p.grad.row()), buf != nullptr ? view(*buf) : MatrixRef<T>{}, s);
      ++index;
    });
    ++steps_;
  }

  /// Sets the step count, for steps recorded or replayed as a whole (ConstrainedTrainer::record, which records after
  /// the first step: the momentum set-up is not part of a recording).
  void set_steps(std::size_t n) { steps_ = n; }

  std::size_t steps() const { return steps_; }
  const SGDOptions& options() const { return options_; }

  /// Visits the optimiser state for checkpoints: v.counter("steps", n) and v.tensor("momentum/<param>", view,
  /// on_backend<B>) for every parameter of `model` (buffers are created, zeroed, if no step has run yet).
  template <Parameterised M, class V>
  void visit_state(M& model, V&& v) {
    v.counter("steps", steps_);
    if (options_.momentum == 0.0) return;
    std::size_t index = 0;
    model.for_each_parameter([&](ParamView<T> p) {
      tensor_t<B, T, 2>* s = state_.get(index++, p.name, p.value.size());
      v.tensor("momentum/" + p.name, flat(s[0]), on_backend<B>{});
    });
  }

 private:
  SGDOptions options_;
  detail::ParameterState<T, B> state_;
  std::size_t steps_ = 0;
};

}  // namespace ace
