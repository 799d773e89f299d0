// SPDX-License-Identifier: MIT
// Vectors (1o) times scalar attributes (0e) reach only vectors: an output 1e (a pseudovector) gets no path, the parity
// rule forbids it.
#include <ace/backend/reference/reference.hpp>
#include <ace/nn/steerable/tensor_product.hpp>
using V = ace::O3Irreps<ace::Mul<4, ace::Vector1o>>;
using S = ace::O3Irreps<ace::Mul<1, ace::Scalar0e>>;
#ifdef ACE_SHOULD_FAIL
using Out = ace::O3Irreps<ace::Mul<2, ace::O3Irrep<1, ace::Parity::even>>>;
#else
using Out = ace::O3Irreps<ace::Mul<2, ace::Vector1o>>;
#endif
int main() {
  ace::Rng rng(1);
  ace::O3TensorProduct<V, S, Out, double, ace::Reference> tp(rng);
  return decltype(tp)::weights == 8 ? 0 : 1;
}
