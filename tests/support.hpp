// SPDX-License-Identifier: MIT
// Helpers shared by every test battery: seeds, type lists, temporary directories. Batteries include the ace headers
// they test next to this one (and backend_support.hpp, module_support.hpp for layers and backends).
#pragma once

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <tuple>
#include <type_traits>
#include <unistd.h>
#include <utility>

#include "ace/error.hpp"
#include "ace/random.hpp"
#include "seed.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define ACE_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ACE_TEST_SANITIZED 1
#endif
#endif

namespace ace::test {

/// Whether this build runs under AddressSanitizer (the sanitize preset: -O0 and instrumented, where Eigen-heavy code
/// runs tens of times slower than in the dev build). The finite-difference gradient checks of whole models sample
/// every difference_every-th entry of each tensor there (the sanitizer still runs every forward and backward path);
/// the dev build checks every entry.
#if defined(ACE_TEST_SANITIZED)
inline constexpr bool sanitized = true;
#else
inline constexpr bool sanitized = false;
#endif
inline constexpr std::size_t difference_every = sanitized ? 5 : 1;  // 5: prime to the usual widths

/// Concatenation of std::tuple type lists.
template <class... Ts>
using concat_t = decltype(std::tuple_cat(std::declval<Ts>()...));

/// Calls f(std::type_identity<T>{}) for each T in a tuple type list.
template <class List, class F>
void for_each_type(F&& f) {
  [&]<class... Ts>(std::tuple<Ts...>*) { (f(std::type_identity<Ts>{}), ...); }(static_cast<List*>(nullptr));
}

/// A fresh directory under the system temp folder (named with the process id), removed at the end of the test.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& name)
      : path(std::filesystem::temp_directory_path() / ("ace-test-" + std::to_string(::getpid()) + "-" + name)) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

}  // namespace ace::test
