// virtio transport microbenchmarks: the descriptor-chain walk (direct chains, an indirect table
// as Linux builds for a 1 MiB WRITE), and a request's header read plus reply commit through the
// chain reader/writer, with heap allocations counted per iteration (target: 0).
//
// Run: build/release/bench/virtio_chain_bench --benchmark_counters_tabular=true
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <benchmark/benchmark.h>

#include <vector>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/transport/virtio/chain_io.hpp>
#include <fuse_backend/transport/virtio/descriptor_chain.hpp>
#include <fuse_backend/transport/virtio/virtqueue.hpp>
#include <support/allocation_counter.hpp>
#include <support/message_builder.hpp>
#include <support/virtio_driver.hpp>

namespace {

using namespace fuse_backend;
namespace virtio = transport::virtio;
using testing::VirtioDriver;

struct Fixture {
  VirtioDriver driver;
  virtio::Virtqueue queue;
  virtio::DescriptorChain chain;
  std::uint16_t head = 0;

  // A chain of `readable` + `writable` page-sized buffers, indirect or not.
  Fixture(std::size_t readable, std::size_t writable, bool indirect)
      : driver([] {
          VirtioDriver::Options options;
          options.queue_size = 256;
          options.features = virtio::features::indirect_desc;
          options.region_sizes = {std::uint64_t{8} << 20};
          return options;
        }()) {
    driver.start(queue);
    std::vector<VirtioDriver::Buffer> buffers;
    for (std::size_t i = 0; i < readable + writable; ++i)
      buffers.push_back({driver.alloc(4096, 4096), 4096, i >= readable});
    head = driver.post(buffers, indirect);
    auto popped = queue.pop();
    if (!popped || !*popped) std::abort();
  }
};

void report(benchmark::State& state, std::uint64_t before) {
  state.counters["allocs/op"] = benchmark::Counter(static_cast<double>(testing::allocation_count() - before) /
                                                   static_cast<double>(state.iterations()));
}

void BM_WalkDirect(benchmark::State& state) {
  Fixture f(2, 1, false);
  const auto table = f.queue.descriptor_table();
  (void)f.chain.walk(table, f.head);  // reserve the segment lists once
  const std::uint64_t before = testing::allocation_count();
  for (auto _ : state) {
    auto error = f.chain.walk(table, f.head);
    benchmark::DoNotOptimize(error);
  }
  report(state, before);
}
BENCHMARK(BM_WalkDirect);

// Linux's WRITE of 1 MiB: in_header + write_in, then 256 data pages, then out_header + write_out.
void BM_WalkIndirectWrite1MiB(benchmark::State& state) {
  Fixture f(258, 2, true);
  const auto table = f.queue.descriptor_table();
  (void)f.chain.walk(table, f.head);
  const std::uint64_t before = testing::allocation_count();
  for (auto _ : state) {
    auto error = f.chain.walk(table, f.head);
    benchmark::DoNotOptimize(error);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 260);
  report(state, before);
}
BENCHMARK(BM_WalkIndirectWrite1MiB);

// Reading a request header split over two descriptors and committing a 64-byte reply; the
// used-ring push is included, the ring index wraps freely.
void BM_HeaderReadAndReplyCommit(benchmark::State& state) {
  VirtioDriver::Options options;
  options.queue_size = 8;
  VirtioDriver driver(options);
  virtio::Virtqueue queue;
  driver.start(queue);
  const auto request = testing::MessageBuilder(abi::opcode::getattr, 1).add(abi::getattr_in{}).build();
  const std::uint64_t gpa = driver.place(request);
  const std::vector<VirtioDriver::Buffer> buffers{{gpa, 20, false},
                                                  {gpa + 20, static_cast<std::uint32_t>(request.size() - 20), false},
                                                  {driver.alloc(128), 128, true}};
  driver.post(buffers);
  auto popped = queue.pop();
  if (!popped || !*popped) std::abort();
  virtio::DescriptorChain chain;
  (void)chain.walk(queue.descriptor_table(), **popped);
  std::vector<std::byte> bounce(virtio::request_bounce_size);
  const std::vector<std::byte> payload(64);
  const std::uint64_t before = testing::allocation_count();
  for (auto _ : state) {
    virtio::ChainReader reader(chain, bounce);
    auto header = reader.read_bytes(sizeof(abi::in_header));
    auto body = reader.read_bytes(reader.remaining());
    benchmark::DoNotOptimize(header);
    benchmark::DoNotOptimize(body);
    virtio::ChainWriter writer(queue, chain);
    (void)writer.append(payload);
    auto committed = writer.commit(abi::out_header{80, 0, 1});
    benchmark::DoNotOptimize(committed);
  }
  report(state, before);
}
BENCHMARK(BM_HeaderReadAndReplyCommit);

}  // namespace

BENCHMARK_MAIN();
