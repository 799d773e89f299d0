// SPDX-License-Identifier: MIT
// Equivariant maps between representations of different groups are not defined.
#include <ace/group/cyclic.hpp>
#include <ace/rep/basic.hpp>
#include <ace/rep/basis.hpp>
#ifdef ACE_SHOULD_FAIL
using Out = ace::Regular<ace::Cyclic<8>>;
#else
using Out = ace::Regular<ace::Cyclic<4>>;
#endif
int main() { return static_cast<int>(ace::make_equivariant_basis<ace::Regular<ace::Cyclic<4>>, Out>().size()) - 4; }
