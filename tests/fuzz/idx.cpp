// SPDX-License-Identifier: MIT
// libFuzzer target: the IDX reader (parse_idx, behind read_idx and Fashion-MNIST), raw and gzip-compressed. A parsed
// array must hold exactly the product of its sizes.
#include "ace/data/images.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ace::fuzz::refusing_cleanly([&] {
    const ace::IdxArray a = ace::parse_idx(std::vector<std::uint8_t>(data, data + size), "fuzz.idx");
    std::size_t count = 1;
    for (const std::size_t n : a.shape) count *= n;
    ace::fuzz::require(!a.shape.empty() && a.shape.size() <= 4 && count == a.values.size());
  });
  return 0;
}
