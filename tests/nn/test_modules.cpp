// SPDX-License-Identifier: MIT
// The module battery: every module's backward against central differences (double), exact equivariance of every
// equivariant module on generators and random elements (float and double), and shape errors.
#include "support.hpp"

using namespace ace;

namespace {
using test::make_module;
using test::random_batch;

using C4 = Cyclic<4>;
using D4 = Dihedral<4>;
template <class G>
using NN = TensorProduct<Natural<G>, Natural<G>>;
template <class T>
using EquivariantModules = std::tuple<
    EquivariantLinear<T, Regular<D4>, Regular<D4>>,
    EquivariantLinear<T, Multiple<Regular<C4>, 2>, DirectSum<Trivial<C4>, Standard<C4>>>,
    EquivariantLinear<T, Natural<Symmetric<5>>, Natural<Symmetric<5>>>,
    EquivariantLinear<T, NN<Symmetric<4>>, Natural<Symmetric<4>>>,
    EquivariantLinear<T, Standard<Icosahedral>, TensorProduct<Standard<Icosahedral>, Standard<Icosahedral>>>,
    EquivariantLinear<T, DirectSum<Trivial<D4>, Sign<D4>, Standard<D4>>, Regular<D4>>,
    ReLU<T, Regular<D4>>, SiLU<T, Natural<Symmetric<5>>>, GELU<T, Quotient<D4, C4>>, Tanh<T, NN<Symmetric<3>>>>;
using AllDoubleModules =
    test::concat_t<EquivariantModules<double>,
                   std::tuple<Linear<double, Features<5>, Features<3>>, Linear<double, Regular<C4>, Standard<C4>>,
                              ReLU<double, Features<7>>, Tanh<double, Features<4>>>>;
using EquivariantBoth = test::concat_t<EquivariantModules<float>, EquivariantModules<double>>;
}  // namespace

TEMPLATE_LIST_TEST_CASE("module: backward matches central differences", "[module][gradient]", AllDoubleModules) {
  using M = TestType;
  STATIC_REQUIRE(Module<M>);
  Rng rng(test::seed(101, "module gradient check"));
  M module = make_module<M>(rng);
  const auto x = random_batch<double, typename M::input>(3, rng);
  test::check_module_gradients(module, x, 7);
}

TEMPLATE_LIST_TEST_CASE("module: equivariant on generators and random elements", "[module][equivariance]",
                        EquivariantBoth) {
  using M = TestType;
  using T = typename M::scalar;
  Rng rng(test::seed(202, "module equivariance"));
  M module = make_module<M>(rng);
  const auto x = random_batch<T, typename M::input>(4, rng);
  test::check_module_equivariance(module, x, 3);
}

TEST_CASE("module: the equivariance check detects a non-equivariant layer", "[module][equivariance]") {
  Rng rng(test::seed(5, "non-equivariant control"));
  Linear<double, Regular<D4>, Regular<D4>> dense(rng);  // a generic dense map between the same representations
  const auto x = random_batch<double, Regular<D4>>(4, rng);
  CHECK(check_equivariance(dense, x, 3) > 1e-2);
}

TEST_CASE("linear: matches y = x W^T + b and accumulates gradients", "[module][linear]") {
  Rng rng(test::seed(9, "linear reference"));
  Linear<double, Features<4>, Features<3>> lin(rng);
  for (auto& b : lin.bias()) b = rng.normal();
  const auto x = random_batch<double, Features<4>>(5, rng);
  const Eigen::MatrixXd expected =
      (as_matrix(x) * as_matrix(lin.weight()).transpose()).rowwise() + as_matrix(lin.bias()).row(0);
  CHECK((as_matrix(lin.forward(x)) - expected).norm() < 1e-12);
  // Two backward passes accumulate (the caller zeroes gradients between steps).
  Tensor<double, 2> dy({5, 3});
  dy.fill(1.0);
  zero_grad(lin);
  lin.forward(x);
  lin.backward(dy);
  lin.backward(dy);
  double bias_grad = 0;
  lin.for_each_parameter([&](ParamView<double> p) {
    if (p.role == Role::bias) bias_grad = p.grad[0];
  });
  CHECK(bias_grad == Approx(10.0));  // 2 passes x 5 rows
  LinearOptions no_bias;
  no_bias.bias = false;
  Linear<double, Features<4>, Features<3>> nb(rng, no_bias);
  CHECK(parameter_count(nb) == 12);
  CHECK(parameter_count(lin) == 15);
}

TEST_CASE("equivariant linear: weight in Hom_G, invariant bias, parameter counts", "[module][equivariant]") {
  Rng rng(test::seed(13, "equivariant linear structure"));
  using In = Multiple<Regular<Dihedral<4>>, 2>;
  using Out = DirectSum<Trivial<Dihedral<4>>, Regular<Dihedral<4>>, Standard<Dihedral<4>>>;
  EquivariantLinear<double, In, Out> layer(rng);
  for (auto& c : layer.coefficients()) c = rng.normal();
  layer.for_each_parameter([&](ParamView<double> p) {
    for (auto& v : p.value) v = rng.normal();
  });
  const Eigen::MatrixXd w = as_matrix(layer.weight());
  CHECK(equivariance_error<In, Out>(w) < 1e-12);
  // Bias lives in the invariant subspace: Trivial (1) + the constant direction of Regular (1) = 2 coefficients.
  std::size_t bias_params = 0, weight_params = 0;
  layer.for_each_parameter([&](ParamView<double> p) {
    (p.role == Role::bias ? bias_params : weight_params) += p.value.size();
  });
  CHECK(bias_params == 2);
  CHECK(weight_params == hom_dim<In, Out>());
  const Eigen::VectorXd b = as_matrix(layer.bias()).row(0).transpose();
  for (const auto& s : Dihedral<4>::generators()) CHECK((rep_matrix<Out>(s) * b - b).norm() < 1e-12);
  // No invariant component in the output: no bias parameter at all.
  EquivariantLinear<double, Regular<Cyclic<4>>, Standard<Cyclic<4>>> no_bias(rng);
  std::size_t tensors = 0;
  no_bias.for_each_parameter([&](ParamView<double>) { ++tensors; });
  CHECK(tensors == 1);
  // No equivariant map at all: a clear error.
  CHECK_THROWS_AS((EquivariantLinear<double, Sign<Dihedral<4>>, Trivial<Dihedral<4>>>(rng)), invalid_argument);
}

TEST_CASE("equivariant linear: variance-preserving initialisation", "[module][equivariant]") {
  Rng rng(test::seed(21, "equivariant init"));
  using R = Multiple<Regular<Cyclic<8>>, 16>;
  EquivariantLinearOptions he;
  he.gain = 2.0;
  EquivariantLinear<double, R, R> layer(rng, he);
  const Eigen::MatrixXd w = as_matrix(layer.weight());
  const double var = w.squaredNorm() / static_cast<double>(w.size());
  CHECK(var == Approx(2.0 / 128).epsilon(0.1));  // 2048 coefficients: the sample variance is within ~3 %
  // Output variance of a unit-variance input stays near gain (the purpose of the rule).
  const auto x = random_batch<double, R>(512, rng);
  const double out_var = as_matrix(layer.forward(x)).squaredNorm() / (512.0 * 128.0);
  CHECK(out_var == Approx(2.0).epsilon(0.15));
}

TEST_CASE("module: wrong input shapes are reported with the shapes", "[module]") {
  Rng rng(1);
  EquivariantLinear<float, Regular<Cyclic<4>>, Regular<Cyclic<4>>> layer(rng);
  Tensor<float, 2> x({2, 5});
  x.fill(0.f);
  CHECK_THROWS_AS(layer.forward(x), shape_error);
  CHECK_THROWS_WITH(layer.forward(x), Catch::Contains("[batch, 4]") && Catch::Contains("[2, 5]"));
  Linear<float, Features<3>, Features<2>> lin(rng);
  CHECK_THROWS_AS(lin.backward(Tensor<float, 2>({1, 2})), invalid_argument);  // before forward
  Tensor<float, 2> x3({2, 3});
  x3.fill(1.f);
  lin.forward(x3);
  CHECK_THROWS_WITH(lin.backward(Tensor<float, 2>({2, 3})), Catch::Contains("[2, 2]") && Catch::Contains("[2, 3]"));
  CHECK_THROWS_AS((Linear<float, Features<3>, Features<2>>(rng, LinearOptions{.bias = true, .gain = -1.0})),
                  invalid_argument);
}
