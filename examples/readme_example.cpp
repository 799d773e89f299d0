// SPDX-License-Identifier: MIT
// The usage example quoted in README.md (kept in sync by CI, which builds and runs it).
#include <ace/ace.hpp>
#include <iostream>

int main() {
  using G = ace::Dihedral<4>;                                   // symmetries of the square, order 8
  using In = ace::Multiple<ace::Regular<G>, 2>;                 // 2 regular fields (16 channels)
  using Out = ace::DirectSum<ace::Trivial<G>, ace::Standard<G>>;  // an invariant and a 2-D vector
  static_assert(In::dim == 16 && Out::dim == 3);

  const ace::EquivariantBasis& basis = ace::equivariant_basis<In, Out>();
  std::cout << "dim Hom_G(In, Out) = " << basis.size() << " (characters say " << ace::hom_dim<In, Out>() << ")\n";

  Eigen::MatrixXd w = Eigen::MatrixXd::Random(Out::dim, In::dim);        // an arbitrary linear map
  std::cout << "error before: " << ace::equivariance_error<In, Out>(w) << "\n";
  w = ace::reynolds<In, Out>(w);                                          // its group average is equivariant
  std::cout << "error after:  " << ace::equivariance_error<In, Out>(w) << "\n";
  return ace::equivariance_error<In, Out>(w) < 1e-12 ? 0 : 1;
}
