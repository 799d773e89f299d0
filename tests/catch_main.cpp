// SPDX-License-Identifier: MIT
// Catch2's main for every test executable. An executable may define ace_test_precondition() (the CUDA batteries
// do, tests/cuda_main.cpp): a nonzero result is the exit code, without running the tests (77: CTest's "skipped").
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

extern "C" int ace_test_precondition() __attribute__((weak));

int main(int argc, char** argv) {
  if (ace_test_precondition != nullptr) {
    const int code = ace_test_precondition();
    if (code != 0) return code;
  }
  return Catch::Session().run(argc, argv);
}
