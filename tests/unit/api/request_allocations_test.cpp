// The request path allocates nothing in steady state (DESIGN.md section 4): every request of a
// mix, replayed after a warm-up round, makes no operator new call, both through the Server alone
// (ConstantFs) and through a real PassthroughFs over a temporary directory. The same mixes are
// timed by bench/server_bench.cpp. Linked with the allocation counter (tests/CMakeLists.txt).
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <gtest/gtest.h>

#include <cstdint>
#include <new>
#include <vector>

#include <support/allocation_counter.hpp>
#include <support/constant_fs.hpp>
#include <support/in_memory_server.hpp>
#include <support/passthrough_scene.hpp>
#include <support/request_mix.hpp>

namespace fuse_backend::testing {
namespace {

constexpr int rounds = 20;

// Serves `mix` once to warm up (first-use allocations: a thread's scratch buffers, hash tables
// growing), then `rounds` more times interleaved, as a kernel sends them; each request must still
// answer as expected and have allocated nothing. Nothing else allocates while counting.
template <class Fs>
void expect_no_allocations(InMemoryServer<Fs>& served, const RequestMix& mix) {
  for (const auto& request : mix)
    ASSERT_EQ(served.serve(request.message), request.error) << request.name;
  std::vector<std::uint64_t> allocations(mix.size());
  std::vector<int> errors(mix.size());
  for (int round = 0; round < rounds; ++round) {
    for (std::size_t i = 0; i < mix.size(); ++i) {
      const std::uint64_t before = allocation_count();
      errors[i] = served.serve(mix[i].message);
      allocations[i] += allocation_count() - before;
    }
  }
  for (std::size_t i = 0; i < mix.size(); ++i) {
    EXPECT_EQ(errors[i], mix[i].error) << mix[i].name;
    EXPECT_EQ(allocations[i], 0u) << mix[i].name << ": operator new calls in " << rounds
                                  << " requests";
  }
}

TEST(RequestAllocations, CounterSeesOperatorNew) {
  const std::uint64_t before = allocation_count();
  ::operator delete(::operator new(1));
  ::operator delete(::operator new(1, std::align_val_t{64}), std::align_val_t{64});
  EXPECT_EQ(allocation_count() - before, 2u);
}

TEST(RequestAllocations, ServerAllocatesNothing) {
  ConstantFs fs;
  InMemoryServer served(fs);
  ASSERT_TRUE(served.initialized());
  expect_no_allocations(served, constant_fs_mix());
}

TEST(RequestAllocations, PassthroughAllocatesNothingInSteadyState) {
  PassthroughScene scene;
  expect_no_allocations(scene.served(), scene.steady_mix());
}

}  // namespace
}  // namespace fuse_backend::testing
