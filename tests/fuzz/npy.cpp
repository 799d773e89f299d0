// SPDX-License-Identifier: MIT
// libFuzzer target: the .npy parser (io::parse_npy, behind read_npy: checkpoints, training states, the motion-capture
// release and the N-body cache all read through it). A parsed array must hold exactly shape x itemsize bytes.
#include "ace/io/npy.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ace::fuzz::refusing_cleanly([&] {
    const ace::io::NpyArray a = ace::io::parse_npy(ace::fuzz::chars(data, size), "fuzz.npy");
    ace::fuzz::require(a.bytes.size() == a.count() * ace::io::npy_itemsize(a.dtype));
  });
  return 0;
}
