// Hostile kernel-format requests through Server<MemoryTransport, PassthroughFs>: names with '/',
// "..", forged and forgotten node ids, handles of other inodes, special files, and a directory
// swapped for a symlink to the outside while requests race against the swap. Nothing outside
// the source directory may change.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <sys/stat.h>
#include <sys/syscall.h>

#include <atomic>
#include <thread>

#include <fuse_backend/api/server.hpp>
#include <support/memory_transport.hpp>
#include <support/message_builder.hpp>

#include "passthrough_fixture.hpp"

namespace fuse_backend::passthrough::testing {
namespace {

using fuse_backend::testing::init_request;
using fuse_backend::testing::kernel_offer;
using fuse_backend::testing::MessageBuilder;
using fuse_backend::testing::MemoryTransport;
using fuse_backend::testing::ParsedReply;
using Server = api::Server<MemoryTransport, PassthroughFs>;
using Op = abi::opcode;


class PassthroughWireTest : public PassthroughTest {
 protected:
  void start(Config config = {}) {
    config.xattr = true;
    make(config);
    server_.emplace(*fs_);
    ASSERT_EQ(exchange(init_request(7, 45, kernel_offer)).error(), 0);
  }
  void TearDown() override {
    expect_outside_untouched();
    server_.reset();
    PassthroughTest::TearDown();
  }

  ParsedReply exchange(const std::vector<std::byte>& message) {
    fuse_backend::testing::MemoryWriter writer;
    fuse_backend::testing::MemoryReader reader(message);
    (void)server_->handle(reader, writer);
    return ParsedReply::parse(writer.reply());
  }
  ParsedReply lookup_request(std::uint64_t parent, std::string_view name) {
    return exchange(MessageBuilder(Op::lookup, parent).name(name).build());
  }
  std::uint64_t lookup_id(std::uint64_t parent, std::string_view name) {
    auto reply = lookup_request(parent, name);
    EXPECT_EQ(reply.error(), 0) << name;
    return reply.as<abi::entry_out>().nodeid;
  }
  ParsedReply mkdir_request(std::uint64_t parent, std::string_view name) {
    return exchange(MessageBuilder(Op::mkdir, parent).add(abi::mkdir_in{0777, 0}).name(name).build());
  }
  ParsedReply create_request(std::uint64_t parent, std::string_view name, std::uint32_t flags) {
    return exchange(MessageBuilder(Op::create, parent)
                        .add(abi::create_in{flags, S_IFREG | 0666, 0, 0})
                        .name(name)
                        .build());
  }
  ParsedReply open_request(std::uint64_t inode, std::uint32_t flags) {
    return exchange(MessageBuilder(Op::open, inode).add(abi::open_in{flags, 0}).build());
  }
  ParsedReply read_request(std::uint64_t inode, std::uint64_t fh) {
    abi::read_in in{};
    in.fh = fh;
    in.size = 4096;
    return exchange(MessageBuilder(Op::read, inode).add(in).build());
  }

  std::optional<Server> server_;
};

TEST_F(PassthroughWireTest, HostileNamesAreRejected) {
  fs::create_directories(source_ / "d");
  start();
  for (std::string_view name : {"../outside", "../outside/sentinel", "d/../../outside", "/etc"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(lookup_request(1, name).error(), EINVAL);
    EXPECT_EQ(mkdir_request(1, name).error(), EINVAL);
    EXPECT_EQ(create_request(1, name, O_RDWR | O_CREAT).error(), EINVAL);
    EXPECT_EQ(exchange(MessageBuilder(Op::unlink, 1).name(name).build()).error(), EINVAL);
    EXPECT_EQ(exchange(MessageBuilder(Op::symlink, 1).name("x").name(name).build()).error(), 0);
    EXPECT_EQ(exchange(MessageBuilder(Op::unlink, 1).name("x").build()).error(), 0);
    EXPECT_EQ(exchange(MessageBuilder(Op::rename2, 1)
                           .add(abi::rename2_in{1, 0, 0})
                           .name("d")
                           .name(name)
                           .build())
                  .error(),
              EINVAL);
  }
  // ".." at the root stays at the root, at any depth of repetition.
  EXPECT_EQ(lookup_id(1, ".."), 1u);
  const auto d = lookup_id(1, "d");
  EXPECT_EQ(lookup_id(d, ".."), 1u);
  EXPECT_EQ(lookup_id(lookup_id(1, ".."), ".."), 1u);
  EXPECT_EQ(mkdir_request(1, "..").error(), EINVAL);
  EXPECT_TRUE(fs::is_directory(source_ / "d"));
}

TEST_F(PassthroughWireTest, ForgottenAndForgedNodeIdsFindNothing) {
  write_file(source_ / "f", "secret");
  start();
  const auto f = lookup_id(1, "f");
  exchange(MessageBuilder(Op::forget, f).add(abi::forget_in{1}).build());
  for (std::uint64_t id : {f, std::uint64_t{0}, std::uint64_t{77777}, ~std::uint64_t{0}}) {
    SCOPED_TRACE(id);
    EXPECT_EQ(exchange(MessageBuilder(Op::getattr, id).add(abi::getattr_in{}).build()).error(), ESTALE);
    EXPECT_EQ(open_request(id, O_RDONLY).error(), ESTALE);
    EXPECT_EQ(lookup_request(id, "f").error(), ESTALE);
    EXPECT_EQ(mkdir_request(id, "m").error(), ESTALE);
  }
  EXPECT_FALSE(fs::exists(source_ / "m"));
}

TEST_F(PassthroughWireTest, HandlesOfOtherInodesAndForgedHandlesAreRefused) {
  write_file(source_ / "a", "AAAA");
  write_file(source_ / "b", "BBBB");
  start();
  const auto a = lookup_id(1, "a");
  const auto b = lookup_id(1, "b");
  auto opened = open_request(a, O_RDWR);
  ASSERT_EQ(opened.error(), 0);
  const auto fh = opened.as<abi::open_out>().fh;
  EXPECT_EQ(read_request(a, fh).text(), "AAAA");
  EXPECT_EQ(read_request(b, fh).error(), EBADF);
  EXPECT_EQ(read_request(a, fh + 1000).error(), EBADF);
  abi::write_in in{};
  in.fh = fh;
  in.size = 2;
  EXPECT_EQ(exchange(MessageBuilder(Op::write, b).add(in).bytes(2, std::byte{'X'}).build()).error(), EBADF);
  EXPECT_EQ(read_file(source_ / "b"), "BBBB");
}

TEST_F(PassthroughWireTest, SymlinksAndSpecialFilesAreNeverOpened) {
  fs::create_symlink("/", source_ / "root");
  fs::create_symlink("../outside/sentinel", source_ / "sentinel");
  ASSERT_EQ(::mkfifo((source_ / "fifo").c_str(), 0666), 0);
  start();
  const auto root = lookup_id(1, "root");
  EXPECT_EQ(lookup_request(root, "etc").error(), ENOTDIR);
  EXPECT_EQ(exchange(MessageBuilder(Op::opendir, root).add(abi::open_in{}).build()).error(), ENOTDIR);
  const auto sentinel = lookup_id(1, "sentinel");
  EXPECT_EQ(open_request(sentinel, O_RDWR | O_TRUNC).error(), ELOOP);
  EXPECT_EQ(create_request(1, "sentinel", O_WRONLY | O_CREAT | O_TRUNC).error(), ELOOP);
  // Without SETXATTR_EXT (not negotiated) setxattr_in is its 8-byte compat form.
  const std::uint32_t xattr[2] = {4, 0};
  EXPECT_EQ(exchange(MessageBuilder(Op::setxattr, sentinel).add(xattr).name("user.evil").bytes(4, std::byte{'e'}).build())
                .error(),
            EPERM);
  abi::setattr_in truncate{};
  truncate.valid = abi::fattr::size;
  EXPECT_EQ(exchange(MessageBuilder(Op::setattr, sentinel).add(truncate).build()).error(), EINVAL);
  // Opening the fifo for reading would block the worker forever.
  EXPECT_EQ(open_request(lookup_id(1, "fifo"), O_RDONLY).error(), ENXIO);
  // A hard link of the symlink is a symlink, not a second name of the sentinel.
  // (As root: protected_hardlinks keeps others from linking files they do not own.)
  EXPECT_EQ(exchange(MessageBuilder(Op::link, 1).caller(0, 0, 1).add(abi::link_in{sentinel}).name("hard").build())
                .error(),
            0);
  EXPECT_TRUE(fs::is_symlink(source_ / "hard"));
}

// A directory and a symlink to the outside trade places (RENAME_EXCHANGE, atomically) as fast
// as possible while LOOKUP + MKDIR/CREATE/SYMLINK requests race the swap. Whatever a LOOKUP
// returned, creating in it lands inside the source.
TEST_F(PassthroughWireTest, DirectorySwappedWithSymlinkDuringRequests) {
  fs::create_directories(source_ / "d");
  fs::create_directory_symlink("../outside", source_ / "swap");
  start();
  std::atomic<bool> stop{false};
  std::thread swapper([&] {
    const int dir = ::open(source_.c_str(), O_PATH | O_DIRECTORY);
    while (!stop.load()) {
      ::syscall(SYS_renameat2, dir, "d", dir, "swap", RENAME_EXCHANGE);
      ::usleep(20);  // leave the directory lock to the requests now and then
    }
    ::close(dir);
  });
  int inside = 0;
  for (int i = 0; i < 600; ++i) {
    const std::string name = "x" + std::to_string(i);
    auto found = lookup_request(1, (i % 2) != 0 ? "d" : "swap");
    if (found.error() != 0) continue;
    const auto node = found.as<abi::entry_out>().nodeid;
    if (mkdir_request(node, name).error() == 0) ++inside;
    if (create_request(node, name + "f", O_RDWR | O_CREAT).error() == 0) ++inside;
    exchange(MessageBuilder(Op::symlink, node).name(name + "s").name("t").build());
    exchange(MessageBuilder(Op::forget, node).add(abi::forget_in{1}).build());
  }
  stop = true;
  swapper.join();
  EXPECT_GT(inside, 0);  // the race did let requests through to the real directory
}

TEST_F(PassthroughWireTest, SupplementaryGroupsFromTheRequestAreHonoured) {
  fs::create_directories(source_ / "group");
  ::chown((source_ / "group").c_str(), 0, 6000);
  ::chmod((source_ / "group").c_str(), 0770);
  start();
  const auto group = lookup_id(1, "group");
  EXPECT_EQ(exchange(MessageBuilder(Op::mkdir, group).caller(1000, 1000, 1).add(abi::mkdir_in{0755, 0}).name("no").build())
                .error(),
            EACCES);
  const std::uint32_t gids[] = {6000};
  auto made = exchange(
      MessageBuilder(Op::mkdir, group).caller(1000, 1000, 1).add(abi::mkdir_in{0755, 0}).name("yes").groups(gids).build());
  ASSERT_EQ(made.error(), 0);
  EXPECT_EQ(made.as<abi::entry_out>().attr.uid, 1000u);
}

}  // namespace
}  // namespace fuse_backend::passthrough::testing
