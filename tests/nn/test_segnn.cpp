// SPDX-License-Identifier: MIT
// SEGNN: the N-body configuration's parameter counts (strict and with ACE's branches), E(3) equivariance (rotations
// from a grid and Haar samples, reflections, translations) and permutation equivariance, the relaxed SEGNN at
// gamma = 0 against the strict one bit for bit, gradients against central differences in double, and Cpu against
// Reference.
#include <catch2/catch.hpp>
#include <map>
#include <numeric>
#include <string>
#include <type_traits>

#include "ace/constrained/equivariance.hpp"
#include "ace/group/so3.hpp"
#include "ace/models/segnn.hpp"
#include "module_support.hpp"

using namespace ace;

namespace {

/// Random graphs: positions, velocities, h = |v| (node scalars), edge attributes (the first is the message scalar).
GraphBatch<double> random_batch(const Graph& g, std::size_t samples, Rng& rng) {
  GraphBatch<double> b;
  const std::size_t rows = samples * g.nodes();
  const auto fill = [&](Tensor<double, 2>& t, std::size_t r, std::size_t c) {
    t.resize({r, c});
    for (auto& v : t) v = rng.normal();
  };
  fill(b.x, rows, 3);
  fill(b.v, rows, 3);
  fill(b.target, rows, 3);
  fill(b.edge_attr, samples * g.edges(), 2);
  fill(b.raw, rows, 1);
  b.h.resize({rows, 1});
  for (std::size_t r = 0; r < rows; ++r) b.h(r, 0) = std::sqrt(b.v(r, 0) * b.v(r, 0) + b.v(r, 1) * b.v(r, 1) + b.v(r, 2) * b.v(r, 2));
  return b;
}

using Small = O3Irreps<Mul<4, Scalar0e>, Mul<3, Vector1o>>;  // a small hidden width for the exhaustive checks
template <class B>
using SmallSEGNN = SEGNN<double, B, Small>;

/// Every parameter gradient of net (by name) for L = Σ target ⊙ net(b): zeroed, one forward and one backward.
template <class Net, class Batch>
std::map<std::string, std::vector<double>> gradients(Net& net, const Batch& b) {
  using B = typename Net::backend;
  zero_grad(net);
  net.forward(b.input());
  net.backward(b.target);
  std::map<std::string, std::vector<double>> grads;
  net.for_each_parameter([&](ParamView<double> p) { grads[p.name] = to_host_vector<B>(p.grad); });
  return grads;
}

template <class Net>
std::size_t count_parameters(Net& net) {
  std::size_t n = 0;
  net.for_each_parameter([&](auto p) { n += p.value.size(); });
  return n;
}

}  // namespace

TEST_CASE("SEGNN: the N-body configuration has the reference model's parameter counts", "[segnn]") {
  Rng rng(test::seed(1, "segnn counts"));
  static_assert(std::is_same_v<SEGNNHidden, O3Irreps<Mul<32, Scalar0e>, Mul<32, Vector1o>>>);
  SEGNN<float> strict(Graph::complete(5), {.layers = 4}, rng);
  SEGNN<float> relaxed(Graph::complete(5), {.layers = 4, .relaxed = true}, rng);
  CHECK(count_parameters(strict) == 147424);
  CHECK(count_parameters(relaxed) == 937960);
}

TEMPLATE_LIST_TEST_CASE("SEGNN: E(3)-equivariant (rotations, reflections, translations) with the branches off",
                        "[segnn][equivariance]", test::Backends) {
  using B = TestType;
  Rng rng(test::seed(2, "segnn e3"));
  const Graph g = Graph::complete(5);
  SEGNNRegression<double, B, SmallSEGNN<B>> model(SmallSEGNN<B>(g, {.layers = 2, .relaxed = true}, rng));
  const auto b = to_backend<B>(random_batch(g, 3, rng));
  std::vector<Eigen::Matrix3d> rotations = so3_grid(6);
  for (const auto& r : so3_random(6, test::seed(3, "segnn haar"))) rotations.push_back(r);
  const Eigen::Vector3d shift(0.7, -1.3, 2.1);
  model.set_relaxation(false);
  const auto strict = euclidean_equivariance_error(model, b, rotations, {.reflections = true, .translation = shift});
  UNSCOPED_INFO("strict error " << strict.max << " over " << strict.transformations << " transformations");
  CHECK(strict.max < 1e-10);
  CHECK(strict.transformations == 2 * rotations.size());
  model.set_relaxation(true);  // the branches see flattened coordinates: not equivariant
  CHECK(euclidean_equivariance_error(model, b, rotations, {.reflections = true, .translation = shift}).max > 1e-4);
}

TEMPLATE_LIST_TEST_CASE("SEGNN: permuting the nodes permutes the output", "[segnn][equivariance]", test::Backends) {
  using B = TestType;
  Rng rng(test::seed(4, "segnn permutations"));
  const std::size_t n = 5, samples = 2;
  const Graph g = Graph::complete(n);
  SmallSEGNN<B> net(g, {.layers = 2}, rng);
  const auto b = random_batch(g, samples, rng);
  const auto bb = to_backend<B>(b);
  const Tensor<double, 2> y = to_host_tensor<B>(net.forward(bb.input()));
  std::vector<std::size_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  const auto slot = [&](std::size_t i, std::size_t j) { return i * (n - 1) + (j < i ? j : j - 1); };
  for (int trial = 0; trial < 4; ++trial) {
    for (std::size_t i = n - 1; i > 0; --i) std::swap(perm[i], perm[rng.below(i + 1)]);
    GraphBatch<double> p = b;
    for (std::size_t s = 0; s < samples; ++s)
      for (std::size_t i = 0; i < n; ++i) {
        for (auto* t : {&p.h, &p.x, &p.v}) {
          const Tensor<double, 2>& from = t == &p.h ? b.h : t == &p.x ? b.x : b.v;
          for (std::size_t c = 0; c < from.shape()[1]; ++c) (*t)(s * n + perm[i], c) = from(s * n + i, c);
        }
        for (std::size_t j = 0; j < n; ++j)
          if (i != j)
            for (std::size_t c = 0; c < 2; ++c)
              p.edge_attr(s * g.edges() + slot(perm[i], perm[j]), c) = b.edge_attr(s * g.edges() + slot(i, j), c);
      }
    const auto pb = to_backend<B>(p);
    const Tensor<double, 2> yp = to_host_tensor<B>(net.forward(pb.input()));
    double gap = 0.0;
    for (std::size_t s = 0; s < samples; ++s)
      for (std::size_t i = 0; i < n; ++i)
        for (std::size_t c = 0; c < 3; ++c) gap = std::max(gap, std::abs(yp(s * n + perm[i], c) - y(s * n + i, c)));
    CHECK(gap < 1e-12);
  }
}

TEMPLATE_LIST_TEST_CASE("SEGNN: the relaxed SEGNN at gamma = 0 is the strict one bit for bit (outputs, gradients)",
                        "[segnn]", test::Backends) {
  using B = TestType;
  Rng rng(test::seed(5, "segnn gamma 0"));
  const Graph g = Graph::complete(5);
  SmallSEGNN<B> relaxed(g, {.layers = 3, .relaxed = true}, rng);
  SmallSEGNN<B> strict(g, {.layers = 3}, rng);
  std::map<std::string, std::vector<double>> values;
  relaxed.for_each_parameter([&](ParamView<double> p) {
    if (p.role == Role::gamma) from_host_vector<B>(std::vector<double>(p.value.size(), 0.0), p.value);
    values[p.name] = to_host_vector<B>(p.value);
  });
  std::size_t copied = 0;
  strict.for_each_parameter([&](ParamView<double> p) {
    REQUIRE(values.count(p.name) == 1);
    from_host_vector<B>(values[p.name], p.value);
    ++copied;
  });
  CHECK(copied == 2 + 8 * 3 + 3);  // embedding, four tensor products per layer, the head (weights, biases)
  const auto b = to_backend<B>(random_batch(g, 4, rng));
  const auto a = to_host_vector<B>(flat(relaxed.forward(b.input())));
  const auto c = to_host_vector<B>(flat(strict.forward(b.input())));
  CHECK(a == c);
  const auto relaxed_grads = gradients(relaxed, b);
  std::size_t same = 0;
  for (const auto& [name, grad] : gradients(strict, b)) same += relaxed_grads.at(name) == grad ? 1 : 0;
  CHECK(same == copied);
}

TEMPLATE_LIST_TEST_CASE("SEGNN: gradients of every parameter (gammas included) against central differences",
                        "[segnn][gradients]", test::Backends) {
  using B = TestType;
  Rng rng(test::seed(6, "segnn gradients"));
  const Graph g = Graph::complete(4);
  SEGNN<double, B, O3Irreps<Mul<3, Scalar0e>, Mul<2, Vector1o>>> net(g, {.layers = 2, .relaxed = true}, rng);
  auto b = to_backend<B>(random_batch(g, 2, rng));
  CHECK(test::graph_gradient_error(net, b, test::seed(7, "segnn gradient weights")) < 1e-7);
}

TEMPLATE_LIST_TEST_CASE("SEGNN: every backend agrees with Reference (forward, every gradient)", "[segnn]",
                        test::Backends) {
  using B = TestType;
  if constexpr (std::is_same_v<B, Reference>) return;  // the oracle itself
  Rng rng(test::seed(7, "segnn backends"));
  const Graph g = Graph::complete(5);
  Rng a(11), c(11);
  SmallSEGNN<B> net(g, {.layers = 2, .relaxed = true}, a);
  SmallSEGNN<Reference> ref(g, {.layers = 2, .relaxed = true}, c);
  const auto host = random_batch(g, 3, rng);
  const auto bb = to_backend<B>(host);
  const auto br = to_backend<Reference>(host);
  const auto yb = to_host_vector<B>(flat(net.forward(bb.input())));
  const auto yr = to_host_vector<Reference>(flat(ref.forward(br.input())));
  for (std::size_t i = 0; i < yb.size(); ++i) CHECK(yb[i] == Approx(yr[i]).epsilon(1e-12).margin(1e-12));
  const auto gb = gradients(net, bb), gr = gradients(ref, br);
  REQUIRE(gb.size() == gr.size());
  double gap = 0.0;
  for (const auto& [name, expected] : gr) {
    const std::vector<double>& got = gb.at(name);
    for (std::size_t i = 0; i < expected.size(); ++i)
      gap = std::max(gap, std::abs(got[i] - expected[i]) / std::max(1.0, std::abs(expected[i])));
  }
  CHECK(gap < 1e-12);
}
