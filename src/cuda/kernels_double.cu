// SPDX-License-Identifier: MIT
// The double kernels of ace::Cuda (kernels.cuh).
#include "kernels.cuh"

using namespace ace;
using namespace ace::kernels;

ACE_CUDA_KERNELS_OF(double)

// The dual step works on double multipliers whatever the model's scalar.
ACE_CUDA_KERNEL(DualAscent)
