// Vfs through a real Server over the memory transport: two MemoryFs backends at /a and /b/c.
// Lookup/getattr/readdir across the pseudo/backend boundary, inode translation both ways,
// EXDEV between backends, ENOSYS for ops a backend lacks, forgets routed, INIT flags, umount.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>

#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fuse_backend/api/server.hpp>
#include <fuse_backend/vfs/vfs.hpp>
#include <support/memory_fs.hpp>
#include <support/memory_transport.hpp>
#include <support/message_builder.hpp>
#include <support/recording_fs.hpp>

namespace fuse_backend::testing {
namespace {

using abi::opcode;
using api::AnyFilesystem;
using api::InodeId;
using vfs::Vfs;
namespace flags = abi::init_flags;

constexpr std::uint64_t backend_bit(std::uint64_t index) { return index << Vfs::inode_bits; }

// The core only, to see ENOSYS for everything else.
struct CoreFs {
  Result<api::Entry> lookup(const api::Context&, InodeId, std::string_view) {
    return fail(std::errc::no_such_file_or_directory);
  }
  Result<api::AttrReply> getattr(const api::Context&, InodeId, std::optional<api::HandleId>) {
    api::AttrReply reply;
    reply.attr.st_mode = S_IFDIR | 0755;
    reply.attr.st_ino = 1;
    return reply;
  }
};

// Hands out an inode number that does not fit in 56 bits, and counts the references returned.
struct HugeInodeFs : CoreFs {
  std::atomic<std::uint64_t> forgotten{0};
  Result<api::Entry> lookup(const api::Context&, InodeId, std::string_view) {
    api::Entry entry;
    entry.inode = InodeId{Vfs::max_backend_inode + 1};
    entry.attr.st_mode = S_IFREG | 0644;
    return entry;
  }
  void forget(const api::Context&, InodeId inode, std::uint64_t nlookup) {
    if (inode == InodeId{Vfs::max_backend_inode + 1}) forgotten += nlookup;
  }
};

struct DirRecord {
  std::uint64_t ino;
  std::uint64_t off;
  std::uint32_t type;
  std::uint64_t nodeid;  // readdirplus only
};

class VfsTest : public ::testing::Test {
 protected:
  std::shared_ptr<MemoryFs> a = std::make_shared<MemoryFs>();
  std::shared_ptr<MemoryFs> c = std::make_shared<MemoryFs>();
  Vfs vfs;
  api::Server<MemoryTransport, Vfs> server{vfs};
  MemoryWriter writer;
  std::uint64_t unique = 10;
  api::Context ctx;

  void SetUp() override {
    ASSERT_TRUE(vfs.mount("/a", AnyFilesystem(a)));
    ASSERT_TRUE(vfs.mount("/b/c", AnyFilesystem(c)));
    ASSERT_EQ(exchange(init_request(7, 45, kernel_offer)).error(), 0);
  }

  ParsedReply exchange(const std::vector<std::byte>& message) {
    writer.reset();
    MemoryReader reader(message);
    EXPECT_TRUE(server.handle(reader, writer));
    return ParsedReply::parse(writer.reply());
  }
  MessageBuilder request(opcode op, std::uint64_t nodeid) { return MessageBuilder(op, nodeid, ++unique); }

  abi::entry_out lookup(std::uint64_t parent, std::string_view name, int error = 0) {
    const auto reply = exchange(request(opcode::lookup, parent).name(name).build());
    EXPECT_EQ(reply.error(), error) << name;
    return reply.as<abi::entry_out>();
  }
  abi::attr getattr(std::uint64_t inode, int error = 0) {
    const auto reply = exchange(request(opcode::getattr, inode).add(abi::getattr_in{}).build());
    EXPECT_EQ(reply.error(), error);
    return reply.as<abi::attr_out>().attr;
  }
  abi::entry_out mkdir(std::uint64_t parent, std::string_view name, int error = 0) {
    const auto reply = exchange(request(opcode::mkdir, parent).add(abi::mkdir_in{0755, 0}).name(name).build());
    EXPECT_EQ(reply.error(), error) << name;
    return reply.as<abi::entry_out>();
  }
  int mknod(std::uint64_t parent, std::string_view name) {
    return exchange(request(opcode::mknod, parent).add(abi::mknod_in{S_IFREG | 0644, 0, 0, 0}).name(name).build())
        .error();
  }
  int rename(std::uint64_t from, std::string_view old_name, std::uint64_t to, std::string_view new_name) {
    return exchange(request(opcode::rename, from).add(abi::rename_in{to}).name(old_name).name(new_name).build())
        .error();
  }
  // READDIR / READDIRPLUS from cookie 0 with a large buffer: name -> record.
  std::map<std::string, DirRecord> list(std::uint64_t dir, bool plus) {
    const auto opened = exchange(request(opcode::opendir, dir).add(abi::open_in{}).build());
    EXPECT_EQ(opened.error(), 0);
    abi::read_in in{};
    in.fh = opened.as<abi::open_out>().fh;
    in.size = 64 * 1024;
    const auto reply = exchange(request(plus ? opcode::readdirplus : opcode::readdir, dir).add(in).build());
    EXPECT_EQ(reply.error(), 0);
    std::map<std::string, DirRecord> records;
    std::size_t at = 0;
    while (at < reply.payload.size()) {
      abi::entry_out entry{};
      if (plus) entry = reply.as<abi::entry_out>(at);
      const std::size_t dirent_at = plus ? at + sizeof(abi::entry_out) : at;
      const auto dirent = reply.as<abi::dirent>(dirent_at);
      const std::string name(reply.text().substr(dirent_at + abi::dirent_name_offset, dirent.namelen));
      records[name] = {dirent.ino, dirent.off, dirent.type, entry.nodeid};
      at += plus ? abi::direntplus_size(dirent.namelen) : abi::dirent_size(dirent.namelen);
    }
    EXPECT_EQ(exchange(request(opcode::releasedir, dir).add(abi::release_in{in.fh, 0, 0, 0}).build()).error(), 0);
    return records;
  }
};

TEST_F(VfsTest, LookupCrossesFromPseudoDirectoriesIntoBackendRoots) {
  const auto a_root = lookup(1, "a");
  EXPECT_EQ(a_root.nodeid, backend_bit(1) | 1);
  EXPECT_EQ(a_root.attr.ino, a_root.nodeid);
  EXPECT_EQ(a_root.attr.mode & S_IFMT, static_cast<std::uint32_t>(S_IFDIR));

  const auto b = lookup(1, "b");
  EXPECT_LT(b.nodeid, backend_bit(1));  // a pseudo inode
  EXPECT_NE(b.nodeid, 1u);
  EXPECT_EQ(b.attr.mode & S_IFMT, static_cast<std::uint32_t>(S_IFDIR));
  EXPECT_EQ(getattr(b.nodeid).ino, b.nodeid);

  const auto c_root = lookup(b.nodeid, "c");
  EXPECT_EQ(c_root.nodeid, backend_bit(2) | 1);
  EXPECT_EQ(getattr(c_root.nodeid).ino, c_root.nodeid);
  EXPECT_EQ(getattr(1).mode & S_IFMT, static_cast<std::uint32_t>(S_IFDIR));

  lookup(1, "c", ENOENT);
  lookup(b.nodeid, "a", ENOENT);
  lookup(c_root.nodeid, "missing", ENOENT);
}

TEST_F(VfsTest, InodesTranslateBothWaysAndStayDistinctAcrossBackends) {
  const std::uint64_t a_root = backend_bit(1) | 1;
  const std::uint64_t c_root = backend_bit(2) | 1;
  const auto in_a = mkdir(a_root, "same");
  const auto in_c = mkdir(c_root, "same");
  // The backends number their inodes alike; the Vfs keeps them apart by the high bits.
  const auto backend_a = a->lookup(ctx, api::root_inode, "same");
  const auto backend_c = c->lookup(ctx, api::root_inode, "same");
  ASSERT_TRUE(backend_a && backend_c);
  EXPECT_EQ(backend_a->inode, backend_c->inode);
  EXPECT_EQ(in_a.nodeid, backend_bit(1) | static_cast<std::uint64_t>(backend_a->inode));
  EXPECT_EQ(in_c.nodeid, backend_bit(2) | static_cast<std::uint64_t>(backend_c->inode));
  EXPECT_EQ(in_a.attr.ino, in_a.nodeid);

  // Requests on the translated inode reach the right backend with its own number.
  EXPECT_EQ(mknod(in_a.nodeid, "file"), 0);
  EXPECT_TRUE(a->lookup(ctx, backend_a->inode, "file"));
  EXPECT_FALSE(c->lookup(ctx, backend_c->inode, "file"));
  const auto file = lookup(in_a.nodeid, "file");
  EXPECT_EQ(file.nodeid >> Vfs::inode_bits, 1u);
  EXPECT_EQ(getattr(file.nodeid).ino, file.nodeid);

  // Data goes through with handles untouched.
  const auto opened = exchange(request(opcode::open, file.nodeid).add(abi::open_in{O_RDWR, 0}).build());
  ASSERT_EQ(opened.error(), 0);
  const auto fh = opened.as<abi::open_out>().fh;
  const std::string text = "across the boundary";
  abi::write_in write{};
  write.fh = fh;
  write.size = static_cast<std::uint32_t>(text.size());
  const auto wrote = exchange(request(opcode::write, file.nodeid)
                                  .add(write)
                                  .bytes(std::as_bytes(std::span(text.data(), text.size())))
                                  .build());
  ASSERT_EQ(wrote.error(), 0);
  EXPECT_EQ(wrote.as<abi::write_out>().size, text.size());
  abi::read_in read{};
  read.fh = fh;
  read.size = 100;
  EXPECT_EQ(exchange(request(opcode::read, file.nodeid).add(read).build()).text(), text);
}

TEST_F(VfsTest, ReaddirListsMountPointsAndTranslatesBackendEntries) {
  const auto root = list(1, false);
  ASSERT_EQ(root.size(), 4u);
  EXPECT_TRUE(root.count(".") && root.count(".."));
  EXPECT_EQ(root.at("a").ino, backend_bit(1) | 1);
  EXPECT_EQ(root.at("a").type, static_cast<std::uint32_t>(DT_DIR));
  const auto b = lookup(1, "b").nodeid;
  EXPECT_EQ(root.at("b").ino, b);

  const auto in_b = list(b, false);
  ASSERT_EQ(in_b.size(), 3u);
  EXPECT_EQ(in_b.at("c").ino, backend_bit(2) | 1);

  const std::uint64_t c_root = backend_bit(2) | 1;
  const auto made = mkdir(c_root, "sub");
  ASSERT_EQ(mknod(c_root, "plain"), 0);
  const auto in_c = list(c_root, false);
  EXPECT_EQ(in_c.size(), 4u);
  EXPECT_EQ(in_c.at("sub").ino, made.nodeid);
  EXPECT_EQ(in_c.at("plain").ino >> Vfs::inode_bits, 2u);

  // readdirplus: backend entries carry translated entries (one reference each), pseudo
  // directories their own inode, mount points none (the kernel looks them up).
  const auto plus = list(c_root, true);
  EXPECT_EQ(plus.at("sub").nodeid, made.nodeid);
  const auto sub_backend = static_cast<std::uint64_t>(made.nodeid & Vfs::max_backend_inode);
  EXPECT_EQ(c->lookup_count(InodeId{sub_backend}), 2u);  // mkdir + readdirplus
  const auto root_plus = list(1, true);
  EXPECT_EQ(root_plus.at("b").nodeid, b);
  EXPECT_EQ(root_plus.at("a").nodeid, 0u);
}

TEST_F(VfsTest, PseudoReaddirResumesAtEveryCookie) {
  ASSERT_TRUE(vfs.mount("/z", AnyFilesystem::make<MemoryFs>()));
  const auto all = list(1, false);
  ASSERT_EQ(all.size(), 5u);
  for (const auto& [name, record] : all) {
    abi::read_in in{};
    in.offset = record.off;
    in.size = 4096;
    const auto rest = exchange(request(opcode::readdir, 1).add(in).build());
    std::size_t count = 0;
    for (std::size_t at = 0; at < rest.payload.size(); ++count) {
      at += abi::dirent_size(rest.as<abi::dirent>(at).namelen);
    }
    EXPECT_EQ(count, all.size() - record.off) << name;
  }
}

TEST_F(VfsTest, CrossBackendRenameLinkAndCopyAreExdev) {
  const std::uint64_t a_root = backend_bit(1) | 1;
  const std::uint64_t c_root = backend_bit(2) | 1;
  ASSERT_EQ(mknod(a_root, "f"), 0);
  const auto file = lookup(a_root, "f");
  EXPECT_EQ(rename(a_root, "f", c_root, "g"), EXDEV);
  EXPECT_EQ(rename(a_root, "f", 1, "g"), EXDEV);
  EXPECT_EQ(rename(1, "a", 1, "x"), EPERM);
  EXPECT_EQ(rename(a_root, "f", a_root, "g"), 0);  // within one backend: forwarded
  lookup(a_root, "g");

  EXPECT_EQ(exchange(request(opcode::link, c_root).add(abi::link_in{file.nodeid}).name("l").build()).error(), EXDEV);
  EXPECT_EQ(exchange(request(opcode::link, a_root).add(abi::link_in{file.nodeid}).name("l").build()).error(), 0);

  abi::copy_file_range_in copy{};
  copy.nodeid_out = c_root;
  copy.len = 1;
  EXPECT_EQ(exchange(request(opcode::copy_file_range, file.nodeid).add(copy).build()).error(), EXDEV);
}

TEST_F(VfsTest, OpsABackendLacksAreEnosysAndThePseudoTreeIsReadOnly) {
  ASSERT_TRUE(vfs.umount("/a"));
  // Mounted after INIT, CoreFs cannot back the readdirplus both MemoryFs negotiated.
  EXPECT_EQ(vfs.mount("/core", AnyFilesystem::make<CoreFs>()).error(), std::errc::not_supported);

  Vfs fresh;
  ASSERT_TRUE(fresh.mount("/core", AnyFilesystem::make<CoreFs>()));
  ASSERT_TRUE(fresh.mount("/mem", AnyFilesystem::make<MemoryFs>()));
  api::Server<MemoryTransport, Vfs> other(fresh);
  MemoryWriter out;
  const auto send = [&](const std::vector<std::byte>& message) {
    out.reset();
    MemoryReader reader(message);
    EXPECT_TRUE(other.handle(reader, out));
    return ParsedReply::parse(out.reply());
  };
  ASSERT_EQ(send(init_request(7, 45, kernel_offer)).error(), 0);
  EXPECT_EQ(other.negotiated_flags() & flags::do_readdirplus, 0u);  // CoreFs has no readdirplus
  const std::uint64_t core_root = backend_bit(1) | 1;
  const std::uint64_t mem_root = backend_bit(2) | 1;
  EXPECT_EQ(send(request(opcode::mkdir, core_root).add(abi::mkdir_in{0755, 0}).name("d").build()).error(), ENOSYS);
  EXPECT_EQ(send(request(opcode::opendir, core_root).add(abi::open_in{}).build()).error(), ENOSYS);
  EXPECT_EQ(send(request(opcode::statfs, core_root).build()).error(), ENOSYS);
  EXPECT_EQ(send(request(opcode::getlk, mem_root).add(abi::lk_in{}).build()).error(), ENOSYS);
  EXPECT_EQ(send(request(opcode::mkdir, mem_root).add(abi::mkdir_in{0755, 0}).name("d").build()).error(), 0);

  // The pseudo tree.
  EXPECT_EQ(send(request(opcode::mkdir, 1).add(abi::mkdir_in{0755, 0}).name("d").build()).error(), EPERM);
  EXPECT_EQ(send(request(opcode::unlink, 1).name("mem").build()).error(), EPERM);
  EXPECT_EQ(send(request(opcode::open, 1).add(abi::open_in{}).build()).error(), EISDIR);
  EXPECT_EQ(send(request(opcode::getxattr, 1).add(abi::getxattr_in{0, 0}).name("user.x").build()).error(), ENODATA);
  const auto statfs = send(request(opcode::statfs, 1).build());
  EXPECT_EQ(statfs.error(), 0);
  EXPECT_EQ(statfs.as<abi::statfs_out>().st.namelen, 255u);
  EXPECT_EQ(send(request(opcode::syncfs, 1).add(abi::syncfs_in{}).build()).error(), 0);  // nobody has syncfs
}

TEST_F(VfsTest, ForgetsAreRoutedToTheBackendWithItsOwnInode) {
  const std::uint64_t a_root = backend_bit(1) | 1;
  const auto made = mkdir(a_root, "d");
  lookup(a_root, "d");
  const InodeId backend_inode{made.nodeid & Vfs::max_backend_inode};
  EXPECT_EQ(a->lookup_count(backend_inode), 2u);

  exchange(request(opcode::forget, made.nodeid).add(abi::forget_in{1}).build());
  EXPECT_EQ(writer.commits(), 0u);
  EXPECT_EQ(a->lookup_count(backend_inode), 1u);

  auto recording = std::make_shared<RecordingFs>();
  ASSERT_TRUE(vfs.mount("/r", AnyFilesystem(recording)));
  const std::uint64_t r_root = backend_bit(3) | 1;
  const auto b = lookup(1, "b").nodeid;
  MessageBuilder batch(opcode::batch_forget, 0, ++unique);
  batch.add(abi::batch_forget_in{6, 0})
      .add(abi::forget_one{made.nodeid, 1})
      .add(abi::forget_one{r_root, 5})                // backend root: never forwarded
      .add(abi::forget_one{backend_bit(3) | 9, 2})
      .add(abi::forget_one{b, 1})                     // pseudo: nothing to do
      .add(abi::forget_one{1, 1})                     // the root: nothing to do
      .add(abi::forget_one{backend_bit(77) | 3, 1});  // never mounted: ignored
  exchange(batch.build());
  EXPECT_EQ(writer.commits(), 0u);
  EXPECT_EQ(a->lookup_count(backend_inode), 0u);
  ASSERT_EQ(recording->calls.size(), 1u);
  EXPECT_EQ(recording->last().op, "batch_forget");
  EXPECT_EQ(recording->last().numbers, (std::vector<std::uint64_t>{9, 2}));
}

TEST_F(VfsTest, BackendInodesThatDoNotFitAreEioAndGivenBack) {
  auto huge = std::make_shared<HugeInodeFs>();
  Vfs fresh;
  ASSERT_TRUE(fresh.mount("/h", AnyFilesystem(huge)));
  api::Server<MemoryTransport, Vfs> other(fresh);
  MemoryWriter out;
  const auto send = [&](const std::vector<std::byte>& message) {
    out.reset();
    MemoryReader reader(message);
    EXPECT_TRUE(other.handle(reader, out));
    return ParsedReply::parse(out.reply());
  };
  ASSERT_EQ(send(init_request(7, 45, kernel_offer)).error(), 0);
  EXPECT_EQ(send(request(opcode::lookup, backend_bit(1) | 1).name("x").build()).error(), EIO);
  EXPECT_EQ(huge->forgotten.load(), 1u);
}

TEST_F(VfsTest, UmountMakesTheBackendStaleAndIndicesAreNotReused) {
  const std::uint64_t a_root = backend_bit(1) | 1;
  const auto made = mkdir(a_root, "d");
  EXPECT_EQ(vfs.umount("/b").error(), std::errc::invalid_argument);  // a pseudo directory
  EXPECT_EQ(vfs.umount("/nope").error(), std::errc::no_such_file_or_directory);
  EXPECT_EQ(vfs.umount("/a/d").error(), std::errc::invalid_argument);  // inside a backend
  ASSERT_TRUE(vfs.umount("/a"));
  EXPECT_EQ(a.use_count(), 1);  // the Vfs let go of it

  lookup(1, "a", ENOENT);
  getattr(made.nodeid, ENOENT);
  getattr(a_root, ENOENT);
  EXPECT_FALSE(list(1, false).count("a"));

  ASSERT_TRUE(vfs.mount("/a", AnyFilesystem::make<MemoryFs>()));
  EXPECT_EQ(lookup(1, "a").nodeid, backend_bit(3) | 1);
  getattr(made.nodeid, ENOENT);  // the old inode does not reach the new backend

  // Umounting /b/c leaves /b as an empty pseudo directory, which can become a mount point.
  ASSERT_TRUE(vfs.umount("/b/c"));
  const auto b = lookup(1, "b").nodeid;
  EXPECT_EQ(list(b, false).size(), 2u);
  ASSERT_TRUE(vfs.mount("/b", AnyFilesystem::make<MemoryFs>()));
  EXPECT_EQ(lookup(1, "b").nodeid, backend_bit(4) | 1);
  getattr(b, ENOENT);
}

TEST(VfsMount, BadPathsAndConflictsAreRefused) {
  Vfs vfs;
  const auto mount = [&](std::string_view path) { return vfs.mount(path, AnyFilesystem::make<MemoryFs>()); };
  ASSERT_TRUE(mount("/a"));
  ASSERT_TRUE(mount("/b/c"));
  EXPECT_EQ(mount("relative").error(), std::errc::invalid_argument);
  EXPECT_EQ(mount("").error(), std::errc::invalid_argument);
  EXPECT_EQ(mount("/").error(), std::errc::invalid_argument);
  EXPECT_EQ(mount("/x//y").error(), std::errc::invalid_argument);
  EXPECT_EQ(mount("/x/../y").error(), std::errc::invalid_argument);
  EXPECT_EQ(mount("/x/").error(), std::errc::invalid_argument);
  EXPECT_EQ(mount("/" + std::string(256, 'n')).error(), std::errc::filename_too_long);
  EXPECT_EQ(mount("/a").error(), std::errc::device_or_resource_busy);
  EXPECT_EQ(mount("/a/x").error(), std::errc::device_or_resource_busy);
  EXPECT_EQ(mount("/b").error(), std::errc::device_or_resource_busy);
  EXPECT_TRUE(mount("/b/d/e"));
}

TEST(VfsMount, RunsOutOfIndicesAfter255Mounts) {
  Vfs vfs;
  for (std::size_t i = 0; i < Vfs::max_backends; ++i) {
    ASSERT_TRUE(vfs.mount("/m", AnyFilesystem::make<CoreFs>()));
    ASSERT_TRUE(vfs.umount("/m"));
  }
  EXPECT_EQ(vfs.mount("/m", AnyFilesystem::make<CoreFs>()).error(), std::errc::no_space_on_device);
}

TEST(VfsInit, FlagsAreTheIntersectionOfTheBackends) {
  Vfs empty;
  EXPECT_EQ(*empty.init(kernel_offer), kernel_offer & api::always_on_init_flags);

  Vfs two;
  ASSERT_TRUE(two.mount("/m", AnyFilesystem::make<MemoryFs>()));
  ASSERT_TRUE(two.mount("/n", AnyFilesystem::make<MemoryFs>()));
  const auto both = *two.init(kernel_offer);
  EXPECT_EQ(both, *AnyFilesystem::make<MemoryFs>().init(kernel_offer));
  EXPECT_NE(both & flags::do_readdirplus, 0u);
  EXPECT_EQ(both & flags::posix_locks, 0u);
  // A later backend that accepts the flags in effect may join.
  EXPECT_TRUE(two.mount("/o", AnyFilesystem::make<MemoryFs>()));

  Vfs mixed;
  ASSERT_TRUE(mixed.mount("/m", AnyFilesystem::make<MemoryFs>()));
  ASSERT_TRUE(mixed.mount("/core", AnyFilesystem::make<CoreFs>()));
  const auto chosen = *mixed.init(kernel_offer);
  EXPECT_EQ(chosen & (flags::do_readdirplus | flags::setxattr_ext), 0u);
  EXPECT_NE(chosen & flags::async_read, 0u);
  EXPECT_TRUE(mixed.mount("/later", AnyFilesystem::make<CoreFs>()));
}

// Each backend ends up set up for what the kernel gets: a backend sets itself up from its own
// answer (PassthroughFs takes the writeback cache it asked for), so one that wanted a flag
// another refused is asked again without it. A backend refused after INIT is destroyed.
TEST(VfsInit, EveryBackendIsLastAskedWhatTheKernelGets) {
  testing::RecordingFs eager, wary;
  wary.init_wants = ~flags::writeback_cache;
  Vfs vfs;
  ASSERT_TRUE(vfs.mount("/eager", AnyFilesystem::borrow(eager)));
  ASSERT_TRUE(vfs.mount("/wary", AnyFilesystem::borrow(wary)));
  const auto chosen = *vfs.init(kernel_offer | flags::writeback_cache);
  EXPECT_EQ(chosen & flags::writeback_cache, 0u);
  EXPECT_EQ(eager.init_offered, chosen) << "the eager backend still thinks it has the writeback cache";
  EXPECT_EQ(wary.init_offered, chosen);

  testing::RecordingFs late;
  late.init_wants = ~flags::async_read;
  ASSERT_NE(chosen & flags::async_read, 0u);
  EXPECT_EQ(vfs.mount("/late", AnyFilesystem::borrow(late)).error(), std::errc::not_supported);
  EXPECT_EQ(late.destroyed, 1);
}

TEST(VfsConcurrency, LookupsRaceMountsAndUmounts) {
  Vfs vfs;
  ASSERT_TRUE(vfs.mount("/stable", AnyFilesystem::make<MemoryFs>()));
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    for (int i = 0; i < 200; ++i) {
      EXPECT_TRUE(vfs.mount("/x/y", AnyFilesystem::make<MemoryFs>()));
      EXPECT_TRUE(vfs.umount("/x/y"));
    }
    stop = true;
  });
  api::Context ctx;
  std::size_t found = 0;
  while (!stop) {
    EXPECT_TRUE(vfs.lookup(ctx, api::root_inode, "stable"));
    const auto x = vfs.lookup(ctx, api::root_inode, "x");
    if (x && vfs.lookup(ctx, x->inode, "y")) ++found;
  }
  churn.join();
  EXPECT_TRUE(vfs.lookup(ctx, api::root_inode, "stable"));
  (void)found;  // how often the race was won does not matter; surviving it does
}

}  // namespace
}  // namespace fuse_backend::testing
