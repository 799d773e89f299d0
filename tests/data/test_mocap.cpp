// SPDX-License-Identifier: MIT
// The motion capture loader: the shipped release read exactly, the published protocol, the skeleton graph, batch
// contents, damaged releases rejected with the offending values, and the EGNN's symmetries on the skeleton graph.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <queue>

#include "ace/constrained/equivariance.hpp"
#include "ace/data/mocap.hpp"
#include "ace/group/so3.hpp"
#include "ace/models/egnn.hpp"
#include "support.hpp"

using namespace ace;
using namespace ace::data;
namespace fs = std::filesystem;

namespace {
const fs::path release = ACE_MOCAP_DIR;

/// Hop distances between joints over the bones (breadth-first search), an independent route to the edge types.
std::vector<std::size_t> hops(const MocapData& d, std::size_t from) {
  std::vector<std::size_t> dist(d.joints, d.joints + 1);
  std::queue<std::size_t> q;
  dist[from] = 0;
  q.push(from);
  while (!q.empty()) {
    const std::size_t a = q.front();
    q.pop();
    for (const auto& [u, v] : d.bones)
      for (const auto& [p, r] : {std::pair<std::size_t, std::size_t>{u, v}, {v, u}})
        if (p == a && dist[r] > dist[a] + 1) {
          dist[r] = dist[a] + 1;
          q.push(r);
        }
  }
  return dist;
}

/// A writable copy of the release in which the test damages one file.
struct DamagedCopy {
  test::TempDir dir;
  explicit DamagedCopy(const std::string& name) : dir(name) {
    for (const auto& f : fs::directory_iterator(release))
      if (f.path().extension() == ".npy") fs::copy_file(f.path(), dir.path / f.path().filename());
  }
  void write_pairs(const char* file, const std::vector<std::int64_t>& v) const {
    io::write_npy<std::int64_t>(dir.path / file, v, std::vector<std::size_t>{v.size() / 2, 2});
  }
};
}  // namespace

TEST_CASE("mocap: the shipped release loads with its published shapes and protocol", "[mocap]") {
  const MocapData d = load_mocap(release);
  CHECK(d.trials.size() == 11);
  CHECK(d.joints == 31);
  CHECK(d.bones.size() == 30);
  CHECK(d.frames == std::vector<std::size_t>{141, 138, 165, 143, 137, 126, 148, 128, 130, 152, 128});
  CHECK(d.rows(MocapSplit::train).size() == 400);
  CHECK(d.rows(MocapSplit::validation).size() == 240);
  CHECK(d.rows(MocapSplit::test).size() == 240);
  CHECK(d.rows(MocapSplit::train).front() == MocapSample{1, 57});
  CHECK(d.rows(MocapSplit::validation).front() == MocapSample{0, 78});
  CHECK(d.position(0, 0, 0, 1) == Approx(17.1113).epsilon(1e-12));

  // The protocol: 200 training samples = the first 40 stored rows of each of the 5 training trials; all 80 rows of
  // each validation and test trial.
  const auto train = mocap_samples(d, MocapSplit::train);
  REQUIRE(train.size() == 200);
  std::map<std::size_t, std::size_t> per_trial;
  for (const auto& s : train) ++per_trial[s.trial];
  CHECK(per_trial == std::map<std::size_t, std::size_t>{{1, 40}, {2, 40}, {5, 40}, {6, 40}, {10, 40}});
  std::size_t at = 0;  // each trial's first 40 rows, in the stored order
  for (std::size_t trial : {1, 2, 5, 6, 10}) {
    std::size_t k = 0;
    for (const auto& r : d.rows(MocapSplit::train))
      if (r.trial == trial && k < 40) {
        CHECK(train[at++] == r);
        ++k;
      }
  }
  CHECK(mocap_samples(d, MocapSplit::validation) == d.rows(MocapSplit::validation));
  CHECK(mocap_samples(d, MocapSplit::test) == d.rows(MocapSplit::test));
  CHECK(mocap_samples(d, MocapSplit::train, {.max_train = 100}).size() == 100);
  CHECK(mocap_samples(d, MocapSplit::train, {.max_train = 10000}).size() == 400);  // every stored row
  CHECK_THROWS_AS(mocap_samples(d, MocapSplit::train, {.max_train = 4}), invalid_argument);
  CHECK_THROWS_WITH(mocap_samples(d, MocapSplit::train, {.delta = 70}), Catch::Contains("past the trial's last"));
}

TEST_CASE("mocap: the skeleton graph has the bones (type 1) and the two-hop pairs (type 2), both ways", "[mocap]") {
  const MocapData d = load_mocap(release);
  const MocapGraph g = mocap_graph(d);
  REQUIRE(g.types.size() == g.graph.edges());
  std::map<std::pair<std::size_t, std::size_t>, double> type;
  std::size_t previous = 0;
  for (std::size_t e = 0; e < g.graph.edges(); ++e) {
    const std::size_t i = g.graph.row(e), j = g.graph.col(e);
    CHECK(i != j);
    CHECK(i * d.joints + j >= previous);  // row-major order, as the reference builds it
    previous = i * d.joints + j;
    CHECK(type.emplace(std::pair{i, j}, g.types[e]).second);  // no duplicates
  }
  std::size_t bones = 0, two_hop = 0;
  for (std::size_t i = 0; i < d.joints; ++i) {
    const auto dist = hops(d, i);
    for (std::size_t j = 0; j < d.joints; ++j) {
      if (j == i) continue;
      CAPTURE(i, j, dist[j]);
      const auto it = type.find({i, j});
      if (dist[j] == 1) {
        REQUIRE(it != type.end());
        CHECK(it->second == mocap_bone);
        ++bones;
      } else if (dist[j] == 2) {
        REQUIRE(it != type.end());
        CHECK(it->second == mocap_two_hop);
        ++two_hop;
      } else {
        CHECK(it == type.end());
      }
    }
  }
  CHECK(bones == 60);
  // a tree: the two-hop pairs are the ordered pairs of distinct neighbours of each joint, sum deg (deg - 1)
  std::vector<std::size_t> degree(d.joints, 0);
  for (const auto& [a, b] : d.bones) ++degree[a], ++degree[b];
  std::size_t expected = 0;
  for (std::size_t k : degree) expected += k * (k - 1);
  CHECK(two_hop == expected);
  CHECK(g.graph.edges() == bones + two_hop);
}

TEST_CASE("mocap: a batch holds x(s), x(s+1) - x(s), x(s+delta), the speed and height features and the edge "
          "attributes", "[mocap]") {
  const MocapData d = load_mocap(release);
  const MocapGraph g = mocap_graph(d);
  const std::vector<MocapSample> samples{{3, 21}, {10, 89}};
  const auto b = mocap_batch<double>(d, g, samples, 30, {.speed = true, .height_scale = 29.5});
  const auto height_only = mocap_batch<double>(d, g, samples, 30, {.speed = false, .height_scale = 10.0});
  const std::size_t n = d.joints, ne = g.graph.edges();
  REQUIRE(b.x.shape()[0] == 2 * n);
  REQUIRE(b.h.shape()[1] == 2);
  REQUIRE(height_only.h.shape()[1] == 1);
  CHECK(b.raw.shape()[1] == 0);
  CHECK(b.edge_attr.shape()[0] == 2 * ne);
  for (std::size_t s = 0; s < 2; ++s) {
    const auto [trial, start] = samples[s];
    for (std::size_t i = 0; i < n; ++i) {
      const Eigen::Vector3d v(d.position(trial, start + 1, i, 0) - d.position(trial, start, i, 0),
                              d.position(trial, start + 1, i, 1) - d.position(trial, start, i, 1),
                              d.position(trial, start + 1, i, 2) - d.position(trial, start, i, 2));
      CHECK(b.h(s * n + i, 0) == Approx(v.norm()).epsilon(1e-14));
      CHECK(b.h(s * n + i, 1) == d.position(trial, start, i, 1) / 29.5);
      CHECK(height_only.h(s * n + i, 0) == d.position(trial, start, i, 1) / 10.0);
      CHECK(height_only.x(s * n + i, 2) == b.x(s * n + i, 2));
      for (std::size_t k = 0; k < 3; ++k) {
        CHECK(b.x(s * n + i, k) == d.position(trial, start, i, k));
        CHECK(b.v(s * n + i, k) == d.position(trial, start + 1, i, k) - d.position(trial, start, i, k));
        CHECK(b.target(s * n + i, k) == d.position(trial, start + 30, i, k));
      }
    }
    for (std::size_t e : {std::size_t{0}, ne / 2, ne - 1}) {
      const std::size_t i = g.graph.row(e), j = g.graph.col(e);
      const Eigen::Vector3d xi(b.x(s * n + i, 0), b.x(s * n + i, 1), b.x(s * n + i, 2));
      const Eigen::Vector3d xj(b.x(s * n + j, 0), b.x(s * n + j, 1), b.x(s * n + j, 2));
      CHECK(b.edge_attr(s * ne + e, 0) == g.types[e]);
      CHECK(b.edge_attr(s * ne + e, 1) == Approx((xi - xj).squaredNorm()).epsilon(1e-14));
    }
  }
  CHECK_THROWS_AS(mocap_batch<double>(d, g, std::vector<MocapSample>{{10, 97}}, 30), invalid_argument);
  CHECK_THROWS_AS(mocap_batch<double>(d, g, std::vector<MocapSample>{{11, 0}}, 30), invalid_argument);
  for (const double bad : {0.0, -1.0, std::numeric_limits<double>::infinity(), std::nan("")})
    CHECK_THROWS_WITH(mocap_batch<double>(d, g, samples, 30, {.speed = true, .height_scale = bad}),
                      Catch::Contains("height scale must be positive and finite"));
}

TEST_CASE("mocap: the largest height over a split's input frames", "[mocap]") {
  const MocapData d = load_mocap(release);
  const auto train = mocap_samples(d, MocapSplit::train);
  double top = -1e300;
  for (const auto& [trial, start] : train)
    for (std::size_t i = 0; i < d.joints; ++i) top = std::max(top, d.position(trial, start, i, 1));
  CHECK(mocap_max_height(d, train) == top);
  CHECK(top > 20.0);  // the release's heights (the head of a standing subject) are in the high twenties
  CHECK(top < 40.0);
  CHECK(mocap_max_height(d, std::span(train).first(5)) <= top);
  CHECK_THROWS_AS(mocap_max_height(d, std::vector<MocapSample>{}), invalid_argument);
  CHECK_THROWS_WITH(mocap_max_height(d, std::vector<MocapSample>{{11, 0}}), Catch::Contains("(trial 11, start 0)"));
}

TEST_CASE("mocap: a damaged or missing release is an io_error naming the file and the values", "[mocap]") {
  CHECK_THROWS_WITH(load_mocap(release / "nowhere"), Catch::Contains("no directory") && Catch::Contains("nowhere"));
  {
    DamagedCopy c("mocap-bone");
    c.write_pairs("edges.npy", {1, 0, 2, 31});
    CHECK_THROWS_WITH(load_mocap(c.dir.path), Catch::Contains("edges.npy: bone 1 = (2, 31)"));
    c.write_pairs("edges.npy", {1, 0, 0, 1});
    CHECK_THROWS_WITH(load_mocap(c.dir.path), Catch::Contains("listed twice"));
    c.write_pairs("edges.npy", {3, 3});
    CHECK_THROWS_AS(load_mocap(c.dir.path), io_error);
  }
  {
    DamagedCopy c("mocap-split");
    c.write_pairs("split_test.npy", {3, 21, 12, 0});
    CHECK_THROWS_WITH(load_mocap(c.dir.path), Catch::Contains("split_test.npy: row 1 = (trial 12, start 0)"));
    c.write_pairs("split_test.npy", {3, 142});
    CHECK_THROWS_WITH(load_mocap(c.dir.path), Catch::Contains("(trial 3, start 142)"));
    const std::vector<double> real{3.0, 21.0};
    io::write_npy<double>(c.dir.path / "split_test.npy", real, std::vector<std::size_t>{1, 2});
    CHECK_THROWS_WITH(load_mocap(c.dir.path), Catch::Contains("split_test.npy: expected a non-empty integer array"));
    fs::remove(c.dir.path / "split_test.npy");
    CHECK_THROWS_WITH(load_mocap(c.dir.path), Catch::Contains("split_test.npy"));
  }
  {
    DamagedCopy c("mocap-trial");
    std::vector<double> pose(2 * 31 * 3, 1.0);
    pose[100] = std::nan("");
    io::write_npy<double>(c.dir.path / "trial_04.npy", pose, std::vector<std::size_t>{2, 31, 3});
    CHECK_THROWS_WITH(load_mocap(c.dir.path), Catch::Contains("trial_04.npy: frame 1, joint 2, axis 1 is nan"));
    pose[100] = 1.0;
    pose[5] = -std::numeric_limits<double>::infinity();
    io::write_npy<double>(c.dir.path / "trial_04.npy", pose, std::vector<std::size_t>{2, 31, 3});
    CHECK_THROWS_WITH(load_mocap(c.dir.path), Catch::Contains("trial_04.npy: frame 0, joint 1, axis 2 is -inf"));
    io::write_npy<double>(c.dir.path / "trial_04.npy", std::span(pose).first(2 * 30 * 3),
                          std::vector<std::size_t>{2, 30, 3});
    CHECK_THROWS_WITH(load_mocap(c.dir.path), Catch::Contains("trial_04.npy has 30 joints, the earlier trials 31"));
    // a truncated file: the .npy reader's own check
    const auto bytes = [&] {
      std::ifstream in(release / "trial_04.npy", std::ios::binary);
      return std::string(std::istreambuf_iterator<char>(in), {});
    }();
    std::ofstream(c.dir.path / "trial_04.npy", std::ios::binary) << bytes.substr(0, bytes.size() - 8);
    CHECK_THROWS_WITH(load_mocap(c.dir.path), Catch::Contains("truncated"));
    fs::remove(c.dir.path / "trial_00.npy");
    CHECK_THROWS_WITH(load_mocap(c.dir.path), Catch::Contains("trial_00.npy not found"));
  }
}

TEST_CASE("mocap: the EGNN on the skeleton graph is E(3)-equivariant; relaxed at gamma 0 equals strict", "[mocap]") {
  const MocapData d = load_mocap(release);
  const MocapGraph g = mocap_graph(d);
  const auto samples = mocap_samples(d, MocapSplit::validation);
  const auto b = mocap_batch<double>(d, g, std::span(samples).first(3), 30);
  Rng rng(test::seed(31, "mocap egnn"));
  const EGNNOptions o{.node_features = MocapFeatures{}.count(), .edge_features = 2, .raw_features = 0, .hidden = 16,
                      .layers = 3, .relaxed = true};
  EGNNRegression<double> model(EGNN<double>(g.graph, o, rng));
  model.set_relaxation(false);
  const EquivarianceError strict = euclidean_equivariance_error(model, b, so3_grid(6));
  CHECK(strict.max < 1e-12);
  const Tensor<double, 2> reference = model.predict(b);
  model.set_relaxation(true);
  CHECK(euclidean_equivariance_error(model, b, so3_grid(6)).max > 1e-3);  // the branches break it (gamma = 1)
  model.for_each_parameter([](ParamView<double> p) {
    if (p.role == Role::gamma) from_host_vector<Cpu>(std::vector<double>(p.value.size(), 0.0), p.value);
  });
  const Tensor<double, 2>& relaxed = model.predict(b);
  CHECK(std::equal(relaxed.begin(), relaxed.end(), reference.begin()));
}
