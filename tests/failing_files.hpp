// SPDX-License-Identifier: MIT
// File systems that refuse writes, for the tests of what ace does when a write fails (require_io_error checks the
// failure): a file-size limit (as `ulimit -f`, works for every user), a small tmpfs filled to the brim and a
// read-only directory (a tmpfs remounted read-only when the tests run as root, where permissions do not stop writes;
// a directory without write permission otherwise).
#pragma once

#include <csignal>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "ace/error.hpp"

namespace ace::test {

/// Runs `write`, which must throw io_error whose message names `path` and contains `reason`.
template <class F>
void require_io_error(F&& write, const std::filesystem::path& path, const std::string& reason) {
  try {
    write();
    FAIL("the write into " << path.string() << " succeeded");
  } catch (const io_error& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains(path.string()) && Catch::Contains(reason));
  }
}

/// While it lives, a regular file cannot grow past `bytes` (RLIMIT_FSIZE, with SIGXFSZ ignored: the write fails
/// with EFBIG instead of killing the process).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &old_);
    handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit = old_;
    limit.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &limit);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, handler_);
  }

 private:
  rlimit old_{};
  void (*handler_)(int) = nullptr;
};

/// A tmpfs of `kib` KiB mounted on `dir` (created), unmounted at the end; mounted() is false where the process may
/// not mount (not root, or a container without the capability): the caller skips.
class SmallFileSystem {
 public:
  SmallFileSystem(std::filesystem::path dir, unsigned kib)
      : dir_(std::move(dir)), options_("size=" + std::to_string(kib) + "k") {
    std::filesystem::create_directories(dir_);
    mounted_ = ::mount("tmpfs", dir_.c_str(), "tmpfs", 0, options_.c_str()) == 0;
  }
  SmallFileSystem(const SmallFileSystem&) = delete;
  SmallFileSystem& operator=(const SmallFileSystem&) = delete;
  ~SmallFileSystem() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::filesystem::path& path() const { return dir_; }

  /// Fills the file system with one file until fewer than `spare` bytes are left.
  void fill(std::size_t spare) const {
    const std::filesystem::space_info s = std::filesystem::space(dir_);
    std::ofstream filler(dir_ / "filler", std::ios::binary);
    const std::string block(1024, 'x');
    for (std::uintmax_t n = 0; n + spare + block.size() <= s.available; n += block.size()) filler << block;
  }
  /// Remounts it read-only: writes fail with EROFS for every user, root included.
  bool make_read_only() const {
    return ::mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, options_.c_str()) == 0;
  }

 private:
  std::filesystem::path dir_;
  std::string options_;
  bool mounted_ = false;
};

/// A directory that refuses writes for this process: a read-only remount of a small tmpfs when running as root (who
/// ignores permissions), or mode 0555 otherwise. `usable()` is false where neither is possible (the caller skips).
class ReadOnlyDirectory {
 public:
  explicit ReadOnlyDirectory(const std::filesystem::path& dir) : fs_(dir, 256) {}
  /// Call after writing what must be there before the directory turns read-only.
  bool make_read_only() {
    if (::geteuid() != 0) {
      std::filesystem::create_directories(fs_.path());
      std::filesystem::permissions(fs_.path(), std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec,
                                   std::filesystem::perm_options::replace);
      chmodded_ = true;
      return true;
    }
    return fs_.mounted() && fs_.make_read_only();
  }
  /// Where to write: the tmpfs as root, a plain directory otherwise.
  bool usable() const { return ::geteuid() != 0 || fs_.mounted(); }
  const std::filesystem::path& path() const { return fs_.path(); }
  ~ReadOnlyDirectory() {
    if (chmodded_) std::filesystem::permissions(fs_.path(), std::filesystem::perms::owner_all);
  }

 private:
  SmallFileSystem fs_;
  bool chmodded_ = false;
};

}  // namespace ace::test
