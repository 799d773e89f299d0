// SPDX-License-Identifier: MIT
// The mechanics of ACE's homotopic layers, written once: f_eq + γ_i f_neq,i with learnable scalars γ_i (the paper's
// section 2; docs/method.md §2), the branch switch, and their backward pass.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "ace/error.hpp"
#include "ace/nn/module.hpp"

namespace ace {

/// The relaxation scalars γ_0 .. γ_{k-1} of a layer or block with k non-equivariant branches (role gamma, all 1 at
/// the start), kept in backend memory as one [1, k] parameter, and the switch that turns the branches on (training
/// and evaluation of f_eq + γ f_neq) or off (f_eq alone, at no cost for the branches). Relaxed, the relaxed EGNN and
/// the relaxed Vector Neurons classifier all add their branches through it:
///   forward:  y += γ_i b_i                      (add_branch)
///   backward: dγ_i += <dy, b_i>, db_i = γ_i dy  (branch_backward)
/// so the arithmetic never leaves the backend.
template <class T, Backend B = Cpu>
class Relaxation {
 public:
  Relaxation() = default;
  explicit Relaxation(std::size_t branches) : gamma_({1, branches}) {
    ACE_THROW_IF(branches == 0, invalid_argument, "Relaxation: needs at least one branch");
    B::fill(view(gamma_.value), T(1));
  }

  std::size_t size() const { return gamma_.value.size(); }
  /// Whether forward passes evaluate the branches (true at the start).
  bool on() const { return on_ && size() > 0; }
  void set(bool on) { on_ = on; }

  /// y += γ_i branch.
  void add_branch(std::size_t i, MatrixRef<const T> branch, MatrixRef<T> y) const {
    B::add_scaled(gamma(i), branch, y);
  }
  /// The backward of add_branch given dL/dy: dγ_i += <dy, branch> and branch_dy = γ_i dy (what the branch receives).
  void branch_backward(std::size_t i, MatrixRef<const T> dy, MatrixRef<const T> branch, MatrixRef<T> branch_dy) {
    accumulate_grad(i, dy, branch);
    B::scaled_copy(gamma(i), dy, branch_dy);
  }

  /// The parameter view ("<name>", role gamma, shape [1, k]).
  ParamView<T> param(std::string name) { return gamma_.view(std::move(name), Role::gamma); }

  /// γ_i, read from the backend (host code: logging, tests).
  /// γ_i and its gradient as one-entry views of backend memory (for a fused kernel that applies the branch itself;
  /// accumulate the gradient with accumulate_grad).
  MatrixRef<const T> gamma(std::size_t i) const {
    ACE_THROW_IF(i >= size(), invalid_argument, "Relaxation: branch ", i, " of ", size());
    return view(gamma_.value).columns(i, 1);
  }
  /// dγ_i += Σ dy ⊙ branch.
  void accumulate_grad(std::size_t i, MatrixRef<const T> dy, MatrixRef<const T> branch) {
    ACE_THROW_IF(i >= size(), invalid_argument, "Relaxation: branch ", i, " of ", size());
    B::accumulate_dot(dy, branch, view(gamma_.grad).columns(i, 1));
  }

  T value(std::size_t i) const { return to_host_vector<B>(gamma(i))[0]; }
  void set_value(std::size_t i, T v) { from_host_vector<B>(std::vector<T>{v}, view(gamma_.value).columns(i, 1)); }

 private:

  detail::Parameter<B, T> gamma_;
  bool on_ = true;
};

}  // namespace ace
