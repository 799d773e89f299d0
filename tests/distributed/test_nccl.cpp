// SPDX-License-Identifier: MIT
// ace::Nccl on the GPUs of one machine (a GPU runs it; without one it reports itself skipped, exit code 77): every
// collective on device and on host memory, DataParallel with its rows on the device against the host rows' bits
// (float64) and the errors every rank must see. One process (rank 0 of 1), or under mpiexec one rank per GPU where
// the build has MPI (tests/CMakeLists.txt: "test_nccl: 2 ranks", skipped with fewer GPUs than ranks).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <deque>
#include <memory>
#include <utility>
#include <vector>

#include "ace/backend/cuda/cuda.hpp"
#include "ace/distributed/nccl.hpp"
#if defined(ACE_WITH_MPI)
#include "ace/distributed/mpi.hpp"
#endif
#include "model_support.hpp"

using namespace ace;

namespace {
Nccl* world = nullptr;  // main's communicator

template <class T>
DeviceArray<T, 1> on_device(const std::vector<T>& host) {
  DeviceArray<T, 1> d({host.size()});
  Cuda::from_host(std::span<const T>(host), VectorRef<T>(d).row());
  return d;
}
template <class T>
std::vector<T> on_host(DeviceArray<T, 1>& d) {
  return to_host_vector<Cuda>(VectorRef<T>(d));
}
}  // namespace

TEST_CASE("Nccl: every collective on device memory and on host memory", "[nccl]") {
  Nccl& comm = *world;
  const std::size_t r = comm.rank(), n = comm.size();
  CHECK(comm.device() == cuda::current_device());

  auto mine = on_device(std::vector<double>{double(r), 10.0 * double(r) + 1});
  DeviceArray<double, 1> all({2 * n});
  comm.all_gather(std::span<const double>(mine.data(), 2), std::span<double>(all.data(), all.size()));
  const std::vector<double> gathered = on_host(all);
  for (std::size_t k = 0; k < n; ++k) {
    CHECK(gathered[2 * k] == double(k));
    CHECK(gathered[2 * k + 1] == 10.0 * double(k) + 1);
  }
  auto sum = on_device(std::vector<float>{1.0f, float(r)});
  comm.all_reduce_sum(std::span<float>(sum.data(), sum.size()));
  CHECK(on_host(sum) == std::vector<float>{float(n), float(n * (n - 1) / 2)});
  auto values = on_device(std::vector<double>{double(r) + 0.5, -double(r)});
  comm.broadcast(std::span<double>(values.data(), values.size()), n - 1);
  CHECK(on_host(values) == std::vector<double>{double(n - 1) + 0.5, -double(n - 1)});

  // Host memory: staged through the device.
  const std::uint64_t tag = 1000 + r;
  std::vector<std::uint64_t> tags(n);
  comm.all_gather(std::span<const std::uint64_t>(&tag, 1), std::span<std::uint64_t>(tags));
  for (std::size_t k = 0; k < n; ++k) CHECK(tags[k] == 1000 + k);
  std::vector<double> host_sum{0.25, double(r)};
  comm.all_reduce_sum(std::span<double>(host_sum));
  CHECK(host_sum == std::vector<double>{0.25 * double(n), double(n * (n - 1) / 2)});
  std::vector<float> host_values{float(r)};
  comm.broadcast(std::span<float>(host_values), 0);
  CHECK(host_values[0] == 0.0f);
  comm.barrier();

  CHECK_THROWS_AS(comm.broadcast(std::span<double>(host_sum), n), communication_error);  // checked before NCCL
  std::vector<double> wrong(2 * n + 1);
  CHECK_THROWS_AS(comm.all_gather(std::span<const double>(host_sum), std::span<double>(wrong)), communication_error);
  CHECK(nccl::version() >= 21800);
  // The device is chosen before a thread's first Cuda operation, and exists.
  CHECK_THROWS_AS(cuda::set_device(cuda::device_count()), invalid_argument);
  CHECK_THROWS_AS(cuda::set_device(-1), invalid_argument);
  CHECK_NOTHROW(cuda::set_device(comm.device()));
  if (cuda::device_count() > 1)
    CHECK_THROWS_WITH(cuda::set_device((comm.device() + 1) % cuda::device_count()),
                      Catch::Contains("this thread already works on device"));
}

TEST_CASE("Nccl: DataParallel keeps its rows on the device and gives the host rows' bits (float64)",
          "[nccl][data_parallel]") {
  Nccl& comm = *world;
  STATIC_REQUIRE(DataParallel<test::ShardModelOf<double, Cuda>, Nccl>::rows_in_backend);
  const std::size_t shards = 2 * comm.size();
  SingleProcess alone;
  const test::EqualityTrace device = test::train_equality<double, Cuda>(comm, shards);
  const test::EqualityTrace host = test::train_equality<double, Cuda>(alone, shards);  // every shard here
  CHECK(test::same_bits(device.parameters, host.parameters));
  CHECK(test::same_bits(device.multipliers, host.multipliers));
  CHECK(test::same_bits(device.losses, host.losses));
  CHECK(host.multipliers[0] != 0.0);  // the dual step ran

  const test::EqualityTrace reduced = test::train_equality<double, Cuda>(comm, shards, ShardReduction::all_reduce);
  for (std::size_t i = 0; i < host.parameters.size(); ++i)
    CHECK(reduced.parameters[i] == Approx(host.parameters[i]).margin(1e-12));

  // Float: the rows in float on the device, in double on the host: the same training up to float rounding.
  const test::EqualityTrace device_float = test::train_equality<float, Cuda>(comm, shards);
  const test::EqualityTrace host_float = test::train_equality<float, Cuda>(alone, shards);
  for (std::size_t i = 0; i < host_float.parameters.size(); ++i)
    CHECK(device_float.parameters[i] == Approx(host_float.parameters[i]).margin(2e-5));
}

namespace {
/// The same NCCL ranks without `backend`: DataParallel keeps its rows in host memory over them.
struct HostRowsOver {
  Nccl& n;
  std::size_t rank() const { return n.rank(); }
  std::size_t size() const { return n.size(); }
  template <class T>
  void all_gather(std::span<const T> mine, std::span<T> all) { n.all_gather(mine, all); }
  template <class T>
  void all_reduce_sum(std::span<T> values) { n.all_reduce_sum(values); }
  template <class T>
  void broadcast(std::span<T> values, std::size_t root) { n.broadcast(values, root); }
  void barrier() { n.barrier(); }
};
static_assert(Communicator<HostRowsOver> && !CollectivesIn<HostRowsOver, Cuda>);
}  // namespace

TEST_CASE("Nccl: a step with the rows on the device copies less between host and device", "[nccl][data_parallel]") {
  Nccl& comm = *world;
  HostRowsOver host_rows{comm};
  const auto copies_per_step = [&](auto& c) {
    using Model = test::ShardModelOf<double, Cuda>;
    Rng init(5);
    Model model{test::ShardNetOf<double, Cuda>(init)};
    DataParallel parallel(model, c, 2 * comm.size());  // the same ranks and shards both times
    ConstrainedTrainer trainer(parallel, Adam<double, Cuda>({.lr = 1e-2}), EqualityConstraint{});
    Tensor<double, 2> x, y;
    std::deque<DeviceArray<double, 2>> store;
    test::global_batch(0, 24, x, y);
    const auto shards = test::local_shards<Model>(parallel.plan(), x, y, store);
    trainer.step(shards);  // the buffers exist
    const cuda::Transfers before = cuda::transfers();
    trainer.step(shards);
    const cuda::Transfers after = cuda::transfers();
    return std::pair{(after.to_host - before.to_host) + (after.from_host - before.from_host),
                     test::parameter_values(model)};
  };
  const auto [device, device_parameters] = copies_per_step(comm);
  const auto [host, host_parameters] = copies_per_step(host_rows);
  CAPTURE(device, host);
  CHECK(device < host);
  CHECK(test::same_bits(device_parameters, host_parameters));  // the same two steps
}

TEST_CASE("Nccl: one rank's bad shards stop every rank with an error", "[nccl][data_parallel]") {
  Nccl& comm = *world;
  using Model = test::ShardModelOf<double, Cuda>;
  Rng init(1);
  Model model{test::ShardNetOf<double, Cuda>(init)};
  DataParallel parallel(model, comm, 2 * comm.size());
  Tensor<double, 2> x, y;
  std::deque<DeviceArray<double, 2>> store;
  test::global_batch(0, 20, x, y);
  auto bad = test::local_shards<Model>(parallel.plan(), x, y, store);
  const bool last = comm.rank() == comm.size() - 1;
  if (last) bad.shares[0] = 0.0;
  if (last)
    CHECK_THROWS_WITH(parallel.loss_and_gradients(bad), Catch::Contains("must be in (0, 1], got 0"));
  else
    CHECK_THROWS_WITH(parallel.loss_and_gradients(bad), Catch::Contains("another rank's shards were invalid"));
  comm.barrier();
}

/// One rank per CUDA device: under mpiexec (a build with MPI) the ranks of MPI_COMM_WORLD on the devices of their
/// machine, else this process alone on device 0. Every rank reports the worst result, so that all fail together.
int main(int argc, char** argv) {
#if defined(ACE_WITH_MPI)
  MpiSession session(&argc, &argv);
  Mpi host;
  const std::size_t local = host.node_rank(), local_ranks = host.node_size();
#else
  SingleProcess host;
  const std::size_t local = 0, local_ranks = 1;
#endif
  const int devices = cuda::device_count();
  if (devices == 0 || local_ranks > static_cast<std::size_t>(devices)) {
    if (host.rank() == 0)
      std::printf("%zu rank(s) on this machine need as many CUDA devices, it has %d: skipped\n", local_ranks, devices);
    return 77;
  }
  cuda::set_device(static_cast<int>(local));
  std::printf("rank %zu of %zu on CUDA device %zu (%s), NCCL %d\n", host.rank(), host.size(), local,
              cuda::device_name().c_str(), nccl::version());
  auto comm = std::make_unique<Nccl>(host);
  world = comm.get();
  int failed = Catch::Session().run(argc, argv);
  double worst = failed != 0 ? 1.0 : 0.0;
  host.all_reduce_sum(std::span<double>(&worst, 1));
  comm.reset();
  return worst != 0.0 ? 1 : 0;
}
