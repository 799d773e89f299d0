// SPDX-License-Identifier: MIT
// The module battery, on every backend: every module's backward against central differences (double), exact
// equivariance of every equivariant module on generators and random elements (float and double), and shape errors.
#include "ace/group/dihedral.hpp"
#include "ace/group/cyclic.hpp"
#include "ace/group/polyhedral.hpp"
#include "ace/group/symmetric.hpp"
#include "ace/nn/core/activation.hpp"
#include "ace/nn/core/equivariant_linear.hpp"
#include "ace/nn/core/linear.hpp"
#include "ace/rep/basic.hpp"
#include "ace/rep/composite.hpp"
#include "ace/rep/irreps.hpp"
#include "ace/rep/quotient.hpp"
#include "ace/rep/reynolds.hpp"
#include "module_support.hpp"

using namespace ace;

namespace {
using test::make_module;
using test::random_input;

using C4 = Cyclic<4>;
using D4 = Dihedral<4>;
template <class G>
using NN = TensorProduct<Natural<G>, Natural<G>>;
template <class T, class B>
using EquivariantModules = std::tuple<
    EquivariantLinear<T, Regular<D4>, Regular<D4>, B>,
    EquivariantLinear<T, Multiple<Regular<C4>, 2>, DirectSum<Trivial<C4>, Standard<C4>>, B>,
    EquivariantLinear<T, Natural<Symmetric<5>>, Natural<Symmetric<5>>, B>,
    EquivariantLinear<T, NN<Symmetric<4>>, Natural<Symmetric<4>>, B>,
    EquivariantLinear<T, Standard<Icosahedral>, TensorProduct<Standard<Icosahedral>, Standard<Icosahedral>>, B>,
    EquivariantLinear<T, DirectSum<Trivial<D4>, Sign<D4>, Standard<D4>>, Regular<D4>, B>, ReLU<T, Regular<D4>, B>,
    SiLU<T, Natural<Symmetric<5>>, B>, GELU<T, Quotient<D4, C4>, B>, Tanh<T, NN<Symmetric<3>>, B>>;
template <class B>
using DoubleModules =
    test::concat_t<EquivariantModules<double, B>,
                   std::tuple<Linear<double, Features<5>, Features<3>, B>, Linear<double, Regular<C4>, Standard<C4>, B>,
                              ReLU<double, Features<7>, B>, Tanh<double, Features<4>, B>>>;
template <class B>
using BothScalars = test::concat_t<EquivariantModules<float, B>, EquivariantModules<double, B>>;
}  // namespace

TEMPLATE_LIST_TEST_CASE("module: backward matches central differences", "[module][gradient]",
                        test::for_backends<DoubleModules>) {
  using M = TestType;
  STATIC_REQUIRE(Module<M>);
  Rng rng(test::seed(101, "module gradient check"));
  M module = make_module<M>(rng);
  test::randomise_parameters(module, rng);
  const auto x = random_input<typename M::backend, double, typename M::input>(3, rng);
  test::check_module_gradients(module, x, 7);
}

TEMPLATE_LIST_TEST_CASE("module: equivariant on generators and random elements", "[module][equivariance]",
                        test::for_backends<BothScalars>) {
  using M = TestType;
  using T = typename M::scalar;
  Rng rng(test::seed(202, "module equivariance"));
  M module = make_module<M>(rng);
  const auto x = random_input<typename M::backend, T, typename M::input>(4, rng);
  test::check_module_equivariance(module, x, 3);
}

TEMPLATE_LIST_TEST_CASE("module: the equivariance check detects a non-equivariant layer", "[module][equivariance]",
                        test::Backends) {
  using B = TestType;
  Rng rng(test::seed(5, "non-equivariant control"));
  Linear<double, Regular<D4>, Regular<D4>, B> dense(rng);  // a generic dense map between the same representations
  const auto x = random_input<B, double, Regular<D4>>(4, rng);
  CHECK(check_equivariance(dense, x, 3) > 1e-2);
}

TEST_CASE("linear: matches y = x W^T + b and accumulates gradients", "[module][linear]") {
  Rng rng(test::seed(9, "linear reference"));
  Linear<double, Features<4>, Features<3>> lin(rng);
  for (auto& b : lin.bias()) b = rng.normal();
  const auto x = test::random_batch<double, Features<4>>(5, rng);
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
    if (p.role == Role::bias) bias_grad = p.grad.data()[0];
  });
  CHECK(bias_grad == Approx(10.0));  // 2 passes x 5 rows
  LinearOptions no_bias;
  no_bias.bias = false;
  Linear<double, Features<4>, Features<3>> nb(rng, no_bias);
  CHECK(parameter_count(nb) == 12);
  CHECK(parameter_count(lin) == 15);
  // One computation, two faces: Linear is a Dense with its feature spaces in the type.
  STATIC_REQUIRE(std::is_base_of_v<Dense<double>, Linear<double, Features<4>, Features<3>>>);
  STATIC_REQUIRE(Layer<Dense<float, Reference>>);
  STATIC_REQUIRE_FALSE(Module<Dense<float>>);
}

TEST_CASE("equivariant linear: weight in Hom_G, invariant bias, parameter counts", "[module][equivariant]") {
  Rng rng(test::seed(13, "equivariant linear structure"));
  using In = Multiple<Regular<Dihedral<4>>, 2>;
  using Out = DirectSum<Trivial<Dihedral<4>>, Regular<Dihedral<4>>, Standard<Dihedral<4>>>;
  EquivariantLinear<double, In, Out> layer(rng);
  for (auto& c : layer.coefficients()) c = rng.normal();
  test::randomise_parameters(layer, rng);
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
  const auto x = test::random_batch<double, R>(512, rng);
  const double out_var = as_matrix(layer.forward(x)).squaredNorm() / (512.0 * 128.0);
  CHECK(out_var == Approx(2.0).epsilon(0.15));
}

TEMPLATE_LIST_TEST_CASE("module: wrong input shapes are reported with the shapes", "[module]", test::Backends) {
  using B = TestType;
  Rng rng(1);
  EquivariantLinear<float, Regular<Cyclic<4>>, Regular<Cyclic<4>>, B> layer(rng);
  const auto x = zeros<B, float>(2, 5);
  CHECK_THROWS_AS(layer.forward(x), shape_error);
  CHECK_THROWS_WITH(layer.forward(x), Catch::Contains("[batch, 4]") && Catch::Contains("[2, 5]"));
  Linear<float, Features<3>, Features<2>, B> lin(rng);
  CHECK_THROWS_AS(lin.backward(zeros<B, float>(1, 2)), invalid_argument);  // before forward
  lin.forward(zeros<B, float>(2, 3));
  CHECK_THROWS_WITH(lin.backward(zeros<B, float>(2, 3)), Catch::Contains("[2, 2]") && Catch::Contains("[2, 3]"));
  CHECK_THROWS_AS((Linear<float, Features<3>, Features<2>, B>(rng, LinearOptions{.bias = true, .gain = -1.0})),
                  invalid_argument);
}
