// SPDX-License-Identifier: MIT
// .npy files and checkpoints: round trips (also through xtensor's own .npy code), atomic publication, all-or-nothing
// loading, and damaged files (truncated, wrong dtype, random bytes) rejected with io_error, never a crash.
#include <filesystem>
#include <fstream>
#include <sys/wait.h>
#include <unistd.h>
#include <xtensor/xnpy.hpp>

#include "ace/group/dihedral.hpp"
#include "ace/io/checkpoint.hpp"
#include "ace/io/npy.hpp"
#include "ace/nn/core/activation.hpp"
#include "ace/nn/core/equivariant_linear.hpp"
#include "ace/nn/core/linear.hpp"
#include "ace/nn/core/relaxed.hpp"
#include "ace/nn/core/sequential.hpp"
#include "ace/rep/basic.hpp"
#include "module_support.hpp"

using namespace ace;
namespace fs = std::filesystem;

namespace {
using test::TempDir;

std::vector<char> bytes_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_bytes(const fs::path& p, const std::vector<char>& b) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(b.data(), static_cast<std::streamsize>(b.size()));
}

using G = Dihedral<4>;
template <class T, class B = Cpu>
using Model = Sequential<Relaxed<EquivariantLinear<T, Standard<G>, Regular<G>, B>, Linear<T, Standard<G>, Regular<G>, B>>,
                         ReLU<T, Regular<G>, B>, EquivariantLinear<T, Regular<G>, Trivial<G>, B>>;

template <class M>
std::vector<double> parameters_of(M& model) {
  std::vector<double> v;
  model.for_each_parameter([&](ParamView<typename M::scalar> p) {
    const auto h = to_host_vector<backend_of_t<M>>(p.value);
    v.insert(v.end(), h.begin(), h.end());
  });
  return v;
}
}  // namespace

TEST_CASE("npy: round trips float and double of rank 1 to 3, readable by xtensor and back", "[io][npy]") {
  TempDir dir("npy");
  Rng rng(test::seed(91, "npy round trip"));
  Tensor<double, 3> a({2, 3, 5});
  for (auto& v : a) v = rng.normal();
  io::write_npy<double>(dir.path / "a.npy", {a.data(), a.size()}, a.shape());
  const io::NpyArray back = io::read_npy(dir.path / "a.npy");
  CHECK(back.dtype == "<f8");
  CHECK(back.shape == std::vector<std::size_t>{2, 3, 5});
  CHECK(std::memcmp(back.bytes.data(), a.data(), a.size() * sizeof(double)) == 0);
  CHECK((bytes_of(dir.path / "a.npy").size() - 30 * sizeof(double)) % 64 == 0);  // header padded to 64 bytes

  const auto via_xtensor = xt::load_npy<double>((dir.path / "a.npy").string());
  CHECK(bool(via_xtensor == a));

  const Tensor<float, 1> f = {1.5f, -2.0f, 3.25f};
  xt::dump_npy((dir.path / "f.npy").string(), f);  // xtensor's writer, ace's reader
  const io::NpyArray fb = io::read_npy(dir.path / "f.npy");
  CHECK(fb.dtype == "<f4");
  CHECK(fb.shape == std::vector<std::size_t>{3});
  CHECK(std::memcmp(fb.bytes.data(), f.data(), 3 * sizeof(float)) == 0);
}

TEST_CASE("npy: integer arrays round-trip and convert only where exact", "[io][npy]") {
  TempDir dir("npy-int");
  const std::vector<std::int64_t> big{0, -3, 7, std::int64_t{1} << 40, 2, 5};
  const std::vector<std::size_t> shape{3, 2};
  io::write_npy<std::int64_t>(dir.path / "i8.npy", big, shape);
  const io::NpyArray a = io::read_npy(dir.path / "i8.npy");
  CHECK(a.dtype == "<i8");
  CHECK(a.is_integer());
  CHECK(a.shape == shape);
  CHECK(a.values<std::int64_t>("i8") == big);
  CHECK(a.values<double>("i8") == std::vector<double>{0, -3, 7, 1099511627776.0, 2, 5});
  CHECK_THROWS_WITH(a.values<std::int32_t>("i8"), Catch::Contains("entry 3 = 1099511627776 does not fit"));
  CHECK_THROWS_WITH(a.values<std::uint32_t>("i8"), Catch::Contains("entry 1 = -3 does not fit"));

  const std::vector<std::int32_t> small{4, -1};
  io::write_npy<std::int32_t>(dir.path / "i4.npy", small, std::vector<std::size_t>{2});
  const io::NpyArray b = io::read_npy(dir.path / "i4.npy");
  CHECK(b.dtype == "<i4");
  CHECK(b.values<std::int64_t>("i4") == std::vector<std::int64_t>{4, -1});
  CHECK(b.values<float>("i4") == std::vector<float>{4.0f, -1.0f});

  const std::vector<double> real{0.5, 2.0};
  io::write_npy<double>(dir.path / "f8.npy", real, std::vector<std::size_t>{2});
  const io::NpyArray c = io::read_npy(dir.path / "f8.npy");
  CHECK(c.values<float>("f8") == std::vector<float>{0.5f, 2.0f});
  CHECK_THROWS_WITH(c.values<std::int64_t>("positions"),
                    Catch::Contains("positions holds <f8 floating-point data where integers are expected"));
}

TEST_CASE("npy: damaged files throw io_error (truncations, fuzzed bytes, wrong dtype)", "[io][npy]") {
  TempDir dir("npy-bad");
  Tensor<float, 2> a({4, 6});
  a.fill(0.5f);
  const fs::path good = dir.path / "good.npy", bad = dir.path / "bad.npy";
  io::write_npy<float>(good, {a.data(), a.size()}, a.shape());
  const std::vector<char> original = bytes_of(good);
  for (std::size_t cut : {std::size_t{0}, std::size_t{5}, std::size_t{9}, std::size_t{40}, std::size_t{63},
                          std::size_t{64}, original.size() - 1}) {
    write_bytes(bad, std::vector<char>(original.begin(), original.begin() + static_cast<std::ptrdiff_t>(cut)));
    CAPTURE(cut);
    CHECK_THROWS_AS(io::read_npy(bad), io_error);
  }
  std::vector<char> longer = original;
  longer.push_back('x');
  write_bytes(bad, longer);
  CHECK_THROWS_WITH(io::read_npy(bad), Catch::Contains("trailing garbage"));
  CHECK_THROWS_AS(io::read_npy(dir.path / "missing.npy"), io_error);
  // the same parser on bytes in memory (what tests/fuzz/npy.cpp feeds it), naming the source it is given
  CHECK(io::parse_npy(original, "memory.npy").bytes == io::read_npy(good).bytes);
  CHECK_THROWS_WITH(io::parse_npy(longer, "memory.npy"), Catch::StartsWith("memory.npy: the data section"));

  std::string text(original.begin(), original.end());
  text.replace(text.find("<f4"), 3, "<u4");
  write_bytes(bad, {text.begin(), text.end()});
  CHECK_THROWS_WITH(io::read_npy(bad), Catch::Contains("unsupported dtype '<u4'"));

  // Fuzzing: random byte flips and random lengths either parse to a consistent array or throw io_error.
  Rng rng(test::seed(92, "npy fuzz"));
  std::size_t rejected = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<char> b = original;
    const std::size_t flips = 1 + rng.below(4);
    for (std::size_t k = 0; k < flips; ++k) b[rng.below(80)] = static_cast<char>(rng.below(256));
    if (trial % 3 == 0) b.resize(rng.below(b.size() + 1));
    write_bytes(bad, b);
    try {
      const io::NpyArray r = io::read_npy(bad);
      CHECK(r.bytes.size() == r.count() * io::npy_itemsize(r.dtype));
    } catch (const io_error&) {
      ++rejected;
    }
  }
  CHECK(rejected > 100);
  std::vector<char> noise(200);
  for (auto& c : noise) c = static_cast<char>(rng.below(256));
  write_bytes(bad, noise);
  CHECK_THROWS_AS(io::read_npy(bad), io_error);
}

TEMPLATE_LIST_TEST_CASE("checkpoint: a model round trips bit for bit; the manifest lists names, shapes and the signature",
                        "[io][checkpoint]", test::Backends) {
  using B = TestType;
  TempDir dir("ckpt");
  Rng rng(test::seed(93, "checkpoint round trip"));
  Model<float, B> saved(rng);
  saved.template get<0>().set_gamma(0.25f);
  io::save_checkpoint(dir.path / "run", saved);
  CHECK(fs::exists(dir.path / "run" / "manifest.txt"));
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);  // no temporaries left

  Rng other(7);
  Model<float, B> loaded(other);
  CHECK(parameters_of(loaded) != parameters_of(saved));
  io::load_checkpoint(dir.path / "run", loaded);
  CHECK(parameters_of(loaded) == parameters_of(saved));
  CHECK(loaded.template get<0>().gamma() == 0.25f);
  const auto x = test::random_input<B, float, Standard<G>>(5, rng);
  const auto y1 = test::download<B>(saved.forward(x));
  CHECK(test::download<B>(loaded.forward(x)) == y1);
  // Checkpoints do not depend on the backend that wrote them.
  Model<float, Reference> portable(other);
  io::load_checkpoint(dir.path / "run", portable);
  CHECK(parameters_of(portable) == parameters_of(saved));

  const io::CheckpointReader reader(dir.path / "run");
  CHECK(reader.signature() == Model<float, B>::signature());
  CHECK(reader.signature().find("Relaxed(Standard(D4) -> Regular(D4)") != std::string::npos);
  CHECK(reader.value("scalar") == "float32");
  const io::CheckpointTensor* w = reader.find("param/0.neq.weight");
  REQUIRE(w != nullptr);
  CHECK(w->shape == std::vector<std::size_t>{8, 2});
  CHECK(reader.find("param/0.gamma")->shape == std::vector<std::size_t>{1});
}

TEST_CASE("checkpoint: loading into a different model throws checkpoint_mismatch and changes nothing",
          "[io][checkpoint]") {
  TempDir dir("ckpt-mismatch");
  Rng rng(test::seed(94, "checkpoint mismatch"));
  Model<float> saved(rng);
  io::save_checkpoint(dir.path / "run", saved);

  Model<double> wrong_scalar(rng);
  const auto before = parameters_of(wrong_scalar);
  CHECK_THROWS_WITH(io::load_checkpoint(dir.path / "run", wrong_scalar), Catch::Contains("float32") &&
                                                                             Catch::Contains("float64"));
  CHECK(parameters_of(wrong_scalar) == before);

  using Other = Sequential<EquivariantLinear<float, Standard<G>, Regular<G>>, ReLU<float, Regular<G>>>;
  Other other(rng);
  CHECK_THROWS_AS(io::load_checkpoint(dir.path / "run", other), checkpoint_mismatch);

  // Same signature, no bias in the last layer: the first extra tensor is named.
  using NoBias = Sequential<EquivariantLinear<float, Regular<G>, Trivial<G>>>;
  NoBias with_bias(rng);
  io::save_checkpoint(dir.path / "bias", with_bias);
  NoBias without_bias(EquivariantLinear<float, Regular<G>, Trivial<G>>(rng, {.bias = false}));
  const auto unchanged = parameters_of(without_bias);
  CHECK_THROWS_WITH(io::load_checkpoint(dir.path / "bias", without_bias), Catch::Contains("param/0.bias"));
  CHECK(parameters_of(without_bias) == unchanged);
}

TEST_CASE("checkpoint: damaged tensors and manifests throw io_error and leave the model untouched",
          "[io][checkpoint]") {
  TempDir dir("ckpt-damage");
  Rng rng(test::seed(95, "checkpoint damage"));
  Model<double> saved(rng);
  const fs::path run = dir.path / "run";
  io::save_checkpoint(run, saved);
  const fs::path tensor = run / "t0.npy", manifest = run / "manifest.txt";
  const std::vector<char> tensor_bytes = bytes_of(tensor), manifest_bytes = bytes_of(manifest);
  Model<double> target(rng);
  const auto before = parameters_of(target);
  const auto expect_io_error = [&](const char* what) {
    CAPTURE(what);
    CHECK_THROWS_AS(io::load_checkpoint(run, target), io_error);
    CHECK(parameters_of(target) == before);
    write_bytes(tensor, tensor_bytes);
    write_bytes(manifest, manifest_bytes);
  };

  write_bytes(tensor, std::vector<char>(tensor_bytes.begin(), tensor_bytes.end() - 3));
  expect_io_error("truncated tensor");
  std::vector<char> flipped = tensor_bytes;
  flipped.back() = static_cast<char>(flipped.back() ^ 0x40);
  write_bytes(tensor, flipped);
  expect_io_error("flipped data byte (checksum)");
  const std::vector<float> empty;
  io::write_npy<float>(tensor, std::span<const float>(empty), std::vector<std::size_t>{0});
  expect_io_error("wrong dtype and shape");
  std::vector<char> noise(tensor_bytes.size());
  for (auto& c : noise) c = static_cast<char>(rng.below(256));
  write_bytes(tensor, noise);
  expect_io_error("random bytes");
  write_bytes(manifest, std::vector<char>(manifest_bytes.begin(), manifest_bytes.end() - 8));
  expect_io_error("truncated manifest");
  write_bytes(manifest, noise);
  expect_io_error("random manifest");
  fs::remove(tensor);
  expect_io_error("missing tensor file");
  CHECK_THROWS_AS(io::load_checkpoint(dir.path / "nowhere", target), io_error);

  io::load_checkpoint(run, target);  // restored files load again
  CHECK(parameters_of(target) == parameters_of(saved));
}

TEST_CASE("checkpoint: publication is atomic; an interrupted save leaves the previous checkpoint loadable",
          "[io][checkpoint]") {
  TempDir dir("ckpt-atomic");
  Rng rng(test::seed(96, "checkpoint atomic"));
  Model<float> first(rng), second(rng);
  const fs::path run = dir.path / "run";
  io::save_checkpoint(run, first);
  io::save_checkpoint(run, second);  // replaces
  Model<float> probe(rng);
  io::load_checkpoint(run, probe);
  CHECK(parameters_of(probe) == parameters_of(second));

  {  // a writer that never commits (a crash or an exception mid-save) leaves no trace
    io::CheckpointWriter writer(run);
    io::add_parameters(writer, first);
  }
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
  io::load_checkpoint(run, probe);
  CHECK(parameters_of(probe) == parameters_of(second));

  CHECK(io::checkpoint_exists(run));
  CHECK_FALSE(io::checkpoint_exists(dir.path / "none"));
  fs::rename(run, dir.path / "run.old");  // a crash between the two renames of a save
  CHECK(io::checkpoint_exists(run));      // the previous one is still there to resume from
  Model<float> recovered(rng);
  io::load_checkpoint(run, recovered);
  CHECK(parameters_of(recovered) == parameters_of(second));

  io::CheckpointWriter writer(run);
  writer.set_value("step", "42");
  CHECK_THROWS_AS(writer.set_value("two words", "x"), invalid_argument);
  CHECK_THROWS_AS(writer.set_value("k", "line\nbreak"), invalid_argument);
  writer.commit();
  CHECK(io::CheckpointReader(run).value("step") == "42");
  CHECK_FALSE(fs::exists(dir.path / "run.old"));
}

TEST_CASE("checkpoint: the next save removes what saves killed while writing left behind, and only that",
          "[io][checkpoint]") {
  TempDir dir("ckpt-orphans");
  Rng rng(test::seed(97, "checkpoint orphans"));
  Model<float> model(rng);
  const fs::path run = dir.path / "run";
  const pid_t child = ::fork();  // a process that has ended: the pid of a writer killed mid-save
  if (child == 0) ::_exit(0);
  REQUIRE(child > 0);
  ::waitpid(child, nullptr, 0);
  const auto temporary = [&](const std::string& suffix) {
    const fs::path p = dir.path / ("run.tmp-" + suffix);
    fs::create_directories(p);
    std::ofstream(p / "t0.npy") << "half written";
    return p;
  };
  const fs::path orphan = temporary(std::to_string(child) + "-3");
  const fs::path alive = temporary(std::to_string(::getpid()) + "-99");  // this process: still running
  const fs::path init = temporary("1-0");                                 // pid 1 runs
  const fs::path odd = temporary("x-0");                                  // not a writer's name
  const fs::path other = dir.path / ("other.tmp-" + std::to_string(child) + "-0");  // another checkpoint's
  fs::create_directories(other);
  io::save_checkpoint(run, model);
  CHECK_FALSE(fs::exists(orphan));
  for (const fs::path& kept : {alive, init, odd, other}) CHECK(fs::exists(kept));
  fs::copy(run, dir.path / "run.old", fs::copy_options::recursive);  // killed after publishing, before removing it
  io::tidy_checkpoint(run);
  CHECK_FALSE(fs::exists(dir.path / "run.old"));
  fs::rename(run, dir.path / "run.old");  // killed between the renames: the set-aside one is all there is
  io::tidy_checkpoint(run);
  CHECK(io::checkpoint_exists(run));
  Model<float> probe(rng);
  io::load_checkpoint(run, probe);
  CHECK(parameters_of(probe) == parameters_of(model));
}
