// SPDX-License-Identifier: MIT
// The seed of a random test: printed, and overridable from the environment.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <iostream>

namespace ace::test {

/// The seed of a random test: ACE_TEST_SEED from the environment if set, else the test's default. Printed, so a
/// failing run can be repeated exactly.
inline std::uint64_t seed(std::uint64_t fallback, const char* test) {
  std::uint64_t s = fallback;
  if (const char* env = std::getenv("ACE_TEST_SEED")) s = std::strtoull(env, nullptr, 10);
  std::cout << "[seed] " << test << ": " << s << " (set ACE_TEST_SEED to override)\n";
  return s;
}

}  // namespace ace::test
