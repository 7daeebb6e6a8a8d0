// Request-path microbenchmarks: decode -> dispatch -> encode per opcode through the in-memory
// transport, with heap allocations counted per request (target: 0 in steady state).
//
// The filesystem answers from constants, so the figures are the Server's own cost. Run:
//   build/release/bench/server_bench --benchmark_counters_tabular=true
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <benchmark/benchmark.h>

#include "allocation_counter.hpp"

#include <fuse_backend/api/server.hpp>
#include <support/memory_transport.hpp>
#include <support/message_builder.hpp>

namespace {

using namespace fuse_backend;
using abi::opcode;

// Answers every op from constants without allocating.
struct ConstantFs {
  api::Entry entry{api::InodeId{2}, 1, {}, 0, std::chrono::seconds(1), std::chrono::seconds(1)};
  Result<api::Entry> lookup(const api::Context&, api::InodeId, std::string_view) { return entry; }
  Result<api::AttrReply> getattr(const api::Context&, api::InodeId, std::optional<api::HandleId>) {
    return api::AttrReply{entry.attr, 0, std::chrono::seconds(1)};
  }
  void forget(const api::Context&, api::InodeId, std::uint64_t) {}
  Result<api::OpenReply> open(const api::Context&, api::InodeId, std::uint32_t, std::uint32_t) { return api::OpenReply{}; }
  Result<std::size_t> read(const api::Context&, api::InodeId, api::HandleId, api::ZeroCopyWriter& out, std::uint32_t size,
                           std::uint64_t, std::uint32_t) {
    static const std::array<std::byte, 4096> page{};
    return out.write(std::span(page).first(std::min<std::size_t>(size, page.size())));
  }
  Result<std::size_t> write(const api::Context&, api::InodeId, api::HandleId, api::ZeroCopyReader& in, std::uint32_t,
                            std::uint64_t, std::uint32_t) {
    std::array<std::byte, 4096> sink;
    return in.read(sink);
  }
  Result<void> readdir(const api::Context&, api::InodeId, api::HandleId, std::uint64_t offset, api::DirSink& sink) {
    for (std::uint64_t i = offset; i < 32; ++i) {
      if (!sink.add(api::DirEntry{i + 10, i + 1, 8, "some-file-name"})) break;
    }
    return {};
  }
};

using BenchServer = api::Server<testing::MemoryTransport, ConstantFs>;

void run_request(benchmark::State& state, const std::vector<std::byte>& message) {
  ConstantFs fs;
  BenchServer server(fs);
  testing::MemoryWriter writer;
  const auto init = testing::init_request(7, 45, 0x73fffffbull | (0x7fdull << 32));
  testing::MemoryReader init_reader(init);
  if (!server.handle(init_reader, writer)) state.SkipWithError("init failed");
  const std::uint64_t before = bench::allocation_count();
  for (auto _ : state) {
    testing::MemoryReader reader(message);
    writer.reset();
    auto done = server.handle(reader, writer);
    benchmark::DoNotOptimize(done);
  }
  state.counters["allocs/op"] =
      benchmark::Counter(static_cast<double>(bench::allocation_count() - before), benchmark::Counter::kAvgIterations);
}

void BM_Lookup(benchmark::State& state) { run_request(state, testing::MessageBuilder(opcode::lookup).name("a-file-name").build()); }
void BM_Getattr(benchmark::State& state) { run_request(state, testing::MessageBuilder(opcode::getattr).add(abi::getattr_in{}).build()); }
void BM_Forget(benchmark::State& state) { run_request(state, testing::MessageBuilder(opcode::forget).add(abi::forget_in{1}).build()); }
void BM_Open(benchmark::State& state) { run_request(state, testing::MessageBuilder(opcode::open).add(abi::open_in{}).build()); }
void BM_Read4k(benchmark::State& state) {
  abi::read_in in{};
  in.size = 4096;
  run_request(state, testing::MessageBuilder(opcode::read).add(in).build());
}
void BM_Write4k(benchmark::State& state) {
  abi::write_in in{};
  in.size = 4096;
  run_request(state, testing::MessageBuilder(opcode::write).add(in).bytes(4096, std::byte{7}).build());
}
void BM_Readdir(benchmark::State& state) {
  abi::read_in in{};
  in.size = 4096;
  run_request(state, testing::MessageBuilder(opcode::readdir).add(in).build());
}
void BM_UnknownOpcode(benchmark::State& state) {
  run_request(state, testing::MessageBuilder(static_cast<opcode>(999)).build());
}

BENCHMARK(BM_Lookup);
BENCHMARK(BM_Getattr);
BENCHMARK(BM_Forget);
BENCHMARK(BM_Open);
BENCHMARK(BM_Read4k);
BENCHMARK(BM_Write4k);
BENCHMARK(BM_Readdir);
BENCHMARK(BM_UnknownOpcode);

}  // namespace

BENCHMARK_MAIN();
