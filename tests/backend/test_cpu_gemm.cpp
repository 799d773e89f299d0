// SPDX-License-Identifier: MIT
// The Cpu backend's float GEMM on each of its implementations (Eigen's; oneDNN's sgemm in builds with
// ACE_WITH_ONEDNN; ace's own kernels on CPUs with AVX2 and FMA): every transposition, strided views, alpha and beta
// (beta = 0 ignoring NaN), shapes that span several blocks of C, several of ace's panels and inner-dimension chunks,
// and long inner dimensions cut into slabs across threads, against a double-precision product; the same bits with 1 and 2 threads; the switch and its errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "ace/backend/cpu/cpu.hpp"
#include "ace/random.hpp"
#include "support.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

using namespace ace;

namespace {

std::vector<CpuGemm> implementations() {
  std::vector<CpuGemm> all{CpuGemm::eigen};
  if (onednn_available()) all.push_back(CpuGemm::onednn);
  if (simd_kernels_available()) all.push_back(CpuGemm::ace);
  if (libxsmm_available()) all.push_back(CpuGemm::libxsmm);
  return all;
}


/// Restores the process-wide choice and the thread count at the end of a test.
struct Restore {
  CpuGemm gemm = cpu_gemm();
#if defined(_OPENMP)
  int threads = omp_get_max_threads();
  ~Restore() {
    set_cpu_gemm(gemm);
    omp_set_num_threads(threads);
  }
#else
  ~Restore() { set_cpu_gemm(gemm); }
#endif
};

struct Case {
  std::size_t m, n, k;
  Transpose ta, tb;
  float alpha, beta;
};

/// Operands stored with 3 spare columns each (the views are column blocks of wider matrices, stride > cols).
struct Operands {
  std::size_t m, n, k;
  Transpose ta, tb;
  std::vector<float> a, b, c0;
  static constexpr std::size_t pad = 3;
  std::size_t a_rows() const { return ta == Transpose::no ? m : k; }
  std::size_t a_cols() const { return ta == Transpose::no ? k : m; }
  std::size_t b_rows() const { return tb == Transpose::no ? k : n; }
  std::size_t b_cols() const { return tb == Transpose::no ? n : k; }
  Operands(const Case& c, Rng& rng) : m(c.m), n(c.n), k(c.k), ta(c.ta), tb(c.tb) {
    auto fill = [&](std::vector<float>& v, std::size_t size) {
      v.resize(std::max<std::size_t>(size, 4));  // never empty (k = 0): the views' data pointers stay valid
      for (auto& x : v) x = static_cast<float>(rng.normal());
    };
    fill(a, a_rows() * (a_cols() + pad));
    fill(b, b_rows() * (b_cols() + pad));
    fill(c0, m * (n + pad));
  }
  MatrixRef<const float> va() const { return {a.data() + 1, a_rows(), a_cols(), a_cols() + pad}; }
  MatrixRef<const float> vb() const { return {b.data() + 2, b_rows(), b_cols(), b_cols() + pad}; }
  MatrixRef<float> vc(std::vector<float>& c) const { return {c.data() + 1, m, n, n + pad}; }
  double at_a(std::size_t i, std::size_t l) const {
    return ta == Transpose::no ? a[i * (k + pad) + l + 1] : a[l * (m + pad) + i + 1];
  }
  double at_b(std::size_t l, std::size_t j) const {
    return tb == Transpose::no ? b[l * (n + pad) + j + 2] : b[j * (k + pad) + l + 2];
  }
};

/// C = alpha op(A) op(B) + beta C0 on `implementation`, checked entry by entry against the double product (error
/// below 1e-5 of the sum of the magnitudes it adds up) unless `against_double` is false (the tests that compare two
/// runs bit for bit); returns the result, spare columns included.
std::vector<float> checked_gemm(const Case& cs, CpuGemm implementation, std::uint64_t seed,
                                bool against_double = true);

/// checked_gemm with the product computed by product(a, b, c) instead of Cpu::gemm.
template <class Product>
std::vector<float> checked_product(const Case& cs, std::uint64_t seed, bool against_double, Product&& product) {
  Rng rng(seed);
  const Operands x(cs, rng);
  auto c = x.c0;
  if (cs.beta == 0.0f)  // beta = 0 ignores the old contents, even NaN
    for (std::size_t i = 0; i < x.m; ++i)
      for (std::size_t j = 0; j < x.n; ++j)
        c[i * (x.n + Operands::pad) + j + 1] = std::numeric_limits<float>::quiet_NaN();
  product(x.va(), x.vb(), x.vc(c));
  if (!against_double) return c;
  double worst = 0;
  for (std::size_t i = 0; i < x.m; ++i)
    for (std::size_t j = 0; j < x.n; ++j) {
      double sum = 0, scale = 0;
      for (std::size_t l = 0; l < x.k; ++l) {
        sum += x.at_a(i, l) * x.at_b(l, j);
        scale += std::abs(x.at_a(i, l) * x.at_b(l, j));
      }
      const std::size_t at = i * (x.n + Operands::pad) + j + 1;
      const double expected = cs.alpha * sum + (cs.beta == 0.0f ? 0.0 : cs.beta * double(x.c0[at]));
      scale = std::abs(cs.alpha) * scale + std::abs(cs.beta * double(x.c0[at]));
      worst = std::max(worst, std::abs(double(c[at]) - expected) / std::max(scale, 1.0));
    }
  CHECK(worst < 1e-5);
  // the spare columns of C are untouched
  for (std::size_t i = 0; i < x.m; ++i)
    for (std::size_t j : {std::size_t{0}, x.n + 1, x.n + 2}) {
      const std::size_t at = i * (x.n + Operands::pad) + j;
      CHECK(c[at] == x.c0[at]);
    }
  return c;
}

std::vector<float> checked_gemm(const Case& cs, CpuGemm implementation, std::uint64_t seed, bool against_double) {
  return checked_product(cs, seed, against_double, [&](auto a, auto b, auto c) {
    set_cpu_gemm(implementation);
    Cpu::gemm<float>(cs.ta, cs.tb, cs.alpha, a, b, cs.beta, c);
  });
}

const Case gemm_cases[] = {
    {600, 70, 131, Transpose::no, Transpose::no, 1.0f, 0.0f},      // 3 blocks of rows, each with 2 of columns
    {1100, 64, 64, Transpose::no, Transpose::no, 1.25f, 1.0f},     // 5 blocks of rows: whole rows, accumulate
    {131, 64, 900, Transpose::yes, Transpose::no, 1.0f, 0.0f},     // a weight gradient: long inner dimension
    {700, 131, 64, Transpose::no, Transpose::yes, -0.5f, 0.0f},    // an input gradient
    {90, 200, 33, Transpose::yes, Transpose::yes, 2.0f, -0.75f},   // one block of rows, 4 of columns
    {5, 3, 2, Transpose::no, Transpose::no, 1.0f, 0.0f},           // below oneDNN's size threshold: Eigen
    {257, 65, 1, Transpose::no, Transpose::yes, 1.0f, 0.5f},       // k = 1, block edges
    {800, 260, 3, Transpose::no, Transpose::no, 1.0f, 0.0f},       // whole rows wider than ace's column chunk
    {30, 20, 600, Transpose::no, Transpose::no, 1.0f, 1.0f},       // three of ace's inner chunks, accumulate
    {47, 29, 530, Transpose::yes, Transpose::yes, 0.5f, 0.0f},     // A^T and B^T over several inner chunks
    {13, 17, 0, Transpose::no, Transpose::no, 1.0f, 0.5f},         // k = 0: C = beta C
    {11, 23, 0, Transpose::yes, Transpose::no, 1.0f, 0.0f},        // k = 0, beta = 0: zeros over NaN
    {24, 24, 1100, Transpose::yes, Transpose::no, 1.0f, 1.0f},     // a weight gradient cut into 3 inner slabs
    {20, 30, 1100, Transpose::no, Transpose::yes, 0.5f, 0.0f},     // inner slabs, beta = 0 over NaN
    {64, 131, 500, Transpose::yes, Transpose::no, 1.0f, 1.0f},     // a weight gradient accumulated (libxsmm: A^T)
    {150, 100, 300, Transpose::yes, Transpose::no, 1.0f, 0.0f},    // A^T: 64-row tiles and a shorter last one
    {90, 200, 1100, Transpose::yes, Transpose::no, 1.0f, 1.0f},    // 4 column blocks, small: inner slabs instead
};

}  // namespace

TEST_CASE("Cpu gemm: every implementation against the double product", "[backend][gemm]") {
  Restore restore;
  for (const auto implementation : implementations())
    for (std::size_t i = 0; i < std::size(gemm_cases); ++i) {
      INFO("implementation " << cpu_gemm_name(implementation) << ", case " << i);
      checked_gemm(gemm_cases[i], implementation, test::seed(61 + i, "cpu gemm"));
    }
}

// libxsmm's kernels for the weight gradients' Aᵀ products, called directly: Cpu::gemm picks them on CPUs with AVX-512
// only (detail::xsmm_runs_transposed_a), and they must be right wherever they run.
TEST_CASE("Cpu gemm: libxsmm's Aᵀ kernels against the double product", "[backend][gemm]") {
#if defined(ACE_WITH_LIBXSMM)
  CHECK(cpu::detail::xsmm_suits(Transpose::yes, Transpose::no, 1.0f, 0.0f, 64, 500) ==
        cpu::detail::avx512_available());
  CHECK(cpu::detail::xsmm_suits(Transpose::no, Transpose::no, 1.0f, 0.0f, 64, 500));
  for (const Case cs : {Case{64, 131, 500, Transpose::yes, Transpose::no, 1.0f, 1.0f},    // accumulated
                        Case{150, 100, 300, Transpose::yes, Transpose::no, 1.0f, 0.0f},   // 64-row tiles, a short one
                        Case{40, 256, 2048, Transpose::yes, Transpose::no, 1.0f, 0.0f}})  // the largest it takes
  {
    INFO(cs.m << " x " << cs.n << " x " << cs.k << ", beta " << cs.beta);
    checked_product(cs, test::seed(cs.m, "cpu gemm libxsmm at"), true, [&](auto a, auto b, auto c) {
      CHECK(cpu::detail::xsmm_sgemm(cs.ta, a, b, cs.beta, c));
    });
  }
#else
  SUCCEED("a build without libxsmm");
#endif
}

TEST_CASE("Cpu gemm: the same bits with 1 and 2 threads", "[backend][gemm]") {
#if defined(_OPENMP)
  Restore restore;
  for (const auto implementation : implementations())
    for (std::size_t i = 0; i < std::size(gemm_cases); ++i) {
      INFO("implementation " << cpu_gemm_name(implementation) << ", case " << i);
      omp_set_num_threads(1);
      const auto one = checked_gemm(gemm_cases[i], implementation, test::seed(71 + i, "cpu gemm threads"), false);
      omp_set_num_threads(2);
      const auto two = checked_gemm(gemm_cases[i], implementation, test::seed(71 + i, "cpu gemm threads"), false);
      CHECK(one == two);
      CHECK(omp_get_max_threads() == 2);  // the one-thread setting inside the blocks does not leak to the caller
    }
#else
  SUCCEED("a build without OpenMP runs on one thread");
#endif
}

TEST_CASE("Cpu gemm: ace's AVX2 and AVX-512 tiles give the same bits", "[backend][gemm]") {
#if ACE_HAS_X86_KERNELS
  if (!simd_kernels_available() || !cpu::detail::avx512_available()) {
    SUCCEED("this CPU has one of the two instruction sets only");
    return;
  }
  Restore restore;
  for (std::size_t i = 0; i < std::size(gemm_cases); ++i) {
    INFO("case " << i);
    const auto wide = checked_gemm(gemm_cases[i], CpuGemm::ace, test::seed(81 + i, "cpu gemm isa"), false);
    cpu::detail::gemm_avx512_switch().store(false);
    const auto narrow = checked_gemm(gemm_cases[i], CpuGemm::ace, test::seed(81 + i, "cpu gemm isa"), false);
    cpu::detail::gemm_avx512_switch().store(true);
    CHECK(wide == narrow);
  }
#else
  SUCCEED("not an x86-64 build with GCC or clang");
#endif
}

// The right-hand matrix packed once (layer weights used by many products): the same bits as packing it per product,
// for both instruction sets' panels, over several column and inner chunks, with beta 0 (over NaN), 1 and other.
TEST_CASE("Cpu gemm: ace's kernels on a packed B give the same bits as ace_sgemm", "[backend][gemm]") {
#if ACE_HAS_X86_KERNELS
  if (!simd_kernels_available()) {
    SUCCEED("this CPU has no AVX2 and FMA");
    return;
  }
  Rng rng(test::seed(91, "cpu gemm packed"));
  for (const bool wide : {true, false}) {
    cpu::detail::gemm_avx512_switch().store(wide);
    for (const Case cs : {Case{37, 64, 64, Transpose::no, Transpose::no, 1.0f, 0.0f},
                          Case{25, 300, 530, Transpose::no, Transpose::no, 1.0f, 1.0f},
                          Case{12, 17, 5, Transpose::no, Transpose::yes, 1.0f, -0.5f},
                          Case{7, 270, 260, Transpose::no, Transpose::yes, 1.0f, 0.0f}}) {
      INFO("AVX-512 panels " << wide << ", " << cs.m << " x " << cs.n << " x " << cs.k);
      const Operands x(cs, rng);
      auto c = x.c0, expected = x.c0;
      if (cs.beta == 0.0f)
        for (float& v : c) v = std::numeric_limits<float>::quiet_NaN();
      cpu::detail::PackedGemmB packed;
      cpu::detail::ace_pack_gemm_b(cs.tb, x.vb(), packed);
      CHECK(packed.avx512 == (wide && cpu::detail::avx512_available()));
      cpu::detail::ace_sgemm(cs.ta, cs.tb, 1.0f, x.va(), x.vb(), cs.beta, x.vc(expected));
      cpu::detail::ace_sgemm_packed(x.va(), packed, cs.beta, x.vc(c));
      for (std::size_t i = 0; i < x.m; ++i)
        for (std::size_t j = 0; j < x.n; ++j) CHECK(c[i * (x.n + Operands::pad) + j + 1] ==
                                                    expected[i * (x.n + Operands::pad) + j + 1]);
      const Operands wrong({cs.m, cs.n, cs.k + 1, cs.ta, cs.tb, 1.0f, 0.0f}, rng);
      CHECK_THROWS_AS(cpu::detail::ace_sgemm_packed(wrong.va(), packed, 0.0f, x.vc(c)), shape_error);
    }
  }
  cpu::detail::gemm_avx512_switch().store(true);
#else
  SUCCEED("not an x86-64 build with GCC or clang");
#endif
}

TEST_CASE("Cpu gemm: the implementation switch and its errors", "[backend][gemm]") {
  Restore restore;
  set_cpu_gemm(CpuGemm::eigen);
  CHECK(cpu_gemm() == CpuGemm::eigen);
  if (onednn_available()) {
    set_cpu_gemm(CpuGemm::onednn);
    CHECK(cpu_gemm() == CpuGemm::onednn);
  } else {
    CHECK_THROWS_AS(set_cpu_gemm(CpuGemm::onednn), unsupported);
  }
  if (simd_kernels_available()) {
    set_cpu_gemm(CpuGemm::ace);
    CHECK(cpu_gemm() == CpuGemm::ace);
  } else {
    CHECK_THROWS_AS(set_cpu_gemm(CpuGemm::ace), unsupported);
  }
  if (libxsmm_available()) {
    set_cpu_gemm(CpuGemm::libxsmm);
    CHECK(cpu_gemm() == CpuGemm::libxsmm);
  } else {
    CHECK_THROWS_AS(set_cpu_gemm(CpuGemm::libxsmm), unsupported);
  }
  // the start-up choice from the environment
  const char* before = std::getenv("ACE_CPU_GEMM");
  const std::string saved = before ? before : "";
  setenv("ACE_CPU_GEMM", "eigen", 1);
  CHECK(detail::initial_cpu_gemm() == CpuGemm::eigen);
  setenv("ACE_CPU_GEMM", "mkl", 1);
  CHECK_THROWS_AS(detail::initial_cpu_gemm(), invalid_argument);
  setenv("ACE_CPU_GEMM", "ace", 1);
  if (simd_kernels_available()) CHECK(detail::initial_cpu_gemm() == CpuGemm::ace);
  else CHECK_THROWS_AS(detail::initial_cpu_gemm(), unsupported);
  setenv("ACE_CPU_GEMM", "onednn", 1);
  if (onednn_available()) CHECK(detail::initial_cpu_gemm() == CpuGemm::onednn);
  else CHECK_THROWS_AS(detail::initial_cpu_gemm(), unsupported);
  setenv("ACE_CPU_GEMM", "libxsmm", 1);
  if (libxsmm_available()) CHECK(detail::initial_cpu_gemm() == CpuGemm::libxsmm);
  else CHECK_THROWS_AS(detail::initial_cpu_gemm(), unsupported);
  unsetenv("ACE_CPU_GEMM");
  CHECK(detail::initial_cpu_gemm() == (libxsmm_available()  ? CpuGemm::libxsmm
                                       : onednn_available() ? CpuGemm::onednn
                                                            : CpuGemm::eigen));
  if (before) setenv("ACE_CPU_GEMM", saved.c_str(), 1);
}
