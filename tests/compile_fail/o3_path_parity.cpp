// SPDX-License-Identifier: MIT
// Two vectors (1o x 1o) couple to a pseudovector (1e), never to a vector (1o): the parity rule.
#include <ace/rep/o3.hpp>
#ifdef ACE_SHOULD_FAIL
using Out = ace::Vector1o;
#else
using Out = ace::O3Irrep<1, ace::Parity::even>;
#endif
int main() { return ace::clebsch_gordan<ace::Vector1o, ace::Vector1o, Out>().size() == 27 ? 0 : 1; }
