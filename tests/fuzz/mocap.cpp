// SPDX-License-Identifier: MIT
// libFuzzer target: the motion-capture release (load_mocap). The input holds the directory's files cut at
// "\n=ACE=\n" lines: edges.npy, split_train.npy, split_val.npy, split_test.npy, then trial_00.npy, trial_01.npy, ...
// A loaded release must be consistent: every bone joins two joints, every split row names a window inside a trial.
#include "ace/data/mocap.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto dir = ace::fuzz::write_parts("mocap", ace::fuzz::chars(data, size), [](std::size_t i) {
    const char* fixed[] = {"edges.npy", "split_train.npy", "split_val.npy", "split_test.npy"};
    return i < 4 ? std::string(fixed[i]) : ace::detail::concat("trial_", i - 4 < 10 ? "0" : "", i - 4, ".npy");
  });
  ace::fuzz::refusing_cleanly([&] {
    const ace::data::MocapData d = ace::data::load_mocap(dir);
    ace::fuzz::require(!d.trials.empty() && d.trials.size() == d.frames.size());
    for (std::size_t t = 0; t < d.trials.size(); ++t)
      ace::fuzz::require(d.trials[t].size() == d.frames[t] * d.joints * 3);
    for (const auto& [a, b] : d.bones) ace::fuzz::require(a < d.joints && b < d.joints && a != b);
  });
  return 0;
}
