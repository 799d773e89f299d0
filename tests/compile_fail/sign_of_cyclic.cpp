// SPDX-License-Identifier: MIT
// Cyclic groups have no sign homomorphism.
#include <ace/group/cyclic.hpp>
#include <ace/group/dihedral.hpp>
#include <ace/rep/basic.hpp>
#ifdef ACE_SHOULD_FAIL
using R = ace::Sign<ace::Cyclic<4>>;
#else
using R = ace::Sign<ace::Dihedral<4>>;
#endif
int main() { return static_cast<int>(R::dim) - 1; }
