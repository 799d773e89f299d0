// SPDX-License-Identifier: MIT
// Writes that fail — a full file system, a file-size limit, a read-only directory — throw io_error naming the path
// and the reason, leave no partial file behind, and never damage what was written before.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "ace/io/checkpoint.hpp"
#include "ace/io/files.hpp"
#include "ace/io/svg.hpp"
#include "failing_files.hpp"
#include "support.hpp"

using namespace ace;
namespace fs = std::filesystem;

namespace {
using test::require_io_error;
using test::TempDir;

/// A checkpoint of one tensor of `n` floats counting up from `first`.
void save(const fs::path& dir, float first, std::size_t n = 4096) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), first);
  const std::size_t shape[1] = {n};
  io::CheckpointWriter w(dir);
  w.set_value("first", std::to_string(static_cast<int>(first)));
  w.add<float>("t", std::span<const float>(v), shape);
  w.commit();
}
/// The first entry of the checkpoint in `dir`, every tensor read and checked.
float first_entry(const fs::path& dir) {
  const io::CheckpointReader r(dir);
  std::vector<float> v(r.tensors().at(0).shape.at(0));
  const std::size_t shape[1] = {v.size()};
  r.read<float>("t", std::span<float>(v), shape);
  return v.at(0);
}
/// Names in `dir` other than `keep`: what a failed write left behind.
std::vector<std::string> leftovers(const fs::path& dir, const std::vector<std::string>& keep) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (std::find(keep.begin(), keep.end(), name) == keep.end()) out.push_back(name);
  }
  return out;
}
io::LinePlot plot(double y) { return {"p", "x", "y", false, {{"s", {1.0, 2.0}, {y, y}}}}; }
}  // namespace

TEST_CASE("write failures: past a file-size limit (ulimit -f) every writer throws io_error and keeps the old file",
          "[io][reliability]") {
  const TempDir tmp("write-limit");
  const fs::path ckpt = tmp.path / "ckpt", svg = tmp.path / "plot.svg", text = tmp.path / "results.csv";
  save(ckpt, 1.0f);
  io::write_svg(svg, plot(1.0));
  io::write_file_atomically(text, "old\n");
  const std::string old_svg = io::render_svg(plot(1.0));
  {
    const test::FileSizeLimit limit(1024);  // the 16 KiB tensor cannot be written
    require_io_error([&] { save(ckpt, 2.0f); }, ckpt, "File too large");
    require_io_error([&] { io::write_file_atomically(text, std::string(4096, 'y')); }, text, "File too large");
    io::LinePlot big = plot(2.0);  // more points than fit in 1 KiB
    for (int i = 0; i < 200; ++i) {
      big.series[0].x.push_back(static_cast<double>(i));
      big.series[0].y.push_back(static_cast<double>(i));
    }
    require_io_error([&] { io::write_svg(svg, big); }, svg, "File too large");
  }
  CHECK(first_entry(ckpt) == 1.0f);  // the previous checkpoint, whole
  CHECK(io::detail::read_whole_file(text) == std::vector<char>{'o', 'l', 'd', '\n'});
  const auto svg_bytes = io::detail::read_whole_file(svg);
  CHECK(std::string(svg_bytes.begin(), svg_bytes.end()) == old_svg);
  CHECK(leftovers(tmp.path, {"ckpt", "plot.svg", "results.csv"}).empty());  // no temporaries, no partial files
  save(ckpt, 3.0f);  // and once there is room again, saving works
  CHECK(first_entry(ckpt) == 3.0f);
}

TEST_CASE("write failures: on a full file system a checkpoint save throws io_error naming it; the previous loads",
          "[io][reliability]") {
  const TempDir tmp("write-full");
  const test::SmallFileSystem small(tmp.path / "fs", 256);
  if (!small.mounted()) {
    WARN("not run: mounting a tmpfs needs root with CAP_SYS_ADMIN (the file-size limit test covers the same paths)");
    return;
  }
  const fs::path ckpt = small.path() / "ckpt", text = small.path() / "log.csv";
  save(ckpt, 1.0f);
  io::write_file_atomically(text, "old\n");
  small.fill(8 * 1024);  // 8 KiB left: the new 16 KiB tensor does not fit
  require_io_error([&] { save(ckpt, 2.0f); }, ckpt, "No space left on device");
  require_io_error([&] { io::write_file_atomically(text, std::string(64 * 1024, 'y')); }, text,
                   "No space left on device");
  CHECK(first_entry(ckpt) == 1.0f);
  CHECK(io::detail::read_whole_file(text).size() == 4);
  CHECK(leftovers(small.path(), {"ckpt", "log.csv", "filler"}).empty());
  fs::remove(small.path() / "filler");
  save(ckpt, 3.0f);
  CHECK(first_entry(ckpt) == 3.0f);
}

TEST_CASE("write failures: in a read-only directory writers throw io_error naming the path; nothing is lost",
          "[io][reliability]") {
  const TempDir tmp("write-readonly");
  test::ReadOnlyDirectory dir(tmp.path / "ro");
  if (!dir.usable()) {
    WARN("not run: as root, a read-only directory needs a tmpfs mount (CAP_SYS_ADMIN)");
    return;
  }
  const fs::path ckpt = dir.path() / "ckpt", svg = dir.path() / "plot.svg";
  save(ckpt, 1.0f);
  io::write_svg(svg, plot(1.0));
  REQUIRE(dir.make_read_only());
  require_io_error([&] { save(ckpt, 2.0f); }, ckpt, "");
  require_io_error([&] { io::write_svg(svg, plot(2.0)); }, svg, "");
  require_io_error([&] { io::write_file_atomically(dir.path() / "results.csv", "x"); }, dir.path() / "results.csv",
                   "");
  require_io_error([&] { io::create_directories(dir.path() / "run" / "state"); }, dir.path() / "run", "");
  CHECK(first_entry(ckpt) == 1.0f);
  CHECK(leftovers(dir.path(), {"ckpt", "plot.svg"}).empty());
}
