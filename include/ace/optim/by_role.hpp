// SPDX-License-Identifier: MIT
// An optimiser per parameter role: ACE's Algorithm 1 and 2 take plain gradient steps on the relaxation scalars γ and
// the slacks u while the network's weights may use Adam (docs/ace.md, "The γ dynamics").
#pragma once

#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>

#include "ace/optim/optimizer.hpp"

namespace ace {

/// Two optimisers over one model: `Roles` (the parameters whose role is one of `Selected`) go to `Special`, every other
/// parameter to `Main`. `ByRole<Adam<float>, SGD<float>>(adam, sgd)` is Adam on θ and plain gradient steps on γ and u.
/// Each inner optimiser sees a view of the model restricted to its parameters, so its state (moments, momenta) exists
/// for those only, and checkpoints hold both under "main/" and "special/". Step counts: both optimisers step together.
template <class Main, class Special, Role... Selected>
class BasicByRole {
  static_assert(sizeof...(Selected) > 0, "ace: ByRole needs at least one role for its special optimiser.");

 public:
  BasicByRole(Main main, Special special) : main_(std::move(main)), special_(std::move(special)) {}

  template <Parameterised M>
  void step(M& model) {
    Restricted<M, false> rest{model};
    Restricted<M, true> chosen{model};
    main_.step(rest);
    special_.step(chosen);
  }
  std::size_t steps() const { return main_.steps(); }
  /// Sets both optimisers' host step counts (ConstrainedTrainer::record).
  void set_steps(std::size_t n) {
    main_.set_steps(n);
    special_.set_steps(n);
  }

  /// The inner optimisers' state under "main/" and "special/" (checkpoints).
  template <Parameterised M, class V>
  void visit_state(M& model, V&& v) {
    Restricted<M, false> rest{model};
    Restricted<M, true> chosen{model};
    using P = detail::PrefixedVisitor<std::remove_reference_t<V>>;
    if constexpr (requires { main_.visit_state(rest, v); }) main_.visit_state(rest, P{v, "main/"});
    if constexpr (requires { special_.visit_state(chosen, v); }) special_.visit_state(chosen, P{v, "special/"});
  }

  Main& main() { return main_; }
  Special& special() { return special_; }

  /// Whether `role` goes to the special optimiser.
  static constexpr bool selected(Role role) { return ((role == Selected) || ...); }

 private:
  /// The model's parameters of one side only.
  template <class M, bool Chosen>
  struct Restricted {
    M& model;
    using scalar = typename M::scalar;
    using backend = backend_of_t<M>;
    template <class F>
    void for_each_parameter(F&& f) {
      model.for_each_parameter([&](ParamView<scalar> p) {
        if (selected(p.role) == Chosen) f(p);
      });
    }
  };
  Main main_;
  Special special_;
};

/// The relaxation scalars γ and the slacks u to `Special`, the rest to `Main` (ACE's constrained variables).
template <class Main, class Special>
using ByRole = BasicByRole<Main, Special, Role::gamma, Role::slack>;

}  // namespace ace
