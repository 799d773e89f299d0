// SPDX-License-Identifier: MIT
// Backends: the concept, the Cpu backend (Eigen, AVX2/FMA kernels, OpenMP) and the Reference backend (plain loops).
#pragma once

#include "ace/backend/concept.hpp"
#include "ace/backend/cpu/cpu.hpp"
#include "ace/backend/default.hpp"
#include "ace/backend/reference/reference.hpp"
