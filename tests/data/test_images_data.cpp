// SPDX-License-Identifier: MIT
// The IDX reader (plain and gzip), its validation of damaged files, Fashion-MNIST as Debian ships it, and image
// rotations.
#include <fstream>

#include "ace/data/images.hpp"
#include "ace/group/cyclic.hpp"
#include "ace/nn/image/image.hpp"
#include "support.hpp"

#if defined(ACE_HAS_ZLIB)
#include <zlib.h>
#endif

using namespace ace;

namespace {
std::vector<std::uint8_t> idx_bytes(std::vector<std::uint32_t> shape, std::uint8_t type = 0x08) {
  std::vector<std::uint8_t> b{0, 0, type, static_cast<std::uint8_t>(shape.size())};
  std::size_t count = 1;
  for (std::uint32_t n : shape) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(n >> s));
    count *= n;
  }
  for (std::size_t i = 0; i < count; ++i) b.push_back(static_cast<std::uint8_t>(i * 7 % 251));
  return b;
}

void write_file(const std::filesystem::path& p, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

#if defined(ACE_HAS_ZLIB)
void write_gzip(const std::filesystem::path& p, const std::vector<std::uint8_t>& bytes) {
  gzFile f = gzopen(p.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  gzclose(f);
}
#endif

// The io_error message of reading `bytes` as an IDX file, or "" if it reads.
std::string idx_error(const test::TempDir& dir, const std::vector<std::uint8_t>& bytes) {
  write_file(dir.path / "f.idx", bytes);
  try {
    read_idx(dir.path / "f.idx");
  } catch (const io_error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("idx: a round trip, plain and gzip", "[data][idx]") {
  test::TempDir dir("idx-roundtrip");
  const auto bytes = idx_bytes({3, 4, 5});
  write_file(dir.path / "a.idx", bytes);
  const IdxArray a = read_idx(dir.path / "a.idx");
  CHECK(a.shape == std::vector<std::size_t>{3, 4, 5});
  REQUIRE(a.values.size() == 60);
  for (std::size_t i = 0; i < 60; ++i) CHECK(a.values[i] == bytes[16 + i]);
#if defined(ACE_HAS_ZLIB)
  write_gzip(dir.path / "a.idx.gz", bytes);
  const IdxArray z = read_idx(dir.path / "a.idx.gz");
  CHECK(z.shape == a.shape);
  CHECK(z.values == a.values);
#endif
}

TEST_CASE("idx: damaged files are io_errors that say what is wrong", "[data][idx]") {
  test::TempDir dir("idx-damaged");
  auto bytes = idx_bytes({2, 3});
  CHECK(idx_error(dir, bytes).empty());
  auto bad = bytes;
  bad[1] = 3;
  CHECK_THAT(idx_error(dir, bad), Catch::Contains("does not start with an IDX magic number (first bytes 0, 3"));
  CHECK_THAT(idx_error(dir, idx_bytes({2, 3}, 0x0D)), Catch::Contains("holds IDX type 13"));
  bad = bytes;
  bad[3] = 5;
  CHECK_THAT(idx_error(dir, bad), Catch::Contains("declares 5 axes"));
  CHECK_THAT(idx_error(dir, idx_bytes({2, 0})), Catch::Contains("size 0 on axis 1"));
  bad = bytes;
  bad.pop_back();
  CHECK_THAT(idx_error(dir, bad), Catch::Contains("holds 5 bytes of data, its header declares 6"));
  bad = bytes;
  bad.push_back(1);
  CHECK_THAT(idx_error(dir, bad), Catch::Contains("holds 7 bytes of data, its header declares 6"));
  CHECK_THAT(idx_error(dir, {0, 0, 8, 2, 0, 0}), Catch::Contains("ends inside its header"));
  CHECK_THAT(idx_error(dir, {0, 0}), Catch::Contains("less than an IDX header"));
  // Sizes whose product wraps past 2^64 onto the payload's size (2^31 x 2^31 x 4 = 2^64 = 0: no payload) were read
  // as an array of that shape holding no values.
  CHECK_THAT(idx_error(dir, idx_bytes({1u << 31, 1u << 31, 4})), Catch::Contains("product passes 2^64"));
  CHECK_THROWS_AS(parse_idx(idx_bytes({1u << 31, 2, 1u << 31, 2}), "wrapped.idx"), io_error);
  CHECK(parse_idx(idx_bytes({2, 3}), "memory.idx").shape == std::vector<std::size_t>{2, 3});
#if defined(ACE_HAS_ZLIB)
  write_gzip(dir.path / "g.gz", idx_bytes({50, 50}));
  std::ifstream in(dir.path / "g.gz", std::ios::binary);
  std::vector<std::uint8_t> gz((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto cut = gz;
  cut.resize(gz.size() / 2);
  CHECK_THAT(idx_error(dir, cut), Catch::Contains("truncated gzip file"));
  auto flipped = gz;
  for (std::size_t i = 12; i < 40; ++i) flipped[i] ^= 0x5a;
  CHECK_THAT(idx_error(dir, flipped), Catch::Contains("is not a valid gzip file"));
#endif
  CHECK_THROWS_AS(read_idx(dir.path / "missing.idx"), io_error);
}

TEST_CASE("idx: image sets check counts, axes and labels", "[data][idx]") {
  test::TempDir dir("idx-sets");
  write_file(dir.path / "images", idx_bytes({4, 2, 3}));
  auto labels = idx_bytes({4});
  for (std::size_t i = 0; i < 4; ++i) labels[8 + i] = static_cast<std::uint8_t>(i);
  write_file(dir.path / "labels", labels);
  const ImageSet s = load_idx_images(dir.path / "images", dir.path / "labels");
  CHECK(s.size() == 4);
  CHECK(s.rows == 2);
  CHECK(s.cols == 3);
  CHECK(s.labels == std::vector<std::uint32_t>{0, 1, 2, 3});
  CHECK(s.image(1)[0] == Approx(static_cast<float>(6 * 7 % 251) / 255.0f));
  CHECK_THROWS_WITH(load_idx_images(dir.path / "images", dir.path / "labels", 3),
                    Catch::Contains("label 3 of image 3") && Catch::Contains("is not below 3"));
  write_file(dir.path / "five", idx_bytes({5}));
  CHECK_THROWS_WITH(load_idx_images(dir.path / "images", dir.path / "five", 300),
                    Catch::Contains("4 images in") && Catch::Contains("but 5 labels"));
  CHECK_THROWS_WITH(load_idx_images(dir.path / "labels", dir.path / "labels"),
                    Catch::Contains("has 1 axes, expected 3"));
  write_file(dir.path / "no-images", idx_bytes({0, 2, 3}));
  write_file(dir.path / "no-labels", idx_bytes({0}));
  CHECK_THROWS_WITH(load_idx_images(dir.path / "no-images", dir.path / "no-labels"),
                    Catch::Contains("no-images has size 0 on axis 0"));  // an empty split
  CHECK_THROWS_WITH(load_fashion_mnist(dir.path / "nowhere", true),
                    Catch::Contains("train-images-idx3-ubyte nor its .gz exists"));
}

#if defined(ACE_FASHION_MNIST_DIR)
TEST_CASE("Fashion-MNIST: the Debian package's files, both splits", "[data][fashion-mnist]") {
  // Under the sanitizers (-O0: ~20 s for both splits) the test split only; the dev build reads both.
  for (const bool train : test::sanitized ? std::vector<bool>{false} : std::vector<bool>{true, false}) {
    const ImageSet s = load_fashion_mnist(ACE_FASHION_MNIST_DIR, train);
    const std::size_t n = train ? 60000 : 10000;
    REQUIRE(s.size() == n);
    CHECK(s.rows == 28);
    CHECK(s.pixels.size() == n * 784);
    std::array<std::size_t, 10> per_class{};
    for (std::uint32_t l : s.labels) ++per_class[l];
    for (std::size_t c = 0; c < 10; ++c) CHECK(per_class[c] == n / 10);  // balanced, as published
    CHECK(s.labels[0] == 9);                                              // both splits start with an ankle boot
    const auto [lo, hi] = std::minmax_element(s.pixels.begin(), s.pixels.end());
    CHECK(*lo == 0.0f);
    CHECK(*hi == 1.0f);
  }
}
#endif

TEST_CASE("rotations: quarter turns are exact pixel moves, bilinear agrees on them", "[data][rotation]") {
  Rng rng(test::seed(700, "rotations"));
  constexpr std::size_t n = 7;
  Tensor<double, 3> img({1, n, n});
  std::vector<float> src(n * n), dst(n * n), back(n * n);
  for (std::size_t i = 0; i < n * n; ++i) img.data()[i] = src[i] = static_cast<float>(rng.normal());
  for (std::size_t q = 0; q < 4; ++q) {
    rotate_quarter_turns(src.data(), dst.data(), n, n, q);
    const auto expected = act_on_image<Cyclic<4>>(Cyclic<4>::element(q), img);
    for (std::size_t i = 0; i < n * n; ++i) CHECK(dst[i] == static_cast<float>(expected.data()[i]));
    rotate_bilinear(src.data(), back.data(), n, n, static_cast<double>(q) * std::numbers::pi / 2);
    for (std::size_t i = 0; i < n * n; ++i) CHECK(back[i] == Approx(dst[i]).margin(1e-5));
  }
  CHECK_THROWS_AS(rotate_quarter_turns(src.data(), dst.data(), 7, 6, 1), shape_error);
  // A half turn of a non-square image: pixel (r, c) goes to (rows - 1 - r, cols - 1 - c).
  std::vector<float> wide(3 * 5), half(3 * 5);
  for (std::size_t i = 0; i < wide.size(); ++i) wide[i] = static_cast<float>(i);
  rotate_quarter_turns(wide.data(), half.data(), 3, 5, 2);
  for (std::size_t r = 0; r < 3; ++r)
    for (std::size_t c = 0; c < 5; ++c) CHECK(half[(2 - r) * 5 + (4 - c)] == wide[r * 5 + c]);
  // 45 degrees: the centre stays, the corners fall outside (zero), a constant disc stays constant inside.
  std::fill(src.begin(), src.end(), 1.0f);
  rotate_bilinear(src.data(), dst.data(), n, n, std::numbers::pi / 4);
  CHECK(dst[3 * n + 3] == Approx(1.0f));
  CHECK(dst[2 * n + 3] == Approx(1.0f));
  CHECK(dst[0] == 0.0f);
}

TEST_CASE("rotations: data sets rotate by seed, quarter turns exactly", "[data][rotation]") {
  ImageSet s;
  s.rows = s.cols = 5;
  Rng rng(test::seed(701, "rotated sets"));
  for (std::size_t i = 0; i < 20; ++i) {
    s.labels.push_back(static_cast<std::uint32_t>(i % 10));
    for (std::size_t p = 0; p < 25; ++p) s.pixels.push_back(static_cast<float>(rng.uniform()));
  }
  const ImageSet a = rotated(s, Rotation::continuous, 5), b = rotated(s, Rotation::continuous, 5),
                 c = rotated(s, Rotation::continuous, 6);
  CHECK(a.pixels == b.pixels);
  CHECK(a.pixels != c.pixels);
  CHECK(a.labels == s.labels);
  CHECK(rotated(s, Rotation::none, 5).pixels == s.pixels);
  const ImageSet q = rotated(s, Rotation::quarter_turns, 5);
  std::array<std::size_t, 4> turns{};
  std::vector<float> r(25);
  for (std::size_t i = 0; i < s.size(); ++i) {
    std::size_t match = 4;
    for (std::size_t k = 0; k < 4 && match == 4; ++k) {
      rotate_quarter_turns(s.image(i), r.data(), 5, 5, k);
      if (std::equal(r.begin(), r.end(), q.image(i))) match = k;
    }
    REQUIRE(match < 4);
    ++turns[match];
  }
  for (std::size_t t : turns) CHECK(t > 0);  // every turn drawn among 20 images
}
