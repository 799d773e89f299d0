// SPDX-License-Identifier: MIT
// CMU motion capture ("run" subset, 31 joints) with the published protocol of the equivariant-dynamics literature:
// a strict loader for the .npy release (data/mocap-run/ in the repository), the skeleton graph (bones and two-hop
// neighbours with their edge types), and mini-batches for an EGNN that predicts the pose Δ frames ahead.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ace/data/checks.hpp"
#include "ace/error.hpp"
#include "ace/io/npy.hpp"
#include "ace/nn/graph/graph.hpp"

namespace ace::data {

enum class MocapSplit { train, validation, test };

inline const char* mocap_split_name(MocapSplit s) {
  return s == MocapSplit::train ? "train" : s == MocapSplit::validation ? "val" : "test";
}

/// The protocol: each split takes the first max_samples / (trials in the split) rows of each trial, in the stored
/// order (the published run task: 200 training samples = 40 starts from each of 5 trials; validation and test 600,
/// i.e. all 80 starts of each of their 3 trials).
struct MocapOptions {
  std::size_t delta = 30;           // frames between the input pose and the target pose
  std::size_t max_train = 200;      // training samples (divided evenly among the training trials)
  std::size_t max_eval = 600;       // validation and test samples, each (likewise)
};

/// One sample: the input pose is frame `start` of trial `trial`, the target `start + delta`.
struct MocapSample {
  std::size_t trial = 0, start = 0;
  friend bool operator==(const MocapSample&, const MocapSample&) = default;
};

/// The whole release: joint positions per trial, the skeleton and the three splits as stored.
struct MocapData {
  std::size_t joints = 0;
  std::vector<std::vector<double>> trials;  // trial k: [frames_k, joints, 3], row-major
  std::vector<std::size_t> frames;          // frames_k
  std::vector<std::pair<std::uint32_t, std::uint32_t>> bones;  // undirected joint pairs
  std::vector<MocapSample> split_rows[3];   // every stored row of split_{train,val,test}.npy, in order

  double position(std::size_t trial, std::size_t frame, std::size_t joint, std::size_t axis) const {
    return trials[trial][(frame * joints + joint) * 3 + axis];
  }
  const std::vector<MocapSample>& rows(MocapSplit s) const { return split_rows[static_cast<int>(s)]; }
  /// Whether trial `trial` has the frames a sample starting at `start` needs: the velocity X[start + 1] - X[start]
  /// and the target X[start + delta] among the frames - 1 positions that have a velocity (V = X[1:] - X[:-1]).
  bool has_sample(std::size_t trial, std::size_t start, std::size_t delta) const {
    return trial < trials.size() && delta > 0 && start + delta + 2 <= frames[trial];
  }
};

/// Reads a directory holding trial_00.npy, trial_01.npy, ... (float64 [frames, joints, 3], consecutive numbers),
/// edges.npy (int64 [bones, 2]) and split_train.npy, split_val.npy, split_test.npy (int64 [rows, 2] of
/// (trial, start frame)). Everything is checked: a missing directory or file, a wrong dtype or shape, a bone or split
/// row out of range, a non-finite coordinate each throw io_error naming the file and the values.
inline MocapData load_mocap(const std::filesystem::path& dir) {
  ACE_THROW_IF(!std::filesystem::is_directory(dir), io_error, "motion capture data: no directory ", dir.string(),
               " (expected trial_00.npy ..., edges.npy, split_{train,val,test}.npy; the repository ships them in "
               "data/mocap-run/)");
  MocapData d;
  for (std::size_t k = 0;; ++k) {
    const std::filesystem::path file = dir / ace::detail::concat("trial_", k < 10 ? "0" : "", k, ".npy");
    if (!std::filesystem::exists(file)) break;
    const io::NpyArray a = io::read_npy(file);
    ACE_THROW_IF(a.dtype != "<f8" || a.shape.size() != 3 || a.shape[2] != 3 || a.shape[0] < 2 || a.shape[1] == 0,
                 io_error, file.string(), ": expected float64 [frames >= 2, joints, 3], got ", io::dtype_name(a.dtype),
                 " with ", a.shape.size(), " dimensions");
    ACE_THROW_IF(k > 0 && a.shape[1] != d.joints, io_error, file.string(), " has ", a.shape[1],
                 " joints, the earlier trials ", d.joints);
    d.joints = a.shape[1];
    d.frames.push_back(a.shape[0]);
    d.trials.push_back(a.values<double>(file.string()));
    require_finite(d.trials.back(), a.shape, {"frame", "joint", "axis"}, file.string());
  }
  ACE_THROW_IF(d.trials.empty(), io_error, "motion capture data: ", (dir / "trial_00.npy").string(), " not found");

  const auto pairs = [&](const char* name) {
    const std::filesystem::path file = dir / name;
    const io::NpyArray a = io::read_npy(file);
    ACE_THROW_IF(!a.is_integer() || a.shape.size() != 2 || a.shape[1] != 2 || a.shape[0] == 0, io_error,
                 file.string(), ": expected a non-empty integer array [rows, 2], got ", io::dtype_name(a.dtype),
                 " with ", a.shape.size(), " dimensions");
    return a.values<std::int64_t>(file.string());
  };
  const std::vector<std::int64_t> edges = pairs("edges.npy");
  std::set<std::pair<std::uint32_t, std::uint32_t>> seen;
  for (std::size_t r = 0; r < edges.size() / 2; ++r) {
    const std::int64_t a = edges[2 * r], b = edges[2 * r + 1];
    ACE_THROW_IF(a < 0 || b < 0 || static_cast<std::uint64_t>(a) >= d.joints ||
                     static_cast<std::uint64_t>(b) >= d.joints || a == b,
                 io_error, (dir / "edges.npy").string(), ": bone ", r, " = (", a, ", ", b,
                 ") is not a pair of two of the ", d.joints, " joints");
    const auto lo = static_cast<std::uint32_t>(std::min(a, b)), hi = static_cast<std::uint32_t>(std::max(a, b));
    ACE_THROW_IF(!seen.insert({lo, hi}).second, io_error, (dir / "edges.npy").string(), ": bone ", r, " = (", a, ", ",
                 b, ") is listed twice");
    d.bones.emplace_back(static_cast<std::uint32_t>(a), static_cast<std::uint32_t>(b));
  }
  for (MocapSplit s : {MocapSplit::train, MocapSplit::validation, MocapSplit::test}) {
    const std::string name = ace::detail::concat("split_", mocap_split_name(s), ".npy");
    const std::vector<std::int64_t> rows = pairs(name.c_str());
    for (std::size_t r = 0; r < rows.size() / 2; ++r) {
      const std::int64_t trial = rows[2 * r], start = rows[2 * r + 1];
      ACE_THROW_IF(trial < 0 || static_cast<std::uint64_t>(trial) >= d.trials.size() || start < 0 ||
                       static_cast<std::uint64_t>(start) + 1 >= d.frames[static_cast<std::size_t>(trial)],
                   io_error, (dir / name).string(), ": row ", r, " = (trial ", trial, ", start ", start,
                   ") is not a frame with a successor in one of the ", d.trials.size(), " trials");
      d.split_rows[static_cast<int>(s)].push_back({static_cast<std::size_t>(trial), static_cast<std::size_t>(start)});
    }
  }
  return d;
}

/// The samples of a split under the protocol (MocapOptions): the first max_samples / (trials in the split) rows of
/// each trial, trials in order of first appearance. Throws if a sample's target frame is past its trial's end.
inline std::vector<MocapSample> mocap_samples(const MocapData& d, MocapSplit split, const MocapOptions& o = {}) {
  const auto& rows = d.rows(split);
  std::vector<std::size_t> trials;
  for (const auto& r : rows)
    if (std::find(trials.begin(), trials.end(), r.trial) == trials.end()) trials.push_back(r.trial);
  const std::size_t max = split == MocapSplit::train ? o.max_train : o.max_eval;
  ACE_THROW_IF(o.delta == 0 || max < trials.size(), invalid_argument, "MocapOptions: delta must be >= 1 and the ",
               mocap_split_name(split), " split needs at least one sample per trial (", trials.size(),
               " trials), got delta ", o.delta, ", max samples ", max);
  const std::size_t per_trial = max / trials.size();
  std::vector<MocapSample> out;
  for (std::size_t t : trials) {
    std::size_t taken = 0;
    for (const auto& r : rows) {
      if (r.trial != t || taken == per_trial) continue;
      ACE_THROW_IF(!d.has_sample(t, r.start, o.delta), invalid_argument,
                   "mocap ", mocap_split_name(split), " sample (trial ", t, ", start ", r.start, "): the target frame ",
                   r.start + o.delta, " is past the trial's last usable frame ", d.frames[t] - 2);
      out.push_back(r);
      ++taken;
    }
  }
  return out;
}

/// Edge types of the skeleton graph.
inline constexpr double mocap_bone = 1.0, mocap_two_hop = 2.0;

/// The graph of the published protocol: for i, then j != i (row-major), an edge (i, j) of type 1 if i and j share
/// a bone and of type 2 if they share a neighbour (two hops); both directions, no self loops. `types` has one entry
/// per edge of `graph`, in its order.
struct MocapGraph {
  Graph graph;
  std::vector<double> types;
};

inline MocapGraph mocap_graph(const MocapData& d) {
  const std::size_t n = d.joints;
  std::vector<char> adjacent(n * n, 0);
  for (const auto& [a, b] : d.bones) adjacent[a * n + b] = adjacent[b * n + a] = 1;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> edges;
  MocapGraph g;
  for (std::uint32_t i = 0; i < n; ++i)
    for (std::uint32_t j = 0; j < n; ++j) {
      if (i == j) continue;
      bool two_hop = false;
      for (std::size_t k = 0; k < n && !two_hop; ++k) two_hop = adjacent[i * n + k] && adjacent[k * n + j];
      if (adjacent[i * n + j]) g.types.push_back(mocap_bone);
      else if (two_hop) g.types.push_back(mocap_two_hop);
      else continue;
      edges.emplace_back(i, j);
    }
  g.graph = Graph(n, edges);
  return g;
}

/// The node features of a MoCap batch (mocap_batch): the joint's speed |v_i| (invariant under rotations; on by
/// default) and its height y / height_scale (y is the vertical axis).
struct MocapFeatures {
  bool speed = true;
  double height_scale = 10.0;
  std::size_t count() const { return speed ? 2 : 1; }
};

/// The largest joint height y over the samples' input frames. The reference code's MoCap scripts feed the EGNN
/// [|v_i|, y_i / (the largest y in the batch)]; ace divides by a fixed number instead (examples/mocap: this over the
/// training split) so that a sample's features do not depend on the rest of its batch.
inline double mocap_max_height(const MocapData& d, std::span<const MocapSample> samples) {
  ACE_THROW_IF(samples.empty(), invalid_argument, "mocap_max_height: no samples");
  double top = -std::numeric_limits<double>::infinity();
  for (const auto& [trial, start] : samples) {
    ACE_THROW_IF(!d.has_sample(trial, start, 1), invalid_argument, "mocap_max_height: sample (trial ", trial,
                 ", start ", start, ") is out of range");
    for (std::size_t i = 0; i < d.joints; ++i) top = std::max(top, d.position(trial, start, i, 1));
  }
  return top;
}

/// The EGNN batch of `samples`: x = X[s], v = X[s + 1] - X[s], target = X[s + delta]; node features h = [|v_i|,
/// y_i / features.height_scale] (or the height alone without features.speed); edge attributes [type,
/// |x_i - x_j|²] on `g`; no raw node data (the relaxed branches see x and v).
template <class T>
GraphBatch<T> mocap_batch(const MocapData& d, const MocapGraph& g, std::span<const MocapSample> samples,
                          std::size_t delta = 30, const MocapFeatures& features = {}) {
  ACE_THROW_IF(!(features.height_scale > 0.0) || !std::isfinite(features.height_scale), invalid_argument,
               "mocap_batch: the height scale must be positive and finite, not ", features.height_scale);
  const std::size_t n = d.joints, b = samples.size(), ne = g.graph.edges(), nf = features.count();
  GraphBatch<T> out;
  out.h.resize({b * n, nf});
  out.x.resize({b * n, 3});
  out.v.resize({b * n, 3});
  out.target.resize({b * n, 3});
  out.raw.resize({b * n, 0});
  out.edge_attr.resize({b * ne, 2});
  for (std::size_t s = 0; s < b; ++s) {
    const auto [trial, start] = samples[s];
    ACE_THROW_IF(!d.has_sample(trial, start, delta), invalid_argument, "mocap_batch: sample (trial ", trial,
                 ", start ", start, ") with delta ", delta, " is out of range");
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t r = s * n + i;
      double speed2 = 0.0;
      for (std::size_t k = 0; k < 3; ++k) {
        const double x = d.position(trial, start, i, k), v = d.position(trial, start + 1, i, k) - x;
        out.x(r, k) = static_cast<T>(x);
        out.v(r, k) = static_cast<T>(v);
        out.target(r, k) = static_cast<T>(d.position(trial, start + delta, i, k));
        speed2 += v * v;
      }
      if (features.speed) out.h(r, 0) = static_cast<T>(std::sqrt(speed2));
      out.h(r, nf - 1) = static_cast<T>(d.position(trial, start, i, 1) / features.height_scale);
    }
    for (std::size_t e = 0; e < ne; ++e) {
      double r2 = 0.0;
      for (std::size_t k = 0; k < 3; ++k) {
        const double diff = d.position(trial, start, g.graph.row(e), k) - d.position(trial, start, g.graph.col(e), k);
        r2 += diff * diff;
      }
      out.edge_attr(s * ne + e, 0) = static_cast<T>(g.types[e]);
      out.edge_attr(s * ne + e, 1) = static_cast<T>(r2);
    }
  }
  return out;
}

}  // namespace ace::data
