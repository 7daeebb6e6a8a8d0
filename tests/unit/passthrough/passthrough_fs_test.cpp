// PassthroughFs ops called directly on a temporary source directory: each op's basic behaviour,
// lookup counting, cache-policy open flags, INIT negotiation and backing-file registration.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <dirent.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <thread>

#include <fuse_backend/abi/kernel.hpp>

#include "passthrough_fixture.hpp"
#include "support/mount_guard.hpp"

namespace fuse_backend::passthrough::testing {
namespace {

namespace f = abi::init_flags;
using api::root_inode;

constexpr std::uint32_t rw_create = O_RDWR | O_CREAT;

TEST_F(PassthroughTest, CreateRejectsMissingSourceAndBadCombination) {
  auto missing = PassthroughFs::create({.source = (base_ / "nope").string()});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), std::errc::no_such_file_or_directory);
  write_file(base_ / "file", "x");
  auto not_dir = PassthroughFs::create({.source = (base_ / "file").string()});
  ASSERT_FALSE(not_dir);
  EXPECT_EQ(not_dir.error(), std::errc::not_a_directory);
  Config both{.source = source_.string()};
  both.writeback = true;
  both.passthrough_backing = true;
  auto bad = PassthroughFs::create(both);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), std::errc::invalid_argument);
  both.writeback = false;
  both.seal_size = true;  // the kernel would write backing files past the seal
  bad = PassthroughFs::create(both);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), std::errc::invalid_argument);
}

TEST_F(PassthroughTest, LookupCountsReferencesAndForgetDropsThem) {
  write_file(source_ / "a", "hello");
  auto& fs = make();
  const auto a = lookup(root_inode, "a");
  EXPECT_EQ(lookup(root_inode, "a"), a);
  EXPECT_EQ(fs.lookup_count(a), 2u);
  EXPECT_EQ(fs.inode_count(), 2u);
  fs.forget(ctx_, a, 1);
  EXPECT_EQ(fs.lookup_count(a), 1u);
  ASSERT_TRUE(fs.getattr(ctx_, a, std::nullopt));
  fs.forget(ctx_, a, 1);
  EXPECT_EQ(fs.inode_count(), 1u);
  auto gone = fs.getattr(ctx_, a, std::nullopt);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error(), errc_of(ESTALE));
  // A new lookup gets a new node id: ids are never reused.
  EXPECT_NE(lookup(root_inode, "a"), a);
}

TEST_F(PassthroughTest, BatchForgetAndOverlargeCounts) {
  write_file(source_ / "a", "");
  write_file(source_ / "b", "");
  auto& fs = make();
  const auto a = lookup(root_inode, "a");
  const auto b = lookup(root_inode, "b");
  lookup(root_inode, "b");
  const api::ForgetOne forgets[] = {{a, 5}, {b, 1}, {api::InodeId{12345}, 1}, {root_inode, 9}};
  fs.batch_forget(ctx_, forgets);
  EXPECT_EQ(fs.lookup_count(a), 0u);
  EXPECT_EQ(fs.lookup_count(b), 1u);
  EXPECT_TRUE(fs.getattr(ctx_, root_inode, std::nullopt));
  EXPECT_EQ(fs.inode_count(), 2u);
}

TEST_F(PassthroughTest, HardLinksShareOneInode) {
  write_file(source_ / "a", "x");
  fs::create_hard_link(source_ / "a", source_ / "b");
  fs::create_directories(source_ / "d");
  fs::create_hard_link(source_ / "a", source_ / "d" / "c");
  make();
  const auto a = lookup(root_inode, "a");
  EXPECT_EQ(lookup(root_inode, "b"), a);
  EXPECT_EQ(lookup(lookup(root_inode, "d"), "c"), a);
  EXPECT_EQ(fs_->lookup_count(a), 3u);
}

TEST_F(PassthroughTest, LookupErrors) {
  write_file(source_ / "file", "");
  auto& fs = make();
  auto missing = fs.lookup(ctx_, root_inode, "missing");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), std::errc::no_such_file_or_directory);
  auto not_dir = fs.lookup(ctx_, lookup(root_inode, "file"), "x");
  ASSERT_FALSE(not_dir);
  EXPECT_EQ(not_dir.error(), std::errc::not_a_directory);
  auto too_long = fs.lookup(ctx_, root_inode, std::string(256, 'n'));
  ASSERT_FALSE(too_long);
  EXPECT_EQ(too_long.error(), std::errc::filename_too_long);
  write_file(source_ / std::string(255, 'n'), "");
  EXPECT_TRUE(fs.lookup(ctx_, root_inode, std::string(255, 'n')));
}

TEST_F(PassthroughTest, GetattrReportsHostAttributes) {
  write_file(source_ / "a", "12345");
  ::chmod((source_ / "a").c_str(), 0640);
  auto& fs = make();
  const auto a = lookup(root_inode, "a");
  auto attr = fs.getattr(ctx_, a, std::nullopt);
  ASSERT_TRUE(attr);
  struct stat host {};
  ASSERT_EQ(::stat((source_ / "a").c_str(), &host), 0);
  EXPECT_EQ(attr->attr.st_size, 5);
  EXPECT_EQ(attr->attr.st_mode, S_IFREG | 0640);
  EXPECT_EQ(attr->attr.st_ino, host.st_ino);
  EXPECT_EQ(attr->attr.st_mtim.tv_nsec, host.st_mtim.tv_nsec);
  EXPECT_EQ(attr->timeout, fs.config().attr_timeout);
}

TEST_F(PassthroughTest, EntriesCarryTheConfiguredTimeouts) {
  write_file(source_ / "a", "");
  Config config;
  config.entry_timeout = std::chrono::seconds(7);
  config.attr_timeout = std::chrono::milliseconds(1500);
  auto& fs = make(config);
  auto entry = fs.lookup(ctx_, root_inode, "a");
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->entry_timeout, config.entry_timeout);
  EXPECT_EQ(entry->attr_timeout, config.attr_timeout);
  EXPECT_EQ(fs.getattr(ctx_, entry->inode, std::nullopt)->timeout, config.attr_timeout);
}

TEST_F(PassthroughTest, AnnouncedSubmountsAreFlaggedInTheirEntries) {
  fs::create_directories(source_ / "sub");
  fs::create_directories(source_ / "plain");
  fuse_backend::testing::MountGuard submount((source_ / "sub").string());
  ASSERT_EQ(::mount("fuse_backend_submount", (source_ / "sub").c_str(), "tmpfs", 0, "size=64k"), 0)
      << std::strerror(errno);
  for (const bool announce : {false, true}) {
    SCOPED_TRACE(announce ? "announce_submounts" : "no announce_submounts");
    Config config;
    config.announce_submounts = announce;
    auto& fs = make(config);
    auto sub = fs.lookup(ctx_, root_inode, "sub");
    auto plain = fs.lookup(ctx_, root_inode, "plain");
    ASSERT_TRUE(sub && plain);
    EXPECT_EQ((sub->attr_flags & abi::attr_flags::submount) != 0, announce);
    EXPECT_EQ(plain->attr_flags & abi::attr_flags::submount, 0u);
  }
}

TEST_F(PassthroughTest, GeneratedInodeNumbersAreNodeIds) {
  write_file(source_ / "a", "");
  Config config;
  config.use_host_ino = false;
  auto& fs = make(config);
  auto entry = fs.lookup(ctx_, root_inode, "a");
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->attr.st_ino, static_cast<ino_t>(entry->inode));
  EXPECT_EQ(fs.getattr(ctx_, entry->inode, std::nullopt)->attr.st_ino,
            static_cast<ino_t>(entry->inode));
  EXPECT_EQ(fs.statx(ctx_, entry->inode, std::nullopt, 0, STATX_BASIC_STATS)->stx.stx_ino,
            static_cast<std::uint64_t>(entry->inode));
}

TEST_F(PassthroughTest, SetattrChangesModeOwnerSizeAndTimes) {
  write_file(source_ / "a", "0123456789");
  auto& fs = make();
  const auto a = lookup(root_inode, "a");
  api::SetattrIn in;
  in.valid = abi::fattr::mode | abi::fattr::uid | abi::fattr::gid | abi::fattr::size |
             abi::fattr::atime | abi::fattr::mtime;
  in.attr.st_mode = 0604;
  in.attr.st_uid = 1234;
  in.attr.st_gid = 4321;
  in.attr.st_size = 4;
  in.attr.st_atim = {1000, 5};
  in.attr.st_mtim = {2000, 7};
  auto attr = fs.setattr(ctx_, a, in, std::nullopt);
  ASSERT_TRUE(attr) << std::make_error_code(attr.error()).message();
  EXPECT_EQ(attr->attr.st_mode, S_IFREG | 0604);
  EXPECT_EQ(attr->attr.st_uid, 1234u);
  EXPECT_EQ(attr->attr.st_gid, 4321u);
  EXPECT_EQ(attr->attr.st_size, 4);
  EXPECT_EQ(attr->attr.st_atim.tv_sec, 1000);
  EXPECT_EQ(attr->attr.st_mtim.tv_sec, 2000);
  EXPECT_EQ(attr->attr.st_mtim.tv_nsec, 7);
  EXPECT_EQ(read_file(source_ / "a"), "0123");

  // Through an open handle (ftruncate / futimens / fchmod).
  auto opened = fs.open(ctx_, a, O_RDWR, 0);
  ASSERT_TRUE(opened);
  api::SetattrIn by_handle;
  by_handle.valid = abi::fattr::size | abi::fattr::mtime_now | abi::fattr::mode;
  by_handle.attr.st_size = 2;
  by_handle.attr.st_mode = 0600;
  attr = fs.setattr(ctx_, a, by_handle, opened->handle);
  ASSERT_TRUE(attr);
  EXPECT_EQ(attr->attr.st_size, 2);
  EXPECT_EQ(attr->attr.st_mode, S_IFREG | 0600);
  EXPECT_GT(attr->attr.st_mtim.tv_sec, 2000);
  EXPECT_TRUE(fs.release(ctx_, a, opened->handle, O_RDWR, 0, 0));
}

TEST_F(PassthroughTest, SetattrSizeOfDirectoryIsRefused) {
  fs::create_directories(source_ / "d");
  auto& fs = make();
  api::SetattrIn in;
  in.valid = abi::fattr::size;
  auto rc = fs.setattr(ctx_, lookup(root_inode, "d"), in, std::nullopt);
  ASSERT_FALSE(rc);
  EXPECT_EQ(rc.error(), std::errc::is_a_directory);
}

TEST_F(PassthroughTest, MkdirMknodSymlinkReadlink) {
  auto& fs = make();
  auto dir = fs.mkdir(ctx_, root_inode, "dir", 0750);
  ASSERT_TRUE(dir);
  EXPECT_EQ(dir->attr.st_mode, S_IFDIR | 0750);
  EXPECT_EQ(fs.lookup_count(dir->inode), 1u);
  EXPECT_TRUE(fs::is_directory(source_ / "dir"));

  auto fifo = fs.mknod(ctx_, dir->inode, "fifo", S_IFIFO | 0600, 0);
  ASSERT_TRUE(fifo);
  EXPECT_TRUE(S_ISFIFO(fifo->attr.st_mode));
  auto regular = fs.mknod(ctx_, dir->inode, "regular", S_IFREG | 0644, 0);
  ASSERT_TRUE(regular);
  EXPECT_TRUE(fs::is_regular_file(source_ / "dir" / "regular"));

  auto link = fs.symlink(ctx_, "some/where", root_inode, "link");
  ASSERT_TRUE(link);
  EXPECT_TRUE(S_ISLNK(link->attr.st_mode));
  char target[64];
  auto n = fs.readlink(ctx_, link->inode, target);
  ASSERT_TRUE(n);
  EXPECT_EQ(std::string_view(target, *n), "some/where");
  auto not_link = fs.readlink(ctx_, dir->inode, target);
  ASSERT_FALSE(not_link);
  EXPECT_EQ(not_link.error(), std::errc::invalid_argument);

  auto exists = fs.mkdir(ctx_, root_inode, "dir", 0700);
  ASSERT_FALSE(exists);
  EXPECT_EQ(exists.error(), std::errc::file_exists);
}

TEST_F(PassthroughTest, UnlinkAndRmdir) {
  write_file(source_ / "file", "");
  fs::create_directories(source_ / "full" / "child");
  fs::create_directories(source_ / "empty");
  auto& fs = make();
  EXPECT_TRUE(fs.unlink(ctx_, root_inode, "file"));
  EXPECT_FALSE(fs::exists(source_ / "file"));
  auto missing = fs.unlink(ctx_, root_inode, "file");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), std::errc::no_such_file_or_directory);
  auto is_dir = fs.unlink(ctx_, root_inode, "empty");
  ASSERT_FALSE(is_dir);
  EXPECT_EQ(is_dir.error(), std::errc::is_a_directory);
  auto full = fs.rmdir(ctx_, root_inode, "full");
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error(), std::errc::directory_not_empty);
  EXPECT_TRUE(fs.rmdir(ctx_, root_inode, "empty"));
  EXPECT_FALSE(fs::exists(source_ / "empty"));
}

TEST_F(PassthroughTest, RenameVariants) {
  write_file(source_ / "a", "A");
  write_file(source_ / "b", "B");
  fs::create_directories(source_ / "d");
  auto& fs = make();
  const auto d = lookup(root_inode, "d");
  const auto a = lookup(root_inode, "a");

  auto noreplace = fs.rename(ctx_, root_inode, "a", root_inode, "b", RENAME_NOREPLACE);
  ASSERT_FALSE(noreplace);
  EXPECT_EQ(noreplace.error(), std::errc::file_exists);

  ASSERT_TRUE(fs.rename(ctx_, root_inode, "a", root_inode, "b", RENAME_EXCHANGE));
  EXPECT_EQ(read_file(source_ / "a"), "B");
  EXPECT_EQ(read_file(source_ / "b"), "A");

  ASSERT_TRUE(fs.rename(ctx_, root_inode, "b", d, "moved", 0));
  EXPECT_EQ(read_file(source_ / "d" / "moved"), "A");
  // The inode follows its host object across the rename.
  EXPECT_EQ(lookup(d, "moved"), a);

  ASSERT_TRUE(fs.rename(ctx_, root_inode, "a", d, "moved", 0));  // replaces
  EXPECT_EQ(read_file(source_ / "d" / "moved"), "B");

  ASSERT_TRUE(fs.rename(ctx_, d, "moved", root_inode, "c", RENAME_WHITEOUT));
  struct stat st {};
  ASSERT_EQ(::stat((source_ / "d" / "moved").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));  // the whiteout
  EXPECT_EQ(st.st_rdev, makedev(0, 0));

  auto bad = fs.rename(ctx_, root_inode, "c", root_inode, "e", 1u << 7);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), std::errc::invalid_argument);
}

TEST_F(PassthroughTest, LinkAddsNameAndReference) {
  write_file(source_ / "a", "data");
  fs::create_directories(source_ / "d");
  auto& fs = make();
  const auto a = lookup(root_inode, "a");
  auto linked = fs.link(ctx_, a, lookup(root_inode, "d"), "b");
  ASSERT_TRUE(linked);
  EXPECT_EQ(linked->inode, a);
  EXPECT_EQ(linked->attr.st_nlink, 2u);
  EXPECT_EQ(fs.lookup_count(a), 2u);
  EXPECT_EQ(read_file(source_ / "d" / "b"), "data");
}

TEST_F(PassthroughTest, CreateWriteReadRelease) {
  auto& fs = make();
  ctx_.umask = 022;
  auto created = fs.create(ctx_, root_inode, "new", S_IFREG | 0640, rw_create);
  ASSERT_TRUE(created) << std::make_error_code(created.error()).message();
  const auto inode = created->entry.inode;
  EXPECT_EQ(created->entry.attr.st_mode, S_IFREG | 0640);
  EXPECT_EQ(fs.lookup_count(inode), 1u);
  EXPECT_EQ(fs.handle_count(), 1u);
  const auto handle = created->open.handle;

  MemoryReader in("hello, passthrough");
  auto written = fs.write(ctx_, inode, handle, in, 18, 0, 0, 0);
  ASSERT_TRUE(written);
  EXPECT_EQ(*written, 18u);
  MemoryReader more("HELLO");
  ASSERT_TRUE(fs.write(ctx_, inode, handle, more, 5, 0, 0, 0));

  MemoryWriter out(1024);
  auto n = fs.read(ctx_, inode, handle, out, 100, 0, 0);
  ASSERT_TRUE(n);
  EXPECT_EQ(out.data(), "HELLO, passthrough");
  MemoryWriter tail(1024);
  ASSERT_TRUE(fs.read(ctx_, inode, handle, tail, 100, 7, 0));
  EXPECT_EQ(tail.data(), "passthrough");
  MemoryWriter past(1024);
  EXPECT_EQ(*fs.read(ctx_, inode, handle, past, 100, 1000, 0), 0u);

  EXPECT_TRUE(fs.flush(ctx_, inode, handle, 0));
  EXPECT_TRUE(fs.fsync(ctx_, inode, handle, false));
  EXPECT_TRUE(fs.fsync(ctx_, inode, handle, true));
  EXPECT_TRUE(fs.release(ctx_, inode, handle, O_RDWR, 0, 0));
  EXPECT_EQ(fs.handle_count(), 0u);
  EXPECT_EQ(read_file(source_ / "new"), "HELLO, passthrough");
}

TEST_F(PassthroughTest, CreateOfExistingNameOpensItUnlessExclusive) {
  write_file(source_ / "a", "old contents");
  auto& fs = make();
  auto excl = fs.create(ctx_, root_inode, "a", S_IFREG | 0600, rw_create | O_EXCL);
  ASSERT_FALSE(excl);
  EXPECT_EQ(excl.error(), std::errc::file_exists);
  auto opened = fs.create(ctx_, root_inode, "a", S_IFREG | 0600, rw_create | O_TRUNC);
  ASSERT_TRUE(opened);
  EXPECT_EQ(read_file(source_ / "a"), "");
  EXPECT_EQ(fs.lookup_count(opened->entry.inode), 1u);
  EXPECT_TRUE(fs.release(ctx_, opened->entry.inode, opened->open.handle, 0, 0, 0));
}

TEST_F(PassthroughTest, TmpfileIsUnnamedUntilLinked) {
  auto& fs = make();
  auto tmp = fs.tmpfile(ctx_, root_inode, S_IFREG | 0600, O_RDWR);
  ASSERT_TRUE(tmp) << std::make_error_code(tmp.error()).message();
  EXPECT_EQ(tmp->entry.attr.st_nlink, 0u);
  EXPECT_TRUE(fs::is_empty(source_));
  MemoryReader in("anonymous");
  ASSERT_TRUE(fs.write(ctx_, tmp->entry.inode, tmp->open.handle, in, 9, 0, 0, 0));
  auto linked = fs.link(ctx_, tmp->entry.inode, root_inode, "named");
  ASSERT_TRUE(linked) << std::make_error_code(linked.error()).message();
  EXPECT_EQ(linked->inode, tmp->entry.inode);
  EXPECT_EQ(read_file(source_ / "named"), "anonymous");
}

TEST_F(PassthroughTest, OpenFlagsFollowCachePolicy) {
  write_file(source_ / "f", "");
  struct Case {
    CachePolicy policy;
    std::uint32_t file;
    std::uint32_t dir;
  };
  const Case cases[] = {
      {CachePolicy::never, abi::fopen::direct_io | abi::fopen::parallel_direct_writes, 0},
      {CachePolicy::metadata, abi::fopen::direct_io | abi::fopen::parallel_direct_writes,
       abi::fopen::cache_dir | abi::fopen::keep_cache},
      {CachePolicy::automatic, 0, 0},
      {CachePolicy::always, abi::fopen::keep_cache, abi::fopen::cache_dir | abi::fopen::keep_cache},
  };
  for (const auto& c : cases) {
    Config config;
    config.cache_policy = c.policy;
    auto& fs = make(config);
    auto file = fs.open(ctx_, lookup(root_inode, "f"), O_RDONLY, 0);
    ASSERT_TRUE(file);
    EXPECT_EQ(file->open_flags, c.file);
    auto dir = fs.opendir(ctx_, root_inode, O_RDONLY);
    ASSERT_TRUE(dir);
    EXPECT_EQ(dir->open_flags, c.dir);
  }
}

TEST_F(PassthroughTest, OpenRefusesSymlinksAndSpecialFiles) {
  ASSERT_EQ(::mkfifo((source_ / "fifo").c_str(), 0666), 0);
  fs::create_symlink("fifo", source_ / "link");
  auto& fs = make();
  // Would block forever if the fifo were really opened.
  auto fifo = fs.open(ctx_, lookup(root_inode, "fifo"), O_RDONLY, 0);
  ASSERT_FALSE(fifo);
  EXPECT_EQ(fifo.error(), std::errc::no_such_device_or_address);
  auto link = fs.open(ctx_, lookup(root_inode, "link"), O_RDONLY, 0);
  ASSERT_FALSE(link);
  EXPECT_EQ(link.error(), std::errc::too_many_symbolic_link_levels);
  auto dir = fs.opendir(ctx_, lookup(root_inode, "fifo"), 0);
  ASSERT_FALSE(dir);
  EXPECT_EQ(dir.error(), std::errc::not_a_directory);
}

TEST_F(PassthroughTest, WritebackOpensWriteOnlyFilesForReading) {
  write_file(source_ / "f", "abc");
  Config config;
  config.writeback = true;
  auto& fs = make(config);
  const auto f = lookup(root_inode, "f");
  auto opened = fs.open(ctx_, f, O_WRONLY | O_APPEND, 0);
  ASSERT_TRUE(opened);
  MemoryWriter out(16);
  ASSERT_TRUE(fs.read(ctx_, f, opened->handle, out, 16, 0, 0));
  EXPECT_EQ(out.data(), "abc");
  // O_APPEND is the kernel's job with writeback: the offset is honoured.
  MemoryReader in("X");
  ASSERT_TRUE(fs.write(ctx_, f, opened->handle, in, 1, 0, 0, O_WRONLY | O_APPEND));
  EXPECT_EQ(read_file(source_ / "f"), "Xbc");
}

// Each WRITE carries the FUSE file's flags as they are now: a fcntl(F_SETFL) that cleared or
// set O_APPEND after the open decides where the host write lands.
TEST_F(PassthroughTest, WritesFollowTheAppendFlagTheyCarry) {
  write_file(source_ / "f", "abc");
  auto& fs = make();
  const auto f = lookup(root_inode, "f");
  auto opened = fs.open(ctx_, f, O_RDWR | O_APPEND, 0);
  ASSERT_TRUE(opened);
  MemoryReader appended("d");
  ASSERT_TRUE(fs.write(ctx_, f, opened->handle, appended, 1, 0, 0, O_RDWR | O_APPEND));
  EXPECT_EQ(read_file(source_ / "f"), "abcd");
  MemoryReader placed("X");
  ASSERT_TRUE(fs.write(ctx_, f, opened->handle, placed, 1, 1, 0, O_RDWR));
  EXPECT_EQ(read_file(source_ / "f"), "aXcd");
  MemoryReader again("e");
  ASSERT_TRUE(fs.write(ctx_, f, opened->handle, again, 1, 0, 0, O_RDWR | O_APPEND));
  EXPECT_EQ(read_file(source_ / "f"), "aXcde");
}

// The kernel sends an open file's O_APPEND and positioned writes at once when a caller has
// writes in flight (aio, threads) across its own fcntl(F_SETFL): each lands where its own flags
// say, as natively, however the two interleave on the one host fd they share.
TEST_F(PassthroughTest, AppendingAndPositionedWritesAtOnceEachLandWhereTheySay) {
  write_file(source_ / "f", "P");
  auto& fs = make();
  const auto f = lookup(root_inode, "f");
  auto opened = fs.open(ctx_, f, O_RDWR, 0);
  ASSERT_TRUE(opened);
  constexpr int writes = 10000;
  std::thread appender([&] {
    for (int i = 0; i < writes; ++i) {
      MemoryReader appended("A");
      if (!fs.write(ctx_, f, opened->handle, appended, 1, 0, 0, O_RDWR | O_APPEND)) return;
    }
  });
  for (int i = 0; i < writes; ++i) {
    MemoryReader placed("P");
    ASSERT_TRUE(fs.write(ctx_, f, opened->handle, placed, 1, 0, 0, O_RDWR));
  }
  appender.join();
  const std::string landed = read_file(source_ / "f");
  EXPECT_EQ(landed.size(), writes + 1u) << "positioned writes were appended";
  EXPECT_EQ(std::count(landed.begin(), landed.end(), 'A'), writes) << "appends landed at offset 0";
}

// A host file that is append-only (chattr +a) opens for writing only with O_APPEND, which
// host opens otherwise never carry: an O_APPEND open is retried with it, and its writes append.
TEST_F(PassthroughTest, AppendOnlyHostFileOpensForAppending) {
  write_file(source_ / "log", "ab");
  const detail::UniqueFd host(::open((source_ / "log").c_str(), O_RDONLY | O_CLOEXEC));
  int attributes = 0;
  ASSERT_EQ(::ioctl(host.get(), FS_IOC_GETFLAGS, &attributes), 0) << std::strerror(errno);
  attributes |= FS_APPEND_FL;
  ASSERT_EQ(::ioctl(host.get(), FS_IOC_SETFLAGS, &attributes), 0) << "chattr +a: " << std::strerror(errno);
  struct AppendOnlyUntilTheEnd {  // so that the directory can be removed
    int fd, attributes;
    ~AppendOnlyUntilTheEnd() {
      int cleared = attributes & ~FS_APPEND_FL;
      (void)::ioctl(fd, FS_IOC_SETFLAGS, &cleared);
    }
  } restore{host.get(), attributes};
  auto& fs = make();
  const auto f = lookup(root_inode, "log");
  auto refused = fs.open(ctx_, f, O_WRONLY, 0);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), std::errc::operation_not_permitted);
  auto opened = fs.open(ctx_, f, O_WRONLY | O_APPEND, 0);
  ASSERT_TRUE(opened) << std::make_error_code(opened.error()).message();
  MemoryReader appended("cd");
  ASSERT_TRUE(fs.write(ctx_, f, opened->handle, appended, 2, 0, 0, O_WRONLY | O_APPEND));
  EXPECT_EQ(read_file(source_ / "log"), "abcd");
}

TEST_F(PassthroughTest, StatfsStatxAccessSyncfs) {
  write_file(source_ / "f", "12");
  ::chmod((source_ / "f").c_str(), 0600);
  auto& fs = make();
  const auto f = lookup(root_inode, "f");
  auto st = fs.statfs(ctx_, f);
  ASSERT_TRUE(st);
  struct statvfs host {};
  ASSERT_EQ(::statvfs(source_.c_str(), &host), 0);
  EXPECT_EQ(st->f_bsize, host.f_bsize);
  EXPECT_EQ(st->f_blocks, host.f_blocks);

  auto stx = fs.statx(ctx_, f, std::nullopt, AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS | STATX_BTIME);
  ASSERT_TRUE(stx);
  EXPECT_EQ(stx->stx.stx_size, 2u);
  EXPECT_EQ(stx->stx.stx_mode, S_IFREG | 0600);

  EXPECT_TRUE(fs.access(ctx_, f, R_OK | W_OK));
  auto exec = fs.access(ctx_, f, X_OK);  // even root needs an x bit
  ASSERT_FALSE(exec);
  EXPECT_EQ(exec.error(), std::errc::permission_denied);
  auto other = fs.access(caller(4242, 4242), f, R_OK);
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error(), std::errc::permission_denied);
  EXPECT_TRUE(fs.access(caller(4242, 4242), f, F_OK));

  EXPECT_TRUE(fs.syncfs(ctx_, f));
  EXPECT_TRUE(fs.syncfs(ctx_, root_inode));
}

TEST_F(PassthroughTest, FallocateLseekAndSparseFiles) {
  auto& fs = make();
  auto created = fs.create(ctx_, root_inode, "sparse", S_IFREG | 0600, rw_create);
  ASSERT_TRUE(created);
  const auto inode = created->entry.inode;
  const auto handle = created->open.handle;
  constexpr std::uint64_t far = 5ull << 30;  // beyond 4 GiB
  MemoryReader in("data");
  ASSERT_TRUE(fs.write(ctx_, inode, handle, in, 4, far, 0, 0));
  EXPECT_EQ(fs::file_size(source_ / "sparse"), far + 4);
  auto data = fs.lseek(ctx_, inode, handle, 0, SEEK_DATA);
  ASSERT_TRUE(data);
  EXPECT_GE(*data, far - 4096);
  EXPECT_LE(*data, far);
  auto hole = fs.lseek(ctx_, inode, handle, 0, SEEK_HOLE);
  ASSERT_TRUE(hole);
  EXPECT_EQ(*hole, 0u);
  MemoryWriter out(8);
  ASSERT_TRUE(fs.read(ctx_, inode, handle, out, 8, far, 0));
  EXPECT_EQ(out.data(), "data");

  const auto blocks_before = fs.getattr(ctx_, inode, std::nullopt)->attr.st_blocks;
  ASSERT_TRUE(fs.fallocate(ctx_, inode, handle, 0, 0, 8192));
  EXPECT_GE(fs.getattr(ctx_, inode, std::nullopt)->attr.st_blocks, blocks_before + 16);
  MemoryReader head("head");
  ASSERT_TRUE(fs.write(ctx_, inode, handle, head, 4, 0, 0, 0));
  EXPECT_EQ(*fs.lseek(ctx_, inode, handle, 0, SEEK_DATA), 0u);
  ASSERT_TRUE(fs.fallocate(ctx_, inode, handle, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0, 4096));
  EXPECT_EQ(fs::file_size(source_ / "sparse"), far + 4);
  auto beyond = fs.lseek(ctx_, inode, handle, far + 100, SEEK_DATA);
  ASSERT_FALSE(beyond);
  EXPECT_EQ(beyond.error(), std::errc::no_such_device_or_address);
  // The kernel seeks by itself otherwise; only a hostile one sends other seeks, or seeks a
  // directory (whose fd position is where READDIR goes on).
  EXPECT_EQ(fs.lseek(ctx_, inode, handle, 0, SEEK_SET).error(), std::errc::invalid_argument);
  auto dir = fs.opendir(ctx_, root_inode, O_RDONLY);
  ASSERT_TRUE(dir);
  EXPECT_EQ(fs.lseek(ctx_, root_inode, dir->handle, 0, SEEK_DATA).error(), std::errc::invalid_argument);
}

TEST_F(PassthroughTest, CopyFileRange) {
  write_file(source_ / "in", "0123456789");
  auto& fs = make();
  const auto in = lookup(root_inode, "in");
  auto src = fs.open(ctx_, in, O_RDONLY, 0);
  auto dst = fs.create(ctx_, root_inode, "out", S_IFREG | 0600, rw_create);
  ASSERT_TRUE(src);
  ASSERT_TRUE(dst);
  auto copied = fs.copy_file_range(ctx_, in, src->handle, 2, dst->entry.inode, dst->open.handle,
                                   1, 5, 0);
  ASSERT_TRUE(copied);
  EXPECT_EQ(*copied, 5u);
  EXPECT_EQ(read_file(source_ / "out"), std::string("\0" "23456", 6));
  auto flags = fs.copy_file_range(ctx_, in, src->handle, 0, dst->entry.inode, dst->open.handle,
                                  0, 1, 1);
  ASSERT_FALSE(flags);
  EXPECT_EQ(flags.error(), std::errc::invalid_argument);
}

TEST_F(PassthroughTest, ExtendedAttributes) {
  write_file(source_ / "f", "");
  Config config;
  config.xattr = true;
  auto& fs = make(config);
  const auto f = lookup(root_inode, "f");
  const std::string value = "value-1";
  ASSERT_TRUE(fs.setxattr(ctx_, f, "user.one", std::as_bytes(std::span(value)), 0, 0));
  ASSERT_TRUE(fs.setxattr(ctx_, f, "user.two", std::as_bytes(std::span(value)), 0, 0));
  auto exists = fs.setxattr(ctx_, f, "user.one", std::as_bytes(std::span(value)), XATTR_CREATE, 0);
  ASSERT_FALSE(exists);
  EXPECT_EQ(exists.error(), std::errc::file_exists);

  auto size = fs.getxattr(ctx_, f, "user.one", {});
  ASSERT_TRUE(size);
  EXPECT_EQ(*size, value.size());
  std::vector<std::byte> buffer(*size);
  ASSERT_TRUE(fs.getxattr(ctx_, f, "user.one", buffer));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(buffer.data()), buffer.size()), value);
  std::vector<std::byte> small(2);
  auto range = fs.getxattr(ctx_, f, "user.one", small);
  ASSERT_FALSE(range);
  EXPECT_EQ(range.error(), std::errc::result_out_of_range);

  auto list_size = fs.listxattr(ctx_, f, {});
  ASSERT_TRUE(list_size);
  std::vector<char> names(*list_size);
  auto listed = fs.listxattr(ctx_, f, names);
  ASSERT_TRUE(listed);
  EXPECT_EQ(std::string(names.data(), *listed), std::string("user.one\0user.two\0", 18));

  ASSERT_TRUE(fs.removexattr(ctx_, f, "user.one"));
  auto gone = fs.getxattr(ctx_, f, "user.one", {});
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error(), std::errc::no_message_available);
  EXPECT_EQ(::getxattr((source_ / "f").c_str(), "user.two", nullptr, 0), 7);
}

TEST_F(PassthroughTest, ExtendedAttributesOffAnswerEnosys) {
  write_file(source_ / "f", "");
  auto& fs = make();
  const auto f = lookup(root_inode, "f");
  EXPECT_EQ(fs.getxattr(ctx_, f, "user.x", {}).error(), std::errc::function_not_supported);
  EXPECT_EQ(fs.listxattr(ctx_, f, {}).error(), std::errc::function_not_supported);
  EXPECT_EQ(fs.setxattr(ctx_, f, "user.x", {}, 0, 0).error(), std::errc::function_not_supported);
  EXPECT_EQ(fs.removexattr(ctx_, f, "user.x").error(), std::errc::function_not_supported);
}

TEST_F(PassthroughTest, UnprivilegedCallersCannotUseTheDaemonsXattrPrivileges) {
  write_file(source_ / "f", "");
  ::chown((source_ / "f").c_str(), 4242, 4242);
  ASSERT_EQ(::setxattr((source_ / "f").c_str(), "trusted.secret", "s", 1, 0), 0);
  Config config;
  config.xattr = true;
  auto& fs = make(config);
  const auto f = lookup(root_inode, "f");
  const auto owner = caller(4242, 4242);
  const std::string cap = "xxxxxxxxxxxxxxxxxxxx";
  EXPECT_EQ(fs.setxattr(owner, f, "security.capability", std::as_bytes(std::span(cap)), 0, 0).error(),
            std::errc::operation_not_permitted);
  EXPECT_EQ(fs.setxattr(owner, f, "trusted.x", std::as_bytes(std::span(cap)), 0, 0).error(),
            std::errc::operation_not_permitted);
  EXPECT_EQ(fs.removexattr(owner, f, "trusted.secret").error(), std::errc::operation_not_permitted);
  EXPECT_EQ(fs.getxattr(owner, f, "trusted.secret", {}).error(), std::errc::no_message_available);
  ASSERT_TRUE(fs.setxattr(owner, f, "user.mine", std::as_bytes(std::span(cap)), 0, 0));
  std::vector<char> names(256);
  auto listed = fs.listxattr(owner, f, names);
  ASSERT_TRUE(listed);
  EXPECT_EQ(std::string(names.data(), *listed), std::string("user.mine\0", 10));
  // Root sees everything.
  auto all = fs.listxattr(ctx_, f, names);
  ASSERT_TRUE(all);
  EXPECT_NE(std::string(names.data(), *all).find("trusted.secret"), std::string::npos);
}

TEST_F(PassthroughTest, ReaddirListsEverythingAndResumesAtOffsets) {
  for (int i = 0; i < 50; ++i) write_file(source_ / ("file" + std::to_string(i)), "");
  fs::create_directories(source_ / "sub");
  auto& fs = make();
  auto dir = fs.opendir(ctx_, root_inode, 0);
  ASSERT_TRUE(dir);
  std::vector<std::string> names;
  std::uint64_t offset = 0;
  for (;;) {
    VectorSink sink(200);  // a few entries per call
    ASSERT_TRUE(fs.readdir(ctx_, root_inode, dir->handle, offset, sink));
    if (sink.items.empty()) break;
    for (const auto& item : sink.items) names.push_back(item.name);
    offset = sink.items.back().offset;
  }
  std::sort(names.begin(), names.end());
  ASSERT_EQ(names.size(), 53u);
  EXPECT_EQ(names[0], ".");
  EXPECT_EQ(names[1], "..");
  EXPECT_EQ(std::count(names.begin(), names.end(), "sub"), 1);

  // Going back to an earlier cookie replays the same entries (seekdir).
  VectorSink first(100000);
  ASSERT_TRUE(fs.readdir(ctx_, root_inode, dir->handle, 0, first));
  ASSERT_GT(first.items.size(), 10u);
  VectorSink again(100000);
  ASSERT_TRUE(fs.readdir(ctx_, root_inode, dir->handle, first.items[4].offset, again));
  ASSERT_EQ(again.items.size(), first.items.size() - 5);
  EXPECT_EQ(again.items[0].name, first.items[5].name);
  for (const auto& item : first.items) {
    if (item.name == "sub") {
      EXPECT_EQ(item.type, DT_DIR);
    }
  }
  EXPECT_TRUE(fs.fsyncdir(ctx_, root_inode, dir->handle, false));
  EXPECT_TRUE(fs.releasedir(ctx_, root_inode, dir->handle, 0));
  EXPECT_EQ(fs.handle_count(), 0u);
}

TEST_F(PassthroughTest, ReaddirplusTakesOneReferencePerEntry) {
  write_file(source_ / "a", "aaa");
  write_file(source_ / "b", "");
  fs::create_directories(source_ / "c");
  auto& fs = make();
  auto dir = fs.opendir(ctx_, root_inode, 0);
  ASSERT_TRUE(dir);
  VectorSink sink(100000);
  ASSERT_TRUE(fs.readdirplus(ctx_, root_inode, dir->handle, 0, sink));
  ASSERT_EQ(sink.items.size(), 5u);
  for (const auto& item : sink.items) {
    ASSERT_TRUE(item.attributes);
    if (item.name == "." || item.name == "..") {
      EXPECT_EQ(item.attributes->inode, api::InodeId{});
      continue;
    }
    EXPECT_EQ(fs.lookup_count(item.attributes->inode), 1u) << item.name;
    if (item.name == "a") {
      EXPECT_EQ(item.attributes->attr.st_size, 3);
    }
    EXPECT_EQ(lookup(root_inode, item.name), item.attributes->inode);
  }
  EXPECT_EQ(fs.inode_count(), 4u);

  // A sink with room for nothing takes no reference.
  auto again = fs.opendir(ctx_, root_inode, 0);
  VectorSink tiny(8);
  ASSERT_TRUE(fs.readdirplus(ctx_, root_inode, again->handle, 0, tiny));
  EXPECT_TRUE(tiny.items.empty());
  for (const auto& item : sink.items) {
    if (item.attributes->inode != api::InodeId{}) {
      EXPECT_EQ(fs.lookup_count(item.attributes->inode), 2u);
    }
  }
}

TEST_F(PassthroughTest, CredentialsOfTheCallerCreateAndCheck) {
  fs::create_directories(source_ / "shared");
  fs::permissions(source_ / "shared", fs::perms::all);
  fs::create_directories(source_ / "private");
  fs::permissions(source_ / "private", fs::perms::owner_all);
  auto& fs = make();
  const auto shared = lookup(root_inode, "shared");
  const auto priv = lookup(root_inode, "private");
  const auto user = caller(4242, 4343);

  auto dir = fs.mkdir(user, shared, "mine", 0755);
  ASSERT_TRUE(dir);
  EXPECT_EQ(dir->attr.st_uid, 4242u);
  EXPECT_EQ(dir->attr.st_gid, 4343u);
  auto file = fs.create(user, shared, "file", S_IFREG | 0644, rw_create);
  ASSERT_TRUE(file);
  EXPECT_EQ(file->entry.attr.st_uid, 4242u);
  auto link = fs.symlink(user, "target", shared, "link");
  ASSERT_TRUE(link);
  EXPECT_EQ(link->attr.st_uid, 4242u);

  EXPECT_EQ(fs.mkdir(user, priv, "no", 0755).error(), std::errc::permission_denied);
  EXPECT_EQ(fs.lookup(user, priv, "x").error(), std::errc::permission_denied);
  EXPECT_EQ(fs.opendir(user, priv, 0).error(), std::errc::permission_denied);
  fs::create_directories(source_ / "ro");
  ::chmod((source_ / "ro").c_str(), 0755);
  write_file(source_ / "ro" / "rootfile", "secret");
  ::chmod((source_ / "ro" / "rootfile").c_str(), 0600);
  const auto ro = lookup(root_inode, "ro");
  const auto rootfile = lookup(ro, "rootfile");
  EXPECT_EQ(fs.open(user, rootfile, O_RDONLY, 0).error(), std::errc::permission_denied);
  api::SetattrIn chmod;
  chmod.valid = abi::fattr::mode;
  chmod.attr.st_mode = 0777;
  EXPECT_EQ(fs.setattr(user, rootfile, chmod, std::nullopt).error(),
            std::errc::operation_not_permitted);
  EXPECT_EQ(fs.unlink(user, ro, "rootfile").error(), std::errc::permission_denied);
  // Mknod of a device needs CAP_MKNOD, which the caller does not have.
  EXPECT_EQ(fs.mknod(user, shared, "dev", S_IFCHR | 0600, makedev(1, 3)).error(),
            std::errc::operation_not_permitted);

  // Supplementary groups grant access; without them the daemon's groups do not leak.
  fs::create_directories(source_ / "group");
  ::chown((source_ / "group").c_str(), 0, 5555);
  ::chmod((source_ / "group").c_str(), 0770);
  const auto group = lookup(root_inode, "group");
  EXPECT_EQ(fs.mkdir(user, group, "x", 0755).error(), std::errc::permission_denied);
  auto member = user;
  const std::uint32_t groups[] = {5555};
  member.supplementary_groups = groups;
  EXPECT_TRUE(fs.mkdir(member, group, "x", 0755));

  // The daemon is itself again afterwards.
  EXPECT_TRUE(fs.mkdir(ctx_, priv, "root-made", 0700));
  struct stat st {};
  ASSERT_EQ(::stat((source_ / "private" / "root-made").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
}

TEST_F(PassthroughTest, PosixLocksConflictBetweenOwners) {
  write_file(source_ / "f", "0123456789");
  Config config;
  config.max_lock_waiters = 1;  // SETLKW may wait (see PassthroughLockWait for the default)
  auto& fs = make(config);
  const auto f = lookup(root_inode, "f");
  auto handle = fs.open(ctx_, f, O_RDWR, 0);
  ASSERT_TRUE(handle);
  const api::FileLock whole{0, static_cast<std::uint64_t>(LLONG_MAX), F_WRLCK, 100};
  ASSERT_TRUE(fs.setlk(ctx_, f, handle->handle, 1, whole, 0, false));
  // Same handle, another owner (a forked child): conflicts.
  auto busy = fs.setlk(ctx_, f, handle->handle, 2, whole, 0, false);
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error(), std::errc::resource_unavailable_try_again);
  auto probe = fs.getlk(ctx_, f, handle->handle, 2, whole, 0);
  ASSERT_TRUE(probe);
  EXPECT_EQ(probe->type, static_cast<std::uint32_t>(F_WRLCK));
  // The owner itself sees no conflict with its own lock.
  auto own = fs.getlk(ctx_, f, handle->handle, 1, whole, 0);
  ASSERT_TRUE(own);
  EXPECT_EQ(own->type, static_cast<std::uint32_t>(F_UNLCK));

  // A waiting lock is granted once the holder lets go.
  std::thread unlocker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    api::FileLock unlock = whole;
    unlock.type = F_UNLCK;
    EXPECT_TRUE(fs.setlk(ctx_, f, handle->handle, 1, unlock, 0, false));
  });
  EXPECT_TRUE(fs.setlk(ctx_, f, handle->handle, 2, whole, 0, true));
  unlocker.join();

  // FLUSH of the owner drops its locks (close(2) semantics).
  ASSERT_TRUE(fs.flush(ctx_, f, handle->handle, 2));
  EXPECT_TRUE(fs.setlk(ctx_, f, handle->handle, 1, whole, 0, false));

  // An interrupted wait answers EINTR.
  std::atomic<std::uint64_t> interrupted{1};  // the interrupt mark
  api::Context waiting = ctx_;
  waiting.interrupted_ = &interrupted;
  EXPECT_EQ(fs.setlk(waiting, f, handle->handle, 3, whole, 0, true).error(), std::errc::interrupted);
}

TEST_F(PassthroughTest, FlockLocksConflictBetweenHandles) {
  write_file(source_ / "f", "");
  auto& fs = make();
  const auto f = lookup(root_inode, "f");
  auto one = fs.open(ctx_, f, O_RDONLY, 0);
  auto two = fs.open(ctx_, f, O_RDONLY, 0);
  ASSERT_TRUE(one);
  ASSERT_TRUE(two);
  const api::FileLock exclusive{0, 0, F_WRLCK, 1};
  ASSERT_TRUE(fs.setlk(ctx_, f, one->handle, 1, exclusive, abi::lk_flags::flock, false));
  EXPECT_EQ(fs.setlk(ctx_, f, two->handle, 2, exclusive, abi::lk_flags::flock, false).error(),
            std::errc::operation_would_block);
  // The host sees the lock too.
  const int host = ::open((source_ / "f").c_str(), O_RDONLY);
  EXPECT_EQ(::flock(host, LOCK_EX | LOCK_NB), -1);
  ::close(host);
  ASSERT_TRUE(fs.release(ctx_, f, one->handle, 0, abi::release_flags::flock_unlock, 1));
  EXPECT_TRUE(fs.setlk(ctx_, f, two->handle, 2, exclusive, abi::lk_flags::flock, false));
}

TEST_F(PassthroughTest, IoctlServesInodeFlagsOnly) {
  write_file(source_ / "f", "");
  ::chown((source_ / "f").c_str(), 4242, 4242);
  auto& fs = make();
  const auto f = lookup(root_inode, "f");
  auto handle = fs.open(ctx_, f, O_RDONLY, 0);
  ASSERT_TRUE(handle);
  int flags = 0;
  auto out = std::as_writable_bytes(std::span(&flags, 1));
  auto got = fs.ioctl(ctx_, f, handle->handle, 0, FS_IOC_GETFLAGS, 0, {}, out);
  ASSERT_TRUE(got) << std::make_error_code(got.error()).message();
  EXPECT_EQ(got->out_size, sizeof(int));

  int noatime = flags | FS_NOATIME_FL;
  const auto owner = caller(4242, 4242);
  ASSERT_TRUE(fs.ioctl(owner, f, handle->handle, 0, FS_IOC_SETFLAGS, 0,
                       std::as_bytes(std::span(&noatime, 1)), {}));
  ASSERT_TRUE(fs.ioctl(ctx_, f, handle->handle, 0, FS_IOC_GETFLAGS, 0, {}, out));
  EXPECT_NE(flags & FS_NOATIME_FL, 0);

  // The daemon's CAP_LINUX_IMMUTABLE is not lent to an unprivileged owner.
  for (const int guarded : {FS_IMMUTABLE_FL, FS_APPEND_FL}) {
    int wanted = flags | guarded;
    EXPECT_EQ(fs.ioctl(owner, f, handle->handle, 0, FS_IOC_SETFLAGS, 0,
                       std::as_bytes(std::span(&wanted, 1)), {})
                  .error(),
              std::errc::operation_not_permitted);
  }
  // Nor may someone else's caller change flags at all.
  EXPECT_EQ(fs.ioctl(caller(5000, 5000), f, handle->handle, 0, FS_IOC_SETFLAGS, 0,
                     std::as_bytes(std::span(&flags, 1)), {})
                .error(),
            std::errc::operation_not_permitted);
  struct fsxattr attributes {};
  auto extended = fs.ioctl(ctx_, f, handle->handle, 0, FS_IOC_FSGETXATTR, 0, {},
                           std::as_writable_bytes(std::span(&attributes, 1)));
  ASSERT_TRUE(extended);
  EXPECT_EQ(extended->out_size, sizeof attributes);
  EXPECT_NE(attributes.fsx_xflags & FS_XFLAG_NOATIME, 0u);
  EXPECT_EQ(fs.ioctl(ctx_, f, handle->handle, 0, FS_IOC_FSSETXATTR, 0,
                     std::as_bytes(std::span(&attributes, 1)), {})
                .error(),
            std::errc::inappropriate_io_control_operation);
  EXPECT_EQ(fs.ioctl(ctx_, f, handle->handle, 0, FIONREAD, 0, {}, out).error(),
            std::errc::inappropriate_io_control_operation);
}

TEST_F(PassthroughTest, PollReportsRegularFilesReady) {
  write_file(source_ / "f", "");
  auto& fs = make();
  const auto f = lookup(root_inode, "f");
  auto handle = fs.open(ctx_, f, O_RDWR, 0);
  ASSERT_TRUE(handle);
  auto events = fs.poll(ctx_, f, handle->handle, 0, 0, POLLIN | POLLOUT);
  ASSERT_TRUE(events);
  EXPECT_EQ(*events, static_cast<std::uint32_t>(POLLIN | POLLOUT));
}

TEST_F(PassthroughTest, InitAsksForWhatConfigEnables) {
  Config config;
  auto& plain = make(config, ~std::uint64_t{0});
  const auto all = *plain.init(~std::uint64_t{0});
  EXPECT_EQ(all & f::writeback_cache, 0u);
  EXPECT_EQ(all & f::passthrough, 0u);
  EXPECT_EQ(all & f::no_open_support, 0u);
  EXPECT_EQ(all & f::handle_killpriv, 0u);
  EXPECT_EQ(all & f::dont_mask, 0u);
  EXPECT_NE(all & f::do_readdirplus, 0u);
  EXPECT_NE(all & f::posix_locks, 0u);
  EXPECT_NE(all & f::flock_locks, 0u);
  EXPECT_NE(all & f::max_pages, 0u);  // the Server's business: passed through
  EXPECT_NE(all & f::create_supp_group, 0u);
  // Never more than offered.
  EXPECT_EQ(*plain.init(f::async_read), f::async_read);

  config.writeback = true;
  config.no_open = true;
  config.killpriv_v2 = true;
  config.readdirplus = false;
  config.posix_locks = false;
  config.announce_submounts = true;
  auto& tuned = make(config, ~std::uint64_t{0});
  const auto flags = *tuned.init(~std::uint64_t{0});
  EXPECT_NE(flags & f::writeback_cache, 0u);
  EXPECT_NE(flags & f::no_open_support, 0u);
  EXPECT_NE(flags & f::handle_killpriv_v2, 0u);
  EXPECT_NE(flags & f::submounts, 0u);
  EXPECT_EQ(flags & f::do_readdirplus, 0u);
  EXPECT_EQ(flags & f::posix_locks, 0u);

  Config backing;
  backing.passthrough_backing = true;
  auto& pt = make(backing, ~std::uint64_t{0});
  EXPECT_NE(*pt.init(~std::uint64_t{0}) & f::passthrough, 0u);
}

TEST_F(PassthroughTest, NoOpenServesIoWithoutHandles) {
  write_file(source_ / "f", "content");
  fs::create_directories(source_ / "d");
  write_file(source_ / "d" / "x", "");
  Config config;
  config.no_open = true;
  config.no_opendir = true;
  auto& fs = make(config);
  const auto f = lookup(root_inode, "f");
  EXPECT_EQ(fs.open(ctx_, f, O_RDONLY, 0).error(), std::errc::function_not_supported);
  EXPECT_EQ(fs.opendir(ctx_, root_inode, 0).error(), std::errc::function_not_supported);
  MemoryWriter out(64);
  ASSERT_TRUE(fs.read(ctx_, f, api::HandleId{0}, out, 64, 0, 0));
  EXPECT_EQ(out.data(), "content");
  MemoryReader in("C");
  ASSERT_TRUE(fs.write(ctx_, f, api::HandleId{0}, in, 1, 0, 0, 0));
  EXPECT_EQ(read_file(source_ / "f"), "Content");
  VectorSink sink(4096);
  ASSERT_TRUE(fs.readdir(ctx_, lookup(root_inode, "d"), api::HandleId{0}, 0, sink));
  EXPECT_EQ(sink.items.size(), 3u);
  // fstat, close and the like arrive with handle 0 too.
  EXPECT_EQ(fs.getattr(ctx_, f, api::HandleId{0})->attr.st_size, 7);
  EXPECT_TRUE(fs.flush(ctx_, f, api::HandleId{0}, 0));
  EXPECT_TRUE(fs.release(ctx_, f, api::HandleId{0}, 0, 0, 0));
  EXPECT_TRUE(fs.fsync(ctx_, f, api::HandleId{0}, false));
  // Nothing would apply O_TRUNC or hold locks without OPEN.
  const auto flags = *fs.init(~std::uint64_t{0});
  EXPECT_EQ(flags & (f::atomic_o_trunc | f::posix_locks | f::flock_locks), 0u);
}

TEST_F(PassthroughTest, SealSizeRefusesGrowingOrShrinking) {
  write_file(source_ / "f", "fixed");
  Config config;
  config.seal_size = true;
  auto& fs = make(config);
  const auto f = lookup(root_inode, "f");
  auto handle = fs.open(ctx_, f, O_RDWR, 0);
  ASSERT_TRUE(handle);
  MemoryReader inside("FIX");
  EXPECT_TRUE(fs.write(ctx_, f, handle->handle, inside, 3, 0, 0, 0));
  MemoryReader beyond("more");
  EXPECT_EQ(fs.write(ctx_, f, handle->handle, beyond, 4, 3, 0, 0).error(),
            std::errc::operation_not_permitted);
  api::SetattrIn grow;
  grow.valid = abi::fattr::size;
  grow.attr.st_size = 100;
  EXPECT_EQ(fs.setattr(ctx_, f, grow, std::nullopt).error(), std::errc::operation_not_permitted);
  EXPECT_EQ(fs.fallocate(ctx_, f, handle->handle, 0, 0, 100).error(),
            std::errc::operation_not_permitted);
  // Modes the kernel never sends (only a hostile one would): collapse and insert range move
  // the end of the file without writing past it.
  EXPECT_EQ(fs.fallocate(ctx_, f, handle->handle, FALLOC_FL_COLLAPSE_RANGE, 0, 4096).error(),
            std::errc::operation_not_supported);
  EXPECT_EQ(fs.fallocate(ctx_, f, handle->handle, FALLOC_FL_INSERT_RANGE, 0, 4096).error(),
            std::errc::operation_not_supported);
  EXPECT_EQ(read_file(source_ / "f"), "FIXed");
}

TEST_F(PassthroughTest, KillSuidgidOnWriteClearsSetuid) {
  write_file(source_ / "f", "");
  ::chmod((source_ / "f").c_str(), 04755);
  Config config;
  config.killpriv_v2 = true;
  auto& fs = make(config);
  const auto f = lookup(root_inode, "f");
  auto handle = fs.open(ctx_, f, O_RDWR, 0);
  ASSERT_TRUE(handle);
  MemoryReader keep("a");
  ASSERT_TRUE(fs.write(ctx_, f, handle->handle, keep, 1, 0, 0, 0));
  EXPECT_EQ(fs::status(source_ / "f").permissions() & fs::perms::set_uid, fs::perms::set_uid);
  MemoryReader kill("b");
  ASSERT_TRUE(fs.write(ctx_, f, handle->handle, kill, 1, 0, abi::write_flags::kill_suidgid, 0));
  EXPECT_EQ(fs::status(source_ / "f").permissions() & fs::perms::set_uid, fs::perms::none);
  // The thread keeps CAP_FSETID afterwards.
  ::chmod((source_ / "f").c_str(), 04755);
  MemoryReader again("c");
  ASSERT_TRUE(fs.write(ctx_, f, handle->handle, again, 1, 0, 0, 0));
  EXPECT_EQ(fs::status(source_ / "f").permissions() & fs::perms::set_uid, fs::perms::set_uid);
}

// KILL_SUIDGID on a truncating SETATTR or an O_TRUNC open: the host drops set-uid as it would for
// an unprivileged writer, though the daemon is root (its CAP_FSETID is set aside for the call).
TEST_F(PassthroughTest, KillSuidgidOnTruncationClearsSetuid) {
  write_file(source_ / "f", "content");
  Config config;
  config.killpriv_v2 = true;
  auto& fs = make(config);
  const auto f = lookup(root_inode, "f");
  const auto setuid_kept = [&] {
    return (fs::status(source_ / "f").permissions() & fs::perms::set_uid) == fs::perms::set_uid;
  };
  for (const bool kill : {false, true}) {
    SCOPED_TRACE(kill ? "kill_suidgid" : "without kill_suidgid");
    ::chmod((source_ / "f").c_str(), 04755);
    api::SetattrIn truncate;
    truncate.valid = abi::fattr::size | (kill ? abi::fattr::kill_suidgid : 0u);
    truncate.attr.st_size = 3;
    ASSERT_TRUE(fs.setattr(ctx_, f, truncate, std::nullopt));
    EXPECT_EQ(setuid_kept(), !kill);

    ::chmod((source_ / "f").c_str(), 04755);
    auto opened = fs.open(ctx_, f, O_WRONLY | O_TRUNC, kill ? abi::open_flags::kill_suidgid : 0u);
    ASSERT_TRUE(opened);
    EXPECT_EQ(setuid_kept(), !kill);
    ASSERT_TRUE(fs.release(ctx_, f, opened->handle, O_WRONLY, 0, 0));
  }
}

TEST_F(PassthroughTest, BackingFileIsSharedByOpensAndClosedAtLastRelease) {
  write_file(source_ / "f", "x");
  write_file(source_ / "g", "y");
  Config config;
  config.passthrough_backing = true;
  auto& fs = make(config);
  RecordingBackingFiles backing;
  api::Context ctx = ctx_;
  ctx.backing_ = &backing;
  const auto f = lookup(root_inode, "f");
  auto one = fs.open(ctx, f, O_RDONLY, 0);
  auto two = fs.open(ctx, f, O_RDWR, 0);
  ASSERT_TRUE(one);
  ASSERT_TRUE(two);
  EXPECT_EQ(one->open_flags, abi::fopen::passthrough);
  EXPECT_EQ(one->backing_id, 7);
  EXPECT_EQ(two->backing_id, 7);
  ASSERT_EQ(backing.opened.size(), 1u);
  struct stat host {};
  ASSERT_EQ(::stat((source_ / "f").c_str(), &host), 0);
  EXPECT_EQ(backing.opened[0], host.st_ino);
  ASSERT_TRUE(fs.release(ctx, f, one->handle, 0, 0, 0));
  EXPECT_TRUE(backing.closed.empty());
  ASSERT_TRUE(fs.release(ctx, f, two->handle, 0, 0, 0));
  EXPECT_EQ(backing.closed, std::vector<std::int32_t>{7});
  // Directories never use backing files.
  auto dir = fs.opendir(ctx, root_inode, 0);
  ASSERT_TRUE(dir);
  EXPECT_EQ(dir->open_flags & abi::fopen::passthrough, 0u);
  // Created files do.
  auto created = fs.create(ctx, root_inode, "new", S_IFREG | 0600, rw_create);
  ASSERT_TRUE(created);
  EXPECT_EQ(created->open.open_flags, abi::fopen::passthrough);
  EXPECT_EQ(created->open.backing_id, 8);
}

TEST_F(PassthroughTest, BackingFileFailureFallsBackAndStopsTrying) {
  write_file(source_ / "f", "x");
  Config config;
  config.passthrough_backing = true;
  auto& fs = make(config);
  RecordingBackingFiles backing;
  backing.failure = std::errc::operation_not_permitted;
  api::Context ctx = ctx_;
  ctx.backing_ = &backing;
  const auto f = lookup(root_inode, "f");
  auto opened = fs.open(ctx, f, O_RDONLY, 0);
  ASSERT_TRUE(opened);
  EXPECT_EQ(opened->open_flags & abi::fopen::passthrough, 0u);
  MemoryWriter out(4);
  ASSERT_TRUE(fs.read(ctx, f, opened->handle, out, 4, 0, 0));
  EXPECT_EQ(out.data(), "x");
  backing.failure.reset();
  auto later = fs.open(ctx, f, O_RDONLY, 0);
  ASSERT_TRUE(later);
  EXPECT_EQ(later->open_flags & abi::fopen::passthrough, 0u);
  EXPECT_TRUE(backing.opened.empty());
}

// A transport without backing files (virtio; ctx_ has none) answers ENOTSUP: ordinary I/O, one
// line on stderr for the whole filesystem, and no further attempt.
TEST_F(PassthroughTest, TransportWithoutBackingFilesFallsBackAndSaysSoOnce) {
  write_file(source_ / "f", "x");
  Config config;
  config.passthrough_backing = true;
  auto& fs = make(config);
  const auto f = lookup(root_inode, "f");
  RecordingBackingFiles backing;
  api::Context with_backing = ctx_;
  with_backing.backing_ = &backing;
  ::testing::internal::CaptureStderr();
  auto first = fs.open(ctx_, f, O_RDONLY, 0);
  auto second = fs.open(ctx_, f, O_RDONLY, 0);
  auto later = fs.open(with_backing, f, O_RDONLY, 0);
  const std::string log = ::testing::internal::GetCapturedStderr();
  for (const auto* opened : {&first, &second, &later}) {
    ASSERT_TRUE(*opened);
    EXPECT_EQ((*opened)->open_flags & abi::fopen::passthrough, 0u);
  }
  EXPECT_TRUE(backing.opened.empty());
  const std::string line = "passthrough backing files unavailable (" +
                           std::make_error_code(std::errc::not_supported).message() + ")";
  const auto at = log.find(line);
  EXPECT_NE(at, std::string::npos) << log;
  EXPECT_EQ(log.find(line, at + 1), std::string::npos) << log;
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
}

TEST_F(PassthroughTest, DestroyDropsInodesAndHandles) {
  write_file(source_ / "f", "");
  auto& fs = make();
  const auto f = lookup(root_inode, "f");
  ASSERT_TRUE(fs.open(ctx_, f, O_RDONLY, 0));
  fs.destroy();
  EXPECT_EQ(fs.inode_count(), 1u);
  EXPECT_EQ(fs.handle_count(), 0u);
  EXPECT_TRUE(fs.getattr(ctx_, root_inode, std::nullopt));
  EXPECT_TRUE(fs.lookup(ctx_, root_inode, "f"));
}

TEST_F(PassthroughTest, ConcurrentLookupsAndForgetsKeepCountsExact) {
  for (int i = 0; i < 8; ++i) write_file(source_ / ("f" + std::to_string(i)), "");
  auto& fs = make();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 500; ++round) {
        const std::string name = "f" + std::to_string((round + t) % 8);
        auto entry = fs.lookup(ctx_, root_inode, name);
        ASSERT_TRUE(entry);
        ASSERT_TRUE(fs.getattr(ctx_, entry->inode, std::nullopt));
        fs.forget(ctx_, entry->inode, 1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(fs.inode_count(), 1u);
}

}  // namespace
}  // namespace fuse_backend::passthrough::testing
