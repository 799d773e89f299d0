// SPDX-License-Identifier: MIT
// The vocabulary of backend operations: elementwise operations as Op structs (a backend runs Op::f and Op::df in its
// own loops or kernels), reductions, and the parameters of the optimiser updates.
#pragma once

#include <cmath>
#include <cstddef>
#include <numbers>

// Functions that device kernels call too (the Op structs below, the CUDA backend's kernels): __host__ __device__
// under nvcc, plain functions for every other compiler.
#if defined(__CUDACC__)
#define ACE_HOST_DEVICE __host__ __device__
#else
#define ACE_HOST_DEVICE
#endif

namespace ace {

enum class Transpose { no, yes };

/// Reductions over a set or group axis.
enum class Reduce { sum, mean, max };

inline const char* reduce_name(Reduce r) {
  return r == Reduce::sum ? "sum" : r == Reduce::mean ? "mean" : "max";
}

// Elementwise operations: f(x), and df(x, y) = f'(x) given y = f(x) (whichever is cheaper to use). Plain structs of
// static functions, so every backend can run them (a device backend in its kernels); a backend may evaluate a known
// Op with its own vectorised formula, equal to f and df up to rounding.
struct ReLUOp {
  template <class T> ACE_HOST_DEVICE static T f(T x) { return x > T(0) ? x : T(0); }
  template <class T> ACE_HOST_DEVICE static T df(T x, T) { return x > T(0) ? T(1) : T(0); }
};
struct SigmoidOp {
  template <class T> ACE_HOST_DEVICE static T f(T x) { return T(1) / (T(1) + std::exp(-x)); }
  template <class T> ACE_HOST_DEVICE static T df(T, T y) { return y * (T(1) - y); }
};
/// SiLU (swish): x sigmoid(x). The one SiLU of the library: pointwise layers and the MLPs inside EGNN and the relaxed
/// branches all run it through map / map_backward.
struct SiLUOp {
  template <class T> ACE_HOST_DEVICE static T f(T x) { return x / (T(1) + std::exp(-x)); }
  template <class T> ACE_HOST_DEVICE static T df(T x, T) {
    const T s = T(1) / (T(1) + std::exp(-x));
    return s * (T(1) + x * (T(1) - s));
  }
};
struct TanhOp {
  template <class T> ACE_HOST_DEVICE static T f(T x) { return std::tanh(x); }
  template <class T> ACE_HOST_DEVICE static T df(T, T y) { return T(1) - y * y; }
};
struct GELUOp {  // the exact (erf) form, PyTorch's default
  template <class T> ACE_HOST_DEVICE static T f(T x) {
    return T(0.5) * x * (T(1) + std::erf(x * T(std::numbers::sqrt2 / 2)));
  }
  template <class T> ACE_HOST_DEVICE static T df(T x, T) {
    const T cdf = T(0.5) * (T(1) + std::erf(x * T(std::numbers::sqrt2 / 2)));
    const T pdf = std::exp(T(-0.5) * x * x) * T(0.5 * std::numbers::inv_sqrtpi * std::numbers::sqrt2);
    return cdf + x * pdf;
  }
};

// Elementwise losses of a difference d = prediction - target: value(d) and its derivative.
struct SquaredError {
  static constexpr const char* name = "MSELoss";
  template <class T> ACE_HOST_DEVICE static T value(T d) { return d * d; }
  template <class T> ACE_HOST_DEVICE static T derivative(T d) { return T(2) * d; }
};
struct AbsoluteError {  // subgradient 0 at 0
  static constexpr const char* name = "L1Loss";
  template <class T> ACE_HOST_DEVICE static T value(T d) { return std::abs(d); }
  template <class T> ACE_HOST_DEVICE static T derivative(T d) { return d > T(0) ? T(1) : (d < T(0) ? T(-1) : T(0)); }
};

/// One SGD update of a parameter (PyTorch's semantics): g <- g + weight_decay p; b <- momentum b + g (b = g on the
/// first step); g <- g + momentum b (Nesterov) or g <- b; p <- p - lr g. Without momentum no buffer is used.
struct SgdStep {
  double lr = 0.0, momentum = 0.0, weight_decay = 0.0;
  bool nesterov = false, first = false;
};

/// One Adam or AdamW update (Kingma & Ba 2015, Algorithm 1; Loshchilov & Hutter 2019): with c1 = 1 - beta1^t and
/// c2 = 1 - beta2^t,  Adam: g <- g + wd p;  AdamW: p <- p (1 - lr wd);  m <- b1 m + (1 - b1) g;
/// v <- b2 v + (1 - b2) g²;  p <- p - lr (m / c1) / (sqrt(v / c2) + eps).
struct AdamStep {
  double lr = 0.0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0, c1 = 1.0, c2 = 1.0;
  bool decoupled = false;
};

}  // namespace ace
