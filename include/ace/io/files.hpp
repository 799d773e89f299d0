// SPDX-License-Identifier: MIT
// Writing files so that nothing is lost: durable writes (flushed to the device), atomic replacement (a temporary file
// renamed into place), and failures — a full file system, a file-size limit, a read-only directory — reported as
// io_error naming the path and the system's reason, with no partial file left behind.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "ace/error.hpp"

#if __has_include(<unistd.h>)
#include <fcntl.h>
#include <unistd.h>
#define ACE_HAS_FSYNC 1
#endif

namespace ace::io {

namespace detail {
/// The system's words for errno `code` ("No space left on device").
inline std::string reason(int code) { return std::generic_category().message(code); }

/// Writes `head` then `n` bytes of `data` to `path` and flushes them to the device (fsync where available), so a
/// rename after it publishes complete data. On failure the partial file is removed and io_error names the path
/// and the reason (a full file system, a file-size limit, a read-only or missing directory).
inline void write_file_durably(const std::filesystem::path& path, std::string_view head, const char* data,
                               std::size_t n) {
  errno = 0;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ACE_THROW_IF(f == nullptr, io_error, "cannot create ", path.string(), ": ", reason(errno));
  int error = 0;
  const auto check = [&](bool ok) {
    if (!ok && error == 0) error = errno != 0 ? errno : EIO;
  };
  check(std::fwrite(head.data(), 1, head.size(), f) == head.size());
  check(error != 0 || n == 0 || std::fwrite(data, 1, n, f) == n);
  check(error != 0 || std::fflush(f) == 0);
#ifdef ACE_HAS_FSYNC
  check(error != 0 || ::fsync(::fileno(f)) == 0);
#endif
  check(std::fclose(f) == 0);
  if (error != 0) {
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
    throw io_error(::ace::detail::concat("writing ", path.string(), " failed: ", reason(error)));
  }
}

/// Flushes a directory entry (after renames into it), where the platform allows.
inline void sync_directory(const std::filesystem::path& dir) {
#ifdef ACE_HAS_FSYNC
  const int fd = ::open(dir.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
#else
  (void)dir;
#endif
}

inline std::vector<char> read_whole_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  ACE_THROW_IF(!in, io_error, "cannot open ", path.string());
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  ACE_THROW_IF(size < 0, io_error, "cannot read the size of ", path.string());
  std::vector<char> bytes(static_cast<std::size_t>(size));
  in.seekg(0, std::ios::beg);
  if (size > 0) in.read(bytes.data(), size);
  ACE_THROW_IF(!in, io_error, "reading ", path.string(), " failed");
  return bytes;
}
}  // namespace detail

/// std::filesystem::create_directories, with io_error naming the directory and the reason when it fails.
inline void create_directories(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  ACE_THROW_IF(ec, io_error, "cannot create the directory ", dir.string(), ": ", ec.message());
}

/// Writes `head` then `n` bytes of `data` to `path` atomically: to "<path>.tmp", flushed to the device, then renamed
/// into place. Readers see the old file or the new one, never a part; on failure (io_error naming the path and the
/// reason) the old file is untouched and no temporary is left.
inline void write_file_atomically(const std::filesystem::path& path, std::string_view head, const char* data,
                                  std::size_t n) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  try {
    detail::write_file_durably(tmp, head, data, n);
  } catch (const io_error& e) {
    throw io_error(::ace::detail::concat("cannot write ", path.string(), ": ", e.what()));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw io_error(::ace::detail::concat("cannot write ", path.string(), ": ", ec.message()));
  }
}

/// Writes `text` to `path` atomically (as above).
inline void write_file_atomically(const std::filesystem::path& path, std::string_view text) {
  write_file_atomically(path, text, nullptr, 0);
}

}  // namespace ace::io
