// SPDX-License-Identifier: MIT
// The float kernels of ace::Cuda (kernels.cuh).
#include "kernels.cuh"

using namespace ace;
using namespace ace::kernels;

ACE_CUDA_KERNELS_OF(float)

// Index tensors are zero-filled too (zeros<B, std::uint32_t>).
ACE_CUDA_KERNEL(Fill<std::uint32_t>)
