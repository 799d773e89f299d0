// SPDX-License-Identifier: MIT
// How far a trained model is from equivariant, measured on a batch: over the generators and random elements of a
// finite group, or over a grid of rotations (with reflections and a translation) for point models in 3-D.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "ace/constrained/supervised.hpp"
#include "ace/error.hpp"
#include "ace/nn/check.hpp"

namespace ace {

/// Relative equivariance errors ||f(g·x) - g·f(x)||_F / ||f(x)||_F over the transformations tried.
struct EquivarianceError {
  double max = 0.0;
  double mean = 0.0;
  std::size_t transformations = 0;
};

/// A finite-group model: the worst relative error over the generators and `random_elements` seeded random group
/// elements, on the batch's inputs, with the branches as currently set (check_equivariance on the network).
template <Module Net, class Loss, class Target>
double equivariance_error(SupervisedModel<Net, Loss, Target>& model, const typename SupervisedModel<Net, Loss, Target>::batch& b,
                          std::uint64_t seed, std::size_t random_elements = 8) {
  return check_equivariance(model.network(), b.inputs, seed, random_elements);
}

struct EuclideanErrorOptions {
  bool reflections = true;                 // also every R composed with the reflection x -> -x
  Eigen::Vector3d translation{0.31, -0.72, 1.13};  // added to every transformation (0 tests rotations alone)
};

/// A model that predicts positions (model.predict(batch) -> [rows, 3]) on batches that know how to move
/// (batch.transformed(R, t): positions and targets to R p + t, velocities to R v): the relative error over the
/// rotations given (e.g. so3_grid(K)), each also with a reflection when asked, all with the translation, with the
/// branches as currently set. 0 up to rounding for an E(3)-equivariant model.
template <class Model>
  requires requires(Model& m, const typename Model::batch& b) {
    m.predict(b);
    b.transformed(Eigen::MatrixXd(), Eigen::VectorXd());
  }
EquivarianceError euclidean_equivariance_error(Model& model, const typename Model::batch& b,
                                               std::span<const Eigen::Matrix3d> rotations,
                                               const EuclideanErrorOptions& options = {}) {
  ACE_THROW_IF(rotations.empty(), invalid_argument, "euclidean_equivariance_error: no rotations given");
  using B = backend_of_t<Model>;
  const Eigen::MatrixXd reference = as_matrix(to_host_tensor<B>(model.predict(b))).template cast<double>();
  const double scale = std::max(reference.norm(), 1e-300);
  EquivarianceError out;
  double sum = 0.0;
  for (const Eigen::Matrix3d& r : rotations) {
    for (int flip = 0; flip < (options.reflections ? 2 : 1); ++flip) {
      const Eigen::Matrix3d g = flip == 0 ? r : Eigen::Matrix3d(-r);
      const auto moved = b.transformed(g, options.translation);
      const Eigen::MatrixXd expected = (reference * g.transpose()).rowwise() + options.translation.transpose();
      const double err =
          (as_matrix(to_host_tensor<B>(model.predict(moved))).template cast<double>() - expected).norm() / scale;
      out.max = std::max(out.max, err);
      sum += err;
      ++out.transformations;
    }
  }
  out.mean = sum / static_cast<double>(out.transformations);
  return out;
}

}  // namespace ace
