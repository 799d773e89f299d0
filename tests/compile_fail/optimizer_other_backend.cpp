// SPDX-License-Identifier: MIT
// An optimiser updates parameters in the memory of one backend: the model's.
#include <ace/backend/reference/reference.hpp>
#include <ace/nn/core/linear.hpp>
#include <ace/optim/adam.hpp>
#ifdef ACE_SHOULD_FAIL
using Optimizer = ace::Adam<float, ace::Cpu>;
#else
using Optimizer = ace::Adam<float, ace::Reference>;
#endif
int main() {
  ace::Rng rng(1);
  ace::Dense<float, ace::Reference> layer(3, 2, rng);
  Optimizer adam;
  adam.step(layer);
  return 0;
}
