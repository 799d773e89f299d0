// SPDX-License-Identifier: MIT
// Convolutions on the pixel grid: Conv2d (plain, also the relaxation branch) and GroupConv2d / LiftingConv2d
// (equivariant: the filter bank is expanded from shared weights by rotating and flipping them).
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ace/backend/geometry.hpp"
#include "ace/error.hpp"
#include "ace/group/action.hpp"
#include "ace/nn/core/fields.hpp"
#include "ace/nn/core/sparse_map.hpp"
#include "ace/nn/image/image.hpp"
#include "ace/nn/module.hpp"
#include "ace/random.hpp"
#include "ace/rep/basic.hpp"
#include "ace/rep/basis.hpp"
#include "ace/rep/composite.hpp"

namespace ace {

struct ConvOptions {
  bool bias = true;
  /// Weights ~ N(0, gain / fan_in) with fan_in = kernel^2 x input channels: 2 for ReLU (He), 1 for linear layers.
  double gain = 2.0;
};

namespace detail {
template <class In, ConvSpec S>
consteval bool check_conv_input() {
  static_assert(is_image_v<In>, "ace: convolutions take an Image<R, H, W, Layout> input.");
  static_assert(S.kernel >= 1 && S.stride >= 1, "ace: a convolution needs kernel >= 1 and stride >= 1.");
  static_assert(In::rows + 2 * S.padding >= S.kernel && In::cols + 2 * S.padding >= S.kernel,
                "ace: the convolution kernel is larger than the padded image.");
  return true;
}

/// What Conv2d and GroupConv2d share: the parameters ("weight" [filters, kernel, kernel, in channels] and "bias"
/// [filters]), the backend's convolution state and the buffers.
template <class T, class B>
struct ConvState {
  ConvState(Rng& rng, std::size_t filters, ConvGeometry g, const ConvOptions& options)
      : weight({filters, g.kernel, g.kernel, g.in_channels}), bias({filters}), kernel(g), has_bias(options.bias) {
    ACE_THROW_IF(!(options.gain > 0.0), invalid_argument, "ConvOptions::gain must be > 0, got ", options.gain);
    const double sd = std::sqrt(options.gain / static_cast<double>(g.patch()));
    std::vector<T> w(weight.value.size());
    for (auto& v : w) v = static_cast<T>(sd * rng.normal());
    weight.assign(w);
  }

  template <class F>
  void for_each_parameter(F& f) {
    f(weight.view("weight", Role::weight));
    if (has_bias) f(bias.view("bias", Role::bias));
  }
  /// The filters as a matrix [filters, kernel * kernel * in channels].
  MatrixRef<const T> filters() const { return reshaped(weight.value, weight.value.shape()[0], kernel_patch()); }
  MatrixRef<T> filter_grad() { return reshaped(weight.grad, weight.grad.shape()[0], kernel_patch()); }
  std::size_t kernel_patch() const { return weight.value.size() / weight.value.shape()[0]; }

  Parameter<B, T, 4> weight;
  Parameter<B, T, 1> bias;
  typename B::template convolution<T> kernel;
  bool has_bias;
  ForwardRef<T> x;
  tensor_t<B, T, 2> y, dx;
};

template <class In, std::size_t OutChannels, ConvSpec S>
ConvGeometry conv_geometry() {
  return {In::channels, OutChannels, In::rows, In::cols, S.kernel, S.stride, S.padding, In::layout};
}
}  // namespace detail

/// A plain 2-d convolution (cross-correlation, as PyTorch's Conv2d) from the image In to the fiber R at every
/// output pixel: the channels are plain numbers, whatever In's and R's representations. It is the unconstrained
/// branch of a relaxed group convolution (Relaxed<GroupConv2d<T, In, R, S>, Conv2d<T, In, R, S>> maps the same
/// fields) and the layer of ordinary CNNs (fibers Features<C>).
/// Parameters: "weight" [R::dim, kernel, kernel, In::channels] (taps then input channels, a channels-last filter),
/// "bias" [R::dim].
template <class T, class In, FeatureSpace R, ConvSpec S, Backend B = Cpu>
class Conv2d {
  static_assert(detail::check_conv_input<In, S>());

 public:
  using scalar = T;
  using input = In;
  using output = ConvOutput<In, R, S>;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;
  static constexpr ConvSpec spec = S;

  explicit Conv2d(Rng& rng, ConvOptions options = {})
      : s_(rng, R::dim, detail::conv_geometry<In, R::dim, S>(), options) {}

  const tensor& forward(const tensor& x) {
    require_columns(x, In::dim, "Conv2d::forward");
    s_.x.set(view(x));
    ensure_shape(s_.y, x.shape()[0], output::dim);
    B::conv2d_forward(s_.kernel, view(x), s_.filters(), bias_row(), view(s_.y));
    return s_.y;
  }
  const tensor& backward(const tensor& dy) {
    const std::size_t batch = detail::backward_batch(s_.x, dy, output::dim, "Conv2d");
    ensure_shape(s_.dx, batch, In::dim);
    B::conv2d_backward(s_.kernel, s_.x.get(), s_.filters(), view(dy), s_.filter_grad(),
                       s_.has_bias ? row_view(s_.bias.grad) : MatrixRef<T>{}, view(s_.dx));
    return s_.dx;
  }
  template <class F>
  void for_each_parameter(F&& f) {
    s_.for_each_parameter(f);
  }
  static std::string signature() {
    return detail::concat("Conv2d(", space_name<In>(), " -> ", space_name<output>(), ", k", S.kernel, " s", S.stride,
                          " p", S.padding, ")");
  }

  tensor_t<B, T, 4>& weight() { return s_.weight.value; }
  tensor_t<B, T, 1>& bias() { return s_.bias.value; }

 private:
  MatrixRef<const T> bias_row() const { return s_.has_bias ? row_view(s_.bias.value) : MatrixRef<const T>{}; }

  detail::ConvState<T, B> s_;
};

namespace detail {
/// The filter bank of a group convolution as a sparse linear map of the shared weights ψ [F, k, k, C] (one filter per
/// row): the filter of output channel (f, g) is ψ_f rotated/flipped by g, with the input channels permuted by
/// ρ_in(g):
///   bank[(f, g), (t, i)] = ψ[f, g^-1 t, ρ_in(g)^-1 i].
/// Taps g^-1 t are exact pixel moves for groups that map the grid to itself; for other rotations (C8, D8) they are
/// bilinear interpolations of the rotated kernel (up to four source taps, those outside the window dropped).
/// Output column (g, t, i) of a filter's row reads entries t' C + c of ψ_f.
template <class G, class Fiber>
EquivariantBasis::SparseMap filter_bank_map(std::size_t kernel) {
  const std::size_t taps = kernel * kernel, C = Fiber::dim;
  EquivariantBasis::SparseMap m;
  m.first.push_back(0);
  std::vector<std::pair<std::size_t, double>> sources;
  const auto add = [&](std::size_t tap, double w) { sources.emplace_back(tap, w); };
  for (std::size_t k = 0; k < G::order; ++k) {
    const auto inv = G::inverse(G::element(k));
    const auto perm = Fiber::permutation(inv);
    for (std::size_t t = 0; t < taps; ++t) {
      sources.clear();
      if constexpr (grid_exact_v<G>) {
        const Pixel q = act_on_pixel<G>(inv, {t / kernel, t % kernel}, kernel, kernel);
        add(q.row * kernel + q.col, 1.0);
      } else {
        // Centred coordinates (y up), moved by g^-1, then bilinear weights of the four surrounding taps.
        const double c = 0.5 * static_cast<double>(kernel - 1);
        const Eigen::Vector2d p = G::matrix(inv) * Eigen::Vector2d(static_cast<double>(t % kernel) - c,
                                                                   c - static_cast<double>(t / kernel));
        const double row = c - p.y(), col = p.x() + c, r0 = std::floor(row), c0 = std::floor(col);
        const double last = static_cast<double>(kernel - 1);
        for (int dr = 0; dr < 2; ++dr)
          for (int dc = 0; dc < 2; ++dc) {
            const double r = r0 + dr, cc = c0 + dc;
            const double w = (1.0 - std::abs(row - r)) * (1.0 - std::abs(col - cc));
            if (w > 1e-12 && r >= 0.0 && cc >= 0.0 && r <= last && cc <= last)
              add(static_cast<std::size_t>(r) * kernel + static_cast<std::size_t>(cc), w);
          }
      }
      for (std::size_t i = 0; i < C; ++i) {
        for (const auto& [tap, w] : sources) {
          m.index.push_back(static_cast<std::uint32_t>(tap * C + perm[i]));
          m.weight.push_back(w);
        }
        m.first.push_back(static_cast<std::uint32_t>(m.index.size()));
      }
    }
  }
  return m;
}

/// The bank's bias: every one of a filter's |G| channels takes the filter's bias (bank_bias[f |G| + g] = bias[f]).
inline EquivariantBasis::SparseMap bias_bank_map(std::size_t filters, std::size_t order) {
  EquivariantBasis::SparseMap m;
  m.first.push_back(0);
  for (std::size_t f = 0; f < filters; ++f)
    for (std::size_t k = 0; k < order; ++k) {
      m.index.push_back(static_cast<std::uint32_t>(f));
      m.weight.push_back(1.0);
      m.first.push_back(static_cast<std::uint32_t>(m.index.size()));
    }
  return m;
}

template <class R>
struct RegularGroup {};
template <class G>
struct RegularGroup<Regular<G>> {
  using type = G;
};
template <class G, std::size_t F>
struct RegularGroup<Multiple<Regular<G>, F>> {
  using type = G;
};
}  // namespace detail

/// The group convolution on the pixel grid: from an image whose fiber is a permutation representation of G
/// (Multiple<Trivial<G>, C>: a lifting convolution; Multiple<Regular<G>, F'>: a group convolution G -> G) to F
/// regular fields (R = Multiple<Regular<G>, F> or Regular<G>) at every output pixel. Output channel (f, g) filters
/// with ψ_f rotated and flipped by g (its input channels permuted by ρ_in(g)), so f(g . x) = g . f(x).
///  * Exact for the groups that map the pixel grid to itself (C2, C4, D1, D2, D4) when the windows tile the grid
///    symmetrically: stride 1 with any padding, or (n + 2 padding - kernel) divisible by the stride (`exact`).
///    Odd kernels only (a rotation must fix the centre tap).
///  * Other planar groups (C_N, D_N) rotate the filters by bilinear interpolation: exact on their 90-degree
///    elements, approximate on the others (docs/modules.md gives the measured error).
/// The bank [F |G|, k k C] is expanded from ψ by a sparse map in the backend at every forward and then runs through
/// the same convolution as Conv2d.
/// Parameters: "weight" ψ [F, kernel, kernel, In::channels] and "bias" [F] (one per field, shared by its |G|
/// channels, which keeps the layer equivariant).
template <class T, class In, FeatureSpace R, ConvSpec S, Backend B = Cpu>
class GroupConv2d {
  static_assert(detail::check_conv_input<In, S>());
  static_assert(requires { typename detail::RegularGroup<R>::type; },
                "ace: GroupConv2d produces regular fields: its output fiber must be Regular<G> or "
                "Multiple<Regular<G>, F>.");
  static_assert(S.kernel % 2 == 1, "ace: GroupConv2d needs an odd kernel (rotations and flips fix its centre tap).");

 public:
  using scalar = T;
  using group = typename detail::RegularGroup<R>::type;
  using input = In;
  using output = ConvOutput<In, R, S>;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;
  static constexpr ConvSpec spec = S;
  static constexpr std::size_t filters = R::dim / group::order;
  static_assert(PermutationRepresentation<typename In::fiber> &&
                    std::same_as<typename In::fiber::group, group>,
                "ace: GroupConv2d's input fiber must be a permutation representation (Trivial, Regular, their "
                "multiples) of the output's group.");
  static_assert(requires(element_t<group> g) { { group::matrix(g) } -> std::convertible_to<Eigen::Matrix2d>; },
                "ace: GroupConv2d needs a group of rotations and reflections of the plane (Cyclic<N>, "
                "Dihedral<N>).");
  /// Whether the layer is exactly equivariant on the pixel grid (see above).
  static constexpr bool exact = grid_exact_v<group> && S.symmetric_on(In::rows) && S.symmetric_on(In::cols) &&
                                (In::rows == In::cols || group::order <= 2);

  explicit GroupConv2d(Rng& rng, ConvOptions options = {})
      : s_(rng, filters, detail::conv_geometry<In, R::dim, S>(), options),
        bank_(zeros<B, T>(R::dim, S.kernel * S.kernel * In::channels)),
        bank_grad_(zeros<B, T>(R::dim, S.kernel * S.kernel * In::channels)), bank_bias_(zeros<B, T>(1, R::dim)),
        bank_bias_grad_(zeros<B, T>(1, R::dim)) {
    const auto m = detail::filter_bank_map<group, typename In::fiber>(S.kernel);
    expansion_ = SparseLinearMap<T, B>(m.first, m.index, m.weight, S.kernel * S.kernel * In::channels);
    const auto b = detail::bias_bank_map(filters, group::order);
    bias_expansion_ = SparseLinearMap<T, B>(b.first, b.index, b.weight, filters);
  }

  const tensor& forward(const tensor& x) {
    require_columns(x, In::dim, "GroupConv2d::forward");
    s_.x.set(view(x));
    expand_bank();
    ensure_shape(s_.y, x.shape()[0], output::dim);
    B::conv2d_forward(s_.kernel, view(x), view(std::as_const(bank_)),
                      s_.has_bias ? view(std::as_const(bank_bias_)) : MatrixRef<const T>{}, view(s_.y));
    return s_.y;
  }
  const tensor& backward(const tensor& dy) {
    const std::size_t batch = detail::backward_batch(s_.x, dy, output::dim, "GroupConv2d");
    ensure_shape(s_.dx, batch, In::dim);
    B::fill(view(bank_grad_), T(0));
    B::fill(view(bank_bias_grad_), T(0));
    B::conv2d_backward(s_.kernel, s_.x.get(), view(std::as_const(bank_)), view(dy), view(bank_grad_),
                       s_.has_bias ? view(bank_bias_grad_) : MatrixRef<T>{}, view(s_.dx));
    // The adjoint of the expansion: each filter's gradient gathers its |G| rotated copies.
    expansion_.adjoint(reshaped(std::as_const(bank_grad_), filters, bank_grad_.size() / filters), s_.filter_grad());
    if (s_.has_bias) bias_expansion_.adjoint(view(std::as_const(bank_bias_grad_)), row_view(s_.bias.grad));
    return s_.dx;
  }
  template <class F>
  void for_each_parameter(F&& f) {
    s_.for_each_parameter(f);
  }
  static std::string signature() {
    return detail::concat("GroupConv2d(", space_name<In>(), " -> ", space_name<output>(), ", k", S.kernel, " s",
                          S.stride, " p", S.padding, ")");
  }

  tensor_t<B, T, 4>& weight() { return s_.weight.value; }
  tensor_t<B, T, 1>& bias() { return s_.bias.value; }
  /// The expanded filter bank [R::dim, kernel * kernel * In::channels] of the current weights.
  const tensor& filter_bank() {
    expand_bank();
    return bank_;
  }

 private:
  /// bank = the expansion of ψ (and bank_bias of the bias): every forward, in the backend (about 0.1 % of the
  /// convolution's time at the benchmark shape).
  void expand_bank() {
    expansion_.apply(s_.filters(), reshaped(bank_, filters, bank_.size() / filters));
    if (s_.has_bias) bias_expansion_.apply(row_view(std::as_const(s_.bias.value)), view(bank_bias_));
  }

  detail::ConvState<T, B> s_;
  SparseLinearMap<T, B> expansion_, bias_expansion_;
  tensor bank_, bank_grad_, bank_bias_, bank_bias_grad_;
};

/// The lifting convolution: C invariant channels (an image with fiber Multiple<Trivial<G>, C>, e.g. a grey-scale
/// picture) -> F regular fields of G.
template <class T, class In, std::size_t F, ConvSpec S, Backend B = Cpu>
using LiftingConv2d = GroupConv2d<T, In, Multiple<Regular<typename In::fiber::group>, F>, S, B>;

}  // namespace ace
