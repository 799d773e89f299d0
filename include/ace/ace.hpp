// SPDX-License-Identifier: MIT
// ace — compile-time symmetry groups, representations, equivariant layers on any backend, and ACE training.
#pragma once

#include "ace/backend.hpp"
#include "ace/constrained.hpp"
#include "ace/data.hpp"
#include "ace/distributed.hpp"
#include "ace/error.hpp"
#include "ace/group.hpp"
#include "ace/io.hpp"
#include "ace/models.hpp"
#include "ace/nn.hpp"
#include "ace/optim.hpp"
#include "ace/random.hpp"
#include "ace/rep.hpp"
#include "ace/tensor.hpp"
#include "ace/version.hpp"
