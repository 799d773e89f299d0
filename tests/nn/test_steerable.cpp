// SPDX-License-Identifier: MIT
// The O(3)-steerable layers: the weighted tensor product, the swish gate and the O(3) linear layer. Exact O(3)
// equivariance on Haar rotations and reflections, gradients against central differences in double (inputs,
// attributes, every parameter), closed forms, initialisation bounds and parameter counts, on every backend.
#include <array>
#include <cmath>
#include <numbers>
#include <vector>

#include "ace/group/so3.hpp"
#include "ace/nn/check.hpp"
#include "ace/nn/steerable/gate.hpp"
#include "ace/nn/steerable/o3_linear.hpp"
#include "ace/nn/steerable/tensor_product.hpp"
#include "module_support.hpp"

using namespace ace;

namespace {

using Attr = o3_spherical_harmonics_t<1, 1>;  // 1x0e + 1x1o
using Hidden = o3_weight_balanced_t<64, 1, Attr>;  // 32x0e + 32x1o
using E2 = O3Irrep<2, Parity::even>;
using O3 = O3Irrep<3, Parity::odd>;
// irreps with every kind of path: l up to 3, both parities, repeated irreps
using Rich1 = O3Irreps<Mul<3, Scalar0e>, Mul<2, Vector1o>, Mul<2, E2>, Mul<1, Scalar0e>>;
using Rich2 = O3Irreps<Mul<1, Scalar0e>, Mul<2, Vector1o>, Mul<1, E2>>;
using RichOut = O3Irreps<Mul<4, Scalar0e>, Mul<3, Vector1o>, Mul<2, O3Irrep<1, Parity::even>>, Mul<2, E2>, Mul<1, O3>>;

/// Rotations, then the same times -I (reflections).
std::vector<Eigen::Matrix3d> o3_samples(std::uint64_t seed) {
  std::vector<Eigen::Matrix3d> r = so3_random(4, seed);
  const std::size_t n = r.size();
  for (std::size_t i = 0; i < n; ++i) r.push_back(-r[i]);
  return r;
}

/// x -> x ρ_S(R)^T on the host.
template <class S, class T>
Tensor<T, 2> act(const Tensor<T, 2>& x, const Eigen::Matrix3d& r) {
  const Eigen::MatrixXd m = S::matrix(r);
  Tensor<T, 2> out({x.shape()[0], x.shape()[1]});
  for (std::size_t b = 0; b < x.shape()[0]; ++b)
    for (std::size_t i = 0; i < S::dim; ++i) {
      double s = 0.0;
      for (std::size_t j = 0; j < S::dim; ++j) s += m(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) * x(b, j);
      out(b, i) = static_cast<T>(s);
    }
  return out;
}

template <class T>
double max_gap(const Tensor<T, 2>& a, const Tensor<T, 2>& b) {
  double gap = 0.0, scale = 1e-300;
  for (std::size_t i = 0; i < a.size(); ++i) {
    gap = std::max(gap, std::abs(static_cast<double>(a.data()[i]) - static_cast<double>(b.data()[i])));
    scale = std::max(scale, std::abs(static_cast<double>(a.data()[i])));
  }
  return gap / scale;
}

/// The tensor product's equivariance: tp(x1 D1^T, x2 D2^T) = tp(x1, x2) Dout^T on every sample, relative to max |y|.
template <class In1, class In2, class Out, class B>
double tensor_product_equivariance(std::uint64_t seed) {
  Rng rng(seed);
  O3TensorProduct<In1, In2, Out, double, B> tp(rng);
  test::randomise_parameters(tp, rng);
  const auto x1 = test::random_batch<double, In1>(7, rng), x2 = test::random_batch<double, In2>(7, rng);
  const auto y = to_host_tensor<B>(tp.forward(to_backend<B>(x1), to_backend<B>(x2)));
  double worst = 0.0;
  for (const auto& r : o3_samples(seed + 1)) {
    const auto moved = to_host_tensor<B>(tp.forward(to_backend<B>(act<In1>(x1, r)), to_backend<B>(act<In2>(x2, r))));
    worst = std::max(worst, max_gap(act<Out>(y, r), moved));
  }
  return worst;
}

/// Gradient check of a tensor product against central differences of L = Σ R ⊙ tp(x1, x2): x1, x2 and every
/// parameter.
template <class In1, class In2, class Out, class B>
double tensor_product_gradient_gap(std::uint64_t seed) {
  Rng rng(seed);
  O3TensorProduct<In1, In2, Out, double, B> tp(rng);
  test::randomise_parameters(tp, rng, 0.5);
  auto x1 = test::random_input<B, double, In1>(3, rng), x2 = test::random_input<B, double, In2>(3, rng);
  auto weights = test::random_input<B, double, Out>(3, rng);
  const auto loss = [&] { return B::dot(view(tp.forward(x1, x2)), view(std::as_const(weights))); };
  zero_grad(tp);
  tp.forward(x1, x2);
  const std::vector<double> d1 = to_host_vector<B>(flat(tp.backward(weights, true)));
  const std::vector<double> d2 = to_host_vector<B>(flat(tp.attribute_gradient()));
  std::vector<std::vector<double>> analytic;
  tp.for_each_parameter([&](ParamView<double> p) { analytic.push_back(to_host_vector<B>(p.grad)); });
  double worst = std::max(central_difference_gap<B>(flat(x1), d1, loss), central_difference_gap<B>(flat(x2), d2, loss));
  std::size_t k = 0;
  tp.for_each_parameter([&](ParamView<double> p) {
    worst = std::max(worst, central_difference_gap<B>(p.value, analytic[k++], loss));
  });
  return worst;
}

/// O(3) equivariance of a one-input module (gate, linear) relative to max |y|.
template <class M>
double module_equivariance(M& m, std::uint64_t seed) {
  using B = typename M::backend;
  using In = typename M::input;
  using Out = typename M::output;
  Rng rng(seed);
  const auto x = test::random_batch<double, In>(6, rng);
  const auto y = to_host_tensor<B>(m.forward(to_backend<B>(x)));
  double worst = 0.0;
  for (const auto& r : o3_samples(seed + 1))
    worst = std::max(worst, max_gap(act<Out>(y, r), to_host_tensor<B>(m.forward(to_backend<B>(act<In>(x, r))))));
  return worst;
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("steerable: the tensor product is O(3)-equivariant on rotations and reflections",
                        "[steerable]", test::Backends) {
  using B = TestType;
  CHECK(tensor_product_equivariance<Hidden, Attr, o3_gate_input_t<Hidden>, B>(test::seed(1, "tp equivariance")) <
        1e-12);
  CHECK(tensor_product_equivariance<Rich1, Rich2, RichOut, B>(test::seed(2, "tp equivariance rich")) < 1e-12);
  // the node input of SEGNN's N-body model: 2x1o + 1x0e
  using Input = O3Irreps<Mul<2, Vector1o>, Mul<1, Scalar0e>>;
  CHECK(tensor_product_equivariance<Input, Attr, Hidden, B>(test::seed(3, "tp equivariance input")) < 1e-12);
}

TEMPLATE_LIST_TEST_CASE("steerable: tensor product gradients (inputs, attributes, weights, biases) against central "
                        "differences", "[steerable]", test::Backends) {
  using B = TestType;
  CHECK(tensor_product_gradient_gap<Rich1, Rich2, RichOut, B>(test::seed(4, "tp gradients")) < 1e-7);
  using Small = O3Irreps<Mul<3, Scalar0e>, Mul<2, Vector1o>>;
  CHECK(tensor_product_gradient_gap<Small, Attr, o3_gate_input_t<Small>, B>(test::seed(5, "tp gradients small")) <
        1e-7);
}

TEMPLATE_LIST_TEST_CASE("steerable: closed forms: 1o x 1o -> 0e is the dot product / sqrt(3), -> 1e the cross product "
                        "/ sqrt(2)", "[steerable]", test::Backends) {
  using B = TestType;
  using V = O3Irreps<Mul<1, Vector1o>>;
  using Out = O3Irreps<Mul<1, Scalar0e>, Mul<1, O3Irrep<1, Parity::even>>>;
  Rng rng(test::seed(6, "tp closed forms"));
  O3TensorProduct<V, V, Out, double, B> tp(rng);
  tp.for_each_parameter([&](ParamView<double> p) {
    from_host_vector<B>(p.name == "weight" ? std::vector<double>{2.0, -3.0} : std::vector<double>{0.25}, p.value);
  });
  const std::array<double, 3> a{0.3, -1.2, 0.7}, b{-0.8, 0.4, 1.9};
  auto x1 = to_backend<B>(Tensor<double, 2>({{a[0], a[1], a[2]}})), x2 = to_backend<B>(Tensor<double, 2>({{b[0], b[1], b[2]}}));
  const auto y = to_host_vector<B>(flat(tp.forward(x1, x2)));
  const double dot = a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
  const std::array<double, 3> cross{a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
  CHECK(y[0] == Approx(2.0 * dot / std::sqrt(3.0) + 0.25).epsilon(1e-14));
  for (int k = 0; k < 3; ++k) CHECK(std::abs(y[1 + k]) == Approx(3.0 * std::abs(cross[k]) / std::sqrt(2.0)).epsilon(1e-13));
  // a scalar attribute 1 (1x0e) with weights W acts as a linear layer on each irrep: y = x W
  using S = O3Irreps<Mul<1, Scalar0e>>;
  O3TensorProduct<O3Irreps<Mul<2, Vector1o>>, S, O3Irreps<Mul<1, Vector1o>>, double, B> lin(rng);
  lin.for_each_parameter([&](ParamView<double> p) { from_host_vector<B>(std::vector<double>{0.5, -2.0}, p.value); });
  auto v = to_backend<B>(Tensor<double, 2>({{1.0, 10.0, 2.0, 20.0, 3.0, 30.0}}));  // copies (1,2,3), (10,20,30)
  auto one = to_backend<B>(Tensor<double, 2>({{1.0}}));
  const auto w = to_host_vector<B>(flat(lin.forward(v, one)));
  CHECK(w[0] == Approx(0.5 - 20.0).epsilon(1e-14));
  CHECK(w[1] == Approx(1.0 - 40.0).epsilon(1e-14));
  CHECK(w[2] == Approx(1.5 - 60.0).epsilon(1e-14));
}

TEMPLATE_LIST_TEST_CASE("steerable: weights and biases start U(-1/sqrt(K), 1/sqrt(K)) per output term; counts",
                        "[steerable]", test::Backends) {
  using B = TestType;
  using Message = o3_concat_t<Hidden, Hidden, O3Irreps<Mul<2, Scalar0e>>>;
  using Gated = O3TensorProduct<Message, Attr, o3_gate_input_t<Hidden>, float, B>;
  // K = 130 products per output term: 32 + 32 (x_i), 32 + 32 (x_j), 2 (the extra scalars)
  static_assert(Gated::weights == 130 * 64 + 130 * 32 && Gated::biases == 64);
  static_assert(O3TensorProduct<Hidden, Attr, Hidden, float, B>::weights == 64 * 32 * 2);
  Rng rng(test::seed(7, "tp init"));
  Gated tp(rng);
  tp.for_each_parameter([&](ParamView<float> p) {
    const auto v = to_host_vector<B>(p.value);
    double top = 0.0;
    for (float e : v) top = std::max(top, std::abs(static_cast<double>(e)));
    CHECK(top <= 1.0 / std::sqrt(130.0));
    CHECK(top > 0.9 / std::sqrt(130.0));
  });
}

TEMPLATE_LIST_TEST_CASE("steerable: the swish gate is equivariant, matches its formula and its gradients",
                        "[steerable]", test::Backends) {
  using B = TestType;
  using Out = O3Irreps<Mul<3, Scalar0e>, Mul<2, Vector1o>, Mul<1, E2>>;
  O3Gate<Out, double, B> gate;
  static_assert(std::is_same_v<typename O3Gate<Out, double, B>::input,
                               O3Irreps<Mul<3, Scalar0e>, Mul<3, Scalar0e>, Mul<2, Vector1o>, Mul<1, E2>>>);
  CHECK(module_equivariance(gate, test::seed(8, "gate equivariance")) < 1e-13);
  Rng rng(test::seed(9, "gate gradients"));
  auto x = test::random_input<B, double, typename O3Gate<Out, double, B>::input>(4, rng);
  test::check_module_gradients(gate, x, test::seed(10, "gate gradient check"), 1e-8);
  // the formula on one row: scalars c1 silu(s); copy w of a gated term times c2 sigmoid(gate w)
  const auto hx = to_host_tensor<B>(x);
  const auto hy = to_host_tensor<B>(gate.forward(x));
  const double c1 = SwishGateConstants::silu, c2 = SwishGateConstants::sigmoid;
  const auto sig = [](double z) { return 1.0 / (1.0 + std::exp(-z)); };
  CHECK(hy(1, 2) == Approx(c1 * hx(1, 2) * sig(hx(1, 2))).epsilon(1e-14));
  CHECK(hy(1, 3 + 2 * 2 + 1) == Approx(hx(1, 6 + 2 * 2 + 1) * c2 * sig(hx(1, 4))).epsilon(1e-14));  // 1o: k 2, copy 1
  CHECK(hy(1, 9 + 4) == Approx(hx(1, 12 + 4) * c2 * sig(hx(1, 5))).epsilon(1e-14));                  // 2e: k 4
  O3Gate<O3Irreps<Mul<4, Scalar0e>>, double, B> scalars_only;
  CHECK(module_equivariance(scalars_only, test::seed(11, "gate scalars")) < 1e-14);
}

TEMPLATE_LIST_TEST_CASE("steerable: the O(3) linear layer is equivariant, equals the tensor product with attribute 1, "
                        "and its gradients", "[steerable]", test::Backends) {
  using B = TestType;
  using In = O3Irreps<Mul<3, Scalar0e>, Mul<2, Vector1o>, Mul<2, E2>, Mul<2, Scalar0e>, Mul<1, Vector1o>>;
  using Out = O3Irreps<Mul<2, Vector1o>, Mul<4, Scalar0e>, Mul<1, E2>>;
  Rng rng(test::seed(12, "o3 linear"));
  O3Linear<In, Out, double, B> lin(rng);
  test::randomise_parameters(lin, rng);
  CHECK(module_equivariance(lin, test::seed(13, "o3 linear equivariance")) < 1e-12);
  auto x = test::random_input<B, double, In>(5, rng);
  test::check_module_gradients(lin, x, test::seed(14, "o3 linear gradients"), 1e-8);
  // the same map as O3TensorProduct<In, 1x0e, Out> at x2 = 1 with the weights in the same order (term c, then a)
  using One = O3Irreps<Mul<1, Scalar0e>>;
  O3TensorProduct<In, One, Out, double, B> tp(rng);
  static_assert(decltype(tp)::weights == O3Linear<In, Out, double, B>::weights);
  std::vector<std::vector<double>> values;
  lin.for_each_parameter([&](ParamView<double> p) { values.push_back(to_host_vector<B>(p.value)); });
  std::size_t k = 0;
  tp.for_each_parameter([&](ParamView<double> p) { from_host_vector<B>(values[k++], p.value); });
  Tensor<double, 2> ones({5, 1});
  ones.fill(1.0);
  const auto a = to_host_tensor<B>(lin.forward(x)), b = to_host_tensor<B>(tp.forward(x, to_backend<B>(ones)));
  CHECK(max_gap(a, b) < 1e-14);
}
