// SPDX-License-Identifier: MIT
// EquivariantLinear<In, Out>: a linear layer constrained to Hom_G(In, Out), trained through basis coefficients.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <cstddef>

#include "ace/nn/module.hpp"
#include "ace/random.hpp"
#include "ace/rep/basic.hpp"
#include "ace/rep/basis.hpp"
#include "ace/tensor/cpu.hpp"

namespace ace {

struct EquivariantLinearOptions {
  bool bias = true;
  /// Variance-preserving initialisation: each output unit receives gain * Var(x) in expectation, as He (gain 2,
  /// before ReLU) or LeCun (gain 1) initialisation do for dense layers (see the class comment).
  double gain = 1.0;
};

/// y = x W^T + b with W = Σ_k c_k B_k in Hom_G(In, Out) (the basis of equivariant_basis<In, Out>) and
/// b = Σ_l β_l b_l in the invariant subspace of Out (Hom_G(Trivial, Out)), so y(ρ_in(g) x) = ρ_out(g) y(x) exactly.
/// The trainable parameters are the coefficients c ("weight", role weight) and β ("bias"; absent when Out has no
/// invariant component). W is materialised from c once per forward; backward forms dL/dW = dy^T x and projects it
/// onto the coefficients with the basis adjoint (dL/dc_k = <B_k, dL/dW>).
/// Initialisation: c_k ~ N(0, σ²) with σ² = gain / mean_i Σ_j E(i, j), E = basis.entry_energy(); for exact orbit
/// bases E = 1 on every entry and this is N(0, gain / In::dim), He's rule.
template <class T, Representation In, Representation Out, Backend B = Cpu>
class EquivariantLinear {
  static_assert(same_group_v<In, Out>, "ace: EquivariantLinear<In, Out> needs In and Out to represent the same "
                                       "group; use Linear for a map between unrelated spaces.");

 public:
  using scalar = T;
  using input = In;
  using output = Out;
  using backend = B;
  using group = typename In::group;

  explicit EquivariantLinear(Rng& rng, EquivariantLinearOptions options = {})
      : basis_(equivariant_basis<In, Out>()), bias_basis_(equivariant_basis<Trivial<group>, Out>()),
        coeffs_(vector_shape(basis_.size())), coeffs_grad_(vector_shape(basis_.size())),
        bias_coeffs_(vector_shape(options.bias ? bias_basis_.size() : 0)),
        bias_coeffs_grad_(vector_shape(options.bias ? bias_basis_.size() : 0)), weight_({Out::dim, In::dim}),
        weight_grad_({Out::dim, In::dim}), bias_({1, Out::dim}), bias_grad_({1, Out::dim}) {
    ACE_THROW_IF(!(options.gain > 0.0), invalid_argument, "EquivariantLinearOptions::gain must be > 0, got ",
                 options.gain);
    ACE_THROW_IF(basis_.size() == 0, invalid_argument, "EquivariantLinear<", rep_name<In>(), ", ", rep_name<Out>(),
                 ">: there is no non-zero equivariant map between these representations (hom_dim = 0)");
    const double energy = basis_.entry_energy().rowwise().sum().mean();
    const double sd = std::sqrt(options.gain / energy);
    for (auto& c : coeffs_) c = static_cast<T>(sd * rng.normal());
    B::fill(bias_coeffs_, T(0));
    zero_grad(*this);
    materialise();
  }

  const Tensor<T, 2>& forward(const Tensor<T, 2>& x) {
    require_columns(x, In::dim, "EquivariantLinear::forward");
    materialise();
    x_ = &x;
    detail::affine_forward<B>(x, weight_, bias_coeffs_.size() > 0 ? &bias_ : nullptr, y_);
    return y_;
  }

  const Tensor<T, 2>& backward(const Tensor<T, 2>& dy) {
    // dL/dW = dy^T x and dL/db = Σ_batch dy (this step's only), dx = dy W; then onto the coefficients.
    const bool bias = bias_coeffs_.size() > 0;
    detail::affine_backward<B>(x_.get(), weight_, dy, T(0), weight_grad_, bias ? &bias_grad_ : nullptr, dx_,
                               "EquivariantLinear::backward");
    accumulate_adjoint(basis_, as_matrix(weight_grad_), coeffs_grad_, coeff_scratch_);
    if (bias) accumulate_adjoint(bias_basis_, as_matrix(bias_grad_).transpose(), bias_coeffs_grad_, bias_scratch_);
    return dx_;
  }

  template <class F>
  void for_each_parameter(F&& f) {
    f(detail::param_view("weight", coeffs_, coeffs_grad_, Role::weight));
    if (bias_coeffs_.size() > 0)
      f(detail::param_view("bias", bias_coeffs_, bias_coeffs_grad_, Role::bias));
  }

  /// The dense weight W (Out::dim x In::dim) for the current coefficients.
  const Tensor<T, 2>& weight() {
    materialise();
    return weight_;
  }
  /// The bias vector b (1 x Out::dim) for the current coefficients (zero when there is no bias).
  const Tensor<T, 2>& bias() {
    materialise();
    return bias_;
  }
  Tensor<T, 1>& coefficients() { return coeffs_; }
  const EquivariantBasis& basis() const { return basis_; }

 private:
  using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;
  // A rank-1 shape; `Tensor<T, 1>({n})` would be the one-element tensor holding n.
  static typename Tensor<T, 1>::shape_type vector_shape(std::size_t n) { return {n}; }

  /// W and b from the coefficients (O(rows cols), negligible next to the GEMMs).
  void materialise() {
    basis_.expand(Eigen::Map<const Vector>(coeffs_.data(), static_cast<Eigen::Index>(coeffs_.size())),
                  as_matrix(weight_));
    if (bias_coeffs_.size() > 0) {
      auto b = as_matrix(bias_);
      bias_basis_.expand(Eigen::Map<const Vector>(bias_coeffs_.data(), static_cast<Eigen::Index>(bias_coeffs_.size())),
                         b.transpose());
    } else {
      B::fill(bias_, T(0));
    }
  }

  /// out += adjoint(g), through a scratch vector sized once.
  template <class Derived>
  static void accumulate_adjoint(const EquivariantBasis& basis, const Eigen::MatrixBase<Derived>& g,
                                 Tensor<T, 1>& out, Vector& scratch) {
    Eigen::Map<Vector> acc(out.data(), static_cast<Eigen::Index>(out.size()));
    scratch.resize(acc.size());
    basis.adjoint(g, scratch);
    acc += scratch;
  }

  const EquivariantBasis& basis_;
  const EquivariantBasis& bias_basis_;
  Tensor<T, 1> coeffs_, coeffs_grad_, bias_coeffs_, bias_coeffs_grad_;
  Tensor<T, 2> weight_, weight_grad_, bias_, bias_grad_;
  detail::ForwardRef<T> x_;
  Tensor<T, 2> y_, dx_;
  Vector coeff_scratch_, bias_scratch_;
};

}  // namespace ace
