// SPDX-License-Identifier: MIT
// All of ace's representation machinery.
#pragma once

#include "ace/rep/basic.hpp"
#include "ace/rep/basis.hpp"
#include "ace/rep/character.hpp"
#include "ace/rep/composite.hpp"
#include "ace/rep/concepts.hpp"
#include "ace/rep/irreps.hpp"
#include "ace/rep/o3.hpp"
#include "ace/rep/quotient.hpp"
#include "ace/rep/reynolds.hpp"
