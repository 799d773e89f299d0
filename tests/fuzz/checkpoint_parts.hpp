// SPDX-License-Identifier: MIT
// How the checkpoint and training-state targets lay a checkpoint directory out in one input: part 0 is the manifest,
// part i the tensor file t<i - 1>.npy (the names CheckpointWriter gives them), the parts cut at fuzz::separator lines.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "ace/io/checkpoint.hpp"
#include "fuzz_support.hpp"

namespace ace::fuzz {

/// The file of part `i`.
inline std::string checkpoint_part(std::size_t i) {
  return i == 0 ? std::string(io::manifest_name) : "t" + std::to_string(i - 1) + ".npy";
}

/// The files of the checkpoint directory `dir` in one input, as the seeds hold them.
inline std::string packed_checkpoint(const std::filesystem::path& dir) {
  std::string out;
  for (std::size_t i = 0; std::filesystem::exists(dir / checkpoint_part(i)); ++i) {
    const std::vector<char> bytes = io::detail::read_whole_file(dir / checkpoint_part(i));
    if (i > 0) out += separator;
    out.append(bytes.begin(), bytes.end());
  }
  return out;
}

}  // namespace ace::fuzz
