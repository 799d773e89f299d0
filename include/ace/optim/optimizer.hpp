// SPDX-License-Identifier: MIT
// What optimisers share: the parameter visitor they need, per-role learning rates, option validation, and the
// per-parameter state that is allocated once.
#pragma once

#include <cmath>
#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ace/backend/concept.hpp"
#include "ace/backend/default.hpp"
#include "ace/error.hpp"
#include "ace/tensor/parameter.hpp"

namespace ace {

/// Anything whose parameters can be visited: every layer and model, and hand-written models (the ACE trainer's). Its
/// parameter views point into the memory of backend_of_t<M> (Cpu, host memory, for models that name no backend).
template <class M>
concept Parameterised = requires(M m) {
  typename M::scalar;
  m.for_each_parameter(detail::AnyParameter<typename M::scalar>{});
};

/// Marks a state tensor that lives in backend B's memory, for state visitors (checkpoints copy it through B).
template <class B>
struct on_backend {};

/// Learning rates per parameter role; an empty entry uses the optimiser's base rate. ACE often gives the
/// relaxation gammas their own rate (docs/method.md §5).
struct RoleRates {
  std::optional<double> weight{}, bias{}, gamma{}, slack{};

  double rate(Role role, double base) const {
    const std::optional<double>* r = role == Role::weight ? &weight
                                     : role == Role::bias ? &bias
                                     : role == Role::gamma ? &gamma
                                                           : &slack;
    return r->value_or(base);
  }
};

namespace detail {
/// Forwards a state visitor's calls with a name prefix (an inner optimiser's state inside another's or the trainer's).
template <class V>
struct PrefixedVisitor {
  V& inner;
  std::string prefix;
  template <class S>
  void tensor(const std::string& name, std::span<S> data) {
    inner.tensor(prefix + name, data);
  }
  template <class S, class B>
  void tensor(const std::string& name, VectorRef<S> data, on_backend<B> where) {
    inner.tensor(prefix + name, data, where);
  }
  void counter(const std::string& name, std::size_t& value) { inner.counter(prefix + name, value); }
};

inline void require_positive(double value, const char* option) {
  ACE_THROW_IF(!(value > 0.0) || !std::isfinite(value), invalid_argument, option, " must be a positive finite number, got ",
               value);
}
inline void require_non_negative(double value, const char* option) {
  ACE_THROW_IF(!(value >= 0.0) || !std::isfinite(value), invalid_argument, option, " must be >= 0, got ", value);
}
inline void require_in(double value, double lo, double hi, const char* option) {
  ACE_THROW_IF(!(value >= lo && value < hi), invalid_argument, option, " must be in [", lo, ", ", hi, "), got ", value);
}
inline void require_rates(const RoleRates& r) {
  if (r.weight) require_positive(*r.weight, "RoleRates::weight");
  if (r.bias) require_positive(*r.bias, "RoleRates::bias");
  if (r.gamma) require_positive(*r.gamma, "RoleRates::gamma");
  if (r.slack) require_positive(*r.slack, "RoleRates::slack");
}

/// Per-parameter state buffers (momenta, moments) in backend B's memory, created zeroed on the first step and
/// checked on every later one: a model whose parameter structure changed between steps is an error, not silent
/// corruption.
template <class T, Backend B>
class ParameterState {
 public:
  explicit ParameterState(std::size_t buffers) : buffers_(buffers) {}

  /// The `buffers` state arrays ([1, n] each) of parameter number `index`, allocated on first use.
  tensor_t<B, T, 2>* get(std::size_t index, const std::string& name, std::size_t n) {
    if (index == state_.size()) {
      state_.emplace_back(buffers_, zeros<B, T>(1, n));
      names_.push_back(name);
    }
    ACE_THROW_IF(index > state_.size() || state_[index].front().size() != n || names_[index] != name, invalid_argument,
                 "optimiser: parameter ", index, " is now '", name, "' with ", n, " values, but was '",
                 names_[index < names_.size() ? index : 0], "' when the optimiser state was created; use a new "
                 "optimiser for a different model");
    return state_[index].data();
  }
  std::size_t parameters() const { return state_.size(); }

 private:
  std::size_t buffers_;
  std::vector<std::vector<tensor_t<B, T, 2>>> state_;
  std::vector<std::string> names_;
};
}  // namespace detail

}  // namespace ace
