// SPDX-License-Identifier: MIT
// Storage and views, and the parameter views optimisers, trainers and checkpoints see.
#pragma once

#include "ace/tensor/eigen.hpp"
#include "ace/tensor/host_array.hpp"
#include "ace/tensor/parameter.hpp"
#include "ace/tensor/tensor.hpp"
