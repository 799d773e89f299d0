// SPDX-License-Identifier: MIT
// The gated nonlinearity of O(3)-steerable features (the swish gate of SEGNN, docs/steerable.md).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ace/error.hpp"
#include "ace/nn/module.hpp"
#include "ace/nn/steerable/tensor_product.hpp"
#include "ace/rep/o3.hpp"

namespace ace {

/// The swish gate onto Out = "S x 0e + gated terms": its input is o3_gate_input_t<Out> = [S scalars | one gate per
/// gated copy | the gated terms]; the scalars go through c_silu SiLU, and every component of gated copy w is
/// multiplied by c_sigmoid sigmoid(gate w) (SwishGateConstants: activations of unit second moment). Equivariant: the
/// gates are invariant. An Out of scalars only is c_silu SiLU. A Module (input o3_gate_input_t<Out>, output Out), no
/// parameters.
template <class Out, class T, Backend B = Cpu>
class O3Gate {
 public:
  using scalar = T;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;
  using input = o3_gate_input_t<Out>;
  using output = Out;
  static constexpr std::size_t scalars = Out::term_list[0].count;

  O3Gate() {
    std::vector<std::uint32_t> blocks;
    for (std::size_t t = 1; t < Out::terms; ++t)
      blocks.insert(blocks.end(), {static_cast<std::uint32_t>(Out::term_list[t].count),
                                   static_cast<std::uint32_t>(2 * Out::term_list[t].l + 1)});
    gated_ = make_storage<tensor_t<B, std::uint32_t, 2>>(std::array<std::size_t, 2>{blocks.size() / 2, 2});
    if (!blocks.empty()) B::from_host(std::span<const std::uint32_t>(blocks), view(gated_));
  }

  const tensor& forward(const tensor& x) { return forward(view(x)); }
  const tensor& forward(MatrixRef<const T> x) {
    ACE_THROW_IF(x.cols != input::dim, shape_error, "O3Gate::forward: expected input of shape [batch, ", input::dim,
                 "] (", input::name(), "), got [", x.rows, ", ", x.cols, "]");
    x_ = x;
    ensure_shape(y_, x.rows, Out::dim);
    B::swish_gate(x, scalars, view(std::as_const(gated_)), view(y_));
    return y_;
  }
  const tensor& backward(const tensor& dy) {
    ensure_shape(dx_, x_.rows, input::dim);
    backward_into(view(dy), view(dx_));
    return dx_;
  }
  /// dx overwritten in a view of the caller's.
  void backward_into(MatrixRef<const T> dy, MatrixRef<T> dx) {
    ACE_THROW_IF(x_.data == nullptr && x_.rows != 0, invalid_argument, "O3Gate::backward called before forward");
    ACE_THROW_IF(dy.rows != x_.rows || dy.cols != Out::dim, shape_error, "O3Gate::backward: expected a gradient of "
                 "shape [", x_.rows, ", ", Out::dim, "], got [", dy.rows, ", ", dy.cols, "]");
    B::swish_gate_backward(x_, scalars, view(std::as_const(gated_)), dy, dx);
  }
  template <class F>
  void for_each_parameter(F&&) {}

 private:
  tensor_t<B, std::uint32_t, 2> gated_;
  MatrixRef<const T> x_;
  tensor y_, dx_;
};

/// A tensor product followed by the swish gate (SEGNN's O3TensorProductSwishGate): onto Out through
/// O3TensorProduct<In1, In2, o3_gate_input_t<Out>> and O3Gate<Out>.
template <class In1, class In2, class Out, class T, Backend B = Cpu>
class O3GatedTensorProduct {
 public:
  using scalar = T;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;
  using input = In1;
  using attributes = In2;
  using output = Out;
  using product = O3TensorProduct<In1, In2, o3_gate_input_t<Out>, T, B>;

  O3GatedTensorProduct() = default;
  explicit O3GatedTensorProduct(Rng& rng) : tp_(rng) {}

  const tensor& forward(const tensor& x1, const tensor& x2) { return forward(view(x1), view(x2)); }
  const tensor& forward(MatrixRef<const T> x1, MatrixRef<const T> x2) {
    return gate_.forward(view(tp_.forward(x1, x2)));
  }
  const tensor& backward(const tensor& dy, bool attribute_gradient = false) {
    return tp_.backward(gate_.backward(dy), attribute_gradient);
  }
  void backward_into(MatrixRef<const T> dy, MatrixRef<T> dx1, MatrixRef<T> dx2) {
    ensure_shape(dg_, dy.rows, product::output::dim);
    gate_.backward_into(dy, view(dg_));
    tp_.backward_into(view(std::as_const(dg_)), dx1, dx2);
  }
  const tensor& attribute_gradient() const { return tp_.attribute_gradient(); }
  product& tensor_product() { return tp_; }

  template <class F>
  void for_each_parameter(F&& f) {
    tp_.for_each_parameter(f);
  }
  static std::string signature() { return product::signature() + " + swish gate"; }

 private:
  product tp_;
  O3Gate<Out, T, B> gate_;
  tensor dg_;
};

}  // namespace ace
