// SPDX-License-Identifier: MIT
// The charged-particle N-body data set (docs/method.md §8): the simulator, deterministic by seed, an optional constant
// external field that breaks the rotation symmetry, .npy caching, and mini-batches for an EGNN.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ace/data/checks.hpp"
#include "ace/backend/cpu/parallel.hpp"
#include "ace/error.hpp"
#include "ace/io/npy.hpp"
#include "ace/nn/graph/graph.hpp"
#include "ace/random.hpp"

namespace ace::data {

struct NBodyOptions {
  std::size_t particles = 5;
  double dt = 0.001;
  std::size_t steps = 5000;          // integration steps (the first kick plus steps 1..steps-1)
  std::size_t record_every = 100;    // frame k = the state after record_every * (k + 1) steps
  std::size_t input_frame = 30;
  std::size_t target_frame = 40;
  double position_std = 1.0;         // initial positions ~ N(0, position_std²) per component
  double speed = 0.5;                // initial velocities: a random direction of exactly this norm
  double force_clip = 100.0;         // the summed force is clipped per component to ±force_clip
  double field = 0.0;                // external field strength E: F_i += q_i E axis (0 = the symmetric data)
  std::array<double, 3> field_axis{0.0, 0.0, 1.0};

  std::size_t frames() const { return steps / record_every - 1; }
  void validate() const {
    ACE_THROW_IF(particles < 2, invalid_argument, "NBodyOptions::particles must be >= 2, got ", particles);
    ACE_THROW_IF(!(dt > 0.0) || !std::isfinite(dt), invalid_argument, "NBodyOptions::dt must be > 0, got ", dt);
    ACE_THROW_IF(record_every == 0 || steps < 2 * record_every, invalid_argument, "NBodyOptions: ", steps,
                 " steps recorded every ", record_every, " keep no frame");
    ACE_THROW_IF(input_frame >= frames() || target_frame >= frames(), invalid_argument, "NBodyOptions: frames ",
                 input_frame, " and ", target_frame, " of ", frames());
    ACE_THROW_IF(!std::isfinite(field), invalid_argument, "NBodyOptions::field must be finite, got ", field);
    const double n = std::hypot(field_axis[0], field_axis[1], field_axis[2]);
    ACE_THROW_IF(!(std::abs(n - 1.0) < 1e-9), invalid_argument, "NBodyOptions::field_axis must be a unit vector, "
                 "its norm is ", n);
  }
};

/// One simulated system: positions and velocities of every kept frame ([frames][particles][3], row-major) and the
/// charges (±1); and how often the force clip fired: force components computed over the whole simulation and those
/// clipped to ±force_clip, and the same between the input and the target frame (the force evaluations from the step
/// that recorded the input frame up to, not including, the step that recorded the target).
struct NBodyTrajectory {
  std::size_t frames = 0, particles = 0;
  std::vector<double> positions, velocities, charges;
  std::size_t force_components = 0, clipped = 0, window_components = 0, window_clipped = 0;
  double position(std::size_t frame, std::size_t i, std::size_t k) const {
    return positions[(frame * particles + i) * 3 + k];
  }
  double velocity(std::size_t frame, std::size_t i, std::size_t k) const {
    return velocities[(frame * particles + i) * 3 + k];
  }
};

/// Simulates one system (docs/method.md §8): charges ±1 with probability ½; positions ~ N(0, std²); velocities a
/// random direction rescaled to norm `speed`; F_i = Σ_{j≠i} q_i q_j (x_i - x_j) / |x_i - x_j|³ (+ q_i E axis),
/// clipped per component; symplectic Euler with one full kick v += dt F(x0) first, then for steps 1..steps-1:
/// x += dt v, record every record_every-th step, v += dt F(x).
inline NBodyTrajectory simulate_nbody(const NBodyOptions& o, Rng& rng) {
  o.validate();
  const std::size_t n = o.particles;
  NBodyTrajectory t;
  t.frames = o.frames();
  t.particles = n;
  t.charges.resize(n);
  std::vector<double> x(3 * n), v(3 * n), force(3 * n);
  for (auto& q : t.charges) q = rng.uniform() < 0.5 ? 1.0 : -1.0;
  for (auto& c : x) c = o.position_std * rng.normal();
  for (std::size_t i = 0; i < n; ++i) {
    double d[3], norm = 0.0;
    do {
      for (double& c : d) c = rng.normal();
      norm = std::hypot(d[0], d[1], d[2]);
    } while (norm < 1e-12);
    for (std::size_t k = 0; k < 3; ++k) v[3 * i + k] = o.speed * d[k] / norm;
  }
  const std::size_t window_first = o.record_every * (o.input_frame + 1);
  const std::size_t window_end = o.record_every * (o.target_frame + 1);
  auto forces = [&](std::size_t step) {
    const bool window = step >= window_first && step < window_end;
    std::fill(force.begin(), force.end(), 0.0);
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t j = 0; j < n; ++j) {
        if (i == j) continue;
        double d[3];
        for (std::size_t k = 0; k < 3; ++k) d[k] = x[3 * i + k] - x[3 * j + k];
        const double r = std::hypot(d[0], d[1], d[2]);
        const double s = t.charges[i] * t.charges[j] / (r * r * r);
        for (std::size_t k = 0; k < 3; ++k) force[3 * i + k] += s * d[k];
      }
      for (std::size_t k = 0; k < 3; ++k) {
        const double f = force[3 * i + k] + t.charges[i] * o.field * o.field_axis[k];
        force[3 * i + k] = std::clamp(f, -o.force_clip, o.force_clip);
        const bool clip = std::abs(f) > o.force_clip;
        ++t.force_components;
        t.clipped += clip;
        t.window_components += window;
        t.window_clipped += window && clip;
      }
    }
  };
  t.positions.resize(t.frames * n * 3);
  t.velocities.resize(t.frames * n * 3);
  forces(0);
  for (std::size_t c = 0; c < 3 * n; ++c) v[c] += o.dt * force[c];
  std::size_t frame = 0;
  for (std::size_t step = 1; step < o.steps; ++step) {
    for (std::size_t c = 0; c < 3 * n; ++c) x[c] += o.dt * v[c];
    if (step % o.record_every == 0 && frame < t.frames) {
      std::copy(x.begin(), x.end(), t.positions.begin() + static_cast<std::ptrdiff_t>(frame * 3 * n));
      std::copy(v.begin(), v.end(), t.velocities.begin() + static_cast<std::ptrdiff_t>(frame * 3 * n));
      ++frame;
    }
    forces(step);
    for (std::size_t c = 0; c < 3 * n; ++c) v[c] += o.dt * force[c];
  }
  return t;
}

/// Which part of the data set: the reference draws 10 000 training systems, then 2 000 validation and 2 000 test
/// systems; system k of the whole sequence is simulated from its own seed, so a training set of n systems is the
/// first n of the 10 000 and the splits never overlap.
enum class NBodySplit { train, validation, test };

inline std::size_t nbody_split_offset(NBodySplit s) {
  return s == NBodySplit::train ? 0 : (s == NBodySplit::validation ? 10000 : 12000);
}
inline std::size_t nbody_split_capacity(NBodySplit s) { return s == NBodySplit::train ? 10000 : 2000; }
inline const char* nbody_split_name(NBodySplit s) {
  return s == NBodySplit::train ? "train" : (s == NBodySplit::validation ? "valid" : "test");
}

/// Input/target pairs: positions and velocities at the input frame, charges, positions at the target frame.
/// Arrays are [count, particles, 3] (charges [count, particles]), row-major, double.
struct NBodySamples {
  std::size_t count = 0, particles = 0;
  std::vector<double> positions, velocities, charges, targets;
};

namespace detail {
inline std::uint64_t nbody_system_seed(std::uint64_t seed, std::size_t index) {
  std::uint64_t z = seed * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(index) + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;  // splitmix64 finaliser: neighbouring indices, unrelated streams
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace detail

/// System `index` of a split of the sequence drawn from `seed` (each system from its own seed).
inline NBodyTrajectory simulate_nbody_system(const NBodyOptions& o, NBodySplit split, std::size_t index,
                                             std::uint64_t seed) {
  Rng rng(detail::nbody_system_seed(seed, nbody_split_offset(split) + index));
  return simulate_nbody(o, rng);
}

namespace detail {
/// Throws when `count` systems of `split` are more than it holds; `who` names the caller.
inline void check_split_count(const char* who, NBodySplit split, std::size_t count) {
  ACE_THROW_IF(count > nbody_split_capacity(split), invalid_argument, who, ": ", count, " ", nbody_split_name(split),
               " systems requested; the split holds ", nbody_split_capacity(split));
}
}  // namespace detail

/// Simulates the first `count` systems of a split.
inline NBodySamples make_nbody_samples(const NBodyOptions& o, NBodySplit split, std::size_t count,
                                       std::uint64_t seed) {
  o.validate();
  detail::check_split_count("make_nbody_samples", split, count);
  NBodySamples s;
  s.count = count;
  s.particles = o.particles;
  const std::size_t n = o.particles;
  s.positions.resize(count * n * 3);
  s.velocities.resize(count * n * 3);
  s.targets.resize(count * n * 3);
  s.charges.resize(count * n);
  ACE_OMP_FOR(count >= 16)
  for (std::size_t c = 0; c < count; ++c) {
    const NBodyTrajectory t = simulate_nbody_system(o, split, c, seed);
    for (std::size_t i = 0; i < n; ++i) {
      s.charges[c * n + i] = t.charges[i];
      for (std::size_t k = 0; k < 3; ++k) {
        s.positions[(c * n + i) * 3 + k] = t.position(o.input_frame, i, k);
        s.velocities[(c * n + i) * 3 + k] = t.velocity(o.input_frame, i, k);
        s.targets[(c * n + i) * 3 + k] = t.position(o.target_frame, i, k);
      }
    }
  }
  return s;
}

/// How often the force clip fired over the first `count` systems of a split (NBodyTrajectory's counts, summed), and
/// how many systems had at least one clipped component between the input and the target frame.
struct NBodyClipStatistics {
  std::size_t systems = 0, force_components = 0, clipped = 0, window_components = 0, window_clipped = 0,
              systems_clipped_in_window = 0;
  /// Counts one more system.
  void add(const NBodyTrajectory& t) {
    ++systems;
    force_components += t.force_components;
    clipped += t.clipped;
    window_components += t.window_components;
    window_clipped += t.window_clipped;
    systems_clipped_in_window += t.window_clipped > 0;
  }
  NBodyClipStatistics& operator+=(const NBodyClipStatistics& other) {
    systems += other.systems;
    force_components += other.force_components;
    clipped += other.clipped;
    window_components += other.window_components;
    window_clipped += other.window_clipped;
    systems_clipped_in_window += other.systems_clipped_in_window;
    return *this;
  }
};

/// Simulates the systems make_nbody_samples would (the same seeds) and counts their force clips.
inline NBodyClipStatistics nbody_clip_statistics(const NBodyOptions& o, NBodySplit split, std::size_t count,
                                                 std::uint64_t seed) {
  o.validate();
  detail::check_split_count("nbody_clip_statistics", split, count);
  std::vector<NBodyClipStatistics> each(count);
  ACE_OMP_FOR(count >= 16)
  for (std::size_t c = 0; c < count; ++c) each[c].add(simulate_nbody_system(o, split, c, seed));
  NBodyClipStatistics sum;
  for (const NBodyClipStatistics& e : each) sum += e;
  return sum;
}

/// The cache file of one array ("positions", "velocities", "targets" or "charges") of a split, in `cache_dir`: its
/// name records the options, split, count and seed that made it.
inline std::filesystem::path nbody_cache_file(const std::filesystem::path& cache_dir, const NBodyOptions& o,
                                              NBodySplit split, std::size_t count, std::uint64_t seed,
                                              std::string_view what) {
  char field[64];
  std::snprintf(field, sizeof field, "%.6g_%.6g_%.6g_%.6g", o.field, o.field_axis[0], o.field_axis[1],
                o.field_axis[2]);
  return cache_dir / ace::detail::concat("nbody", o.particles, "_", nbody_split_name(split), count, "_seed", seed,
                                         "_field", field, "_steps", o.steps, "_dt", o.dt, "_frames", o.input_frame,
                                         "-", o.target_frame, ".", what, ".npy");
}

/// The samples of a split, from `cache_dir` when a cache of the same options, seed and count is there, otherwise
/// simulated and cached (four .npy files per split, written atomically; a corrupt cache is an io_error).
inline NBodySamples load_or_make_nbody(const std::filesystem::path& cache_dir, const NBodyOptions& o,
                                       NBodySplit split, std::size_t count, std::uint64_t seed) {
  o.validate();
  const auto file = [&](const char* what) { return nbody_cache_file(cache_dir, o, split, count, seed, what); };
  const std::vector<std::size_t> vec_shape{count, o.particles, 3}, q_shape{count, o.particles};
  const char* names[] = {"positions", "velocities", "targets", "charges"};
  bool cached = true;
  for (const char* what : names) cached = cached && std::filesystem::exists(file(what));
  NBodySamples s;
  if (cached) {
    s.count = count;
    s.particles = o.particles;
    auto read = [&](const char* what, const std::vector<std::size_t>& shape) {
      const io::NpyArray a = io::read_npy(file(what));
      ACE_THROW_IF(a.dtype != "<f8" || a.shape != shape, io_error, "N-body cache ", file(what).string(),
                   " holds another array than expected (dtype or shape); delete it to regenerate");
      std::vector<double> v = a.values<double>(file(what).string());
      if (shape.size() == 3) require_finite(v, shape, {"system", "particle", "axis"}, file(what).string());
      else require_finite(v, shape, {"system", "particle"}, file(what).string());
      return v;
    };
    s.positions = read("positions", vec_shape);
    s.velocities = read("velocities", vec_shape);
    s.targets = read("targets", vec_shape);
    s.charges = read("charges", q_shape);
    return s;
  }
  s = make_nbody_samples(o, split, count, seed);
  io::create_directories(cache_dir);
  auto write = [&](const char* what, const std::vector<double>& data, const std::vector<std::size_t>& shape) {
    io::write_npy_atomically<double>(file(what), data, shape);  // never a partial file
  };
  write("positions", s.positions, vec_shape);
  write("velocities", s.velocities, vec_shape);
  write("targets", s.targets, vec_shape);
  write("charges", s.charges, q_shape);
  return s;
}

/// The first `count` systems of a split of a data set written by the EGNN reference code's generator
/// (n_body_system/dataset/generate_dataset.py; docs/data.md): loc_<split><suffix>.npy and vel_<split><suffix>.npy
/// [systems, frames, 3, particles] and charges_<split><suffix>.npy [systems, particles, 1], float64, in `dir`, with
/// <split> train, valid or test and suffix "_charged5_initvel1small" for the reference's small set. Input = frame
/// `o.input_frame`, target = frame `o.target_frame` (the reference's 30 and 40). A missing file, another dtype or
/// shape, or fewer systems than `count` is an io_error naming the file.
inline NBodySamples read_reference_nbody(const std::filesystem::path& dir, NBodySplit split, std::size_t count,
                                         const NBodyOptions& o = {},
                                         const std::string& suffix = "_charged5_initvel1small") {
  const auto file = [&](const char* what) {
    return dir / ace::detail::concat(what, "_", nbody_split_name(split), suffix, ".npy");
  };
  const auto read = [&](const char* what, std::size_t rank) {
    const std::filesystem::path f = file(what);
    ACE_THROW_IF(!std::filesystem::exists(f), io_error, "read_reference_nbody: ", f.string(), " does not exist");
    io::NpyArray a = io::read_npy(f);
    ACE_THROW_IF(a.dtype != "<f8" || a.shape.size() != rank || a.shape[0] < count, io_error, "read_reference_nbody: ",
                 f.string(), " holds ", a.dtype, " of rank ", a.shape.size(), " with ",
                 a.shape.empty() ? 0 : a.shape[0], " systems; expected float64 of rank ", rank, " with at least ",
                 count, " systems");
    return a;
  };
  ACE_THROW_IF(count == 0, invalid_argument, "read_reference_nbody: count must be at least 1");
  const io::NpyArray loc = read("loc", 4), vel = read("vel", 4), charges = read("charges", 3);
  const std::size_t frames = loc.shape[1], n = loc.shape[3];
  ACE_THROW_IF(loc.shape != vel.shape || loc.shape[2] != 3 || charges.shape[1] != n || charges.shape[2] != 1 ||
                   o.input_frame >= frames || o.target_frame >= frames,
               io_error, "read_reference_nbody: ", file("loc").string(), " [", loc.shape[0], ", ", frames, ", ",
               loc.shape[2], ", ", n, "], ", file("vel").string(), " and ", file("charges").string(), " [",
               charges.shape[0], ", ", charges.shape[1], ", ", charges.shape[2],
               "] are not [systems, frames, 3, particles] and [systems, particles, 1] with frames ", o.input_frame,
               " and ", o.target_frame);
  const std::vector<double> l = loc.values<double>(file("loc").string()), v = vel.values<double>(file("vel").string()),
                            q = charges.values<double>(file("charges").string());
  require_finite(l, loc.shape, {"system", "frame", "axis", "particle"}, file("loc").string());
  require_finite(v, vel.shape, {"system", "frame", "axis", "particle"}, file("vel").string());
  require_finite(q, charges.shape, {"system", "particle", "column"}, file("charges").string());
  NBodySamples s;
  s.count = count;
  s.particles = n;
  s.positions.resize(count * n * 3);
  s.velocities.resize(count * n * 3);
  s.targets.resize(count * n * 3);
  s.charges.resize(count * n);
  const auto at = [&](const std::vector<double>& a, std::size_t c, std::size_t frame, std::size_t k, std::size_t i) {
    return a[((c * frames + frame) * 3 + k) * n + i];
  };
  for (std::size_t c = 0; c < count; ++c)
    for (std::size_t i = 0; i < n; ++i) {
      s.charges[c * n + i] = q[c * n + i];
      for (std::size_t k = 0; k < 3; ++k) {
        s.positions[(c * n + i) * 3 + k] = at(l, c, o.input_frame, k, i);
        s.velocities[(c * n + i) * 3 + k] = at(v, c, o.input_frame, k, i);
        s.targets[(c * n + i) * 3 + k] = at(l, c, o.target_frame, k, i);
      }
    }
  return s;
}

/// The EGNN batch of the systems `indices` (docs/method.md §8): h = |v_i|, edge attributes [q_i q_j, |x_i - x_j|²] on
/// the complete graph (Graph::complete's edge order), raw node data = the charge q_i (for the relaxed branches),
/// targets = positions at the target frame.
template <class T>
GraphBatch<T> nbody_batch(const NBodySamples& s, std::span<const std::size_t> indices) {
  const std::size_t n = s.particles, b = indices.size(), rows = b * n, edges = n * (n - 1);
  GraphBatch<T> out;
  out.h.resize({rows, 1});
  out.x.resize({rows, 3});
  out.v.resize({rows, 3});
  out.target.resize({rows, 3});
  out.raw.resize({rows, 1});
  out.edge_attr.resize({b * edges, 2});
  for (std::size_t c = 0; c < b; ++c) {
    const std::size_t src = indices[c];
    ACE_THROW_IF(src >= s.count, invalid_argument, "nbody_batch: system ", src, " of ", s.count);
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t r = c * n + i, q = src * n + i;
      double speed2 = 0.0;
      for (std::size_t k = 0; k < 3; ++k) {
        out.x(r, k) = static_cast<T>(s.positions[q * 3 + k]);
        out.v(r, k) = static_cast<T>(s.velocities[q * 3 + k]);
        out.target(r, k) = static_cast<T>(s.targets[q * 3 + k]);
        speed2 += s.velocities[q * 3 + k] * s.velocities[q * 3 + k];
      }
      out.h(r, 0) = static_cast<T>(std::sqrt(speed2));
      out.raw(r, 0) = static_cast<T>(s.charges[q]);
    }
    std::size_t e = c * edges;
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        if (i == j) continue;
        double d2 = 0.0;
        for (std::size_t k = 0; k < 3; ++k) {
          const double d = s.positions[(src * n + i) * 3 + k] - s.positions[(src * n + j) * 3 + k];
          d2 += d * d;
        }
        out.edge_attr(e, 0) = static_cast<T>(s.charges[src * n + i] * s.charges[src * n + j]);
        out.edge_attr(e, 1) = static_cast<T>(d2);
        ++e;
      }
  }
  return out;
}

}  // namespace ace::data
