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

#include "ace/error.hpp"
#include "ace/group/action.hpp"
#include "ace/nn/conv_kernel.hpp"
#include "ace/nn/fields.hpp"
#include "ace/nn/image.hpp"
#include "ace/nn/module.hpp"
#include "ace/random.hpp"
#include "ace/rep/basic.hpp"
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
/// [filters]), the kernel and the buffers.
template <class T>
struct ConvState {
  ConvState(Rng& rng, std::size_t filters, ConvGeometry g, const ConvOptions& options)
      : weight({filters, g.kernel, g.kernel, g.in_channels}), weight_grad(weight.shape()),
        bias(std::array<std::size_t, 1>{filters}), bias_grad(bias.shape()), kernel(g), has_bias(options.bias) {
    ACE_THROW_IF(!(options.gain > 0.0), invalid_argument, "ConvOptions::gain must be > 0, got ", options.gain);
    const double sd = std::sqrt(options.gain / static_cast<double>(g.patch()));
    for (auto& w : weight) w = static_cast<T>(sd * rng.normal());
    std::fill(weight_grad.begin(), weight_grad.end(), T(0));
    std::fill(bias.begin(), bias.end(), T(0));
    std::fill(bias_grad.begin(), bias_grad.end(), T(0));
  }

  template <class F>
  void for_each_parameter(F& f) {
    f(param_view("weight", weight, weight_grad, Role::weight));
    if (has_bias) f(param_view("bias", bias, bias_grad, Role::bias));
  }

  Tensor<T, 4> weight, weight_grad;
  Tensor<T, 1> bias, bias_grad;
  ConvKernel<T> kernel;
  bool has_bias;
  ForwardRef<T> x;
  Tensor<T, 2> y, dx;
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
template <class T, class In, FeatureSpace R, ConvSpec S>
class Conv2d {
  static_assert(detail::check_conv_input<In, S>());

 public:
  using scalar = T;
  using input = In;
  using output = ConvOutput<In, R, S>;
  static constexpr ConvSpec spec = S;

  explicit Conv2d(Rng& rng, ConvOptions options = {})
      : s_(rng, R::dim, detail::conv_geometry<In, R::dim, S>(), options) {}

  const Tensor<T, 2>& forward(const Tensor<T, 2>& x) {
    require_columns(x, In::dim, "Conv2d::forward");
    s_.x = &x;
    s_.kernel.forward(x, s_.weight.data(), s_.has_bias ? s_.bias.data() : nullptr, s_.y);
    return s_.y;
  }
  const Tensor<T, 2>& backward(const Tensor<T, 2>& dy) {
    detail::backward_batch(s_.x, dy, output::dim, "Conv2d");
    s_.kernel.backward(*s_.x, s_.weight.data(), dy, s_.weight_grad.data(), s_.has_bias ? s_.bias_grad.data() : nullptr,
                       s_.dx);
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

  Tensor<T, 4>& weight() { return s_.weight; }
  Tensor<T, 1>& bias() { return s_.bias; }

 private:
  detail::ConvState<T> s_;
};

namespace detail {
/// The filter bank of a group convolution as a linear map of the shared weights ψ [F, k, k, C]: the filter of
/// output channel (f, g) is ψ_f rotated/flipped by g, with the input channels permuted by ρ_in(g):
///   bank[(f, g), (t, i)] = ψ[f, g^-1 t, ρ_in(g)^-1 i].
/// Taps g^-1 t are exact pixel moves for groups that map the grid to itself; for other rotations (C8, D8) they are
/// bilinear interpolations of the rotated kernel (up to four source taps, those outside the window dropped).
template <class T>
class FilterExpansion {
 public:
  FilterExpansion() = default;
  template <class G, class Fiber>
  static FilterExpansion make(std::size_t kernel) {
    FilterExpansion e;
    e.order_ = G::order;
    e.taps_ = kernel * kernel;
    e.in_ = Fiber::dim;
    e.first_.push_back(0);
    for (std::size_t k = 0; k < G::order; ++k) {
      const auto inv = G::inverse(G::element(k));
      const auto perm = Fiber::permutation(inv);
      for (std::size_t i = 0; i < Fiber::dim; ++i) e.channel_.push_back(perm[i]);
      for (std::size_t t = 0; t < e.taps_; ++t) {
        if constexpr (grid_exact_v<G>) {
          const Pixel q = act_on_pixel<G>(inv, {t / kernel, t % kernel}, kernel, kernel);
          e.add(q.row * kernel + q.col, 1.0);
        } else {
          // Centred coordinates (y up), moved by g^-1, then bilinear weights of the four surrounding taps.
          const double c = 0.5 * static_cast<double>(kernel - 1);
          const Eigen::Vector2d p = G::matrix(inv) * Eigen::Vector2d(static_cast<double>(t % kernel) - c,
                                                                     c - static_cast<double>(t / kernel));
          e.add_bilinear(c - p.y(), p.x() + c, kernel);
        }
        e.first_.push_back(e.source_.size());
      }
    }
    return e;
  }

  /// bank [F |G|, taps C] and bank_bias [F |G|] from ψ [F, taps C] and bias [F] (bias may be null).
  void expand(std::size_t filters, const T* psi, const T* bias, T* bank, T* bank_bias) const {
    const std::size_t width = taps_ * in_;
    for (std::size_t f = 0; f < filters; ++f)
      for (std::size_t k = 0; k < order_; ++k) {
        T* row = bank + (f * order_ + k) * width;
        const T* src = psi + f * width;
        const std::uint32_t* chan = channel_.data() + k * in_;
        for (std::size_t t = 0; t < taps_; ++t) {
          T* out = row + t * in_;
          std::fill(out, out + in_, T(0));
          for (std::size_t e = first_[k * taps_ + t]; e < first_[k * taps_ + t + 1]; ++e) {
            const T w = static_cast<T>(weight_[e]);
            const T* s = src + source_[e] * in_;
            for (std::size_t i = 0; i < in_; ++i) out[i] += w * s[chan[i]];
          }
        }
        if (bias != nullptr) bank_bias[f * order_ + k] = bias[f];
      }
  }
  /// The adjoint: dpsi += E^T dbank, dbias += the sum of each filter's |G| bias gradients (dbias may be null).
  void reduce(std::size_t filters, const T* dbank, const T* dbank_bias, T* dpsi, T* dbias) const {
    const std::size_t width = taps_ * in_;
    for (std::size_t f = 0; f < filters; ++f)
      for (std::size_t k = 0; k < order_; ++k) {
        const T* row = dbank + (f * order_ + k) * width;
        T* dst = dpsi + f * width;
        const std::uint32_t* chan = channel_.data() + k * in_;
        for (std::size_t t = 0; t < taps_; ++t)
          for (std::size_t e = first_[k * taps_ + t]; e < first_[k * taps_ + t + 1]; ++e) {
            const T w = static_cast<T>(weight_[e]);
            T* d = dst + source_[e] * in_;
            for (std::size_t i = 0; i < in_; ++i) d[chan[i]] += w * row[t * in_ + i];
          }
        if (dbias != nullptr) dbias[f] += dbank_bias[f * order_ + k];
      }
  }

 private:
  void add(std::size_t tap, double w) {
    source_.push_back(static_cast<std::uint32_t>(tap));
    weight_.push_back(w);
  }
  void add_bilinear(double row, double col, std::size_t kernel) {
    const double r0 = std::floor(row), c0 = std::floor(col);
    for (int dr = 0; dr < 2; ++dr)
      for (int dc = 0; dc < 2; ++dc) {
        const double r = r0 + dr, c = c0 + dc;
        const double w = (1.0 - std::abs(row - r)) * (1.0 - std::abs(col - c));
        const double last = static_cast<double>(kernel - 1);
        if (w > 1e-12 && r >= 0.0 && c >= 0.0 && r <= last && c <= last)
          add(static_cast<std::size_t>(r) * kernel + static_cast<std::size_t>(c), w);
      }
  }

  std::size_t order_ = 0, taps_ = 0, in_ = 0;
  std::vector<std::uint32_t> channel_;  // [|G|, C]: ρ_in(g)^-1 as an index map
  std::vector<std::size_t> first_;      // [|G| taps + 1]: where each (g, tap)'s sources start
  std::vector<std::uint32_t> source_;   // source tap of each entry
  std::vector<double> weight_;          // and its weight (1 for exact groups)
};

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
/// The bank [F |G|, k k C] is expanded from ψ when ψ changed since the last expansion (once per training step; never
/// during evaluation) and then runs through the same kernels as Conv2d.
/// Parameters: "weight" ψ [F, kernel, kernel, In::channels] and "bias" [F] (one per field, shared by its |G|
/// channels, which keeps the layer equivariant).
template <class T, class In, FeatureSpace R, ConvSpec S>
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
        expansion_(detail::FilterExpansion<T>::template make<group, typename In::fiber>(S.kernel)) {}

  const Tensor<T, 2>& forward(const Tensor<T, 2>& x) {
    require_columns(x, In::dim, "GroupConv2d::forward");
    s_.x = &x;
    refresh_bank();
    s_.kernel.forward(x, bank_.data(), s_.has_bias ? bank_bias_.data() : nullptr, s_.y);
    return s_.y;
  }
  const Tensor<T, 2>& backward(const Tensor<T, 2>& dy) {
    detail::backward_batch(s_.x, dy, output::dim, "GroupConv2d");
    ensure_shape(bank_grad_, bank_.shape()[0], bank_.shape()[1]);
    std::fill(bank_grad_.begin(), bank_grad_.end(), T(0));
    std::fill(bank_bias_grad_.begin(), bank_bias_grad_.end(), T(0));
    s_.kernel.backward(*s_.x, bank_.data(), dy, bank_grad_.data(), s_.has_bias ? bank_bias_grad_.data() : nullptr,
                       s_.dx);
    expansion_.reduce(filters, bank_grad_.data(), bank_bias_grad_.data(), s_.weight_grad.data(),
                      s_.has_bias ? s_.bias_grad.data() : nullptr);
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

  Tensor<T, 4>& weight() { return s_.weight; }
  Tensor<T, 1>& bias() { return s_.bias; }
  /// The expanded filter bank [R::dim, kernel * kernel * In::channels] of the current weights.
  const Tensor<T, 2>& filter_bank() {
    refresh_bank();
    return bank_;
  }

 private:
  void refresh_bank() {
    const bool same = cached_.size() == s_.weight.size() + s_.bias.size() &&
                      std::equal(s_.weight.begin(), s_.weight.end(), cached_.begin()) &&
                      std::equal(s_.bias.begin(), s_.bias.end(), cached_.begin() + s_.weight.size());
    if (same) return;
    ensure_shape(bank_, R::dim, S.kernel * S.kernel * In::channels);
    bank_bias_.resize(std::array<std::size_t, 1>{R::dim});
    bank_bias_grad_.resize(std::array<std::size_t, 1>{R::dim});
    expansion_.expand(filters, s_.weight.data(), s_.bias.data(), bank_.data(), bank_bias_.data());
    cached_.assign(s_.weight.begin(), s_.weight.end());
    cached_.insert(cached_.end(), s_.bias.begin(), s_.bias.end());
  }

  detail::ConvState<T> s_;
  detail::FilterExpansion<T> expansion_;
  Tensor<T, 2> bank_, bank_grad_;
  Tensor<T, 1> bank_bias_, bank_bias_grad_;
  std::vector<T> cached_;  // the weights and bias the bank was expanded from
};

/// The lifting convolution: C invariant channels (an image with fiber Multiple<Trivial<G>, C>, e.g. a grey-scale
/// picture) -> F regular fields of G.
template <class T, class In, std::size_t F, ConvSpec S>
using LiftingConv2d = GroupConv2d<T, In, Multiple<Regular<typename In::fiber::group>, F>, S>;

}  // namespace ace
