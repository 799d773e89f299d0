// SPDX-License-Identifier: MIT
// Batch norm of feature maps with statistics shared within each field (escnn's InnerBatchNorm).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ace/backend/geometry.hpp"
#include "ace/error.hpp"
#include "ace/nn/core/batch_norm.hpp"
#include "ace/nn/core/fields.hpp"
#include "ace/nn/image/image.hpp"
#include "ace/nn/module.hpp"

namespace ace {

namespace detail {
template <class R>
constexpr auto norm_fields() {
  if constexpr (Representation<R>) {
    return field_dims_v<R>;
  } else {
    std::array<std::size_t, R::dim> ones{};
    for (auto& d : ones) d = 1;
    return ones;
  }
}
}  // namespace detail

/// Batch normalisation of a feature map with statistics shared within each field: one mean and variance per field
/// over the batch, the pixels and the field's channels (all |G| channels of a regular field), one learnable scale
/// ("weight", 1) and shift ("bias", 0) per field. Subtracting a per-field constant and scaling commute with any
/// permutation fiber and any pixel permutation, so the layer is equivariant (escnn's InnerBatchNorm). Plain
/// Features<C> fibers get one field per channel (PyTorch's BatchNorm2d).
/// Training mode (default) normalises with the batch statistics and updates the running ones (momentum, unbiased
/// variance, as PyTorch); evaluation (set_training(false)) uses the running ones. They are buffers
/// ("running_mean", "running_var"), saved by checkpoints. The arithmetic is the library's one batch norm
/// (detail::BatchNormCore, the backend's batch_norm_* operations).
template <class T, class In, Backend B = Cpu>
class FieldBatchNorm {
  static_assert(is_image_v<In>, "ace: FieldBatchNorm normalises an Image<R, H, W, Layout>.");
  static_assert(!Representation<typename In::fiber> || PermutationRepresentation<typename In::fiber>,
                "ace: FieldBatchNorm shifts fields by a constant, which is equivariant only for permutation fibers "
                "(Trivial, Regular, their multiples) or plain Features<C>.");
  static constexpr auto dims = detail::norm_fields<typename In::fiber>();

 public:
  using scalar = T;
  using input = In;
  using output = In;
  using backend = B;
  using tensor = tensor_t<B, T, 2>;
  static constexpr std::size_t fields = dims.size();

  explicit FieldBatchNorm(double momentum = 0.1, double eps = 1e-5)
      : core_(field_of(), fields, momentum, eps, "FieldBatchNorm") {}

  void set_training(bool on) { core_.set_training(on); }
  bool training() const { return core_.training(); }

  const tensor& forward(const tensor& x) {
    require_columns(x, In::dim, "FieldBatchNorm::forward");
    const std::size_t batch = x.shape()[0];
    ACE_THROW_IF(training() && batch * In::pixels < 2, invalid_argument,
                 "FieldBatchNorm: training needs at least 2 values per channel, got a batch of ", batch);
    x_.set(view(x));
    ensure_shape(y_, batch, In::dim);
    core_.forward(view(x), layout(batch), view(y_));
    return y_;
  }

  const tensor& backward(const tensor& dy) {
    const std::size_t batch = detail::backward_batch(x_, dy, In::dim, "FieldBatchNorm");
    ensure_shape(dx_, batch, In::dim);
    core_.backward(view(dy), layout(batch), view(dx_));
    return dx_;
  }

  template <class F>
  void for_each_parameter(F&& f) {
    core_.for_each_parameter(f);
  }
  /// The running statistics ("running_mean", "running_var"; float64).
  template <class F>
  void for_each_buffer(F&& f) {
    core_.for_each_buffer(f);
  }
  std::vector<double> running_mean() const { return core_.running_mean(); }
  std::vector<double> running_var() const { return core_.running_var(); }

 private:
  static std::vector<std::uint32_t> field_of() {
    std::vector<std::uint32_t> out;
    for (std::size_t f = 0; f < fields; ++f)
      for (std::size_t i = 0; i < dims[f]; ++i) out.push_back(static_cast<std::uint32_t>(f));
    return out;
  }
  static FieldLayout layout(std::size_t batch) {
    if constexpr (In::layout == Layout::channels_first) return {batch, In::channels, In::pixels, fields};
    else return {batch * In::pixels, In::channels, 1, fields};
  }

  detail::BatchNormCore<T, B> core_;
  detail::ForwardRef<T> x_;
  tensor y_, dx_;
};

}  // namespace ace
