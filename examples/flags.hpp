// SPDX-License-Identifier: MIT
// The examples' command-line parsing, apart from everything they train with (the CLI fuzz target, tests/fuzz/cli.cpp,
// includes only this and the parsers built on it): numbers, counts and lists of flag values, the checks of the
// flags every example shares, and --help as an outcome rather than an exit.
#pragma once

#include <cmath>
#include <cstddef>
#include <exception>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <ace/error.hpp>

namespace experiment {

/// Thrown by a parser for --help: main prints `usage` and exits with 0 (experiment::guarded_main).
struct HelpRequested {
  std::string usage;
};

/// The whole of `text` as a number (a finite one, for floating point), or invalid_argument naming the flag.
template <class T>
T parse_number(const std::string& flag, const std::string& text) {
  std::size_t used = 0;
  T v{};
  try {
    if constexpr (std::is_floating_point_v<T>) v = static_cast<T>(std::stod(text, &used));
    else v = static_cast<T>(std::stoull(text, &used));
  } catch (const std::exception&) {
    used = std::string::npos;
  }
  bool ok = used == text.size() && text.find('-') == std::string::npos;
  if constexpr (std::is_floating_point_v<T>) ok = used == text.size() && std::isfinite(v);
  ACE_THROW_IF(!ok, ace::invalid_argument, flag, ": expected ", std::is_floating_point_v<T> ? "a number" : "an integer",
               ", got '", text, "'");
  return v;
}

/// A positive integer flag value.
inline std::size_t parse_count(const std::string& flag, const std::string& text) {
  const unsigned long long v = parse_number<unsigned long long>(flag, text);
  ACE_THROW_IF(v == 0, ace::invalid_argument, flag, ": expected a positive integer, got '", text, "'");
  return static_cast<std::size_t>(v);
}

template <class T>
std::vector<T> split_list(const std::string& flag, const std::string& text) {
  std::vector<T> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if constexpr (std::is_same_v<T, std::string>) out.push_back(item);
    else out.push_back(parse_number<T>(flag, item));
  }
  ACE_THROW_IF(out.empty(), ace::invalid_argument, flag, ": empty list");
  return out;
}

/// Walks `args` as flag value pairs: --help or -h throws HelpRequested{usage}, --resume (the one flag without a
/// value) sets `resume`, every other flag goes to take(flag, value), which returns false for a flag it does not know
/// (an error naming it). A flag without its value is an error too.
template <class Take>
void for_each_flag(const std::vector<std::string>& args, const std::string& usage, bool& resume, Take&& take) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (flag == "--help" || flag == "-h") throw HelpRequested{usage};
    if (flag == "--resume") {
      resume = true;
      continue;
    }
    ACE_THROW_IF(i + 1 >= args.size(), ace::invalid_argument, flag, " needs a value\n", usage);
    const std::string& value = args[++i];
    ACE_THROW_IF(!take(flag, value), ace::invalid_argument, "unknown flag ", flag, "\n", usage);
  }
}

/// Checks the --device value (cpu or cuda).
inline void check_device_name(const std::string& device) {
  ACE_THROW_IF(device != "cpu" && device != "cuda", ace::invalid_argument, "--device: unknown device '", device,
               "' (cpu or cuda)");
}

/// Checks the --gamma-opt value: auto (plain gradient steps on the gammas of ACE equality, Adam for every other
/// method: docs/ace.md), adam or sgd (plain steps for every method that learns its gammas).
inline void check_gamma_opt(const std::string& opt) {
  ACE_THROW_IF(opt != "auto" && opt != "adam" && opt != "sgd", ace::invalid_argument, "--gamma-opt: unknown optimiser '",
               opt, "' (auto, adam or sgd)");
}

}  // namespace experiment
