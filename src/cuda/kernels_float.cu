// SPDX-License-Identifier: MIT
// The float kernels of ace::Cuda (kernels.cuh).
#include "kernels.cuh"

using namespace ace;
using namespace ace::kernels;

ACE_CUDA_KERNELS_OF(float)
