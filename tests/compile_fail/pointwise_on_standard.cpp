// SPDX-License-Identifier: MIT
// An entrywise nonlinearity on a rotation representation is not equivariant.
#include <ace/ace.hpp>
#ifdef ACE_SHOULD_FAIL
using S = ace::Standard<ace::Cyclic<8>>;
#else
using S = ace::Regular<ace::Cyclic<8>>;
#endif
int main() {
  ace::ReLU<float, S> relu;
  ace::Tensor<float, 2> x({1, S::dim});
  x.fill(1.f);
  return relu.forward(x)(0, 0) == 1.f ? 0 : 1;
}
