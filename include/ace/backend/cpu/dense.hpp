// SPDX-License-Identifier: MIT
// The Cpu backend's GEMM on strided views of host memory: for float, oneDNN's sgemm where the build found oneDNN
// (ACE_WITH_ONEDNN), ace's own AVX-512 / AVX2 kernels (cpu/gemm_kernel.hpp) or Eigen's, as cpu_gemm() chooses; for
// double, Eigen's. All on blocks of C fixed by the shape, one thread per block, so that results do not depend on the
// thread count.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <string_view>
#include <type_traits>
#include <vector>

#include "ace/backend/checks.hpp"
#include "ace/backend/cpu/gemm_kernel.hpp"
#include "ace/backend/cpu/parallel.hpp"
#include "ace/backend/ops.hpp"
#include "ace/error.hpp"
#include "ace/tensor/eigen.hpp"
#include "ace/tensor/tensor.hpp"

#if defined(ACE_WITH_ONEDNN) && !defined(_OPENMP)
#error "ace: ACE_WITH_ONEDNN needs OpenMP (the blocks of C run on OpenMP threads, oneDNN one thread per block)"
#endif
#if defined(ACE_WITH_ONEDNN)
#include <oneapi/dnnl/dnnl.h>
#endif
#if defined(ACE_WITH_LIBXSMM)
#include <libxsmm.h>
#endif

namespace ace {

/// The implementations of the Cpu backend's float GEMM (double always runs on Eigen's).
enum class CpuGemm {
  eigen,   ///< Eigen's GEMM
  onednn,  ///< oneDNN's sgemm (builds with ACE_WITH_ONEDNN only)
  ace,     ///< ace's own packed-panel kernels, AVX-512 or AVX2 tiles (CPUs with AVX2 and FMA: simd_kernels_available())
  libxsmm, ///< libxsmm's JIT kernels for the small products it suits (builds with ACE_WITH_LIBXSMM), the rest on
           ///< oneDNN where the build has it, else Eigen (docs/backends.md)
};

/// The name of an implementation as ACE_CPU_GEMM spells it: "eigen", "onednn", "ace" or "libxsmm".
constexpr std::string_view cpu_gemm_name(CpuGemm g) {
  return g == CpuGemm::eigen ? "eigen" : g == CpuGemm::onednn ? "onednn" : g == CpuGemm::ace ? "ace" : "libxsmm";
}

/// Whether this build can run float GEMMs on oneDNN (CMake's ACE_WITH_ONEDNN: on where libdnnl is installed).
constexpr bool onednn_available() {
#if defined(ACE_WITH_ONEDNN)
  return true;
#else
  return false;
#endif
}

/// Whether this build runs small float products on libxsmm (CMake's ACE_WITH_LIBXSMM: on where libxsmm is installed).
constexpr bool libxsmm_available() {
#if defined(ACE_WITH_LIBXSMM)
  return true;
#else
  return false;
#endif
}

namespace detail {
/// Throws ace::unsupported where `what` (the caller's request) asks for an implementation this build or CPU lacks.
inline void require_cpu_gemm(CpuGemm choice, std::string_view what) {
  ACE_THROW_IF(choice == CpuGemm::libxsmm && !libxsmm_available(), unsupported, what,
               ": this build has no libxsmm (install libxsmm-dev and configure with ACE_WITH_LIBXSMM=ON)");
  ACE_THROW_IF(choice == CpuGemm::onednn && !onednn_available(), unsupported, what,
               ": this build has no oneDNN (install libdnnl-dev and configure with ACE_WITH_ONEDNN=ON)");
  ACE_THROW_IF(choice == CpuGemm::ace && !simd_kernels_available(), unsupported, what,
               ": ace's GEMM kernels need an x86-64 CPU with AVX2 and FMA (and GCC or clang)");
}
/// The start-up choice: the environment variable ACE_CPU_GEMM (eigen, onednn, ace or libxsmm) where set, else the
/// first of libxsmm (with oneDNN or Eigen for the rest), oneDNN and Eigen that the build has.
inline CpuGemm initial_cpu_gemm() {
  const char* env = std::getenv("ACE_CPU_GEMM");
  if (!env || !*env)
    return libxsmm_available() ? CpuGemm::libxsmm : onednn_available() ? CpuGemm::onednn : CpuGemm::eigen;
  const std::string_view v(env);
  for (const CpuGemm choice : {CpuGemm::eigen, CpuGemm::onednn, CpuGemm::ace, CpuGemm::libxsmm}) {
    if (v != cpu_gemm_name(choice)) continue;
    require_cpu_gemm(choice, "ACE_CPU_GEMM");
    return choice;
  }
  throw invalid_argument(
      ace::detail::concat("ACE_CPU_GEMM=", v, ": the Cpu backend's GEMM is eigen, onednn, ace or libxsmm"));
}
inline std::atomic<CpuGemm>& cpu_gemm_switch() {
  static std::atomic<CpuGemm> choice{initial_cpu_gemm()};
  return choice;
}
}  // namespace detail

/// Chooses the implementation of float GEMMs on the Cpu backend for the whole process, e.g. to compare them; results
/// differ by rounding only. The default is the environment variable ACE_CPU_GEMM (eigen, onednn, ace or libxsmm)
/// where set, else libxsmm where the build has it, else oneDNN where the build has it, else Eigen. Throws
/// ace::unsupported for CpuGemm::onednn or CpuGemm::libxsmm in a build without that library and for CpuGemm::ace on
/// a CPU without AVX2 and FMA.
inline void set_cpu_gemm(CpuGemm choice) {
  detail::require_cpu_gemm(choice, "set_cpu_gemm");
  detail::cpu_gemm_switch().store(choice);
}
/// The implementation float GEMMs on the Cpu backend run on now.
inline CpuGemm cpu_gemm() { return detail::cpu_gemm_switch().load(); }

namespace cpu {
template <class T>
void sum_rows(MatrixRef<const T> a, T beta, T* v);  // below

namespace detail {
/// The blocks a GEMM's C is cut into: 256 rows; where that gives fewer than 4 blocks, 64 columns too. A function of
/// the shape alone: every entry of C is computed by the same single-threaded call on the same block, whatever the
/// number of threads, so results do not depend on it. (Eigen's own threading does not promise that: its blocking of
/// the inner dimension depends on the thread count.)
struct GemmBlocks {
  static constexpr std::size_t row_block = 256, col_block = 64, few = 4;
  std::size_t rows, cols, row_size, col_size;
  GemmBlocks(std::size_t m, std::size_t n)
      : rows((m + row_block - 1) / row_block),
        cols(rows >= few ? 1 : (n + col_block - 1) / col_block),
        row_size(row_block),
        col_size(rows >= few ? n : col_block) {}
  std::size_t count() const { return rows * cols; }
};

/// f(op(A) rows, op(B) columns, C block, first row, first column) for every block of C, the blocks spread over OpenMP
/// threads when the product is large enough to pay for the fork, each run by one thread (the GEMM inside must not
/// fork again).
template <class T, class F>
void for_gemm_blocks(Transpose ta, Transpose tb, MatrixRef<const T> a, MatrixRef<const T> b, MatrixRef<T> c, F&& f) {
  const std::size_t m = c.rows, n = c.cols, k = ta == Transpose::no ? a.cols : a.rows;
  const GemmBlocks blocks(m, n);
  [[maybe_unused]] const bool fork = blocks.count() > 1 && double(m) * double(n) * double(k) > double(1 << 19);
  ACE_OMP_FOR(fork)
  for (std::size_t t = 0; t < blocks.count(); ++t) {
#if defined(_OPENMP)
    omp_set_num_threads(1);  // the GEMM of this block on this thread alone (the setting ends with the region)
#endif
    const std::size_t i = t / blocks.cols * blocks.row_size, j = t % blocks.cols * blocks.col_size;
    const std::size_t mi = std::min(blocks.row_size, m - i), nj = std::min(blocks.col_size, n - j);
    f(ta == Transpose::no ? a.row_range(i, mi) : a.columns(i, mi),
      tb == Transpose::no ? b.columns(j, nj) : b.row_range(j, nj), c.row_range(i, mi).columns(j, nj), i, j);
  }
}

/// A product with a small C and a long inner dimension (the weight gradients X^T dY) runs poorly on GemmBlocks: a
/// single block runs on one thread, and a few column blocks each stream all of op(A) down an inner dimension of
/// thousands (DeepSets' 256 x 256 gradient from 6 400 rows ran at 37–53 GFLOP/s on one AVX2 core against 60 for the
/// library's whole-matrix call: docs/benchmarks.md). From 1 024 inner indices on, a C of at most 256 x 256 entries (a
/// single block of GemmBlocks is one) is computed over slabs of the inner dimension instead: about 512 each, their
/// number rounded up to a multiple of 4 (so that 2 or 4 threads share them evenly) and at most 64 (which bounds the
/// scratch), a function of the shape alone; each slab's product is computed into its own scratch by one thread, and the
/// slabs are added to C in slab order: every core works, and the bits still do not depend on the thread count.
struct InnerSlabs {
  static constexpr std::size_t unit = 512, min_k = 1024, most = 64, small_c = 256 * 256;
  static bool apply(std::size_t m, std::size_t n, std::size_t k) {
    return k >= min_k && m * n <= small_c && double(m) * double(n) * double(k) > double(1 << 19);
  }
  /// The slab length for an inner dimension k: k over the number of slabs, ceil(k / 512) rounded up to a multiple
  /// of 4 and at most 64 (the last slab may be shorter).
  static std::size_t slab(std::size_t k) {
    const std::size_t count = std::min(most, ((k + unit - 1) / unit + 3) / 4 * 4);
    return (k + count - 1) / count;
  }
};

/// c = beta c + sum over the slabs s of product(op(a) slab s, op(b) slab s, T(0), scratch s) in slab order (see
/// InnerSlabs; beta = 0 ignores c's old contents); product(a, b, beta, c) is one single-threaded block product.
struct SlabScratch;
template <class T, class Product>
void gemm_inner_slabs(Transpose ta, Transpose tb, MatrixRef<const T> a, MatrixRef<const T> b, T beta, MatrixRef<T> c,
                      Product&& product) {
  const std::size_t m = c.rows, n = c.cols, k = ta == Transpose::no ? a.cols : a.rows;
  const std::size_t slab = InnerSlabs::slab(k), slabs = (k + slab - 1) / slab;
  T* const scratch = thread_scratch<SlabScratch, T>(slabs * m * n);
  ACE_OMP_FOR(true)
  for (std::size_t s = 0; s < slabs; ++s) {
#if defined(_OPENMP)
    omp_set_num_threads(1);  // this slab's product on this thread alone
#endif
    const std::size_t p0 = s * slab, ks = std::min(slab, k - p0);
    product(ta == Transpose::no ? a.columns(p0, ks) : a.row_range(p0, ks),
            tb == Transpose::no ? b.row_range(p0, ks) : b.columns(p0, ks), T(0),
            MatrixRef<T>{scratch + s * m * n, m, n, n});
  }
  // Row i of C = beta row i + its rows of the slabs, in slab order; the rows are independent, so the threads share
  // them (sum_rows does not fork for at most 64 slabs: one block of rows).
  ACE_OMP_FOR(m * n * slabs > (std::size_t{1} << 16))
  for (std::size_t i = 0; i < m; ++i)
    cpu::sum_rows<T>(MatrixRef<const T>{scratch + i * n, slabs, n, m * n}, beta, c.data + i * c.stride);
}

/// Runs product(a, b, beta, c) (one single-threaded block product) over C: on the blocks of GemmBlocks, or on inner
/// slabs (InnerSlabs), then epilogue(first row, first column, block) on each block.
template <class T, class Product, class Epilogue>
void gemm_driver(Transpose ta, Transpose tb, MatrixRef<const T> a, MatrixRef<const T> b, T beta, MatrixRef<T> c,
                 Product&& product, Epilogue& epilogue) {
  const std::size_t k = ta == Transpose::no ? a.cols : a.rows;
  if (InnerSlabs::apply(c.rows, c.cols, k)) {
    gemm_inner_slabs<T>(ta, tb, a, b, beta, c, product);
    epilogue(std::size_t{0}, std::size_t{0}, c);
    return;
  }
  for_gemm_blocks<T>(ta, tb, a, b, c, [&](auto ab, auto bb, auto cb, std::size_t i, std::size_t j) {
    product(ab, bb, beta, cb);
    epilogue(i, j, cb);
  });
}

/// Eigen's GEMM on one block, on the calling thread.
template <class T>
void eigen_gemm(Transpose ta, Transpose tb, T alpha, MatrixRef<const T> a, MatrixRef<const T> b, T beta,
                MatrixRef<T> c) {
  const auto ma = as_matrix(a);
  const auto mb = as_matrix(b);
  auto mc = as_matrix(c);
  if (beta == T(0)) mc.setZero();
  else if (beta != T(1)) mc *= beta;
  if (ta == Transpose::no && tb == Transpose::no) mc.noalias() += alpha * ma * mb;
  else if (ta == Transpose::no) mc.noalias() += alpha * ma * mb.transpose();
  else if (tb == Transpose::no) mc.noalias() += alpha * ma.transpose() * mb;
  else mc.noalias() += alpha * ma.transpose() * mb.transpose();
}

#if defined(ACE_WITH_ONEDNN)
/// Throws when oneDNN's sgemm reported `status` (not 0) on some block of an m x k times k x n product.
inline void check_onednn_status(int status, std::size_t m, std::size_t k, std::size_t n) {
  ACE_THROW_IF(status != 0, error, "Cpu gemm: oneDNN's sgemm failed (status ", status, ") on ", m, "x", k, " times ",
               k, "x", n);
}

/// oneDNN's sgemm on one block (single-threaded: for_gemm_blocks set this thread's OpenMP team size to 1); returns
/// its status.
inline int onednn_sgemm(Transpose ta, Transpose tb, float alpha, MatrixRef<const float> a, MatrixRef<const float> b,
                        float beta, MatrixRef<float> c) {
  const auto ld = [](const auto& v) { return static_cast<dnnl_dim_t>(std::max(v.stride, v.cols)); };
  const std::size_t k = ta == Transpose::no ? a.cols : a.rows;
  return static_cast<int>(dnnl_sgemm(ta == Transpose::no ? 'N' : 'T', tb == Transpose::no ? 'N' : 'T',
                                     static_cast<dnnl_dim_t>(c.rows), static_cast<dnnl_dim_t>(c.cols),
                                     static_cast<dnnl_dim_t>(k), alpha, a.data, ld(a), b.data, ld(b), beta, c.data,
                                     ld(c)));
}
#endif
#if defined(ACE_WITH_LIBXSMM)
/// Whether libxsmm runs the Aᵀ products: its AVX-512 kernels beat oneDNN's sgemm on the EGNN's weight gradient (119
/// against 110 GFLOP/s on one core), its AVX2 ones lose to it (45 against 59 on a Zen 3 core): docs/benchmarks.md.
inline bool xsmm_runs_transposed_a() { return cpu::detail::avx512_available(); }
/// The products libxsmm runs under CpuGemm::libxsmm: B untransposed, alpha 1, beta 0 or 1, an inner dimension of at
/// most 2 048, and at most 128 columns for A untransposed (the dense layers' forward products: where its JIT kernels
/// beat oneDNN's sgemm in whole training steps, the EGNN's 64-column layers; DeepSets' 256-column ones were level)
/// or, on CPUs with AVX-512 (xsmm_runs_transposed_a), 256 for Aᵀ (the weight gradients dYᵀ X of those layers;
/// libxsmm 1.17 has no kernel for a transposed B): docs/benchmarks.md.
inline bool xsmm_suits(Transpose ta, Transpose tb, float alpha, float beta, std::size_t n, std::size_t k) {
  return tb == Transpose::no && alpha == 1.0f && (beta == 0.0f || beta == 1.0f) && k > 0 && k <= 2048 &&
         (ta == Transpose::no ? n <= 128 : xsmm_runs_transposed_a() && n <= 256);
}
/// libxsmm's JIT kernels on one block (see xsmm_suits) in tiles of 64 rows of C; false, with C untouched, where
/// libxsmm generates no kernel. libxsmm is column-major: row-major C = A B is column-major Cᵀ = Bᵀ Aᵀ, so the
/// kernel's "A" is B and its "B" is A.
inline bool xsmm_sgemm(Transpose ta, MatrixRef<const float> a, MatrixRef<const float> b, float beta,
                       MatrixRef<float> c) {
  static const bool initialised = [] {
    libxsmm_init();
    return true;
  }();
  (void)initialised;
  constexpr std::size_t tile = 64;
  const float alpha = 1.0f;
  const bool at = ta == Transpose::yes;  // op(A) = Aᵀ: the kernel's "B" transposed; C's rows are columns of A
  const int flags = at ? LIBXSMM_GEMM_FLAG_TRANS_B : LIBXSMM_GEMM_FLAG_NONE, prefetch = LIBXSMM_PREFETCH_NONE;
  const auto m = static_cast<libxsmm_blasint>(c.cols), k = static_cast<libxsmm_blasint>(at ? a.rows : a.cols);
  const auto lda = static_cast<libxsmm_blasint>(b.stride), ldb = static_cast<libxsmm_blasint>(a.stride);
  const auto ldc = static_cast<libxsmm_blasint>(c.stride);
  const auto kernel = [&](std::size_t rows) {
    return libxsmm_smmdispatch(m, static_cast<libxsmm_blasint>(rows), k, &lda, &ldb, &ldc, &alpha, &beta, &flags,
                               &prefetch);
  };
  const std::size_t rest = c.rows > tile ? c.rows % tile : 0;  // the rows of a last, shorter tile
  const libxsmm_smmfunction full = kernel(std::min(tile, c.rows)), tail = rest != 0 ? kernel(rest) : full;
  if (full == nullptr || tail == nullptr) return false;
  for (std::size_t r0 = 0; r0 < c.rows; r0 += tile)
    (r0 + tile <= c.rows || rest == 0 ? full : tail)(b.data, a.data + (at ? r0 : r0 * a.stride),
                                                      c.data + r0 * c.stride);
  return true;
}
#endif
}  // namespace detail

/// A GEMM epilogue that does nothing.
struct NoEpilogue {
  template <class T>
  void operator()(std::size_t, std::size_t, MatrixRef<T>) const noexcept {}
};

/// c = alpha op(a) op(b) + beta c on views (c must already have the shape of the product; beta = 0 ignores its old
/// contents, as in BLAS), then epilogue(first row, first column, block) on each block of C right after the thread that
/// computed it (the block still in its cache; the fused dense operations' bias and activation). Float products follow
/// cpu_gemm(): CpuGemm::libxsmm runs the small ones with B untransposed (detail::xsmm_suits: the dense layers' forward
/// products and weight gradients) on libxsmm's JIT kernels and the rest as CpuGemm::onednn; CpuGemm::onednn runs
/// products of at least 2^12 multiply-adds on oneDNN's sgemm; CpuGemm::ace runs every float product on ace's own
/// kernels (cpu/gemm_kernel.hpp); the rest, and double, run on Eigen's GEMM. Either way C is cut into blocks fixed by
/// the shape (detail::GemmBlocks), spread over OpenMP threads with one thread per block, so the result does not depend
/// on the thread count; a product with a single block and a long inner dimension is cut along it instead
/// (detail::InnerSlabs).
template <class T, class Epilogue = NoEpilogue>
void gemm(Transpose ta, Transpose tb, T alpha, std::type_identity_t<MatrixRef<const T>> a,
          std::type_identity_t<MatrixRef<const T>> b, T beta, MatrixRef<T> c, Epilogue&& epilogue = {}) {
  ace::detail::check::gemm<T>("Cpu", ta, tb, a, b, c);
  if (c.empty()) return;
#if ACE_HAS_X86_KERNELS
  if constexpr (std::is_same_v<T, float>) {
    if (cpu_gemm() == CpuGemm::ace) {
      detail::gemm_driver<float>(ta, tb, a, b, beta, c, [&](auto ab, auto bb, float bt, auto cb) {
        detail::ace_sgemm(ta, tb, alpha, ab, bb, bt, cb);
      }, epilogue);
      return;
    }
  }
#endif
#if defined(ACE_WITH_LIBXSMM)
  if constexpr (std::is_same_v<T, float>) {
    const std::size_t k = ta == Transpose::no ? a.cols : a.rows;
    if (cpu_gemm() == CpuGemm::libxsmm && detail::xsmm_suits(ta, tb, alpha, beta, c.cols, k)) {
      [[maybe_unused]] std::atomic<int> status{0};
      detail::gemm_driver<float>(ta, tb, a, b, beta, c, [&](auto ab, auto bb, float bt, auto cb) {
        if (detail::xsmm_sgemm(ta, ab, bb, bt, cb)) return;
  #if defined(ACE_WITH_ONEDNN)  // no kernel for this block: the next implementation, on the same block
        if (const int s = detail::onednn_sgemm(ta, tb, alpha, ab, bb, bt, cb); s != 0) status.store(s);
  #else
        detail::eigen_gemm<float>(ta, tb, alpha, ab, bb, bt, cb);
  #endif
      }, epilogue);
  #if defined(ACE_WITH_ONEDNN)
      detail::check_onednn_status(status.load(), c.rows, k, c.cols);
  #endif
      return;
    }
  }
#endif
#if defined(ACE_WITH_ONEDNN)
  if constexpr (std::is_same_v<T, float>) {
    const std::size_t k = ta == Transpose::no ? a.cols : a.rows;
    const bool chosen = cpu_gemm() == CpuGemm::onednn || cpu_gemm() == CpuGemm::libxsmm;
    if (chosen && k > 0 && c.rows * c.cols * k >= (std::size_t{1} << 12)) {
      std::atomic<int> status{0};
      detail::gemm_driver<float>(ta, tb, a, b, beta, c, [&](auto ab, auto bb, float bt, auto cb) {
        if (const int s = detail::onednn_sgemm(ta, tb, alpha, ab, bb, bt, cb); s != 0) status.store(s);
      }, epilogue);
      detail::check_onednn_status(status.load(), c.rows, k, c.cols);
      return;
    }
  }
#endif
  detail::gemm_driver<T>(ta, tb, a, b, beta, c, [&](auto ab, auto bb, T bt, auto cb) {
    detail::eigen_gemm<T>(ta, tb, alpha, ab, bb, bt, cb);
  }, epilogue);
}

/// The rows of a block of sum_rows: each block's rows are added in order, the blocks' partial sums then in block
/// order; a function of the shape alone.
inline constexpr std::size_t sum_rows_block = 256;

/// v[0, :] = beta v + Σ_i a[i, :] (v contiguous, a.cols entries; beta = 0 ignores v's old contents): see
/// sum_rows_block. Allocates only when a larger shape than before needs more per-block scratch.
struct SumRowsScratch;
template <class T>
void sum_rows(MatrixRef<const T> a, T beta, T* v) {
  const std::size_t n = a.cols, blocks = (a.rows + sum_rows_block - 1) / sum_rows_block;
  const auto add_block = [&](std::size_t b, T* acc) {  // acc = Σ of block b's rows
    const std::size_t first = b * sum_rows_block, last = std::min(a.rows, first + sum_rows_block);
    std::fill_n(acc, n, T(0));
    for (std::size_t r = first; r < last; ++r) {
      const T* row = a.data + r * a.stride;
      for (std::size_t j = 0; j < n; ++j) acc[j] += row[j];
    }
  };
  T* const partial = thread_scratch<SumRowsScratch, T>(std::max<std::size_t>(blocks, 1) * n);
  if (blocks <= 1) {
    add_block(0, partial);
  } else {
    T* parts = partial;
    ACE_OMP_FOR(a.rows * n > (std::size_t{1} << 15))
    for (std::size_t b = 0; b < blocks; ++b) add_block(b, parts + b * n);
    for (std::size_t b = 1; b < blocks; ++b)
      for (std::size_t j = 0; j < n; ++j) parts[j] += parts[b * n + j];
  }
  for (std::size_t j = 0; j < n; ++j) v[j] = beta == T(0) ? partial[j] : beta * v[j] + partial[j];
}

}  // namespace cpu
}  // namespace ace
