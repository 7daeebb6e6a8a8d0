// Hostile and malformed requests: each gets the right errno, or is dropped where the protocol
// has no reply, and nothing reaches the filesystem half-decoded. Run under ASan/UBSan in CI.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <atomic>
#include <thread>

#include "server_fixture.hpp"

namespace fuse_backend::testing {
namespace {

using abi::opcode;

TEST_F(ServerTest, TruncatedHeaderIsDropped) {
  auto message = MessageBuilder(opcode::lookup).name("x").build();
  for (std::size_t size = 0; size < sizeof(abi::in_header); ++size) {
    std::vector<std::byte> truncated(message.begin(), message.begin() + static_cast<std::ptrdiff_t>(size));
    exchange(truncated);
    EXPECT_EQ(writer.commits(), 0u) << size;
    ASSERT_TRUE(last_disposition);
    EXPECT_EQ(*last_disposition, api::Disposition::dropped);
  }
  EXPECT_EQ(fs.calls.size(), 0u);
}

TEST_F(ServerTest, LengthLargerThanTheDataIsEinval) {
  auto message = MessageBuilder(opcode::lookup).name("name").build();
  expect_reply(MessageBuilder(opcode::lookup).name("name").build(static_cast<std::uint32_t>(message.size() + 1)), EINVAL);
  expect_reply(MessageBuilder(opcode::lookup).name("name").build(~0u), EINVAL);
  expect_reply(MessageBuilder(opcode::lookup).name("name").build(10), EINVAL);  // shorter than a header
  EXPECT_TRUE(fs.calls.empty() || fs.last().op != "lookup");
}

TEST_F(ServerTest, LengthSmallerThanTheDataCutsTheRequest) {
  // len covers the header and "na" only: the name has no NUL inside the request.
  expect_reply(MessageBuilder(opcode::lookup).name("name").build(sizeof(abi::in_header) + 2), EINVAL);
  // len covers "ab\0" exactly, followed by garbage the server must not read.
  auto message = MessageBuilder(opcode::lookup).name("ab").bytes(64, std::byte{'z'}).build(sizeof(abi::in_header) + 3);
  expect_reply(message);
  EXPECT_EQ(fs.last().names, std::vector<std::string>{"ab"});
}

TEST_F(ServerTest, NamesWithoutNulOrEmptyOrOversizedAreEinval) {
  expect_reply(MessageBuilder(opcode::lookup).bytes(std::as_bytes(std::span("abc", 3))).build(), EINVAL);
  expect_reply(MessageBuilder(opcode::lookup).name("").build(), EINVAL);
  expect_reply(MessageBuilder(opcode::lookup).name(std::string(1025, 'n')).build(), EINVAL);
  expect_reply(MessageBuilder(opcode::lookup).name(std::string(1024, 'n')).build());
  expect_reply(MessageBuilder(opcode::rename, 1).add(abi::rename_in{1}).name("only-one").build(), EINVAL);
  expect_reply(MessageBuilder(opcode::symlink, 1).name("l").name(std::string(4096, 't')).build(), EINVAL);
  expect_reply(MessageBuilder(opcode::setxattr, 1).add(abi::setxattr_in{4, 0, 0, 0}).name(std::string(256, 'x')).bytes(4, std::byte{1}).build(),
               EINVAL);
}

TEST_F(ServerTest, MissingFixedArgumentsAreEinval) {
  for (auto op : {opcode::getattr, opcode::setattr, opcode::mknod, opcode::mkdir, opcode::link, opcode::open,
                  opcode::read, opcode::write, opcode::release, opcode::fsync, opcode::getxattr, opcode::listxattr,
                  opcode::flush, opcode::opendir, opcode::readdir, opcode::releasedir, opcode::fsyncdir,
                  opcode::getlk, opcode::setlk, opcode::setlkw, opcode::access, opcode::create, opcode::bmap,
                  opcode::ioctl, opcode::poll, opcode::fallocate, opcode::readdirplus, opcode::rename2, opcode::lseek,
                  opcode::copy_file_range, opcode::setupmapping, opcode::removemapping, opcode::syncfs,
                  opcode::tmpfile, opcode::statx, opcode::copy_file_range_64, opcode::rename}) {
    fs.calls.clear();
    expect_reply(MessageBuilder(op, 1).bytes(3, std::byte{0}).build(), EINVAL);
    EXPECT_TRUE(fs.calls.empty()) << abi::opcode_name(static_cast<std::uint32_t>(op));
  }
}

TEST_F(ServerTest, OpsWithoutReplyStayQuietWhenMalformed) {
  expect_no_reply(MessageBuilder(opcode::forget, 1).bytes(3, std::byte{0}).build());
  expect_no_reply(MessageBuilder(opcode::interrupt, 1).build());
  expect_no_reply(MessageBuilder(opcode::notify_reply, 1).bytes(7, std::byte{0}).build());
  expect_no_reply(MessageBuilder(opcode::forget, 1).add(abi::forget_in{1}).build(1000));
  EXPECT_TRUE(fs.calls.empty());
}

TEST_F(ServerTest, OpsWithoutReplyStayQuietWithMalformedExtensions) {
  for (auto op : {opcode::forget, opcode::interrupt, opcode::batch_forget}) {
    auto message = MessageBuilder(op, 1).add(abi::forget_in{1}).bytes(8, std::byte{0}).build();
    abi::in_header header;
    std::memcpy(&header, message.data(), sizeof(header));
    header.total_extlen = 1;  // the last 8 bytes: an ext_header of size 0
    std::memcpy(message.data(), &header, sizeof(header));
    expect_no_reply(message);
  }
  EXPECT_TRUE(fs.calls.empty());
}

TEST_F(ServerTest, BatchForgetCountBeyondTheMessageForgetsNothing) {
  expect_no_reply(MessageBuilder(opcode::batch_forget, 0).add(abi::batch_forget_in{3, 0}).add(abi::forget_one{5, 1}).build());
  expect_no_reply(MessageBuilder(opcode::batch_forget, 0).add(abi::batch_forget_in{0xffffffffu, 0}).add(abi::forget_one{5, 1}).build());
  EXPECT_TRUE(fs.calls.empty());
}

TEST_F(ServerTest, WriteSizeMustMatchThePayload) {
  abi::write_in in{};
  in.size = 10;
  expect_reply(MessageBuilder(opcode::write, 2).add(in).bytes(5, std::byte{1}).build(), EINVAL);
  in.size = 2;
  expect_reply(MessageBuilder(opcode::write, 2).add(in).bytes(5, std::byte{1}).build(), EINVAL);
  in.size = (1u << 20) + 1;  // above max_write
  expect_reply(MessageBuilder(opcode::write, 2).add(in).bytes(in.size, std::byte{1}).build(), EINVAL);
  EXPECT_TRUE(fs.calls.empty());
}

TEST_F(ServerTest, ReadLargerThanMaxWriteIsEinval) {
  abi::read_in in{};
  in.size = (1u << 20) + 1;
  expect_reply(MessageBuilder(opcode::read, 2).add(in).build(), EINVAL);
  in.size = 0xffffffffu;
  expect_reply(MessageBuilder(opcode::readdir, 2).add(in).build());  // capped, not trusted
}

TEST_F(ServerTest, XattrSizesBeyondTheLimitOrTheMessageAreEinval) {
  expect_reply(MessageBuilder(opcode::setxattr, 1).add(abi::setxattr_in{100, 0, 0, 0}).name("user.a").bytes(10, std::byte{1}).build(),
               EINVAL);
  expect_reply(MessageBuilder(opcode::setxattr, 1).add(abi::setxattr_in{70000, 0, 0, 0}).name("user.a").bytes(70000, std::byte{1}).build(),
               EINVAL);
  // The kernel may ask for more than XATTR_SIZE_MAX; the server caps, it does not overflow.
  expect_reply(MessageBuilder(opcode::getxattr, 1).add(abi::getxattr_in{0xffffffffu, 0}).name("user.a").build());
  abi::ioctl_in ioctl{};
  ioctl.in_size = 100;
  expect_reply(MessageBuilder(opcode::ioctl, 1).add(ioctl).bytes(10, std::byte{1}).build(), EINVAL);
  ioctl.in_size = 0;
  ioctl.out_size = 0xffffffffu;
  expect_reply(MessageBuilder(opcode::ioctl, 1).add(ioctl).build(), EINVAL);
  expect_reply(MessageBuilder(opcode::removemapping, 1).add(abi::removemapping_in{0xffffffffu}).build(), EINVAL);
}

TEST_F(ServerTest, MalformedExtensionsAreEinval) {
  // total_extlen larger than the message.
  auto message = MessageBuilder(opcode::mkdir, 1).add(abi::mkdir_in{0755, 0}).name("d").build();
  abi::in_header header;
  std::memcpy(&header, message.data(), sizeof(header));
  header.total_extlen = 100;
  std::memcpy(message.data(), &header, sizeof(header));
  expect_reply(message, EINVAL);
  // An extension whose size field runs past the end; one whose group count does.
  const std::array<std::uint32_t, 1> one{7};
  for (std::uint32_t bad_size : {0u, 4u, 12u, 64u}) {
    message = MessageBuilder(opcode::mkdir, 1).add(abi::mkdir_in{0755, 0}).name("d").groups(one).build();
    abi::ext_header ext{bad_size, 32};
    std::memcpy(message.data() + message.size() - 16, &ext, sizeof(ext));
    expect_reply(message, EINVAL);
  }
  message = MessageBuilder(opcode::mkdir, 1).add(abi::mkdir_in{0755, 0}).name("d").groups(one).build();
  const std::uint32_t many = 1000;
  std::memcpy(message.data() + message.size() - 8, &many, sizeof(many));
  expect_reply(message, EINVAL);
  EXPECT_TRUE(fs.calls.empty());
}

// An op that blocks until the kernel interrupts it, as a waiting lock would.
struct BlockingFs {
  std::atomic<bool> started{false};
  Result<api::Entry> lookup(const api::Context&, api::InodeId, std::string_view) { return fail(std::errc::no_such_file_or_directory); }
  Result<api::AttrReply> getattr(const api::Context&, api::InodeId, std::optional<api::HandleId>) { return api::AttrReply{}; }
  Result<void> setlk(const api::Context& ctx, api::InodeId, api::HandleId, std::uint64_t, const api::FileLock&,
                     std::uint32_t, bool) {
    started = true;
    while (!ctx.interrupted()) std::this_thread::yield();
    return fail(std::errc::interrupted);
  }
};

TEST(ServerInterrupt, InterruptIsVisibleToTheRunningHandler) {
  BlockingFs fs;
  api::Server<MemoryTransport, BlockingFs> server(fs);
  MemoryWriter init_writer;
  auto init = init_request(7, 45, kernel_offer);
  MemoryReader init_reader(init);
  ASSERT_TRUE(server.handle(init_reader, init_writer));

  const auto lock = MessageBuilder(abi::opcode::setlkw, 5, 1000).add(abi::lk_in{}).build();
  MemoryWriter lock_writer;
  std::thread waiter([&] {
    MemoryReader reader(lock);
    EXPECT_TRUE(server.handle(reader, lock_writer));
  });
  while (!fs.started) std::this_thread::yield();
  // An interrupt for another request changes nothing; ours ends the wait.
  for (std::uint64_t target : {998ull, 1000ull}) {
    const auto interrupt = MessageBuilder(abi::opcode::interrupt, 0, 1001).add(abi::interrupt_in{target}).build();
    MemoryReader reader(interrupt);
    MemoryWriter writer;
    ASSERT_TRUE(server.handle(reader, writer));
    EXPECT_EQ(writer.commits(), 0u);
  }
  waiter.join();
  EXPECT_EQ(ParsedReply::parse(lock_writer.reply()).error(), EINTR);
}

#if defined(__cpp_exceptions)
struct ThrowingFs {
  Result<api::Entry> lookup(const api::Context&, api::InodeId, std::string_view) { throw std::runtime_error("boom"); }
  Result<api::AttrReply> getattr(const api::Context&, api::InodeId, std::optional<api::HandleId>) { return api::AttrReply{}; }
  void forget(const api::Context&, api::InodeId, std::uint64_t) { throw 1; }
};

TEST(ServerExceptions, ExceptionFromTheFilesystemBecomesEio) {
  ThrowingFs fs;
  api::Server<MemoryTransport, ThrowingFs> server(fs);
  MemoryWriter writer;
  auto run = [&](const std::vector<std::byte>& m) {
    MemoryReader reader(m);
    writer.reset();
    EXPECT_TRUE(server.handle(reader, writer));
    return ParsedReply::parse(writer.reply());
  };
  run(init_request(7, 45, 0));
  EXPECT_EQ(run(MessageBuilder(abi::opcode::lookup).name("x").build()).error(), EIO);
  run(MessageBuilder(abi::opcode::forget).add(abi::forget_in{1}).build());
  EXPECT_EQ(writer.commits(), 0u);
}
#endif

}  // namespace
}  // namespace fuse_backend::testing
