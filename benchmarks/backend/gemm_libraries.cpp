// SPDX-License-Identifier: MIT
// The implementations behind bench_gemm's GemmLibrary interface (gemm_libraries.hpp).
#include "gemm_libraries.hpp"

#include <dlfcn.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <unordered_map>
#include <utility>

#include <ace/backend/cpu/cpu.hpp>

#if ACE_BENCH_LIBXSMM
#include <libxsmm.h>
#endif
#if ACE_BENCH_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif
#if defined(_OPENMP)
#include <omp.h>
#endif

namespace ace::bench {
namespace {

void set_omp_threads(int threads) {
#if defined(_OPENMP)
  omp_set_num_threads(threads);
#else
  (void)threads;
#endif
}

MatrixRef<const float> stored(const float* p, int rows, int cols) {
  return {p, static_cast<std::size_t>(rows), static_cast<std::size_t>(cols), static_cast<std::size_t>(cols)};
}
/// The row lengths (row-major leading dimensions) of A and B as stored: a transposed operand is stored the other way
/// round.
int ld_a(const GemmShape& s) { return s.ta ? s.m : s.k; }
int ld_b(const GemmShape& s) { return s.tb ? s.k : s.n; }
MatrixRef<const float> a_view(const GemmShape& s, const float* a) { return stored(a, s.ta ? s.k : s.m, ld_a(s)); }
MatrixRef<const float> b_view(const GemmShape& s, const float* b) { return stored(b, s.tb ? s.n : s.k, ld_b(s)); }
MatrixRef<float> c_view(const GemmShape& s, float* c) {
  return {c, static_cast<std::size_t>(s.m), static_cast<std::size_t>(s.n), static_cast<std::size_t>(s.n)};
}

/// The dense layer's epilogue as ace runs it after a plain GEMM: the bias row, then the vectorised SiLU (two passes).
void ace_epilogue(const GemmShape& s, const float* bias, float* c) {
  if (!s.bias_silu) return;
  const auto cv = c_view(s, c);
  Cpu::add_row<float>(cv, stored(bias, 1, s.n));
  Cpu::map<SiLUOp, float>(cv, cv);
}

/// A plan from a callable that computes the plain product; ace's epilogue follows where the shape asks for one.
template <class F>
class PlainPlan final : public GemmPlan {
 public:
  PlainPlan(GemmShape s, F f) : s_(s), f_(std::move(f)) {}
  void run(const float* a, const float* b, const float* bias, float* c) override {
    f_(a, b, c);
    ace_epilogue(s_, bias, c);
  }

 private:
  GemmShape s_;
  F f_;
};
template <class F>
std::unique_ptr<GemmPlan> plain_plan(const GemmShape& s, F f) {
  return std::make_unique<PlainPlan<F>>(s, std::move(f));
}

/// ace's Cpu::gemm on one of its implementations (the choice is set before every call: it is process-wide).
/// The short name of an implementation ("eigen", "onednn", "own") and what it runs on.
std::string implementation_name(CpuGemm choice) {
  return choice == CpuGemm::ace ? "own" : std::string(cpu_gemm_name(choice));  // "ace-ace" would read badly
}
std::string implementation_detail(CpuGemm choice) {
  if (choice == CpuGemm::eigen)
    return "Eigen " + std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
           std::to_string(EIGEN_MINOR_VERSION);
  if (choice == CpuGemm::libxsmm) return "libxsmm's JIT kernels (small untransposed products; the rest on oneDNN)";
  return choice == CpuGemm::onednn ? "oneDNN's sgemm" : "ace's own kernels (AVX-512 or AVX2/FMA tiles)";
}

GemmLibrary ace_gemm(CpuGemm choice) {
  GemmLibrary lib;
  lib.name = "ace-" + implementation_name(choice);
  lib.detail = "ace::Cpu::gemm on " + implementation_detail(choice) + ", one thread per block of C fixed by the shape";
  lib.threads = set_omp_threads;
  lib.plan = [choice](const GemmShape& s, std::string&) -> std::unique_ptr<GemmPlan> {
    return plain_plan(s, [s, choice](const float* a, const float* b, float* c) {
      set_cpu_gemm(choice);
      Cpu::gemm<float>(s.ta ? Transpose::yes : Transpose::no, s.tb ? Transpose::yes : Transpose::no, 1.0f,
                       a_view(s, a), b_view(s, b), 0.0f, c_view(s, c));
    });
  };
  return lib;
}

/// ace's fused dense operation, Cpu::gemm_bias_act<SiLUOp>: the bias and SiLU on each block of the product while it
/// is in cache; z kept in a buffer of the plan's (as a layer keeps its pre-activation), SiLU(z) in C.
class FusedPlan final : public GemmPlan {
 public:
  FusedPlan(GemmShape s, CpuGemm choice)
      : s_(s), choice_(choice), z_(static_cast<std::size_t>(s.m) * static_cast<std::size_t>(s.n)) {}
  void run(const float* a, const float* b, const float* bias, float* c) override {
    set_cpu_gemm(choice_);
    Cpu::gemm_bias_act<SiLUOp, float>(s_.ta ? Transpose::yes : Transpose::no, s_.tb ? Transpose::yes : Transpose::no,
                                      1.0f, a_view(s_, a), b_view(s_, b), 0.0f, stored(bias, 1, s_.n),
                                      c_view(s_, z_.data()), c_view(s_, c));
  }

 private:
  GemmShape s_;
  CpuGemm choice_;
  std::vector<float> z_;
};

/// ace's fused epilogue on one of its GEMMs; "+silu" shapes only (the plain products are ace_gemm's).
GemmLibrary ace_fused(CpuGemm choice) {
  GemmLibrary lib;
  lib.name = "ace-" + implementation_name(choice) + "-fused";
  lib.detail = "ace::Cpu::gemm_bias_act (bias + SiLU in the block epilogue) on " + implementation_detail(choice);
  lib.threads = set_omp_threads;
  lib.plan = [choice](const GemmShape& s, std::string& why) -> std::unique_ptr<GemmPlan> {
    if (!s.bias_silu) {
      why = "a fused epilogue only: the plain product is ace-" + implementation_name(choice) + "'s";
      return nullptr;
    }
    return std::make_unique<FusedPlan>(s, choice);
  };
  return lib;
}

// ---- CBLAS libraries through dlopen: OpenBLAS and BLIS both export cblas_sgemm, so each is loaded with its own
// symbol table (RTLD_LOCAL) and called through the address its own handle gives -------------------------------------

using CblasSgemm = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*,
                            int);
constexpr int cblas_row_major = 101, cblas_no_trans = 111, cblas_trans = 112;

template <class F>
F symbol(void* handle, const char* name) {
  return reinterpret_cast<F>(dlsym(handle, name));
}

/// What a CBLAS library says of itself: OpenBLAS its kernel family, BLIS its version and the sub-configuration it
/// picked for this CPU.
std::string describe(void* h, const std::string& name) {
  if (name == "openblas") {
    const auto core = symbol<const char* (*)()>(h, "openblas_get_corename");
    return std::string("OpenBLAS (pthreads)") + (core ? std::string(", kernels ") + core() : "");
  }
  const auto version = symbol<const char* (*)()>(h, "bli_info_get_version_str");
  const auto arch_id = symbol<int (*)()>(h, "bli_arch_query_id");
  const auto arch = symbol<const char* (*)(int)>(h, "bli_arch_string");
  return std::string("BLIS ") + (version ? version() : "") + " (OpenMP)" +
         (arch_id && arch ? std::string(", kernels ") + arch(arch_id()) : "");
}

template <class Count>
void add_cblas(std::vector<GemmLibrary>& out, const std::string& name, const char* path, const char* threads_symbol) {
  // OpenBLAS 0.3.21 picks its kernels from the CPU model and falls back to SSE3 ("Prescott") on models it predates;
  // unless the caller chose (OPENBLAS_CORETYPE), give it the kernels for the vectors this CPU has.
  if (name == "openblas" && !std::getenv("OPENBLAS_CORETYPE"))
    setenv("OPENBLAS_CORETYPE", __builtin_cpu_supports("avx512f") ? "SkylakeX" : "Haswell", 0);
  void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) return;
  const auto sgemm = symbol<CblasSgemm>(h, "cblas_sgemm");
  const auto set_threads = symbol<void (*)(Count)>(h, threads_symbol);
  if (!sgemm || !set_threads) return;
  GemmLibrary lib;
  lib.name = name;
  lib.detail = describe(h, name);
  lib.threads = [set_threads](int t) { set_threads(static_cast<Count>(t)); };
  lib.plan = [sgemm](const GemmShape& s, std::string&) -> std::unique_ptr<GemmPlan> {
    return plain_plan(s, [s, sgemm](const float* a, const float* b, float* c) {
      sgemm(cblas_row_major, s.ta ? cblas_trans : cblas_no_trans, s.tb ? cblas_trans : cblas_no_trans, s.m, s.n, s.k,
            1.0f, a, ld_a(s), b, ld_b(s), 0.0f, c, s.n);
    });
  };
  out.push_back(std::move(lib));
}

#if ACE_BENCH_LIBXSMM
// ---- libxsmm: JIT kernels over tiles of C's rows --------------------------------------------------------------------
// libxsmm is column-major: row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, so the kernel's "A" is
// our B and its "B" our A; a tile of `rows` rows of C is one kernel call with n = rows. Tiles run across the OpenMP
// threads (disjoint rows: the same result with any thread count).
class XsmmPlan final : public GemmPlan {
 public:
  static constexpr int tile = 64;
  XsmmPlan(const GemmShape& s, libxsmm_smmfunction full, libxsmm_smmfunction tail) : s_(s), full_(full), tail_(tail) {}
  void run(const float* a, const float* b, const float* bias, float* c) override {
    const int tiles = (s_.m + tile - 1) / tile;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < tiles; ++t) {
      const int row = t * tile;
      const float* at = s_.ta ? a + row : a + static_cast<std::ptrdiff_t>(row) * s_.k;
      float* ct = c + static_cast<std::ptrdiff_t>(row) * s_.n;
      (row + tile <= s_.m ? full_ : tail_)(b, at, ct);
    }
    ace_epilogue(s_, bias, c);
  }

 private:
  GemmShape s_;
  libxsmm_smmfunction full_, tail_;
};

libxsmm_smmfunction xsmm_kernel(const GemmShape& s, int rows) {
  const libxsmm_blasint m = s.n, n = rows, k = s.k;
  const libxsmm_blasint lda = ld_b(s), ldb = ld_a(s), ldc = s.n;  // the kernel's A is our B (see above)
  const float alpha = 1.0f, beta = 0.0f;
  const int flags = (s.tb ? LIBXSMM_GEMM_FLAG_TRANS_A : 0) | (s.ta ? LIBXSMM_GEMM_FLAG_TRANS_B : 0);
  const int prefetch = LIBXSMM_PREFETCH_NONE;
  return libxsmm_smmdispatch(m, n, k, &lda, &ldb, &ldc, &alpha, &beta, &flags, &prefetch);
}

GemmLibrary libxsmm_tiles() {
  libxsmm_init();
  GemmLibrary lib;
  lib.name = "libxsmm";
  lib.detail = "libxsmm " + std::to_string(LIBXSMM_VERSION_MAJOR) + "." + std::to_string(LIBXSMM_VERSION_MINOR) +
               " JIT kernels on 64-row tiles, OpenMP across tiles, target " + libxsmm_get_target_arch();
  lib.threads = set_omp_threads;
  lib.plan = [](const GemmShape& s, std::string& why) -> std::unique_ptr<GemmPlan> {
    const auto full = xsmm_kernel(s, XsmmPlan::tile);
    const int rest = s.m % XsmmPlan::tile;
    const auto tail = rest ? xsmm_kernel(s, rest) : full;
    if (!full || !tail) {
      why = "libxsmm generated no kernel for this shape and transposition";
      return nullptr;
    }
    return std::make_unique<XsmmPlan>(s, full, tail);
  };
  return lib;
}
#endif

#if ACE_BENCH_ONEDNN
// ---- oneDNN: its BLAS-like sgemm, and the matmul primitive with the epilogue as post-ops ---------------------------
GemmLibrary onednn_sgemm() {
  GemmLibrary lib;
  lib.name = "onednn-sgemm";
  const auto* v = dnnl_version();
  lib.detail = "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) +
               " dnnl_sgemm (" + (v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other") + " threads)";
  lib.threads = set_omp_threads;
  lib.plan = [](const GemmShape& s, std::string&) -> std::unique_ptr<GemmPlan> {
    return plain_plan(s, [s](const float* a, const float* b, float* c) {
      dnnl_sgemm(s.ta ? 'T' : 'N', s.tb ? 'T' : 'N', s.m, s.n, s.k, 1.0f, a, ld_a(s), b, ld_b(s), 0.0f, c, s.n);
    });
  };
  return lib;
}

class MatmulPlan final : public GemmPlan {
 public:
  explicit MatmulPlan(const GemmShape& s) : s_(s), engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {
    using dnnl::memory;
    const memory::dims a_dims{s.m, s.k}, b_dims{s.k, s.n}, c_dims{s.m, s.n};
    // A transposed operand is the stored matrix read with swapped strides.
    a_md_ = memory::desc(a_dims, memory::data_type::f32, s.ta ? memory::dims{1, s.m} : memory::dims{s.k, 1});
    b_md_ = memory::desc(b_dims, memory::data_type::f32, s.tb ? memory::dims{1, s.k} : memory::dims{s.n, 1});
    c_md_ = memory::desc(c_dims, memory::data_type::f32, memory::dims{s.n, 1});
    dnnl::primitive_attr attr;
    if (s.bias_silu) {
      bias_md_ = memory::desc({1, s.n}, memory::data_type::f32, memory::dims{s.n, 1});
      dnnl::post_ops ops;
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_swish, 1.0f, 0.0f);
      attr.set_post_ops(ops);
    }
    const auto desc = s.bias_silu ? dnnl::matmul::desc(a_md_, b_md_, bias_md_, c_md_)
                                  : dnnl::matmul::desc(a_md_, b_md_, c_md_);
    pd_ = dnnl::matmul::primitive_desc(desc, attr, engine_);
    matmul_ = dnnl::matmul(pd_);
  }
  void run(const float* a, const float* b, const float* bias, float* c) override {
    using dnnl::memory;
    memory am(a_md_, engine_, const_cast<float*>(a)), bm(b_md_, engine_, const_cast<float*>(b)), cm(c_md_, engine_, c);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}};
    if (s_.bias_silu) args.emplace(DNNL_ARG_BIAS, memory(bias_md_, engine_, const_cast<float*>(bias)));
    matmul_.execute(stream_, args);
    stream_.wait();
  }

 private:
  GemmShape s_;
  dnnl::engine engine_;
  dnnl::stream stream_;
  dnnl::memory::desc a_md_, b_md_, c_md_, bias_md_;
  dnnl::matmul::primitive_desc pd_;
  dnnl::matmul matmul_;
};

GemmLibrary onednn_matmul() {
  GemmLibrary lib;
  lib.name = "onednn-matmul";
  lib.detail = "oneDNN matmul primitive, bias and SiLU (eltwise_swish) fused as post-ops";
  lib.threads = set_omp_threads;
  lib.plan = [](const GemmShape& s, std::string& why) -> std::unique_ptr<GemmPlan> {
    try {
      return std::make_unique<MatmulPlan>(s);
    } catch (const dnnl::error& e) {
      why = std::string("oneDNN matmul: ") + e.what();
      return nullptr;
    }
  };
  return lib;
}
#endif

}  // namespace

std::vector<GemmLibrary> gemm_libraries() {
  std::vector<GemmLibrary> out;
  out.push_back(ace_gemm(CpuGemm::eigen));
  out.push_back(ace_fused(CpuGemm::eigen));
  if (onednn_available()) {
    out.push_back(ace_gemm(CpuGemm::onednn));
    out.push_back(ace_fused(CpuGemm::onednn));
  }
  if (simd_kernels_available()) {
    out.push_back(ace_gemm(CpuGemm::ace));
    out.push_back(ace_fused(CpuGemm::ace));
  }
  if (libxsmm_available()) {
    out.push_back(ace_gemm(CpuGemm::libxsmm));
    out.push_back(ace_fused(CpuGemm::libxsmm));
  }
#ifdef ACE_BENCH_OPENBLAS
  add_cblas<int>(out, "openblas", ACE_BENCH_OPENBLAS, "openblas_set_num_threads");
#endif
#ifdef ACE_BENCH_BLIS
  add_cblas<std::int64_t>(out, "blis", ACE_BENCH_BLIS, "bli_thread_set_num_threads");  // BLIS's dim_t
#endif
#if ACE_BENCH_LIBXSMM
  out.push_back(libxsmm_tiles());
#endif
#if ACE_BENCH_ONEDNN
  out.push_back(onednn_sgemm());
  out.push_back(onednn_matmul());
#endif
  return out;
}

}  // namespace ace::bench
