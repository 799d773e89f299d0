// SPDX-License-Identifier: MIT
// The N-body simulator: determinism, frame bookkeeping, conservation laws, the external field, the cache.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <limits>

#include "ace/data/nbody.hpp"
#include "support.hpp"

using namespace ace;
using namespace ace::data;

namespace {
Eigen::Vector3d total_velocity(const NBodyTrajectory& t, std::size_t frame) {
  Eigen::Vector3d s = Eigen::Vector3d::Zero();
  for (std::size_t i = 0; i < t.particles; ++i)
    for (int k = 0; k < 3; ++k) s[k] += t.velocity(frame, i, static_cast<std::size_t>(k));
  return s;
}
}  // namespace

TEST_CASE("nbody: the same seed gives the same system; frames are the states after 100 (k + 1) steps", "[nbody]") {
  const NBodyOptions o;
  Rng a(7), b(7);
  const NBodyTrajectory ta = simulate_nbody(o, a), tb = simulate_nbody(o, b);
  CHECK(ta.frames == 49);
  CHECK(ta.positions == tb.positions);
  CHECK(ta.charges == tb.charges);
  // initial speeds are exactly 0.5: one kick of dt F later, |v| differs from 0.5 by at most dt * |F|
  // A shorter run (two frames) reproduces the first two frames of the long one.
  NBodyOptions shorter = o;
  shorter.steps = 300;
  shorter.input_frame = shorter.target_frame = 0;
  Rng c(7);
  const NBodyTrajectory ts = simulate_nbody(shorter, c);
  REQUIRE(ts.frames == 2);
  for (std::size_t i = 0; i < 2 * 5 * 3; ++i) {
    CHECK(ts.positions[i] == ta.positions[i]);
    CHECK(ts.velocities[i] == ta.velocities[i]);
  }
  for (double q : ta.charges) CHECK(std::abs(q) == 1.0);
}

TEST_CASE("nbody: momentum is conserved without a field; a field adds E t sum(q) along its axis", "[nbody]") {
  NBodyOptions o;
  o.force_clip = 1e300;  // clipping is the only thing that breaks Newton's third law
  for (std::uint64_t s = 0; s < 5; ++s) {
    Rng rng(s);
    const NBodyTrajectory t = simulate_nbody(o, rng);
    CHECK((total_velocity(t, 48) - total_velocity(t, 0)).norm() < 1e-9 * (1 + total_velocity(t, 0).norm()));
  }
  o.field = 0.8;
  o.field_axis = {0.6, 0.0, 0.8};
  Rng rng(3);
  const NBodyTrajectory t = simulate_nbody(o, rng);
  double q = 0.0;
  for (double c : t.charges) q += c;
  const Eigen::Vector3d axis(0.6, 0.0, 0.8);
  const double time = 48 * 100 * o.dt;  // velocity kicks between the recordings of frame 0 and frame 48
  CHECK((total_velocity(t, 48) - total_velocity(t, 0) - time * o.field * q * axis).norm() < 1e-9);
}

TEST_CASE("nbody: the force clip's counts: every evaluation, the input-to-target window, and the clips themselves",
          "[nbody]") {
  NBodyOptions o;
  o.force_clip = 1e300;  // never fires
  Rng a(11);
  const NBodyTrajectory t = simulate_nbody(o, a);
  // one force evaluation per step (the first kick, then after every position update), 3 components per particle
  CHECK(t.force_components == o.steps * o.particles * 3);
  CHECK(t.window_components == (o.target_frame - o.input_frame) * o.record_every * o.particles * 3);
  CHECK(t.clipped == 0);
  CHECK(t.window_clipped == 0);
  o.force_clip = 1e-12;  // fires on every component (a net force of exactly 0 does not occur)
  Rng b(11);
  const NBodyTrajectory all = simulate_nbody(o, b);
  CHECK(all.clipped == all.force_components);
  CHECK(all.window_clipped == all.window_components);
  // The default clip: the counts follow the forces, and clipping changes the trajectory only where it fires.
  const NBodyOptions d;
  std::size_t systems_with_clips = 0, systems_clipped_in_window = 0;
  NBodyClipStatistics manual;
  for (std::size_t c = 0; c < 20; ++c) {
    const NBodyTrajectory s = simulate_nbody_system(d, NBodySplit::test, c, 5);
    CHECK(s.window_clipped <= s.clipped);
    systems_with_clips += s.clipped > 0;
    systems_clipped_in_window += s.window_clipped > 0;
    manual.force_components += s.force_components;
    manual.clipped += s.clipped;
    manual.window_clipped += s.window_clipped;
    if (s.clipped == 0) {  // then the unclipped simulation is the same system, bit for bit
      NBodyOptions never = d;
      never.force_clip = 1e300;
      CHECK(simulate_nbody_system(never, NBodySplit::test, c, 5).positions == s.positions);
    }
  }
  CHECK(systems_with_clips > 0);  // close approaches do happen in 20 systems of 5 000 steps
  const NBodyClipStatistics stats = nbody_clip_statistics(d, NBodySplit::test, 20, 5);
  CHECK(stats.systems == 20);
  CHECK(stats.force_components == manual.force_components);
  CHECK(stats.clipped == manual.clipped);
  CHECK(stats.window_clipped == manual.window_clipped);
  CHECK(stats.systems_clipped_in_window == systems_clipped_in_window);
  CHECK_THROWS_AS(nbody_clip_statistics(d, NBodySplit::test, 2001, 5), invalid_argument);
}

TEST_CASE("nbody: splits are prefixes of one seeded sequence; the cache round-trips and rejects a corrupt file",
          "[nbody]") {
  NBodyOptions o;
  const NBodySamples a = make_nbody_samples(o, NBodySplit::train, 12, 5);
  const NBodySamples b = make_nbody_samples(o, NBodySplit::train, 20, 5);
  CHECK(std::equal(a.targets.begin(), a.targets.end(), b.targets.begin()));
  const NBodySamples v = make_nbody_samples(o, NBodySplit::validation, 12, 5);
  CHECK(v.positions != a.positions);
  CHECK(make_nbody_samples(o, NBodySplit::train, 12, 6).positions != a.positions);
  CHECK_THROWS_WITH(make_nbody_samples(o, NBodySplit::test, 2001, 5), Catch::Contains("holds 2000"));

  test::TempDir dir("nbody-cache");
  const NBodySamples made = load_or_make_nbody(dir.path, o, NBodySplit::train, 12, 5);
  CHECK(made.targets == a.targets);
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path)) {
    ++files;
    CHECK(entry.path().extension() == ".npy");
  }
  CHECK(files == 4);
  const NBodySamples cached = load_or_make_nbody(dir.path, o, NBodySplit::train, 12, 5);
  CHECK(cached.positions == a.positions);
  CHECK(cached.charges == a.charges);
  const std::filesystem::path positions = nbody_cache_file(dir.path, o, NBodySplit::train, 12, 5, "positions");
  std::vector<double> bad = a.positions;
  bad[(1 * 5 + 2) * 3 + 0] = std::nan("");  // system 1, particle 2, axis 0
  io::write_npy<double>(positions, bad, std::vector<std::size_t>{12, 5, 3});
  CHECK_THROWS_WITH(load_or_make_nbody(dir.path, o, NBodySplit::train, 12, 5),
                    Catch::Contains(positions.string() + ": system 1, particle 2, axis 0 is nan"));
  io::write_npy<double>(positions, a.positions, std::vector<std::size_t>{12, 5, 3});
  for (const auto& entry : std::filesystem::directory_iterator(dir.path)) {
    if (entry.path().string().find("targets") == std::string::npos) continue;
    std::ofstream(entry.path(), std::ios::binary | std::ios::trunc) << "garbage";
  }
  CHECK_THROWS_AS(load_or_make_nbody(dir.path, o, NBodySplit::train, 12, 5), io_error);
}

TEST_CASE("nbody: the reference generator's arrays are read at frames 30 and 40, transposed to [system, particle, 3]",
          "[nbody]") {
  // loc_valid / vel_valid [systems, frames, 3, particles], charges [systems, particles, 1], as the generator saves
  // them; every entry tells where it came from.
  const std::size_t systems = 3, frames = 49, n = 5;
  std::vector<double> loc(systems * frames * 3 * n), vel(loc.size()), charges(systems * n);
  const auto code = [](std::size_t c, std::size_t f, std::size_t k, std::size_t i) {
    return static_cast<double>(1000 * c + 10 * f + k) + 0.125 * static_cast<double>(i);
  };
  for (std::size_t c = 0; c < systems; ++c)
    for (std::size_t f = 0; f < frames; ++f)
      for (std::size_t k = 0; k < 3; ++k)
        for (std::size_t i = 0; i < n; ++i) {
          const std::size_t at = ((c * frames + f) * 3 + k) * n + i;
          loc[at] = code(c, f, k, i);
          vel[at] = -loc[at];
        }
  for (std::size_t j = 0; j < charges.size(); ++j) charges[j] = j % 3 == 0 ? 1.0 : -1.0;
  test::TempDir dir("nbody-reference");
  const std::vector<std::size_t> shape{systems, frames, 3, n}, q_shape{systems, n, 1};
  io::write_npy<double>(dir.path / "loc_valid_charged5_initvel1small.npy", loc, shape);
  io::write_npy<double>(dir.path / "vel_valid_charged5_initvel1small.npy", vel, shape);
  io::write_npy<double>(dir.path / "charges_valid_charged5_initvel1small.npy", charges, q_shape);
  const NBodySamples s = read_reference_nbody(dir.path, NBodySplit::validation, 2);
  REQUIRE(s.count == 2);
  REQUIRE(s.particles == n);
  for (std::size_t c = 0; c < 2; ++c)
    for (std::size_t i = 0; i < n; ++i) {
      CHECK(s.charges[c * n + i] == charges[c * n + i]);
      for (std::size_t k = 0; k < 3; ++k) {
        const double input = code(c, 30, k, i);
        CHECK(s.positions[(c * n + i) * 3 + k] == input);
        CHECK(s.velocities[(c * n + i) * 3 + k] == -input);
        CHECK(s.targets[(c * n + i) * 3 + k] == input + 100.0);  // frame 40
      }
    }
  CHECK_THROWS_WITH(read_reference_nbody(dir.path, NBodySplit::validation, 4),
                    Catch::Contains("loc_valid_charged5_initvel1small.npy") && Catch::Contains("at least 4 systems"));
  CHECK_THROWS_WITH(read_reference_nbody(dir.path, NBodySplit::test, 1),
                    Catch::Contains("loc_test_charged5_initvel1small.npy does not exist"));
  std::vector<double> broken = loc;
  broken[((1 * frames + 7) * 3 + 2) * n + 3] = std::numeric_limits<double>::infinity();
  io::write_npy<double>(dir.path / "loc_valid_charged5_initvel1small.npy", broken, shape);
  CHECK_THROWS_WITH(read_reference_nbody(dir.path, NBodySplit::validation, 2),
                    Catch::Contains("loc_valid_charged5_initvel1small.npy: system 1, frame 7, axis 2, particle 3") &&
                        Catch::Contains("is inf"));
  io::write_npy<double>(dir.path / "loc_valid_charged5_initvel1small.npy", loc, shape);
  CHECK_THROWS_AS(read_reference_nbody(dir.path, NBodySplit::validation, 0), invalid_argument);
  const std::vector<std::size_t> rank2{systems, n};
  io::write_npy<double>(dir.path / "charges_valid_charged5_initvel1small.npy", charges, rank2);
  CHECK_THROWS_AS(read_reference_nbody(dir.path, NBodySplit::validation, 1), io_error);
}

TEST_CASE("nbody: batches hold |v|, [q_i q_j, |x_i - x_j|^2] per edge, and the charges as raw data", "[nbody]") {
  const NBodyOptions o;
  const NBodySamples s = make_nbody_samples(o, NBodySplit::train, 4, 9);
  const std::vector<std::size_t> idx{3, 1};
  const GraphBatch<double> b = nbody_batch<double>(s, idx);
  const Graph g = Graph::complete(5);
  REQUIRE(b.edge_attr.shape()[0] == 2 * g.edges());
  for (std::size_t c = 0; c < 2; ++c) {
    for (std::size_t e = 0; e < g.edges(); ++e) {
      const std::size_t i = c * 5 + g.row(e), j = c * 5 + g.col(e);
      CHECK(b.edge_attr(c * g.edges() + e, 0) == b.raw(i, 0) * b.raw(j, 0));
      CHECK(b.edge_attr(c * g.edges() + e, 1) == Approx((as_matrix(b.x).row(i) - as_matrix(b.x).row(j)).squaredNorm()));
    }
    for (std::size_t i = 0; i < 5; ++i) {
      CHECK(b.h(c * 5 + i, 0) == Approx(as_matrix(b.v).row(c * 5 + i).norm()));
      CHECK(b.target(c * 5 + i, 2) == s.targets[(idx[c] * 5 + i) * 3 + 2]);
    }
  }
  CHECK_THROWS_AS(nbody_batch<double>(s, std::vector<std::size_t>{4}), invalid_argument);
}

TEST_CASE("nbody: invalid options throw with the value", "[nbody][errors]") {
  NBodyOptions o;
  o.dt = -1.0;
  CHECK_THROWS_WITH(o.validate(), Catch::Contains("-1"));
  o = {};
  o.field_axis = {1.0, 1.0, 0.0};
  CHECK_THROWS_WITH(o.validate(), Catch::Contains("unit vector"));
  o = {};
  o.target_frame = 49;
  CHECK_THROWS_AS(o.validate(), invalid_argument);
}
