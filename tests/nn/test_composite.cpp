// SPDX-License-Identifier: MIT
// Sequential and Relaxed: gradients, equivariance of composite models, gamma = 0 equals Eq, parameter roles.
#include "ace/group/dihedral.hpp"
#include "ace/nn/core/activation.hpp"
#include "ace/nn/core/equivariant_linear.hpp"
#include "ace/nn/core/linear.hpp"
#include "ace/nn/core/relaxed.hpp"
#include "ace/nn/core/sequential.hpp"
#include "ace/rep/basic.hpp"
#include "ace/rep/composite.hpp"
#include "module_support.hpp"

using namespace ace;

namespace {
using G = Dihedral<4>;
using R = Regular<G>;
using Hidden = Multiple<Regular<G>, 2>;
using Out = DirectSum<Trivial<G>, Standard<G>>;
template <class T, class B = Cpu>
using EqModel =
    Sequential<EquivariantLinear<T, R, Hidden, B>, ReLU<T, Hidden, B>, EquivariantLinear<T, Hidden, Out, B>>;
template <class T, class B = Cpu>
using RelaxedLayer = Relaxed<EquivariantLinear<T, R, Hidden, B>, Linear<T, R, Hidden, B>>;
template <class T, class B = Cpu>
using RelaxedModel = Sequential<RelaxedLayer<T, B>, Tanh<T, Hidden, B>, EquivariantLinear<T, Hidden, Out, B>>;
using test::random_batch;
using test::random_input;
}  // namespace

TEMPLATE_LIST_TEST_CASE("sequential: gradients, equivariance and parameter names", "[sequential]", test::Backends) {
  using B = TestType;
  Rng rng(test::seed(41, "sequential"));
  EqModel<double, B> model(rng);
  STATIC_REQUIRE(Module<EqModel<double, B>>);
  STATIC_REQUIRE(std::same_as<typename EqModel<double, B>::input, R>);
  STATIC_REQUIRE(std::same_as<typename EqModel<double, B>::output, Out>);
  const auto x = random_input<B, double, R>(3, rng);
  CHECK(check_gradients(model, x, 5).max_error() < 1e-6);
  CHECK(check_equivariance(model, x, 6, 16) < 1e-12);
  std::vector<std::string> names;
  model.for_each_parameter([&](ParamView<double> p) { names.push_back(p.name); });
  CHECK(names == std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
  EqModel<float, B> model_f(rng);
  const auto xf = random_input<B, float, R>(8, rng);
  CHECK(check_equivariance(model_f, xf, 6, 16) < 1e-5);
}

TEMPLATE_LIST_TEST_CASE("relaxed: f_eq + gamma f_neq, its gradients and its gamma", "[relaxed]", test::Backends) {
  using B = TestType;
  Rng rng(test::seed(43, "relaxed"));
  RelaxedModel<double, B> model(rng);
  const auto x = random_input<B, double, R>(3, rng);
  auto& layer = model.template get<0>();
  CHECK(layer.gamma() == 1.0);  // docs/method.md §2: gamma starts at 1
  layer.set_gamma(0.7);
  const GradientCheckResult r = check_gradients(model, x, 9);
  for (const auto& [name, err] : r.parameters) {
    UNSCOPED_INFO(name << " " << err);
  }
  CHECK(r.max_error() < 1e-6);
  // The roles the ACE trainer relies on.
  std::size_t gammas = 0;
  model.for_each_parameter([&](ParamView<double> p) {
    if (p.role == Role::gamma) {
      ++gammas;
      CHECK(p.name == "0.gamma");
    }
  });
  CHECK(gammas == 1);
  // With the branch on and gamma != 0 the model is not equivariant...
  CHECK(check_equivariance(model, x, 3) > 1e-3);
  // ...with gamma = 0 it is exactly the equivariant model.
  layer.set_gamma(0.0);
  CHECK(check_equivariance(model, x, 3) < 1e-12);
}

TEST_CASE("relaxed: gamma = 0 and the branch switch give exactly Eq; the export is Eq itself", "[relaxed]") {
  Rng rng(test::seed(47, "relaxed export"));
  RelaxedLayer<float> layer(rng);
  const auto x = random_batch<float, R>(5, rng);
  const Tensor<float, 2> with_branch = layer.forward(x);
  layer.set_branch(false);
  const Tensor<float, 2> off = layer.forward(x);
  layer.set_branch(true);
  layer.set_gamma(0.f);
  const Tensor<float, 2> zero = layer.forward(x);
  EquivariantLinear<float, R, Hidden> exported = layer.equivariant_part();  // a different type: no branch inside
  STATIC_REQUIRE_FALSE(std::is_same_v<decltype(exported), RelaxedLayer<float>>);
  const Tensor<float, 2> deployed = exported.forward(x);
  CHECK(bool(off == deployed));   // bit-identical
  CHECK(bool(zero == deployed));  // x + 0 * y == x exactly
  CHECK_FALSE(bool(with_branch == deployed));
  // With the branch off, backward leaves the branch and gamma untouched.
  layer.set_branch(false);
  zero_grad(layer);
  layer.forward(x);
  Tensor<float, 2> dy(layer.forward(x).shape());
  dy.fill(1.f);
  layer.backward(dy);
  layer.for_each_parameter([&](ParamView<float> p) {
    if (p.role == Role::gamma || p.name.rfind("neq.", 0) == 0)
      for (float g : to_host_vector<Cpu>(p.grad)) CHECK(g == 0.f);
  });
}

TEST_CASE("module: a copy forgets the original's forward state", "[module]") {
  Rng rng(test::seed(53, "module copies"));
  RelaxedModel<double> model(rng);
  const auto x = random_batch<double, R>(2, rng);
  Tensor<double, 2> dy(model.forward(x).shape());
  dy.fill(1.0);
  RelaxedModel<double> copy = model;  // copied after a forward: it must not point at model's buffers or x
  CHECK_THROWS_WITH(copy.backward(dy), Catch::Contains("before forward"));
  auto exported = model.get<0>().equivariant_part();
  CHECK_THROWS_AS(exported.backward(Tensor<double, 2>({2, Hidden::dim})), invalid_argument);
  // After its own forward the copy computes the same gradients as the original.
  zero_grad(model);
  zero_grad(copy);
  model.forward(x);
  const Tensor<double, 2> dx = model.backward(dy);
  copy.forward(x);
  CHECK(bool(copy.backward(dy) == dx));
}
