// SPDX-License-Identifier: MIT
// Set layers: the set and pair feature spaces agree with ace's representation algebra; DeepSets, set pooling and the
// second-order layer pass the gradient and equivariance checks; the 15 maps of PairLinear span exactly the orbit
// basis of Hom_{S_N}(Natural⊗Natural, Natural⊗Natural).
#include <Eigen/Dense>
#include <numeric>
#include <xtensor/xview.hpp>

#include "ace/group/symmetric.hpp"
#include "ace/nn/core/activation.hpp"
#include "ace/nn/core/equivariant_linear.hpp"
#include "ace/nn/core/sequential.hpp"
#include "ace/nn/set/pair_linear.hpp"
#include "ace/nn/set/set.hpp"
#include "ace/rep/basis.hpp"
#include "ace/rep/composite.hpp"
#include "module_support.hpp"

using namespace ace;

namespace {
using test::make_module;
using test::random_batch;
using test::random_input;

template <class T, class B = Cpu>
using SetModules = std::tuple<DeepSets<T, 5, 3, 4, B>, SetSumPool<T, 5, 3, B>, SetMeanPool<T, 5, 3, B>,
                              SetMaxPool<T, 6, 2, B>, PairLinear<T, 4, 2, 3, B>, PairLinear<T, 5, 1, 2, B>,
                              DeepSets<T, 4, 2, 3, B>>;
template <class B>
using SetModulesDouble = SetModules<double, B>;
template <class B>
using SetModulesBoth = test::concat_t<SetModules<float, B>, SetModules<double, B>>;

/// x with the elements of every set permuted: element i moves to position perm[i].
template <class T>
Tensor<T, 2> permute_sets(const Tensor<T, 2>& x, const std::vector<std::size_t>& perm, std::size_t f) {
  const std::size_t n = perm.size();
  Tensor<T, 2> out(x.shape());
  for (std::size_t b = 0; b < x.shape()[0]; ++b)
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t c = 0; c < f; ++c) out(b, perm[i] * f + c) = x(b, i * f + c);
  return out;
}

std::vector<std::size_t> random_permutation(std::size_t n, Rng& rng) {
  std::vector<std::size_t> p(n);
  std::iota(p.begin(), p.end(), std::size_t{0});
  for (std::size_t i = n - 1; i > 0; --i) std::swap(p[i], p[rng.below(i + 1)]);
  return p;
}
}  // namespace

TEST_CASE("set features: the layout of Natural (x) F channels and of Natural (x) Natural (x) F channels", "[set]") {
  using S = Symmetric<4>;
  using Channels = Multiple<Trivial<S>, 3>;
  STATIC_REQUIRE(PermutationRepresentation<SetFeatures<4, 3>>);
  STATIC_REQUIRE(PermutationRepresentation<PairFeatures<4, 3>>);
  STATIC_REQUIRE(FeatureSpace<SetFeatures<100, 256>>);
  STATIC_REQUIRE(!Representation<SetFeatures<100, 256>>);  // S_100 is not a group type: layout only
  STATIC_REQUIRE(std::same_as<SetPooled<4, 3>, Channels>);
  STATIC_REQUIRE(std::same_as<SetPooled<30, 3>, Features<3>>);
  for_each_element<S>([](const element_t<S>& g) {
    CHECK(SetFeatures<4, 3>::permutation(g) == TensorProduct<Natural<S>, Channels>::permutation(g));
    CHECK(PairFeatures<4, 3>::permutation(g) ==
          TensorProduct<TensorProduct<Natural<S>, Natural<S>>, Channels>::permutation(g));
  });
}

TEMPLATE_LIST_TEST_CASE("set layers: backward matches central differences", "[set][gradient]",
                        test::for_backends<SetModulesDouble>) {
  using M = TestType;
  Rng rng(test::seed(71, "set layer gradients"));
  M module = make_module<M>(rng);
  test::randomise_parameters(module, rng);  // non-zero biases, so every path is exercised
  const auto x = random_input<typename M::backend, double, typename M::input>(3, rng);
  test::check_module_gradients(module, x, 5);
}

TEMPLATE_LIST_TEST_CASE("set layers: equivariant (pooling: invariant) under S_N", "[set][equivariance]",
                        test::for_backends<SetModulesBoth>) {
  using M = TestType;
  using T = typename M::scalar;
  Rng rng(test::seed(72, "set layer equivariance"));
  M module = make_module<M>(rng);
  const auto x = random_input<typename M::backend, T, typename M::input>(4, rng);
  test::check_module_equivariance(module, x, 9);
}

TEST_CASE("deepsets: matches x_i L^T + pool_j(x_j) G^T + b for every pooling", "[set][deepsets]") {
  constexpr std::size_t n = 4, fi = 3, fo = 2;
  for (Reduce pool : {Reduce::sum, Reduce::mean, Reduce::max}) {
    Rng rng(test::seed(73, "deepsets reference"));
    DeepSets<double, n, fi, fo> layer(rng, {.pool = pool});
    Eigen::MatrixXd lambda(fo, fi), gamma(fo, fi);
    Eigen::VectorXd bias(fo);
    test::randomise_parameters(layer, rng);
    layer.for_each_parameter([&](ParamView<double> p) {
      Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> m(
          p.value.data(), p.name == "bias" ? 1 : fo, p.name == "bias" ? fo : fi);
      if (p.name == "weight") lambda = m;
      else if (p.name == "pool_weight") gamma = m;
      else bias = m.transpose();
    });
    const auto x = random_batch<double, SetFeatures<n, fi>>(2, rng);
    const Tensor<double, 2>& y = layer.forward(x);
    for (std::size_t b = 0; b < 2; ++b) {
      Eigen::VectorXd pooled = Eigen::VectorXd::Constant(fi, pool == Reduce::max ? -1e300 : 0.0);
      for (std::size_t j = 0; j < n; ++j)
        for (std::size_t c = 0; c < fi; ++c)
          pooled(c) = pool == Reduce::max ? std::max(pooled(c), x(b, j * fi + c)) : pooled(c) + x(b, j * fi + c);
      if (pool == Reduce::mean) pooled /= double(n);
      for (std::size_t i = 0; i < n; ++i) {
        Eigen::VectorXd xi(fi);
        for (std::size_t c = 0; c < fi; ++c) xi(c) = x(b, i * fi + c);
        const Eigen::VectorXd expected = lambda * xi + gamma * pooled + bias;
        for (std::size_t o = 0; o < fo; ++o) CHECK(y(b, i * fo + o) == Approx(expected(o)).epsilon(1e-12));
      }
    }
  }
}

TEST_CASE("deepsets: a set of 100 elements (no group type) is permutation-equivariant", "[set][deepsets]") {
  constexpr std::size_t n = 100, fi = 6, fo = 5;
  Rng rng(test::seed(74, "deepsets large set"));
  DeepSets<double, n, fi, fo> layer(rng, {.pool = Reduce::max});
  SetMeanPool<double, n, fo> pool;
  const auto x = random_batch<double, SetFeatures<n, fi>>(3, rng);
  const Tensor<double, 2> y = layer.forward(x);
  const Tensor<double, 2> pooled = pool.forward(y);
  const auto perm = random_permutation(n, rng);
  const Tensor<double, 2> yp = layer.forward(permute_sets(x, perm, fi));
  const Tensor<double, 2> expected = permute_sets(y, perm, fo);
  CHECK((as_matrix(yp) - as_matrix(expected)).norm() < 1e-12 * as_matrix(y).norm());
  CHECK((as_matrix(pool.forward(yp)) - as_matrix(pooled)).norm() < 1e-12 * as_matrix(pooled).norm());
  const GradientCheckResult r = check_gradients(layer, Tensor<double, 2>(xt::view(x, xt::range(0, 1), xt::all())), 3);
  CHECK(r.max_error() < 1e-6);
}

TEST_CASE("set pooling: max sends the gradient to the first maximal element", "[set][pool]") {
  SetMaxPool<double, 3, 2> pool;
  Tensor<double, 2> x = {{1.0, 5.0, 4.0, 5.0, 4.0, -1.0}};  // channel 0: 1, 4, 4 (tie); channel 1: 5, 5, -1 (tie)
  const Tensor<double, 2>& y = pool.forward(x);
  CHECK(y(0, 0) == 4.0);
  CHECK(y(0, 1) == 5.0);
  const Tensor<double, 2> dy = {{10.0, 20.0}};
  const Tensor<double, 2>& dx = pool.backward(dy);
  CHECK(bool(dx == Tensor<double, 2>{{0.0, 20.0, 10.0, 0.0, 0.0, 0.0}}));
}

TEST_CASE("set layers: shape errors name the shapes", "[set][errors]") {
  Rng rng(test::seed(75, "set errors"));
  DeepSets<float, 4, 3, 2> layer(rng);
  CHECK_THROWS_AS(layer.backward(Tensor<float, 2>({2, 8})), invalid_argument);  // before forward
  CHECK_THROWS_WITH(layer.forward(Tensor<float, 2>({2, 11})), Catch::Contains("[batch, 12]") &&
                                                                   Catch::Contains("[2, 11]"));
  const auto x = random_batch<float, SetFeatures<4, 3>>(2, rng);
  layer.forward(x);
  CHECK_THROWS_AS(layer.backward(Tensor<float, 2>({3, 8})), shape_error);
  const DeepSetsOptions bad{.gain = -1.0};
  using Bad = DeepSets<float, 4, 3, 2>;
  CHECK_THROWS_AS(Bad(rng, bad), invalid_argument);
  PairLinear<float, 3, 1, 1> pair(rng);
  CHECK_THROWS_AS(pair.forward(Tensor<float, 2>({2, 8})), shape_error);
}

namespace {
/// The N² x N² matrix of PairLinear's map k (one channel in and out, no bias), column by column.
template <std::size_t N>
Eigen::MatrixXd pair_map(std::size_t k) {
  Rng rng(1);
  PairLinear<double, N, 1, 1> layer(rng, {.bias = false});
  for (auto& w : layer.weight()) w = 0.0;
  layer.weight()(k, 0, 0) = 1.0;
  Tensor<double, 2> eye({N * N, N * N});
  as_matrix(eye).setIdentity();
  return as_matrix(layer.forward(eye)).transpose();  // row m of the output is the image of e_m
}

template <std::size_t N>
void check_span() {
  using NN = TensorProduct<Natural<Symmetric<N>>, Natural<Symmetric<N>>>;
  const EquivariantBasis& basis = equivariant_basis<NN, NN>();
  Eigen::MatrixXd vectors(N * N * N * N, 15);
  for (std::size_t k = 0; k < 15; ++k) {
    const Eigen::MatrixXd m = pair_map<N>(k);
    CAPTURE(N, k);
    CHECK((basis.project(m) - m).norm() < 1e-12);  // each map lies in Hom_{S_N}(NN, NN)
    vectors.col(static_cast<Eigen::Index>(k)) = m.reshaped();
  }
  // ... and together they span all of it: rank = hom_dim (15 for N >= 4; 14 and 8 for N = 3 and 2).
  Eigen::FullPivLU<Eigen::MatrixXd> lu(vectors);
  CAPTURE(N);
  CHECK(static_cast<std::size_t>(lu.rank()) == basis.size());
  CHECK(basis.size() == hom_dim<NN, NN>());
  CHECK(basis.exact());
}
}  // namespace

TEST_CASE("pair linear: the 15 maps span exactly the orbit basis of Hom(Natural (x) Natural)", "[set][pair]") {
  check_span<2>();
  check_span<3>();
  check_span<4>();
  check_span<5>();
  CHECK(hom_dim<TensorProduct<Natural<Symmetric<5>>, Natural<Symmetric<5>>>,
                TensorProduct<Natural<Symmetric<5>>, Natural<Symmetric<5>>>>() == 15);
}

TEMPLATE_LIST_TEST_CASE("set model: DeepSets -> ReLU -> DeepSets -> pooling -> invariant head is S_N-invariant",
                        "[set][model]", test::Backends) {
  using B = TestType;
  constexpr std::size_t n = 6;
  using Model = Sequential<DeepSets<double, n, 2, 8, B>, ReLU<double, SetFeatures<n, 8>, B>, DeepSets<double, n, 8, 8, B>,
                           SetMaxPool<double, n, 8, B>,
                           EquivariantLinear<double, SetPooled<n, 8>, Trivial<Symmetric<n>>, B>>;
  Rng rng(test::seed(76, "set model"));
  Model model(rng);
  const auto x = random_input<B, double, SetFeatures<n, 2>>(5, rng);
  CHECK(check_equivariance(model, x, 4, 16) < 1e-12);
  CHECK(check_gradients(model, x, 8).max_error() < 1e-6);
}
