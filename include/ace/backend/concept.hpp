// SPDX-License-Identifier: MIT
// The Backend concept: the storage and the operations layers, losses, optimisers and models are written against, so
// each of them is written once for every backend (docs/backends.md lists every operation and what it computes).
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "ace/backend/geometry.hpp"
#include "ace/backend/ops.hpp"
#include "ace/tensor/tensor.hpp"

namespace ace {

namespace detail {
/// A task for parallel_tasks in the concept's check (a named type: no lambdas inside requires-expressions).
struct NoTask {
  void operator()(std::size_t) const noexcept {}
};
}  // namespace detail

/// What a backend offers for one scalar type T (float and double are both required):
///  * storage: `tensor<T, N>` (N = 1, 2, 4), a DenseStorage type whose memory only the backend's operations touch;
///  * transfers: `to_host(view, span)`, `from_host(span, view)`: the only way host code reads or writes entries;
///  * `fill`, `copy`, `axpy`, `scale`, `add`; reductions `sum`, `dot`, `sum_squares`, `max_abs` (double results),
///    `reduce_into` (a double in backend memory accumulates them: no transfer), `scale_to_norm` (clipping by it);
///    `add_scaled`, `scaled_copy`, `accumulate_dot` with a scalar that stays in backend memory (a relaxation γ);
///  * dense layers: `gemm` on strided views, `add_row` (bias), `sum_rows` (bias gradient), `row_dot`;
///  * `map<Op>` / `map_backward<Op>` for elementwise Op structs (ops.hpp);
///  * `sparse_map` / `sparse_map_adjoint` (equivariant bases, filter banks), `gather_rows` / `scatter_add_rows`;
///  * `segment_reduce` / `segment_reduce_backward` (set and group pooling), `pair_transpose`, `pair_pool`,
///    `pair_broadcast` (second-order set layers);
///  * `norm_nonlinearity<Op>`, `gate_fields` and their backward passes (fields);
///  * O(3) features (o3_ops.hpp): `tensor_product_contract`, `swish_gate` and their backward passes,
///    `spherical_harmonics` of vectors;
///  * `batch_norm_statistics`, `batch_norm_forward`, `batch_norm_backward`;
///  * images: `convolution<T>` (state built from a ConvGeometry), `conv2d_forward`, `conv2d_backward`,
///    `pool2d_forward`, `pool2d_backward`;
///  * vectors in R^3: `vector_norms`, `vector_rescale` (+ backward, input gradient), `vn_leaky_relu`, `vn_invariant`
///    and their backward passes;
///  * graphs: `egnn_edge_input`, `egnn_aggregate` and their backward passes;
///  * losses: `elementwise_loss<Op>`, `softmax_cross_entropy` (the value returned, or written to a double in backend
///    memory); optimisers: `sgd_update`, `adam_update`;
///  * constrained optimisation: `constraint_terms` (the Lagrangian's terms in the primal gradient, ConstraintForm) and
///    `dual_ascent` (double multipliers, DualStep);
///  * `parallel_tasks(n, f)`: independent tasks, concurrently where the backend can.
template <class B, class T>
concept BackendFor = requires(MatrixRef<T> m, MatrixRef<const T> c, MatrixRef<const std::uint32_t> i,
                              MatrixRef<std::uint32_t> mi, MatrixRef<double> d, std::span<T> host,
                              std::span<const T> chost, T s, const FieldLayout& fl, const PoolGeometry& pg,
                              const ConvGeometry& cg, const GraphShape& gs, const SgdStep& sgd, const AdamStep& adam,
                              MatrixRef<const double> cd, const ConstraintForm& form,
                              typename B::template convolution<T>& conv) {
  requires DenseStorage<typename B::template tensor<T, 1>>;
  requires DenseStorage<typename B::template tensor<T, 2>>;
  requires DenseStorage<typename B::template tensor<T, 4>>;
  requires std::constructible_from<typename B::template convolution<T>, ConvGeometry>;
  B::to_host(c, host);
  B::from_host(chost, m);
  B::fill(m, s);
  B::copy(c, m);
  B::axpy(s, c, m);
  B::scale(s, m);
  B::add(c, c, m);
  { B::sum(c) } -> std::convertible_to<double>;
  { B::dot(c, c) } -> std::convertible_to<double>;
  { B::sum_squares(c) } -> std::convertible_to<double>;
  { B::max_abs(c) } -> std::convertible_to<double>;
  B::reduce_into(Accumulate::sum, c, d);
  B::scale_to_norm(cd, 1.0, m);
  B::add_scaled(c, c, m);
  B::scaled_copy(c, c, m);
  B::accumulate_dot(c, c, m);
  B::gemm(Transpose::no, Transpose::yes, s, c, c, s, m);
  B::add_row(m, c);
  B::sum_rows(c, s, m);
  B::row_dot(c, c, m);
  B::template map<SiLUOp>(c, m);
  B::template map_backward<SiLUOp>(c, c, c, m);
  B::sparse_map(i, i, c, c, m);
  B::sparse_map_adjoint(i, i, c, c, m);
  B::gather_rows(c, i, m);
  B::scatter_add_rows(c, i, m);
  B::segment_reduce(Reduce::max, c, std::size_t{1}, m, mi);
  B::segment_reduce_backward(Reduce::max, c, std::size_t{1}, i, m);
  B::pair_transpose(c, std::size_t{1}, m, true);
  B::pair_pool(c, std::size_t{1}, true, m, m);
  B::pair_broadcast(c, c, std::size_t{1}, s, s, s, m);
  B::template norm_nonlinearity<ReLUOp>(c, i, c, s, m, m);
  B::template norm_nonlinearity_backward<ReLUOp>(c, i, c, c, c, m, m);
  B::gate_fields(c, i, m, m);
  B::gate_fields_backward(c, i, c, c, m);
  B::tensor_product_contract(i, i, c, c, c, m);
  B::tensor_product_contract_backward(i, i, c, c, c, c, m, m);
  B::swish_gate(c, std::size_t{1}, i, m);
  B::swish_gate_backward(c, std::size_t{1}, i, c, m);
  B::spherical_harmonics(c, std::size_t{1}, s, m, m);
  B::batch_norm_statistics(c, fl, i, true, 0.1, 1e-5, d, d, m, m);
  B::batch_norm_forward(c, fl, i, c, c, c, c, m, m);
  B::batch_norm_backward(c, c, fl, i, c, c, true, m, m, m);
  B::conv2d_forward(conv, c, c, c, m);
  B::conv2d_backward(conv, c, c, c, m, m, m);
  B::pool2d_forward(pg, Reduce::max, c, m, mi);
  B::pool2d_backward(pg, Reduce::max, c, i, m);
  B::vector_norms(c, s, m);
  B::vector_rescale(c, c, c, m);
  B::vector_rescale_backward(c, c, c, c, m, m);
  B::vector_rescale_input_grad(c, c, c, c, c, s, m);
  B::vn_leaky_relu(c, c, s, s, m);
  B::vn_leaky_relu_backward(c, c, s, s, c, m, m);
  B::vn_invariant(c, c, m);
  B::vn_invariant_backward(c, c, c, m, m);
  B::egnn_edge_input(gs, i, i, c, c, c, c, c, m, m, m);
  B::egnn_aggregate(gs, i, c, c, c, c, c, c, s, c, m, m);
  B::egnn_aggregate_backward(gs, i, c, c, c, s, c, c, m, m);
  B::egnn_edge_input_backward(gs, i, i, c, c, c, c, s, c, c, c, m, m, m, m);
  { B::template elementwise_loss<SquaredError>(c, c, m) } -> std::convertible_to<T>;
  { B::softmax_cross_entropy(c, i, m) } -> std::convertible_to<T>;
  B::template elementwise_loss<SquaredError>(c, c, m, d);
  B::softmax_cross_entropy(c, i, m, d);
  B::constraint_terms(form, c, c, cd, m, m, d);
  B::sgd_update(m, c, m, sgd);
  B::adam_update(m, c, m, m, adam, cd);
};

/// A compute backend: a name, storage for float, double and std::uint32_t (indices), transfers of each, every
/// operation of BackendFor in float and double, and parallel_tasks. A backend states that it models the concept
/// with a static_assert next to its definition; the test batteries run on every backend of their type list.
template <class B>
concept Backend = requires(MatrixRef<const std::uint32_t> ci, MatrixRef<std::uint32_t> mi,
                           std::span<std::uint32_t> host, std::span<const std::uint32_t> chost,
                           MatrixRef<const double> cd, MatrixRef<double> md, std::span<double> hd,
                           std::span<const double> chd, const ConstraintForm& form, const DualStep& dual) {
  { B::name } -> std::convertible_to<const char*>;
  requires DenseStorage<typename B::template tensor<std::uint32_t, 2>>;
  requires DenseStorage<typename B::template tensor<double, 2>>;
  B::to_host(ci, host);
  B::from_host(chost, mi);
  B::to_host(cd, hd);
  B::from_host(chd, md);
  B::fill(md, 0.0);
  B::dual_ascent(form, dual, cd, cd, md, md, md);
  B::parallel_tasks(std::size_t{1}, detail::NoTask{});
} && BackendFor<B, float> && BackendFor<B, double>;

namespace detail {
struct NoWork {
  void operator()() const noexcept {}
};
}  // namespace detail

/// A backend that can record a sequence of its operations and replay it on the same memory (ace::Cuda: CUDA graphs,
/// which take the launch cost out of small steps): `B::capture(f)` returns a `B::graph` whose `replay()` runs what
/// f() issued. Optional; the trainer's recordings fall back to running the step again elsewhere.
template <class B>
concept RecordingBackend = requires(detail::NoWork f, const typename B::graph& g) {
  { B::capture(f) } -> std::same_as<typename B::graph>;
  g.replay();
};

/// Whether backend B's memory is the host's (its `host_memory` flag; true when it states none): then reading a value
/// costs no transfer, and the training loop checks every step.
template <class B>
inline constexpr bool backend_host_memory_v = [] {
  if constexpr (requires { B::host_memory; }) return static_cast<bool>(B::host_memory);
  else return true;
}();

/// The storage of backend B for entries T, rank N.
template <class B, class T, std::size_t N = 2>
using tensor_t = typename B::template tensor<T, N>;

/// A backend tensor of the given shape, zero-filled.
template <class B, class T, std::size_t N>
tensor_t<B, T, N> zeros(const std::array<std::size_t, N>& shape) {
  auto t = make_storage<tensor_t<B, T, N>>(shape);
  B::fill(flat(t).row(), T(0));
  return t;
}
template <class B, class T>
tensor_t<B, T, 2> zeros(std::size_t rows, std::size_t cols) {
  return zeros<B, T, 2>(std::array<std::size_t, 2>{rows, cols});
}

/// A copy of a backend view in host memory.
template <class B, class T>
std::vector<std::remove_const_t<T>> to_host_vector(MatrixRef<T> v) {
  std::vector<std::remove_const_t<T>> out(v.size());
  B::to_host(MatrixRef<const std::remove_const_t<T>>(v), std::span<std::remove_const_t<T>>(out));
  return out;
}
template <class B, class T>
std::vector<std::remove_const_t<T>> to_host_vector(VectorRef<T> v) {
  return to_host_vector<B>(v.row());
}

/// Host entries (row-major) into a backend view of the same size.
template <class B, class T>
void from_host_vector(const std::vector<T>& host, MatrixRef<T> v) {
  B::from_host(std::span<const T>(host), v);
}
template <class B, class T>
void from_host_vector(const std::vector<T>& host, VectorRef<T> v) {
  from_host_vector<B>(host, v.row());
}

/// A backend tensor with the entries and shape of a host tensor (any DenseStorage in host memory).
template <class B, DenseStorage S>
tensor_t<B, typename S::value_type, rank_v<S>> to_backend(const S& host) {
  using T = typename S::value_type;
  std::array<std::size_t, rank_v<S>> shape{};
  for (std::size_t k = 0; k < rank_v<S>; ++k) shape[k] = host.shape()[k];
  auto t = make_storage<tensor_t<B, T, rank_v<S>>>(shape);
  B::from_host(std::span<const T>(host.data(), host.size()), flat(t).row());
  return t;
}

/// A host copy (xtensor) of a backend tensor, for reading results outside a training step.
template <class B, DenseStorage S>
Tensor<typename S::value_type, rank_v<S>> to_host_tensor(const S& t) {
  using T = typename S::value_type;
  typename Tensor<T, rank_v<S>>::shape_type shape{};
  for (std::size_t k = 0; k < rank_v<S>; ++k) shape[k] = t.shape()[k];
  Tensor<T, rank_v<S>> host(shape);
  B::to_host(MatrixRef<const T>{t.data(), t.size() == 0 ? 0u : 1u, t.size(), t.size()}, std::span<T>(host.data(), host.size()));
  return host;
}

/// A backend that updates and zeroes many tensors per operation (B::adam_update_many, B::fill_many): Adam and
/// zero_grad then issue a few operations per step instead of one per parameter tensor (KernelOps backends: on a GPU
/// each operation is a kernel launch).
template <class B, class T>
concept MultiTensorBackend = requires(std::span<const AdamTensor<T>> a, std::span<const VectorRef<T>> x,
                                      MatrixRef<const double> t) {
  B::adam_update_many(a, t);
  B::fill_many(x, T(0));
};

/// A host std::vector of indices as a backend index row [1, n].
template <class B>
tensor_t<B, std::uint32_t, 2> index_tensor(const std::vector<std::uint32_t>& host) {
  auto t = make_storage<tensor_t<B, std::uint32_t, 2>>(std::array<std::size_t, 2>{1, host.size()});
  B::from_host(std::span<const std::uint32_t>(host), flat(t).row());
  return t;
}

}  // namespace ace
