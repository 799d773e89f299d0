// SPDX-License-Identifier: MIT
// libFuzzer target: a checkpoint directory. The input holds the directory's files cut at "\n=ACE=\n" lines: the
// manifest, then t0.npy, t1.npy, ... (the seeds name those files). The reader parses the manifest, then every tensor
// of at most 2^20 entries is read in the manifest's dtype and shape (format, dtype, shape and checksum checked).
#include "ace/io/checkpoint.hpp"
#include "checkpoint_parts.hpp"

namespace {
template <class T>
void read_all(const ace::io::CheckpointReader& reader, const ace::io::CheckpointTensor& t, std::size_t count) {
  std::vector<T> out(count);
  reader.read<T>(t.name, out, t.shape);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto dir = ace::fuzz::write_parts("checkpoint", ace::fuzz::chars(data, size), ace::fuzz::checkpoint_part);
  ace::fuzz::refusing_cleanly([&] {
    const ace::io::CheckpointReader reader(dir);
    for (const ace::io::CheckpointTensor& t : reader.tensors()) {
      std::size_t count = 1;
      bool small = true;  // count = the product of the sizes, while it stays at most 2^20
      for (const std::size_t n : t.shape) {
        if (n != 0 && count > (std::size_t{1} << 20) / n) {
          small = false;
          break;
        }
        count *= n;
      }
      if (!small) continue;
      ace::fuzz::refusing_cleanly([&] {
        if (t.dtype == "<f4") read_all<float>(reader, t, count);
        else if (t.dtype == "<f8") read_all<double>(reader, t, count);
        else if (t.dtype == "<i8") read_all<std::int64_t>(reader, t, count);
        else if (t.dtype == "<i4") read_all<std::int32_t>(reader, t, count);
      });
    }
  });
  return 0;
}
