// SPDX-License-Identifier: MIT
// Compile-time names such as "C8" or "D12" for groups parameterised by a number.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace ace::detail {

template <char Prefix, std::size_t N>
struct prefixed_number {
  static constexpr std::size_t digits() {
    std::size_t d = 1;
    for (std::size_t n = N; n >= 10; n /= 10) ++d;
    return d;
  }
  static constexpr auto make() {
    std::array<char, digits() + 2> s{};
    s[0] = Prefix;
    std::size_t n = N;
    for (std::size_t i = digits(); i >= 1; --i, n /= 10) s[i] = static_cast<char>('0' + n % 10);
    return s;
  }
  static constexpr auto storage = make();
  static constexpr std::string_view view() { return {storage.data(), digits() + 1}; }
};

}  // namespace ace::detail
