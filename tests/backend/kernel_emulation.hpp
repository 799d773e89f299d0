// SPDX-License-Identifier: MIT
// The CUDA backend's operations run on the host: KernelOps (include/ace/backend/cuda/kernel_ops.hpp) over a policy
// that loops over each kernel's indices in host memory, a column-major GEMM written from the BLAS definition, and
// memcpy for copies. Everything the CUDA backend computes except the launch and the device memory is the same code,
// so this backend joins the conformance battery and the layer batteries on machines without a GPU. Indices run in
// reverse order: a kernel whose result depended on the order its indices run in would fail here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "ace/backend/cuda/kernel_ops.hpp"
#include "ace/error.hpp"
#include "ace/tensor/host_array.hpp"

namespace ace::test {

struct HostKernelExec {
  template <class F>
  static void run(const char* op, std::size_t n, const F& f) {
    for (std::size_t i = n; i-- > 0;) f(i);
    check_index_error(op);
  }
  static void* scratch(std::size_t bytes) {
    // One growing buffer: an operation uses it for its own temporaries only, as on the device.
    static thread_local std::vector<std::byte> buffer;
    if (buffer.size() < bytes) buffer.resize(bytes);
    return buffer.data();
  }
  static std::uint32_t* index_error() {
    static thread_local std::uint32_t word = 0;
    return &word;
  }
  static void check_index_error(const char* who) {
    const std::uint32_t word = *index_error();
    *index_error() = 0;
    if (word != 0) throw invalid_argument(kernels::index_error_message(who, word));
  }
  /// Copies between "backend" and host memory so far (as ace::cuda::transfers counts them on the device).
  static std::uint64_t& to_host_count() {
    static std::uint64_t n = 0;
    return n;
  }
  static std::uint64_t& from_host_count() {
    static std::uint64_t n = 0;
    return n;
  }
  static void read(void* host, const void* src, std::size_t bytes) {
    ++to_host_count();
    std::memcpy(host, src, bytes);
  }
  static void copy_2d(void* dst, std::size_t dpitch, const void* src, std::size_t spitch, std::size_t width,
                      std::size_t rows, Direction d) {
    if (d == Direction::to_host) ++to_host_count();
    if (d == Direction::from_host) ++from_host_count();
    for (std::size_t r = 0; r < rows; ++r)
      std::memmove(static_cast<std::byte*>(dst) + r * dpitch, static_cast<const std::byte*>(src) + r * spitch, width);
  }
  /// Column-major C (m x n, leading dimension ldc) = alpha op(A) op(B) + beta C, as BLAS defines it (beta = 0
  /// ignores C's old contents).
  template <class T>
  static void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, T alpha, const T* a, std::size_t lda,
                   const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc) {
    ACE_THROW_IF(lda < (ta ? k : m) || ldb < (tb ? n : k) || ldc < m, invalid_argument,
                 "gemm: a leading dimension is below the rows of its column-major matrix");
    for (std::size_t j = 0; j < n; ++j)
      for (std::size_t i = 0; i < m; ++i) {
        T s = T(0);
        for (std::size_t l = 0; l < k; ++l) s += (ta ? a[l + i * lda] : a[i + l * lda]) * (tb ? b[j + l * ldb] : b[l + j * ldb]);
        c[i + j * ldc] = beta == T(0) ? alpha * s : alpha * s + beta * c[i + j * ldc];
      }
  }
};

/// The CUDA backend's kernels on the host (HostArray storage).
struct KernelEmulation : KernelOps<KernelEmulation, HostKernelExec> {
  static constexpr const char* name = "KernelEmulation";
  template <class T, std::size_t N>
  using tensor = HostArray<T, N>;
};

static_assert(Backend<KernelEmulation>, "the CUDA kernels' host emulation must model the Backend concept");

}  // namespace ace::test
