// SPDX-License-Identifier: MIT
// Feature maps on the pixel grid as feature spaces: a field of type R at every pixel of an H x W image.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ace/backend/geometry.hpp"
#include "ace/group/action.hpp"
#include "ace/nn/core/fields.hpp"
#include "ace/nn/module.hpp"
#include "ace/rep/concepts.hpp"

namespace ace {

/// (g . f)(p) = f(g^-1 p) for an image with the spatial axes last: shape [..., rows, cols] (host tensors).
template <class G, class T, std::size_t Rank>
Tensor<T, Rank> act_on_image(const element_t<G>& g, const Tensor<T, Rank>& image) {
  static_assert(Rank >= 2, "ace: act_on_image needs an image with at least two (spatial) axes.");
  const std::size_t rows = image.shape()[Rank - 2], cols = image.shape()[Rank - 1];
  Tensor<T, Rank> out(image.shape());
  const std::size_t plane = rows * cols, planes = plane == 0 ? 0 : image.size() / plane;
  std::vector<std::size_t> target(plane);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) {
      const Pixel q = act_on_pixel<G>(g, {r, c}, rows, cols);
      target[r * cols + c] = q.row * cols + q.col;
    }
  const T* src = image.data();
  T* dst = out.data();
  for (std::size_t k = 0; k < planes; ++k)
    for (std::size_t i = 0; i < plane; ++i) dst[k * plane + target[i]] = src[k * plane + i];
  return out;
}

namespace detail {
/// Offset of (channel c, pixel p) in a batch row of an image with `channels` x `pixels` entries.
template <Layout L>
constexpr std::size_t image_offset(std::size_t c, std::size_t p, std::size_t channels, std::size_t pixels) {
  return ::ace::image_offset(L, c, p, channels, pixels);
}

// What an image of fiber R knows about symmetry: nothing (plain Features), its group, or its group and the exact
// permutation of its entries (grid-exact groups acting on permutation fibers).
template <class R, std::size_t H, std::size_t W, Layout L>
struct ImageSymmetry {};
template <class R, std::size_t H, std::size_t W, Layout L>
  requires Representation<R>
struct ImageSymmetry<R, H, W, L> {
  using group = typename R::group;
};
template <class R, std::size_t H, std::size_t W, Layout L>
  requires PermutationRepresentation<R> && grid_exact_v<typename R::group>
struct ImageSymmetry<R, H, W, L> {
  using group = typename R::group;
  /// ρ(g) e_(c, p) = e_(ρ_R(g) c, g p): the image representation as a permutation of the batch row.
  static RepPermutation<R::dim * H * W> permutation(const element_t<group>& g) {
    auto out = make_permutation<R::dim * H * W>();
    const auto fiber_perm = R::permutation(g);
    for (std::size_t r = 0; r < H; ++r)
      for (std::size_t col = 0; col < W; ++col) {
        const Pixel q = act_on_pixel<group>(g, {r, col}, H, W);
        for (std::size_t c = 0; c < R::dim; ++c)
          out[image_offset<L>(c, r * W + col, R::dim, H * W)] =
              static_cast<std::uint32_t>(image_offset<L>(fiber_perm[c], q.row * W + q.col, R::dim, H * W));
      }
    return out;
  }
};
}  // namespace detail

/// A feature map: the fiber R (a representation such as Multiple<Regular<C4>, 16>, or plain Features<C>) at every
/// pixel of an H x W grid, stored as one batch row of R::dim * H * W entries in layout L. Channel c of the fiber is
/// channel c of the image (for Multiple<Regular<G>, F>: field f, group element index i at c = f |G| + i).
///
/// When R represents a group G, so does the image: (g . f)(p) = ρ(g) f(g^-1 p), rotating about the grid centre as
/// act_on_pixel does. For groups that map the pixel grid to itself (C2, C4, D2, D4, ...) and permutation fibers this
/// is a permutation representation, so check_equivariance, Pointwise and the rest of ace apply unchanged. For other
/// rotations (C8, D8) the image still names its group (layers are built from it) but is not a Representation: the
/// action needs interpolation and is only approximate on pixels.
template <FeatureSpace R, std::size_t H, std::size_t W, Layout L = Layout::channels_first>
struct Image : detail::ImageSymmetry<R, H, W, L> {
  static_assert(H >= 1 && W >= 1, "ace: Image<R, H, W> needs at least one pixel.");
  using fiber = R;
  static constexpr std::size_t rows = H, cols = W, pixels = H * W, channels = R::dim;
  static constexpr Layout layout = L;
  static constexpr std::size_t dim = R::dim * H * W;

  /// Offset of (channel c, pixel p = row * W + col) in a batch row.
  static constexpr std::size_t offset(std::size_t c, std::size_t p) {
    return detail::image_offset<L>(c, p, channels, pixels);
  }

  static std::string_view name() {
    static const std::string s = detail::concat(space_name<R>(), " on ", H, "x", W,
                                                L == Layout::channels_last ? " (channels last)" : "");
    return s;
  }
};

template <class S>
inline constexpr bool is_image_v = false;
template <class R, std::size_t H, std::size_t W, Layout L>
inline constexpr bool is_image_v<Image<R, H, W, L>> = true;

/// The geometry of a convolution or pooling window: a kernel x kernel window moved by `stride`, the input padded
/// with `padding` zeros on every side. Output size (n + 2 padding - kernel) / stride + 1 per axis.
struct ConvSpec {
  std::size_t kernel = 3;
  std::size_t stride = 1;
  std::size_t padding = 0;

  constexpr std::size_t output_size(std::size_t n) const { return (n + 2 * padding - kernel) / stride + 1; }
  /// Whether the windows cover an n-pixel axis symmetrically, so that flips and quarter turns of the input map
  /// windows onto windows: (n + 2 padding - kernel) divisible by the stride (no pixels left over at one end).
  constexpr bool symmetric_on(std::size_t n) const { return (n + 2 * padding - kernel) % stride == 0; }
};

/// The "same" convolution of an odd kernel: stride 1, padding kernel / 2 (output size = input size).
constexpr ConvSpec same_padding(std::size_t kernel) { return {kernel, 1, kernel / 2}; }

/// The image a ConvSpec window produces from In with fiber R: same layout, output size per axis.
template <class In, FeatureSpace R, ConvSpec S>
using ConvOutput = Image<R, S.output_size(In::rows), S.output_size(In::cols), In::layout>;

namespace detail {
// GroupPool on an image of regular fields pools at every pixel (any layout).
template <class R, std::size_t H, std::size_t W, Layout L>
struct GroupPoolShape<Image<R, H, W, L>> {
  using group = typename R::group;
  static constexpr std::size_t channels = RegularChannels<R>::value;
  using output = Image<Multiple<Trivial<group>, channels>, H, W, L>;
  static constexpr std::size_t inner = L == Layout::channels_first ? H * W : 1;
};
}  // namespace detail

}  // namespace ace
