// Every opcode through the Server: the filesystem sees exactly the decoded arguments and the
// reply bytes are exactly what the kernel expects.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fcntl.h>
#include <sys/xattr.h>

#include "server_fixture.hpp"

namespace fuse_backend::testing {
namespace {

using abi::opcode;

void expect_canned_entry(const abi::entry_out& out) {
  EXPECT_EQ(out.nodeid, 42u);
  EXPECT_EQ(out.generation, 7u);
  EXPECT_EQ(out.entry_valid, 2u);
  EXPECT_EQ(out.entry_valid_nsec, 0u);
  EXPECT_EQ(out.attr_valid, 1u);
  EXPECT_EQ(out.attr_valid_nsec, 500'000'000u);
  EXPECT_EQ(out.attr.ino, 42u);
  EXPECT_EQ(out.attr.mode, S_IFREG | 0644u);
  EXPECT_EQ(out.attr.size, 16u);
}

TEST_F(ServerTest, LookupDecodesNameAndEncodesEntry) {
  auto reply = expect_reply(MessageBuilder(opcode::lookup, 5, 10).caller(1, 2, 3).name("hello").build());
  ASSERT_EQ(reply.payload.size(), sizeof(abi::entry_out));
  expect_canned_entry(reply.as<abi::entry_out>());
  const auto& call = fs.last();
  EXPECT_EQ(call.op, "lookup");
  EXPECT_EQ(call.inode, api::InodeId{5});
  EXPECT_EQ(call.names, std::vector<std::string>{"hello"});
  EXPECT_EQ(call.uid, 1u);
  EXPECT_EQ(call.gid, 2u);
  EXPECT_EQ(call.pid, 3u);
  EXPECT_EQ(call.unique, 10u);
}

TEST_F(ServerTest, ErrorsCarryNegativeErrnoAndNoPayload) {
  fs.fail_with = std::errc::no_such_file_or_directory;
  expect_reply(MessageBuilder(opcode::lookup).name("x").build(), ENOENT);
}

TEST_F(ServerTest, ErrnoOutsideKernelRangeBecomesEio) {
  fs.fail_with = static_cast<std::errc>(600);
  expect_reply(MessageBuilder(opcode::lookup).name("x").build(), EIO);
  fs.fail_with = static_cast<std::errc>(0);
  expect_reply(MessageBuilder(opcode::lookup).name("x").build(), EIO);
}

TEST_F(ServerTest, ForgetAndBatchForgetReachTheFilesystemWithoutReply) {
  expect_no_reply(MessageBuilder(opcode::forget, 9).add(abi::forget_in{3}).build());
  EXPECT_EQ(fs.last().op, "forget");
  EXPECT_EQ(fs.last().inode, api::InodeId{9});
  EXPECT_EQ(fs.last().numbers, std::vector<std::uint64_t>{3});

  MessageBuilder batch(opcode::batch_forget, 0);
  batch.add(abi::batch_forget_in{100, 0});
  std::vector<std::uint64_t> expected;
  for (std::uint64_t i = 0; i < 100; ++i) {
    batch.add(abi::forget_one{i + 2, i + 1});
    expected.push_back(i + 2);
    expected.push_back(i + 1);
  }
  fs.calls.clear();
  expect_no_reply(batch.build());
  std::vector<std::uint64_t> seen;
  for (const auto& call : fs.calls) {
    EXPECT_EQ(call.op, "batch_forget");
    seen.insert(seen.end(), call.numbers.begin(), call.numbers.end());
  }
  EXPECT_EQ(seen, expected);
}

TEST_F(ServerTest, GetattrPassesHandleOnlyWhenFlagged) {
  auto reply = expect_reply(MessageBuilder(opcode::getattr, 42).add(abi::getattr_in{0, 0, 55}).build());
  EXPECT_FALSE(fs.last().handle.has_value());
  const auto out = reply.as<abi::attr_out>();
  ASSERT_EQ(reply.payload.size(), sizeof(abi::attr_out));
  EXPECT_EQ(out.attr_valid, 1u);
  EXPECT_EQ(out.attr_valid_nsec, 500'000'000u);
  EXPECT_EQ(out.attr.size, 16u);
  expect_reply(MessageBuilder(opcode::getattr, 42).add(abi::getattr_in{abi::getattr_flags::fh, 0, 55}).build());
  EXPECT_EQ(fs.last().handle, api::HandleId{55});
}

TEST_F(ServerTest, SetattrDecodesEveryField) {
  abi::setattr_in in{};
  in.valid = abi::fattr::mode | abi::fattr::size | abi::fattr::mtime | abi::fattr::fh;
  in.fh = 8;
  in.mode = 0600;
  in.size = 1234;
  in.mtime = 99;
  in.mtimensec = 5;
  in.uid = 11;
  in.gid = 12;
  expect_reply(MessageBuilder(opcode::setattr, 3).add(in).build());
  EXPECT_EQ(fs.last().numbers, (std::vector<std::uint64_t>{in.valid, 0600, 11, 12, 1234, 99, 5}));
  EXPECT_EQ(fs.last().handle, api::HandleId{8});
}

TEST_F(ServerTest, ReadlinkRepliesTargetWithoutNul) {
  auto reply = expect_reply(MessageBuilder(opcode::readlink, 4).build());
  EXPECT_EQ(reply.text(), "target/of/link");
}

TEST_F(ServerTest, CreatingOpsPassUmaskModeAndNames) {
  expect_reply(MessageBuilder(opcode::symlink, 2).name("link").name("/some/target").build());
  EXPECT_EQ(fs.last().names, (std::vector<std::string>{"/some/target", "link"}));

  expect_canned_entry(expect_reply(MessageBuilder(opcode::mknod, 2).add(abi::mknod_in{S_IFIFO | 0644, 77, 022, 0})
                                       .name("fifo").build()).as<abi::entry_out>());
  EXPECT_EQ(fs.last().numbers, (std::vector<std::uint64_t>{S_IFIFO | 0644, 77}));
  EXPECT_EQ(fs.last().umask, 022u);

  expect_reply(MessageBuilder(opcode::mkdir, 2).add(abi::mkdir_in{0755, 077}).name("dir").build());
  EXPECT_EQ(fs.last().numbers, std::vector<std::uint64_t>{0755});
  EXPECT_EQ(fs.last().umask, 077u);

  auto reply = expect_reply(MessageBuilder(opcode::create, 2).add(abi::create_in{O_RDWR | O_CREAT, 0640, 002, 0})
                                .name("file").build());
  ASSERT_EQ(reply.payload.size(), sizeof(abi::entry_out) + sizeof(abi::open_out));
  expect_canned_entry(reply.as<abi::entry_out>());
  const auto open = reply.as<abi::open_out>(sizeof(abi::entry_out));
  EXPECT_EQ(open.fh, 98u);
  EXPECT_EQ(open.open_flags, abi::fopen::direct_io);
  EXPECT_EQ(fs.last().numbers, (std::vector<std::uint64_t>{0640, O_RDWR | O_CREAT}));
  EXPECT_EQ(fs.last().umask, 002u);

  reply = expect_reply(MessageBuilder(opcode::tmpfile, 2).add(abi::create_in{O_RDWR, 0600, 022, 0}).build());
  EXPECT_EQ(reply.as<abi::open_out>(sizeof(abi::entry_out)).fh, 97u);
  EXPECT_EQ(fs.last().op, "tmpfile");
}

TEST_F(ServerTest, UnlinkRmdirRenameLink) {
  expect_reply(MessageBuilder(opcode::unlink, 2).name("f").build());
  EXPECT_EQ(fs.last().op, "unlink");
  expect_reply(MessageBuilder(opcode::rmdir, 2).name("d").build());
  EXPECT_EQ(fs.last().op, "rmdir");
  expect_reply(MessageBuilder(opcode::rename, 2).add(abi::rename_in{3}).name("old").name("new").build());
  EXPECT_EQ(fs.last().numbers, (std::vector<std::uint64_t>{3, 0}));
  EXPECT_EQ(fs.last().names, (std::vector<std::string>{"old", "new"}));
  expect_reply(MessageBuilder(opcode::rename2, 2).add(abi::rename2_in{4, RENAME_EXCHANGE, 0}).name("a").name("b").build());
  EXPECT_EQ(fs.last().numbers, (std::vector<std::uint64_t>{4, RENAME_EXCHANGE}));
  expect_canned_entry(expect_reply(MessageBuilder(opcode::link, 6).add(abi::link_in{9}).name("hard").build())
                          .as<abi::entry_out>());
  EXPECT_EQ(fs.last().inode, api::InodeId{9});
  EXPECT_EQ(fs.last().numbers, std::vector<std::uint64_t>{6});
}

TEST_F(ServerTest, OpenReadWriteFlushReleaseFsync) {
  auto reply = expect_reply(MessageBuilder(opcode::open, 42).add(abi::open_in{O_RDONLY, abi::open_flags::kill_suidgid}).build());
  EXPECT_EQ(reply.as<abi::open_out>().fh, 99u);
  EXPECT_EQ(reply.as<abi::open_out>().open_flags, abi::fopen::keep_cache);
  EXPECT_EQ(fs.last().numbers, (std::vector<std::uint64_t>{O_RDONLY, abi::open_flags::kill_suidgid}));

  abi::read_in read{};
  read.fh = 99;
  read.offset = 4;
  read.size = 6;
  read.flags = O_RDONLY;
  reply = expect_reply(MessageBuilder(opcode::read, 42).add(read).build());
  EXPECT_EQ(reply.text(), "456789");
  EXPECT_EQ(fs.last().handle, api::HandleId{99});
  EXPECT_EQ(fs.last().numbers, (std::vector<std::uint64_t>{6, 4, O_RDONLY}));

  abi::write_in write{};
  write.fh = 99;
  write.offset = 1000;
  write.size = 5;
  write.write_flags = abi::write_flags::kill_suidgid;
  write.flags = O_WRONLY | O_APPEND;
  reply = expect_reply(MessageBuilder(opcode::write, 42).add(write).name("data").build());  // 4 chars + NUL = 5
  EXPECT_EQ(reply.as<abi::write_out>().size, 5u);
  EXPECT_EQ(fs.last().names[0], std::string("data\0", 5));
  EXPECT_EQ(fs.last().numbers, (std::vector<std::uint64_t>{5, 1000, abi::write_flags::kill_suidgid,
                                                        O_WRONLY | O_APPEND}));

  expect_reply(MessageBuilder(opcode::flush, 42).add(abi::flush_in{99, 0, 0, 1234}).build());
  EXPECT_EQ(fs.last().numbers, std::vector<std::uint64_t>{1234});
  expect_reply(MessageBuilder(opcode::fsync, 42).add(abi::fsync_in{99, abi::fsync_flags::fdatasync, 0}).build());
  EXPECT_EQ(fs.last().numbers, std::vector<std::uint64_t>{1});
  expect_reply(MessageBuilder(opcode::release, 42).add(abi::release_in{99, O_RDONLY, abi::release_flags::flush, 5}).build());
  EXPECT_EQ(fs.last().numbers, (std::vector<std::uint64_t>{O_RDONLY, abi::release_flags::flush, 5}));
  EXPECT_EQ(fs.last().handle, api::HandleId{99});
}

TEST_F(ServerTest, StatfsEncodesKstatfs) {
  const auto out = expect_reply(MessageBuilder(opcode::statfs, 1).build()).as<abi::statfs_out>();
  EXPECT_EQ(out.st.blocks, 1000u);
  EXPECT_EQ(out.st.bfree, 500u);
  EXPECT_EQ(out.st.bavail, 400u);
  EXPECT_EQ(out.st.files, 300u);
  EXPECT_EQ(out.st.ffree, 200u);
  EXPECT_EQ(out.st.bsize, 4096u);
  EXPECT_EQ(out.st.namelen, 255u);
}

TEST_F(ServerTest, XattrOps) {
  const std::string value = "some\0value";
  MessageBuilder set(opcode::setxattr, 3);
  set.add(abi::setxattr_in{static_cast<std::uint32_t>(value.size()), XATTR_CREATE, abi::setxattr_flags::acl_kill_sgid, 0})
      .name("user.k")
      .bytes(std::as_bytes(std::span(value.data(), value.size())));
  expect_reply(set.build());
  EXPECT_EQ(fs.last().names, (std::vector<std::string>{"user.k", value}));
  EXPECT_EQ(fs.last().numbers, (std::vector<std::uint64_t>{XATTR_CREATE, abi::setxattr_flags::acl_kill_sgid}));

  // size 0 asks for the size only.
  auto reply = expect_reply(MessageBuilder(opcode::getxattr, 3).add(abi::getxattr_in{0, 0}).name("user.k").build());
  EXPECT_EQ(reply.as<abi::getxattr_out>().size, fs.xattr_value.size());
  reply = expect_reply(MessageBuilder(opcode::getxattr, 3).add(abi::getxattr_in{100, 0}).name("user.k").build());
  EXPECT_EQ(reply.text(), fs.xattr_value);
  expect_reply(MessageBuilder(opcode::getxattr, 3).add(abi::getxattr_in{3, 0}).name("user.k").build(), ERANGE);

  reply = expect_reply(MessageBuilder(opcode::listxattr, 3).add(abi::getxattr_in{0, 0}).build());
  EXPECT_EQ(reply.as<abi::getxattr_out>().size, 14u);
  reply = expect_reply(MessageBuilder(opcode::listxattr, 3).add(abi::getxattr_in{64, 0}).build());
  EXPECT_EQ(reply.text(), std::string_view("user.a\0user.b\0", 14));

  expect_reply(MessageBuilder(opcode::removexattr, 3).name("user.k").build());
  EXPECT_EQ(fs.last().names, std::vector<std::string>{"user.k"});
}

TEST_F(ServerTest, LocksAccessBmapPollLseekFallocate) {
  abi::lk_in lk{};
  lk.fh = 7;
  lk.owner = 0xabc;
  lk.lk = abi::file_lock{10, 20, F_WRLCK, 321};
  auto reply = expect_reply(MessageBuilder(opcode::getlk, 5).add(lk).build());
  EXPECT_EQ(reply.as<abi::lk_out>().lk.type, 2u);
  EXPECT_EQ(reply.as<abi::lk_out>().lk.start, 10u);
  EXPECT_EQ(fs.last().numbers, (std::vector<std::uint64_t>{0xabc, 10, 20, F_WRLCK, 321, 0}));
  lk.lk_flags = abi::lk_flags::flock;
  expect_reply(MessageBuilder(opcode::setlk, 5).add(lk).build());
  EXPECT_EQ(fs.last().numbers.back(), 0u);  // no wait
  expect_reply(MessageBuilder(opcode::setlkw, 5).add(lk).build());
  EXPECT_EQ(fs.last().numbers.back(), 1u);  // wait
  EXPECT_EQ(fs.last().numbers[5], abi::lk_flags::flock);

  expect_reply(MessageBuilder(opcode::access, 5).add(abi::access_in{R_OK | W_OK, 0}).build());
  EXPECT_EQ(fs.last().numbers, std::vector<std::uint64_t>{R_OK | W_OK});
  EXPECT_EQ(expect_reply(MessageBuilder(opcode::bmap, 5).add(abi::bmap_in{21, 512, 0}).build()).as<abi::bmap_out>().block, 42u);
  EXPECT_EQ(expect_reply(MessageBuilder(opcode::poll, 5).add(abi::poll_in{7, 8, 0, 5}).build()).as<abi::poll_out>().revents, 1u);
  EXPECT_EQ(fs.last().numbers, (std::vector<std::uint64_t>{8, 0, 5}));
  EXPECT_EQ(expect_reply(MessageBuilder(opcode::lseek, 5).add(abi::lseek_in{7, 1000, SEEK_DATA, 0}).build())
                .as<abi::lseek_out>().offset, 1100u);
  expect_reply(MessageBuilder(opcode::fallocate, 5).add(abi::fallocate_in{7, 4096, 8192, 1, 0}).build());
  EXPECT_EQ(fs.last().numbers, (std::vector<std::uint64_t>{1, 4096, 8192}));
}

TEST_F(ServerTest, CopyFileRangeRepliesInBothWidths) {
  const abi::copy_file_range_in in{1, 2, 3, 4, 5, (1ull << 33) + 7, 0};
  // 32-bit reply caps at UINT32_MAX; the caller continues from there.
  EXPECT_EQ(expect_reply(MessageBuilder(opcode::copy_file_range, 9).add(in).build()).as<abi::write_out>().size, UINT32_MAX);
  auto reply = expect_reply(MessageBuilder(opcode::copy_file_range_64, 9).add(in).build());
  EXPECT_EQ(reply.as<abi::copy_file_range_out>().bytes_copied, (1ull << 33) + 7);
  EXPECT_EQ(fs.last().numbers, (std::vector<std::uint64_t>{1, 2, 3, 4, 5, (1ull << 33) + 7, 0}));
}

TEST_F(ServerTest, DirectoryOps) {
  auto reply = expect_reply(MessageBuilder(opcode::opendir, 1).add(abi::open_in{O_RDONLY, 0}).build());
  EXPECT_EQ(reply.as<abi::open_out>().fh, 77u);
  abi::read_in read{};
  read.fh = 77;
  read.size = 4096;
  reply = expect_reply(MessageBuilder(opcode::readdir, 1).add(read).build());
  ASSERT_EQ(reply.payload.size(), abi::dirent_size(1) + abi::dirent_size(2) + abi::dirent_size(3));
  std::size_t at = 0;
  for (std::size_t k = 0; k < 3; ++k) {
    const auto d = reply.as<abi::dirent>(at);
    EXPECT_EQ(d.ino, 100 + k);
    EXPECT_EQ(d.off, k + 1);
    EXPECT_EQ(d.namelen, k + 1);
    EXPECT_EQ(d.type, 8u);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(reply.payload.data()) + at + abi::dirent_name_offset, d.namelen),
              fs.dir_names[k]);
    at += abi::dirent_size(d.namelen);
  }
  reply = expect_reply(MessageBuilder(opcode::readdirplus, 1).add(read).build());
  ASSERT_EQ(reply.payload.size(), abi::direntplus_size(1) + abi::direntplus_size(2) + abi::direntplus_size(3));
  expect_canned_entry(reply.as<abi::direntplus>().entry_out);
  EXPECT_EQ(reply.as<abi::direntplus>().dirent.namelen, 1u);

  expect_reply(MessageBuilder(opcode::fsyncdir, 1).add(abi::fsync_in{77, 0, 0}).build());
  EXPECT_EQ(fs.last().op, "fsyncdir");
  expect_reply(MessageBuilder(opcode::releasedir, 1).add(abi::release_in{77, 0, 0, 0}).build());
  EXPECT_EQ(fs.last().op, "releasedir");
}

TEST_F(ServerTest, ReaddirStopsAtTheKernelsBufferSizeExactly) {
  abi::read_in read{};
  // Room for exactly the first two records: the third must not be started.
  read.size = static_cast<std::uint32_t>(abi::dirent_size(1) + abi::dirent_size(2));
  EXPECT_EQ(expect_reply(MessageBuilder(opcode::readdir, 1).add(read).build()).payload.size(), read.size);
  read.size -= 1;
  EXPECT_EQ(expect_reply(MessageBuilder(opcode::readdir, 1).add(read).build()).payload.size(), abi::dirent_size(1));
  read.size = 0;
  EXPECT_TRUE(expect_reply(MessageBuilder(opcode::readdir, 1).add(read).build()).payload.empty());
  // Continue from a cookie.
  read.size = 4096;
  read.offset = 2;
  auto reply = expect_reply(MessageBuilder(opcode::readdirplus, 1).add(read).build());
  EXPECT_EQ(reply.payload.size(), abi::direntplus_size(3));
}

TEST_F(ServerTest, IoctlRestrictedOnly) {
  abi::ioctl_in in{};
  in.fh = 7;
  in.cmd = 0x1234;
  in.arg = 0xdead;
  in.in_size = 3;
  in.out_size = 4;
  auto reply = expect_reply(MessageBuilder(opcode::ioctl, 5).add(in).bytes(std::as_bytes(std::span("abc", 3))).build());
  ASSERT_EQ(reply.payload.size(), sizeof(abi::ioctl_out) + 4);
  EXPECT_EQ(reply.as<abi::ioctl_out>().result, 5);
  EXPECT_EQ(reply.payload.back(), std::byte{3});
  EXPECT_EQ(fs.last().names, std::vector<std::string>{"abc"});
  in.flags = abi::ioctl_flags::unrestricted;
  expect_reply(MessageBuilder(opcode::ioctl, 5).add(in).bytes(std::as_bytes(std::span("abc", 3))).build(), ENOSYS);
}

TEST_F(ServerTest, StatxSyncfsAndDestroy) {
  abi::statx_in in{};
  in.getattr_flags = abi::getattr_flags::fh;
  in.fh = 3;
  in.sx_mask = 0x7ff;
  auto reply = expect_reply(MessageBuilder(opcode::statx, 42).add(in).build());
  ASSERT_EQ(reply.payload.size(), sizeof(abi::statx_out));
  const auto out = reply.as<abi::statx_out>();
  EXPECT_EQ(out.attr_valid, 3u);
  EXPECT_EQ(out.stat.mask, 0x7ffu);
  EXPECT_EQ(out.stat.ino, 42u);
  EXPECT_EQ(out.stat.btime.tv_sec, 1234);
  EXPECT_EQ(fs.last().handle, api::HandleId{3});

  expect_reply(MessageBuilder(opcode::syncfs, 1).add(abi::syncfs_in{0}).build());
  EXPECT_EQ(fs.last().op, "syncfs");
  expect_reply(MessageBuilder(opcode::destroy, 1).build());
  EXPECT_EQ(fs.destroyed, 1);
  EXPECT_TRUE(server.destroyed());
  EXPECT_FALSE(server.initialized());
  // After DESTROY only INIT is served (a virtio-fs guest remounting).
  expect_reply(MessageBuilder(opcode::statfs, 1).build(), EIO);
  expect_reply(init_request(7, 45, kernel_offer));
  EXPECT_TRUE(server.initialized());
  EXPECT_FALSE(server.destroyed());
}

TEST_F(ServerTest, RetrieveReplyDeliversDataWithoutReply) {
  abi::notify_retrieve_in in{};
  in.offset = 4096;
  in.size = 5;
  expect_no_reply(MessageBuilder(opcode::notify_reply, 8, 1234).add(in).name("abcd").build());
  EXPECT_EQ(fs.last().op, "retrieve_reply");
  EXPECT_EQ(fs.last().numbers, (std::vector<std::uint64_t>{1234, 4096}));
  EXPECT_EQ(fs.last().names[0], std::string("abcd\0", 5));
}

TEST_F(ServerTest, DaxMappingWithoutMapperIsEnosys) {
  expect_reply(MessageBuilder(opcode::setupmapping, 5).add(abi::setupmapping_in{1, 0, 4096, abi::setupmapping_flags::read, 0}).build(),
               ENOSYS);
  expect_reply(MessageBuilder(opcode::removemapping, 5).add(abi::removemapping_in{1}).add(abi::removemapping_one{0, 4096}).build(),
               ENOSYS);
}

class RecordingMapper final : public api::DaxMapper {
 public:
  std::vector<std::uint64_t> events;
  Result<void> map(std::uint64_t w, int, std::uint64_t f, std::uint64_t l, std::uint32_t) noexcept override {
    events.insert(events.end(), {1, w, f, l});
    return {};
  }
  Result<void> unmap(std::uint64_t w, std::uint64_t l) noexcept override {
    events.insert(events.end(), {2, w, l});
    return {};
  }
};

TEST(ServerDax, MappingsReachTheMapper) {
  RecordingFs fs;
  RecordingMapper mapper;
  api::ServerOptions options;
  options.dax_mapper = &mapper;
  RecordingServer server(fs, options);
  MemoryWriter writer;
  auto run = [&](const std::vector<std::byte>& m) {
    MemoryReader reader(m);
    writer.reset();
    EXPECT_TRUE(server.handle(reader, writer));
    return ParsedReply::parse(writer.reply());
  };
  ASSERT_EQ(run(init_request(7, 45, 0)).error(), 0);
  EXPECT_EQ(run(MessageBuilder(abi::opcode::setupmapping, 5).add(abi::setupmapping_in{1, 8192, 4096, 1, 65536}).build()).error(), 0);
  EXPECT_EQ(run(MessageBuilder(abi::opcode::removemapping, 5).add(abi::removemapping_in{2})
                    .add(abi::removemapping_one{65536, 4096}).add(abi::removemapping_one{0, 8192}).build()).error(), 0);
  EXPECT_EQ(mapper.events, (std::vector<std::uint64_t>{1, 65536, 8192, 4096, 2, 65536, 4096, 2, 0, 8192}));
}

TEST_F(ServerTest, CuseInitAndUnknownOpcodesAreEnosys) {
  expect_reply(MessageBuilder(opcode::cuse_init).add(abi::cuse_init_in{7, 45, 0, 0}).build(), ENOSYS);
  expect_reply(MessageBuilder(static_cast<opcode>(19)).build(), ENOSYS);
  expect_reply(MessageBuilder(static_cast<opcode>(9999)).bytes(100, std::byte{1}).build(), ENOSYS);
}

TEST_F(ServerTest, SupplementaryGroupsExtensionReachesContext) {
  const std::array<std::uint32_t, 2> groups{50, 60};
  expect_reply(MessageBuilder(opcode::mkdir, 1).add(abi::mkdir_in{0755, 0}).name("d").groups(groups).build());
  EXPECT_EQ(fs.last().groups, (std::vector<std::uint32_t>{50, 60}));
  EXPECT_EQ(fs.last().names, std::vector<std::string>{"d"});
}

}  // namespace
}  // namespace fuse_backend::testing
