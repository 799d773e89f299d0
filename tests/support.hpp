// SPDX-License-Identifier: MIT
// Helpers shared by every test battery: seeds, type lists, temporary directories. Batteries include the ace headers
// they test next to this one (and backend_support.hpp, module_support.hpp for layers and backends).
#pragma once

#include <catch2/catch.hpp>
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

namespace ace::test {

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
