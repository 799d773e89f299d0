// SPDX-License-Identifier: MIT
// Modules, losses and the verification harness.
#pragma once

#include "ace/nn/activation.hpp"
#include "ace/nn/check.hpp"
#include "ace/nn/conv.hpp"
#include "ace/nn/dense.hpp"
#include "ace/nn/egnn.hpp"
#include "ace/nn/equivariant_linear.hpp"
#include "ace/nn/fields.hpp"
#include "ace/nn/image.hpp"
#include "ace/nn/image_pool.hpp"
#include "ace/nn/linear.hpp"
#include "ace/nn/loss.hpp"
#include "ace/nn/module.hpp"
#include "ace/nn/pair_linear.hpp"
#include "ace/nn/relaxed.hpp"
#include "ace/nn/sequential.hpp"
#include "ace/nn/set.hpp"
#include "ace/nn/vector_neurons.hpp"
#include "ace/tensor/backend.hpp"
#include "ace/tensor/cpu.hpp"
#include "ace/tensor/tensor.hpp"
