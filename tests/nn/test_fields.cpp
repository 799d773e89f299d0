// SPDX-License-Identifier: MIT
// Nonlinearities on fields (norm-based, gated) and group pooling: gradients, exact equivariance for
// non-permutation representations, and the values they are defined by.
#include "ace/group/cyclic.hpp"
#include "ace/group/dihedral.hpp"
#include "ace/group/polyhedral.hpp"
#include "ace/nn/core/equivariant_linear.hpp"
#include "ace/nn/core/fields.hpp"
#include "ace/nn/core/sequential.hpp"
#include "ace/rep/basic.hpp"
#include "ace/rep/composite.hpp"
#include "ace/rep/irreps.hpp"
#include "module_support.hpp"

using namespace ace;

namespace {
using test::make_module;
using test::random_input;

using O = Octahedral;
using D4 = Dihedral<4>;
using Ico = Icosahedral;

template <class T, class B = Cpu>
using FieldModules = std::tuple<NormReLU<T, DirectSum<Multiple<Standard<O>, 2>, Trivial<O>>, B>,
                                NormSiLU<T, Multiple<Irrep<D4, 4>, 3>, B>,
                                NormReLU<T, TensorProduct<Standard<Ico>, Standard<Ico>>, B>,
                                Gated<T, Multiple<Standard<O>, 3>, B>,
                                Gated<T, DirectSum<Standard<D4>, Multiple<Irrep<D4, 4>, 2>>, B>,
                                GroupMeanPool<T, Multiple<Regular<D4>, 3>, B>, GroupMaxPool<T, Regular<O>, B>>;
template <class B>
using FieldModulesDouble = FieldModules<double, B>;
template <class B>
using FieldModulesBoth = test::concat_t<FieldModules<float, B>, FieldModules<double, B>>;
}  // namespace

TEST_CASE("fields: the summands of DirectSum and Multiple, flattened", "[fields]") {
  STATIC_REQUIRE(field_dims_v<Standard<O>> == std::array<std::size_t, 1>{3});
  STATIC_REQUIRE(field_dims_v<DirectSum<Multiple<Standard<O>, 2>, Trivial<O>>> == std::array<std::size_t, 3>{3, 3, 1});
  STATIC_REQUIRE(field_dims_v<Multiple<DirectSum<Trivial<D4>, Irrep<D4, 4>>, 2>> ==
                 std::array<std::size_t, 4>{1, 2, 1, 2});
  STATIC_REQUIRE(field_count_v<TensorProduct<Standard<O>, Standard<O>>> == 1);
  STATIC_REQUIRE(std::same_as<Gated<float, Multiple<Standard<O>, 3>>::input,
                              DirectSum<Multiple<Trivial<O>, 3>, Multiple<Standard<O>, 3>>>);
  STATIC_REQUIRE(std::same_as<GroupMeanPool<float, Multiple<Regular<D4>, 3>>::output, Multiple<Trivial<D4>, 3>>);
}

TEMPLATE_LIST_TEST_CASE("field nonlinearities: backward matches central differences", "[fields][gradient]",
                        test::for_backends<FieldModulesDouble>) {
  using M = TestType;
  Rng rng(test::seed(81, "field gradients"));
  M module = make_module<M>(rng);
  test::randomise_parameters(module, rng, 0.3);
  const auto x = random_input<typename M::backend, double, typename M::input>(3, rng);
  test::check_module_gradients(module, x, 6);
}

TEMPLATE_LIST_TEST_CASE("field nonlinearities: equivariant for non-permutation representations",
                        "[fields][equivariance]", test::for_backends<FieldModulesBoth>) {
  using M = TestType;
  using T = typename M::scalar;
  Rng rng(test::seed(82, "field equivariance"));
  M module = make_module<M>(rng);
  test::randomise_parameters(module, rng, 0.3);
  const auto x = random_input<typename M::backend, T, typename M::input>(4, rng);
  test::check_module_equivariance(module, x, 2);
}

TEST_CASE("norm relu: rescales each field by relu(|x| + b) / |x|", "[fields][norm]") {
  using S = DirectSum<Standard<O>, Standard<O>>;
  NormReLU<double, S> layer;
  layer.bias()(0, 0) = -1.0;  // switches off fields with |x| < 1
  layer.bias()(0, 1) = 0.5;
  const Tensor<double, 2> x = {{0.3, 0.4, 0.0, 0.0, 3.0, 4.0}};  // norms 0.5 and 5
  const Tensor<double, 2>& y = layer.forward(x);
  for (std::size_t i = 0; i < 3; ++i) CHECK(y(0, i) == 0.0);
  CHECK(y(0, 4) == Approx(3.0 * 5.5 / 5.0).epsilon(1e-12));
  CHECK(y(0, 5) == Approx(4.0 * 5.5 / 5.0).epsilon(1e-12));
  Tensor<double, 2> zero({1, 6});
  zero.fill(0.0);
  CHECK(as_matrix(layer.forward(zero)).allFinite());  // smooth at the origin
}

TEST_CASE("gated: scales each field by the sigmoid of its gate", "[fields][gated]") {
  using S = Multiple<Standard<D4>, 2>;
  Gated<double, S> layer;
  const Tensor<double, 2> x = {{0.0, 50.0, 1.0, 2.0, 3.0, 4.0}};  // gates 0 and 50; fields (1, 2) and (3, 4)
  const Tensor<double, 2>& y = layer.forward(x);
  CHECK(bool(y == Tensor<double, 2>{{0.5, 1.0, 3.0 / (1.0 + std::exp(-50.0)), 4.0 / (1.0 + std::exp(-50.0))}}));
}

TEST_CASE("group pooling: mean and max over each regular field", "[fields][pool]") {
  using In = Multiple<Regular<Cyclic<3>>, 2>;
  GroupMeanPool<double, In> mean;
  GroupMaxPool<double, In> max;
  const Tensor<double, 2> x = {{1.0, 2.0, 6.0, -1.0, -3.0, -2.0}};
  CHECK(bool(mean.forward(x) == Tensor<double, 2>{{3.0, -2.0}}));
  CHECK(bool(max.forward(x) == Tensor<double, 2>{{6.0, -1.0}}));
  CHECK(bool(max.backward(Tensor<double, 2>{{1.0, 2.0}}) == Tensor<double, 2>{{0.0, 0.0, 1.0, 2.0, 0.0, 0.0}}));
  CHECK_THROWS_AS(mean.backward(Tensor<double, 2>({2, 2})), shape_error);
}

TEMPLATE_LIST_TEST_CASE("field model: EquivariantLinear -> gated -> EquivariantLinear -> norm relu is equivariant",
                        "[fields]", test::Backends) {
  using B = TestType;
  using Hidden = Multiple<Standard<O>, 4>;
  using OModel = Sequential<EquivariantLinear<double, DirectSum<Multiple<Standard<O>, 2>, Trivial<O>>,
                                              GatedInput<Hidden>, B>,
                            Gated<double, Hidden, B>,
                            EquivariantLinear<double, Hidden, DirectSum<Hidden, Trivial<O>>, B>,
                            NormReLU<double, DirectSum<Hidden, Trivial<O>>, B>>;
  Rng rng(test::seed(83, "field model"));
  OModel model(rng);
  const auto x = random_input<B, double, typename OModel::input>(4, rng);
  CHECK(check_equivariance(model, x, 5, 16) < 1e-12);
  CHECK(check_gradients(model, x, 9).max_error() < 1e-6);
}
