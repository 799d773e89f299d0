// SPDX-License-Identifier: MIT
// C_6 has real irreps of frequency 0..3 only.
#include <ace/rep/irreps.hpp>
#ifdef ACE_SHOULD_FAIL
using R = ace::CyclicIrrep<6, 4>;
#else
using R = ace::CyclicIrrep<6, 3>;
#endif
int main() { return static_cast<int>(R::dim) - 1; }
