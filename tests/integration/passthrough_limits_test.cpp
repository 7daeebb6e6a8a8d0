// PassthroughFs against host conditions a unit test cannot make: directory entries longer than
// NAME_MAX from a FUSE filesystem mounted as the source,
// listed through the Server's own DirPacker; and blocking locks on a real /dev/fuse mount.
// Needs root and /dev/fuse.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <dirent.h>
#include <signal.h>

#include <fuse_backend/api/server.hpp>
#include <support/memory_transport.hpp>
#include <support/message_builder.hpp>

#include "passthrough_mount_fixture.hpp"

namespace fuse_backend::passthrough::testing {
namespace {

using fuse_backend::testing::init_request;
using fuse_backend::testing::MessageBuilder;
using fuse_backend::testing::ParsedReply;

// A root directory listing a name of 600 bytes (> NAME_MAX) and then "z"; each entry's cookie
// is its index + 1. (A name over the 1024 bytes a FUSE record carries cannot come from a FUSE
// source: the kernel refuses such records.)
struct LongNamesFs {
  const std::string long_name = std::string(600, 'a');

  static struct stat attr(std::uint64_t id) {
    struct stat st {};
    st.st_ino = id;
    st.st_mode = id == 1 ? S_IFDIR | 0755 : S_IFREG | 0644;
    st.st_nlink = 1;
    return st;
  }
  Result<api::Entry> lookup(const api::Context&, api::InodeId, std::string_view name) {
    if (name != "z") return fail(std::errc::no_such_file_or_directory);
    api::Entry entry;
    entry.inode = api::InodeId{2};
    entry.attr = attr(2);
    return entry;
  }
  Result<api::AttrReply> getattr(const api::Context&, api::InodeId id, std::optional<api::HandleId>) {
    api::AttrReply reply;
    reply.attr = attr(static_cast<std::uint64_t>(id));
    return reply;
  }
  Result<api::OpenReply> opendir(const api::Context&, api::InodeId, std::uint32_t) {
    return api::OpenReply{};
  }
  Result<void> readdir(const api::Context&, api::InodeId, api::HandleId, std::uint64_t offset,
                       api::DirSink& sink) {
    const std::string_view names[] = {long_name, "z"};
    for (std::uint64_t i = offset; i < 2; ++i) {
      if (!sink.add(api::DirEntry{i + 2, i + 1, DT_REG, names[i]})) break;
    }
    return {};
  }
};

// The names of the dirent or direntplus records in a READDIR(PLUS) reply, and the node ids.
struct Listing {
  std::vector<std::string> names;
  std::vector<std::uint64_t> nodes;
};
Listing parse_listing(std::span<const std::byte> payload, bool plus) {
  Listing out;
  std::size_t at = 0;
  while (at < payload.size()) {
    std::uint64_t node = 0;
    if (plus) {
      abi::entry_out entry;
      std::memcpy(&entry, payload.data() + at, sizeof entry);
      node = entry.nodeid;
      at += sizeof entry;
    }
    abi::dirent dirent;
    std::memcpy(&dirent, payload.data() + at, sizeof dirent);
    out.names.emplace_back(reinterpret_cast<const char*>(payload.data() + at + sizeof dirent),
                           dirent.namelen);
    out.nodes.push_back(node);
    at += (sizeof dirent + dirent.namelen + 7) & ~std::size_t{7};
  }
  return out;
}

TEST(PassthroughLongNames, ListedWithoutOverflowAndNeverEndTheListing) {
  LongNamesFs names;
  fuse_backend::testing::ServedMount<LongNamesFs> source(names);
  ASSERT_TRUE(source.ok()) << source.error();
  auto created = PassthroughFs::create({.source = source.path()});
  ASSERT_TRUE(created);
  api::Server<fuse_backend::testing::MemoryTransport, PassthroughFs> server(**created);
  auto exchange = [&](const std::vector<std::byte>& message) {
    fuse_backend::testing::MemoryWriter writer;
    fuse_backend::testing::MemoryReader reader(message);
    (void)server.handle(reader, writer);
    return ParsedReply::parse(writer.reply());
  };
  ASSERT_EQ(exchange(init_request(7, 45, ~std::uint64_t{0} >> 1)).error(), 0);
  auto opened = exchange(MessageBuilder(abi::opcode::opendir, 1).add(abi::open_in{O_RDONLY, 0}).build());
  ASSERT_EQ(opened.error(), 0);
  const std::uint64_t fh = opened.as<abi::open_out>().fh;
  for (const auto op : {abi::opcode::readdir, abi::opcode::readdirplus}) {
    const bool plus = op == abi::opcode::readdirplus;
    abi::read_in in{};
    in.fh = fh;
    in.size = 65536;
    auto reply = exchange(MessageBuilder(op, 1).add(in).build());
    ASSERT_EQ(reply.error(), 0);
    const Listing listing = parse_listing(reply.payload, plus);
    // The 600-byte name is listed (READDIRPLUS: without attributes, the host cannot look it
    // up; it used to overflow a NAME_MAX buffer), and so is "z" after it.
    ASSERT_EQ(listing.names.size(), 2u) << (plus ? "readdirplus" : "readdir");
    EXPECT_EQ(listing.names[0], names.long_name);
    EXPECT_EQ(listing.names[1], "z");
    if (plus) {
      EXPECT_EQ(listing.nodes[0], 0u);
      EXPECT_NE(listing.nodes[1], 0u);
    }
  }
}

// On /dev/fuse a contended F_SETLKW answers EOPNOTSUPP at once by default (Config::
// max_lock_waiters 0) instead of holding a worker; with a waiter allowed it waits and is granted.
TEST_F(PassthroughMount, BlockingLocksWaitOnlyWithinTheLimit) {
  for (const std::size_t waiters : {std::size_t{0}, std::size_t{1}}) {
    Config config = uncached();
    config.max_lock_waiters = waiters;
    start(config, 2);
    write_file(path("f"), "0123456789");
    UniqueFd fd = open_file(path("f"), O_RDWR);
    struct flock whole {};
    whole.l_type = F_WRLCK;
    whole.l_whence = SEEK_SET;
    ASSERT_EQ(::fcntl(fd.get(), F_SETLK, &whole), 0) << errno_text();
    const std::string file = path("f");
    UniqueFd ready_pipe[2];
    int ends[2];
    ASSERT_EQ(::pipe(ends), 0);
    ready_pipe[0] = UniqueFd(ends[0]);
    ready_pipe[1] = UniqueFd(ends[1]);
    const pid_t child = ::fork();
    if (child == 0) {
      ::alarm(10);  // a hung wait ends the child (the test fails) instead of the test run
      const int other = ::open(file.c_str(), O_RDWR);
      struct flock mine = whole;
      (void)::write(ends[1], "x", 1);
      if (::fcntl(other, F_SETLKW, &mine) == 0) ::_exit(0);
      ::_exit(errno == EOPNOTSUPP ? 10 : 20);
    }
    ChildGuard guard(child);
    char byte;
    ASSERT_EQ(::read(ends[0], &byte, 1), 1);
    if (waiters == 1) {
      ::usleep(200 * 1000);  // the child is waiting now
      whole.l_type = F_UNLCK;
      ASSERT_EQ(::fcntl(fd.get(), F_SETLK, &whole), 0) << errno_text();
    }
    const int status = guard.wait();
    ASSERT_TRUE(WIFEXITED(status)) << "F_SETLKW hung (killed by signal " << WTERMSIG(status) << ")";
    EXPECT_EQ(WEXITSTATUS(status), waiters == 0 ? 10 : 0) << "max_lock_waiters " << waiters;
    fd.reset();
    stop();
  }
}

}  // namespace
}  // namespace fuse_backend::passthrough::testing
