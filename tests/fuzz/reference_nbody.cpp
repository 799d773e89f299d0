// SPDX-License-Identifier: MIT
// libFuzzer target: the EGNN reference generator's N-body files (read_reference_nbody). The input holds the three
// files of the validation split cut at "\n=ACE=\n" lines: loc, vel, charges (missing parts are written empty). A
// loaded split must hold count x particles finite entries of each array.
#include <cmath>

#include "ace/data/nbody.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr std::size_t count = 1;
  const auto dir = ace::fuzz::write_parts(
      "reference_nbody", ace::fuzz::chars(data, size),
      [](std::size_t i) {
        const char* names[] = {"loc", "vel", "charges"};
        return i < 3 ? std::string(names[i]) + "_valid_charged5_initvel1small.npy" : "extra" + std::to_string(i);
      },
      3);
  ace::fuzz::refusing_cleanly([&] {
    const ace::data::NBodySamples s = ace::data::read_reference_nbody(dir, ace::data::NBodySplit::validation, count);
    const std::size_t n = count * s.particles;
    ace::fuzz::require(s.count == count && s.positions.size() == 3 * n && s.velocities.size() == 3 * n &&
                       s.targets.size() == 3 * n && s.charges.size() == n);
    for (const auto* v : {&s.positions, &s.velocities, &s.targets, &s.charges})
      for (double x : *v) ace::fuzz::require(std::isfinite(x));
  });
  return 0;
}
