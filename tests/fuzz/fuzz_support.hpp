// SPDX-License-Identifier: MIT
// What the libFuzzer targets share: the library's typed errors are the expected way to refuse bytes (caught and
// counted as a clean rejection); any other exception, a crash, a leak or a sanitizer report is a finding. Findings
// become regression tests (docs/reliability.md).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include "ace/error.hpp"

namespace ace::fuzz {

/// The input as characters.
inline std::span<const char> chars(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

/// Runs f(); an ace::error (io_error, shape_error, checkpoint_mismatch, ...) is a clean rejection of the input.
template <class F>
void refusing_cleanly(F&& f) {
  try {
    f();
  } catch (const ace::error&) {
  }
}

/// Stops the run as a finding when an invariant of a parsed result does not hold.
inline void require(bool holds) {
  if (!holds) std::abort();
}

/// A directory of this process for targets whose entry point reads files (created on first use, emptied per call by
/// the target; removed at exit): in /dev/shm where there is one (memory: 10-20x the executions of a disk), else in
/// the temporary directory.
inline const std::filesystem::path& scratch_directory() {
  static const std::filesystem::path dir = [] {
    std::error_code ec;
    const std::filesystem::path base =
        std::filesystem::is_directory("/dev/shm", ec) ? "/dev/shm" : std::filesystem::temp_directory_path();
    const auto d = base / ("ace-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(scratch_directory(), ignored);
    });
    return d;
  }();
  return dir;
}

/// The line between the parts of an input that holds several files (a checkpoint directory's, for instance).
inline constexpr std::string_view separator = "\n=ACE=\n";

/// The parts of an input cut at separator lines.
inline std::vector<std::string_view> parts(std::span<const char> input) {
  std::vector<std::string_view> out;
  std::string_view rest(input.data(), input.size());
  for (std::size_t at; (at = rest.find(separator)) != std::string_view::npos; rest.remove_prefix(at + separator.size()))
    out.push_back(rest.substr(0, at));
  out.push_back(rest);
  return out;
}

inline void write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// The input's parts (see parts) written as the files of a fresh scratch subdirectory `name`, part i under the name
/// file_name(i) (a path relative to it); parts missing below `at_least` are written empty. Returns the directory.
template <class FileName>
std::filesystem::path write_parts(std::string_view name, std::span<const char> input, FileName&& file_name,
                                  std::size_t at_least = 0) {
  const std::filesystem::path dir = scratch_directory() / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::vector<std::string_view> files = parts(input);
  for (std::size_t i = 0; i < std::max(files.size(), at_least); ++i)
    write_file(dir / file_name(i), i < files.size() ? files[i] : std::string_view());
  return dir;
}

}  // namespace ace::fuzz
