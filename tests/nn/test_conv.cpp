// SPDX-License-Identifier: MIT
// Convolutions, pooling and batch norm on images: values against a direct loop, gradients against central
// differences, exact equivariance of group convolutions under 90-degree rotations and flips (the pixels move and
// the group axis is permuted), the relaxed branch, and independence of the thread count.
#include <cstdlib>
#include <numbers>
#include <string>
#include <utility>

#include "ace/data/images.hpp"
#include "ace/group/cyclic.hpp"
#include "ace/group/dihedral.hpp"
#include "ace/nn/core/activation.hpp"
#include "ace/nn/core/equivariant_linear.hpp"
#include "ace/nn/core/relaxed.hpp"
#include "ace/nn/core/sequential.hpp"
#include "ace/nn/image/batch_norm.hpp"
#include "ace/nn/image/conv.hpp"
#include "ace/nn/image/pool.hpp"
#include "module_support.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

using namespace ace;

// Both layouts on every backend of the list (Catch2 needs the cases spelt out).
#if defined(ACE_TEST_BACKEND_CUDA) || defined(ACE_TEST_BACKEND_EMULATION)
#define ACE_CONV_CASES (Layout::channels_first, test::Device), (Layout::channels_last, test::Device)
#else
#define ACE_CONV_CASES                                                                                    \
  (Layout::channels_first, Cpu), (Layout::channels_last, Cpu), (Layout::channels_first, Reference), \
      (Layout::channels_last, Reference)
#endif

namespace {
using test::random_batch;
using test::random_input;
using C4 = Cyclic<4>;
using D4 = Dihedral<4>;

constexpr ConvSpec k3 = same_padding(3);
constexpr ConvSpec k3s2{3, 2, 1};

// The definition: y[b, o, oy, ox] = bias[o] + Σ w[o, ky, kx, c] x[b, c, oy s + ky - p, ox s + kx - p].
template <class M>
Tensor<double, 2> direct_conv(M& m, const Tensor<double, 2>& x) {
  using In = typename M::input;
  using Out = typename M::output;
  using B = typename M::backend;
  constexpr ConvSpec s = M::spec;
  const Tensor<double, 4> weight = to_host_tensor<B>(m.weight());
  const Tensor<double, 1> bias = to_host_tensor<B>(m.bias());
  Tensor<double, 2> y({x.shape()[0], Out::dim});
  for (std::size_t b = 0; b < x.shape()[0]; ++b)
    for (std::size_t o = 0; o < Out::channels; ++o)
      for (std::size_t oy = 0; oy < Out::rows; ++oy)
        for (std::size_t ox = 0; ox < Out::cols; ++ox) {
          double acc = bias(o);
          for (std::size_t ky = 0; ky < s.kernel; ++ky)
            for (std::size_t kx = 0; kx < s.kernel; ++kx) {
              const auto iy = static_cast<std::ptrdiff_t>(oy * s.stride + ky) - static_cast<std::ptrdiff_t>(s.padding);
              const auto ix = static_cast<std::ptrdiff_t>(ox * s.stride + kx) - static_cast<std::ptrdiff_t>(s.padding);
              if (iy < 0 || ix < 0 || iy >= static_cast<std::ptrdiff_t>(In::rows) ||
                  ix >= static_cast<std::ptrdiff_t>(In::cols))
                continue;
              const std::size_t p = static_cast<std::size_t>(iy) * In::cols + static_cast<std::size_t>(ix);
              for (std::size_t c = 0; c < In::channels; ++c)
                acc += weight(o, ky, kx, c) * x(b, In::offset(c, p));
            }
          y(b, Out::offset(o, oy * Out::cols + ox)) = acc;
        }
  return y;
}

template <class M>
void randomise_bias(M& m, Rng& rng) {
  std::vector<typename M::scalar> b(m.bias().size());
  for (auto& v : b) v = static_cast<typename M::scalar>(rng.normal());
  from_host_vector<typename M::backend>(b, flat(m.bias()));
}

/// max |a - b| relative to max |b|.
double relative(const Tensor<double, 2>& a, const Tensor<double, 2>& b) {
  return (as_matrix(a) - as_matrix(b)).norm() / std::max(1e-300, as_matrix(b).norm());
}

template <Layout L>
using Gray9 = Image<Multiple<Trivial<C4>, 2>, 9, 9, L>;
}  // namespace

TEST_CASE("images: the image representation is the pixel action times the fiber's permutation", "[conv][image]") {
  using Img = Image<Multiple<Regular<D4>, 2>, 5, 5, Layout::channels_last>;
  STATIC_REQUIRE(PermutationRepresentation<Img>);
  STATIC_REQUIRE(!Representation<Image<Regular<Cyclic<8>>, 5, 5>>);  // 45 degrees does not map pixels to pixels
  STATIC_REQUIRE(Img::dim == 16 * 25);
  for (std::size_t i = 0; i < D4::order; ++i)
    for (std::size_t j = 0; j < D4::order; ++j) {
      const auto g = D4::element(i), h = D4::element(j);
      const auto pg = Img::permutation(g), ph = Img::permutation(h), pgh = Img::permutation(D4::compose(g, h));
      for (std::size_t k = 0; k < Img::dim; ++k) REQUIRE(pgh[k] == pg[ph[k]]);  // a homomorphism
    }
  // On a grey-scale image it is act_on_image.
  using Grey = Image<Trivial<C4>, 4, 4>;
  Tensor<double, 3> img({1, 4, 4});
  for (std::size_t i = 0; i < img.size(); ++i) img.data()[i] = static_cast<double>(i);
  const auto moved = act_on_image<C4>(C4::element(1), img);
  const auto p = Grey::permutation(C4::element(1));
  for (std::size_t i = 0; i < 16; ++i) CHECK(moved.data()[p[i]] == img.data()[i]);
}

TEMPLATE_TEST_CASE_SIG("Conv2d: values match the definition, any stride, padding and layout", "[conv]",
                       ((Layout L, class B), L, B), ACE_CONV_CASES) {
  Rng rng(test::seed(601, "conv values"));
  using In = Image<Features<3>, 9, 8, L>;
  Conv2d<double, In, Features<4>, k3s2, B> strided(rng);
  Conv2d<double, In, Features<5>, ConvSpec{5, 1, 0}, B> valid(rng);
  Conv2d<double, In, Features<2>, same_padding(3), B> same(rng);
  STATIC_REQUIRE(std::same_as<typename decltype(strided)::output, Image<Features<4>, 5, 4, L>>);
  STATIC_REQUIRE(std::same_as<typename decltype(valid)::output, Image<Features<5>, 5, 4, L>>);
  randomise_bias(strided, rng);
  randomise_bias(valid, rng);
  const Tensor<double, 2> x = random_batch<double, In>(5, rng);  // 5 samples: two chunks of the Cpu kernel
  const auto xb = to_backend<B>(x);
  CHECK(relative(to_host_tensor<B>(strided.forward(xb)), direct_conv(strided, x)) < 1e-13);
  CHECK(relative(to_host_tensor<B>(valid.forward(xb)), direct_conv(valid, x)) < 1e-13);
  CHECK(relative(to_host_tensor<B>(same.forward(xb)), direct_conv(same, x)) < 1e-13);
  // More output pixels than a block of the Cpu kernel: blocks end inside a sample.
  using Big = Image<Features<2>, 20, 17, L>;
  STATIC_REQUIRE(Big::pixels > cpu::ConvKernel<double>::block_rows);
  Conv2d<double, Big, Features<3>, same_padding(3), B> big(rng);
  randomise_bias(big, rng);
  const Tensor<double, 2> xbig = random_batch<double, Big>(3, rng);
  CHECK(relative(to_host_tensor<B>(big.forward(to_backend<B>(xbig))), direct_conv(big, xbig)) < 1e-13);
  if constexpr (std::is_same_v<B, Cpu>)  // the blocks are the Cpu kernel's (Reference has none: its gradients are
    test::check_module_gradients(big, to_backend<B>(xbig), 614);  // checked on smaller images below)
}

TEMPLATE_TEST_CASE_SIG("image layers: backward matches central differences", "[conv][gradient]",
                       ((Layout L, class B), L, B), ACE_CONV_CASES) {
  Rng rng(test::seed(602, "conv gradients"));
  using Grey = Image<Multiple<Trivial<D4>, 2>, 5, 5, L>;
  using Reg = Image<Multiple<Regular<D4>, 2>, 5, 5, L>;
  const auto grey = random_input<B, double, Grey>(3, rng);
  const auto reg = random_input<B, double, Reg>(3, rng);
  SECTION("Conv2d") {
    Conv2d<double, Image<Features<3>, 6, 5, L>, Features<2>, k3s2, B> m(rng);
    randomise_bias(m, rng);
    test::check_module_gradients(m, random_input<B, double, Image<Features<3>, 6, 5, L>>(3, rng), 603);
  }
  SECTION("lifting convolution") {
    LiftingConv2d<double, Grey, 2, k3, B> m(rng);
    randomise_bias(m, rng);
    test::check_module_gradients(m, grey, 604);
  }
  SECTION("group convolution, stride 2") {
    GroupConv2d<double, Reg, Multiple<Regular<D4>, 1>, k3s2, B> m(rng);
    randomise_bias(m, rng);
    test::check_module_gradients(m, reg, 605);
  }
  SECTION("group convolution of an interpolated group (C8)") {
    using Reg8 = Image<Regular<Cyclic<8>>, 5, 5, L>;
    GroupConv2d<double, Reg8, Regular<Cyclic<8>>, same_padding(5), B> m(rng);
    test::check_module_gradients(m, random_input<B, double, Reg8>(2, rng), 606);
  }
  SECTION("pooling") {
    GroupMaxPool<double, Reg, B> gmax;
    GroupMeanPool<double, Reg, B> gmean;
    SpatialPool<Reduce::max, double, Reg, 5, 1, false, B> smax;
    AvgPool2d<double, Image<Features<2>, 4, 6, L>, 2, B> savg;
    GlobalAvgPool<double, Reg, B> global;
    test::check_module_gradients(gmax, reg, 607);
    test::check_module_gradients(gmean, reg, 608);
    test::check_module_gradients(smax, reg, 609);
    test::check_module_gradients(savg, random_input<B, double, Image<Features<2>, 4, 6, L>>(2, rng), 610);
    test::check_module_gradients(global, reg, 611);
  }
  SECTION("field batch norm, batch statistics and running statistics") {
    FieldBatchNorm<double, Reg, B> norm;
    norm.for_each_parameter([&](ParamView<double> p) {
      std::vector<double> v(p.value.size());
      for (auto& e : v) e = rng.uniform(0.5, 1.5);
      from_host_vector<B>(v, p.value);
    });
    test::check_module_gradients(norm, reg, 612);
    norm.set_training(false);
    test::check_module_gradients(norm, reg, 613);
  }
}

TEMPLATE_TEST_CASE_SIG("group convolutions: exactly equivariant under rotations and flips of the grid",
                       "[conv][equivariance]", ((Layout L, class B), L, B), ACE_CONV_CASES) {
  Rng rng(test::seed(620, "conv equivariance"));
  using Reg4 = Image<Multiple<Regular<C4>, 3>, 9, 9, L>;
  using RegD4 = Image<Multiple<Regular<D4>, 2>, 9, 9, L>;
  SECTION("C4 lifting and group convolutions, same padding and stride 2 on an odd grid") {
    LiftingConv2d<double, Gray9<L>, 3, same_padding(5), B> lift(rng);
    GroupConv2d<double, Reg4, Multiple<Regular<C4>, 2>, k3, B> group(rng);
    GroupConv2d<double, Reg4, Multiple<Regular<C4>, 2>, k3s2, B> strided(rng);
    STATIC_REQUIRE(std::remove_cvref_t<decltype(strided)>::exact);
    randomise_bias(lift, rng);
    randomise_bias(group, rng);
    test::check_module_equivariance(lift, random_input<B, double, Gray9<L>>(3, rng), 621);
    test::check_module_equivariance(group, random_input<B, double, Reg4>(3, rng), 622);
    test::check_module_equivariance(strided, random_input<B, double, Reg4>(3, rng), 623);
  }
  SECTION("D4, and pooling") {
    using GreyD4 = Image<Multiple<Trivial<D4>, 1>, 9, 9, L>;
    LiftingConv2d<double, GreyD4, 2, k3, B> lift(rng);
    GroupConv2d<double, RegD4, Multiple<Regular<D4>, 3>, same_padding(5), B> group(rng);
    randomise_bias(group, rng);
    test::check_module_equivariance(lift, random_input<B, double, GreyD4>(3, rng), 624);
    test::check_module_equivariance(group, random_input<B, double, RegD4>(3, rng), 625);
    GroupMaxPool<double, RegD4, B> gpool;
    FieldBatchNorm<double, RegD4, B> norm;
    using Even = Image<Multiple<Regular<D4>, 2>, 8, 8, L>;
    MaxPool2d<double, Even, 2, B> spool;
    test::check_module_equivariance(gpool, random_input<B, double, RegD4>(3, rng), 626);
    test::check_module_equivariance(norm, random_input<B, double, RegD4>(3, rng), 627);
    test::check_module_equivariance(spool, random_input<B, double, Even>(3, rng), 628);
  }
  SECTION("float, as trained") {
    GroupConv2d<float, Image<Multiple<Regular<C4>, 3>, 9, 9, L>, Multiple<Regular<C4>, 2>, k3, B> group(rng);
    test::check_module_equivariance(group, random_input<B, float, Image<Multiple<Regular<C4>, 3>, 9, 9, L>>(2, rng),
                                    629);
  }
  SECTION("a stride that leaves a pixel over breaks equivariance, and the type says so") {
    using Odd = Image<Multiple<Regular<C4>, 2>, 8, 8, L>;  // (8 + 2 - 3) % 2 = 1
    GroupConv2d<double, Odd, Regular<C4>, k3s2, B> m(rng);
    STATIC_REQUIRE(!std::remove_cvref_t<decltype(m)>::exact);
    CHECK(check_equivariance(m, random_input<B, double, Odd>(2, rng), 630) > 1e-2);
  }
}

#if !defined(ACE_TEST_DEVICE_BUILD)  // the cases below are about the Cpu backend (its default)
TEST_CASE("group convolutions: C8 rotates filters by interpolation, exact on quarter turns", "[conv][equivariance]") {
  // A quarter turn of the input moves the pixels (C4's permutation) and shifts C8's group axis by two.
  using C8 = Cyclic<8>;
  constexpr std::size_t n = 9;
  using In = Image<Multiple<Trivial<C8>, 1>, n, n>;
  Rng rng(test::seed(640, "C8 conv"));
  LiftingConv2d<double, In, 2, same_padding(5)> lift(rng);
  const Tensor<double, 2> x = random_batch<double, In>(2, rng);
  const Tensor<double, 2> y = lift.forward(x);
  using Move = Image<Trivial<C4>, n, n>;
  const auto pixels = Move::permutation(C4::element(1));
  Tensor<double, 2> xr(x.shape());
  for (std::size_t b = 0; b < 2; ++b)
    for (std::size_t p = 0; p < n * n; ++p) xr(b, pixels[p]) = x(b, p);
  const Tensor<double, 2>& yr = lift.forward(xr);
  double err = 0.0;
  for (std::size_t b = 0; b < 2; ++b)
    for (std::size_t f = 0; f < 2; ++f)
      for (std::size_t k = 0; k < 8; ++k)
        for (std::size_t p = 0; p < n * n; ++p) {
          const std::size_t c = f * 8 + k, moved = f * 8 + (k + 2) % 8;
          err = std::max(err, std::abs(yr(b, moved * n * n + pixels[p]) - y(b, c * n * n + p)));
        }
  CHECK(err < 1e-12);
}

TEST_CASE("group convolutions: the filter bank is rotated copies of the shared weights", "[conv]") {
  Rng rng(test::seed(650, "filter bank"));
  using In = Image<Multiple<Trivial<C4>, 1>, 6, 6>;
  LiftingConv2d<double, In, 1, same_padding(3)> lift(rng);
  const Tensor<double, 2> bank = lift.filter_bank();  // [4, 9]: one 3x3 filter per rotation
  Tensor<double, 3> psi({1, 3, 3});
  for (std::size_t i = 0; i < 9; ++i) psi.data()[i] = lift.weight().data()[i];
  for (std::size_t k = 0; k < 4; ++k) {
    const auto rotated = act_on_image<C4>(C4::element(k), psi);
    for (std::size_t i = 0; i < 9; ++i) CHECK(bank(k, i) == rotated.data()[i]);
  }
  // The bank follows the weights.
  lift.weight()(0, 0, 0, 0) += 1.0;
  CHECK(lift.filter_bank()(0, 0) == bank(0, 0) + 1.0);
}

TEST_CASE("relaxed group convolution: the branch is a Conv2d; at gamma 0 it is the group convolution", "[conv]") {
  Rng rng(test::seed(660, "relaxed conv"));
  using In = Image<Multiple<Regular<C4>, 2>, 7, 7, Layout::channels_last>;
  using Eq = GroupConv2d<double, In, Multiple<Regular<C4>, 2>, k3>;
  using Neq = Conv2d<double, In, Multiple<Regular<C4>, 2>, k3>;
  Relaxed<Eq, Neq> relaxed(rng);
  const Tensor<double, 2> x = random_batch<double, In>(2, rng);
  relaxed.set_gamma(0.5);
  CHECK(check_equivariance(relaxed, x, 661) > 1e-3);  // the branch breaks the symmetry
  test::check_module_gradients(relaxed, x, 662);
  relaxed.set_gamma(0.0);
  const Tensor<double, 2> y = relaxed.forward(x);
  const Tensor<double, 2>& exported = relaxed.equivariant_part().forward(x);
  CHECK(y == exported);
}

TEST_CASE("export: a relaxed P4 CNN at gamma 0 is its exported strict network, bit for bit", "[conv][model]") {
  Rng rng(test::seed(665, "export"));
  using X = Image<Multiple<Trivial<C4>, 1>, 8, 8, Layout::channels_last>;
  using F = Multiple<Regular<C4>, 2>;
  using Lift = LiftingConv2d<double, X, 2, k3>;
  using H = Lift::output;
  using Group = GroupConv2d<double, H, F, k3>;
  using Net = Sequential<Relaxed<Lift, Conv2d<double, X, F, k3>>, FieldBatchNorm<double, H>,
                         Pointwise<ReLUOp, double, H>, Relaxed<Group, Conv2d<double, H, F, k3>>,
                         GroupMeanPool<double, H>, GlobalAvgPool<double, GroupMeanPool<double, H>::output>>;
  Net net(rng);
  STATIC_REQUIRE(std::same_as<exported_t<Net>, Sequential<Lift, FieldBatchNorm<double, H>, Pointwise<ReLUOp, double, H>,
                                                          Group, GroupMeanPool<double, H>,
                                                          GlobalAvgPool<double, GroupMeanPool<double, H>::output>>>);
  const Tensor<double, 2> x = random_batch<double, X>(3, rng);
  CHECK(as_matrix(net.forward(x)).isApprox(as_matrix(exported_t<Net>(export_equivariant(net)).forward(x)), 1e-12) ==
        false);  // γ = 1: the branches count
  net.for_each_parameter([](ParamView<double> p) {
    if (p.role == Role::gamma) from_host_vector<Cpu>(std::vector<double>{0.0}, p.value);
  });
  set_training(net, false);
  auto exported = export_equivariant(net);
  set_training(exported, false);
  const Tensor<double, 2> y = net.forward(x);
  CHECK(y == exported.forward(x));
  CHECK(parameter_count(exported) < parameter_count(net));
  test::check_module_equivariance(exported, x, 666);
}

namespace {
// Runs a float Conv2d and its double twin (same parameters, same batch) forward and backward; returns the largest
// error of the float results relative to each result's largest magnitude.
template <class In, class Out, ConvSpec S>
double float_vs_double(std::size_t batch, Rng& rng) {
  Conv2d<double, In, Out, S> ref(rng);
  randomise_bias(ref, rng);
  Conv2d<float, In, Out, S> m(rng);
  std::vector<double> values;
  ref.for_each_parameter([&](ParamView<double> p) {
    const auto v = to_host_vector<Cpu>(p.value);
    values.insert(values.end(), v.begin(), v.end());
  });
  std::size_t next = 0;
  m.for_each_parameter([&](ParamView<float> p) {
    std::vector<float> v(p.value.size());
    for (auto& e : v) e = static_cast<float>(values[next++]);
    from_host_vector<Cpu>(v, p.value);
  });
  const Tensor<double, 2> x = random_batch<double, In>(batch, rng);
  const Tensor<double, 2> dy = random_batch<double, typename decltype(ref)::output>(batch, rng);
  const auto narrow = [](const Tensor<double, 2>& t) {
    Tensor<float, 2> f(t.shape());
    std::transform(t.begin(), t.end(), f.begin(), [](double v) { return static_cast<float>(v); });
    return f;
  };
  zero_grad(ref);
  zero_grad(m);
  const Tensor<double, 2> y = ref.forward(x), dx = ref.backward(dy);
  const Tensor<float, 2> xf = narrow(x);  // the module keeps a pointer to its input until backward
  const Tensor<float, 2> yf = m.forward(xf), dxf = m.backward(narrow(dy));
  const auto error = [](auto a_begin, auto a_end, auto b_begin) {
    double scale = 0, worst = 0;
    auto b = b_begin;
    for (auto a = a_begin; a != a_end; ++a, ++b) {
      scale = std::max(scale, std::abs(static_cast<double>(*a)));
      worst = std::max(worst, std::abs(static_cast<double>(*a) - static_cast<double>(*b)));
    }
    return worst / std::max(scale, 1e-300);
  };
  double worst = std::max(error(y.begin(), y.end(), yf.begin()), error(dx.begin(), dx.end(), dxf.begin()));
  std::vector<double> grads;
  ref.for_each_parameter([&](ParamView<double> p) {
    const auto g = to_host_vector<Cpu>(p.grad);
    grads.insert(grads.end(), g.begin(), g.end());
  });
  next = 0;
  m.for_each_parameter([&](ParamView<float> p) {
    const auto g = to_host_vector<Cpu>(p.grad);
    worst = std::max(worst, error(grads.begin() + static_cast<std::ptrdiff_t>(next),
                                  grads.begin() + static_cast<std::ptrdiff_t>(next + g.size()), g.begin()));
    next += g.size();
  });
  return worst;
}

// Restores the AVX2/FMA switch when a test ends.
struct SimdSwitch {
  explicit SimdSwitch(bool on) { set_simd_kernels(on); }
  ~SimdSwitch() { set_simd_kernels(true); }
  SimdSwitch(const SimdSwitch&) = delete;
  SimdSwitch& operator=(const SimdSwitch&) = delete;
};

// Sets the convolution algorithm for a test and restores the previous one when it ends.
struct AlgorithmSwitch {
  explicit AlgorithmSwitch(ConvAlgorithm a) : before(conv_algorithm()) { set_conv_algorithm(a); }
  ~AlgorithmSwitch() { set_conv_algorithm(before); }
  AlgorithmSwitch(const AlgorithmSwitch&) = delete;
  AlgorithmSwitch& operator=(const AlgorithmSwitch&) = delete;
  ConvAlgorithm before;
};

// A float Conv2d runs forward and backward, one weight changes, it runs again: the new results differ from the old
// and agree with those of another path (to_reference() returns the switch to it) — the filters a kernel keeps
// (packed or transformed) follow the weights.
template <class Switch>
void check_filters_follow_weights(Rng& rng, Switch&& to_reference) {
  using In = Image<Features<5>, 7, 6, Layout::channels_last>;
  Conv2d<float, In, Features<7>, k3> m(rng);
  const Tensor<float, 2> x = random_batch<float, In>(3, rng), dy = random_batch<float, decltype(m)::output>(3, rng);
  const Tensor<float, 2> before = m.forward(x);
  m.backward(dy);
  m.weight()(4, 1, 2, 3) += 1.0f;
  const Tensor<float, 2> y = m.forward(x), dx = m.backward(dy);
  CHECK_FALSE(as_matrix(y).isApprox(as_matrix(before), 1e-3f));
  const auto reference = to_reference();
  const Tensor<float, 2> y_ref = m.forward(x), dx_ref = m.backward(dy);
  CHECK(as_matrix(y).isApprox(as_matrix(y_ref), 1e-5f));
  CHECK(as_matrix(dx).isApprox(as_matrix(dx_ref), 1e-5f));
}
}  // namespace

// Float convolutions run on the AVX2/FMA tiles where the CPU has them: channel counts off the 16-wide panels, pixel
// counts off the 6-row tiles, several samples per chunk, strides, paddings, a 1x1 kernel, both layouts. Both float
// paths are held to the double result of the (gradient-checked) Eigen path.
TEST_CASE("convolutions: the float kernels agree with double, AVX2/FMA tiles and Eigen path", "[conv]") {
  constexpr Layout L = Layout::channels_last;
  INFO("AVX2/FMA kernels available: " << simd_kernels_available());
  for (const bool simd : {true, false}) {
    SimdSwitch use(simd);
    CHECK(cpu::ConvKernel<float>(ConvGeometry{3, 5, 9, 8, 3, 2, 1, L}).direct() == (simd && simd_kernels_available()));
    CHECK(cpu::ConvKernel<float>(ConvGeometry{3, 5, 9, 8, 3, 2, 1, Layout::channels_first}).direct() ==
          (simd && simd_kernels_available()));
    CHECK_FALSE(cpu::ConvKernel<double>(ConvGeometry{3, 5, 9, 8, 3, 2, 1, L}).direct());
    Rng rng(test::seed(680, "simd conv"));
    INFO("AVX2/FMA path: " << simd);
    CHECK(float_vs_double<Image<Features<3>, 9, 8, L>, Features<5>, k3s2>(5, rng) < 2e-6);
    CHECK(float_vs_double<Image<Features<20>, 7, 6, L>, Features<37>, same_padding(5)>(4, rng) < 2e-6);
    CHECK(float_vs_double<Image<Features<16>, 11, 11, L>, Features<32>, ConvSpec{1, 1, 0}>(3, rng) < 2e-6);
    CHECK(float_vs_double<Image<Features<25>, 20, 17, L>, Features<6>, k3>(3, rng) < 2e-6);
    CHECK(float_vs_double<Image<Features<12>, 10, 10, L>, Features<27>, ConvSpec{5, 3, 2}>(7, rng) < 2e-6);
    if (simd || !test::sanitized)  // under the sanitizers (-O0) the widest case runs on the AVX2/FMA path only
      CHECK(float_vs_double<Image<Features<64>, 8, 8, L>, Features<64>, same_padding(5)>(17, rng) < 2e-6);  // 2 chunks
    // Channels-first maps: each chunk is transposed around the same kernels.
    constexpr Layout F = Layout::channels_first;
    CHECK(float_vs_double<Image<Features<20>, 7, 6, F>, Features<37>, same_padding(5)>(4, rng) < 2e-6);
    CHECK(float_vs_double<Image<Features<12>, 10, 10, F>, Features<27>, ConvSpec{5, 3, 2}>(7, rng) < 2e-6);
  }
  // The packed filters are reused while the weights stay the same, and follow them when they change.
  Rng rng(test::seed(681, "simd conv cache"));
  check_filters_follow_weights(rng, [] { return SimdSwitch(false); });
}

TEST_CASE("Winograd: the F(m, r) matrices compute a correlation exactly", "[conv][winograd]") {
  Rng rng(test::seed(690, "winograd matrices"));
  for (const auto& [m, r] : {std::pair<std::size_t, std::size_t>{2, 3}, {4, 3}, {2, 5}, {3, 3}, {6, 3}, {4, 5},
                             {1, 1}, {3, 1}, {1, 4}}) {
    INFO("F(" << m << ", " << r << ")");
    const cpu::WinogradMatrices w(m, r);
    REQUIRE(w.alpha == m + r - 1);
    for (std::size_t j = 0; j < w.alpha && w.alpha <= 6; ++j)  // integer points: Bᵀ is exact in float
      for (std::size_t c = 0; c < w.alpha; ++c) CHECK(w.bt[j * w.alpha + c] == std::round(w.bt[j * w.alpha + c]));
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<double> d(w.alpha), g(r);
      for (double& v : d) v = rng.uniform(-1.0, 1.0);
      for (double& v : g) v = rng.uniform(-1.0, 1.0);
      for (std::size_t i = 0; i < m; ++i) {
        double y = 0, expected = 0;
        for (std::size_t j = 0; j < w.alpha; ++j) {
          double gj = 0, bj = 0;
          for (std::size_t k = 0; k < r; ++k) gj += w.g[j * r + k] * g[k];
          for (std::size_t c = 0; c < w.alpha; ++c) bj += w.bt[j * w.alpha + c] * d[c];
          y += w.at[i * w.alpha + j] * gj * bj;
        }
        for (std::size_t k = 0; k < r; ++k) expected += d[i + k] * g[k];
        CHECK(std::abs(y - expected) < 1e-12);
      }
    }
  }
  CHECK_THROWS_AS(cpu::WinogradMatrices(4, 7), invalid_argument);  // alpha = 10: more points than the list has
  CHECK_THROWS_AS(cpu::WinogradMatrices(0, 3), invalid_argument);
  // The tile that multiplies less over the whole map (tiles cut by the edges count whole), the smaller on a tie.
  constexpr Layout L = Layout::channels_last;
  CHECK(cpu::winograd_tile(ConvGeometry{3, 5, 9, 8, 3, 1, 1, L}) == 4);     // 6 x 36 against 4 x 64
  CHECK(cpu::winograd_tile(ConvGeometry{3, 5, 12, 13, 3, 1, 1, L}) == 6);   // 12 x 36 against 6 x 64
  CHECK(cpu::winograd_tile(ConvGeometry{3, 5, 32, 32, 3, 1, 1, L}) == 4);   // 64 x 36 against 36 x 64: a tie
  CHECK(cpu::winograd_tile(ConvGeometry{3, 5, 32, 32, 5, 1, 2, L}) == 4);   // 256 x 36 against 64 x 64
  CHECK(cpu::winograd_tile(ConvGeometry{3, 5, 6, 6, 5, 1, 0, L}) == 2);     // 2 x 2 outputs: 1 x 36 against 1 x 64
}

// Stride-1 3x3 and 5x5 float convolutions run on Winograd's F(4x4, 3x3) and F(2x2, 5x5) when chosen: tiles cut by
// the edges, channel counts off the 8-wide vectors, no padding, the full padding (kernel - 1), several blocks of
// tiles, both layouts; held to the double result of the Eigen path (forward, input, filter and bias gradients).
TEST_CASE("Winograd: float convolutions agree with double; other geometries run direct", "[conv][winograd]") {
  constexpr Layout L = Layout::channels_last, F = Layout::channels_first;
  if (!simd_kernels_available()) {
    CHECK_FALSE(cpu::winograd_applies(ConvGeometry{3, 5, 9, 8, 3, 1, 1, L}));
    return;
  }
  AlgorithmSwitch use(ConvAlgorithm::winograd);
  CHECK(cpu::ConvKernel<float>(ConvGeometry{3, 5, 9, 8, 3, 1, 1, L}).winograd());
  CHECK(cpu::ConvKernel<float>(ConvGeometry{3, 5, 9, 8, 5, 1, 4, F}).winograd());
  CHECK_FALSE(cpu::ConvKernel<float>(ConvGeometry{3, 5, 9, 8, 3, 2, 1, L}).winograd());  // stride 2
  CHECK_FALSE(cpu::ConvKernel<float>(ConvGeometry{3, 5, 9, 8, 7, 1, 3, L}).winograd());  // 7x7
  CHECK_FALSE(cpu::ConvKernel<float>(ConvGeometry{3, 5, 9, 8, 3, 1, 3, L}).winograd());  // padding 3 > 2
  CHECK_FALSE(cpu::ConvKernel<double>(ConvGeometry{3, 5, 9, 8, 3, 1, 1, L}).winograd());
  CHECK_THROWS_AS(cpu::WinogradConv(ConvGeometry{3, 5, 9, 8, 3, 2, 1, L}), invalid_argument);
  {
    SimdSwitch portable(false);  // the portable path has no Winograd form
    CHECK_FALSE(cpu::ConvKernel<float>(ConvGeometry{3, 5, 9, 8, 3, 1, 1, L}).winograd());
  }
  Rng rng(test::seed(691, "winograd conv"));
  // Each of the four tiles (winograd_tile), the last tiles of a map cut by its edges; F(6x6, 3x3) and F(4x4, 5x5)
  // reach the points +-1/2 and +-2, so their errors are the larger ones.
  CHECK(float_vs_double<Image<Features<3>, 9, 8, L>, Features<5>, k3>(5, rng) < 2e-5);                      // F(4, 3)
  CHECK(float_vs_double<Image<Features<13>, 11, 10, L>, Features<9>, ConvSpec{3, 1, 0}>(3, rng) < 2e-5);    // F(4, 3)
  CHECK(float_vs_double<Image<Features<10>, 12, 13, L>, Features<9>, k3>(3, rng) < 2e-5);                   // F(6, 3)
  CHECK(float_vs_double<Image<Features<20>, 7, 6, L>, Features<37>, same_padding(5)>(4, rng) < 2e-5);       // F(4, 5)
  CHECK(float_vs_double<Image<Features<6>, 8, 9, L>, Features<10>, ConvSpec{5, 1, 4}>(3, rng) < 2e-5);      // F(4, 5)
  CHECK(float_vs_double<Image<Features<4>, 6, 6, L>, Features<3>, ConvSpec{5, 1, 0}>(2, rng) < 2e-5);       // F(2, 5)
  CHECK(float_vs_double<Image<Features<4>, 5, 5, L>, Features<3>, ConvSpec{5, 1, 0}>(2, rng) < 2e-5);       // 1 pixel
  if (!test::sanitized)  // several blocks of tiles, hence several slots of the filter gradient
    CHECK(float_vs_double<Image<Features<64>, 16, 16, L>, Features<64>, same_padding(5)>(5, rng) < 2e-5);
  CHECK(float_vs_double<Image<Features<20>, 7, 6, F>, Features<37>, same_padding(5)>(4, rng) < 2e-5);
  CHECK(float_vs_double<Image<Features<12>, 10, 10, F>, Features<27>, k3>(3, rng) < 2e-5);
  // Geometries without a Winograd form run direct under the same choice: the same bits as with ConvAlgorithm::direct.
  using In = Image<Features<5>, 7, 6, L>;
  Conv2d<float, In, Features<7>, k3s2> strided(rng);
  const Tensor<float, 2> xs = random_batch<float, In>(3, rng);
  const Tensor<float, 2> ys = strided.forward(xs);
  {
    AlgorithmSwitch direct(ConvAlgorithm::direct);
    CHECK(strided.forward(xs) == ys);
  }
  // The transformed filters are reused while the weights stay the same and follow them when they change.
  check_filters_follow_weights(rng, [] { return AlgorithmSwitch(ConvAlgorithm::direct); });
}

TEST_CASE("Winograd: ACE_CONV_ALGORITHM chooses the algorithm at start-up", "[conv][winograd]") {
  const char* before = std::getenv("ACE_CONV_ALGORITHM");
  const std::string saved = before != nullptr ? before : "";
  ::setenv("ACE_CONV_ALGORITHM", "winograd", 1);
  CHECK(ace::detail::initial_conv_algorithm() == ConvAlgorithm::winograd);
  ::setenv("ACE_CONV_ALGORITHM", "direct", 1);
  CHECK(ace::detail::initial_conv_algorithm() == ConvAlgorithm::direct);
  ::setenv("ACE_CONV_ALGORITHM", "fft", 1);
  CHECK_THROWS_AS(ace::detail::initial_conv_algorithm(), invalid_argument);
  ::unsetenv("ACE_CONV_ALGORITHM");
  CHECK(ace::detail::initial_conv_algorithm() == ConvAlgorithm::direct);
  if (before != nullptr) ::setenv("ACE_CONV_ALGORITHM", saved.c_str(), 1);
  CHECK(conv_algorithm_name(ConvAlgorithm::winograd) == "winograd");
}

TEST_CASE("convolutions: results do not depend on the number of threads", "[conv]") {
#if defined(_OPENMP)
  Rng rng(test::seed(670, "conv threads"));
  using In = Image<Multiple<Regular<C4>, 2>, 12, 12, Layout::channels_last>;
  GroupConv2d<float, In, Multiple<Regular<C4>, 4>, same_padding(5)> m(rng);
  const Tensor<float, 2> x = random_batch<float, In>(37, rng), dy = random_batch<float, decltype(m)::output>(37, rng);
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    zero_grad(m);
    Tensor<float, 2> y = m.forward(x);
    Tensor<float, 2> dx = m.backward(dy);
    std::vector<float> grads;
    m.for_each_parameter([&](ParamView<float> p) {
      const auto g = to_host_vector<Cpu>(p.grad);
      grads.insert(grads.end(), g.begin(), g.end());
    });
    return std::tuple{y, dx, grads};
  };
  const int before = omp_get_max_threads();
  for (const ConvAlgorithm a : {ConvAlgorithm::direct, ConvAlgorithm::winograd}) {
    AlgorithmSwitch use(a);
    INFO(conv_algorithm_name(a));
    const auto one = run(1), two = run(2), three = run(3);
    CHECK(one == two);
    CHECK(one == three);
  }
  omp_set_num_threads(before);
#else
  SUCCEED("built without OpenMP");
#endif
}

TEST_CASE("a P4 CNN: lifting, batch norm, ReLU, pooling, group convolution, invariant logits", "[conv][model]") {
  Rng rng(test::seed(680, "p4 cnn"));
  constexpr Layout L = Layout::channels_last;
  using X = Image<Multiple<Trivial<C4>, 1>, 8, 8, L>;
  using L1 = LiftingConv2d<double, X, 3, k3>;
  using H1 = L1::output;
  using P1 = MaxPool2d<double, H1, 2>;
  using L2 = GroupConv2d<double, P1::output, Multiple<Regular<C4>, 4>, k3>;
  using Net = Sequential<L1, FieldBatchNorm<double, H1>, Pointwise<ReLUOp, double, H1>, P1, L2,
                         GroupMaxPool<double, L2::output>,
                         GlobalAvgPool<double, GroupMaxPool<double, L2::output>::output>,
                         EquivariantLinear<double, Multiple<Trivial<C4>, 4>, Multiple<Trivial<C4>, 10>>>;
  Net net(rng);
  STATIC_REQUIRE(PermutationRepresentation<Net::input>);
  const Tensor<double, 2> x = random_batch<double, X>(4, rng);
  test::check_module_equivariance(net, x, 681);
  int buffers = 0;
  net.for_each_buffer([&](BufferView b) {
    CHECK(b.name.rfind("1.running_", 0) == 0);
    ++buffers;
  });
  CHECK(buffers == 2);
  set_training(net, false);
  CHECK_FALSE(net.get<1>().training());
  test::check_module_equivariance(net, x, 682);
}

namespace {
// Relative error of f(R x) against R f(x) (with the group axis shifted by `shift`) for a 45-degree rotation R by
// bilinear interpolation, over the pixels within `radius` of the centre, on smooth images (Gaussian blobs).
template <class M>
double rotation_error_45(M& m, std::size_t shift, double radius, Rng& rng) {
  using In = typename M::input;
  using Out = typename M::output;
  constexpr std::size_t n = In::rows, order = Out::channels / M::filters;
  Tensor<float, 2> x({4, In::dim}), xr({4, In::dim});
  std::fill(x.begin(), x.end(), 0.0f);
  for (std::size_t b = 0; b < 4; ++b) {
    for (int blob = 0; blob < 3; ++blob) {
      const double cy = rng.uniform(6, n - 7.0), cx = rng.uniform(6, n - 7.0), a = rng.normal();
      for (std::size_t p = 0; p < n * n; ++p) {
        const double dy = static_cast<double>(p / n) - cy, dx = static_cast<double>(p % n) - cx;
        x(b, p) += static_cast<float>(a * std::exp(-(dx * dx + dy * dy) / 8.0));
      }
    }
    rotate_bilinear(&x(b, 0), &xr(b, 0), n, n, std::numbers::pi / 4);
  }
  const Tensor<float, 2> y = m.forward(x);
  const Tensor<float, 2>& yr = m.forward(xr);
  std::vector<float> moved(n * n);
  double num = 0.0, den = 0.0;
  for (std::size_t b = 0; b < 4; ++b)
    for (std::size_t c = 0; c < Out::channels; ++c) {
      rotate_bilinear(&y(b, c * n * n), moved.data(), n, n, std::numbers::pi / 4);
      const std::size_t target = (c / order) * order + (c % order + shift) % order;
      for (std::size_t p = 0; p < n * n; ++p) {
        const double dy = static_cast<double>(p / n) - 0.5 * (n - 1), dx = static_cast<double>(p % n) - 0.5 * (n - 1);
        if (dx * dx + dy * dy > radius * radius) continue;
        const double d = static_cast<double>(yr(b, target * n * n + p)) - static_cast<double>(moved[p]);
        num += d * d;
        den += static_cast<double>(moved[p]) * moved[p];
      }
    }
  return std::sqrt(num / den);
}
}  // namespace

// Smooth filters (a Gaussian envelope times a random linear ramp), like trained ones, instead of white noise.
template <class M>
void smooth_filters(M& m, Rng& rng) {
  const std::size_t k = M::spec.kernel;
  const double c = 0.5 * static_cast<double>(k - 1);
  for (std::size_t f = 0; f < m.weight().shape()[0]; ++f) {
    const double a = rng.normal(), bx = rng.normal(), by = rng.normal();
    for (std::size_t t = 0; t < k * k; ++t) {
      const double x = static_cast<double>(t % k) - c, y = c - static_cast<double>(t / k);
      const double envelope = std::exp(-(x * x + y * y) / 4);
      m.weight()(f, t / k, t % k, 0) = static_cast<float>((a + 0.5 * (bx * x + by * y)) * envelope);
    }
  }
}

TEST_CASE("group convolutions: C8's 45-degree rotations are approximate, closer than C4's", "[conv][equivariance]") {
  Rng rng(test::seed(690, "C8 45 degrees"));
  using In8 = Image<Multiple<Trivial<Cyclic<8>>, 1>, 29, 29>;
  using In4 = Image<Multiple<Trivial<C4>, 1>, 29, 29>;
  LiftingConv2d<float, In8, 4, same_padding(5)> c8(rng);
  LiftingConv2d<float, In4, 8, same_padding(5)> c4(rng);  // same channel count, only 90-degree symmetry
  const double white8 = rotation_error_45(c8, 1, 9.0, rng);
  const double white4 = rotation_error_45(c4, 0, 9.0, rng);  // no group shift can match a 45-degree turn
  smooth_filters(c8, rng);
  smooth_filters(c4, rng);
  const double smooth8 = rotation_error_45(c8, 1, 9.0, rng);
  const double smooth4 = rotation_error_45(c4, 0, 9.0, rng);
  WARN("relative equivariance error at 45 degrees, white-noise filters: C8 " << white8 << ", C4 " << white4
                                                                             << "; smooth filters: C8 " << smooth8
                                                                             << ", C4 " << smooth4);
  CHECK(white8 < white4);
  CHECK(smooth8 < 0.1);
  CHECK(smooth4 > 3 * smooth8);
}
#endif  // !ACE_TEST_DEVICE_BUILD
