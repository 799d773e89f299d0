// SPDX-License-Identifier: MIT
// A downstream program on the CUDA backend, compiled by the host compiler (no .cu file): a dense layer on
// ace::Cuda, checked against the same layer on the Cpu backend. Without a CUDA device it says so and exits 0 (it
// was compiled and linked, which is what a machine without a GPU can check).
#include <ace/backend/cuda/cuda.hpp>
#include <ace/nn/core/linear.hpp>
#include <cmath>
#include <iostream>

int main() {
  if (ace::cuda::device_count() == 0) {
    std::cout << "consumer (CUDA): compiled and linked against ace::cuda; no CUDA device to run on\n";
    return 0;
  }
  ace::Rng rng_cpu(7), rng_gpu(7);
  ace::Dense<float, ace::Cpu> cpu(4, 3, rng_cpu);
  ace::Dense<float, ace::Cuda> gpu(4, 3, rng_gpu);
  ace::Tensor<float, 2> x({2, 4});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(i) * 0.25f - 1.0f;
  const auto y_cpu = cpu.forward(x);
  const auto y_gpu = ace::to_host_tensor<ace::Cuda>(gpu.forward(ace::to_backend<ace::Cuda>(x)));
  double gap = 0.0;
  for (std::size_t i = 0; i < y_cpu.size(); ++i) gap = std::max(gap, std::abs(double(y_cpu.data()[i] - y_gpu.data()[i])));
  std::cout << "consumer (CUDA): " << ace::cuda::device_name() << ", Dense on Cuda against Cpu: max gap " << gap
            << (gap < 1e-5 ? " (ok)" : " (WRONG)") << "\n";
  return gap < 1e-5 ? 0 : 1;
}
