// SPDX-License-Identifier: MIT
// ace_toy's command line (examples/ace_toy.cpp): three optional positional arguments.
#pragma once

#include <string>
#include <vector>

#include "flags.hpp"

namespace experiment {

inline const char* ace_toy_usage =
    "usage: ace_toy [OUT_DIR] [DELTA] [AUGMENTED]\n"
    "  OUT_DIR     where the logs and plots go (default ace_toy_out)\n"
    "  DELTA       how far the teacher breaks the C4 symmetry (default 0.5; 0 = symmetric data)\n"
    "  AUGMENTED   the augmented-Lagrangian coefficient c (default 0: the plain Lagrangian)\n";

/// What ace_toy runs.
struct AceToyConfig {
  std::string out = "ace_toy_out";
  float delta = 0.5f;  // float, as the teacher is built from it
  double augmented = 0.0;
};

/// Parses ace_toy's command line (without the program name); --help throws HelpRequested.
inline AceToyConfig parse_ace_toy(const std::vector<std::string>& args) {
  for (const std::string& a : args)
    if (a == "--help" || a == "-h") throw HelpRequested{ace_toy_usage};
  ACE_THROW_IF(args.size() > 3, ace::invalid_argument, "expected at most 3 arguments, got ", args.size(), "\n",
               ace_toy_usage);
  AceToyConfig c;
  if (!args.empty()) c.out = args[0];
  ACE_THROW_IF(c.out.empty(), ace::invalid_argument, "OUT_DIR: empty\n", ace_toy_usage);
  if (args.size() > 1) c.delta = parse_number<float>("DELTA", args[1]);
  if (args.size() > 2) c.augmented = parse_number<double>("AUGMENTED", args[2]);
  ACE_THROW_IF(c.augmented < 0.0, ace::invalid_argument, "AUGMENTED: expected c >= 0, got ", c.augmented);
  return c;
}

}  // namespace experiment
