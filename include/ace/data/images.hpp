// SPDX-License-Identifier: MIT
// Image data: the IDX format of the MNIST family (plain or gzip-compressed), Fashion-MNIST, and rotations of images
// (exact quarter turns, arbitrary angles by bilinear interpolation).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#if defined(ACE_HAS_ZLIB)
#include <zlib.h>
#endif

#include "ace/error.hpp"
#include "ace/group/action.hpp"
#include "ace/random.hpp"

namespace ace {

/// An IDX array of unsigned bytes: its shape (1 to 4 axes) and values, row-major.
struct IdxArray {
  std::vector<std::size_t> shape;
  std::vector<std::uint8_t> values;
};

namespace detail {
inline std::vector<std::uint8_t> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  ACE_THROW_IF(!in, io_error, "read_idx: cannot open ", path.string());
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ACE_THROW_IF(in.bad(), io_error, "read_idx: error reading ", path.string());
  return bytes;
}

// gzip streams (magic 1f 8b) are inflated with zlib; everything else is returned as is. `path` names the source in
// errors.
inline std::vector<std::uint8_t> inflate_if_gzip(std::vector<std::uint8_t> bytes, const std::filesystem::path& path) {
  if (bytes.size() < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b) return bytes;
#if defined(ACE_HAS_ZLIB)
  z_stream z{};
  ACE_THROW_IF(inflateInit2(&z, 16 + MAX_WBITS) != Z_OK, io_error, "read_idx: zlib could not start on ",
               path.string());
  std::vector<std::uint8_t> out;
  std::array<std::uint8_t, 1 << 16> chunk{};
  z.next_in = bytes.data();
  z.avail_in = static_cast<uInt>(bytes.size());
  int status = Z_OK;
  while (status != Z_STREAM_END) {
    z.next_out = chunk.data();
    z.avail_out = static_cast<uInt>(chunk.size());
    status = inflate(&z, Z_NO_FLUSH);
    if (status != Z_OK && status != Z_STREAM_END) {
      const std::string why = z.msg != nullptr ? z.msg : "truncated stream";
      inflateEnd(&z);
      ACE_THROW_IF(true, io_error, "read_idx: ", path.string(), " is not a valid gzip file (", why, ", after ",
                   out.size(), " bytes)");
    }
    out.insert(out.end(), chunk.data(), chunk.data() + (chunk.size() - z.avail_out));
    if (status != Z_STREAM_END && z.avail_in == 0 && z.avail_out != 0) {
      inflateEnd(&z);
      ACE_THROW_IF(true, io_error, "read_idx: ", path.string(), " is a truncated gzip file (", out.size(),
                   " bytes inflated)");
    }
  }
  inflateEnd(&z);
  return out;
#else
  ACE_THROW_IF(true, io_error, "read_idx: ", path.string(), " is gzip-compressed and ace was built without zlib "
               "(ACE_WITH_ZLIB); decompress it with gunzip or install zlib1g-dev and reconfigure");
  return bytes;
#endif
}
}  // namespace detail

/// Parses the bytes of an IDX file of unsigned bytes (the MNIST family's format; gzip-compressed bytes are inflated
/// first when ace is built with zlib, the default). Validates everything: the magic number (two zero bytes, type 0x08
/// = unsigned byte, 1 to 4 axes), non-zero sizes whose product fits in 64 bits, and a payload of exactly that product;
/// each violation is an io_error naming `name` (the file) and the values found.
inline IdxArray parse_idx(std::vector<std::uint8_t> raw, const std::filesystem::path& name) {
  const std::vector<std::uint8_t> bytes = detail::inflate_if_gzip(std::move(raw), name);
  ACE_THROW_IF(bytes.size() < 4, io_error, "read_idx: ", name.string(), " has ", bytes.size(),
               " bytes, less than an IDX header");
  ACE_THROW_IF(bytes[0] != 0 || bytes[1] != 0, io_error, "read_idx: ", name.string(),
               " does not start with an IDX magic number (first bytes ", int(bytes[0]), ", ", int(bytes[1]),
               ", expected 0, 0)");
  ACE_THROW_IF(bytes[2] != 0x08, io_error, "read_idx: ", name.string(), " holds IDX type ", int(bytes[2]),
               "; only unsigned bytes (type 8) are supported");
  const std::size_t axes = bytes[3];
  ACE_THROW_IF(axes < 1 || axes > 4, io_error, "read_idx: ", name.string(), " declares ", axes,
               " axes; expected 1 to 4");
  const std::size_t header = 4 + 4 * axes;
  ACE_THROW_IF(bytes.size() < header, io_error, "read_idx: ", name.string(), " ends inside its header (",
               bytes.size(), " bytes, header ", header, ")");
  IdxArray a;
  std::size_t count = 1;
  for (std::size_t i = 0; i < axes; ++i) {
    const std::uint8_t* p = bytes.data() + 4 + 4 * i;  // big-endian
    const std::size_t n = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) | (std::size_t{p[2]} << 8) | p[3];
    ACE_THROW_IF(n == 0, io_error, "read_idx: ", name.string(), " has size 0 on axis ", i);
    // 4 sizes below 2^32 can multiply past 2^64 and wrap onto the payload's size
    ACE_THROW_IF(count > std::numeric_limits<std::size_t>::max() / n, io_error, "read_idx: ", name.string(),
                 " declares sizes whose product passes 2^64 (size ", n, " on axis ", i, ")");
    a.shape.push_back(n);
    count *= n;
  }
  ACE_THROW_IF(bytes.size() - header != count, io_error, "read_idx: ", name.string(), " holds ",
               bytes.size() - header, " bytes of data, its header declares ", count);
  a.values.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return a;
}

/// Reads an IDX file of unsigned bytes (parse_idx).
inline IdxArray read_idx(const std::filesystem::path& path) { return parse_idx(detail::read_bytes(path), path); }

/// A labelled set of grey-scale images: pixels [count, rows, cols] in [0, 1] (row-major, float) and labels.
struct ImageSet {
  std::size_t rows = 0, cols = 0;
  std::vector<float> pixels;
  std::vector<std::uint32_t> labels;

  std::size_t size() const { return labels.size(); }
  std::size_t pixels_per_image() const { return rows * cols; }
  const float* image(std::size_t i) const { return pixels.data() + i * rows * cols; }
  float* image(std::size_t i) { return pixels.data() + i * rows * cols; }
};

/// An MNIST-family set from its two IDX files: images [n, rows, cols] (bytes / 255) and labels [n], each below
/// `classes`. Mismatched counts and labels out of range are io_errors naming the file (and the image); read_idx
/// refuses a file without images.
inline ImageSet load_idx_images(const std::filesystem::path& images, const std::filesystem::path& labels,
                                std::size_t classes = 10) {
  const IdxArray im = read_idx(images), lb = read_idx(labels);
  ACE_THROW_IF(im.shape.size() != 3, io_error, "load_idx_images: ", images.string(), " has ", im.shape.size(),
               " axes, expected 3 (count, rows, cols)");
  ACE_THROW_IF(lb.shape.size() != 1, io_error, "load_idx_images: ", labels.string(), " has ", lb.shape.size(),
               " axes, expected 1");
  ACE_THROW_IF(im.shape[0] != lb.shape[0], io_error, "load_idx_images: ", im.shape[0], " images in ",
               images.string(), " but ", lb.shape[0], " labels in ", labels.string());
  ImageSet s;
  s.rows = im.shape[1];
  s.cols = im.shape[2];
  s.pixels.resize(im.values.size());
  std::transform(im.values.begin(), im.values.end(), s.pixels.begin(),
                 [](std::uint8_t v) { return static_cast<float>(v) / 255.0f; });
  s.labels.reserve(lb.shape[0]);
  for (std::size_t i = 0; i < lb.values.size(); ++i) {
    ACE_THROW_IF(lb.values[i] >= classes, io_error, "load_idx_images: label ", int(lb.values[i]), " of image ", i,
                 " in ", labels.string(), " is not below ", classes);
    s.labels.push_back(lb.values[i]);
  }
  return s;
}

/// Where Debian's dataset-fashion-mnist package installs Fashion-MNIST.
inline const std::filesystem::path fashion_mnist_default_dir = "/usr/share/datasets/fashion-mnist";

/// Fashion-MNIST's training (60 000) or test (10 000) split from `dir`: the files train-/t10k-images-idx3-ubyte
/// and -labels-idx1-ubyte, plain or with .gz (as the Debian package ships them). A missing file is an io_error
/// naming what was looked for.
inline ImageSet load_fashion_mnist(const std::filesystem::path& dir, bool train) {
  const std::string prefix = train ? "train" : "t10k";
  auto find = [&](const std::string& stem) {
    const std::filesystem::path plain = dir / stem, gz = dir / (stem + ".gz");
    ACE_THROW_IF(!std::filesystem::exists(plain) && !std::filesystem::exists(gz), io_error, "load_fashion_mnist: "
                 "neither ", plain.string(), " nor its .gz exists (install Debian's dataset-fashion-mnist, or pass "
                 "the directory holding the IDX files)");
    return std::filesystem::exists(plain) ? plain : gz;
  };
  const std::filesystem::path images = find(prefix + "-images-idx3-ubyte");
  ImageSet s = load_idx_images(images, find(prefix + "-labels-idx1-ubyte"));
  ACE_THROW_IF(s.rows != 28 || s.cols != 28, io_error, "load_fashion_mnist: images are ", s.rows, " x ", s.cols,
               " in ", dir.string(), ", expected 28 x 28");
  return s;
}

/// dst = src turned by `quarters` x 90 degrees counter-clockwise about the centre (exact: pixels move). Square images
/// only for odd quarter turns (throws shape_error otherwise).
inline void rotate_quarter_turns(const float* src, float* dst, std::size_t rows, std::size_t cols,
                                 std::size_t quarters) {
  quarters %= 4;
  ACE_THROW_IF(quarters % 2 == 1 && rows != cols, shape_error, "rotate_quarter_turns: a quarter turn needs a square "
               "image, got ", rows, " x ", cols);
  const auto turn = Cyclic<4>::element(quarters);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) {
      const Pixel q = act_on_pixel<Cyclic<4>>(turn, {r, c}, rows, cols);
      dst[q.row * cols + q.col] = src[r * cols + c];
    }
}

/// dst = src rotated by `angle` radians counter-clockwise about the centre, by bilinear interpolation (zero outside
/// the image): dst(p) = src(R^-1 p).
inline void rotate_bilinear(const float* src, float* dst, std::size_t rows, std::size_t cols, double angle) {
  const double cy = 0.5 * static_cast<double>(rows - 1), cx = 0.5 * static_cast<double>(cols - 1);
  const double c = std::cos(angle), s = std::sin(angle);
  const auto at = [&](std::ptrdiff_t r, std::ptrdiff_t col) -> double {
    if (r < 0 || col < 0 || r >= static_cast<std::ptrdiff_t>(rows) || col >= static_cast<std::ptrdiff_t>(cols))
      return 0.0;
    return src[static_cast<std::size_t>(r) * cols + static_cast<std::size_t>(col)];
  };
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t col = 0; col < cols; ++col) {
      const double x = static_cast<double>(col) - cx, y = cy - static_cast<double>(r);  // y up
      const double sx = c * x + s * y, sy = -s * x + c * y;                              // R^-1 (x, y)
      const double fr = cy - sy, fc = sx + cx;
      const double r0 = std::floor(fr), c0 = std::floor(fc), wr = fr - r0, wc = fc - c0;
      const auto ir = static_cast<std::ptrdiff_t>(r0), ic = static_cast<std::ptrdiff_t>(c0);
      dst[r * cols + col] = static_cast<float>((1 - wr) * ((1 - wc) * at(ir, ic) + wc * at(ir, ic + 1)) +
                                               wr * ((1 - wc) * at(ir + 1, ic) + wc * at(ir + 1, ic + 1)));
    }
}

/// How a data set is rotated: not at all, by a random multiple of 90 degrees (exact), or by a uniformly random
/// angle (bilinear).
enum class Rotation { none, quarter_turns, continuous };

/// A copy of `set` with every image rotated as `mode` says, image i by an angle drawn from Rng(seed) in order
/// (same seed, same rotations).
inline ImageSet rotated(const ImageSet& set, Rotation mode, std::uint64_t seed) {
  ImageSet out = set;
  if (mode == Rotation::none) return out;
  Rng rng(seed);
  for (std::size_t i = 0; i < set.size(); ++i) {
    if (mode == Rotation::quarter_turns)
      rotate_quarter_turns(set.image(i), out.image(i), set.rows, set.cols, rng.below(4));
    else
      rotate_bilinear(set.image(i), out.image(i), set.rows, set.cols, rng.uniform(0.0, 2.0 * std::numbers::pi));
  }
  return out;
}

}  // namespace ace
