// SPDX-License-Identifier: MIT
// An entrywise nonlinearity on a rotation representation is not equivariant.
#include <ace/group/cyclic.hpp>
#include <ace/nn/core/activation.hpp>
#include <ace/rep/basic.hpp>
#ifdef ACE_SHOULD_FAIL
using S = ace::Standard<ace::Cyclic<8>>;
#else
using S = ace::Regular<ace::Cyclic<8>>;
#endif
int main() {
  ace::ReLU<float, S> relu;
  ace::Tensor<float, 2> x({1, S::dim});
  x.fill(1.f);
  return relu.forward(x).size() == S::dim ? 0 : 1;
}
