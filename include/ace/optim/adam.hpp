// SPDX-License-Identifier: MIT
// Adam and AdamW (PyTorch's semantics, bias-corrected moments).
#pragma once

#include <cmath>
#include <cstddef>
#include <span>

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
template <class T, bool Decoupled = false>
class BasicAdam {
 public:
  explicit BasicAdam(AdamOptions options = {}) : options_(options), state_(2) {
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
    ++steps_;
    const double t = static_cast<double>(steps_);
    const T c1 = static_cast<T>(1.0 - std::pow(options_.beta1, t));
    const T c2 = static_cast<T>(1.0 - std::pow(options_.beta2, t));
    const T b1 = static_cast<T>(options_.beta1), b2 = static_cast<T>(options_.beta2);
    const T eps = static_cast<T>(options_.eps), wd = static_cast<T>(options_.weight_decay);
    std::size_t index = 0;
    model.for_each_parameter([&](ParamView<T> p) {
      const T lr = static_cast<T>(options_.role_lr.rate(p.role, options_.lr));
      std::vector<T>* s = state_.get(index++, p.name, p.value.size());
      std::vector<T>& m = s[0];
      std::vector<T>& v = s[1];
      for (std::size_t i = 0; i < p.value.size(); ++i) {
        T g = p.grad[i];
        if constexpr (Decoupled) p.value[i] *= T(1) - lr * wd;
        else g += wd * p.value[i];
        m[i] = b1 * m[i] + (T(1) - b1) * g;
        v[i] = b2 * v[i] + (T(1) - b2) * g * g;
        p.value[i] -= lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + eps);
      }
    });
  }

  std::size_t steps() const { return steps_; }
  const AdamOptions& options() const { return options_; }

  /// Visits the optimiser state for checkpoints: v.counter("steps", t) and v.tensor("m/<param>", span),
  /// v.tensor("v/<param>", span) for every parameter of `model` (created, zeroed, if no step has run yet).
  template <Parameterised M, class V>
  void visit_state(M& model, V&& v) {
    v.counter("steps", steps_);
    std::size_t index = 0;
    model.for_each_parameter([&](ParamView<T> p) {
      std::vector<T>* s = state_.get(index++, p.name, p.value.size());
      v.tensor("m/" + p.name, std::span<T>(s[0]));
      v.tensor("v/" + p.name, std::span<T>(s[1]));
    });
  }

 private:
  AdamOptions options_;
  detail::ParameterState<T> state_;
  std::size_t steps_ = 0;
};

template <class T>
using Adam = BasicAdam<T, false>;
template <class T>
using AdamW = BasicAdam<T, true>;

}  // namespace ace
