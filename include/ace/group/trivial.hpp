// SPDX-License-Identifier: MIT
// TrivialGroup: the group with one element.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace ace {

/// The trivial group {e}. Useful as a placeholder symmetry (plain, non-equivariant layers) and in products.
struct TrivialGroup {
  struct element_type {
    friend constexpr bool operator==(element_type, element_type) = default;
  };
  static constexpr std::size_t order = 1;
  static constexpr element_type identity() { return {}; }
  static constexpr element_type compose(element_type, element_type) { return {}; }
  static constexpr element_type inverse(element_type) { return {}; }
  static constexpr std::array<element_type, 0> generators() { return {}; }
  static constexpr std::size_t index(element_type) { return 0; }
  static constexpr element_type element(std::size_t) { return {}; }
  static constexpr std::string_view name() { return "1"; }
};

}  // namespace ace
