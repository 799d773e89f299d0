// SPDX-License-Identifier: MIT
// A direct sum of representations of different groups is not defined.
#include <ace/group/cyclic.hpp>
#include <ace/group/dihedral.hpp>
#include <ace/rep/basic.hpp>
#include <ace/rep/composite.hpp>
#ifdef ACE_SHOULD_FAIL
using R = ace::DirectSum<ace::Trivial<ace::Cyclic<4>>, ace::Regular<ace::Dihedral<4>>>;
#else
using R = ace::DirectSum<ace::Trivial<ace::Cyclic<4>>, ace::Regular<ace::Cyclic<4>>>;
#endif
int main() { return static_cast<int>(R::dim) - 5; }
