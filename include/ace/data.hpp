// SPDX-License-Identifier: MIT
// Data sets: simulators and loaders with the published protocols.
#pragma once

#include "ace/data/images.hpp"
#include "ace/data/mocap.hpp"
#include "ace/data/nbody.hpp"
