// SPDX-License-Identifier: MIT
// The precondition of the batteries on the CUDA backend (see catch_main.cpp): without a CUDA device the executable
// reports itself skipped (exit code 77, CTest's SKIP_RETURN_CODE) instead of running, and never passes in that case.
#include <cstdio>

#include "ace/backend/cuda/exec.hpp"

extern "C" int ace_test_precondition() {
  if (ace::cuda::device_count() == 0) {
    std::puts("no CUDA device: skipped");
    return 77;
  }
  std::printf("CUDA device: %s\n", ace::cuda::device_name().c_str());
  return 0;
}
