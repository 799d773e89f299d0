// SPDX-License-Identifier: MIT
// An equivariant linear map sends each irrep to copies of itself (Schur): from scalars alone no vector can be made.
#include <ace/backend/reference/reference.hpp>
#include <ace/nn/steerable/o3_linear.hpp>
using In = ace::O3Irreps<ace::Mul<3, ace::Scalar0e>>;
#ifdef ACE_SHOULD_FAIL
using Out = ace::O3Irreps<ace::Mul<2, ace::Scalar0e>, ace::Mul<1, ace::Vector1o>>;
#else
using Out = ace::O3Irreps<ace::Mul<2, ace::Scalar0e>>;
#endif
int main() {
  ace::Rng rng(1);
  ace::O3Linear<In, Out, double, ace::Reference> lin(rng);
  return decltype(lin)::weights == 6 ? 0 : 1;
}
