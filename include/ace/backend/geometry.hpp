// SPDX-License-Identifier: MIT
// The shapes backend operations take beyond plain matrices: image layouts, convolution and pooling windows, the
// channel grouping of batch norms, and batches of graphs that share one edge list.
#pragma once

#include <cstddef>

namespace ace {

/// How a batch row stores an image of C channels: channels_first = [C, H, W] (PyTorch's default), channels_last =
/// [H, W, C] (every pixel's channels contiguous; the fast layout of ace's convolutions).
enum class Layout { channels_first, channels_last };

/// Offset of (channel c, pixel p) in a batch row of an image with `channels` x `pixels` entries.
constexpr std::size_t image_offset(Layout layout, std::size_t c, std::size_t p, std::size_t channels,
                                   std::size_t pixels) {
  return layout == Layout::channels_first ? c * pixels + p : p * channels + c;
}

/// Sizes of one 2-d convolution (correlation, as in PyTorch): in_channels x rows x cols -> out_channels x out_rows x
/// out_cols with a kernel x kernel window moved by `stride` over the input padded with `padding` zeros.
struct ConvGeometry {
  std::size_t in_channels = 0, out_channels = 0, rows = 0, cols = 0, kernel = 1, stride = 1, padding = 0;
  Layout layout = Layout::channels_first;

  std::size_t out_rows() const { return (rows + 2 * padding - kernel) / stride + 1; }
  std::size_t out_cols() const { return (cols + 2 * padding - kernel) / stride + 1; }
  std::size_t in_pixels() const { return rows * cols; }
  std::size_t out_pixels() const { return out_rows() * out_cols(); }
  std::size_t in_dim() const { return in_channels * in_pixels(); }
  std::size_t out_dim() const { return out_channels * out_pixels(); }
  /// Columns of the im2col matrix and of a filter: one per (tap, input channel), tap-major (ky, kx, c).
  std::size_t patch() const { return kernel * kernel * in_channels; }
};

/// Non-overlapping pooling windows of win_rows x win_cols pixels that tile a rows x cols image of `channels`
/// channels (rows and cols divisible by the window).
struct PoolGeometry {
  std::size_t channels = 0, rows = 0, cols = 0, win_rows = 1, win_cols = 1;
  Layout layout = Layout::channels_first;

  std::size_t out_rows() const { return rows / win_rows; }
  std::size_t out_cols() const { return cols / win_cols; }
  std::size_t in_dim() const { return channels * rows * cols; }
  std::size_t out_dim() const { return channels * out_rows() * out_cols(); }
  std::size_t window() const { return win_rows * win_cols; }
};

/// How a batch norm sees its input: a [outer, channels, inner] array (row-major; channels-first images: outer =
/// batch, inner = pixels; channels-last images and feature vectors: outer = batch x pixels, inner = 1) whose channels
/// are grouped into `fields` that share one mean and variance.
struct FieldLayout {
  std::size_t outer = 0, channels = 0, inner = 1, fields = 0;
  std::size_t size() const { return outer * channels * inner; }
};

/// A batch of `graphs` graphs that share one directed edge list of `edges` edges on `nodes` nodes: node rows and edge
/// rows are ordered graph-major (row b * nodes + i, b * edges + e). Edge e carries a message from node col[e] to node
/// row[e].
struct GraphShape {
  std::size_t graphs = 0, nodes = 0, edges = 0;
  std::size_t node_rows() const { return graphs * nodes; }
  std::size_t edge_rows() const { return graphs * edges; }
};

}  // namespace ace
