// SPDX-License-Identifier: MIT
// ACE: the primal–dual trainer and its constraint policies.
#pragma once

#include "ace/constrained/callbacks.hpp"
#include "ace/constrained/checkpoint.hpp"
#include "ace/constrained/equivariance.hpp"
#include "ace/constrained/fit.hpp"
#include "ace/constrained/policy.hpp"
#include "ace/constrained/supervised.hpp"
#include "ace/constrained/trainer.hpp"
