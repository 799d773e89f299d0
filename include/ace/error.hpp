// SPDX-License-Identifier: MIT
// ace::error — the exception types every ace component throws, and the macro that throws them.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace ace {

/// Base of every exception thrown by ace. Catch this to handle any ace failure.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A run-time argument is invalid: a non-positive learning rate, a NaN, an index out of range.
class invalid_argument : public error {
 public:
  using error::error;
};

/// Two shapes that must agree do not; the message names both.
class shape_error : public invalid_argument {
 public:
  using invalid_argument::invalid_argument;
};

/// A numerical computation could not deliver a trustworthy result (rank gap too small, non-integer character
/// inner product, non-finite value). The message says what was measured against what was expected.
class numerical_error : public error {
 public:
  using error::error;
};

/// A request that ace does not support for these arguments (e.g. enumerating a group too large to enumerate).
class unsupported : public error {
 public:
  using error::error;
};

/// Reading or writing a file failed: missing, unreadable, truncated or corrupted (bad header, wrong dtype, checksum
/// mismatch). The message names the file and what was wrong.
class io_error : public error {
 public:
  using error::error;
};

/// A checkpoint is intact but belongs to a different model: another signature (groups, representations, layers)
/// or other parameter names, shapes or scalar type. The message names the first mismatch.
class checkpoint_mismatch : public error {
 public:
  using error::error;
};

/// Data-parallel training across processes failed: a collective operation reported an error (the transport's own
/// message included), or the ranks disagree on what they train (another model signature, another shard plan). The
/// message names the ranks and the values involved.
class communication_error : public error {
 public:
  using error::error;
};

namespace detail {
template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace detail

}  // namespace ace

/// Throws `Type` (an ace exception) with the streamed message parts when `cond` holds.
/// Example: ACE_THROW_IF(rows != 3, ace::shape_error, "expected 3 rows, got ", rows);
#define ACE_THROW_IF(cond, Type, ...)                       \
  do {                                                      \
    if (cond) throw Type(::ace::detail::concat(__VA_ARGS__)); \
  } while (0)
