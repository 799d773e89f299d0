// SPDX-License-Identifier: MIT
// Files: .npy tensors and atomic, verified checkpoints.
#pragma once

#include "ace/io/checkpoint.hpp"
#include "ace/io/npy.hpp"
#include "ace/io/svg.hpp"
