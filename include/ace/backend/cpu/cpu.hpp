// SPDX-License-Identifier: MIT
// The Cpu backend: xtensor storage in host memory, oneDNN's or Eigen's GEMM, ace's AVX2/FMA convolution kernels,
// OpenMP across batches. Every operation the CPU can do better than the plain loop is its own here; the others are the
// Reference backend's loops (ReferenceOps), run on blocks of rows in parallel where the rows are independent.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

#include "ace/backend/checks.hpp"
#include "ace/backend/concept.hpp"
#include "ace/backend/cpu/conv_kernel.hpp"
#include "ace/backend/cpu/dense.hpp"
#include "ace/backend/cpu/elementwise.hpp"
#include "ace/backend/cpu/graph.hpp"
#include "ace/backend/cpu/parallel.hpp"
#include "ace/backend/cpu/update.hpp"
#include "ace/backend/dense_fused.hpp"
#include "ace/backend/reference/reference.hpp"
#include "ace/error.hpp"
#include "ace/tensor/eigen.hpp"
#include "ace/tensor/tensor.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace ace {

/// Host memory (xtensor), oneDNN's or Eigen's GEMM with fused bias and activation epilogues (cpu/dense.hpp), direct
/// AVX2/FMA convolutions chosen at run time, OpenMP across samples, graphs, row blocks and chunks of entries with
/// results that do not depend on the thread count.
/// Shapes are checked; operations never allocate after the first call of a shape.
struct Cpu : ReferenceOps<Cpu> {
  static constexpr const char* name = "Cpu";
  template <class T, std::size_t N>
  using tensor = Tensor<T, N>;
  template <class T>
  using convolution = cpu::ConvKernel<T>;

 private:
  using Base = ReferenceOps<Cpu>;

  // Runs a row-independent Reference loop on blocks of rows in parallel: op(views restricted to the block).
  template <class F>
  static void rows_parallel(std::size_t rows, std::size_t cost, F&& op) {
    cpu::for_row_blocks(rows, 1, cost, op);
  }

  // f(offset of each view's first entry, count) over the entries of views of one shape: one flat run when every view
  // is contiguous (Eigen then vectorises the whole array linearly), one run per row otherwise.
  template <class F, class... V>
  static void flat_runs(std::size_t rows, std::size_t cols, F&& f, const V&... views) {
    if ((views.contiguous() && ...)) return f(std::array<std::size_t, sizeof...(V)>{}, rows * cols);
    for (std::size_t r = 0; r < rows; ++r) f(std::array<std::size_t, sizeof...(V)>{(r * views.stride)...}, cols);
  }
  // flat_runs for elementwise f (each entry written from the same entries of the views alone), in parallel where the
  // work (entries x `cost`) pays for the fork: contiguous views in chunks of cpu::elementwise_chunk entries, others
  // row by row; either way each run is the same call whatever the thread count, so the bits do not depend on it.
  template <class F, class... V>
  static void parallel_runs(std::size_t rows, std::size_t cols, std::size_t cost, F&& f, const V&... views) {
    if ((views.contiguous() && ...))
      return cpu::for_chunks(1, [&](std::size_t) { return rows * cols; }, cpu::elementwise_chunk, cost,
                             [&](std::size_t, std::size_t first, std::size_t n) {
                               f(std::array<std::size_t, sizeof...(V)>{((void)views, first)...}, n);
                             });
    cpu::for_row_blocks(rows, 1, cols * cost, [&](std::size_t first, std::size_t count) {
      for (std::size_t r = first; r < first + count; ++r)
        f(std::array<std::size_t, sizeof...(V)>{(r * views.stride)...}, cols);
    });
  }
  // f(path row, i, j, k, coefficient) for every Clebsch-Gordan entry of every path of a tensor product's table.
  template <class T, class F>
  static void for_each_entry(Index paths, Index entries, const T* values, F&& f) {
    for (std::size_t p = 0; p < paths.rows; ++p) {
      const std::uint32_t* q = paths.data + p * paths.stride;
      for (std::uint32_t e = q[TensorProductColumns::entry_begin]; e < q[TensorProductColumns::entry_end]; ++e) {
        const std::uint32_t packed = entries.data[e];
        f(q, TensorProductColumns::i_of(packed), TensorProductColumns::j_of(packed), TensorProductColumns::k_of(packed),
          values[e]);
      }
    }
  }
  template <class T>
  using FlatArray = Eigen::Map<Eigen::Array<std::remove_const_t<T>, Eigen::Dynamic, 1>>;
  template <class T>
  using ConstFlatArray = Eigen::Map<const Eigen::Array<std::remove_const_t<T>, Eigen::Dynamic, 1>>;
  template <class T>
  static auto array(MatrixRef<T> v, std::size_t offset, std::size_t n) {
    if constexpr (std::is_const_v<T>) return ConstFlatArray<T>(v.data + offset, static_cast<Eigen::Index>(n));
    else return FlatArray<T>(v.data + offset, static_cast<Eigen::Index>(n));
  }

 public:
  // ---- storage ----------------------------------------------------------------------------------------------------

  template <class T>
  static void to_host(In<T> src, std::span<T> dst) {
    detail::check::host_size(name, "to_host", src, dst);
    if (src.contiguous()) {
      if (!dst.empty()) std::memcpy(dst.data(), src.data, dst.size() * sizeof(T));
      return;
    }
    for (std::size_t r = 0; r < src.rows; ++r) std::copy_n(src.data + r * src.stride, src.cols, dst.data() + r * src.cols);
  }
  template <class T>
  static void from_host(std::span<const T> src, MatrixRef<T> dst) {
    detail::check::host_size(name, "from_host", dst, src);
    if (dst.contiguous()) {
      if (!src.empty()) std::memcpy(dst.data, src.data(), src.size() * sizeof(T));
      return;
    }
    for (std::size_t r = 0; r < dst.rows; ++r) std::copy_n(src.data() + r * dst.cols, dst.cols, dst.data + r * dst.stride);
  }
  template <class T>
  static void fill(MatrixRef<T> x, Scalar<T> value) {
    if (x.contiguous()) std::fill_n(x.data, x.size(), value);
    else
      for (std::size_t r = 0; r < x.rows; ++r) std::fill_n(x.data + r * x.stride, x.cols, value);
  }
  template <class T>
  static void copy(In<T> src, MatrixRef<T> dst) {
    detail::check::same_shape(name, "copy", src, dst);
    if (src.contiguous() && dst.contiguous()) std::copy_n(src.data, src.size(), dst.data);
    else
      for (std::size_t r = 0; r < src.rows; ++r) std::copy_n(src.data + r * src.stride, src.cols, dst.data + r * dst.stride);
  }
  template <class T>
  static void add(In<T> a, In<T> b, MatrixRef<T> c) {
    detail::check::same_shape(name, "add", a, b);
    detail::check::same_shape(name, "add", a, c);
    parallel_runs(a.rows, a.cols, 1, [&](auto o, std::size_t n) {
      array(c, o[2], n) = array(a, o[0], n) + array(b, o[1], n);
    }, a, b, c);
  }
  /// Σ x² in double, in eight independent lanes (vectorised, not bound by the latency of one serial sum).
  template <class U>
  static double sum_squares(MatrixRef<U> x) {
    constexpr std::size_t lanes = 8;
    double total = 0.0;
    for (std::size_t r = 0; r < x.rows; ++r) {
      double acc[lanes] = {};
      const U* g = x.data + r * x.stride;
      const std::size_t n = x.cols, full = n - n % lanes;
      for (std::size_t i = 0; i < full; i += lanes)
        for (std::size_t k = 0; k < lanes; ++k) acc[k] += static_cast<double>(g[i + k]) * static_cast<double>(g[i + k]);
      for (std::size_t i = full; i < n; ++i) acc[i - full] += static_cast<double>(g[i]) * static_cast<double>(g[i]);
      for (double a : acc) total += a;
    }
    return total;
  }
  template <class T>
  static void add_scaled(In<T> s, In<T> x, MatrixRef<T> y) {
    detail::check::scalar(name, "add_scaled", s);
    detail::check::same_shape(name, "add_scaled", x, y);
    const T scale = s.data[0];
    flat_runs(x.rows, x.cols, [&](auto o, std::size_t n) { array(y, o[1], n) += scale * array(x, o[0], n); }, x, y);
  }
  template <class T>
  static void scaled_copy(In<T> s, In<T> x, MatrixRef<T> y) {
    detail::check::scalar(name, "scaled_copy", s);
    detail::check::same_shape(name, "scaled_copy", x, y);
    const T scale = s.data[0];
    flat_runs(x.rows, x.cols, [&](auto o, std::size_t n) { array(y, o[1], n) = scale * array(x, o[0], n); }, x, y);
  }
  template <class T>
  static void accumulate_dot(In<T> x, In<T> y, MatrixRef<T> out) {
    detail::check::scalar(name, "accumulate_dot", out);
    detail::check::same_shape(name, "accumulate_dot", x, y);
    T sum = T(0);
    flat_runs(x.rows, x.cols, [&](auto o, std::size_t n) { sum += (array(x, o[0], n) * array(y, o[1], n)).sum(); }, x, y);
    out.data[0] += sum;
  }

  // ---- dense layers -----------------------------------------------------------------------------------------------

  template <class T>
  static void gemm(Transpose ta, Transpose tb, Scalar<T> alpha, In<T> a, In<T> b, Scalar<T> beta, MatrixRef<T> c) {
    cpu::gemm<T>(ta, tb, alpha, a, b, beta, c);
  }
  /// The fused dense operations (FusedDenseBackend, backend/dense_fused.hpp): the bias and the activation (or the
  /// activation's derivative) applied to each block of the GEMM's output by the thread that computed it, while the
  /// block is in its cache. The blocks are fixed by the shape: the same bits for any thread count.
  template <class Op, class T>
  static void gemm_bias_act(Transpose ta, Transpose tb, Scalar<T> alpha, In<T> a, In<T> b, Scalar<T> beta, In<T> bias,
                            MatrixRef<T> z, MatrixRef<T> y) {
    constexpr bool act = !std::is_same_v<Op, NoActivation>;
    if (!bias.empty()) detail::check::row_vector(name, "gemm_bias_act", bias, z.cols);
    if constexpr (act) detail::check::same_shape(name, "gemm_bias_act", MatrixRef<const T>(z), y);
    cpu::gemm<T>(ta, tb, alpha, a, b, beta, z, [&](std::size_t i, std::size_t j, MatrixRef<T> block) {
      if (!bias.empty())
        for (std::size_t r = 0; r < block.rows; ++r) {
          T* zr = block.data + r * block.stride;
          for (std::size_t c = 0; c < block.cols; ++c) zr[c] += bias.data[j + c];
        }
      if constexpr (act) {
        const auto yb = y.row_range(i, block.rows).columns(j, block.cols);
        if (block.contiguous() && yb.contiguous()) return cpu::activate<Op>(block.data, yb.data, block.size());
        for (std::size_t r = 0; r < block.rows; ++r)
          cpu::activate<Op>(block.data + r * block.stride, yb.data + r * yb.stride, block.cols);
      }
    });
  }
  template <class Op, class T>
  static void gemm_act_grad(Transpose ta, Transpose tb, Scalar<T> alpha, In<T> a, In<T> b, Scalar<T> beta, In<T> x,
                            In<T> y, MatrixRef<T> d) {
    detail::check::same_shape(name, "gemm_act_grad", x, MatrixRef<const T>(d));
    detail::check::same_shape(name, "gemm_act_grad", y, MatrixRef<const T>(d));
    cpu::gemm<T>(ta, tb, alpha, a, b, beta, d, [&](std::size_t i, std::size_t j, MatrixRef<T> block) {
      const auto xb = x.row_range(i, block.rows).columns(j, block.cols);
      const auto yb = y.row_range(i, block.rows).columns(j, block.cols);
      if (block.contiguous() && xb.contiguous() && yb.contiguous())
        return cpu::activate_backward<Op>(xb.data, yb.data, block.data, block.data, block.size());
      for (std::size_t r = 0; r < block.rows; ++r) {
        T* dr = block.data + r * block.stride;
        cpu::activate_backward<Op>(xb.data + r * xb.stride, yb.data + r * yb.stride, dr, dr, block.cols);
      }
    });
  }
  template <class T>
  static void add_row(MatrixRef<T> c, In<T> v) {
    detail::check::row_vector(name, "add_row", v, c.cols);
    rows_parallel(c.rows, c.cols, [&](std::size_t r, std::size_t k) {
      as_matrix(c.row_range(r, k)).rowwise() += as_matrix(v).row(0);
    });
  }
  /// v = beta v + Σ_i a[i, :] (a bias gradient): rows added in order within blocks of cpu::sum_rows_block rows, the
  /// blocks' partial sums (in parallel where there are several) then added in block order: the blocks depend on the
  /// shape alone, so the result does not depend on the thread count.
  template <class T>
  static void sum_rows(In<T> a, Scalar<T> beta, MatrixRef<T> v) {
    detail::check::row_vector(name, "sum_rows", v, a.cols);
    cpu::sum_rows<T>(a, beta, v.data);
  }

  // ---- elementwise activations (cpu/elementwise.hpp): SiLU vectorised, the others by their scalar formulas -------

  static constexpr std::size_t activation_cost = 8;  // a vectorised tanh: about as costly as 8 plain entries

  /// y = Op(x) (cpu::activate: SiLU vectorised), on chunks of rows in parallel.
  template <class Op, class T>
  static void map(In<T> x, MatrixRef<T> y) {
    detail::check::same_shape(name, "map", x, y);
    parallel_runs(x.rows, x.cols, activation_cost, [&](auto o, std::size_t n) {
      cpu::activate<Op>(x.data + o[0], y.data + o[1], n);
    }, x, y);
  }
  /// dx = Op'(x, y) dy (cpu::activate_backward), on chunks of rows in parallel.
  template <class Op, class T>
  static void map_backward(In<T> x, In<T> y, In<T> dy, MatrixRef<T> dx) {
    detail::check::same_shape(name, "map_backward", x, y);
    detail::check::same_shape(name, "map_backward", x, dy);
    detail::check::same_shape(name, "map_backward", x, dx);
    parallel_runs(x.rows, x.cols, activation_cost, [&](auto o, std::size_t n) {
      cpu::activate_backward<Op>(x.data + o[0], y.data + o[1], dy.data + o[2], dx.data + o[3], n);
    }, x, y, dy, dx);
  }

  // ---- segment reductions: OpenMP across segments -----------------------------------------------------------------

  template <class T>
  static void segment_reduce(Reduce kind, In<T> x, std::size_t segment, MatrixRef<T> y,
                             MatrixRef<std::uint32_t> argmax = {}) {
    detail::check::segments(name, "segment_reduce", x, segment, y);
    if (kind == Reduce::max) detail::check::same_shape(name, "segment_reduce (argmax)", argmax, y);
    const T scale = kind == Reduce::mean ? T(1) / static_cast<T>(segment) : T(1);
    ACE_OMP_FOR(x.rows * x.cols > (std::size_t{1} << 16))
    for (std::size_t b = 0; b < y.rows; ++b) {
      T* out = y.data + b * y.stride;
      const T* first = x.data + b * segment * x.stride;
      std::copy(first, first + x.cols, out);
      if (kind == Reduce::max) {
        std::uint32_t* arg = argmax.data + b * argmax.stride;
        std::fill(arg, arg + y.cols, 0u);
        for (std::size_t i = 1; i < segment; ++i) {
          const T* row = first + i * x.stride;
          for (std::size_t j = 0; j < x.cols; ++j)
            if (row[j] > out[j]) {
              out[j] = row[j];
              arg[j] = static_cast<std::uint32_t>(i);
            }
        }
      } else {
        for (std::size_t i = 1; i < segment; ++i) {
          const T* row = first + i * x.stride;
          for (std::size_t j = 0; j < x.cols; ++j) out[j] += row[j];
        }
        if (scale != T(1))
          for (std::size_t j = 0; j < x.cols; ++j) out[j] *= scale;
      }
    }
  }
  template <class T>
  static void segment_reduce_backward(Reduce kind, In<T> dy, std::size_t segment, Index argmax, MatrixRef<T> dx) {
    detail::check::segments(name, "segment_reduce_backward", dx, segment, dy);
    if (kind == Reduce::max) detail::check::same_shape(name, "segment_reduce_backward (argmax)", argmax, dy);
    const T scale = kind == Reduce::mean ? T(1) / static_cast<T>(segment) : T(1);
    ACE_OMP_FOR(dx.rows * dx.cols > (std::size_t{1} << 16))
    for (std::size_t b = 0; b < dy.rows; ++b) {
      const T* g = dy.data + b * dy.stride;
      T* first = dx.data + b * segment * dx.stride;
      if (kind == Reduce::max) {
        const std::uint32_t* arg = argmax.data + b * argmax.stride;
        for (std::size_t j = 0; j < dy.cols; ++j) first[arg[j] * dx.stride + j] += g[j];
      } else {
        for (std::size_t i = 0; i < segment; ++i) {
          T* row = first + i * dx.stride;
          for (std::size_t j = 0; j < dy.cols; ++j) row[j] += scale * g[j];
        }
      }
    }
  }

  // ---- row-independent loops of Reference, on row blocks in parallel ----------------------------------------------

  template <class T>
  static void pair_transpose(In<T> x, std::size_t n, MatrixRef<T> y, bool accumulate) {
    detail::check::same_shape(name, "pair_transpose", x, y);
    rows_parallel(x.rows, x.cols, [&](std::size_t r, std::size_t k) {
      Base::pair_transpose<T>(x.row_range(r, k), n, y.row_range(r, k), accumulate);
    });
  }
  template <class T>
  static void pair_pool(In<T> x, std::size_t n, bool mean, MatrixRef<T> v, MatrixRef<T> s) {
    detail::check::pairs(name, "pair_pool", x, n);
    detail::check::shape(name, "pair_pool", v, x.rows * n, v.cols, "v");
    rows_parallel(x.rows, x.cols, [&](std::size_t r, std::size_t k) {
      Base::pair_pool<T>(x.row_range(r, k), n, mean, v.row_range(r * n, k * n), s.row_range(r, k));
    });
  }
  template <class T>
  static void pair_broadcast(In<T> u, In<T> q, std::size_t n, Scalar<T> ka, Scalar<T> kb, Scalar<T> kc,
                             MatrixRef<T> y) {
    detail::check::shape(name, "pair_broadcast", u, y.rows * n, u.cols, "u");
    detail::check::shape(name, "pair_broadcast", q, y.rows, q.cols, "q");
    rows_parallel(y.rows, y.cols, [&](std::size_t r, std::size_t k) {
      Base::pair_broadcast<T>(u.row_range(r * n, k * n), q.row_range(r, k), n, ka, kb, kc, y.row_range(r, k));
    });
  }
  template <class Op, class T>
  static void norm_nonlinearity(In<T> x, Index offsets, In<T> bias, Scalar<T> eps, MatrixRef<T> norm,
                                MatrixRef<T> y) {
    detail::check::shape(name, "norm_nonlinearity", norm, x.rows, norm.cols, "norm");
    detail::check::same_shape(name, "norm_nonlinearity", x, y);
    rows_parallel(x.rows, x.cols, [&](std::size_t r, std::size_t k) {
      Base::template norm_nonlinearity<Op, T>(x.row_range(r, k), offsets, bias, eps, norm.row_range(r, k),
                                              y.row_range(r, k));
    });
  }
  template <class Op, class T>
  static void norm_nonlinearity_backward(In<T> x, Index offsets, In<T> bias, In<T> norm, In<T> dy, MatrixRef<T> dx,
                                         MatrixRef<T> dbias) {
    detail::check::same_shape(name, "norm_nonlinearity_backward", x, dy);
    detail::check::same_shape(name, "norm_nonlinearity_backward", x, dx);
    detail::check::shape(name, "norm_nonlinearity_backward", dbias, x.rows, dbias.cols, "dbias");
    detail::check::shape(name, "norm_nonlinearity_backward", norm, x.rows, norm.cols, "norm");
    rows_parallel(x.rows, x.cols, [&](std::size_t r, std::size_t k) {
      Base::template norm_nonlinearity_backward<Op, T>(x.row_range(r, k), offsets, bias, norm.row_range(r, k),
                                                       dy.row_range(r, k), dx.row_range(r, k), dbias.row_range(r, k));
    });
  }
  template <class T>
  static void gate_fields(In<T> x, Index offsets, MatrixRef<T> gate, MatrixRef<T> y) {
    detail::check::shape(name, "gate_fields", gate, x.rows, gate.cols, "gate");
    detail::check::shape(name, "gate_fields", y, x.rows, y.cols, "y");
    rows_parallel(x.rows, x.cols, [&](std::size_t r, std::size_t k) {
      Base::gate_fields<T>(x.row_range(r, k), offsets, gate.row_range(r, k), y.row_range(r, k));
    });
  }
  template <class T>
  static void gate_fields_backward(In<T> x, Index offsets, In<T> gate, In<T> dy, MatrixRef<T> dx) {
    detail::check::same_shape(name, "gate_fields_backward", x, dx);
    detail::check::shape(name, "gate_fields_backward", gate, x.rows, gate.cols, "gate");
    detail::check::shape(name, "gate_fields_backward", dy, x.rows, dy.cols, "dy");
    rows_parallel(x.rows, x.cols, [&](std::size_t r, std::size_t k) {
      Base::gate_fields_backward<T>(x.row_range(r, k), offsets, gate.row_range(r, k), dy.row_range(r, k),
                                    dx.row_range(r, k));
    });
  }
  /// The contraction row by row, the copies of x1 innermost: with one copy of each attribute (m2 = 1, e.g. spherical
  /// harmonics) every Clebsch-Gordan entry is a contiguous axpy of length m1 in the component-major layout.
  template <class T>
  static void tensor_product_contract(Index paths, Index entries, In<T> values, In<T> x1, In<T> x2, MatrixRef<T> z) {
    detail::check::tensor_product<T>(name, "tensor_product_contract", paths, entries, values, x1, x2, z);
    rows_parallel(z.rows, 4 * z.cols, [&](std::size_t r0, std::size_t k0) {
      for (std::size_t r = r0; r < r0 + k0; ++r) {
        T* zr = z.data + r * z.stride;
        const T* a = x1.data + r * x1.stride;
        const T* b = x2.data + r * x2.stride;
        std::fill_n(zr, z.cols, T(0));
        for_each_entry(paths, entries, values.data, [&](const std::uint32_t* q, std::size_t i, std::size_t j, std::size_t k,
                                                   T c) {
          using C = TensorProductColumns;
          const std::size_t m1 = q[C::mul1], m2 = q[C::mul2];
          T* __restrict zk = zr + q[C::zoff] + k * q[C::zstride] + q[C::kbase];
          const T* __restrict ai = a + q[C::off1] + i * m1;
          const T* bj = b + q[C::off2] + j * m2;
          if (m2 == 1) {
            const T s = c * bj[0];
            for (std::size_t u = 0; u < m1; ++u) zk[u] += s * ai[u];
          } else {
            for (std::size_t u = 0; u < m1; ++u)
              for (std::size_t v = 0; v < m2; ++v) zk[u * m2 + v] += c * ai[u] * bj[v];
          }
        });
      }
    });
  }
  template <class T>
  static void tensor_product_contract_backward(Index paths, Index entries, In<T> values, In<T> x1, In<T> x2,
                                               In<T> dz, MatrixRef<T> dx1, MatrixRef<T> dx2) {
    detail::check::tensor_product<T>(name, "tensor_product_contract_backward", paths, entries, values, x1, x2, dz);
    detail::check::same_shape(name, "tensor_product_contract_backward", x1, dx1);
    const bool second = dx2.cols != 0;
    if (second) detail::check::same_shape(name, "tensor_product_contract_backward", x2, dx2);
    rows_parallel(dz.rows, 8 * dz.cols, [&](std::size_t r0, std::size_t k0) {
      for (std::size_t r = r0; r < r0 + k0; ++r) {
        const T* g = dz.data + r * dz.stride;
        const T* a = x1.data + r * x1.stride;
        const T* b = x2.data + r * x2.stride;
        T* da = dx1.data + r * dx1.stride;
        T* db = second ? dx2.data + r * dx2.stride : nullptr;
        std::fill_n(da, dx1.cols, T(0));
        if (second) std::fill_n(db, dx2.cols, T(0));
        for_each_entry(paths, entries, values.data, [&](const std::uint32_t* q, std::size_t i, std::size_t j, std::size_t k,
                                                   T c) {
          using C = TensorProductColumns;
          const std::size_t m1 = q[C::mul1], m2 = q[C::mul2];
          const T* __restrict gk = g + q[C::zoff] + k * q[C::zstride] + q[C::kbase];
          const T* __restrict ai = a + q[C::off1] + i * m1;
          T* __restrict dai = da + q[C::off1] + i * m1;
          const T* bj = b + q[C::off2] + j * m2;
          if (m2 == 1) {
            const T s = c * bj[0];
            T dot = T(0);
            for (std::size_t u = 0; u < m1; ++u) {
              dai[u] += s * gk[u];
              dot += ai[u] * gk[u];
            }
            if (second) db[q[C::off2] + j] += c * dot;
          } else {
            for (std::size_t u = 0; u < m1; ++u)
              for (std::size_t v = 0; v < m2; ++v) {
                dai[u] += c * bj[v] * gk[u * m2 + v];
                if (second) db[q[C::off2] + j * m2 + v] += c * ai[u] * gk[u * m2 + v];
              }
          }
        });
      }
    });
  }
  template <class T>
  static void swish_gate(In<T> x, std::size_t scalars, Index gated, MatrixRef<T> y) {
    detail::check::swish_gate<T>(name, "swish_gate", x, scalars, y);
    rows_parallel(x.rows, 8 * x.cols, [&](std::size_t r, std::size_t k) {
      Base::swish_gate<T>(x.row_range(r, k), scalars, gated, y.row_range(r, k));
    });
  }
  template <class T>
  static void swish_gate_backward(In<T> x, std::size_t scalars, Index gated, In<T> dy, MatrixRef<T> dx) {
    detail::check::swish_gate<T>(name, "swish_gate_backward", x, scalars, dy);
    detail::check::same_shape(name, "swish_gate_backward", x, dx);
    rows_parallel(x.rows, 8 * x.cols, [&](std::size_t r, std::size_t k) {
      Base::swish_gate_backward<T>(x.row_range(r, k), scalars, gated, dy.row_range(r, k), dx.row_range(r, k));
    });
  }
  template <class T>
  static void pool2d_forward(const PoolGeometry& g, Reduce kind, In<T> x, MatrixRef<T> y,
                             MatrixRef<std::uint32_t> argmax = {}) {
    detail::check::shape(name, "pool2d_forward", y, x.rows, y.cols, "y");
    if (kind == Reduce::max) detail::check::same_shape(name, "pool2d_forward (argmax)", argmax, y);
    rows_parallel(x.rows, x.cols, [&](std::size_t r, std::size_t k) {
      Base::pool2d_forward<T>(g, kind, x.row_range(r, k), y.row_range(r, k),
                              kind == Reduce::max ? argmax.row_range(r, k) : MatrixRef<std::uint32_t>{});
    });
  }
  template <class T>
  static void pool2d_backward(const PoolGeometry& g, Reduce kind, In<T> dy, Index argmax, MatrixRef<T> dx) {
    detail::check::shape(name, "pool2d_backward", dx, dy.rows, dx.cols, "dx");
    if (kind == Reduce::max) detail::check::same_shape(name, "pool2d_backward (argmax)", argmax, dy);
    rows_parallel(dy.rows, dx.cols, [&](std::size_t r, std::size_t k) {
      Base::pool2d_backward<T>(g, kind, dy.row_range(r, k), kind == Reduce::max ? argmax.row_range(r, k) : Index{},
                               dx.row_range(r, k));
    });
  }

  // Vector Neurons: blocks of points (3 rows of x per row of n).
  template <class T>
  static void vector_norms(In<T> x, Scalar<T> eps, MatrixRef<T> n) {
    detail::check::vectors(name, "vector_norms", x);
    detail::check::shape(name, "vector_norms", n, x.rows / 3, x.cols, "n");
    rows_parallel(n.rows, 3 * x.cols, [&](std::size_t p, std::size_t k) {
      Base::vector_norms<T>(x.row_range(3 * p, 3 * k), eps, n.row_range(p, k));
    });
  }
  template <class T>
  static void vector_rescale(In<T> x, In<T> n, In<T> m, MatrixRef<T> y) {
    check_points("vector_rescale", x, n);
    rows_parallel(n.rows, 3 * x.cols, [&](std::size_t p, std::size_t k) {
      Base::vector_rescale<T>(x.row_range(3 * p, 3 * k), n.row_range(p, k), m.row_range(p, k),
                              y.row_range(3 * p, 3 * k));
    });
  }
  template <class T>
  static void vector_rescale_backward(In<T> x, In<T> n, In<T> m, In<T> dy, MatrixRef<T> dm, MatrixRef<T> dn) {
    check_points("vector_rescale_backward", x, n);
    rows_parallel(n.rows, 3 * x.cols, [&](std::size_t p, std::size_t k) {
      Base::vector_rescale_backward<T>(x.row_range(3 * p, 3 * k), n.row_range(p, k), m.row_range(p, k),
                                       dy.row_range(3 * p, 3 * k), dm.row_range(p, k), dn.row_range(p, k));
    });
  }
  template <class T>
  static void vector_rescale_input_grad(In<T> x, In<T> n, In<T> m, In<T> dy, In<T> dn, Scalar<T> eps,
                                        MatrixRef<T> dx) {
    check_points("vector_rescale_input_grad", x, n);
    rows_parallel(n.rows, 3 * x.cols, [&](std::size_t p, std::size_t k) {
      Base::vector_rescale_input_grad<T>(x.row_range(3 * p, 3 * k), n.row_range(p, k), m.row_range(p, k),
                                         dy.row_range(3 * p, 3 * k), dn.row_range(p, k), eps,
                                         dx.row_range(3 * p, 3 * k));
    });
  }
  template <class T>
  static void vn_leaky_relu(In<T> x, In<T> d, Scalar<T> slope, Scalar<T> eps, MatrixRef<T> y) {
    detail::check::vectors(name, "vn_leaky_relu", x);
    rows_parallel(x.rows / 3, 3 * x.cols, [&](std::size_t p, std::size_t k) {
      Base::vn_leaky_relu<T>(x.row_range(3 * p, 3 * k), d.row_range(3 * p, 3 * k), slope, eps,
                             y.row_range(3 * p, 3 * k));
    });
  }
  template <class T>
  static void vn_leaky_relu_backward(In<T> x, In<T> d, Scalar<T> slope, Scalar<T> eps, In<T> dy, MatrixRef<T> dx,
                                     MatrixRef<T> dd) {
    detail::check::vectors(name, "vn_leaky_relu_backward", x);
    rows_parallel(x.rows / 3, 3 * x.cols, [&](std::size_t p, std::size_t k) {
      const auto rows = [&](auto v) { return v.row_range(3 * p, 3 * k); };
      Base::vn_leaky_relu_backward<T>(rows(x), rows(d), slope, eps, rows(dy), rows(dx), rows(dd));
    });
  }
  template <class T>
  static void vn_invariant(In<T> x, In<T> z, MatrixRef<T> y) {
    detail::check::vectors(name, "vn_invariant", x);
    detail::check::shape(name, "vn_invariant", y, x.rows / 3, 3 * x.cols, "y");
    rows_parallel(y.rows, 9 * x.cols, [&](std::size_t p, std::size_t k) {
      Base::vn_invariant<T>(x.row_range(3 * p, 3 * k), z.row_range(3 * p, 3 * k), y.row_range(p, k));
    });
  }
  template <class T>
  static void vn_invariant_backward(In<T> x, In<T> z, In<T> dy, MatrixRef<T> dx, MatrixRef<T> dz) {
    detail::check::vectors(name, "vn_invariant_backward", x);
    detail::check::shape(name, "vn_invariant_backward", dy, x.rows / 3, 3 * x.cols, "dy");
    rows_parallel(dy.rows, 9 * x.cols, [&](std::size_t p, std::size_t k) {
      Base::vn_invariant_backward<T>(x.row_range(3 * p, 3 * k), z.row_range(3 * p, 3 * k), dy.row_range(p, k),
                                     dx.row_range(3 * p, 3 * k), dz.row_range(3 * p, 3 * k));
    });
  }

  // ---- images: ace's direct AVX2/FMA kernels or im2col + Eigen (cpu::ConvKernel) ----------------------------------

  template <class T>
  static void conv2d_forward(convolution<T>& conv, In<T> x, In<T> w, In<T> bias, MatrixRef<T> y) {
    check_conv(conv.geometry(), x, w, y);
    conv.forward(x, w.data, bias.empty() ? nullptr : bias.data, y);
  }
  template <class T>
  static void conv2d_backward(convolution<T>& conv, In<T> x, In<T> w, In<T> dy, MatrixRef<T> dw, MatrixRef<T> dbias,
                              MatrixRef<T> dx) {
    check_conv(conv.geometry(), x, w, dy);
    detail::check::same_shape(name, "conv2d_backward", x, dx);
    detail::check::same_shape(name, "conv2d_backward", w, dw);
    ACE_THROW_IF(!dw.contiguous() || !dx.contiguous(), shape_error, name, "::conv2d_backward: strided gradients");
    conv.backward(x, w.data, dy, dw.data, dbias.empty() ? nullptr : dbias.data, dx);
  }

  // ---- optimisers and zeroing: vectorised, the entries of all tensors split across threads (cpu/update.hpp) -------

  static constexpr std::size_t adam_cost = 4;  // a square root and a division per entry
  template <class T>
  static void adam_update(MatrixRef<T> value, In<T> grad, MatrixRef<T> m, MatrixRef<T> v, const AdamStep& s,
                          In<double> t) {
    detail::check::same_shape(name, "adam_update", value, grad);
    detail::check::same_shape(name, "adam_update", value, m);
    detail::check::same_shape(name, "adam_update", value, v);
    detail::check::scalar(name, "adam_update", t);
    ACE_THROW_IF(!value.contiguous() || !grad.contiguous() || !m.contiguous() || !v.contiguous(), shape_error, name,
                 "::adam_update: the value, gradient and moments must be contiguous");
    const AdamStep::Corrections k = s.corrections(t.data[0]);
    cpu::for_chunks(1, [&](std::size_t) { return value.size(); }, cpu::elementwise_chunk, adam_cost,
                    [&](std::size_t, std::size_t first, std::size_t n) {
                      cpu::adam_entries(s, k, value.data + first, grad.data + first, m.data + first, v.data + first, n);
                    });
  }
  /// Adam on many tensors in one parallel pass (MultiTensorBackend): the same updates as adam_update on each.
  template <class T>
  static void adam_update_many(std::span<const AdamTensor<T>> tensors, In<double> t) {
    detail::check::scalar(name, "adam_update_many", t);
    cpu::for_chunks(tensors.size(), [&](std::size_t i) { return tensors[i].size; }, cpu::elementwise_chunk, adam_cost,
                    [&](std::size_t i, std::size_t first, std::size_t n) {
                      const AdamTensor<T>& a = tensors[i];
                      cpu::adam_entries(a.step, a.step.corrections(t.data[0]), a.value + first, a.grad + first,
                                        a.m + first, a.v + first, n);
                    });
  }
  /// Zeroes (fills) many tensors in one parallel pass (MultiTensorBackend).
  template <class T>
  static void fill_many(std::span<const VectorRef<T>> xs, Scalar<T> value) {
    cpu::for_chunks(xs.size(), [&](std::size_t i) { return xs[i].size(); }, cpu::elementwise_chunk, 1,
                    [&](std::size_t i, std::size_t first, std::size_t n) {
                      std::fill_n(xs[i].data() + first, n, value);
                    });
  }

  // ---- graphs: OpenMP across the graphs of a batch (cpu/graph.hpp) -------------------------------------------------

  template <class T>
  static void egnn_edge_input(const GraphShape& gs, Index row, Index col, In<T> x, In<T> p, In<T> q, In<T> bias,
                              In<T> w_radial, MatrixRef<T> diff, MatrixRef<T> radial, MatrixRef<T> z) {
    check_graph(gs, row, col);
    detail::check::graph_nodes(name, "egnn_edge_input", x, gs, "x");
    detail::check::graph_nodes(name, "egnn_edge_input", p, gs, "p");
    detail::check::same_shape(name, "egnn_edge_input", p, q);
    detail::check::graph_edges(name, "egnn_edge_input", z, gs, "z");
    detail::check::shape(name, "egnn_edge_input", diff, gs.edge_rows(), x.cols, "diff");
    detail::check::shape(name, "egnn_edge_input", radial, gs.edge_rows(), 1, "radial");
    detail::check::row_vector(name, "egnn_edge_input", bias, z.cols);
    detail::check::shape(name, "egnn_edge_input", w_radial, z.cols, 1, "w_radial");
    cpu::egnn_edge_input<T>(gs, row.data, col.data, x, p, q, bias.data, w_radial, diff, radial, z);
  }
  template <class T>
  static void egnn_aggregate(const GraphShape& gs, Index row, In<T> inv_degree, In<T> x, In<T> v, In<T> diff,
                             In<T> coef, In<T> speed, Scalar<T> clamp, In<T> m, MatrixRef<T> x_out,
                             MatrixRef<T> agg) {
    check_graph(gs, row, row);
    detail::check::graph_nodes(name, "egnn_aggregate", x_out, gs, "x_out");
    detail::check::same_shape(name, "egnn_aggregate", x, x_out);
    detail::check::same_shape(name, "egnn_aggregate", v, x_out);
    detail::check::shape(name, "egnn_aggregate", diff, gs.edge_rows(), x.cols, "diff");
    detail::check::shape(name, "egnn_aggregate", coef, gs.edge_rows(), 1, "coef");
    detail::check::shape(name, "egnn_aggregate", speed, gs.node_rows(), 1, "speed");
    detail::check::shape(name, "egnn_aggregate", inv_degree, 1, gs.nodes, "inv_degree");
    if (!m.empty()) {
      detail::check::graph_edges(name, "egnn_aggregate", m, gs, "m");
      detail::check::shape(name, "egnn_aggregate", agg, gs.node_rows(), m.cols, "agg");
    }
    cpu::egnn_aggregate<T>(gs, row.data, inv_degree.data, x, v, diff, coef, speed, clamp, m, x_out, agg);
  }
  template <class T>
  static void egnn_aggregate_backward(const GraphShape& gs, Index row, In<T> inv_degree, In<T> diff, In<T> coef,
                                      Scalar<T> clamp, In<T> dx_out, In<T> dagg, MatrixRef<T> dcoef,
                                      MatrixRef<T> dm) {
    check_graph(gs, row, row);
    detail::check::shape(name, "egnn_aggregate_backward", diff, gs.edge_rows(), dx_out.cols, "diff");
    detail::check::graph_nodes(name, "egnn_aggregate_backward", dx_out, gs, "dx_out");
    detail::check::shape(name, "egnn_aggregate_backward", dcoef, gs.edge_rows(), 1, "dcoef");
    detail::check::graph_edges(name, "egnn_aggregate_backward", dm, gs, "dm");
    if (!dagg.empty()) detail::check::shape(name, "egnn_aggregate_backward", dagg, gs.node_rows(), dm.cols, "dagg");
    cpu::egnn_aggregate_backward<T>(gs, row.data, inv_degree.data, diff, coef, clamp, dx_out, dagg, dcoef, dm);
  }
  template <class T>
  static void egnn_edge_input_backward(const GraphShape& gs, Index row, Index col, In<T> inv_degree, In<T> diff,
                                       In<T> radial, In<T> coef, Scalar<T> clamp, In<T> dx_out, In<T> dz,
                                       In<T> w_radial, MatrixRef<T> dp, MatrixRef<T> dq, MatrixRef<T> dx,
                                       MatrixRef<T> dw_radial) {
    check_graph(gs, row, col);
    detail::check::graph_edges(name, "egnn_edge_input_backward", dz, gs, "dz");
    detail::check::shape(name, "egnn_edge_input_backward", dp, gs.node_rows(), dz.cols, "dp");
    detail::check::same_shape(name, "egnn_edge_input_backward", dp, dq);
    detail::check::graph_nodes(name, "egnn_edge_input_backward", dx_out, gs, "dx_out");
    detail::check::same_shape(name, "egnn_edge_input_backward", dx_out, dx);
    detail::check::shape(name, "egnn_edge_input_backward", diff, gs.edge_rows(), dx.cols, "diff");
    detail::check::shape(name, "egnn_edge_input_backward", w_radial, dz.cols, 1, "w_radial");
    detail::check::shape(name, "egnn_edge_input_backward", dw_radial, dz.cols, 1, "dw_radial");
    cpu::egnn_edge_input_backward<T>(gs, row.data, col.data, inv_degree.data, diff, radial, coef, clamp, dx_out, dz,
                                     w_radial, dp, dq, dx, dw_radial);
  }

  // ---- execution --------------------------------------------------------------------------------------------------

  /// f(0), ..., f(n - 1) in OpenMP threads (at most n); operations inside a task run single-threaded.
  template <class F>
  static void parallel_tasks(std::size_t n, F&& f) {
#if defined(_OPENMP)
    const int threads = std::max(1, std::min(static_cast<int>(n), omp_get_max_threads()));
#pragma omp parallel for schedule(static) num_threads(threads)
    for (std::size_t k = 0; k < n; ++k) f(k);
#else
    for (std::size_t k = 0; k < n; ++k) f(k);
#endif
  }

 private:
  template <class U, class V>
  static void check_points(const char* op, MatrixRef<U> x, MatrixRef<V> n) {
    detail::check::vectors(name, op, x);
    detail::check::shape(name, op, n, x.rows / 3, x.cols, "n");
  }
  template <class U, class V, class W>
  static void check_conv(const ConvGeometry& g, MatrixRef<U> x, MatrixRef<V> w, MatrixRef<W> y) {
    detail::check::conv(name, g, x, w, y);
    ACE_THROW_IF(!x.contiguous() || !w.contiguous() || !y.contiguous(), shape_error, name,
                 "::conv2d: the maps and filters must be contiguous");
  }
  static void check_graph(const GraphShape& gs, Index row, Index col) { detail::check::edge_lists(name, gs, row, col); }
};

static_assert(Backend<Cpu>, "ace: the Cpu backend must model the Backend concept.");
static_assert(FusedDenseBackend<Cpu, float> && FusedDenseBackend<Cpu, double>,
              "ace: the Cpu backend runs a dense layer's bias and activation in its GEMM's epilogue.");
static_assert(MultiTensorBackend<Cpu, float> && MultiTensorBackend<Cpu, double>,
              "ace: the Cpu backend updates and zeroes many tensors at once.");

}  // namespace ace
