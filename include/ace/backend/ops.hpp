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

/// One Adam or AdamW update (Kingma & Ba 2015, Algorithm 1; Loshchilov & Hutter 2019): with t the step count (a
/// double in backend memory that already counts this step, so a recorded step replays correctly), c1 = 1 - beta1^t
/// and c2 = 1 - beta2^t,  Adam: g <- g + wd p;  AdamW: p <- p (1 - lr wd);  m <- b1 m + (1 - b1) g;
/// v <- b2 v + (1 - b2) g²;  p <- p - lr (m / c1) / (sqrt(v / c2) + eps), in T.
struct AdamStep {
  double lr = 0.0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool decoupled = false;

  /// The bias corrections at step count t: once per parameter tensor, not per entry (pow is the costly part).
  struct Corrections {
    double c1 = 1.0, c2 = 1.0;
  };
  ACE_HOST_DEVICE Corrections corrections(double t) const { return {1.0 - std::pow(beta1, t), 1.0 - std::pow(beta2, t)}; }

  /// The update of one entry with the step's bias corrections.
  template <class T>
  ACE_HOST_DEVICE void apply(const Corrections& k, T& value, T grad, T& m, T& v) const {
    const T lr_ = static_cast<T>(lr), b1 = static_cast<T>(beta1), b2 = static_cast<T>(beta2);
    const T eps_ = static_cast<T>(eps), wd = static_cast<T>(weight_decay);
    const T c1 = static_cast<T>(k.c1), c2 = static_cast<T>(k.c2);
    T g = grad;
    if (decoupled) value *= T(1) - lr_ * wd;
    else g += wd * value;
    m = b1 * m + (T(1) - b1) * g;
    v = b2 * v + (T(1) - b2) * g * g;
    value -= lr_ * (m / c1) / (std::sqrt(v / c2) + eps_);
  }
};

/// One parameter tensor of a multi-tensor Adam update (adam_update_many): its value, gradient and moments (size
/// entries each, contiguous) and its step (the learning rate may differ by parameter role).
template <class T>
struct AdamTensor {
  T* value = nullptr;
  const T* grad = nullptr;
  T *m = nullptr, *v = nullptr;
  std::size_t size = 0;
  AdamStep step;
};

/// What `reduce_into` folds a view into: its 1×1 double target becomes out + Σ x, out + Σ x², max(out, max |x|) or
/// max(out, max x) (an empty view leaves it unchanged).
/// Reductions whose result stays in backend memory (a loss summed over an epoch, a gradient norm for clipping) cost
/// no transfer; the host reads the target when it needs the value.
enum class Accumulate { sum, sum_squares, max_abs, max };

/// The constraint on one relaxation scalar γ as data, so a backend evaluates the Lagrangian's terms in its own memory
/// (docs/method.md §3–§6). With u the learned slack (0 without one):
///   s = (absolute ? |γ| : γ) - epsilon - (slack ? u : 0),     ds/dγ = absolute ? sign(γ) : 1;
///   force = scale (λ + augmented s)   (inequality forms: the augmented term only while s > 0);
///   dJ/dγ += force ds/dγ + 2 penalty γ   (or dJ/dγ = 0 when γ is not learned);  dJ/du = rho u - force;
///   dual step: λ <- project(λ + Δ), project = max(·, 0) for inequality forms, Δ from DualStep.
/// The policies of ace/constrained/policy.hpp are instances: equality (s = γ), inequality (|γ| - ε), resilient
/// (|γ| - u), and the baselines (no dual; penalty: 2 w γ; strict and schedule: γ not learned).
struct ConstraintForm {
  bool dual = false;         // multipliers λ and a dual step
  bool absolute = false;     // s is |γ| - ... (inequality forms) rather than γ (equality)
  bool slack = false;        // s subtracts a learned slack u (resilient)
  bool learn_gamma = true;   // false: γ's gradient is zeroed (γ is fixed by the trainer)
  double epsilon = 0.0;      // the tolerance of |γ| <= ε
  double rho = 0.0;          // the slack cost (ρ/2) u²
  double penalty = 0.0;      // the weight w of w Σ γ² (penalty baseline)
  double augmented = 0.0;    // the augmented-Lagrangian coefficient c
  double scale = 1.0;        // the factor on the dual terms of the primal gradient (1 / n with averaging)

  ACE_HOST_DEVICE double constraint(double gamma, double u) const {
    return (absolute ? (gamma < 0 ? -gamma : gamma) : gamma) - epsilon - (slack ? u : 0.0);
  }
  ACE_HOST_DEVICE double dsdgamma(double gamma) const {
    return absolute ? (gamma > 0 ? 1.0 : gamma < 0 ? -1.0 : 0.0) : 1.0;
  }
  ACE_HOST_DEVICE double project(double lambda) const { return absolute && lambda < 0.0 ? 0.0 : lambda; }
  ACE_HOST_DEVICE double augmented_term(double s) const { return !absolute || s > 0.0 ? augmented * s : 0.0; }

  /// Entry i of constraint_terms: s_i (when dual), γ's gradient, and the slack's gradient (when slack).
  template <class T>
  ACE_HOST_DEVICE void terms(T gamma, T u, double lambda, T& gamma_grad, T& slack_grad, double& s) const {
    const double g = static_cast<double>(gamma);
    double extra = 0.0;
    if (dual) {
      s = constraint(g, static_cast<double>(u));
      const double force = scale * (lambda + augmented_term(s));
      extra += force * dsdgamma(g);
      if (slack) slack_grad = static_cast<T>(rho * static_cast<double>(u) - force);
    }
    if (penalty != 0.0) extra += 2.0 * penalty * g;
    gamma_grad = learn_gamma ? gamma_grad + static_cast<T>(extra) : T(0);
  }
};

/// One dual ascent step on a multiplier: plain (Δ = lr s) or with Adam moments (m <- b1 m + (1 - b1) s,
/// v <- b2 v + (1 - b2) s², Δ = lr (m / c1) / (sqrt(v / c2) + eps) with c1 = 1 - b1^t, c2 = 1 - b2^t, t the dual
/// step count in backend memory, already counting this step).
struct DualStep {
  double lr = 0.0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  bool adam = false;

  ACE_HOST_DEVICE void apply(const ConstraintForm& f, double t, double s, double& lambda, double& m, double& v) const {
    double delta = lr * s;
    if (adam) {
      m = beta1 * m + (1.0 - beta1) * s;
      v = beta2 * v + (1.0 - beta2) * s * s;
      const double c1 = 1.0 - std::pow(beta1, t), c2 = 1.0 - std::pow(beta2, t);
      delta = lr * (m / c1) / (std::sqrt(v / c2) + eps);
    }
    lambda = f.project(lambda + delta);
  }
};

}  // namespace ace
