// SPDX-License-Identifier: MIT
// Adjacent layers must agree on the feature space.
#include <ace/group/dihedral.hpp>
#include <ace/nn/core/activation.hpp>
#include <ace/nn/core/equivariant_linear.hpp>
#include <ace/nn/core/sequential.hpp>
#include <ace/rep/composite.hpp>
using G = ace::Dihedral<4>;
#ifdef ACE_SHOULD_FAIL
using Next = ace::ReLU<float, ace::Multiple<ace::Regular<G>, 3>>;
#else
using Next = ace::ReLU<float, ace::Multiple<ace::Regular<G>, 2>>;
#endif
using Model = ace::Sequential<ace::EquivariantLinear<float, ace::Regular<G>, ace::Multiple<ace::Regular<G>, 2>>, Next>;
int main() {
  ace::Rng rng(1);
  Model model(rng);
  return static_cast<int>(ace::parameter_count(model) == 0);
}
