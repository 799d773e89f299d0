// SPDX-License-Identifier: MIT
// Argument checks every backend runs before an operation touches memory: the same shape_error, naming the backend and
// the operation, whichever backend it is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "ace/backend/geometry.hpp"
#include "ace/backend/o3_ops.hpp"
#include "ace/backend/ops.hpp"
#include "ace/error.hpp"
#include "ace/tensor/view.hpp"

namespace ace::detail::check {

template <class A, class B>
void same_shape(const char* who, const char* op, MatrixRef<A> a, MatrixRef<B> b) {
  ACE_THROW_IF(a.rows != b.rows || a.cols != b.cols, shape_error, who, "::", op, ": shapes [", a.rows, ", ", a.cols,
               "] and [", b.rows, ", ", b.cols, "] differ");
}

template <class A>
void shape(const char* who, const char* op, MatrixRef<A> a, std::size_t rows, std::size_t cols, const char* name) {
  ACE_THROW_IF(a.rows != rows || a.cols != cols, shape_error, who, "::", op, ": ", name, " is [", a.rows, ", ",
               a.cols, "], expected [", rows, ", ", cols, "]");
}

template <class A, class S>
void host_size(const char* who, const char* op, MatrixRef<A> a, std::span<S> host) {
  ACE_THROW_IF(a.size() != host.size(), shape_error, who, "::", op, ": a view of ", a.rows, " x ", a.cols,
               " entries and a host buffer of ", host.size());
}

template <class A>
void scalar(const char* who, const char* op, MatrixRef<A> s) {
  ACE_THROW_IF(s.size() != 1, shape_error, who, "::", op, ": the scale must be one entry, got [", s.rows, ", ",
               s.cols, "]");
}

/// m x k times k x n into m x n for op(a) op(b).
template <class T>
void gemm(const char* who, Transpose ta, Transpose tb, MatrixRef<const T> a, MatrixRef<const T> b, MatrixRef<T> c) {
  const std::size_t m = ta == Transpose::no ? a.rows : a.cols, k = ta == Transpose::no ? a.cols : a.rows;
  const std::size_t kb = tb == Transpose::no ? b.rows : b.cols, n = tb == Transpose::no ? b.cols : b.rows;
  ACE_THROW_IF(k != kb || c.rows != m || c.cols != n, shape_error, who, "::gemm: op(a) is ", m, " x ", k,
               ", op(b) is ", kb, " x ", n, ", c is ", c.rows, " x ", c.cols);
}

template <class T>
void row_vector(const char* who, const char* op, MatrixRef<T> v, std::size_t cols) {
  ACE_THROW_IF(v.rows != 1 || v.cols != cols, shape_error, who, "::", op, ": row of shape [", v.rows, ", ", v.cols,
               "] for a tensor with ", cols, " columns");
}

template <class A, class B>
void segments(const char* who, const char* op, MatrixRef<A> many, std::size_t segment, MatrixRef<B> few) {
  ACE_THROW_IF(segment == 0 || many.rows != few.rows * segment || many.cols != few.cols, shape_error, who, "::", op,
               ": ", many.rows, " x ", many.cols, " rows in segments of ", segment, " against ", few.rows, " x ",
               few.cols);
}

template <class A>
void pairs(const char* who, const char* op, MatrixRef<A> x, std::size_t n) {
  ACE_THROW_IF(n == 0 || x.cols % (n * n) != 0, shape_error, who, "::", op, ": a row of ", x.cols,
               " entries is not N x N pairs for N = ", n);
}

template <class A>
void vectors(const char* who, const char* op, MatrixRef<A> x) {
  ACE_THROW_IF(x.rows % 3 != 0, shape_error, who, "::", op, ": vector rows come in threes per point, got ", x.rows,
               " rows");
}

template <class A>
void fields(const char* who, const char* op, MatrixRef<A> x, const FieldLayout& l) {
  ACE_THROW_IF(x.size() != l.size() || !x.contiguous(), shape_error, who, "::", op, ": a view of ", x.rows, " x ",
               x.cols, " entries for a field layout of ", l.outer, " x ", l.channels, " x ", l.inner);
}

template <class A>
void graph_nodes(const char* who, const char* op, MatrixRef<A> x, const GraphShape& g, const char* name) {
  ACE_THROW_IF(x.rows != g.node_rows(), shape_error, who, "::", op, ": ", name, " has ", x.rows, " rows for ",
               g.graphs, " graphs of ", g.nodes, " nodes");
}

template <class A>
void graph_edges(const char* who, const char* op, MatrixRef<A> x, const GraphShape& g, const char* name) {
  ACE_THROW_IF(x.rows != g.edge_rows(), shape_error, who, "::", op, ": ", name, " has ", x.rows, " rows for ",
               g.graphs, " graphs of ", g.edges, " edges");
}

/// Images x [batch, in_dim], filters w [out_channels, patch] and outputs y [batch, out_dim] of a convolution.
template <class U, class V, class W>
void conv(const char* who, const ConvGeometry& g, MatrixRef<U> x, MatrixRef<V> w, MatrixRef<W> y) {
  shape(who, "conv2d", x, x.rows, g.in_dim(), "x");
  shape(who, "conv2d", w, g.out_channels, g.patch(), "w");
  shape(who, "conv2d", y, x.rows, g.out_dim(), "y");
}

/// The edge lists row and col of a graph batch: one entry per edge.
template <class I>
void edge_lists(const char* who, const GraphShape& gs, MatrixRef<I> row, MatrixRef<I> col) {
  shape(who, "egnn", row, 1, gs.edges, "row");
  shape(who, "egnn", col, 1, gs.edges, "col");
}

/// tensor_product_contract (and its backward): a path table of TensorProductColumns::count columns, one coefficient per
/// entry, and x1, x2 and z (or dz) with one row per sample.
template <class T>
void tensor_product(const char* who, const char* op, MatrixRef<const std::uint32_t> paths,
                    MatrixRef<const std::uint32_t> entries, MatrixRef<const T> values, MatrixRef<const T> x1,
                    MatrixRef<const T> x2, MatrixRef<const T> z) {
  ACE_THROW_IF(paths.rows != 0 && paths.cols != TensorProductColumns::count, shape_error, who, "::", op,
               ": the path table has ", paths.cols, " columns, expected ", std::size_t{TensorProductColumns::count});
  same_shape(who, op, entries, values);
  ACE_THROW_IF(x1.rows != z.rows || x2.rows != z.rows, shape_error, who, "::", op, ": x1 [", x1.rows, ", ", x1.cols,
               "], x2 [", x2.rows, ", ", x2.cols, "] and z [", z.rows, ", ", z.cols, "] need the same rows");
}
/// swish_gate (and its backward): x = [scalars | gates | gated] and y (or dy) = [scalars | gated], one row per sample.
template <class T>
void swish_gate(const char* who, const char* op, MatrixRef<const T> x, std::size_t scalars, MatrixRef<const T> y) {
  ACE_THROW_IF(y.rows != x.rows || y.cols < scalars || x.cols < y.cols, shape_error, who, "::", op, ": x [", x.rows,
               ", ", x.cols, "] (scalars, gates, gated) and y [", y.rows, ", ", y.cols, "] (scalars, gated) with ",
               scalars, " scalars");
}
/// spherical_harmonics: vectors [n, 3], lmax <= 3, y [n, (lmax + 1)²], norms [n, 1] or empty.
template <class T>
void spherical_harmonics(const char* who, MatrixRef<const T> v, std::size_t lmax, MatrixRef<T> y, MatrixRef<T> norms) {
  ACE_THROW_IF(lmax > 3, invalid_argument, who, "::spherical_harmonics: lmax = ", lmax, " (implemented up to 3)");
  shape(who, "spherical_harmonics", v, v.rows, 3, "v");
  shape(who, "spherical_harmonics", y, v.rows, (lmax + 1) * (lmax + 1), "y");
  if (norms.cols != 0) shape(who, "spherical_harmonics", norms, v.rows, 1, "norms");
}
/// constraint_terms: n = gamma.size() constraints; gamma_grad like gamma; lambda and s rows of n; slack and
/// slack_grad rows of n when the form has slacks (otherwise ignored).
template <class T>
void constraint_terms(const char* who, const ConstraintForm& f, MatrixRef<const T> gamma, MatrixRef<const T> slack,
                      MatrixRef<const double> lambda, MatrixRef<T> gamma_grad, MatrixRef<T> slack_grad,
                      MatrixRef<double> s) {
  const std::size_t n = gamma.size();
  ACE_THROW_IF(!gamma.contiguous() || !gamma_grad.contiguous(), shape_error, who,
               "::constraint_terms: gamma and gamma_grad must be contiguous views");
  shape(who, "constraint_terms", gamma_grad, gamma.rows, gamma.cols, "gamma_grad");
  shape(who, "constraint_terms", lambda, 1, n, "lambda");
  shape(who, "constraint_terms", s, 1, n, "s");
  if (f.slack) {
    shape(who, "constraint_terms", slack, 1, n, "slack");
    shape(who, "constraint_terms", slack_grad, 1, n, "slack_grad");
  }
}
/// dual_ascent: a step count t (1×1); s, lambda, m and v rows of one length.
inline void dual_ascent(const char* who, MatrixRef<const double> t, MatrixRef<const double> s,
                        MatrixRef<double> lambda, MatrixRef<double> m, MatrixRef<double> v) {
  scalar(who, "dual_ascent", t);
  shape(who, "dual_ascent", s, 1, s.size(), "s");
  shape(who, "dual_ascent", lambda, 1, s.size(), "lambda");
  shape(who, "dual_ascent", m, 1, s.size(), "m");
  shape(who, "dual_ascent", v, 1, s.size(), "v");
}

}  // namespace ace::detail::check
