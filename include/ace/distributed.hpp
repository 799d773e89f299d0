// SPDX-License-Identifier: MIT
// Data-parallel training across processes: the Communicator concept, SingleProcess and the shard reduction whose
// result does not depend on the rank count; DataParallel, a model whose gradients are those of a sharded global batch.
// The MPI communicator is in ace/distributed/mpi.hpp (link ace::mpi).
#pragma once

#include "ace/distributed/communicator.hpp"
#include "ace/distributed/data_parallel.hpp"
#include "ace/distributed/on_rank_zero.hpp"
