// SPDX-License-Identifier: MIT
// Pooling windows that leave pixels over at one edge would not commute with rotations of the grid.
#include <ace/group/cyclic.hpp>
#include <ace/nn/image/pool.hpp>
#include <ace/rep/basic.hpp>
#ifdef ACE_SHOULD_FAIL
using In = ace::Image<ace::Regular<ace::Cyclic<4>>, 7, 7>;
#else
using In = ace::Image<ace::Regular<ace::Cyclic<4>>, 8, 8>;
#endif
int main() {
  ace::MaxPool2d<float, In, 2> pool;
  ace::Tensor<float, 2> x({1, In::dim});
  x.fill(1.f);
  return pool.forward(x).size() > 0 ? 0 : 1;
}
