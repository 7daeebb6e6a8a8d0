// Request-path microbenchmarks: decode -> dispatch -> encode per request through the in-memory
// transport, with heap allocations counted per request (target: 0 in steady state, which
// tests/unit/api/request_allocations_test.cpp requires of the same requests).
//
// BM_<Op>: Server<MemoryTransport, ConstantFs>, whose filesystem answers from constants, so the
// figures are the Server's own cost. BM_Passthrough<Op>: a real PassthroughFs over a temporary
// directory (tests/support/passthrough_scene.hpp), host system calls included. Run:
//   build/release/bench/server_bench --benchmark_counters_tabular=true
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <utility>

#include <support/allocation_counter.hpp>
#include <support/constant_fs.hpp>
#include <support/in_memory_server.hpp>
#include <support/passthrough_scene.hpp>
#include <support/request_mix.hpp>

namespace {

using namespace fuse_backend;

// Serves `request` once per iteration, after checking that it answers as it should.
template <class Fs>
void serve(benchmark::State& state, testing::InMemoryServer<Fs>& served,
           const testing::NamedRequest& request) {
  if (served.serve(request.message) != request.error) {
    state.SkipWithError("unexpected reply");
    return;
  }
  const std::uint64_t before = testing::allocation_count();
  for (auto _ : state) benchmark::DoNotOptimize(served.serve(request.message));
  state.counters["allocs/op"] =
      benchmark::Counter(static_cast<double>(testing::allocation_count() - before),
                         benchmark::Counter::kAvgIterations);
}

// One benchmark BM_<prefix><request name> per request of `mix`, all served by `served`.
template <class Fs>
void register_mix(const std::string& prefix, testing::InMemoryServer<Fs>& served,
                  testing::RequestMix mix) {
  for (auto& request : mix) {
    const std::string name = "BM_" + prefix + request.name;
    benchmark::RegisterBenchmark(name.c_str(),
                                 [&served, request = std::move(request)](benchmark::State& state) {
                                   serve(state, served, request);
                                 });
  }
}

}  // namespace

int main(int argc, char** argv) {
  testing::ConstantFs constant;
  testing::InMemoryServer constant_served(constant);
  register_mix("", constant_served, testing::constant_fs_mix());
  testing::PassthroughScene scene;
  register_mix("Passthrough", scene.served(), scene.steady_mix());

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
