// SPDX-License-Identifier: MIT
// libFuzzer target: the examples' command-line parsers (examples/nbody_flags.hpp, mocap_flags.hpp,
// rotated_images_flags.hpp, ace_toy_flags.hpp). The input's first byte picks the parser (modulo 4: nbody, mocap,
// rotated_images, ace_toy), the rest is the argument list, split at NUL bytes. --help is a clean outcome (HelpRequested), a refused command line
// an ace::error; a command line that parses must give settings the examples can run with: positive counts, known
// methods, devices and optimisers, a batch no larger than the training set (nbody).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "ace_toy_flags.hpp"
#include "fuzz_support.hpp"
#include "mocap_flags.hpp"
#include "nbody_flags.hpp"
#include "rotated_images_flags.hpp"

namespace {
std::vector<std::string> arguments(std::span<const char> input) {
  std::vector<std::string> args;
  std::string current;
  for (char c : input) {
    if (c != '\0') {
      current += c;
      continue;
    }
    args.push_back(current);
    current.clear();
  }
  if (!input.empty()) args.push_back(current);
  return args;
}

bool one_of(const std::string& s, std::initializer_list<const char*> names) {
  return std::any_of(names.begin(), names.end(), [&](const char* n) { return s == n; });
}

void check(const experiment::Settings& s) {
  ace::fuzz::require(s.epochs > 0 && s.batch > 0 && s.hidden > 0 && s.layers > 0 && s.eval_every > 0 &&
                     s.workers > 0 && !s.seeds.empty() && !s.methods.empty());
  for (const auto& m : s.methods) ace::fuzz::require(one_of(m, {"strict", "free", "schedule", "equality", "resilient"}));
  ace::fuzz::require(one_of(s.device, {"cpu", "cuda"}) && one_of(s.gamma_opt, {"auto", "adam", "sgd"}) &&
                     one_of(s.dual_opt, {"sgd", "adam"}));
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::vector<std::string> args = arguments(ace::fuzz::chars(data + 1, size - 1));
  try {
    ace::fuzz::refusing_cleanly([&] {
      switch (data[0] % 4) {
        case 0: {
          const experiment::NBodyConfig c = experiment::parse_nbody(args);
          check(c.run);
          ace::fuzz::require(c.train > 0 && c.valid > 0 && c.test > 0 && c.run.batch <= c.train);
          ace::fuzz::require(one_of(c.preset, {"default", "paper"}) && one_of(c.run.model, {"egnn", "segnn"}));
          break;
        }
        case 1: {
          const experiment::MocapConfig c = experiment::parse_mocap(args);
          check(c.run);
          ace::fuzz::require(c.protocol.max_train > 0 && c.protocol.delta > 0);
          break;
        }
        case 3: {
          const experiment::AceToyConfig c = experiment::parse_ace_toy(args);
          ace::fuzz::require(!c.out.empty() && std::isfinite(c.delta) && c.augmented >= 0.0);
          break;
        }
        default: {
          const experiment::ImagesConfig c = experiment::parse_rotated_images(args);
          ace::fuzz::require(c.epochs > 0 && c.train > 0 && c.valid > 0 && c.test > 0 && c.batch > 0);
          for (const auto& t : c.tasks) ace::fuzz::require(one_of(t, {"rotated", "upright"}));
          for (const auto& m : c.models) ace::fuzz::require(one_of(m, {"p4", "p4m", "cnn"}));
          for (const auto& m : c.methods) ace::fuzz::require(one_of(m, {"strict", "equality", "resilient"}));
          ace::fuzz::require(one_of(c.device, {"cpu", "cuda"}) && one_of(c.gamma_opt, {"auto", "adam", "sgd"}));
        }
      }
    });
  } catch (const experiment::HelpRequested& help) {
    ace::fuzz::require(!help.usage.empty());
  }
  return 0;
}
