// SPDX-License-Identifier: MIT
// The vocabulary of the backend operations on O(3)-steerable features (docs/backends.md, "O(3) features"): the real
// spherical harmonics as polynomials every backend (and device code) evaluates, the table a tensor product's
// contraction reads, and the normalisation of the swish gate.
//
// Layout of steerable features: a row holds the blocks of an irreps sum in order; block "m x l" holds its
// m (2l + 1) entries component-major ("ir_mul"): entry (k, w) of the block, component k < 2l + 1 of copy w < m, at
// offset k m + w. Every component k of a block is then a [rows, m] view with unit column stride, so a channel-mixing
// weight acts on it as one GEMM.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "ace/backend/ops.hpp"

namespace ace {

/// Y^l(x, y, z) for l = 0 ... 3 into out[0 .. 2l]: the real spherical harmonics as homogeneous polynomials of degree l
/// in component normalisation (mean square 1 over the unit sphere per component), r2 = x² + y² + z². Components in
/// the order of docs/representations.md (l = 1 is (x, y, z) · √3).
template <class T>
ACE_HOST_DEVICE inline void spherical_harmonic_polynomials(int l, T x, T y, T z, T r2, T* out) {
  switch (l) {
    case 0:
      out[0] = T(1);
      break;
    case 1: {
      const T s3 = T(1.7320508075688772935);  // √3
      out[0] = s3 * x;
      out[1] = s3 * y;
      out[2] = s3 * z;
      break;
    }
    case 2: {
      const T s15 = T(3.8729833462074168852), s5 = T(2.2360679774997896964);
      out[0] = s15 * x * y;
      out[1] = s15 * y * z;
      out[2] = s5 / T(2) * (T(3) * z * z - r2);
      out[3] = s15 * x * z;
      out[4] = s15 / T(2) * (x * x - y * y);
      break;
    }
    default: {
      const T a = T(2.0916500663351888699), b = T(10.246950765959598383), c = T(1.6201851746019650329);
      const T s7 = T(2.6457513110645905905);  // a = √70 / 4, b = √105, c = √42 / 4
      out[0] = a * y * (T(3) * x * x - y * y);
      out[1] = b * x * y * z;
      out[2] = c * y * (T(5) * z * z - r2);
      out[3] = s7 / T(2) * z * (T(5) * z * z - T(3) * r2);
      out[4] = c * x * (T(5) * z * z - r2);
      out[5] = b / T(2) * z * (x * x - y * y);
      out[6] = a * x * (x * x - T(3) * y * y);
      break;
    }
  }
}

/// The columns of one row of a tensor product's path table (uint32), which tensor_product_contract and its backward
/// read. Path p couples block b1 of x1 (m1 copies of dimension d1 at column off1) with block b2 of x2 (m2 x d2 at
/// off2) into an output irrep of dimension d_out. Its contraction is
///   z[r, zoff + k zstride + kbase + u m2 + v] = Σ_{(i, j, k) entries} c_ijk x1[r, off1 + i m1 + u] x2[r, off2 + j m2 + v]
/// for u < m1, v < m2, k < d_out: every output block o owns the z columns [zoff, zoff + d_out K_o) as d_out chunks of
/// K_o = zstride columns (one per component), and its paths fill consecutive column ranges of each chunk (kbase).
/// The entries of path p are entries[entry_begin .. entry_end): packed i | j << 8 | k << 16, coefficient values[e].
struct TensorProductColumns {
  enum : std::uint32_t {
    off1, mul1, dim1, off2, mul2, dim2, zoff, zstride, kbase, dim_out, entry_begin, entry_end, count
  };
  ACE_HOST_DEVICE static std::uint32_t pack(std::uint32_t i, std::uint32_t j, std::uint32_t k) {
    return i | (j << 8) | (k << 16);
  }
  ACE_HOST_DEVICE static std::uint32_t i_of(std::uint32_t e) { return e & 0xffu; }
  ACE_HOST_DEVICE static std::uint32_t j_of(std::uint32_t e) { return (e >> 8) & 0xffu; }
  ACE_HOST_DEVICE static std::uint32_t k_of(std::uint32_t e) { return e >> 16; }
};

/// The swish gate of steerable networks: scalars through c_silu SiLU, gates through c_sigmoid sigmoid, each gate
/// multiplying every component of one gated copy. The constants give the activations unit second moment under a
/// standard normal input, c = (E[f(z)²])^(-1/2) for z ~ N(0, 1) (the exact integrals; tests/rep check them by
/// quadrature), as steerable networks normalise their activations.
struct SwishGateConstants {
  static constexpr double silu = 1.676532470331178;
  static constexpr double sigmoid = 1.8462285453386738;
};

}  // namespace ace
