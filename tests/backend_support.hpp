// SPDX-License-Identifier: MIT
// What the batteries need to run on every backend: the backend type list, host data moved to a backend and back.
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <span>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "ace/backend/cpu/cpu.hpp"
#include "ace/backend/reference/reference.hpp"
#include "ace/random.hpp"
#include "support.hpp"
#if defined(ACE_TEST_BACKEND_CUDA) || defined(ACE_TEST_BACKEND_EMULATION)
/// A build of the batteries for one device backend: test cases about the Cpu backend alone are left out.
#define ACE_TEST_DEVICE_BUILD 1
#endif
#if defined(ACE_TEST_BACKEND_CUDA)
#include "ace/backend/cuda/cuda.hpp"
#elif defined(ACE_TEST_BACKEND_EMULATION)
#include "backend/kernel_emulation.hpp"
#endif

namespace ace::test {

/// The backends every battery runs on; a new backend joins here. The batteries are compiled once more for the CUDA
/// backend (ACE_TEST_BACKEND_CUDA: executables cuda_*, skipped without a GPU) and for its kernels' host emulation
/// (ACE_TEST_BACKEND_EMULATION: executables emulated_*), each alone in the list (tests/CMakeLists.txt).
#if defined(ACE_TEST_BACKEND_CUDA)
using Backends = std::tuple<Cuda>;
template <template <class> class List>
using for_backends = List<Cuda>;
#elif defined(ACE_TEST_BACKEND_EMULATION)
using Backends = std::tuple<KernelEmulation>;
template <template <class> class List>
using for_backends = List<KernelEmulation>;
#else
using Backends = std::tuple<Cpu, Reference>;
/// The type list List<B> for every backend B of Backends, concatenated (a battery over layers x backends).
template <template <class> class List>
using for_backends = concat_t<List<Cpu>, List<Reference>>;
#endif
/// The first backend of the list (the one under test in the device builds).
using Device = std::tuple_element_t<0, Backends>;

#if defined(ACE_TEST_BACKEND_CUDA) || defined(ACE_TEST_BACKEND_EMULATION)
/// Copies to and from the host the device backend has made so far.
struct TransferCount {
  std::uint64_t to_host = 0, from_host = 0;
};
inline TransferCount device_transfers() {
#if defined(ACE_TEST_BACKEND_CUDA)
  const auto t = cuda::transfers();
  return {t.to_host, t.from_host};
#else
  return {HostKernelExec::to_host_count(), HostKernelExec::from_host_count()};
#endif
}
#endif

/// f(std::type_identity<float>{}) then f(std::type_identity<double>{}).
template <class F>
void for_each_scalar(F&& f) {
  f(std::type_identity<float>{});
  f(std::type_identity<double>{});
}

/// A row-major rows x cols matrix of host values, moved to any backend with upload<B>.
template <class T>
struct Host {
  std::vector<T> values;
  std::size_t rows = 0, cols = 0;
};

/// The values in a new backend tensor [rows, cols].
template <class B, class T>
tensor_t<B, T, 2> upload(const Host<T>& h) {
  auto t = make_storage<tensor_t<B, T, 2>>(std::array<std::size_t, 2>{h.rows, h.cols});
  B::from_host(std::span<const T>(h.values), view(t));
  return t;
}

/// Standard normal values.
template <class T>
Host<T> random_values(std::size_t rows, std::size_t cols, Rng& rng) {
  Host<T> h{std::vector<T>(rows * cols), rows, cols};
  for (auto& v : h.values) v = static_cast<T>(rng.normal());
  return h;
}

/// The entries of a backend tensor (any rank), in host memory.
template <class B, class S>
std::vector<typename S::value_type> download(const S& t) {
  return to_host_vector<B>(flat(t));
}

}  // namespace ace::test
