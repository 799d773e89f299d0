// SPDX-License-Identifier: MIT
// A hand-written HomotopyModel with a known constrained optimum: J0 = ½(θ - a)² + ½(γ - b)².
#pragma once

#include "ace/constrained/trainer.hpp"

namespace ace::test {

/// Its parameters are plain doubles in host memory, which both Cpu and Reference address (B only says which
/// backend's operations the optimiser and the trainer use).
template <class B = Cpu>
struct Quadratic {
  using scalar = double;
  using backend = B;
  using batch = int;
  double theta = 3.0, gamma = 1.0, dtheta = 0.0, dgamma = 0.0;
  double a = 2.0, b = 0.7;
  bool relaxed = true;
  int calls = 0;

  double loss_and_gradients(const batch&) {
    ++calls;
    dtheta += theta - a;
    dgamma += gamma - b;
    return 0.5 * (theta - a) * (theta - a) + 0.5 * (gamma - b) * (gamma - b);
  }
  void set_relaxation(bool on) { relaxed = on; }
  template <class F>
  void for_each_parameter(F&& f) {
    f(ParamView<double>{"theta", {&theta, 1}, {&dtheta, 1}, Role::weight, {}});
    f(ParamView<double>{"gamma", {&gamma, 1}, {&dgamma, 1}, Role::gamma, {}});
  }
};
static_assert(HomotopyModel<Quadratic<>>);

}  // namespace ace::test
