// SPDX-License-Identifier: MIT
// A user group without generators() cannot be used; the message names the missing member.
#include <array>
#include <ace/rep/basic.hpp>
struct MyZ2 {
  struct element_type {
    unsigned k = 0;
    friend constexpr bool operator==(element_type, element_type) = default;
  };
  static constexpr std::size_t order = 2;
  static constexpr element_type identity() { return {0}; }
  static constexpr element_type compose(element_type a, element_type b) { return {a.k ^ b.k}; }
  static constexpr element_type inverse(element_type a) { return a; }
#ifndef ACE_SHOULD_FAIL
  static constexpr std::array<element_type, 1> generators() { return {element_type{1}}; }
#endif
  static constexpr std::size_t index(element_type a) { return a.k; }
  static constexpr element_type element(std::size_t i) { return {static_cast<unsigned>(i)}; }
  static constexpr std::string_view name() { return "Z2"; }
};
int main() { return static_cast<int>(ace::Regular<MyZ2>::dim) - 2; }
