// SPDX-License-Identifier: MIT
// The Communicator concept's single-process side: SingleProcess, ShardPlan, the shard reduction's order, and the
// cross-rank agreement check (the same code over MPI: test_mpi.cpp).
#include <cstring>
#include <vector>

#include "../support.hpp"
#include "ace/distributed/communicator.hpp"
#include "shard_support.hpp"

using namespace ace;

TEST_CASE("SingleProcess is a Communicator of one rank", "[distributed]") {
  STATIC_REQUIRE(Communicator<SingleProcess>);
  SingleProcess comm;
  CHECK(comm.rank() == 0);
  CHECK(comm.size() == 1);
  const std::vector<double> mine{1.5, -2.0, 3.25};
  std::vector<double> all(3);
  comm.all_gather(std::span<const double>(mine), std::span<double>(all));
  CHECK(all == mine);
  std::vector<double> wrong(4);
  CHECK_THROWS_AS(comm.all_gather(std::span<const double>(mine), std::span<double>(wrong)), communication_error);
  std::vector<float> values{1.0f, 2.0f};
  comm.all_reduce_sum(std::span<float>(values));
  comm.broadcast(std::span<float>(values), 0);
  CHECK(values == std::vector<float>{1.0f, 2.0f});
  CHECK_THROWS_AS(comm.broadcast(std::span<float>(values), 1), communication_error);
  comm.barrier();
}

TEST_CASE("ShardPlan deals contiguous runs of shards and rejects a rank count that does not divide them",
          "[distributed]") {
  const ShardPlan plan(8, 1, 4);
  CHECK(plan.per_rank() == 2);
  CHECK(plan.first() == 2);
  CHECK(plan.shard(1) == 3);
  const ShardPlan alone(8, SingleProcess{});
  CHECK(alone.per_rank() == 8);
  CHECK(alone.first() == 0);
  CHECK_THROWS_WITH(ShardPlan(6, 0, 4), Catch::Contains("4 ranks do not divide the 6 shards"));
  CHECK_THROWS_AS(ShardPlan(6, 0, 4), invalid_argument);
  CHECK_THROWS_AS(ShardPlan(4, 4, 4), invalid_argument);
  CHECK_THROWS_AS(ShardPlan(4, 0, 0), invalid_argument);
  CHECK_THROWS_AS(ShardPlan(0, 0, 1), invalid_argument);
}

TEMPLATE_TEST_CASE("reduce_shards adds the shards in shard order", "[distributed]", float, double) {
  using T = TestType;
  constexpr std::size_t shards = 8, width = 64;
  SingleProcess comm;
  const ShardPlan plan(shards, comm);
  const auto rows = test::shard_rows<T>(11, 0, shards, width);
  std::vector<T> out(width), scratch;
  reduce_shards(comm, plan, std::span<const T>(rows), width, std::span<T>(out), scratch);
  std::vector<T> forward(width, T(0)), backward(width, T(0));
  for (std::size_t s = 0; s < shards; ++s)
    for (std::size_t i = 0; i < width; ++i) {
      forward[i] += rows[s * width + i];
      backward[i] += rows[(shards - 1 - s) * width + i];
    }
  CHECK(std::memcmp(out.data(), forward.data(), width * sizeof(T)) == 0);
  // The data is order-sensitive: another order gives other bits (so the MPI test can tell the orders apart).
  CHECK(std::memcmp(out.data(), backward.data(), width * sizeof(T)) != 0);

  std::vector<T> short_out(width - 1);
  CHECK_THROWS_AS(reduce_shards(comm, plan, std::span<const T>(rows), width, std::span<T>(short_out), scratch),
                  invalid_argument);
  const ShardPlan other(shards, 1, 2);  // a plan for another rank of another run
  CHECK_THROWS_AS(reduce_shards(comm, other, std::span<const T>(rows).first(4 * width), width, std::span<T>(out),
                                scratch),
                  invalid_argument);
}

TEST_CASE("require_same_on_all_ranks and fnv1a", "[distributed]") {
  CHECK(fnv1a("") == 14695981039346656037ull);
  CHECK(fnv1a("a") == 0xaf63dc4c8601ec8cull);
  CHECK(fnv1a("EGNN 4 layers") != fnv1a("EGNN 3 layers"));
  SingleProcess comm;
  CHECK_NOTHROW(require_same_on_all_ranks(comm, "EGNN 4 layers", "model signature"));
}
