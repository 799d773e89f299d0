// SPDX-License-Identifier: MIT
// Adam and AdamW (PyTorch's semantics, bias-corrected moments).
#pragma once

#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "ace/optim/optimizer.hpp"

namespace ace {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;         ///< in [0, 1)
  double beta2 = 0.999;       ///< in [0, 1)
  double eps = 1e-8;          ///< > 0
  double weight_decay = 0.0;  ///< Adam: L2 term added to the gradient; AdamW: decoupled decay of the weights
  RoleRates role_lr{};
};

/// Adam (Kingma & Ba 2015, Algorithm 1), or AdamW (Loshchilov & Hutter 2019) when Decoupled is true:
///   Adam:  g <- g + wd p;            AdamW: p <- p (1 - lr wd);
///   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g²;  p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
/// Each parameter's update is one backend operation (adam_update) on the model's backend; the moments and the step
/// count the bias corrections use live there too, so a recorded step (a CUDA graph) replays with the right count.
template <class T, bool Decoupled = false, Backend B = Cpu>
class BasicAdam {
 public:
  explicit BasicAdam(AdamOptions options = {})
      : options_(options), state_(2), t_(zeros<B, double>(1, 1)), one_(zeros<B, double>(1, 1)) {
    B::fill(view(one_), 1.0);
    detail::require_positive(options.lr, "AdamOptions::lr");
    detail::require_in(options.beta1, 0.0, 1.0, "AdamOptions::beta1");
    detail::require_in(options.beta2, 0.0, 1.0, "AdamOptions::beta2");
    detail::require_positive(options.eps, "AdamOptions::eps");
    detail::require_non_negative(options.weight_decay, "AdamOptions::weight_decay");
    detail::require_rates(options.role_lr);
  }

  template <Parameterised M>
  void step(M& model) {
    static_assert(std::same_as<typename M::scalar, T>, "ace: Adam<T> and the model must use the same scalar type.");
    static_assert(std::same_as<backend_of_t<M>, B>,
                  "ace: Adam<T, B> updates parameters in backend B's memory; build it with the model's backend.");
    ++steps_;
    B::reduce_into(Accumulate::sum, MatrixRef<const double>(view(one_)), view(t_));  // t += 1 in backend memory
    std::size_t index = 0;
    if constexpr (MultiTensorBackend<B, T>) batch_.clear();
    model.for_each_parameter([&](ParamView<T> p) {
      const AdamStep s{options_.role_lr.rate(p.role, options_.lr), options_.beta1, options_.beta2, options_.eps,
                       options_.weight_decay, Decoupled};
      tensor_t<B, T, 2>* mv = state_.get(index++, p.name, p.value.size());
      if constexpr (MultiTensorBackend<B, T>) {  // collected, then updated in a few operations
        ACE_THROW_IF(p.grad.size() != p.value.size(), shape_error, "Adam: parameter ", p.name, " has ",
                     p.value.size(), " values and ", p.grad.size(), " gradient entries");
        batch_.push_back({p.value.data(), p.grad.data(), mv[0].data(), mv[1].data(), p.value.size(), s});
      } else {
        B::adam_update(p.value.row(), MatrixRef<const T>(p.grad.row()), view(mv[0]), view(mv[1]), s,
                       MatrixRef<const double>(view(t_)));
      }
    });
    if constexpr (MultiTensorBackend<B, T>)
      B::adam_update_many(std::span<const AdamTensor<T>>(batch_), MatrixRef<const double>(view(t_)));
  }
  /// Sets the host's step count, for steps recorded or replayed as a whole (ConstrainedTrainer::record); the count
  /// in backend memory, which the updates read, advances with the replayed operations themselves.
  void set_steps(std::size_t n) { steps_ = n; }

  std::size_t steps() const { return steps_; }
  const AdamOptions& options() const { return options_; }

  /// Visits the optimiser state for checkpoints: v.counter("steps", t) and v.tensor("m/<param>", view, on_backend<B>),
  /// v.tensor("v/<param>", ...) for every parameter of `model` (created, zeroed, if no step has run yet).
  template <Parameterised M, class V>
  void visit_state(M& model, V&& v) {
    v.counter("steps", steps_);
    const double t = static_cast<double>(steps_);  // the count the updates read, as loaded (or unchanged)
    B::from_host(std::span<const double>(&t, 1), view(t_));
    std::size_t index = 0;
    model.for_each_parameter([&](ParamView<T> p) {
      tensor_t<B, T, 2>* s = state_.get(index++, p.name, p.value.size());
      v.tensor("m/" + p.name, flat(s[0]), on_backend<B>{});
      v.tensor("v/" + p.name, flat(s[1]), on_backend<B>{});
    });
  }

 private:
  AdamOptions options_;
  detail::ParameterState<T, B> state_;
  std::size_t steps_ = 0;                    // on the host, for checkpoints and steps()
  tensor_t<B, double, 2> t_, one_;           // the step count the updates read, and a constant 1
  std::vector<AdamTensor<T>> batch_;         // one step's tensors (MultiTensorBackend), reused
};

template <class T, Backend B = Cpu>
using Adam = BasicAdam<T, false, B>;
template <class T, Backend B = Cpu>
using AdamW = BasicAdam<T, true, B>;

}  // namespace ace
