// SPDX-License-Identifier: MIT
// A downstream program: includes the umbrella header and checks one equivariant basis.
#include <ace/ace.hpp>
#include <iostream>

int main() {
  using R = ace::Regular<ace::Dihedral<4>>;
  const auto& basis = ace::equivariant_basis<R, R>();
  const bool ok = basis.size() == ace::hom_dim<R, R>() && basis.size() == 8;
  std::cout << "consumer: ace " << ace::version << ", dim Hom(Regular(D4), Regular(D4)) = " << basis.size()
            << (ok ? " (ok)" : " (WRONG)") << "\n";
  return ok ? 0 : 1;
}
