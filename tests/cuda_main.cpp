// SPDX-License-Identifier: MIT
// Catch2's main for the batteries on the CUDA backend: without a CUDA device the executable reports itself skipped
// (exit code 77, CTest's SKIP_RETURN_CODE) instead of running, and never passes in that case.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <iostream>

#include "ace/backend/cuda/cuda.hpp"

int main(int argc, char** argv) {
  if (ace::cuda::device_count() == 0) {
    std::cout << "no CUDA device: skipped\n";
    return 77;
  }
  std::cout << "CUDA device: " << ace::cuda::device_name() << "\n";
  return Catch::Session().run(argc, argv);
}
