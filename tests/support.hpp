// SPDX-License-Identifier: MIT
// Helpers shared by the test batteries.
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <unistd.h>

#include "ace/ace.hpp"

namespace ace::test {

/// The seed of a random test: ACE_TEST_SEED from the environment if set, else the test's default. Printed, so a
/// failing run can be repeated exactly.
inline std::uint64_t seed(std::uint64_t fallback, const char* test) {
  std::uint64_t s = fallback;
  if (const char* env = std::getenv("ACE_TEST_SEED")) s = std::strtoull(env, nullptr, 10);
  std::cout << "[seed] " << test << ": " << s << " (set ACE_TEST_SEED to override)\n";
  return s;
}

/// Concatenation of std::tuple type lists.
template <class... Ts>
using concat_t = decltype(std::tuple_cat(std::declval<Ts>()...));

/// std::tuple<Irrep<G, 0>, ..., Irrep<G, irrep_count - 1>>.
template <class G, class Seq = std::make_index_sequence<irrep_count_v<G>>>
struct irreps_of;
template <class G, std::size_t... I>
struct irreps_of<G, std::index_sequence<I...>> {
  using type = std::tuple<Irrep<G, I>...>;
};
template <class G>
using irreps_of_t = typename irreps_of<G>::type;

/// Calls f(std::type_identity<T>{}) for each T in a tuple type list.
template <class List, class F>
void for_each_type(F&& f) {
  [&]<class... Ts>(std::tuple<Ts...>*) { (f(std::type_identity<Ts>{}), ...); }(static_cast<List*>(nullptr));
}

/// A module built from the generator if it takes one, default-built otherwise.
template <class M>
M make_module(Rng& rng) {
  if constexpr (std::is_constructible_v<M, Rng&>) return M(rng);
  else return M{};
}

/// A [batch, S::dim] batch of standard normal entries.
template <class T, class S>
Tensor<T, 2> random_batch(std::size_t batch, Rng& rng) {
  Tensor<T, 2> x({batch, S::dim});
  for (auto& v : x) v = static_cast<T>(rng.normal());
  return x;
}

/// Runs check_gradients (double) and checks the worst relative error, reporting each parameter's.
template <class M>
void check_module_gradients(M& module, const Tensor<double, 2>& x, std::uint64_t seed, double tolerance = 1e-6) {
  const GradientCheckResult r = check_gradients(module, x, seed);
  for (const auto& [name, err] : r.parameters) UNSCOPED_INFO(name << " gradient error " << err);
  UNSCOPED_INFO("input gradient error " << r.input);
  CHECK(r.max_error() < tolerance);
}

/// Runs check_equivariance and checks the error relative to the output norm against a tolerance per scalar type.
template <class M>
void check_module_equivariance(M& module, const Tensor<typename M::scalar, 2>& x, std::uint64_t seed,
                               std::size_t random_elements = 16) {
  using T = typename M::scalar;
  const double err = check_equivariance(module, x, seed, random_elements);
  UNSCOPED_INFO(rep_name<typename M::input>() << " -> " << rep_name<typename M::output>() << ": error " << err);
  CHECK(err < (std::is_same_v<T, float> ? 1e-5 : 1e-12));
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

/// Cyclic and dihedral groups the batteries run over.
using PlanarGroups = std::tuple<Cyclic<1>, Cyclic<2>, Cyclic<3>, Cyclic<4>, Cyclic<5>, Cyclic<6>, Cyclic<7>, Cyclic<8>,
                                Cyclic<12>, Dihedral<1>, Dihedral<2>, Dihedral<3>, Dihedral<4>, Dihedral<5>,
                                Dihedral<6>, Dihedral<7>, Dihedral<8>, Dihedral<12>>;

}  // namespace ace::test
