// SPDX-License-Identifier: MIT
// The weighted tensor product of O(3)-steerable features with steerable attributes (SEGNN's O3TensorProduct,
// docs/steerable.md): every path allowed by the triangle and parity rules, one learnable weight per path and copy
// pair, a bias on the scalar outputs; forward and backward by hand over the Backend concept.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ace/backend/o3_ops.hpp"
#include "ace/error.hpp"
#include "ace/nn/module.hpp"
#include "ace/random.hpp"
#include "ace/rep/o3.hpp"

namespace ace {

namespace detail {
template <class>
inline constexpr bool is_o3_irreps = false;
template <class... M>
inline constexpr bool is_o3_irreps<O3Irreps<M...>> = true;

/// Whether every term of Out is reached by at least one path from In1 x In2.
template <class In1, class In2, class Out>
constexpr bool o3_outputs_reached() {
  for (const O3Term& c : Out::term_list) {
    bool reached = false;
    for (const O3Term& a : In1::term_list)
      for (const O3Term& b : In2::term_list) reached = reached || o3_couples(a, b, c);
    if (!reached) return false;
  }
  return true;
}

/// The first column of each term of an irreps sum.
template <class S>
constexpr std::array<std::size_t, S::terms> o3_offsets() {
  std::array<std::size_t, S::terms> at{};
  std::size_t next = 0;
  for (std::size_t t = 0; t < S::terms; ++t) {
    at[t] = next;
    next += S::term_list[t].dim();
  }
  return at;
}

/// The number of scalar (0e) output entries of an irreps sum: where biases go.
template <class S>
constexpr std::size_t o3_scalar_entries() {
  std::size_t n = 0;
  for (const O3Term& t : S::term_list)
    if (t.l == 0 && t.parity == Parity::even) n += t.count;
  return n;
}
}  // namespace detail

/// One output term of a tensor product plan.
struct O3ProductBlock {
  O3Term term;
  std::size_t column = 0;  // its first column of y
  std::size_t k = 0;       // K: the products it sums per component
  std::size_t zoff = 0;    // its first column of z
  std::size_t weight = 0;  // its first weight
};

/// What a fully connected tensor product in1 x in2 -> out computes, as backend tensor_product_contract reads it: the
/// path table (TensorProductColumns, one row per allowed path, grouped by output term), the Clebsch-Gordan entries and
/// values, z's width, and the output terms (where their weights and z columns start).
struct O3ProductPlan {
  std::vector<std::uint32_t> paths, entries;
  std::vector<double> values;
  std::size_t z_cols = 0, weights = 0;
  std::vector<O3ProductBlock> blocks;
};

template <class Lazy = void>  // a template, so only the units that call it instantiate clebsch_gordan (rep/o3.hpp)
O3ProductPlan o3_product_plan(std::span<const O3Term> in1, std::span<const O3Term> in2, std::span<const O3Term> out) {
  const auto offsets = [](std::span<const O3Term> terms) {
    std::vector<std::size_t> at;
    std::size_t next = 0;
    for (const O3Term& t : terms) {
      at.push_back(next);
      next += t.dim();
    }
    return at;
  };
  const std::vector<std::size_t> off1 = offsets(in1), off2 = offsets(in2), offo = offsets(out);
  const auto d = [](const O3Term& t) { return static_cast<std::uint32_t>(2 * t.l + 1); };
  const auto u32 = [](std::size_t v) { return static_cast<std::uint32_t>(v); };
  O3ProductPlan plan;
  for (std::size_t c = 0; c < out.size(); ++c) {
    O3ProductBlock o{out[c], offo[c], 0, plan.z_cols, plan.weights};
    const std::size_t first_path = plan.paths.size();
    for (std::size_t a = 0; a < in1.size(); ++a)
      for (std::size_t b = 0; b < in2.size(); ++b) {
        if (!o3_couples(in1[a], in2[b], o.term)) continue;
        const std::size_t first = plan.entries.size();
        const std::vector<double>& cg = clebsch_gordan(in1[a].l, in2[b].l, o.term.l);
        for (std::uint32_t i = 0; i < d(in1[a]); ++i)
          for (std::uint32_t j = 0; j < d(in2[b]); ++j)
            for (std::uint32_t k = 0; k < d(o.term); ++k)
              if (const double v = cg[(i * d(in2[b]) + j) * d(o.term) + k]; v != 0.0) {
                plan.entries.push_back(TensorProductColumns::pack(i, j, k));
                plan.values.push_back(v);
              }
        plan.paths.insert(plan.paths.end(), {u32(off1[a]), u32(in1[a].count), d(in1[a]), u32(off2[b]),
                                             u32(in2[b].count), d(in2[b]), u32(o.zoff), 0u, u32(o.k), d(o.term),
                                             u32(first), u32(plan.entries.size())});
        o.k += in1[a].count * in2[b].count;
      }
    for (std::size_t r = first_path; r < plan.paths.size(); r += TensorProductColumns::count)
      plan.paths[r + TensorProductColumns::zstride] = u32(o.k);  // known once every path of the term is in
    plan.z_cols += o.k * d(o.term);
    plan.weights += o.k * o.term.count;
    plan.blocks.push_back(o);
  }
  return plan;
}

/// y = Σ over paths (a, b -> c) of W_p (x1_a ⊗ x2_b)|_c + bias, for x1 [rows, In1::dim] (features), x2 [rows,
/// In2::dim] (attributes, e.g. spherical harmonics of edge vectors) and y [rows, Out::dim], in the layout of
/// backend/o3_ops.hpp. Every triple of terms (a of In1, b of In2, c of Out) allowed by the triangle and parity rules is a
/// path, with weights W_p [m_a m_b, m_c] coupling the copies through the Clebsch-Gordan coefficients C(l_a, l_b -> l_c)
/// (rep/o3.hpp, normalised so that each path is an isometry). Output term c sums K_c = Σ_{p -> c} m_a m_b products: its
/// weights and, for a 0e term, its bias start U(-1/√K_c, 1/√K_c) (PyTorch's nn.Linear for the fan-in K_c), as SEGNN
/// initialises its tensor products. Equivariant: y(D1 x1, D2 x2) = D_out y(x1, x2) for every orthogonal R.
///
/// Compute: the contraction z (backend tensor_product_contract, a few products per entry) and, for each term c and
/// component k, one GEMM z_ck [rows, K_c] · W_c [K_c, m_c]; backward mirrors it. Parameters: "weight" (every W_c in
/// one row, terms in order, each row-major [K_c, m_c]) and "bias" (the 0e terms' biases in order; absent without 0e
/// outputs).
template <class In1, class In2, class Out, class T, Backend B = Cpu>
class O3TensorProduct {
  static_assert(detail::is_o3_irreps<In1> && detail::is_o3_irreps<In2> && detail::is_o3_irreps<Out>,
                "ace: O3TensorProduct<In1, In2, Out, T, B> takes three O3Irreps types.");
  static_assert(detail::o3_outputs_reached<In1, In2, Out>(),
                "ace: O3TensorProduct: a term of Out is reached by no path from In1 x In2: the triangle rule "
                "|l1 - l2| <= l3 <= l1 + l2 or the parity rule p1 p2 = p3 forbids every pair; remove the term or add "
                "input irreps that reach it.");

 public:
  using scalar = T;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;
  using input = In1;
  using attributes = In2;
  using output = Out;
  /// The number of weights (biases aside).
  static constexpr std::size_t weights = o3_tensor_product_weights<In1, In2, Out>;
  static constexpr std::size_t biases = detail::o3_scalar_entries<Out>();

  O3TensorProduct() = default;
  explicit O3TensorProduct(Rng& rng) : weight_({1, weights}), bias_({1, biases}) {
    build_paths();
    std::vector<T> w(weights), b(biases);
    std::size_t bias_at = 0;
    for (const Block& o : blocks_) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(o.k));
      for (std::size_t i = 0; i < o.k * o.term.count; ++i) w[o.weight + i] = static_cast<T>(rng.uniform(-bound, bound));
      if (o.term.l == 0 && o.term.parity == Parity::even)
        for (std::size_t i = 0; i < o.term.count; ++i) b[bias_at++] = static_cast<T>(rng.uniform(-bound, bound));
    }
    weight_.assign(w);
    if (biases > 0) bias_.assign(b);
  }

  const tensor& forward(const tensor& x1, const tensor& x2) { return forward(view(x1), view(x2)); }
  /// y for views x1 [rows, In1::dim] and x2 [rows, In2::dim] (kept for backward: their memory must stay alive).
  const tensor& forward(MatrixRef<const T> x1, MatrixRef<const T> x2) {
    ACE_THROW_IF(x1.cols != In1::dim || x2.cols != In2::dim || x1.rows != x2.rows, shape_error,
                 "O3TensorProduct::forward: expected x1 [rows, ", In1::dim, "] (", In1::name(), ") and x2 [rows, ",
                 In2::dim, "] (", In2::name(), "), got [", x1.rows, ", ", x1.cols, "] and [", x2.rows, ", ", x2.cols,
                 "]");
    x1_ = x1;
    x2_ = x2;
    forwarded_ = true;
    ensure_shape(z_, x1.rows, z_cols_);
    ensure_shape(y_, x1.rows, Out::dim);
    B::tensor_product_contract(view(std::as_const(paths_)), view(std::as_const(entries_)),
                               view(std::as_const(values_)), x1, x2, view(z_));
    std::size_t bias_at = 0;
    for (const Block& o : blocks_) {
      for (std::size_t k = 0; k < o.term.dim() / o.term.count; ++k)
        B::gemm(Transpose::no, Transpose::no, T(1), z_component(o, k), weight_block(o), T(0), y_component(view(y_), o, k));
      if (o.term.l == 0 && o.term.parity == Parity::even) {
        B::add_row(y_component(view(y_), o, 0), view(std::as_const(bias_.value)).columns(bias_at, o.term.count));
        bias_at += o.term.count;
      }
    }
    return y_;
  }

  /// Accumulates the parameter gradients given dL/dy; returns dL/dx1 (the layer's buffer) and, when
  /// `attribute_gradient`, leaves dL/dx2 in attribute_gradient().
  const tensor& backward(const tensor& dy, bool attribute_gradient = false) {
    ACE_THROW_IF(!forwarded_, invalid_argument, "O3TensorProduct::backward called before forward");
    ensure_shape(dx1_, x1_.rows, In1::dim);
    ensure_shape(dx2_, attribute_gradient ? x2_.rows : 0, In2::dim);
    backward_into(view(dy), view(dx1_), attribute_gradient ? view(dx2_) : MatrixRef<T>{});
    return dx1_;
  }
  /// The same into views of the caller's: dx1 [rows, In1::dim] is overwritten, dx2 too unless it is empty.
  void backward_into(MatrixRef<const T> dy, MatrixRef<T> dx1, MatrixRef<T> dx2) {
    ACE_THROW_IF(!forwarded_, invalid_argument, "O3TensorProduct::backward called before forward");
    ACE_THROW_IF(dy.rows != x1_.rows || dy.cols != Out::dim, shape_error,
                 "O3TensorProduct::backward: expected a gradient of shape [", x1_.rows, ", ", Out::dim, "], got [",
                 dy.rows, ", ", dy.cols, "]");
    ensure_shape(dz_, x1_.rows, z_cols_);
    std::size_t bias_at = 0;
    for (const Block& o : blocks_) {
      for (std::size_t k = 0; k < o.term.dim() / o.term.count; ++k) {
        const MatrixRef<const T> dyk = y_component(dy, o, k);
        B::gemm(Transpose::yes, Transpose::no, T(1), z_component(o, k), dyk, T(1), weight_block(view(weight_.grad), o));
        B::gemm(Transpose::no, Transpose::yes, T(1), dyk, weight_block(o), T(0), z_component(view(dz_), o, k));
      }
      if (o.term.l == 0 && o.term.parity == Parity::even) {
        B::sum_rows(y_component(dy, o, 0), T(1), view(bias_.grad).columns(bias_at, o.term.count));
        bias_at += o.term.count;
      }
    }
    B::tensor_product_contract_backward(view(std::as_const(paths_)), view(std::as_const(entries_)),
                                        view(std::as_const(values_)), x1_, x2_, view(std::as_const(dz_)), dx1, dx2);
  }
  /// dL/dx2 of the last backward(dy, true).
  const tensor& attribute_gradient() const { return dx2_; }

  template <class F>
  void for_each_parameter(F&& f) {
    f(weight_.view("weight", Role::weight));
    if (biases > 0) f(bias_.view("bias", Role::bias));
  }
  static std::string signature() {
    return detail::concat("O3TensorProduct(", In1::name(), " x ", In2::name(), " -> ", Out::name(), ")");
  }
  /// The floating-point operations of a forward pass over `rows` rows: the contraction's products and sums (3 per
  /// Clebsch-Gordan entry and copy pair) and the GEMMs' multiply-adds (2 K_c m_c per component of each output term).
  /// A backward pass costs about twice as much (two GEMMs per component, the contraction's adjoint).
  std::size_t forward_flops(std::size_t rows) const {
    std::size_t per_row = 0;
    for (const Block& o : blocks_) per_row += 2 * o.k * o.term.dim();
    return rows * (per_row + 3 * contraction_products_);
  }

 private:
  using Block = O3ProductBlock;

  void build_paths() {
    const O3ProductPlan plan = o3_product_plan(In1::term_list, In2::term_list, Out::term_list);
    blocks_ = plan.blocks;
    z_cols_ = plan.z_cols;
    for (std::size_t p = 0; p < plan.paths.size(); p += TensorProductColumns::count)
      contraction_products_ += static_cast<std::size_t>(plan.paths[p + TensorProductColumns::mul1]) *
                               plan.paths[p + TensorProductColumns::mul2] *
                               (plan.paths[p + TensorProductColumns::entry_end] -
                                plan.paths[p + TensorProductColumns::entry_begin]);
    paths_ = make_storage<tensor_t<B, std::uint32_t, 2>>(
        std::array<std::size_t, 2>{plan.paths.size() / TensorProductColumns::count, TensorProductColumns::count});
    B::from_host(std::span<const std::uint32_t>(plan.paths), view(paths_));
    entries_ = index_tensor<B>(plan.entries);
    values_ = zeros<B, T>(1, plan.values.size());
    from_host_vector<B>(std::vector<T>(plan.values.begin(), plan.values.end()), view(values_));
  }

  // W_c [K_c, m_c] inside a weight row (values or gradients).
  template <class V>
  static MatrixRef<V> weight_block(MatrixRef<V> row, const Block& o) {
    return MatrixRef<V>{row.data + o.weight, o.k, o.term.count, o.term.count};
  }
  MatrixRef<const T> weight_block(const Block& o) const { return weight_block(view(weight_.value), o); }
  // Component k of output term o in a [rows, Out::dim] view: [rows, m_c].
  template <class V>
  static MatrixRef<V> y_component(MatrixRef<V> y, const Block& o, std::size_t k) {
    return y.columns(o.column + k * o.term.count, o.term.count);
  }
  MatrixRef<const T> z_component(const Block& o, std::size_t k) const { return z_component(view(z_), o, k); }
  template <class V>
  static MatrixRef<V> z_component(MatrixRef<V> z, const Block& o, std::size_t k) {
    return z.columns(o.zoff + k * o.k, o.k);
  }

  detail::Parameter<B, T> weight_, bias_;
  std::vector<Block> blocks_;
  std::size_t z_cols_ = 0, contraction_products_ = 0;
  tensor_t<B, std::uint32_t, 2> paths_, entries_;
  tensor values_, z_, dz_, y_, dx1_, dx2_;
  MatrixRef<const T> x1_, x2_;
  bool forwarded_ = false;
};

}  // namespace ace
