// SPDX-License-Identifier: MIT
// Rotations by 45 degrees do not map pixels to pixels.
#include <ace/group/action.hpp>
#include <ace/group/cyclic.hpp>
#ifdef ACE_SHOULD_FAIL
using G = ace::Cyclic<8>;
#else
using G = ace::Cyclic<4>;
#endif
int main() { return static_cast<int>(ace::act_on_pixel<G>(G::rotation(2), {0, 0}, 4, 4).row) - 3; }
