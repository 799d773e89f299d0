// SPDX-License-Identifier: MIT
// EGNN: gradients against central differences, E(3) and permutation equivariance on every sampled element, the
// relaxed EGNN at gamma = 0, the reference parameter count.
#include <Eigen/Geometry>
#include <catch2/catch.hpp>
#include <numeric>

#include "ace/constrained/checkpoint.hpp"
#include "ace/constrained/equivariance.hpp"
#include "ace/constrained/trainer.hpp"
#include "ace/group/so3.hpp"
#include "ace/io/checkpoint.hpp"
#include "ace/models/egnn.hpp"
#include "ace/optim/adam.hpp"
#include "module_support.hpp"

using namespace ace;

namespace {

/// A batch of random graphs in host memory (the Cpu backend's); to_backend<B> moves it to another backend.
GraphBatch<double> random_graph_batch(const Graph& g, std::size_t batch, const EGNNOptions& o, Rng& rng) {
  GraphBatch<double> b;
  const std::size_t rows = batch * g.nodes();
  const auto fill = [&](Tensor<double, 2>& t, std::size_t r, std::size_t c) {
    t.resize({r, c});
    for (auto& v : t) v = rng.normal();
  };
  fill(b.h, rows, o.node_features);
  fill(b.x, rows, o.dim);
  fill(b.v, rows, o.dim);
  fill(b.edge_attr, batch * g.edges(), o.edge_features);
  fill(b.raw, rows, o.raw_features);
  fill(b.target, rows, o.dim);
  return b;
}

/// A graph with unequal in-degrees (node 3 receives one message, node 1 three).
Graph uneven_graph() { return Graph(4, {{0, 1}, {1, 0}, {1, 2}, {2, 1}, {2, 3}, {0, 3}, {3, 1}, {1, 3}}); }


template <class B>
void set_gammas(EGNN<double, B>& net, double value) {
  net.for_each_parameter([&](ParamView<double> p) {
    if (p.role == Role::gamma) from_host_vector<B>(std::vector<double>(p.value.size(), value), p.value);
  });
}

template <class B>
std::vector<double> all_values(EGNNRegression<double, B>& m, bool gradients) {
  std::vector<double> all;
  m.for_each_parameter([&](ParamView<double> p) {
    const auto v = to_host_vector<B>(gradients ? p.grad : p.value);
    all.insert(all.end(), v.begin(), v.end());
  });
  return all;
}

}  // namespace

TEST_CASE("EGNN: the reference configuration has the reference's 134 020 parameters", "[egnn]") {
  Rng rng(1);
  EGNN<float> net(Graph::complete(5), {.node_features = 1, .edge_features = 2, .hidden = 64, .layers = 4}, rng);
  CHECK(parameter_count(net) == 134020);
  std::size_t gammas = 0;
  EGNN<float> relaxed(Graph::complete(5),
                      {.node_features = 1, .edge_features = 2, .raw_features = 1, .layers = 4, .relaxed = true}, rng);
  relaxed.for_each_parameter([&](ParamView<float> p) { gammas += p.role == Role::gamma ? p.value.size() : 0; });
  CHECK(gammas == 8);  // gamma_h and gamma_x per layer
}

TEMPLATE_LIST_TEST_CASE("EGNN: gradients match central differences (double)", "[egnn][gradients]", test::Backends) {
  using B = TestType;
  const bool relaxed = GENERATE(false, true);
  const bool uneven = GENERATE(false, true);
  const double clamp = GENERATE(100.0, 0.05);  // 0.05: some relative moves are clamped
  CAPTURE(relaxed, uneven, clamp);
  Rng rng(test::seed(11, "egnn gradients"));
  const Graph g = uneven ? uneven_graph() : Graph::complete(4);
  const EGNNOptions o{.node_features = 2, .edge_features = 2, .raw_features = 1, .hidden = 6, .layers = 2,
                      .relaxed = relaxed, .coord_clamp = clamp};
  EGNN<double, B> net(g, o, rng);
  if (relaxed) set_gammas(net, 0.7);
  auto b = to_backend<B>(random_graph_batch(g, 3, o, rng));
  CHECK(test::graph_gradient_error(net, b, 5) < 1e-6);
}

TEMPLATE_LIST_TEST_CASE("EGNN: E(3)-equivariant on the SO(3) grid, with reflections and a translation",
                        "[egnn][equivariance]", test::Backends) {
  using B = TestType;
  const bool uneven = GENERATE(false, true);
  Rng rng(test::seed(12, "egnn e3 equivariance"));
  const Graph g = uneven ? uneven_graph() : Graph::complete(5);
  const EGNNOptions o{.node_features = 1, .edge_features = 2, .raw_features = 1, .hidden = 16, .layers = 3,
                      .relaxed = true};
  EGNNRegression<double, B> model(EGNN<double, B>(g, o, rng));
  const auto b = to_backend<B>(random_graph_batch(g, 4, o, rng));
  const auto grid = so3_grid(24);

  SECTION("strict: the branches off") {
    model.set_relaxation(false);
    const EquivarianceError e = euclidean_equivariance_error(model, b, grid);
    CHECK(e.transformations == 48);
    CHECK(e.max < 1e-12);
  }
  SECTION("relaxed at gamma = 0 is exactly the strict model, and exactly equivariant") {
    model.set_relaxation(false);
    const Tensor<double, 2> strict = to_host_tensor<B>(model.predict(b));
    model.set_relaxation(true);
    set_gammas(model.network(), 0.0);
    CHECK(as_matrix(to_host_tensor<B>(model.predict(b))) == as_matrix(strict));
    CHECK(euclidean_equivariance_error(model, b, grid).max < 1e-12);
  }
  SECTION("relaxed at gamma = 1 is not equivariant, and the error grows with gamma") {
    model.set_relaxation(true);
    set_gammas(model.network(), 0.01);
    const double small = euclidean_equivariance_error(model, b, grid).max;
    set_gammas(model.network(), 1.0);
    const double large = euclidean_equivariance_error(model, b, grid).max;
    CHECK(small > 1e-5);
    CHECK(large > 10 * small);
  }
}

TEMPLATE_LIST_TEST_CASE("EGNN: permuting the nodes permutes the output", "[egnn][equivariance]", test::Backends) {
  using B = TestType;
  Rng rng(test::seed(13, "egnn permutations"));
  const std::size_t n = 5;
  const Graph g = Graph::complete(n);
  const EGNNOptions o{.node_features = 1, .edge_features = 2, .raw_features = 1, .hidden = 12, .layers = 2};
  EGNN<double, B> net(g, o, rng);
  const auto b = random_graph_batch(g, 3, o, rng);
  const auto bb = to_backend<B>(b);
  const Tensor<double, 2> y = to_host_tensor<B>(net.forward(bb.input()));
  std::vector<std::size_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  for (int trial = 0; trial < 6; ++trial) {
    for (std::size_t i = n - 1; i > 0; --i) std::swap(perm[i], perm[rng.below(i + 1)]);
    // node i moves to perm[i]; edge (i, j) moves to the slot of (perm[i], perm[j]) in Graph::complete's order
    const auto slot = [&](std::size_t i, std::size_t j) { return i * (n - 1) + (j < i ? j : j - 1); };
    GraphBatch<double> p = b;
    for (std::size_t s = 0; s < 3; ++s) {
      for (std::size_t i = 0; i < n; ++i) {
        as_matrix(p.h).row(s * n + perm[i]) = as_matrix(b.h).row(s * n + i);
        as_matrix(p.x).row(s * n + perm[i]) = as_matrix(b.x).row(s * n + i);
        as_matrix(p.v).row(s * n + perm[i]) = as_matrix(b.v).row(s * n + i);
        as_matrix(p.raw).row(s * n + perm[i]) = as_matrix(b.raw).row(s * n + i);
        for (std::size_t j = 0; j < n; ++j)
          if (i != j)
            as_matrix(p.edge_attr).row(s * g.edges() + slot(perm[i], perm[j])) =
                as_matrix(b.edge_attr).row(s * g.edges() + slot(i, j));
      }
    }
    const auto pb = to_backend<B>(p);
    const Tensor<double, 2> yp = to_host_tensor<B>(net.forward(pb.input()));
    double err = 0.0;
    for (std::size_t s = 0; s < 3; ++s)
      for (std::size_t i = 0; i < n; ++i)
        err = std::max(err, (as_matrix(yp).row(s * n + perm[i]) - as_matrix(y).row(s * n + i)).norm());
    CHECK(err < 1e-12);
  }
}

TEMPLATE_LIST_TEST_CASE("EGNN: a batch gives the same output as its samples one by one", "[egnn]", test::Backends) {
  using B = TestType;
  Rng rng(test::seed(14, "egnn batch"));
  const Graph g = uneven_graph();
  const EGNNOptions o{.node_features = 1, .edge_features = 2, .raw_features = 1, .hidden = 8, .layers = 2,
                      .relaxed = true};
  EGNN<double, B> net(g, o, rng);
  const auto b = random_graph_batch(g, 20, o, rng);  // large enough for the parallel loops
  const auto bb = to_backend<B>(b);
  const Tensor<double, 2> y = to_host_tensor<B>(net.forward(bb.input()));
  for (std::size_t s = 0; s < 20; s += 7) {
    GraphBatch<double> one;
    const auto rows = [&](const Tensor<double, 2>& t, std::size_t per) {
      Tensor<double, 2> out({per, t.shape()[1]});
      as_matrix(out) = as_matrix(t).middleRows(static_cast<Eigen::Index>(s * per), static_cast<Eigen::Index>(per));
      return out;
    };
    one.h = rows(b.h, 4);
    one.x = rows(b.x, 4);
    one.v = rows(b.v, 4);
    one.raw = rows(b.raw, 4);
    one.edge_attr = rows(b.edge_attr, g.edges());
    const auto oneb = to_backend<B>(one);
    const Tensor<double, 2> ys = to_host_tensor<B>(net.forward(oneb.input()));
    CHECK((as_matrix(ys) - as_matrix(y).middleRows(static_cast<Eigen::Index>(4 * s), 4)).norm() < 1e-12);
  }
}

TEMPLATE_LIST_TEST_CASE("EGNN regression: data-parallel workers give the loss and gradients of one pass", "[egnn]",
                        test::Backends) {
  using B = TestType;
  Rng rng(test::seed(15, "egnn workers"));
  const Graph g = Graph::complete(4);
  const EGNNOptions o{.node_features = 1, .edge_features = 2, .raw_features = 1, .hidden = 8, .layers = 2,
                      .relaxed = true};
  const EGNN<double, B> net(g, o, rng);
  const auto b = to_backend<B>(random_graph_batch(g, 7, o, rng));  // 7 graphs: chunks of unequal size
  const auto gradients = [&](EGNNRegression<double, B>& m, double& loss) {
    zero_grad(m);
    loss = m.loss_and_gradients(b);
    return all_values(m, true);
  };
  EGNNRegression<double, B> one(net);
  double l1 = 0.0;
  const std::vector<double> g1 = gradients(one, l1);
  for (std::size_t workers : {2, 3, 7, 9}) {
    CAPTURE(workers);
    EGNNRegression<double, B> many(net, {.workers = workers});
    double lw = 0.0;
    const std::vector<double> gw = gradients(many, lw);
    CHECK(lw == Approx(l1).epsilon(1e-12));
    CHECK(many.loss(b) == Approx(l1).epsilon(1e-12));
    double worst = 0.0;
    for (std::size_t i = 0; i < g1.size(); ++i) worst = std::max(worst, std::abs(gw[i] - g1[i]) / (1 + std::abs(g1[i])));
    CHECK(worst < 1e-12);
    double again = 0.0;
    CHECK(gradients(many, again) == gw);  // a second step with the same weights: the same bits
  }
  CHECK_THROWS_AS((EGNNRegression<double, B>(net, {.workers = 0})), invalid_argument);
}

TEMPLATE_LIST_TEST_CASE("EGNN: checkpoints round-trip; another architecture is refused", "[egnn][io]",
                        test::Backends) {
  using B = TestType;
  Rng rng(31);
  const Graph g = Graph::complete(4);
  const EGNNOptions o{.node_features = 1, .edge_features = 2, .raw_features = 1, .hidden = 8, .layers = 2,
                      .relaxed = true};
  EGNNRegression<double, B> a(EGNN<double, B>(g, o, rng)), b(EGNN<double, B>(g, o, rng));
  const auto batch = to_backend<B>(random_graph_batch(g, 3, o, rng));
  test::TempDir dir("egnn-checkpoint");
  io::save_checkpoint(dir.path / "ckpt", a);
  const Tensor<double, 2> expected = to_host_tensor<B>(a.predict(batch));
  CHECK(as_matrix(to_host_tensor<B>(b.predict(batch))) != as_matrix(expected));
  io::load_checkpoint(dir.path / "ckpt", b);
  CHECK(as_matrix(to_host_tensor<B>(b.predict(batch))) == as_matrix(expected));
  EGNNOptions wider = o;
  wider.hidden = 9;
  EGNNRegression<double, B> c(EGNN<double, B>(g, wider, rng));
  CHECK_THROWS_WITH(io::load_checkpoint(dir.path / "ckpt", c), Catch::Contains("hidden 8"));
}

TEMPLATE_LIST_TEST_CASE("EGNN under the ACE trainer: gamma falls under equality; a resumed run continues bit for bit",
                        "[egnn][ace]", test::Backends) {
  using B = TestType;
  Rng rng(41);
  const Graph g = Graph::complete(4);
  const EGNNOptions o{.node_features = 1, .edge_features = 2, .raw_features = 1, .hidden = 8, .layers = 2,
                      .relaxed = true};
  const EGNN<double, B> initial(g, o, rng);
  std::vector<GraphBatch<double, B>> batches;
  for (int i = 0; i < 4; ++i) batches.push_back(to_backend<B>(random_graph_batch(g, 6, o, rng)));
  using Trainer = ConstrainedTrainer<EGNNRegression<double, B>, Adam<double, B>, EqualityConstraint, DualSGD>;
  const auto make = [&](EGNNRegression<double, B>& m) {
    return Trainer(m, Adam<double, B>({.lr = 1e-2}), EqualityConstraint{}, DualSGD{.lr = 0.02}, {.augmented = 5.0});
  };
  EGNNRegression<double, B> model(initial, {.workers = 2});
  Trainer trainer = make(model);
  for (int s = 0; s < 300; ++s) {
    trainer.step(batches[static_cast<std::size_t>(s % 4)]);
    if (s % 50 == 0)
      UNSCOPED_INFO("step " << s << " max|gamma| " << trainer.max_abs_gamma() << " lambda0 "
                            << trainer.multipliers()[0]);
  }
  CHECK(trainer.max_abs_gamma() < 0.5);  // from 1: the multipliers push every gamma towards 0
  for (double l : trainer.multipliers()) CHECK(l > 0.0);
  trainer.deploy();
  CHECK(euclidean_equivariance_error(model, batches[0], so3_grid(6)).max < 1e-12);
  trainer.train();

  test::TempDir dir("egnn-resume");
  save_training_state(dir.path / "state", trainer, 1);
  for (int s = 0; s < 20; ++s) trainer.step(batches[static_cast<std::size_t>(s % 4)]);
  const std::vector<double> expected = all_values(model, false);

  EGNNRegression<double, B> fresh(initial, {.workers = 2});
  Trainer resumed = make(fresh);
  CHECK(load_training_state(dir.path / "state", resumed).epoch == 1);
  for (int s = 0; s < 20; ++s) resumed.step(batches[static_cast<std::size_t>(s % 4)]);
  CHECK(all_values(fresh, false) == expected);
}

TEST_CASE("EGNN: bad graphs and shapes throw with the values", "[egnn][errors]") {
  CHECK_THROWS_WITH(Graph(3, {{0, 3}}), Catch::Contains("edge (0, 3) on 3 nodes"));
  CHECK_THROWS_WITH(Graph(3, {{1, 1}}), Catch::Contains("self-loop at node 1"));
  Rng rng(1);
  const EGNNOptions o{.node_features = 1, .edge_features = 2, .hidden = 4, .layers = 1};
  EGNN<double> net(Graph::complete(3), o, rng);
  auto b = random_graph_batch(Graph::complete(3), 2, o, rng);
  b.edge_attr.resize({5, 2});
  CHECK_THROWS_AS(net.forward(b.input()), shape_error);
  CHECK_THROWS_WITH(EGNN<double>(Graph::complete(3), {.layers = 0}, rng), Catch::Contains("layers 0"));
  Tensor<double, 2> dy({6, 3});
  EGNN<double> fresh(Graph::complete(3), o, rng);
  CHECK_THROWS_AS(fresh.backward(dy), invalid_argument);
}

TEMPLATE_LIST_TEST_CASE("SiLU: values of z * sigmoid(z) and its derivative in float and double", "[egnn]",
                        test::Backends) {
  using B = TestType;
  const std::vector<double> values{-40.0, -8.0, -1.5, -1e-3, 0.0, 1e-3, 0.7, 6.0, 40.0};
  test::for_each_scalar([&]<class T>(std::type_identity<T>) {
    std::vector<T> z(values.begin(), values.end());
    auto tz = zeros<B, T>(1, 9), ts = zeros<B, T>(1, 9), ones = zeros<B, T>(1, 9), dz = zeros<B, T>(1, 9);
    from_host_vector<B>(z, view(tz));
    B::fill(view(ones), T(1));
    B::template map<SiLUOp>(view(std::as_const(tz)), view(ts));
    B::template map_backward<SiLUOp>(view(std::as_const(tz)), view(std::as_const(ts)), view(std::as_const(ones)),
                                     view(dz));
    const auto s = test::download<B>(ts), d = test::download<B>(dz);
    for (std::size_t i = 0; i < 9; ++i) {
      const double sig = 1.0 / (1.0 + std::exp(-values[i]));
      const double tol = std::is_same_v<T, float> ? 2e-6 : 1e-14;
      CHECK(s[i] == Approx(values[i] * sig).epsilon(tol).margin(tol / 2));
      CHECK(d[i] == Approx(sig * (1 + values[i] * (1 - sig))).epsilon(tol).margin(tol / 2));
    }
  });
}

#if defined(ACE_TEST_BACKEND_CUDA) || defined(ACE_TEST_BACKEND_EMULATION)
namespace {
/// A double batch of host tensors as a float one.
GraphBatch<float> in_float(const GraphBatch<double>& host) {
  GraphBatch<float> batch;
  for (auto [from, to] : {std::pair{&host.h, &batch.h}, {&host.x, &batch.x}, {&host.v, &batch.v},
                          {&host.edge_attr, &batch.edge_attr}, {&host.raw, &batch.raw}, {&host.target, &batch.target}})
    *to = xt::cast<float>(*from);
  return batch;
}
/// The small relaxed EGNN of the device tests (5 particles, complete graph).
const EGNNOptions small_relaxed{.node_features = 1, .edge_features = 2, .raw_features = 1, .hidden = 16, .layers = 2,
                                .relaxed = true};
}  // namespace

TEST_CASE("the fused EGNN layer computes what the layer's operations compute, forward and backward", "[egnn][device]") {
  using B = test::Device;
  static_assert(FusedEgnnBackend<B, float> && FusedEgnnBackend<B, double>);
  const bool relaxed = GENERATE(false, true);
  const bool uneven = GENERATE(false, true);
  const double clamp = GENERATE(100.0, 0.05);  // 0.05: some relative moves are clamped
  const std::size_t edge_features = GENERATE(0u, 2u);
  CAPTURE(relaxed, uneven, clamp, edge_features);
  Rng rng(test::seed(22, "egnn fused layer"));
  const Graph g = uneven ? uneven_graph() : Graph::complete(5);
  // Three layers: the last skips its feature update, so both forms of the fused operations run.
  EGNNOptions o{.node_features = 2, .edge_features = edge_features, .raw_features = 1, .hidden = 8, .layers = 3,
                .relaxed = relaxed, .coord_clamp = clamp};
  const EGNN<double, B> initial(g, o, rng);
  const auto host = random_graph_batch(g, 4, o, rng);
  const auto run = [&](bool fused) {
    EGNNOptions with = o;
    with.fused = fused;
    Rng same(test::seed(22, "egnn fused layer"));
    EGNN<double, B> net(g, with, same);
    if (relaxed) set_gammas(net, 0.6);
    auto b = to_backend<B>(host);
    std::vector<double> out = to_host_vector<B>(flat(net.forward(b.input())));
    auto dy = to_backend<B>(host.target);  // any gradient
    zero_grad(net);
    net.backward(dy);
    for (double v : to_host_vector<B>(flat(net.position_gradient()))) out.push_back(v);
    net.for_each_parameter([&](ParamView<double> p) {
      for (double v : to_host_vector<B>(p.grad)) out.push_back(v);
    });
    return out;
  };
  const std::vector<double> fused = run(true), plain = run(false);
  REQUIRE(fused.size() == plain.size());
  CHECK(std::all_of(fused.begin(), fused.end(), [](double v) { return std::isfinite(v); }));
  double worst = 0.0;
  for (std::size_t i = 0; i < fused.size(); ++i)
    worst = std::max(worst, std::abs(fused[i] - plain[i]) / std::max(1.0, std::abs(plain[i])));
  CHECK(worst < 1e-12);
}

#if defined(ACE_TEST_BACKEND_EMULATION)
TEST_CASE("fused EGNN layers cut the launches of an ACE step (the N-body network, strict and relaxed)",
          "[egnn][device]") {
  using B = test::Device;
  const Graph g = Graph::complete(5);
  const auto launches = [&](bool relaxed, bool fused) {
    Rng rng(test::seed(23, "egnn launches"));
    const EGNNOptions o{.node_features = 1, .edge_features = 2, .raw_features = 1, .hidden = 8, .layers = 4,
                        .relaxed = relaxed, .fused = fused};
    EGNNRegression<float, B> model(EGNN<float, B>(g, o, rng));
    const auto batch = to_backend<B>(in_float(random_graph_batch(g, 3, o, rng)));
    ConstrainedTrainer trainer(model, Adam<float, B>({.lr = 1e-3}), EqualityConstraint{}, DualSGD{.lr = 1e-3});
    trainer.advance(batch);  // warm-up
    const std::uint64_t before = test::HostKernelExec::launch_count();
    trainer.advance(batch);
    return test::HostKernelExec::launch_count() - before;
  };
  for (const bool relaxed : {false, true}) {
    const std::uint64_t fused = launches(relaxed, true), layerwise = launches(relaxed, false);
    CAPTURE(relaxed, fused, layerwise);
    WARN("launches per ACE step, " << (relaxed ? "relaxed" : "strict") << " EGNN: " << layerwise
                                   << " operation by operation, " << fused << " fused");
    // Per layer, fusion replaces the row-wise kernels of both directions (and the branches' copies, GEMMs and
    // elementwise kernels) by two block kernels: 257 -> 100 and 402 -> 150 launches when this test was written.
    CHECK(fused + 4 * (relaxed ? 50 : 30) <= layerwise);
  }
}
#endif

TEST_CASE("the fused EGNN layer refuses views of the wrong shape with their names", "[egnn][device][errors]") {
  using B = test::Device;
  EgnnLayerViews<double> a;
  a.gs = {.graphs = 1, .nodes = 2, .edges = 2};
  const std::vector<std::uint32_t> idx{0, 1};
  a.row = a.col = MatrixRef<const std::uint32_t>{idx.data(), 1, 2, 2};
  try {
    B::egnn_layer_forward(a);
    FAIL("no error");
  } catch (const shape_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("egnn_layer_forward: h has 0 rows for 1 graphs of 2 nodes"));
  }
}

TEST_CASE("EGNN on a device backend: a training step copies one value to the host, the loss, and nothing back",
          "[egnn][device]") {
  using B = test::Device;
  Rng rng(test::seed(19, "egnn device transfers"));
  const Graph g = Graph::complete(5);
  const EGNNOptions& o = small_relaxed;
  EGNNRegression<float, B> model(EGNN<float, B>(g, o, rng));
  const auto host = random_graph_batch(g, 6, o, rng);
  const auto b = to_backend<B>(in_float(host));
  Adam<float, B> adam({.lr = 1e-3});
  const auto step = [&] {
    zero_grad(model);
    const double loss = model.loss_and_gradients(b);
    adam.step(model);
    return loss;
  };
  const double first = step();  // warm-up: buffers and optimiser state allocated
  const test::TransferCount before = test::device_transfers();
  double last = first;
  for (int k = 0; k < 5; ++k) last = step();
  const test::TransferCount after = test::device_transfers();
  CHECK(after.to_host - before.to_host == 5);  // the loss value of each step
  CHECK(after.from_host - before.from_host == 0);
  CHECK(std::isfinite(last));
  CHECK(last < first);
}

TEST_CASE("the ACE step on a device backend: advance copies nothing, and it trains as on Reference", "[egnn][device]") {
  using B = test::Device;
  Rng rng(test::seed(20, "egnn ace device batch"));
  const Graph g = Graph::complete(5);
  const EGNNOptions& o = small_relaxed;
  const auto host = random_graph_batch(g, 6, o, rng);
  // Resilient constraints with Adam on the multipliers and clipping: every term of the Lagrangian and of the step.
  const auto train = [&]<class Bk>(std::type_identity<Bk>, bool checked) {
    Rng same(test::seed(20, "egnn ace device"));
    EGNNRegression<double, Bk> model(EGNN<double, Bk>(g, o, same));
    const auto batch = to_backend<Bk>(host);
    ConstrainedTrainer trainer(model, Adam<double, Bk>({.lr = 1e-2}), ResilientConstraint{.rho = 2.0},
                               DualAdam{.lr = 1e-2}, {.augmented = 1.0, .clip_norm = 0.5});
    trainer.advance(batch);  // warm-up: buffers, scratch and optimiser state allocated
    const test::TransferCount before = test::device_transfers();
    for (int k = 0; k < 6; ++k) {
      if (checked) trainer.step(batch);
      else trainer.advance(batch);
    }
    const test::TransferCount after = test::device_transfers();
    std::vector<double> state = trainer.gammas();
    for (double v : trainer.multipliers()) state.push_back(v);
    for (double v : trainer.slacks()) state.push_back(v);
    model.for_each_parameter([&](ParamView<double> p) {
      for (double v : to_host_vector<Bk>(p.value)) state.push_back(v);
    });
    state.push_back(trainer.take_mean_loss());
    return std::pair{state, std::pair{after.to_host - before.to_host, after.from_host - before.from_host}};
  };
  const auto [device, copies] = train(std::type_identity<B>{}, false);
  CHECK(copies.first == 0);  // nothing read inside 6 steps
  CHECK(copies.second == 0);
  const auto [checked, checked_copies] = train(std::type_identity<B>{}, true);
  CHECK(checked_copies.first == 12);  // step(): the report before the update, max λ after it
  CHECK(checked_copies.second == 0);
  CHECK(checked == device);  // the same arithmetic, checked or not
  const auto [reference, unused] = train(std::type_identity<Reference>{}, false);
  REQUIRE(reference.size() == device.size());
  for (std::size_t i = 0; i < device.size(); ++i) CHECK(device[i] == Approx(reference[i]).margin(1e-10));
}

TEST_CASE("a recorded ACE step replays as the steps it stands for, with no transfer", "[egnn][device]") {
  using B = test::Device;
  Rng rng(test::seed(21, "egnn recorded step"));
  const Graph g = Graph::complete(5);
  const EGNN<float, B> initial(g, small_relaxed, rng);
  const auto host = random_graph_batch(g, 6, small_relaxed, rng);
  const auto batch = to_backend<B>(in_float(host));
  using Trainer = ConstrainedTrainer<EGNNRegression<float, B>, Adam<float, B>, EqualityConstraint, DualAdam>;
  const auto state = [](Trainer& t) {
    std::vector<double> v = t.gammas();
    for (double l : t.multipliers()) v.push_back(l);
    t.model().for_each_parameter([&](ParamView<float> p) {
      for (float x : to_host_vector<B>(p.value)) v.push_back(x);
    });
    v.push_back(t.take_mean_loss());
    v.push_back(static_cast<double>(t.steps()));
    v.push_back(static_cast<double>(t.primal_optimizer().steps()));
    return v;
  };
  const TrainerOptions options{.augmented = 1.0, .dual_warmup = 2, .clip_norm = 1.0};
  EGNNRegression<float, B> plain_model(initial), recorded_model(initial);
  Trainer plain(plain_model, Adam<float, B>({.lr = 1e-2}), {}, DualAdam{.lr = 1e-2}, options);
  Trainer recorded(recorded_model, Adam<float, B>({.lr = 1e-2}), {}, DualAdam{.lr = 1e-2}, options);
  for (int k = 0; k < 9; ++k) plain.advance(batch);
  recorded.advance(batch);
  CHECK_THROWS_AS(recorded.record(batch), unsupported);  // inside the dual warm-up
  recorded.advance(batch);
  auto step = recorded.record(batch);
  CHECK(recorded.steps() == 2);  // recording runs nothing
  const test::TransferCount before = test::device_transfers();
  for (int k = 0; k < 7; ++k) step.replay();
  const test::TransferCount after = test::device_transfers();
  CHECK(after.to_host == before.to_host);
  CHECK(after.from_host == before.from_host);
  CHECK(state(recorded) == state(plain));  // bit for bit, step counts included

  // The schedule baseline sets gamma on the host from the step count: not recordable.
  EGNNRegression<float, B> schedule_model(initial);
  ConstrainedTrainer schedule(schedule_model, Adam<float, B>({.lr = 1e-2}), ScheduleBaseline{}, DualSGD{},
                              {.total_steps = 10});
  CHECK_THROWS_AS(schedule.record(batch), unsupported);
}
#endif

