// SPDX-License-Identifier: MIT
// libFuzzer target: the N-body cache (load_or_make_nbody reading a cached split). The input holds the four cache
// files cut at "\n=ACE=\n" lines: positions, velocities, targets, charges (missing parts are written empty, so the
// loader always reads and never simulates). A loaded split must hold count x particles entries of each array.
#include "ace/data/nbody.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ace::data::NBodyOptions o;  // 5 particles
  constexpr std::size_t count = 2;
  constexpr std::uint64_t seed = 1;
  const auto file = [&](std::size_t i) {  // parts past the fourth: files the loader never reads
    const char* names[] = {"positions", "velocities", "targets", "charges"};
    return i < 4 ? ace::data::nbody_cache_file("", o, ace::data::NBodySplit::train, count, seed, names[i])
                 : std::filesystem::path("extra" + std::to_string(i));
  };
  const auto dir = ace::fuzz::write_parts("nbody", ace::fuzz::chars(data, size), file, 4);
  ace::fuzz::refusing_cleanly([&] {
    const ace::data::NBodySamples s = ace::data::load_or_make_nbody(dir, o, ace::data::NBodySplit::train, count, seed);
    const std::size_t n = count * o.particles;
    ace::fuzz::require(s.positions.size() == 3 * n && s.velocities.size() == 3 * n && s.targets.size() == 3 * n &&
                       s.charges.size() == n);
  });
  return 0;
}
