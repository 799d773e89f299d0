// SPDX-License-Identifier: MIT
// C_0 is not a group.
#include <ace/group/cyclic.hpp>
#ifdef ACE_SHOULD_FAIL
using G = ace::Cyclic<0>;
#else
using G = ace::Cyclic<1>;
#endif
int main() { return static_cast<int>(G::order) - 1; }
