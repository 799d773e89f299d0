// SPDX-License-Identifier: MIT
// A rotation of a kernel with an even side moves its centre off the taps: group convolutions need odd kernels.
#include <ace/group/cyclic.hpp>
#include <ace/nn/image/conv.hpp>
using C4 = ace::Cyclic<4>;
using In = ace::Image<ace::Multiple<ace::Trivial<C4>, 1>, 8, 8>;
#ifdef ACE_SHOULD_FAIL
constexpr ace::ConvSpec spec{4, 1, 2};
#else
constexpr ace::ConvSpec spec{3, 1, 1};
#endif
int main() {
  ace::Rng rng(1);
  ace::LiftingConv2d<float, In, 2, spec> conv(rng);
  ace::Tensor<float, 2> x({1, In::dim});
  x.fill(1.f);
  return conv.forward(x).size() > 0 ? 0 : 1;
}
