// SPDX-License-Identifier: MIT
// Optimisers over parameter views.
#pragma once

#include "ace/optim/adam.hpp"
#include "ace/optim/by_role.hpp"
#include "ace/optim/optimizer.hpp"
#include "ace/optim/sgd.hpp"
