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
#include <functional>
#include <utility>
#include <vector>

#include "ace/backend/cuda/kernel_ops.hpp"
#include "ace/backend/reference/reference.hpp"
#include "ace/error.hpp"
#include "ace/tensor/host_array.hpp"

namespace ace::test {

struct HostKernelExec {
  /// A recording: the operations capture() saw, replayed in order on the same memory (as a CUDA graph is).
  struct Tape {
    std::vector<std::function<void()>> ops;
    void replay() const {
      for (const auto& op : ops) op();
    }
  };
  using graph = Tape;

  template <class F>
  static graph capture(F&& f) {
    Tape t;
    ACE_THROW_IF(tape() != nullptr, unsupported, "KernelEmulation::capture: a step is already being recorded");
    tape() = &t;
    try {
      f();
    } catch (...) {
      tape() = nullptr;
      throw;
    }
    tape() = nullptr;
    return t;
  }
  /// Kernels, GEMMs and device copies issued so far (what a device would launch): a test compares launch counts.
  static std::uint64_t& launch_count() {
    static std::uint64_t n = 0;
    return n;
  }
  template <class F>
  static void run(const char* op, std::size_t n, const F& f) {
    ++launch_count();
    if (tape()) return tape()->ops.push_back([op, n, f] { execute(op, n, f); });
    execute(op, n, f);
  }
  /// A block functor: per block (in reverse order), its phases one after another (the barrier), the threads of a
  /// phase in reverse order.
  template <class F>
  static void run_blocks(const char* op, std::size_t blocks, unsigned threads, const F& f) {
    ++launch_count();
    const auto body = [=] {
      for (std::size_t b = blocks; b-- > 0;)
        for (unsigned phase = 0; phase < F::phases; ++phase)
          for (unsigned t = threads; t-- > 0;) f(phase, b, t, threads);
      check_index_error(op);
    };
    record_or_run(body);
  }
  static void* scratch(std::size_t bytes) {
    // One growing buffer: an operation uses it for its own temporaries only, as on the device.
    static thread_local std::vector<std::byte> buffer;
    if (buffer.size() < bytes) {
      refuse_in_capture("scratch allocation");
      buffer.resize(bytes);
    }
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
    refuse_in_capture("read");
    ++to_host_count();
    std::memcpy(host, src, bytes);
  }
  static void copy_2d(void* dst, std::size_t dpitch, const void* src, std::size_t spitch, std::size_t width,
                      std::size_t rows, Direction d) {
    if (d != Direction::on_device) refuse_in_capture(d == Direction::to_host ? "to_host" : "from_host");
    else ++launch_count();
    if (tape())
      return tape()->ops.push_back([=] { copy_2d(dst, dpitch, src, spitch, width, rows, d); });
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
    ++launch_count();
    if (tape())
      return tape()->ops.push_back([=] { gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); });
    ACE_THROW_IF(lda < (ta ? k : m) || ldb < (tb ? n : k) || ldc < m, invalid_argument,
                 "gemm: a leading dimension is below the rows of its column-major matrix");
    for (std::size_t j = 0; j < n; ++j)
      for (std::size_t i = 0; i < m; ++i) {
        T s = T(0);
        for (std::size_t l = 0; l < k; ++l) s += (ta ? a[l + i * lda] : a[i + l * lda]) * (tb ? b[j + l * ldb] : b[l + j * ldb]);
        c[i + j * ldc] = beta == T(0) ? alpha * s : alpha * s + beta * c[i + j * ldc];
      }
  }
  /// A convolution library, as cuDNN is to the device: Reference's convolution on the raw buffers, taken for
  /// channels-last images only (so the conformance battery runs both KernelOps paths: the library's with the bias
  /// kernels around it, and the own kernels).
  template <class T>
  static bool conv2d_forward(const ConvGeometry& g, std::size_t batch, const T* x, const T* w, T* y) {
    if (g.layout != Layout::channels_last) return false;
    record_or_run([=] {
      Reference::convolution<T> conv(g);
      Reference::conv2d_forward(conv, MatrixRef<const T>{x, batch, g.in_dim(), g.in_dim()},
                                MatrixRef<const T>{w, g.out_channels, g.patch(), g.patch()}, MatrixRef<const T>{},
                                MatrixRef<T>{y, batch, g.out_dim(), g.out_dim()});
    });
    return true;
  }
  template <class T>
  static bool conv2d_backward(const ConvGeometry& g, std::size_t batch, const T* x, const T* w, const T* dy, T* dw,
                              T* dx) {
    if (g.layout != Layout::channels_last) return false;
    record_or_run([=] {
      Reference::convolution<T> conv(g);
      Reference::conv2d_backward(conv, MatrixRef<const T>{x, batch, g.in_dim(), g.in_dim()},
                                 MatrixRef<const T>{w, g.out_channels, g.patch(), g.patch()},
                                 MatrixRef<const T>{dy, batch, g.out_dim(), g.out_dim()},
                                 MatrixRef<T>{dw, g.out_channels, g.patch(), g.patch()}, MatrixRef<T>{},
                                 MatrixRef<T>{dx, batch, g.in_dim(), g.in_dim()});
    });
    return true;
  }

 private:
  template <class F>
  static void execute(const char* op, std::size_t n, const F& f) {
    for (std::size_t i = n; i-- > 0;) f(i);
    check_index_error(op);
  }
  template <class F>
  static void record_or_run(F&& f) {
    if (tape()) tape()->ops.push_back(std::forward<F>(f));
    else f();
  }
  static Tape*& tape() {
    static thread_local Tape* t = nullptr;
    return t;
  }
  // As the device refuses them while recording (src/cuda/runtime.cu).
  static void refuse_in_capture(const char* what) {
    ACE_THROW_IF(tape() != nullptr, unsupported, "KernelEmulation::", what,
                 ": not possible while a step is being recorded");
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
