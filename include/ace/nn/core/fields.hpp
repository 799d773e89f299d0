// SPDX-License-Identifier: MIT
// Nonlinearities for any representation, acting on fields: norm-based and gated (escnn's NormNonLinearity and
// GatedNonLinearity), and pooling over the group axis of regular fields.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "ace/backend/ops.hpp"
#include "ace/nn/module.hpp"
#include "ace/rep/basic.hpp"
#include "ace/rep/composite.hpp"

namespace ace {

namespace detail {
template <std::size_t A, std::size_t B>
constexpr std::array<std::size_t, A + B> join(const std::array<std::size_t, A>& a, const std::array<std::size_t, B>& b) {
  std::array<std::size_t, A + B> out{};
  for (std::size_t i = 0; i < A; ++i) out[i] = a[i];
  for (std::size_t i = 0; i < B; ++i) out[A + i] = b[i];
  return out;
}

template <class R>
struct FieldDims {
  static constexpr std::array<std::size_t, 1> value{R::dim};
};
template <class R, std::size_t K>
struct FieldDims<Multiple<R, K>> {
  static constexpr auto value = [] {
    constexpr auto one = FieldDims<R>::value;
    std::array<std::size_t, K * one.size()> out{};
    for (std::size_t k = 0; k < K; ++k)
      for (std::size_t i = 0; i < one.size(); ++i) out[k * one.size() + i] = one[i];
    return out;
  }();
};
template <class R0>
struct FieldDims<DirectSum<R0>> : FieldDims<R0> {};
template <class R0, class R1, class... Rs>
struct FieldDims<DirectSum<R0, R1, Rs...>> {
  static constexpr auto value = join(FieldDims<R0>::value, FieldDims<DirectSum<R1, Rs...>>::value);
};
}  // namespace detail

/// The fields of a representation: the summands of its DirectSum / Multiple structure, flattened (a representation
/// that is neither is one field). Every representation in ace is orthogonal, so the norm of each field is invariant.
/// E.g. fields_of<DirectSum<Multiple<Standard<O>, 2>, Trivial<O>>> = {3, 3, 1}.
template <class S>
inline constexpr auto field_dims_v = detail::FieldDims<S>::value;

template <class S>
inline constexpr std::size_t field_count_v = field_dims_v<S>.size();

namespace detail {
template <class S>
constexpr auto field_offsets() {
  std::array<std::size_t, field_count_v<S> + 1> o{};
  for (std::size_t f = 0; f < field_count_v<S>; ++f) o[f + 1] = o[f] + field_dims_v<S>[f];
  return o;
}

/// The field offsets of S as a backend index row [1, fields + 1].
template <class B, class S>
tensor_t<B, std::uint32_t, 2> field_offset_tensor() {
  constexpr auto o = field_offsets<S>();
  return index_tensor<B>(std::vector<std::uint32_t>(o.begin(), o.end()));
}
}  // namespace detail

/// The norm nonlinearity: each field x_f is rescaled by φ(|x_f| + b_f) / |x_f| with a learnable bias b_f per field
/// ("bias", initialised to 0) and φ = Op (ReLU: fields whose norm falls below -b_f are switched off). It changes
/// only norms, which every orthogonal representation preserves, so it is equivariant for any S. The norm is
/// smoothed as sqrt(|x|² + ε) (ε = `epsilon`: 1e-12 in float, 1e-24 in double), which keeps the map differentiable
/// at 0 and exactly equivariant.
template <class Op, class T, Representation S, Backend B = Cpu>
class NormNonlinearity {
 public:
  using scalar = T;
  using input = S;
  using output = S;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;
  static constexpr std::size_t fields = field_count_v<S>;
  static constexpr T epsilon = std::is_same_v<T, float> ? T(1e-12) : T(1e-24);

  NormNonlinearity() : bias_({1, fields}), offsets_(detail::field_offset_tensor<B, S>()) {}

  const tensor& forward(const tensor& x) {
    require_columns(x, S::dim, "NormNonlinearity::forward");
    const std::size_t batch = x.shape()[0];
    x_.set(view(x));
    ensure_shape(y_, batch, S::dim);
    ensure_shape(norm_, batch, fields);
    B::template norm_nonlinearity<Op>(view(x), view(std::as_const(offsets_)), view(std::as_const(bias_.value)),
                                      epsilon, view(norm_), view(y_));
    return y_;
  }

  const tensor& backward(const tensor& dy) {
    const std::size_t batch = detail::backward_batch(x_, dy, S::dim, "NormNonlinearity");
    ensure_shape(dx_, batch, S::dim);
    ensure_shape(dbias_, batch, fields);
    // y = x φ(n + b)/n: dx = (φ/n) dy + ((φ' n - φ)/n³) <x, dy> x, db = φ'/n <x, dy>.
    B::template norm_nonlinearity_backward<Op>(x_.get(), view(std::as_const(offsets_)),
                                               view(std::as_const(bias_.value)), view(std::as_const(norm_)), view(dy),
                                               view(dx_), view(dbias_));
    B::sum_rows(view(std::as_const(dbias_)), T(1), view(bias_.grad));
    return dx_;
  }

  template <class F>
  void for_each_parameter(F&& f) {
    f(bias_.view("bias", Role::bias));
  }

  tensor& bias() { return bias_.value; }

 private:
  detail::Parameter<B, T> bias_;
  tensor_t<B, std::uint32_t, 2> offsets_;
  detail::ForwardRef<T> x_;
  tensor y_, norm_, dx_, dbias_;
};

template <class T, Representation S, Backend B = Cpu> using NormReLU = NormNonlinearity<ReLUOp, T, S, B>;
template <class T, Representation S, Backend B = Cpu> using NormSiLU = NormNonlinearity<SiLUOp, T, S, B>;

/// The input of Gated<T, S>: one invariant gate per field of S, followed by S.
template <Representation S>
using GatedInput = DirectSum<Multiple<Trivial<typename S::group>, field_count_v<S>>, S>;

/// The gated nonlinearity (Weiler et al. 2018): y_f = sigmoid(g_f) x_f, where the gates g are invariant scalars
/// computed by the previous layer (the first field_count_v<S> entries of the input) and x_f are the fields of S.
/// Scaling a field by an invariant keeps equivariance for any S. Input GatedInput<S>, output S.
template <class T, Representation S, Backend B = Cpu>
class Gated {
 public:
  using scalar = T;
  using input = GatedInput<S>;
  using output = S;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;
  static constexpr std::size_t fields = field_count_v<S>;

  Gated() : offsets_(detail::field_offset_tensor<B, S>()) {}

  const tensor& forward(const tensor& x) {
    require_columns(x, input::dim, "Gated::forward");
    const std::size_t batch = x.shape()[0];
    x_.set(view(x));
    ensure_shape(y_, batch, S::dim);
    ensure_shape(gate_, batch, fields);
    B::gate_fields(view(x), view(std::as_const(offsets_)), view(gate_), view(y_));
    return y_;
  }

  const tensor& backward(const tensor& dy) {
    const std::size_t batch = detail::backward_batch(x_, dy, S::dim, "Gated");
    ensure_shape(dx_, batch, input::dim);
    B::gate_fields_backward(x_.get(), view(std::as_const(offsets_)), view(std::as_const(gate_)), view(dy), view(dx_));
    return dx_;
  }

  template <class F>
  void for_each_parameter(F&&) {}

 private:
  tensor_t<B, std::uint32_t, 2> offsets_;
  detail::ForwardRef<T> x_;
  tensor y_, gate_, dx_;
};

namespace detail {
template <class R>
struct RegularChannels {
  static constexpr std::size_t value = 0;
};
template <class G>
struct RegularChannels<Regular<G>> {
  static constexpr std::size_t value = 1;
};
template <class G, std::size_t C>
struct RegularChannels<Multiple<Regular<G>, C>> {
  static constexpr std::size_t value = C;
};

/// What GroupPool needs of its input: a vector of regular fields here; images of regular fields specialise it
/// (nn/image/image.hpp).
template <class In>
struct GroupPoolShape {
  using group = typename In::group;
  static constexpr std::size_t channels = RegularChannels<In>::value;
  using output = Multiple<Trivial<group>, channels>;
  static constexpr std::size_t inner = 1;  // entries between consecutive group elements of a field
};
}  // namespace detail

/// Pooling over the group axis: C regular fields (Regular<G> or Multiple<Regular<G>, C>: the output of a group
/// convolution or a regular-representation layer) -> C invariant channels (Multiple<Trivial<G>, C>) by the mean or
/// the max over the |G| entries of each field. ρ_reg(g) permutes those entries, so the result is invariant. On an
/// Image of regular fields it pools at every pixel: Image<Multiple<Regular<G>, C>, H, W> -> Image<Multiple<
/// Trivial<G>, C>, H, W> (same layout), which is equivariant (the pixels still move).
template <Reduce Kind, class T, FeatureSpace In, Backend B = Cpu>
class GroupPool {
  using Shape = detail::GroupPoolShape<In>;
  static_assert(Shape::channels > 0,
                "ace: GroupPool pools regular fields: its input must be Regular<G> or Multiple<Regular<G>, C>, or an "
                "Image of them.");

 public:
  using scalar = T;
  using group = typename Shape::group;
  static constexpr std::size_t channels = Shape::channels;
  using input = In;
  using output = typename Shape::output;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;

  const tensor& forward(const tensor& x) {
    require_columns(x, In::dim, "GroupPool::forward");
    const std::size_t batch = x.shape()[0];
    x_.set(view(x));
    ensure_shape(y_, batch, output::dim);
    if constexpr (Kind == Reduce::max) ensure_shape(argmax_, batch * output::dim / Shape::inner, Shape::inner);
    B::segment_reduce(Kind, reshaped(x, x.size() / Shape::inner, Shape::inner), group::order,
                      reshaped(y_, y_.size() / Shape::inner, Shape::inner), view(argmax_));
    return y_;
  }
  const tensor& backward(const tensor& dy) {
    const std::size_t batch = detail::backward_batch(x_, dy, output::dim, "GroupPool");
    ensure_shape(dx_, batch, In::dim);
    B::fill(view(dx_), T(0));
    B::segment_reduce_backward(Kind, reshaped(dy, dy.size() / Shape::inner, Shape::inner), group::order,
                               view(std::as_const(argmax_)), reshaped(dx_, dx_.size() / Shape::inner, Shape::inner));
    return dx_;
  }
  template <class F>
  void for_each_parameter(F&&) {}

 private:
  detail::ForwardRef<T> x_;
  tensor y_, dx_;
  tensor_t<B, std::uint32_t, 2> argmax_;
};

template <class T, FeatureSpace In, Backend B = Cpu> using GroupMeanPool = GroupPool<Reduce::mean, T, In, B>;
template <class T, FeatureSpace In, Backend B = Cpu> using GroupMaxPool = GroupPool<Reduce::max, T, In, B>;

}  // namespace ace
