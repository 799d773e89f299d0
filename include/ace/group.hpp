// SPDX-License-Identifier: MIT
// All of ace's group machinery.
#pragma once

#include "ace/group/action.hpp"
#include "ace/group/cayley.hpp"
#include "ace/group/concepts.hpp"
#include "ace/group/cyclic.hpp"
#include "ace/group/dihedral.hpp"
#include "ace/group/direct_product.hpp"
#include "ace/group/geometry.hpp"
#include "ace/group/polyhedral.hpp"
#include "ace/group/so3.hpp"
#include "ace/group/subgroup.hpp"
#include "ace/group/symmetric.hpp"
#include "ace/group/trivial.hpp"
