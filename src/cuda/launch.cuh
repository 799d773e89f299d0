// SPDX-License-Identifier: MIT
// How the CUDA backend launches an index functor of kernels.hpp: a grid-stride loop over [0, n) on the calling
// thread's stream, and the explicit instantiations that put each functor's kernel into ace::cuda.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>

#include "ace/backend/cuda/exec.hpp"

namespace ace::cuda {

cudaStream_t current_stream();  // runtime.cu

template <class F>
__global__ void for_each_index(std::size_t n, F f) {
  const std::size_t step = static_cast<std::size_t>(blockDim.x) * gridDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) f(i);
}

template <class F>
void DeviceExec::run(const char* op, std::size_t n, const F& f) {
  constexpr unsigned threads = 256;
  const auto blocks = static_cast<unsigned>(std::min<std::size_t>((n + threads - 1) / threads, 65535u * 8u));
  for_each_index<<<blocks, threads, 0, current_stream()>>>(n, f);
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess)
    throw cuda_error(::ace::detail::concat("Cuda::", op, ": kernel launch over ", n, " indices failed: ",
                                           cudaGetErrorString(status)));
}

template <class F>
__global__ void for_each_block(std::size_t blocks, F f) {
  for (std::size_t b = blockIdx.x; b < blocks; b += gridDim.x) {
    for (unsigned phase = 0; phase < F::phases; ++phase) {
      f(phase, b, threadIdx.x, blockDim.x);
      __syncthreads();
    }
  }
}
template <class F>
void DeviceExec::run_blocks(const char* op, std::size_t blocks, unsigned threads, const F& f) {
  const auto grid = static_cast<unsigned>(std::min<std::size_t>(blocks, 65535u * 8u));
  for_each_block<<<grid, threads, 0, current_stream()>>>(blocks, f);
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess)
    throw cuda_error(::ace::detail::concat("Cuda::", op, ": kernel launch over ", blocks, " blocks of ", threads,
                                           " threads failed: ", cudaGetErrorString(status)));
}
}  // namespace ace::cuda

/// Instantiates DeviceExec::run_blocks for the block functor type F.
#define ACE_CUDA_BLOCK_KERNEL(...) \
  template void ::ace::cuda::DeviceExec::run_blocks<__VA_ARGS__>(const char*, std::size_t, unsigned, \
                                                                 const __VA_ARGS__&);
/// Instantiates DeviceExec::run for the functor type F.
#define ACE_CUDA_KERNEL(...) \
  template void ::ace::cuda::DeviceExec::run<__VA_ARGS__>(const char*, std::size_t, const __VA_ARGS__&);
