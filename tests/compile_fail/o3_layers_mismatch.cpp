// SPDX-License-Identifier: MIT
// A gate onto 8x0e + 4x1o reads 8 scalars, then 4 gates, then the 4 vectors (o3_gate_input_t); a linear
// layer that leaves 8x0e + 4x1o in front of it does not fit: the irreps must match between layers.
#include <ace/backend/reference/reference.hpp>
#include <ace/nn/core/sequential.hpp>
#include <ace/nn/steerable/gate.hpp>
#include <ace/nn/steerable/o3_linear.hpp>
using Hidden = ace::O3Irreps<ace::Mul<8, ace::Scalar0e>, ace::Mul<4, ace::Vector1o>>;
#ifdef ACE_SHOULD_FAIL
using Mid = Hidden;
#else
using Mid = ace::o3_gate_input_t<Hidden>;
#endif
int main() {
  ace::Rng rng(1);
  ace::Sequential<ace::O3Linear<Hidden, Mid, double, ace::Reference>, ace::O3Gate<Hidden, double, ace::Reference>> net(
      rng);
  return net.size == 2 ? 0 : 1;
}
