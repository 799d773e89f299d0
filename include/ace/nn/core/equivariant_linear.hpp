// SPDX-License-Identifier: MIT
// EquivariantLinear<In, Out>: a linear layer constrained to Hom_G(In, Out), trained through basis coefficients.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

#include "ace/nn/core/linear.hpp"
#include "ace/nn/core/sparse_map.hpp"
#include "ace/nn/module.hpp"
#include "ace/random.hpp"
#include "ace/rep/basic.hpp"
#include "ace/rep/basis.hpp"

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
/// invariant component). W is built from c once per forward by the basis as a sparse map (in the backend), the
/// product is a Dense layer's, and backward projects dL/dW = dy^T x onto the coefficients with the map's adjoint
/// (dL/dc_k = <B_k, dL/dW>).
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
  using tensor = tensor_t<B, T, 2>;

  explicit EquivariantLinear(Rng& rng, EquivariantLinearOptions options = {})
      : basis_(&equivariant_basis<In, Out>()), bias_basis_(&equivariant_basis<Trivial<group>, Out>()),
        coeffs_({basis_->size()}), bias_coeffs_({options.bias ? bias_basis_->size() : 0}),
        affine_(In::dim, Out::dim, options.bias && bias_basis_->size() > 0) {
    ACE_THROW_IF(!(options.gain > 0.0), invalid_argument, "EquivariantLinearOptions::gain must be > 0, got ",
                 options.gain);
    ACE_THROW_IF(basis_->size() == 0, invalid_argument, "EquivariantLinear<", rep_name<In>(), ", ", rep_name<Out>(),
                 ">: there is no non-zero equivariant map between these representations (hom_dim = 0)");
    const auto w = basis_->sparse_map();
    weight_map_ = SparseLinearMap<T, B>(w.first, w.index, w.weight, basis_->size());
    if (has_bias()) {
      const auto b = bias_basis_->sparse_map();
      bias_map_ = SparseLinearMap<T, B>(b.first, b.index, b.weight, bias_basis_->size());
    }
    const double energy = basis_->entry_energy().rowwise().sum().mean();
    const double sd = std::sqrt(options.gain / energy);
    std::vector<T> c(basis_->size());
    for (auto& v : c) v = static_cast<T>(sd * rng.normal());
    coeffs_.assign(c);
    materialise();
  }

  const tensor& forward(const tensor& x) {
    require_columns(x, In::dim, "EquivariantLinear::forward");
    materialise();
    return affine_.forward(x);
  }

  const tensor& backward(const tensor& dy) {
    // dL/dW = dy^T x and dL/db = Σ_batch dy (this step's only), dx = dy W; then onto the coefficients.
    B::fill(view(affine_.weight_grad()), T(0));
    B::fill(view(affine_.bias_grad()), T(0));
    const tensor& dx = affine_.backward(dy);
    weight_map_.adjoint(row_view(std::as_const(affine_.weight_grad())), row_view(coeffs_.grad));
    if (has_bias()) bias_map_.adjoint(row_view(std::as_const(affine_.bias_grad())), row_view(bias_coeffs_.grad));
    return dx;
  }

  template <class F>
  void for_each_parameter(F&& f) {
    f(coeffs_.view("weight", Role::weight));
    if (has_bias()) f(bias_coeffs_.view("bias", Role::bias));
  }

  /// The dense weight W (Out::dim x In::dim) for the current coefficients.
  const tensor& weight() {
    materialise();
    return affine_.weight();
  }
  /// The bias vector b (1 x Out::dim) for the current coefficients (zero when there is no bias).
  const tensor& bias() {
    materialise();
    return affine_.bias();
  }
  tensor_t<B, T, 1>& coefficients() { return coeffs_.value; }
  const EquivariantBasis& basis() const { return *basis_; }

 private:
  bool has_bias() const { return bias_coeffs_.value.size() > 0; }

  /// W and b from the coefficients (O(non-zeros of the basis), negligible next to the GEMMs).
  void materialise() {
    weight_map_.apply(row_view(std::as_const(coeffs_.value)), row_view(affine_.weight()));
    if (has_bias()) bias_map_.apply(row_view(std::as_const(bias_coeffs_.value)), row_view(affine_.bias()));
  }

  const EquivariantBasis* basis_;
  const EquivariantBasis* bias_basis_;
  detail::Parameter<B, T, 1> coeffs_, bias_coeffs_;
  SparseLinearMap<T, B> weight_map_, bias_map_;
  Dense<T, B> affine_;
};

}  // namespace ace
