// SPDX-License-Identifier: MIT
// Whole networks: the EGNN position regressor and ACE's relaxed Vector Neurons classifier.
#pragma once

#include "ace/models/egnn.hpp"
#include "ace/models/graph_regression.hpp"
#include "ace/models/segnn.hpp"
#include "ace/models/vn_classifier.hpp"
