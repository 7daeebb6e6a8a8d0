// INIT negotiation: versions, flag intersection, sizes across protocol minors.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <atomic>
#include <chrono>
#include <thread>

#include "server_fixture.hpp"

namespace fuse_backend::testing {
namespace {

namespace flags = abi::init_flags;

// A filesystem with only the core ops: no readdirplus, no locks, no init().
struct CoreFs {
  Result<api::Entry> lookup(const api::Context&, api::InodeId, std::string_view) { return fail(std::errc::no_such_file_or_directory); }
  Result<api::AttrReply> getattr(const api::Context&, api::InodeId, std::optional<api::HandleId>) { return api::AttrReply{}; }
};

template <class Fs>
ParsedReply run_init(api::Server<MemoryTransport, Fs>& server, const std::vector<std::byte>& message) {
  MemoryReader reader(message);
  MemoryWriter writer;
  EXPECT_TRUE(server.handle(reader, writer));
  return ParsedReply::parse(writer.reply());
}

std::uint64_t reply_flags(const ParsedReply& reply) {
  const auto out = reply.as<abi::init_out>();
  return abi::init_flags_from(out.flags, out.flags2);
}

TEST(ServerInit, ModernKernelGetsOurVersionAndSizes) {
  RecordingFs fs;
  api::ServerOptions options;
  options.max_write = 256 * 1024;
  options.max_readahead = 64 * 1024;
  RecordingServer server(fs, options);
  const auto reply = run_init(server, init_request(7, 45, kernel_offer, 128 * 1024));
  ASSERT_EQ(reply.error(), 0);
  ASSERT_EQ(reply.payload.size(), sizeof(abi::init_out));
  const auto out = reply.as<abi::init_out>();
  EXPECT_EQ(out.major, 7u);
  EXPECT_EQ(out.minor, 45u);
  EXPECT_EQ(out.max_write, 256u * 1024);
  EXPECT_EQ(out.max_pages, 64u);
  EXPECT_EQ(out.max_readahead, 64u * 1024);  // min(kernel, ours)
  EXPECT_EQ(out.time_gran, 1u);
  EXPECT_EQ(server.protocol_minor(), 45u);
  EXPECT_EQ(server.buffer_size(), 256u * 1024 + 4096);
}

TEST(ServerInit, FlagsAreKernelOfferIntersectFilesystemIntersectUser) {
  RecordingFs fs;
  api::ServerOptions options;
  options.enabled_init_flags = ~flags::writeback_cache;  // the user forbids writeback
  RecordingServer server(fs, options);
  fs.init_wants = flags::writeback_cache | flags::async_read | flags::passthrough | flags::do_readdirplus |
                  flags::over_io_uring;
  const std::uint64_t offer = flags::async_read | flags::writeback_cache | flags::passthrough | flags::init_ext |
                              flags::posix_locks;
  const auto reply = run_init(server, init_request(7, 45, offer));
  // over_io_uring: not possible for us; do_readdirplus/writeback: not offered or not allowed.
  EXPECT_EQ(reply_flags(reply), flags::async_read | flags::passthrough);
  EXPECT_EQ(server.negotiated_flags(), flags::async_read | flags::passthrough);
  EXPECT_EQ(fs.init_offered, offer & ~flags::writeback_cache);
  EXPECT_EQ(reply.as<abi::init_out>().max_stack_depth, 1u);  // required with passthrough
}

TEST(ServerInit, WithoutInitTheServerEnablesOnlyWhatOpsBack) {
  CoreFs fs;
  api::Server<MemoryTransport, CoreFs> server(fs);
  const auto reply = run_init(server, init_request(7, 45, kernel_offer));
  const auto negotiated = reply_flags(reply);
  EXPECT_EQ(negotiated & flags::do_readdirplus, 0u);
  EXPECT_EQ(negotiated & flags::posix_locks, 0u);
  EXPECT_EQ(negotiated & flags::flock_locks, 0u);
  EXPECT_EQ(negotiated & flags::writeback_cache, 0u);  // opt-in only
  EXPECT_EQ(negotiated & flags::passthrough, 0u);
  EXPECT_NE(negotiated & flags::async_read, 0u);
  EXPECT_NE(negotiated & flags::max_pages, 0u);

  RecordingFs full;
  full.init_wants = 0;
  RecordingServer full_server(full);
  run_init(full_server, init_request(7, 45, kernel_offer));
  EXPECT_NE(full.init_offered & flags::do_readdirplus, 0u);
  EXPECT_NE(full.init_offered & flags::posix_locks, 0u);
  EXPECT_EQ(full_server.negotiated_flags(), 0u);
}

TEST(ServerInit, OldMinorSendsShortInitAndGetsNoFlags2) {
  RecordingFs fs;
  RecordingServer server(fs);
  // 7.31 (Linux 5.4): 16-byte init_in, no INIT_EXT.
  const auto reply = run_init(server, init_request(7, 31, kernel_offer & 0xffffffffu & ~flags::init_ext));
  ASSERT_EQ(reply.error(), 0);
  const auto out = reply.as<abi::init_out>();
  EXPECT_EQ(out.minor, 45u);  // the kernel adapts to the lower of the two
  EXPECT_EQ(out.flags2, 0u);
  EXPECT_EQ(out.flags & flags::init_ext, 0u);
  EXPECT_EQ(server.protocol_minor(), 31u);
}

TEST(ServerInit, MissingInitExtIgnoresFlags2) {
  RecordingFs fs;
  RecordingServer server(fs);
  const auto reply = run_init(server, init_request(7, 45, (kernel_offer & ~flags::init_ext)));
  EXPECT_EQ(reply.as<abi::init_out>().flags2, 0u);
  EXPECT_EQ(server.negotiated_flags() >> 32, 0u);
}

TEST(ServerInit, MajorAboveSevenGetsOurVersionOnly) {
  RecordingFs fs;
  RecordingServer server(fs);
  const auto reply = run_init(server, init_request(8, 0, kernel_offer));
  ASSERT_EQ(reply.error(), 0);
  EXPECT_EQ(reply.as<abi::init_out>().major, 7u);
  EXPECT_EQ(reply.as<abi::init_out>().minor, 45u);
  EXPECT_EQ(reply.as<abi::init_out>().flags, 0u);
  EXPECT_FALSE(server.initialized());
}

TEST(ServerInit, TooOldOrTooShortIsRefused) {
  RecordingFs fs;
  RecordingServer server(fs);
  EXPECT_EQ(run_init(server, init_request(7, 26, 0)).error(), EPROTO);
  EXPECT_EQ(run_init(server, init_request(6, 45, 0)).error(), EPROTO);
  EXPECT_EQ(run_init(server, MessageBuilder(abi::opcode::init, 0).add(std::uint64_t{7}).build()).error(), EINVAL);
  EXPECT_FALSE(server.initialized());
}

TEST(ServerInit, RequestsBeforeInitGetEio) {
  RecordingFs fs;
  RecordingServer server(fs);
  EXPECT_EQ(run_init(server, MessageBuilder(abi::opcode::lookup).name("x").build()).error(), EIO);
  EXPECT_TRUE(fs.calls.empty());
}

TEST(ServerInit, SecondInitResetsTheFilesystemFirst) {
  RecordingFs fs;
  RecordingServer server(fs);
  run_init(server, init_request(7, 45, kernel_offer));
  run_init(server, init_request(7, 38, kernel_offer));
  EXPECT_EQ(fs.destroyed, 1);
  EXPECT_EQ(server.protocol_minor(), 38u);
}

// virtio-fs queues are served concurrently: DESTROYs (and INITs) arriving at once on two of them
// destroy the filesystem once per session, not once each.
TEST(ServerInit, ConcurrentDestroysDestroyOnce) {
  struct CountingFs : CoreFs {
    std::atomic<int> destroyed{0};
    void destroy() {
      destroyed.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::microseconds(200));  // a teardown takes a while
    }
  } fs;
  api::Server<MemoryTransport, CountingFs> server(fs);
  constexpr int sessions = 20;
  for (int session = 0; session < sessions; ++session) {
    ASSERT_EQ(run_init(server, init_request(7, 45, kernel_offer)).error(), 0);
    std::atomic<int> ready{0};
    auto destroy = [&](std::uint64_t unique) {
      ready.fetch_add(1);
      while (ready.load() < 2) {
      }
      (void)run_init(server, MessageBuilder(abi::opcode::destroy, 0, unique).build());
    };
    std::thread other(destroy, 2);
    destroy(4);
    other.join();
  }
  EXPECT_EQ(fs.destroyed.load(), sessions);
}

TEST(ServerInit, MaxWriteIsClampedToSaneBounds) {
  RecordingFs fs;
  api::ServerOptions options;
  options.max_write = 1;
  RecordingServer small(fs, options);
  EXPECT_EQ(small.max_write(), 4096u);
  options.max_write = ~0u;
  RecordingServer large(fs, options);
  EXPECT_EQ(large.max_write(), 4096u * 4096);
  // Whole pages only: the kernel's full-size READ (max_pages pages) must not exceed max_write.
  options.max_write = 10000;
  RecordingServer odd(fs, options);
  EXPECT_EQ(odd.max_write(), 8192u);
  const auto reply = run_init(odd, init_request(7, 45, kernel_offer));
  EXPECT_EQ(reply.as<abi::init_out>().max_write, 8192u);
  EXPECT_EQ(reply.as<abi::init_out>().max_pages, 2u);
}

}  // namespace
}  // namespace fuse_backend::testing
