// SPDX-License-Identifier: MIT
// A small relaxed C4 model (float64) and a seeded global batch cut into shards, for the DataParallel tests in one
// process (test_data_parallel.cpp) and under MPI (test_mpi.cpp).
#pragma once

#include <cstddef>
#include <cstring>
#include <deque>
#include <vector>

#include "ace/constrained/supervised.hpp"
#include "ace/constrained/trainer.hpp"
#include "ace/distributed/data_parallel.hpp"
#include "ace/group/cyclic.hpp"
#include "ace/nn/core/equivariant_linear.hpp"
#include "ace/nn/core/linear.hpp"
#include "ace/nn/core/loss.hpp"
#include "ace/nn/core/relaxed.hpp"
#include "ace/nn/core/sequential.hpp"
#include "ace/optim/adam.hpp"
#include "ace/random.hpp"
#include "ace/rep/basic.hpp"
#include "ace/rep/composite.hpp"

namespace ace::test {

using ShardRep = Multiple<Regular<Cyclic<4>>, 2>;  // 8 channels
/// The model in scalar T on backend B.
template <class T, class B>
using ShardNetOf = Sequential<Relaxed<EquivariantLinear<T, ShardRep, ShardRep, B>, Linear<T, ShardRep, ShardRep, B>>>;
template <class T, class B>
using ShardModelOf = SupervisedModel<ShardNetOf<T, B>, MSELoss<T, B>>;
using ShardNet = ShardNetOf<double, Cpu>;
using ShardModel = ShardModelOf<double, Cpu>;

/// A communicator C whose collectives take backend B's memory (CollectivesIn), for backends whose memory is the
/// host's (Cpu, Reference, the CUDA kernels' emulation), where any communicator can: DataParallel then keeps its
/// rows in B's tensors (BackendRows), the path ace::Nccl takes on ace::Cuda, on any machine.
template <Communicator C, class B>
struct InBackendMemory : C {
  using C::C;
  using backend = B;
};

/// Global batch `step` of `rows` samples (inputs and targets), the same on every rank.
inline void global_batch(std::size_t step, std::size_t rows, Tensor<double, 2>& x, Tensor<double, 2>& y) {
  Rng rng(1000 + step);
  x = Tensor<double, 2>({rows, ShardRep::dim});
  y = Tensor<double, 2>({rows, ShardRep::dim});
  for (auto& v : x) v = rng.normal();
  for (auto& v : y) v = rng.normal();
}

/// This rank's shards of a global batch (x, y) for Model (its scalar, its backend): each shard's rows copied into
/// tensors kept in `store` (the batches hold references to them).
template <class Model = ShardModel, class Store>
Shards<typename Model::batch> local_shards(const ShardPlan& plan, const Tensor<double, 2>& x,
                                           const Tensor<double, 2>& y, Store& store) {
  using T = typename Model::scalar;
  Shards<typename Model::batch> out;
  store.clear();
  for (std::size_t k = 0; k < plan.per_rank(); ++k) {
    const ShardRange r = shard_range(x.shape()[0], plan, k);
    Tensor<T, 2> xs({r.last - r.first, ShardRep::dim}), ys({r.last - r.first, ShardRep::dim});
    for (std::size_t i = r.first; i < r.last; ++i)
      for (std::size_t c = 0; c < ShardRep::dim; ++c) {
        xs(i - r.first, c) = static_cast<T>(x(i, c));
        ys(i - r.first, c) = static_cast<T>(y(i, c));
      }
    const auto& xb = store.emplace_back(to_backend<backend_of_t<Model>>(xs));
    const auto& yb = store.emplace_back(to_backend<backend_of_t<Model>>(ys));
    out.parts.push_back({xb, yb});
    out.shares.push_back(r.share);
  }
  return out;
}

/// fit()'s batches for a DataParallel model: three global batches of `rows` samples per epoch (seeded by the epoch),
/// this rank's shards of each (x, y and store: the buffers, which outlive the lambda).
template <class Parallel>
auto epoch_batches(Parallel& parallel, std::size_t rows, Tensor<double, 2>& x, Tensor<double, 2>& y,
                   std::deque<Tensor<double, 2>>& store) {
  return [&parallel, rows, &x, &y, &store](std::size_t epoch, auto&& step) {
    for (std::size_t b = 0; b < 3; ++b) {
      global_batch(10 * epoch + b, rows, x, y);
      step(local_shards(parallel.plan(), x, y, store));
    }
  };
}

/// A model from `seed`, DataParallel over `comm` with `shards` shards and an ACE equality trainer (Adam 1e-2) on it,
/// with the buffers its batches are built in.
template <class Comm>
struct EqualityRun {
  Rng init;
  ShardModel model;
  DataParallel<ShardModel, Comm> parallel;
  ConstrainedTrainer<DataParallel<ShardModel, Comm>, Adam<double>, EqualityConstraint> trainer;
  Tensor<double, 2> x, y;
  std::deque<Tensor<double, 2>> store;
  EqualityRun(Comm& comm, std::uint64_t seed, std::size_t shards)
      : init(seed), model(ShardNet(init)), parallel(model, comm, shards),
        trainer(parallel, Adam<double>({.lr = 1e-2}), EqualityConstraint{}) {}
  EqualityRun(const EqualityRun&) = delete;
  EqualityRun& operator=(const EqualityRun&) = delete;
};

/// Every parameter value (or gradient), in order, read from the model's backend.
template <bool Gradients = false, class Model>
std::vector<typename Model::scalar> parameter_values(Model& m) {
  using T = typename Model::scalar;
  std::vector<T> out;
  m.for_each_parameter([&](ParamView<T> p) {
    const auto host = to_host_vector<backend_of_t<Model>>(VectorRef<T>(Gradients ? p.grad : p.value));
    out.insert(out.end(), host.begin(), host.end());
  });
  return out;
}

/// What a training run leaves: the parameters, the multipliers and every step's loss.
struct EqualityTrace {
  std::vector<double> parameters, multipliers, losses;
};

/// 12 steps of ACE equality (Adam 1e-2, dual SGD 5e-2) on global batches of 24 samples, the model in scalar T on
/// backend B (initialised from seed 3) wrapped in DataParallel over `comm` and `shards` shards, or (shards == 0) the
/// plain model on the whole batch.
template <class T, class B, class Comm>
EqualityTrace train_equality(Comm& comm, std::size_t shards, ShardReduction reduction = ShardReduction::shard_order) {
  using Model = ShardModelOf<T, B>;
  Rng init(3);
  Model model{ShardNetOf<T, B>(init)};
  EqualityTrace t;
  Tensor<double, 2> x, y;
  std::deque<tensor_t<B, T, 2>> store;
  const auto run = [&](auto& m, auto make_batch) {
    ConstrainedTrainer trainer(m, Adam<T, B>({.lr = 1e-2}), EqualityConstraint{}, DualSGD{.lr = 5e-2});
    for (std::size_t step = 0; step < 12; ++step) {
      global_batch(step, 24, x, y);
      t.losses.push_back(trainer.step(make_batch()).loss);
    }
    t.multipliers = trainer.multipliers();
  };
  if (shards == 0) {
    run(model, [&] {
      store.clear();
      const auto& xs = store.emplace_back(to_backend<B>(Tensor<T, 2>(xt::cast<T>(x))));
      return typename Model::batch{xs, store.emplace_back(to_backend<B>(Tensor<T, 2>(xt::cast<T>(y))))};
    });
  } else {
    DataParallel parallel(model, comm, shards, reduction);
    static_assert(DataParallel<Model, Comm>::rows_in_backend == CollectivesIn<Comm, B>);
    run(parallel, [&] { return local_shards<Model>(parallel.plan(), x, y, store); });
  }
  for (const T v : parameter_values(model)) t.parameters.push_back(static_cast<double>(v));
  return t;
}

/// Whether two vectors hold the same bits.
inline bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

}  // namespace ace::test
