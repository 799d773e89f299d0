// SPDX-License-Identifier: MIT
// Vector Neurons, on every backend: gradients of every layer and of the classifier against central differences
// (double), O(3) equivariance of every layer on the SO(3) grid with reflections, invariance of the classifier's
// logits to rotations and point permutations, the relaxed classifier at gamma = 0, batch-norm statistics in
// checkpoints.
#include <catch2/catch.hpp>

#include "ace/constrained/checkpoint.hpp"
#include "ace/constrained/trainer.hpp"
#include "ace/group/so3.hpp"
#include "ace/io/checkpoint.hpp"
#include "ace/models/vn_classifier.hpp"
#include "ace/nn/point/vector_neurons.hpp"
#include "ace/optim/adam.hpp"
#include "module_support.hpp"

using namespace ace;

namespace {

Tensor<double, 2> random_vn(std::size_t points, std::size_t channels, Rng& rng) {
  Tensor<double, 2> x({3 * points, channels});
  for (auto& v : x) v = rng.normal();
  return x;
}

/// Every point's 3 x C block multiplied by g from the left.
Tensor<double, 2> act(const Eigen::Matrix3d& g, const Tensor<double, 2>& x) {
  Tensor<double, 2> out(x.shape());
  const auto c = static_cast<Eigen::Index>(x.shape()[1]);
  for (std::size_t p = 0; p < x.shape()[0] / 3; ++p) {
    const auto r = static_cast<Eigen::Index>(3 * p);
    as_matrix(out).middleRows(r, 3) = g * as_matrix(x).middleRows(r, 3).leftCols(c);
  }
  return out;
}

std::vector<Eigen::Matrix3d> orthogonal_sample() {
  std::vector<Eigen::Matrix3d> out;
  for (const auto& r : so3_grid(12)) {
    out.push_back(r);
    out.push_back(-r);  // with the reflection x -> -x
  }
  return out;
}

/// max_g ||f(g x) - g f(x)|| / ||f(x)|| (or, for an invariant layer, ||f(g x) - f(x)||), x in host memory.
template <class L>
double layer_equivariance_error(L& layer, const Tensor<double, 2>& x, bool invariant = false) {
  using B = typename L::backend;
  const Tensor<double, 2> y = to_host_tensor<B>(layer.forward(to_backend<B>(x)));
  double worst = 0.0;
  for (const auto& g : orthogonal_sample()) {
    const Tensor<double, 2> expected = invariant ? y : act(g, y);
    const Tensor<double, 2> moved = to_host_tensor<B>(layer.forward(to_backend<B>(act(g, x))));
    worst = std::max(worst, (as_matrix(moved) - as_matrix(expected)).norm() / as_matrix(y).norm());
  }
  return worst;
}

/// A dense map of each point's 3 x 6 block flattened: not equivariant.
template <class B>
struct FlatDense {
  using backend = B;
  Dense<double, B> d;
  tensor_t<B, double, 2> y;
  const tensor_t<B, double, 2>& forward(const tensor_t<B, double, 2>& in) {
    const auto& out = d.forward(reshaped(in, in.shape()[0] / 3, 18));
    ensure_shape(y, in.shape()[0], 6);
    B::copy(reshaped(out, in.shape()[0], 6), view(y));
    return y;
  }
};

template <class M>
void set_gammas(M& model, double value) {
  model.for_each_parameter([&](ParamView<double> p) {
    if (p.role == Role::gamma) from_host_vector<backend_of_t<M>>(std::vector<double>{value}, p.value);
  });
}

template <class M>
std::vector<std::pair<std::string, std::vector<double>>> buffers(M& m) {
  std::vector<std::pair<std::string, std::vector<double>>> out;
  m.for_each_buffer([&](BufferView v) { out.emplace_back(v.name, to_host_vector<backend_of_t<M>>(v.value)); });
  return out;
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("VN layers: gradients match central differences (double)", "[vn][gradients]", test::Backends) {
  using B = TestType;
  Rng rng(test::seed(21, "vn gradients"));
  const auto x = to_backend<B>(random_vn(10, 4, rng));
  STATIC_REQUIRE(Layer<VNLinear<double, B>>);
  STATIC_REQUIRE(Layer<VNBatchNorm<double, B>>);
  VNLinear<double, B> linear(4, 5, rng);
  CHECK(check_gradients(linear, x, 1).max_error() < 1e-7);
  VNLeakyReLU<double, B> relu(4, rng, 0.2);
  CHECK(check_gradients(relu, x, 2).max_error() < 1e-6);
  VNLeakyReLU<double, B> hard(4, rng, 0.0);
  CHECK(check_gradients(hard, x, 3).max_error() < 1e-6);
  VNBatchNorm<double, B> norm(4);
  CHECK(check_gradients(norm, x, 4).max_error() < 1e-6);  // training mode: through the batch statistics too
  norm.set_training(false);
  CHECK(check_gradients(norm, x, 5).max_error() < 1e-6);
  VNMeanPool<double, B> pool(5);
  CHECK(check_gradients(pool, x, 6).max_error() < 1e-8);
  VNInvariant<double, B> inv(4, rng);
  CHECK(check_gradients(inv, x, 7).max_error() < 1e-7);
}

TEMPLATE_LIST_TEST_CASE("VN layers: O(3)-equivariant on the SO(3) grid with reflections; the invariant layer invariant",
                        "[vn][equivariance]", test::Backends) {
  using B = TestType;
  Rng rng(test::seed(22, "vn equivariance"));
  const Tensor<double, 2> x = random_vn(12, 6, rng);
  VNLinear<double, B> linear(6, 3, rng);
  CHECK(layer_equivariance_error(linear, x) < 1e-13);
  VNLeakyReLU<double, B> relu(6, rng);
  CHECK(layer_equivariance_error(relu, x) < 1e-13);
  VNBatchNorm<double, B> norm(6);
  CHECK(layer_equivariance_error(norm, x) < 1e-12);
  VNMeanPool<double, B> pool(4);
  CHECK(layer_equivariance_error(pool, x) < 1e-13);
  VNInvariant<double, B> inv(6, rng);
  CHECK(layer_equivariance_error(inv, x, true) < 1e-12);
  // a plain dense map on the flattened features is not equivariant: the check can fail
  FlatDense<B> flat{Dense<double, B>(18, 18, rng), {}};
  CHECK(layer_equivariance_error(flat, x) > 0.1);
}

TEMPLATE_LIST_TEST_CASE("VN classifier: gradients, invariant logits, relaxed at gamma = 0", "[vn]", test::Backends) {
  using B = TestType;
  Rng rng(test::seed(23, "vn classifier"));
  const std::size_t n = 8, clouds = 3;
  const bool relaxed = GENERATE(false, true);
  CAPTURE(relaxed);
  VNClassifier<double, B> model({.points = n, .channels = {4, 5}, .hidden = 6, .classes = 3, .relaxed = relaxed}, rng);
  const Tensor<double, 2> points = random_vn(clouds * n, 1, rng);
  typename VNClassifier<double, B>::batch b{to_backend<B>(points), {0, 2, 1}};

  SECTION("gradients of the loss against central differences") {
    if (relaxed) set_gammas(model, 0.6);
    std::vector<std::vector<double>> analytic;
    zero_grad(model);
    model.loss_and_gradients(b);
    model.for_each_parameter([&](ParamView<double> p) { analytic.push_back(to_host_vector<B>(p.grad)); });
    double worst = 0.0;
    std::size_t k = 0;
    model.for_each_parameter([&](ParamView<double> p) {
      worst = std::max(worst, central_difference_gap<B>(p.value, analytic[k++], [&] { return model.loss(b); }));
    });
    CHECK(worst < 1e-6);
  }
  SECTION("logits invariant to rotations, reflections and point permutations") {
    model.set_relaxation(false);
    const auto logits = [&](const Tensor<double, 2>& pts) { return to_host_tensor<B>(model.forward(to_backend<B>(pts))); };
    const Tensor<double, 2> y = logits(points);
    double worst = 0.0;
    for (const auto& g : orthogonal_sample()) worst = std::max(worst, (as_matrix(logits(act(g, points))) - as_matrix(y)).norm());
    CHECK(worst < 1e-11 * (1 + as_matrix(y).norm()));
    Tensor<double, 2> shuffled = points;
    for (std::size_t c = 0; c < clouds; ++c)
      for (std::size_t p = 0; p < n; ++p)
        for (std::size_t k = 0; k < 3; ++k) shuffled(3 * (c * n + (p * 5 + 3) % n) + k, 0) = points(3 * (c * n + p) + k, 0);
    CHECK((as_matrix(logits(shuffled)) - as_matrix(y)).norm() < 1e-12 * (1 + as_matrix(y).norm()));
    if (relaxed) {
      model.set_relaxation(true);
      set_gammas(model, 0.0);
      CHECK(as_matrix(logits(points)) == as_matrix(y));
      set_gammas(model, 1.0);
      const Tensor<double, 2> yr = logits(points);
      CHECK((as_matrix(logits(act(so3_grid(3)[1], points))) - as_matrix(yr)).norm() > 1e-3);
    }
  }
}

TEST_CASE("VN batch norm: running statistics and bad input", "[vn][errors]") {
  Rng rng(1);
  VNBatchNorm<double> norm(2, 0.1);
  const Tensor<double, 2> x = random_vn(20, 2, rng);
  norm.forward(x);
  double mean = 0.0;
  for (std::size_t p = 0; p < 20; ++p) mean += std::sqrt(x(3 * p, 0) * x(3 * p, 0) + x(3 * p + 1, 0) * x(3 * p + 1, 0) +
                                                         x(3 * p + 2, 0) * x(3 * p + 2, 0)) + 1e-6;
  CHECK(norm.running_mean()[0] == Approx(0.1 * mean / 20));
  CHECK_THROWS_AS(norm.forward(random_vn(1, 2, rng)), invalid_argument);  // one point: no batch statistics
  CHECK_THROWS_AS(norm.forward(random_vn(4, 3, rng)), shape_error);
  Tensor<double, 2> bad({7, 2});
  VNLinear<double> linear(2, 2, rng);
  CHECK_THROWS_AS(linear.forward(bad), shape_error);
  CHECK_THROWS_WITH(VNClassifier<double>({.points = 0}, rng), Catch::Contains("points 0"));
}

TEMPLATE_LIST_TEST_CASE("VN classifier: batch-norm running statistics travel with checkpoints and training states",
                        "[vn][checkpoint]", test::Backends) {
  using B = TestType;
  using Model = VNClassifier<double, B>;
  test::TempDir dir("vn-buffers");
  Rng rng(test::seed(29, "vn buffers"));
  const VNClassifierOptions o{.points = 8, .channels = {4, 5}, .hidden = 6, .classes = 3, .relaxed = true};
  const Model initial(o, rng);
  typename Model::batch b{to_backend<B>(random_vn(3 * 8, 1, rng)), {0, 2, 1}};

  Model untouched = initial, trained = initial;
  const auto initial_stats = buffers(untouched);
  for (int i = 0; i < 3; ++i) trained.loss(b);  // training-mode forwards move the running statistics
  const auto stats = buffers(trained);
  REQUIRE(stats.size() == 4);
  CHECK(stats[0].first == "blocks.0.norm.running_mean");
  CHECK(stats[3].first == "blocks.1.norm.running_var");
  CHECK(stats != initial_stats);

  io::save_checkpoint(dir.path / "model", trained);
  Model restored = initial;
  io::load_checkpoint(dir.path / "model", restored);
  CHECK(buffers(restored) == stats);
  trained.set_training(false);
  restored.set_training(false);
  CHECK(test::download<B>(restored.forward(b.points)) == test::download<B>(trained.forward(b.points)));

  {  // a checkpoint without the statistics is a mismatch, never silently the initial statistics
    io::CheckpointWriter w(dir.path / "no-buffers");
    w.set_signature(io::detail::model_signature(trained));
    w.set_value("scalar", "float64");
    trained.for_each_parameter([&](ParamView<double> p) {
      const auto v = to_host_vector<B>(p.value);
      w.add<double>("param/" + p.name, std::span<const double>(v), io::detail::param_shape(p));
    });
    w.commit();
  }
  CHECK_THROWS_WITH(io::load_checkpoint(dir.path / "no-buffers", restored),
                    Catch::Contains("no tensor 'buffer/blocks.0.norm.running_mean'"));
  Model plain({.points = 8, .channels = {4, 5}, .hidden = 6, .classes = 3, .batch_norm = false, .relaxed = true}, rng);
  CHECK(buffers(plain).empty());

  // A training state restores them too.
  using Trainer = ConstrainedTrainer<Model, Adam<double, B>, EqualityConstraint, DualSGD>;
  Model a = initial, c = initial;
  Trainer ta(a, Adam<double, B>({.lr = 1e-2}), EqualityConstraint{}, DualSGD{.lr = 0.02});
  for (int i = 0; i < 3; ++i) ta.step(b);
  save_training_state(dir.path / "state", ta, 1);
  Trainer tc(c, Adam<double, B>({.lr = 1e-2}), EqualityConstraint{}, DualSGD{.lr = 0.02});
  CHECK(load_training_state(dir.path / "state", tc).epoch == 1);
  CHECK(buffers(c) == buffers(a));
  CHECK(buffers(c) != initial_stats);
}
