// SPDX-License-Identifier: MIT
// The kernels of the O(3)-feature operations (backend/o3_ops.hpp) as index functors, in the style of kernels.hpp:
// each index owns one output entry, so no two write the same memory and every sum runs in a fixed order.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "ace/backend/cuda/kernels.hpp"
#include "ace/backend/o3_ops.hpp"

namespace ace::kernels {

/// z entry t = (row, column): the path whose z columns hold the column, summed over its entries with that component.
template <class T>
struct TensorProductContract {
  Index paths, entries;
  In<T> values, x1, x2;
  MatrixRef<T> z;
  ACE_HOST_DEVICE void operator()(size_t t) const {
    using C = TensorProductColumns;
    const size_t r = t / z.cols, c = t % z.cols;
    T sum = T(0);
    for (size_t p = 0; p < paths.rows; ++p) {
      const uint32_t* q = paths.data + p * paths.stride;
      const size_t width = static_cast<size_t>(q[C::mul1]) * q[C::mul2];
      if (c < q[C::zoff] || c >= q[C::zoff] + static_cast<size_t>(q[C::dim_out]) * q[C::zstride]) continue;
      const size_t k = (c - q[C::zoff]) / q[C::zstride], in = (c - q[C::zoff]) % q[C::zstride];
      if (in < q[C::kbase] || in >= q[C::kbase] + width) continue;
      const size_t u = (in - q[C::kbase]) / q[C::mul2], v = (in - q[C::kbase]) % q[C::mul2];
      for (uint32_t e = q[C::entry_begin]; e < q[C::entry_end]; ++e) {
        const uint32_t packed = entries.data[e];
        if (C::k_of(packed) != k) continue;
        sum += values.data[e] * at(x1, r, q[C::off1] + C::i_of(packed) * q[C::mul1] + u) *
               at(x2, r, q[C::off2] + C::j_of(packed) * q[C::mul2] + v);
      }
      break;  // one path owns the column
    }
    at(z, r, c) = sum;
  }
};

/// dx1 (second = false) or dx2 (second = true) entry t = (row, column): the sum over the paths that read the column.
template <class T>
struct TensorProductContractBackward {
  Index paths, entries;
  In<T> values, x1, x2, dz;
  MatrixRef<T> dx;
  bool second;
  ACE_HOST_DEVICE void operator()(size_t t) const {
    using C = TensorProductColumns;
    const size_t r = t / dx.cols, c = t % dx.cols;
    const uint32_t off = second ? C::off2 : C::off1, mul = second ? C::mul2 : C::mul1, dim = second ? C::dim2 : C::dim1;
    T sum = T(0);
    for (size_t p = 0; p < paths.rows; ++p) {
      const uint32_t* q = paths.data + p * paths.stride;
      if (c < q[off] || c >= q[off] + static_cast<size_t>(q[mul]) * q[dim]) continue;
      const size_t own = (c - q[off]) / q[mul], copy = (c - q[off]) % q[mul];  // component and copy of this column
      const size_t others = second ? q[C::mul1] : q[C::mul2];
      for (uint32_t e = q[C::entry_begin]; e < q[C::entry_end]; ++e) {
        const uint32_t packed = entries.data[e];
        if ((second ? C::j_of(packed) : C::i_of(packed)) != own) continue;
        const size_t k = C::k_of(packed);
        for (size_t o = 0; o < others; ++o) {
          const size_t u = second ? o : copy, v = second ? copy : o;
          const T partner = second ? at(x1, r, q[C::off1] + C::i_of(packed) * q[C::mul1] + u)
                                   : at(x2, r, q[C::off2] + C::j_of(packed) * q[C::mul2] + v);
          sum += values.data[e] * partner *
                 at(dz, r, q[C::zoff] + k * q[C::zstride] + q[C::kbase] + u * q[C::mul2] + v);
        }
      }
    }
    at(dx, r, c) = sum;
  }
};

// The gated block of y's column c >= scalars: x's column of its gate (gate) and of the gated entry (gates + c).
ACE_HOST_DEVICE inline size_t swish_gate_of(Index gated, size_t scalars, size_t c) {
  size_t local = c - scalars, gate = scalars;
  for (size_t b = 0; b < gated.rows; ++b) {
    const size_t m = gated.data[b * gated.stride], d = gated.data[b * gated.stride + 1];
    if (local < m * d) return gate + local % m;
    local -= m * d;
    gate += m;
  }
  return gate;  // not reached for a consistent table
}

/// y entry t = (row, column).
template <class T>
struct SwishGate {
  In<T> x;
  size_t scalars;
  Index gated;
  MatrixRef<T> y;
  ACE_HOST_DEVICE void operator()(size_t t) const {
    const size_t r = t / y.cols, c = t % y.cols, gates = x.cols - y.cols;
    if (c < scalars) {
      at(y, r, c) = T(SwishGateConstants::silu) * SiLUOp::f(at(x, r, c));
      return;
    }
    at(y, r, c) = at(x, r, gates + c) * T(SwishGateConstants::sigmoid) *
                  SigmoidOp::f(at(x, r, swish_gate_of(gated, scalars, c)));
  }
};

/// dx entry t = (row, column): a scalar, a gate (summed over its copy's components) or a gated entry.
template <class T>
struct SwishGateBackward {
  In<T> x;
  size_t scalars;
  Index gated;
  In<T> dy;
  MatrixRef<T> dx;
  ACE_HOST_DEVICE void operator()(size_t t) const {
    const size_t r = t / dx.cols, c = t % dx.cols, gates = x.cols - dy.cols;
    const T c2 = T(SwishGateConstants::sigmoid);
    if (c < scalars) {
      const T s = at(x, r, c);
      at(dx, r, c) = T(SwishGateConstants::silu) * SiLUOp::df(s, SiLUOp::f(s)) * at(dy, r, c);
    } else if (c < scalars + gates) {
      size_t w = c - scalars, column = scalars;  // the copy w of block b; y's first column of the block
      for (size_t b = 0; b < gated.rows; ++b) {
        const size_t m = gated.data[b * gated.stride], d = gated.data[b * gated.stride + 1];
        if (w < m) {
          T dot = T(0);
          for (size_t k = 0; k < d; ++k) dot += at(x, r, gates + column + k * m + w) * at(dy, r, column + k * m + w);
          const T g = at(x, r, c);
          at(dx, r, c) = c2 * SigmoidOp::df(g, SigmoidOp::f(g)) * dot;
          return;
        }
        w -= m;
        column += m * d;
      }
      at(dx, r, c) = T(0);
    } else {
      at(dx, r, c) = c2 * SigmoidOp::f(at(x, r, swish_gate_of(gated, scalars, c - gates))) * at(dy, r, c - gates);
    }
  }
};

/// Row t: Y^0 ... Y^lmax of its direction, times scale, and its norm.
template <class T>
struct SphericalHarmonics {
  In<T> v;
  size_t lmax;
  T scale;
  MatrixRef<T> y, norms;
  ACE_HOST_DEVICE void operator()(size_t r) const {
    const T a = at(v, r, 0), b = at(v, r, 1), c = at(v, r, 2), n = std::sqrt(a * a + b * b + c * c);
    const T inv = n > T(0) ? T(1) / n : T(0);
    if (norms.cols != 0) at(norms, r, 0) = n;
    T* out = y.data + r * y.stride;
    for (size_t l = 0; l <= lmax; ++l) {
      spherical_harmonic_polynomials(static_cast<int>(l), a * inv, b * inv, c * inv, n > T(0) ? T(1) : T(0), out);
      for (size_t k = 0; k < 2 * l + 1; ++k) out[k] *= scale;
      out += 2 * l + 1;
    }
  }
};

}  // namespace ace::kernels
