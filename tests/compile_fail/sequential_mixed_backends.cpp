// SPDX-License-Identifier: MIT
// Adjacent layers must run on the same backend: their tensors live in its memory.
#include <ace/backend/reference/reference.hpp>
#include <ace/group/cyclic.hpp>
#include <ace/nn/core/activation.hpp>
#include <ace/nn/core/linear.hpp>
#include <ace/nn/core/sequential.hpp>
#include <ace/rep/basic.hpp>
using R = ace::Regular<ace::Cyclic<4>>;
#ifdef ACE_SHOULD_FAIL
using Next = ace::ReLU<float, R, ace::Reference>;
#else
using Next = ace::ReLU<float, R, ace::Cpu>;
#endif
using Model = ace::Sequential<ace::Linear<float, R, R>, Next>;
int main() {
  ace::Rng rng(1);
  Model model(rng);
  return static_cast<int>(ace::parameter_count(model) == 0);
}
