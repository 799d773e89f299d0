// SPDX-License-Identifier: MIT
// Every operation of the Backend concept written once over an execution policy Exec: the argument checks (the same
// shape_error as every backend), then the index functors of kernels.hpp run by Exec::run, GEMM by Exec::gemm
// (column-major BLAS semantics) and host transfers by Exec::copy_2d. The CUDA backend runs this with a policy that
// launches kernels on a stream and calls cuBLAS (include/ace/backend/cuda/cuda.hpp); the tests run it with a host
// policy that loops over the indices (tests/backend/kernel_emulation.hpp), so everything here but the launch itself
// is checked against the Reference backend on any machine.
//
// Exec provides:
//   template <class F> static void run(const char* op, std::size_t n, const F& f);   // f(0) ... f(n - 1)
//   template <class F> static void run_blocks(const char* op, std::size_t blocks, unsigned threads, const F& f);
//                                                  // a block functor (cuda/egnn_kernels.hpp) over blocks x threads
//   static void* scratch(std::size_t bytes);              // backend memory for one operation's temporaries
//   static std::uint32_t* index_error();                  // the index-error word (kernels::IndexError bits)
//   static void read(void* host, const void* src, std::size_t bytes);   // backend -> host, synchronous
//   static void copy_2d(void* dst, std::size_t dpitch, const void* src, std::size_t spitch, std::size_t width,
//                       std::size_t rows, Direction);                   // byte pitches and widths
//   (read and copies to the host throw invalid_argument when an earlier kernel met an index out of range)
//   static void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, T alpha, const T* a,
//                    std::size_t lda, const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc);   // T = float, double
//   (the policy checks its index-error word itself: after each kernel on the host, at each read on the device)
//   static bool conv2d_forward(const ConvGeometry&, std::size_t batch, const T* x, const T* w, T* y);
//   static bool conv2d_backward(const ConvGeometry&, std::size_t batch, const T* x, const T* w, const T* dy, T* dw,
//                               T* dx);   // a library's convolution (dw accumulates); false: not taken, the kernels run
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <utility>

#include "ace/backend/checks.hpp"
#include "ace/backend/cuda/egnn_kernels.hpp"
#include "ace/backend/cuda/kernels.hpp"
#include "ace/backend/cuda/o3_kernels.hpp"
#include "ace/backend/egnn_fused.hpp"
#include "ace/backend/geometry.hpp"
#include "ace/backend/ops.hpp"
#include "ace/error.hpp"
#include "ace/tensor/view.hpp"

namespace ace {

template <class Self, class Exec>
struct KernelOps {
  /// Tensors live in device memory: reading a value is a transfer (backend_host_memory_v).
  static constexpr bool host_memory = false;

  template <class T>
  using In = std::type_identity_t<MatrixRef<const T>>;
  using Index = MatrixRef<const std::uint32_t>;
  template <class T>
  using Scalar = std::type_identity_t<T>;

  /// A convolution keeps its geometry.
  template <class T>
  struct convolution {
    explicit convolution(ConvGeometry geometry = {}) : g(geometry) {}
    ConvGeometry g;
  };

 private:
  static const char* who() { return Self::name; }
  // Runs f over n indices (nothing for n = 0).
  template <class F>
  static void run(const char* op, std::size_t n, const F& f) {
    if (n != 0) Exec::run(op, n, f);
  }
  // The number of partial sums of a reduction over n entries.
  static std::size_t parts_for(std::size_t n) { return std::min<std::size_t>(n, 1024); }
  // A 2-d copy of a view's rows (bytes).
  template <class T>
  static void copy_rows(T* dst, std::size_t dstride, const T* src, std::size_t sstride, std::size_t rows,
                        std::size_t cols, Direction d) {
    if (rows == 0 || cols == 0) return;
    Exec::copy_2d(dst, dstride * sizeof(T), src, sstride * sizeof(T), cols * sizeof(T), rows, d);
  }
  // Scratch for `parts` partial sums and one result after them.
  static double* partials(std::size_t parts) {
    return static_cast<double*>(Exec::scratch((parts + 1) * sizeof(double)));
  }
  // The reduction of x (x y for dot) left in backend memory: returns its address (nullptr for an empty view), and
  // with `into` / `fold` also accumulated there (ReduceFinal).
  template <class U, class V>
  static const double* reduce_on_device(const char* op, MatrixRef<U> x, MatrixRef<V> y, kernels::Reduction kind,
                                        std::remove_const_t<U>* into = nullptr, double* fold = nullptr) {
    using T = std::remove_const_t<U>;
    const std::size_t n = x.size();
    if (n == 0) return nullptr;
    const std::size_t parts = parts_for(n);
    double* part = partials(parts);
    run(op, parts, kernels::ReducePartials<T>{x, MatrixRef<const T>(y), part, parts, kind});
    const bool max = kind == kernels::Reduction::max_abs || kind == kernels::Reduction::max;
    run(op, 1, kernels::ReduceFinal<T>{part, parts, max, part + parts, into, fold});
    return part + parts;
  }
  template <class U, class V>
  static double reduce(const char* op, MatrixRef<U> x, MatrixRef<V> y, kernels::Reduction kind) {
    const double* result = reduce_on_device(op, x, y, kind);
    double out = 0.0;
    if (result) Exec::read(&out, result, sizeof(double));
    return out;
  }

 public:
  // ---- storage ----------------------------------------------------------------------------------------------------

  template <class T>
  static void to_host(In<T> src, std::span<T> dst) {
    detail::check::host_size(who(), "to_host", src, dst);
    copy_rows(dst.data(), src.cols, src.data, src.stride, src.rows, src.cols, Direction::to_host);
  }
  template <class T>
  static void from_host(std::span<const T> src, MatrixRef<T> dst) {
    detail::check::host_size(who(), "from_host", dst, src);
    copy_rows(dst.data, dst.stride, src.data(), dst.cols, dst.rows, dst.cols, Direction::from_host);
  }
  template <class T>
  static void fill(MatrixRef<T> x, Scalar<T> value) {
    run("fill", x.size(), kernels::Fill<T>{x, value});
  }
  template <class T>
  static void copy(In<T> src, MatrixRef<T> dst) {
    detail::check::same_shape(who(), "copy", src, dst);
    copy_rows(dst.data, dst.stride, src.data, src.stride, src.rows, src.cols, Direction::on_device);
  }
  template <class T>
  static void axpy(Scalar<T> alpha, In<T> x, MatrixRef<T> y) {
    detail::check::same_shape(who(), "axpy", x, y);
    run("axpy", y.size(), kernels::Axpy<T>{x, y, alpha, nullptr, false});
  }
  template <class T>
  static void scale(Scalar<T> alpha, MatrixRef<T> x) {
    run("scale", x.size(), kernels::Scale<T>{x, alpha});
  }
  template <class T>
  static void add(In<T> a, In<T> b, MatrixRef<T> c) {
    detail::check::same_shape(who(), "add", a, b);
    detail::check::same_shape(who(), "add", a, c);
    run("add", c.size(), kernels::Add<T>{a, b, c});
  }
  template <class U>
  static double sum(MatrixRef<U> x) {
    return reduce("sum", x, x, kernels::Reduction::sum);
  }
  template <class U, class V>
  static double dot(MatrixRef<U> x, MatrixRef<V> y) {
    static_assert(std::is_same_v<std::remove_const_t<U>, std::remove_const_t<V>>, "dot: both views hold one type");
    detail::check::same_shape(who(), "dot", x, y);
    return reduce("dot", x, y, kernels::Reduction::dot);
  }
  template <class U>
  static double sum_squares(MatrixRef<U> x) {
    return reduce("sum_squares", x, x, kernels::Reduction::dot);
  }
  template <class U>
  static double max_abs(MatrixRef<U> x) {
    return reduce("max_abs", x, x, kernels::Reduction::max_abs);
  }
  template <class T>
  static void add_scaled(In<T> s, In<T> x, MatrixRef<T> y) {
    detail::check::scalar(who(), "add_scaled", s);
    detail::check::same_shape(who(), "add_scaled", x, y);
    run("add_scaled", y.size(), kernels::Axpy<T>{x, y, T(0), s.data, false});
  }
  template <class T>
  static void scaled_copy(In<T> s, In<T> x, MatrixRef<T> y) {
    detail::check::scalar(who(), "scaled_copy", s);
    detail::check::same_shape(who(), "scaled_copy", x, y);
    run("scaled_copy", y.size(), kernels::Axpy<T>{x, y, T(0), s.data, true});
  }
  template <class T>
  static void accumulate_dot(In<T> x, In<T> y, MatrixRef<T> out) {
    detail::check::scalar(who(), "accumulate_dot", out);
    detail::check::same_shape(who(), "accumulate_dot", x, y);
    reduce_on_device("accumulate_dot", x, y, kernels::Reduction::dot, out.data);
  }
  template <class U>
  static void reduce_into(Accumulate kind, MatrixRef<U> x, MatrixRef<double> out) {
    detail::check::scalar(who(), "reduce_into", out);
    const auto k = kind == Accumulate::sum       ? kernels::Reduction::sum
                   : kind == Accumulate::max_abs ? kernels::Reduction::max_abs
                   : kind == Accumulate::max     ? kernels::Reduction::max
                                                 : kernels::Reduction::dot;
    reduce_on_device("reduce_into", x, x, k, static_cast<std::remove_const_t<U>*>(nullptr), out.data);
  }
  template <class T>
  static void scale_to_norm(In<double> sum_squares, double max_norm, MatrixRef<T> x) {
    detail::check::scalar(who(), "scale_to_norm", sum_squares);
    run("scale_to_norm", x.size(), kernels::ScaleToNorm<T>{sum_squares.data, max_norm, x});
  }

  // ---- dense layers -----------------------------------------------------------------------------------------------

  /// Row-major c = alpha op(a) op(b) + beta c as the column-major product c^T = op(b)^T op(a)^T: a row-major view
  /// with stride s is the column-major transpose with leading dimension s.
  template <class T>
  static void gemm(Transpose ta, Transpose tb, Scalar<T> alpha, In<T> a, In<T> b, Scalar<T> beta, MatrixRef<T> c) {
    detail::check::gemm<T>(who(), ta, tb, a, b, c);
    if (c.rows == 0 || c.cols == 0) return;
    const std::size_t k = ta == Transpose::no ? a.cols : a.rows;
    if (k == 0) {
      if (beta == T(0)) fill(c, T(0));
      else scale(beta, c);
      return;
    }
    Exec::gemm(tb == Transpose::yes, ta == Transpose::yes, c.cols, c.rows, k, alpha, b.data, ld(b), a.data, ld(a),
               beta, c.data, ld(c));
  }
  template <class T>
  static void add_row(MatrixRef<T> c, In<T> v) {
    detail::check::row_vector(who(), "add_row", v, c.cols);
    run("add_row", c.size(), kernels::AddRow<T>{c, v});
  }
  template <class T>
  static void sum_rows(In<T> a, Scalar<T> beta, MatrixRef<T> v) {
    detail::check::row_vector(who(), "sum_rows", v, a.cols);
    // A thread per column summing every row would be a long serial loop on tall inputs (200 000 edge rows at batch
    // 10 000): above 256 rows, partial sums over blocks of about √rows rows first, then the column sums of those.
    if (a.rows <= 256) return run("sum_rows", a.cols, kernels::SumRows<T>{a, beta, v});
    std::size_t block = 1;
    while (block * block < a.rows) ++block;
    const std::size_t blocks = (a.rows + block - 1) / block;
    T* part = static_cast<T*>(Exec::scratch(blocks * a.cols * sizeof(T)));
    run("sum_rows", blocks * a.cols, kernels::SumRowBlocks<T>{a, block, MatrixRef<T>{part, blocks, a.cols, a.cols}});
    run("sum_rows", a.cols, kernels::SumRows<T>{In<T>{part, blocks, a.cols, a.cols}, beta, v});
  }
  template <class T>
  static void row_dot(In<T> a, In<T> b, MatrixRef<T> out) {
    detail::check::same_shape(who(), "row_dot", a, b);
    detail::check::shape(who(), "row_dot", out, a.rows, 1, "out");
    run("row_dot", a.rows, kernels::RowDot<T>{a, b, out});
  }

  // ---- elementwise ------------------------------------------------------------------------------------------------

  template <class Op, class T>
  static void map(In<T> x, MatrixRef<T> y) {
    detail::check::same_shape(who(), "map", x, y);
    run("map", y.size(), kernels::Map<Op, T>{x, y});
  }
  template <class Op, class T>
  static void map_backward(In<T> x, In<T> y, In<T> dy, MatrixRef<T> dx) {
    detail::check::same_shape(who(), "map_backward", x, y);
    detail::check::same_shape(who(), "map_backward", x, dy);
    detail::check::same_shape(who(), "map_backward", x, dx);
    run("map_backward", dx.size(), kernels::MapBackward<Op, T>{x, y, dy, dx});
  }

  // ---- sparse maps and rows by index ------------------------------------------------------------------------------

  template <class T>
  static void sparse_map(Index first, Index index, In<T> weight, In<T> x, MatrixRef<T> y) {
    detail::check::shape(who(), "sparse_map", first, 1, y.cols + 1, "first");
    detail::check::same_shape(who(), "sparse_map", index, weight);
    ACE_THROW_IF(x.rows != y.rows, shape_error, who(), "::sparse_map: ", x.rows, " input rows, ", y.rows, " output rows");
    run("sparse_map", y.size(), kernels::SparseMap<T>{first, index, weight, x, y});
  }
  template <class T>
  static void sparse_map_adjoint(Index first, Index index, In<T> weight, In<T> dy, MatrixRef<T> dx) {
    detail::check::shape(who(), "sparse_map_adjoint", first, 1, dy.cols + 1, "first");
    detail::check::same_shape(who(), "sparse_map_adjoint", index, weight);
    ACE_THROW_IF(dx.rows != dy.rows, shape_error, who(), "::sparse_map_adjoint: ", dy.rows, " gradient rows, ",
                 dx.rows, " input rows");
    run("sparse_map_adjoint", dx.rows, kernels::SparseMapAdjoint<T>{first, index, weight, dy, dx});
  }
  template <class T>
  static void gather_rows(In<T> src, Index index, MatrixRef<T> dst) {
    detail::check::shape(who(), "gather_rows", index, 1, dst.rows, "index");
    ACE_THROW_IF(src.cols != dst.cols, shape_error, who(), "::gather_rows: ", src.cols, " and ", dst.cols, " columns");
    run("gather_rows", dst.size(), kernels::GatherRows<T>{src, index, dst, Exec::index_error()});
  }
  template <class T>
  static void scatter_add_rows(In<T> src, Index index, MatrixRef<T> dst) {
    detail::check::shape(who(), "scatter_add_rows", index, 1, src.rows, "index");
    ACE_THROW_IF(src.cols != dst.cols, shape_error, who(), "::scatter_add_rows: ", src.cols, " and ", dst.cols,
                 " columns");
    run("scatter_add_rows", dst.cols, kernels::ScatterAddRows<T>{src, index, dst, Exec::index_error()});
  }

  // ---- segment reductions -----------------------------------------------------------------------------------------

  template <class T>
  static void segment_reduce(Reduce kind, In<T> x, std::size_t segment, MatrixRef<T> y,
                             MatrixRef<std::uint32_t> argmax = {}) {
    detail::check::segments(who(), "segment_reduce", x, segment, y);
    if (kind == Reduce::max) detail::check::same_shape(who(), "segment_reduce (argmax)", argmax, y);
    run("segment_reduce", y.size(), kernels::SegmentReduce<T>{x, segment, kind, y, argmax});
  }
  template <class T>
  static void segment_reduce_backward(Reduce kind, In<T> dy, std::size_t segment, Index argmax, MatrixRef<T> dx) {
    detail::check::segments(who(), "segment_reduce_backward", dx, segment, dy);
    if (kind == Reduce::max) detail::check::same_shape(who(), "segment_reduce_backward (argmax)", argmax, dy);
    run("segment_reduce_backward", dy.size(), kernels::SegmentReduceBackward<T>{dy, segment, kind, argmax, dx});
  }

  // ---- pair features ----------------------------------------------------------------------------------------------

  template <class T>
  static void pair_transpose(In<T> x, std::size_t n, MatrixRef<T> y, bool accumulate) {
    detail::check::pairs(who(), "pair_transpose", x, n);
    detail::check::same_shape(who(), "pair_transpose", x, y);
    run("pair_transpose", y.size(), kernels::PairTranspose<T>{x, n, x.cols / (n * n), y, accumulate});
  }
  template <class T>
  static void pair_pool(In<T> x, std::size_t n, bool mean, MatrixRef<T> v, MatrixRef<T> s) {
    detail::check::pairs(who(), "pair_pool", x, n);
    const std::size_t f = x.cols / (n * n);
    detail::check::shape(who(), "pair_pool", v, x.rows * n, 3 * f, "v");
    detail::check::shape(who(), "pair_pool", s, x.rows, 2 * f, "s");
    run("pair_pool", x.rows * f, kernels::PairPool<T>{x, n, f, mean, v, s});
  }
  template <class T>
  static void pair_broadcast(In<T> u, In<T> q, std::size_t n, Scalar<T> ka, Scalar<T> kb, Scalar<T> kc,
                             MatrixRef<T> y) {
    detail::check::pairs(who(), "pair_broadcast", y, n);
    const std::size_t f = y.cols / (n * n);
    detail::check::shape(who(), "pair_broadcast", u, y.rows * n, 3 * f, "u");
    detail::check::shape(who(), "pair_broadcast", q, y.rows, 2 * f, "q");
    run("pair_broadcast", y.size(), kernels::PairBroadcast<T>{u, q, n, f, ka, kb, kc, y});
  }

  // ---- fields -----------------------------------------------------------------------------------------------------

  template <class Op, class T>
  static void norm_nonlinearity(In<T> x, Index offsets, In<T> bias, Scalar<T> eps, MatrixRef<T> norm,
                                MatrixRef<T> y) {
    const std::size_t fields = field_count(offsets);
    detail::check::shape(who(), "norm_nonlinearity", norm, x.rows, fields, "norm");
    detail::check::same_shape(who(), "norm_nonlinearity", x, y);
    detail::check::row_vector(who(), "norm_nonlinearity", bias, fields);
    run("norm_nonlinearity", x.rows * fields, kernels::NormNonlinearity<Op, T>{x, offsets, bias, eps, norm, y});
  }
  template <class Op, class T>
  static void norm_nonlinearity_backward(In<T> x, Index offsets, In<T> bias, In<T> norm, In<T> dy, MatrixRef<T> dx,
                                         MatrixRef<T> dbias) {
    const std::size_t fields = field_count(offsets);
    detail::check::same_shape(who(), "norm_nonlinearity_backward", x, dy);
    detail::check::same_shape(who(), "norm_nonlinearity_backward", x, dx);
    detail::check::shape(who(), "norm_nonlinearity_backward", dbias, x.rows, fields, "dbias");
    run("norm_nonlinearity_backward", x.rows * fields,
        kernels::NormNonlinearityBackward<Op, T>{x, offsets, bias, norm, dy, dx, dbias});
  }
  template <class T>
  static void gate_fields(In<T> x, Index offsets, MatrixRef<T> gate, MatrixRef<T> y) {
    const std::size_t fields = field_count(offsets);
    detail::check::shape(who(), "gate_fields", gate, x.rows, fields, "gate");
    detail::check::shape(who(), "gate_fields", x, x.rows, fields + y.cols, "x");
    detail::check::shape(who(), "gate_fields", y, x.rows, y.cols, "y");
    run("gate_fields", x.rows * fields, kernels::GateFields<T>{x, offsets, gate, y});
  }
  template <class T>
  static void gate_fields_backward(In<T> x, Index offsets, In<T> gate, In<T> dy, MatrixRef<T> dx) {
    detail::check::same_shape(who(), "gate_fields_backward", x, dx);
    run("gate_fields_backward", x.rows * field_count(offsets),
        kernels::GateFieldsBackward<T>{x, offsets, gate, dy, dx});
  }

  // ---- O(3) features ----------------------------------------------------------------------------------------------

  template <class T>
  static void tensor_product_contract(Index paths, Index entries, In<T> values, In<T> x1, In<T> x2, MatrixRef<T> z) {
    detail::check::tensor_product<T>(who(), "tensor_product_contract", paths, entries, values, x1, x2, z);
    run("tensor_product_contract", z.size(), kernels::TensorProductContract<T>{paths, entries, values, x1, x2, z});
  }
  template <class T>
  static void tensor_product_contract_backward(Index paths, Index entries, In<T> values, In<T> x1, In<T> x2,
                                               In<T> dz, MatrixRef<T> dx1, MatrixRef<T> dx2) {
    detail::check::tensor_product<T>(who(), "tensor_product_contract_backward", paths, entries, values, x1, x2, dz);
    detail::check::same_shape(who(), "tensor_product_contract_backward", x1, dx1);
    run("tensor_product_contract_backward", dx1.size(),
        kernels::TensorProductContractBackward<T>{paths, entries, values, x1, x2, dz, dx1, false});
    if (dx2.cols == 0) return;
    detail::check::same_shape(who(), "tensor_product_contract_backward", x2, dx2);
    run("tensor_product_contract_backward", dx2.size(),
        kernels::TensorProductContractBackward<T>{paths, entries, values, x1, x2, dz, dx2, true});
  }
  template <class T>
  static void swish_gate(In<T> x, std::size_t scalars, Index gated, MatrixRef<T> y) {
    detail::check::swish_gate<T>(who(), "swish_gate", x, scalars, y);
    run("swish_gate", y.size(), kernels::SwishGate<T>{x, scalars, gated, y});
  }
  template <class T>
  static void swish_gate_backward(In<T> x, std::size_t scalars, Index gated, In<T> dy, MatrixRef<T> dx) {
    detail::check::swish_gate<T>(who(), "swish_gate_backward", x, scalars, dy);
    detail::check::same_shape(who(), "swish_gate_backward", x, dx);
    run("swish_gate_backward", dx.size(), kernels::SwishGateBackward<T>{x, scalars, gated, dy, dx});
  }
  template <class T>
  static void spherical_harmonics(In<T> v, std::size_t lmax, Scalar<T> scale, MatrixRef<T> y, MatrixRef<T> norms) {
    detail::check::spherical_harmonics<T>(who(), v, lmax, y, norms);
    run("spherical_harmonics", v.rows, kernels::SphericalHarmonics<T>{v, lmax, scale, y, norms});
  }

  // ---- batch norm -------------------------------------------------------------------------------------------------

  template <class T>
  static void batch_norm_statistics(In<T> x, const FieldLayout& l, Index field_of, bool training, double momentum,
                                    double eps, MatrixRef<double> running_mean, MatrixRef<double> running_var,
                                    MatrixRef<T> mean, MatrixRef<T> inv_std) {
    check_fields("batch_norm_statistics", x, l, field_of);
    for (auto* v : {&running_mean, &running_var})
      detail::check::shape(who(), "batch_norm_statistics", *v, 1, l.fields, "running statistics");
    detail::check::shape(who(), "batch_norm_statistics", mean, 1, l.fields, "mean");
    detail::check::shape(who(), "batch_norm_statistics", inv_std, 1, l.fields, "inv_std");
    run("batch_norm_statistics", l.fields,
        kernels::BatchNormStatistics<T>{x.data, l, field_of, training, momentum, eps, running_mean.data,
                                        running_var.data, mean.data, inv_std.data});
  }
  template <class T>
  static void batch_norm_forward(In<T> x, const FieldLayout& l, Index field_of, In<T> mean, In<T> inv_std,
                                 In<T> weight, In<T> bias, MatrixRef<T> xhat, MatrixRef<T> y) {
    check_fields("batch_norm_forward", x, l, field_of);
    detail::check::same_shape(who(), "batch_norm_forward", x, xhat);
    detail::check::same_shape(who(), "batch_norm_forward", x, y);
    detail::check::fields(who(), "batch_norm_forward", xhat, l);
    detail::check::fields(who(), "batch_norm_forward", y, l);
    run("batch_norm_forward", l.size(),
        kernels::BatchNormForward<T>{x.data, l, field_of, mean.data, inv_std.data, weight.data, bias.data, xhat.data,
                                     y.data});
  }
  template <class T>
  static void batch_norm_backward(In<T> dy, In<T> xhat, const FieldLayout& l, Index field_of, In<T> weight,
                                  In<T> inv_std, bool batch_stats, MatrixRef<T> dweight, MatrixRef<T> dbias,
                                  MatrixRef<T> dx) {
    check_fields("batch_norm_backward", dy, l, field_of);
    detail::check::same_shape(who(), "batch_norm_backward", dy, xhat);
    detail::check::same_shape(who(), "batch_norm_backward", dy, dx);
    detail::check::fields(who(), "batch_norm_backward", xhat, l);
    detail::check::fields(who(), "batch_norm_backward", dx, l);
    if (l.fields == 0) return;
    auto* coef = static_cast<T*>(Exec::scratch(3 * l.fields * sizeof(T)));
    run("batch_norm_backward", l.fields,
        kernels::BatchNormBackwardStatistics<T>{dy.data, xhat.data, l, field_of, weight.data, inv_std.data,
                                                dweight.data, dbias.data, coef});
    run("batch_norm_backward", l.size(),
        kernels::BatchNormBackwardInput<T>{dy.data, xhat.data, l, field_of, coef, batch_stats, dx.data});
  }

  // ---- images -----------------------------------------------------------------------------------------------------

  template <class T>
  static void conv2d_forward(convolution<T>& conv, In<T> x, In<T> w, In<T> bias, MatrixRef<T> y) {
    detail::check::conv(who(), conv.g, x, w, y);
    if (!bias.empty()) detail::check::row_vector(who(), "conv2d_forward", bias, conv.g.out_channels);
    if (x.contiguous() && w.contiguous() && y.contiguous() && x.rows > 0 &&
        Exec::conv2d_forward(conv.g, x.rows, x.data, w.data, y.data)) {  // a library convolution (cuDNN)
      if (!bias.empty()) run("conv2d_forward", y.size(), kernels::ConvBias<T>{kernels::ConvSizes::of(conv.g), bias, y});
      return;
    }
    run("conv2d_forward", y.size(), kernels::Conv2dForward<T>{kernels::ConvSizes::of(conv.g), x, w, bias, y});
  }
  template <class T>
  static void conv2d_backward(convolution<T>& conv, In<T> x, In<T> w, In<T> dy, MatrixRef<T> dw, MatrixRef<T> dbias,
                              MatrixRef<T> dx) {
    const ConvGeometry& g = conv.g;
    detail::check::conv(who(), g, x, w, dy);
    detail::check::same_shape(who(), "conv2d_backward", x, dx);
    detail::check::same_shape(who(), "conv2d_backward", w, dw);
    if (!dbias.empty()) detail::check::row_vector(who(), "conv2d_backward", dbias, g.out_channels);
    const auto sizes = kernels::ConvSizes::of(g);
    const bool library = x.contiguous() && w.contiguous() && dy.contiguous() && dw.contiguous() && dx.contiguous() &&
                         x.rows > 0 && Exec::conv2d_backward(g, x.rows, x.data, w.data, dy.data, dw.data, dx.data);
    if (!library) {
      run("conv2d_backward", dx.size(), kernels::Conv2dBackwardInput<T>{sizes, w, dy, dx});
      run("conv2d_backward", dw.size(), kernels::Conv2dBackwardFilter<T>{sizes, x, dy, dw});
    }
    if (!dbias.empty()) run("conv2d_backward", g.out_channels, kernels::Conv2dBackwardBias<T>{sizes, dy, dbias});
  }
  template <class T>
  static void pool2d_forward(const PoolGeometry& g, Reduce kind, In<T> x, MatrixRef<T> y,
                             MatrixRef<std::uint32_t> argmax = {}) {
    detail::check::shape(who(), "pool2d_forward", x, x.rows, g.in_dim(), "x");
    detail::check::shape(who(), "pool2d_forward", y, x.rows, g.out_dim(), "y");
    if (kind == Reduce::max) detail::check::same_shape(who(), "pool2d_forward (argmax)", argmax, y);
    run("pool2d_forward", y.size(), kernels::Pool2dForward<T>{kernels::PoolSizes::of(g), kind, x, y, argmax});
  }
  template <class T>
  static void pool2d_backward(const PoolGeometry& g, Reduce kind, In<T> dy, Index argmax, MatrixRef<T> dx) {
    detail::check::shape(who(), "pool2d_backward", dy, dy.rows, g.out_dim(), "dy");
    detail::check::shape(who(), "pool2d_backward", dx, dy.rows, g.in_dim(), "dx");
    fill(dx, T(0));
    run("pool2d_backward", dy.size(), kernels::Pool2dBackward<T>{kernels::PoolSizes::of(g), kind, dy, argmax, dx});
  }

  // ---- vectors in R^3 ---------------------------------------------------------------------------------------------

  template <class T>
  static void vector_norms(In<T> x, Scalar<T> eps, MatrixRef<T> n) {
    detail::check::vectors(who(), "vector_norms", x);
    detail::check::shape(who(), "vector_norms", n, x.rows / 3, x.cols, "n");
    run("vector_norms", n.size(), kernels::VectorNorms<T>{x, eps, n});
  }
  template <class T>
  static void vector_rescale(In<T> x, In<T> n, In<T> m, MatrixRef<T> y) {
    check_vectors("vector_rescale", x, n);
    detail::check::same_shape(who(), "vector_rescale", x, y);
    detail::check::same_shape(who(), "vector_rescale", n, m);
    run("vector_rescale", n.size(), kernels::VectorRescale<T>{x, n, m, y});
  }
  template <class T>
  static void vector_rescale_backward(In<T> x, In<T> n, In<T> m, In<T> dy, MatrixRef<T> dm, MatrixRef<T> dn) {
    check_vectors("vector_rescale_backward", x, n);
    detail::check::same_shape(who(), "vector_rescale_backward", x, dy);
    detail::check::same_shape(who(), "vector_rescale_backward", n, dm);
    detail::check::same_shape(who(), "vector_rescale_backward", n, dn);
    run("vector_rescale_backward", n.size(), kernels::VectorRescaleBackward<T>{x, n, m, dy, dm, dn});
  }
  template <class T>
  static void vector_rescale_input_grad(In<T> x, In<T> n, In<T> m, In<T> dy, In<T> dn, Scalar<T> eps,
                                        MatrixRef<T> dx) {
    check_vectors("vector_rescale_input_grad", x, n);
    detail::check::same_shape(who(), "vector_rescale_input_grad", x, dy);
    detail::check::same_shape(who(), "vector_rescale_input_grad", x, dx);
    run("vector_rescale_input_grad", n.size(), kernels::VectorRescaleInputGrad<T>{x, n, m, dy, dn, eps, dx});
  }
  template <class T>
  static void vn_leaky_relu(In<T> x, In<T> d, Scalar<T> slope, Scalar<T> eps, MatrixRef<T> y) {
    detail::check::vectors(who(), "vn_leaky_relu", x);
    detail::check::same_shape(who(), "vn_leaky_relu", x, d);
    detail::check::same_shape(who(), "vn_leaky_relu", x, y);
    run("vn_leaky_relu", x.size() / 3, kernels::VNLeakyReLU<T>{x, d, slope, eps, y});
  }
  template <class T>
  static void vn_leaky_relu_backward(In<T> x, In<T> d, Scalar<T> slope, Scalar<T> eps, In<T> dy, MatrixRef<T> dx,
                                     MatrixRef<T> dd) {
    detail::check::vectors(who(), "vn_leaky_relu_backward", x);
    detail::check::same_shape(who(), "vn_leaky_relu_backward", x, d);
    detail::check::same_shape(who(), "vn_leaky_relu_backward", x, dy);
    detail::check::same_shape(who(), "vn_leaky_relu_backward", x, dx);
    detail::check::same_shape(who(), "vn_leaky_relu_backward", x, dd);
    run("vn_leaky_relu_backward", x.size() / 3, kernels::VNLeakyReLUBackward<T>{x, d, slope, eps, dy, dx, dd});
  }
  template <class T>
  static void vn_invariant(In<T> x, In<T> z, MatrixRef<T> y) {
    detail::check::vectors(who(), "vn_invariant", x);
    detail::check::shape(who(), "vn_invariant", z, x.rows, 3, "z");
    detail::check::shape(who(), "vn_invariant", y, x.rows / 3, 3 * x.cols, "y");
    run("vn_invariant", y.size(), kernels::VNInvariant<T>{x, z, y});
  }
  template <class T>
  static void vn_invariant_backward(In<T> x, In<T> z, In<T> dy, MatrixRef<T> dx, MatrixRef<T> dz) {
    detail::check::vectors(who(), "vn_invariant_backward", x);
    detail::check::shape(who(), "vn_invariant_backward", z, x.rows, 3, "z");
    detail::check::shape(who(), "vn_invariant_backward", dy, x.rows / 3, 3 * x.cols, "dy");
    detail::check::same_shape(who(), "vn_invariant_backward", x, dx);
    detail::check::same_shape(who(), "vn_invariant_backward", z, dz);
    run("vn_invariant_backward", x.rows, kernels::VNInvariantBackward<T>{x, z, dy, dx, dz});
  }

  // ---- graphs -----------------------------------------------------------------------------------------------------

  template <class T>
  static void egnn_edge_input(const GraphShape& gs, Index row, Index col, In<T> x, In<T> p, In<T> q, In<T> bias,
                              In<T> w_radial, MatrixRef<T> diff, MatrixRef<T> radial, MatrixRef<T> z) {
    detail::check::edge_lists(who(), gs, row, col);
    detail::check::graph_nodes(who(), "egnn_edge_input", x, gs, "x");
    detail::check::graph_nodes(who(), "egnn_edge_input", p, gs, "p");
    detail::check::same_shape(who(), "egnn_edge_input", p, q);
    detail::check::graph_edges(who(), "egnn_edge_input", z, gs, "z");
    detail::check::shape(who(), "egnn_edge_input", z, gs.edge_rows(), p.cols, "z");
    detail::check::row_vector(who(), "egnn_edge_input", bias, z.cols);
    detail::check::shape(who(), "egnn_edge_input", w_radial, z.cols, 1, "w_radial");
    detail::check::shape(who(), "egnn_edge_input", diff, gs.edge_rows(), x.cols, "diff");
    detail::check::shape(who(), "egnn_edge_input", radial, gs.edge_rows(), 1, "radial");
    run("egnn_edge_input", gs.edge_rows(),
        kernels::EgnnEdgeInput<T>{gs, row, col, x, p, q, bias, w_radial, diff, radial, z});
  }
  template <class T>
  static void egnn_aggregate(const GraphShape& gs, Index row, In<T> inv_degree, In<T> x, In<T> v, In<T> diff,
                             In<T> coef, In<T> speed, Scalar<T> clamp, In<T> m, MatrixRef<T> x_out,
                             MatrixRef<T> agg) {
    detail::check::edge_lists(who(), gs, row, row);
    detail::check::graph_nodes(who(), "egnn_aggregate", x_out, gs, "x_out");
    detail::check::same_shape(who(), "egnn_aggregate", x, x_out);
    detail::check::same_shape(who(), "egnn_aggregate", v, x_out);
    detail::check::shape(who(), "egnn_aggregate", diff, gs.edge_rows(), x.cols, "diff");
    detail::check::shape(who(), "egnn_aggregate", coef, gs.edge_rows(), 1, "coef");
    detail::check::shape(who(), "egnn_aggregate", speed, gs.node_rows(), 1, "speed");
    detail::check::row_vector(who(), "egnn_aggregate", inv_degree, gs.nodes);
    if (!m.empty()) {
      detail::check::graph_edges(who(), "egnn_aggregate", m, gs, "m");
      detail::check::shape(who(), "egnn_aggregate", agg, gs.node_rows(), m.cols, "agg");
    }
    run("egnn_aggregate", gs.node_rows(),
        kernels::EgnnAggregate<T>{gs, row, inv_degree, x, v, diff, coef, speed, clamp, m, x_out, agg});
  }
  template <class T>
  static void egnn_aggregate_backward(const GraphShape& gs, Index row, In<T> inv_degree, In<T> diff, In<T> coef,
                                      Scalar<T> clamp, In<T> dx_out, In<T> dagg, MatrixRef<T> dcoef,
                                      MatrixRef<T> dm) {
    detail::check::edge_lists(who(), gs, row, row);
    detail::check::graph_edges(who(), "egnn_aggregate_backward", diff, gs, "diff");
    detail::check::shape(who(), "egnn_aggregate_backward", coef, gs.edge_rows(), 1, "coef");
    detail::check::shape(who(), "egnn_aggregate_backward", dx_out, gs.node_rows(), diff.cols, "dx_out");
    detail::check::shape(who(), "egnn_aggregate_backward", dcoef, gs.edge_rows(), 1, "dcoef");
    detail::check::graph_edges(who(), "egnn_aggregate_backward", dm, gs, "dm");
    if (!dagg.empty()) detail::check::shape(who(), "egnn_aggregate_backward", dagg, gs.node_rows(), dm.cols, "dagg");
    run("egnn_aggregate_backward", gs.edge_rows(),
        kernels::EgnnAggregateBackward<T>{gs, row, inv_degree, diff, coef, clamp, dx_out, dagg, dcoef, dm});
  }
  template <class T>
  static void egnn_edge_input_backward(const GraphShape& gs, Index row, Index col, In<T> inv_degree, In<T> diff,
                                       In<T> radial, In<T> coef, Scalar<T> clamp, In<T> dx_out, In<T> dz,
                                       In<T> w_radial, MatrixRef<T> dp, MatrixRef<T> dq, MatrixRef<T> dx,
                                       MatrixRef<T> dw_radial) {
    detail::check::edge_lists(who(), gs, row, col);
    detail::check::graph_edges(who(), "egnn_edge_input_backward", dz, gs, "dz");
    detail::check::shape(who(), "egnn_edge_input_backward", dp, gs.node_rows(), dz.cols, "dp");
    detail::check::same_shape(who(), "egnn_edge_input_backward", dp, dq);
    detail::check::graph_nodes(who(), "egnn_edge_input_backward", dx_out, gs, "dx_out");
    detail::check::same_shape(who(), "egnn_edge_input_backward", dx_out, dx);
    detail::check::shape(who(), "egnn_edge_input_backward", diff, gs.edge_rows(), dx.cols, "diff");
    detail::check::shape(who(), "egnn_edge_input_backward", radial, gs.edge_rows(), 1, "radial");
    detail::check::shape(who(), "egnn_edge_input_backward", w_radial, dz.cols, 1, "w_radial");
    detail::check::shape(who(), "egnn_edge_input_backward", dw_radial, dz.cols, 1, "dw_radial");
    run("egnn_edge_input_backward", gs.node_rows(),
        kernels::EgnnEdgeInputBackwardNodes<T>{gs, row, col, inv_degree, diff, coef, clamp, dx_out, dz, w_radial, dp,
                                               dq, dx});
    run("egnn_edge_input_backward", dz.cols, kernels::EgnnRadialGrad<T>{dz, radial, dw_radial});
  }

  // A whole EGNN layer per direction (backend/egnn_fused.hpp): one block of fused_threads threads per graph.
  static constexpr unsigned fused_threads = 256;
  template <class T>
  static void egnn_layer_forward(const EgnnLayerViews<T>& a) {
    check_egnn_layer(a, "egnn_layer_forward");
    detail::check::shape(who(), "egnn_layer_forward", a.x_out, a.gs.node_rows(), a.x.cols, "x_out");
    if (a.features) detail::check::shape(who(), "egnn_layer_forward", a.h_out, a.gs.node_rows(), a.h.cols, "h_out");
    if (a.gs.graphs != 0)
      Exec::run_blocks("egnn_layer_forward", a.gs.graphs, fused_threads, kernels::EgnnLayerForward<T>{a});
  }
  template <class T>
  static void egnn_layer_backward(const EgnnLayerViews<T>& a, const EgnnLayerGradients<T>& g) {
    const char* op = "egnn_layer_backward";
    check_egnn_layer(a, op);
    const GraphShape& gs = a.gs;
    const std::size_t hd = a.h.cols, dim = a.x.cols;
    using detail::check::shape;
    if (a.features) {
      shape(who(), op, g.dh_out, gs.node_rows(), hd, "dh_out");
      shape(who(), op, g.dz5, gs.node_rows(), hd, "dz5");
      shape(who(), op, g.dagg, gs.node_rows(), hd, "dagg");
    }
    shape(who(), op, g.dx_out, gs.node_rows(), dim, "dx_out");
    shape(who(), op, g.dh, gs.node_rows(), hd, "dh");
    shape(who(), op, g.dx, gs.node_rows(), dim, "dx");
    shape(who(), op, g.dcv, gs.node_rows(), 1, "dcv");
    for (auto [v, name] : {std::pair{g.dzv, "dzv"}, {g.dp, "dp"}, {g.dq, "dq"}})
      shape(who(), op, v, gs.node_rows(), hd, name);
    shape(who(), op, g.dcw, gs.edge_rows(), 1, "dcw");
    for (auto [v, name] : {std::pair{g.dzc, "dzc"}, {g.dz2, "dz2"}, {g.dz1, "dz1"}})
      shape(who(), op, v, gs.edge_rows(), hd, name);
    if (a.branches.on) {
      if (a.features) {
        shape(who(), op, g.branches.doh, gs.node_rows(), hd, "doh");
        shape(who(), op, g.branches.dzh, gs.node_rows(), hd, "dzh");
      }
      shape(who(), op, g.branches.dox, gs.node_rows(), dim, "dox");
      shape(who(), op, g.branches.dzx, gs.node_rows(), hd, "dzx");
    }
    if (gs.graphs != 0) Exec::run_blocks(op, gs.graphs, fused_threads, kernels::EgnnLayerBackward<T>{a, g});
  }

  // ---- losses -----------------------------------------------------------------------------------------------------

  /// The returning forms read the loss back to the host (a synchronisation); the forms with `out` leave it in
  /// backend memory.
  template <class Op, class T>
  static T elementwise_loss(In<T> pred, In<T> target, MatrixRef<T> grad) {
    return static_cast<T>(read_scalar(loss_on_device<Op, T>(pred, target, grad)));
  }
  template <class Op, class T>
  static void elementwise_loss(In<T> pred, In<T> target, MatrixRef<T> grad, MatrixRef<double> out) {
    detail::check::scalar(who(), "elementwise_loss", out);
    copy_scalar(loss_on_device<Op, T>(pred, target, grad), out);
  }
  template <class T>
  static T softmax_cross_entropy(In<T> logits, Index labels, MatrixRef<T> grad) {
    return static_cast<T>(read_scalar(cross_entropy_on_device(logits, labels, grad)));
  }
  template <class T>
  static void softmax_cross_entropy(In<T> logits, Index labels, MatrixRef<T> grad, MatrixRef<double> out) {
    detail::check::scalar(who(), "softmax_cross_entropy", out);
    copy_scalar(cross_entropy_on_device(logits, labels, grad), out);
  }

  // ---- constrained optimisation -----------------------------------------------------------------------------------

  template <class T>
  static void constraint_terms(const ConstraintForm& f, In<T> gamma, In<T> slack, In<double> lambda,
                               MatrixRef<T> gamma_grad, MatrixRef<T> slack_grad, MatrixRef<double> s) {
    detail::check::constraint_terms(who(), f, gamma, slack, lambda, gamma_grad, slack_grad, s);
    run("constraint_terms", gamma.size(),
        kernels::ConstraintTerms<T>{f, gamma, slack, lambda, gamma_grad, slack_grad, s});
  }
  static void dual_ascent(const ConstraintForm& f, const DualStep& d, In<double> t, In<double> s,
                          MatrixRef<double> lambda, MatrixRef<double> m, MatrixRef<double> v) {
    detail::check::dual_ascent(who(), t, s, lambda, m, v);
    run("dual_ascent", s.size(), kernels::DualAscent{f, d, t.data, s, lambda, m, v});
  }

  // ---- optimisers -------------------------------------------------------------------------------------------------

  template <class T>
  static void sgd_update(MatrixRef<T> value, In<T> grad, MatrixRef<T> momentum, const SgdStep& s) {
    detail::check::same_shape(who(), "sgd_update", value, grad);
    if (s.momentum != 0.0) detail::check::same_shape(who(), "sgd_update", value, momentum);
    check_contiguous("sgd_update", value, grad);
    run("sgd_update", value.size(),
        kernels::SgdUpdate<T>{value.data, grad.data, momentum.data, static_cast<T>(s.lr), static_cast<T>(s.momentum),
                              static_cast<T>(s.weight_decay), s.momentum != 0.0, s.first, s.nesterov});
  }
  template <class T>
  static void adam_update(MatrixRef<T> value, In<T> grad, MatrixRef<T> m, MatrixRef<T> v, const AdamStep& s,
                          In<double> t) {
    detail::check::same_shape(who(), "adam_update", value, grad);
    detail::check::same_shape(who(), "adam_update", value, m);
    detail::check::same_shape(who(), "adam_update", value, v);
    detail::check::scalar(who(), "adam_update", t);
    check_contiguous("adam_update", value, grad);
    run("adam_update", value.size(), kernels::AdamUpdate<T>{value.data, grad.data, m.data, v.data, s, t.data});
  }

  /// Optional (MultiTensorBackend): adam_update for many tensors in a few launches (AdamTensor: each with its own
  /// step), and x = value for many contiguous views (the gradients' zeroing): a model's dozens of small parameter
  /// tensors would otherwise cost a launch each.
  template <class T>
  static void adam_update_many(std::span<const AdamTensor<T>> tensors, In<double> t) {
    detail::check::scalar(who(), "adam_update_many", t);
    kernels::AdamUpdateMany<T> kernel{};
    kernel.t = t.data;
    run_many("adam_update_many", tensors.size(), kernel,
             [&](kernels::AdamUpdateMany<T>& f, std::size_t k, std::size_t i) {
               f.tensors[k] = tensors[i];
               return tensors[i].size;
             });
  }
  template <class T>
  static void fill_many(std::span<const VectorRef<T>> xs, Scalar<T> value) {
    kernels::FillMany<T> kernel{};
    kernel.value = value;
    run_many("fill_many", xs.size(), kernel,
             [&](kernels::FillMany<T>& f, std::size_t k, std::size_t i) {
               f.data[k] = xs[i].data();
               return xs[i].size();
             });
  }

  // ---- execution --------------------------------------------------------------------------------------------------

  /// A recorded sequence of this backend's operations (a CUDA graph on the device, a tape in the host emulation):
  /// `capture(f)` records the operations f() issues without running them; `g.replay()` runs them again on the same
  /// memory. See Exec::capture for what a recording cannot contain.
  using graph = typename Exec::graph;
  template <class F>
  static graph capture(F&& f) {
    return Exec::capture(std::forward<F>(f));
  }

  /// Runs f(0), ..., f(n - 1) one after the other on the calling thread: their operations queue on one stream.
  template <class F>
  static void parallel_tasks(std::size_t n, F&& f) {
    for (std::size_t k = 0; k < n; ++k) f(k);
  }

 private:
  // Runs the multi-tensor kernel f over n tensors, F::capacity per launch: put(f, k, i) writes tensor i's descriptor
  // into slot k and returns its number of entries; f.start and f.count are filled here.
  template <class F, class Put>
  static void run_many(const char* op, std::size_t n, F f, Put&& put) {
    for (std::size_t first = 0; first < n; first += F::capacity) {
      f.count = std::min(F::capacity, n - first);
      std::size_t total = 0;
      for (std::size_t k = 0; k < f.count; ++k) {
        f.start[k] = total;
        total += put(f, k, first + k);
      }
      f.start[f.count] = total;
      run(op, total, f);
    }
  }
  // Every view of a fused EGNN layer against the sizes h, x and edge_attr imply.
  template <class T>
  static void check_egnn_layer(const EgnnLayerViews<T>& a, const char* op) {
    using detail::check::shape;
    const GraphShape& gs = a.gs;
    detail::check::edge_lists(who(), gs, a.row, a.col);
    detail::check::graph_nodes(who(), op, a.h, gs, "h");
    detail::check::graph_edges(who(), op, a.edge_attr, gs, "edge_attr");
    const std::size_t hd = a.h.cols, dim = a.x.cols, nr = gs.node_rows(), er = gs.edge_rows();
    shape(who(), op, a.x, nr, dim, "x");
    shape(who(), op, a.v, nr, dim, "v");
    detail::check::row_vector(who(), op, a.inv_degree, gs.nodes);
    shape(who(), op, a.edge1_w, hd, 2 * hd + 1 + a.edge_attr.cols, "edge1_w");
    shape(who(), op, a.edge2_w, hd, hd, "edge2_w");
    shape(who(), op, a.coord1_w, hd, hd, "coord1_w");
    shape(who(), op, a.coord2_w, 1, hd, "coord2_w");
    shape(who(), op, a.vel1_w, hd, hd, "vel1_w");
    shape(who(), op, a.vel2_w, 1, hd, "vel2_w");
    shape(who(), op, a.vel2_b, 1, 1, "vel2_b");
    shape(who(), op, a.node1_w, hd, 2 * hd, "node1_w");
    shape(who(), op, a.node2_w, hd, hd, "node2_w");
    for (auto b : {a.edge1_b, a.edge2_b, a.coord1_b, a.vel1_b, a.node1_b, a.node2_b})
      detail::check::row_vector(who(), op, b, hd);
    for (auto [v, name] : {std::pair{a.p, "p"}, {a.q, "q"}, {a.zv, "zv"}, {a.sv, "sv"}})
      shape(who(), op, v, nr, hd, name);
    if (a.features)
      for (auto [v, name] : {std::pair{a.agg, "agg"}, {a.z5, "z5"}, {a.s5, "s5"}}) shape(who(), op, v, nr, hd, name);
    shape(who(), op, a.cv, nr, 1, "cv");
    shape(who(), op, a.diff, er, dim, "diff");
    shape(who(), op, a.radial, er, 1, "radial");
    shape(who(), op, a.cw, er, 1, "cw");
    for (auto [v, name] : {std::pair{a.z1, "z1"}, {a.s1, "s1"}, {a.z2, "z2"}, {a.m, "m"}, {a.zc, "zc"}, {a.sc, "sc"}})
      shape(who(), op, v, er, hd, name);
    const EgnnBranchViews<T>& b = a.branches;
    if (!b.on) return;
    const std::size_t raw = b.raw.cols, in = hd + 2 * dim + raw;
    detail::check::graph_nodes(who(), op, b.raw, gs, "branches.raw");
    shape(who(), op, b.gamma_h, 1, 1, "branches.gamma_h");
    shape(who(), op, b.gamma_x, 1, 1, "branches.gamma_x");
    shape(who(), op, b.h1_w, hd, in, "branches.h1_w");
    shape(who(), op, b.h2_w, hd, hd, "branches.h2_w");
    shape(who(), op, b.x1_w, hd, in - hd, "branches.x1_w");
    shape(who(), op, b.x2_w, dim, hd, "branches.x2_w");
    for (auto v : {b.h1_b, b.h2_b, b.x1_b}) detail::check::row_vector(who(), op, v, hd);
    detail::check::row_vector(who(), op, b.x2_b, dim);
    shape(who(), op, b.input, nr, in, "branches.input");
    if (a.features)
      for (auto [v, name] : {std::pair{b.zh, "branches.zh"}, {b.sh, "branches.sh"}, {b.oh, "branches.oh"}})
        shape(who(), op, v, nr, hd, name);
    shape(who(), op, b.zx, nr, hd, "branches.zx");
    shape(who(), op, b.sx, nr, hd, "branches.sx");
    shape(who(), op, b.ox, nr, dim, "branches.ox");
  }
  // The mean loss left in backend memory (nullptr for an empty prediction: the loss is 0).
  template <class Op, class T>
  static const double* loss_on_device(In<T> pred, In<T> target, MatrixRef<T> grad) {
    detail::check::same_shape(who(), "elementwise_loss", pred, target);
    detail::check::same_shape(who(), "elementwise_loss", pred, grad);
    const std::size_t n = pred.size();
    if (n == 0) return nullptr;
    const std::size_t parts = parts_for(n);
    double* part = partials(parts);
    run("elementwise_loss", parts, kernels::ElementwiseLoss<Op, T>{pred, target, grad, part, parts});
    run("elementwise_loss", 1, kernels::LossFinal<T>{part, parts, static_cast<double>(n), part + parts});
    return part + parts;
  }
  template <class T>
  static const double* cross_entropy_on_device(In<T> logits, Index labels, MatrixRef<T> grad) {
    detail::check::same_shape(who(), "softmax_cross_entropy", logits, grad);
    detail::check::shape(who(), "softmax_cross_entropy", labels, 1, logits.rows, "labels");
    const std::size_t batch = logits.rows;
    if (batch == 0) return nullptr;
    double* loss = partials(batch);
    run("softmax_cross_entropy", batch,
        kernels::SoftmaxCrossEntropy<T>{logits, labels, grad, loss, Exec::index_error()});
    run("softmax_cross_entropy", 1, kernels::LossFinal<T>{loss, batch, static_cast<double>(batch), loss + batch});
    return loss + batch;
  }
  // A scalar of backend memory on the host (0 for nullptr).
  static double read_scalar(const double* p) {
    double v = 0.0;
    if (p) Exec::read(&v, p, sizeof(double));
    return v;
  }
  // *p (0 for nullptr) into the 1×1 view out, in backend memory.
  static void copy_scalar(const double* p, MatrixRef<double> out) {
    if (p) Exec::copy_2d(out.data, sizeof(double), p, sizeof(double), sizeof(double), 1, Direction::on_device);
    else fill(out, 0.0);
  }
  template <class T>
  static std::size_t ld(MatrixRef<T> m) {
    return std::max<std::size_t>({m.stride, m.cols, 1});
  }
  static std::size_t field_count(Index offsets) {
    ACE_THROW_IF(offsets.rows != 1 || offsets.cols == 0, shape_error, who(), ": field offsets must be a row of ",
                 "fields + 1 entries, got [", offsets.rows, ", ", offsets.cols, "]");
    return offsets.cols - 1;
  }
  template <class T>
  static void check_fields(const char* op, MatrixRef<T> x, const FieldLayout& l, Index field_of) {
    detail::check::fields(who(), op, x, l);
    detail::check::shape(who(), op, field_of, 1, l.channels, "field_of");
  }
  template <class U, class V>
  static void check_vectors(const char* op, MatrixRef<U> x, MatrixRef<V> n) {
    detail::check::vectors(who(), op, x);
    detail::check::shape(who(), op, n, x.rows / 3, x.cols, "n");
  }
  template <class U, class V>
  static void check_contiguous(const char* op, MatrixRef<U> a, MatrixRef<V> b) {
    ACE_THROW_IF(!a.contiguous() || !b.contiguous(), shape_error, who(), "::", op,
                 ": parameters and gradients must be contiguous views");
  }
};

}  // namespace ace
