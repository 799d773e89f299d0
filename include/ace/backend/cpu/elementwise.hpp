// SPDX-License-Identifier: MIT
// The Cpu backend's activations on runs of consecutive entries: SiLU vectorised (float: ace's division-free sigmoid,
// cpu/sigmoid.hpp; double: Eigen's vectorised tanh), every other elementwise Op (ops.hpp) by its scalar f and df.
// Shared by map / map_backward and the GEMM epilogues of the fused dense operations (cpu/dense.hpp).
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <cstddef>
#include <utility>
#include <type_traits>

#include "ace/backend/cpu/sigmoid.hpp"
#include "ace/backend/ops.hpp"

namespace ace::cpu {

namespace detail {
/// Entries per step of the vectorised activations: one 64-byte vector (AVX-512), two AVX2 ones.
template <class T>
inline constexpr int activation_step = static_cast<int>(64 / sizeof(T));

/// f(x, y) on fixed-size Eigen arrays of activation_step<T> entries over n entries of the inputs `in` and the output
/// `out`, the last partial step through zero-padded copies: every entry takes the same vector path wherever it lies
/// in the run and however runs are cut, so the bits depend on the entry's values alone.
/// Fixed-size maps of `Step` over p[k] + i for every input k.
template <class Map, class T, std::size_t N, std::size_t... K>
std::array<Map, N> maps_at(const std::array<const T*, N>& p, std::size_t i, std::index_sequence<K...>) {
  return {Map(p[K] + i)...};
}

template <class T, std::size_t N, class F>
void vector_steps(std::array<const T*, N> in, T* out, std::size_t n, F&& f) {
  constexpr int step = activation_step<T>;
  using Step = Eigen::Array<T, step, 1>;
  using ConstMap = Eigen::Map<const Step>;
  constexpr auto inputs = std::make_index_sequence<N>{};
  std::size_t i = 0;
  for (; i + step <= n; i += step) Eigen::Map<Step>(out + i) = f(maps_at<ConstMap>(in, i, inputs));
  if (i == n) return;
  std::array<Step, N> pad;
  std::array<const T*, N> padded;
  for (std::size_t k = 0; k < N; ++k) {
    pad[k].setZero();
    std::copy(in[k] + i, in[k] + n, pad[k].data());
    padded[k] = pad[k].data();
  }
  const Step result = f(maps_at<ConstMap>(padded, 0, inputs));
  std::copy(result.data(), result.data() + (n - i), out + i);
}
}  // namespace detail

/// y = Op(x) on n entries (y may be x).
template <class Op, class T>
void activate(const T* x, T* y, std::size_t n) {
  if constexpr (std::is_same_v<Op, SiLUOp> && std::is_same_v<T, float>) {
    silu(x, y, n);
  } else if constexpr (std::is_same_v<Op, SiLUOp>) {  // x sigmoid(x), sigmoid(x) = 1/2 + tanh(x/2)/2
    detail::vector_steps<T, 1>({x}, y, n, [](const auto& a) {
      return (a[0] * (T(0.5) + T(0.5) * (T(0.5) * a[0]).tanh())).eval();
    });
  } else {
    for (std::size_t i = 0; i < n; ++i) y[i] = Op::template f<T>(x[i]);
  }
}

/// dx = Op'(x, y) dy on n entries, given y = Op(x) (dx may be dy). SiLU: dx = dy s (1 + x (1 - s)) with s = sigmoid(x)
/// evaluated again as in activate, from x alone (computing s again is cheaper than keeping it in memory, and not
/// reading y saves a stream from memory: x and y of a wide layer are in L3 or memory by the backward pass).
template <class Op, class T>
void activate_backward(const T* x, [[maybe_unused]] const T* y, const T* dy, T* dx, std::size_t n) {
  if constexpr (std::is_same_v<Op, SiLUOp> && std::is_same_v<T, float>) {
    silu_backward(x, dy, dx, n);
  } else if constexpr (std::is_same_v<Op, SiLUOp>) {
    detail::vector_steps<T, 2>({x, dy}, dx, n, [](const auto& a) {
      const auto t = (T(0.5) * a[0]).tanh().eval();
      const auto s = (T(0.5) + T(0.5) * t).eval();
      return (a[1] * s * (T(1) + a[0] * (T(0.5) - T(0.5) * t))).eval();
    });
  } else {
    for (std::size_t i = 0; i < n; ++i) dx[i] = Op::template df<T>(x[i], y[i]) * dy[i];
  }
}

}  // namespace ace::cpu
