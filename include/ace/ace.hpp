// SPDX-License-Identifier: MIT
// ace — compile-time symmetry groups, representations, equivariant bases and (in later modules) ACE training.
#pragma once

#include "ace/constrained.hpp"
#include "ace/data.hpp"
#include "ace/error.hpp"
#include "ace/group.hpp"
#include "ace/io.hpp"
#include "ace/nn.hpp"
#include "ace/optim.hpp"
#include "ace/random.hpp"
#include "ace/rep.hpp"
#include "ace/version.hpp"
