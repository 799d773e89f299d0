// SPDX-License-Identifier: MIT
// Quickstart: a permutation-invariant network on sets of 5 numbers, trained with Adam to predict the spread
// max(x) - min(x) of its input. Prints the loss curve and the model's equivariance error.
#include <ace/group.hpp>
#include <ace/nn.hpp>
#include <ace/optim.hpp>
#include <algorithm>
#include <cstdio>

int main() {
  using namespace ace;
  using G = Symmetric<5>;                       // permutations of the 5 set elements
  using Set = Natural<G>;                       // one number per element
  using Hidden = Multiple<Natural<G>, 16>;      // 16 channels per element
  using Model = Sequential<EquivariantLinear<float, Set, Hidden>, ReLU<float, Hidden>,
                           EquivariantLinear<float, Hidden, Hidden>, ReLU<float, Hidden>,
                           EquivariantLinear<float, Hidden, Trivial<G>>>;  // an invariant output

  Rng rng(42);
  Model model(rng);
  Adam<float> adam({.lr = 3e-3});
  MSELoss<float> loss;
  Tensor<float, 2> x({256, 5}), y({256, 1});
  for (int step = 0; step <= 2000; ++step) {
    for (std::size_t i = 0; i < 256; ++i) {  // a fresh batch of random sets
      for (std::size_t j = 0; j < 5; ++j) x(i, j) = static_cast<float>(rng.normal());
      const float* set = &x(i, 0);
      y(i, 0) = *std::max_element(set, set + 5) - *std::min_element(set, set + 5);
    }
    zero_grad(model);
    const float l = loss.forward(model.forward(x), y);
    model.backward(loss.backward());
    adam.step(model);
    if (step % 250 == 0) std::printf("step %4d  loss %.5f\n", step, static_cast<double>(l));
  }
  const double err = check_equivariance(model, x, /*seed=*/7, /*random_elements=*/32);
  std::printf("%zu parameters; invariance error on generators and 32 random permutations: %.2e\n",
              parameter_count(model), err);
  return err < 1e-5 ? 0 : 1;
}
