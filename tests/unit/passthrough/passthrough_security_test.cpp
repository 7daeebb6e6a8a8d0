// Escape attempts against PassthroughFs called directly: hostile names, "..", symlinks to / and
// to ../outside, special files, forged or forgotten inode ids and handles, and a directory
// swapped for a symlink after lookup. Every test ends with the sentinels outside the source
// directory untouched.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <fuse_backend/abi/kernel.hpp>

#include "passthrough_fixture.hpp"

namespace fuse_backend::passthrough::testing {
namespace {

using api::root_inode;

class PassthroughSecurityTest : public PassthroughTest {
 protected:
  void TearDown() override {
    expect_outside_untouched();
    PassthroughTest::TearDown();
  }
};

TEST_F(PassthroughSecurityTest, NamesWithSlashesAreRejectedEverywhere) {
  fs::create_directories(source_ / "d");
  write_file(source_ / "d" / "f", "");
  Config config;
  config.xattr = true;
  auto& fs = make(config);
  const auto d = lookup(root_inode, "d");
  const auto f = lookup(d, "f");
  for (std::string_view name : {"../outside/sentinel", "d/f", "/etc/passwd", "a/", "/", "..//x"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(fs.lookup(ctx_, root_inode, name).error(), std::errc::invalid_argument);
    EXPECT_EQ(fs.mkdir(ctx_, root_inode, name, 0777).error(), std::errc::invalid_argument);
    EXPECT_EQ(fs.mknod(ctx_, root_inode, name, S_IFREG | 0666, 0).error(),
              std::errc::invalid_argument);
    EXPECT_EQ(fs.create(ctx_, root_inode, name, S_IFREG | 0666, O_RDWR | O_CREAT).error(),
              std::errc::invalid_argument);
    EXPECT_EQ(fs.symlink(ctx_, "x", root_inode, name).error(), std::errc::invalid_argument);
    EXPECT_EQ(fs.link(ctx_, f, root_inode, name).error(), std::errc::invalid_argument);
    EXPECT_EQ(fs.unlink(ctx_, root_inode, name).error(), std::errc::invalid_argument);
    EXPECT_EQ(fs.rmdir(ctx_, root_inode, name).error(), std::errc::invalid_argument);
    EXPECT_EQ(fs.rename(ctx_, d, "f", root_inode, name, 0).error(), std::errc::invalid_argument);
    EXPECT_EQ(fs.rename(ctx_, root_inode, name, d, "g", 0).error(), std::errc::invalid_argument);
  }
  // Empty names and embedded NULs.
  EXPECT_EQ(fs.lookup(ctx_, root_inode, "").error(), std::errc::invalid_argument);
  EXPECT_EQ(fs.mkdir(ctx_, root_inode, std::string_view("a\0b", 3), 0777).error(),
            std::errc::invalid_argument);
  EXPECT_EQ(fs.getxattr(ctx_, f, std::string_view("user.a\0b", 8), {}).error(),
            std::errc::invalid_argument);
  EXPECT_TRUE(fs::exists(source_ / "d" / "f"));
}

TEST_F(PassthroughSecurityTest, DotAndDotDotNeverLeaveTheSource) {
  fs::create_directories(source_ / "d");
  auto& fs = make();
  // ".." of the root is the root; "." is the directory itself.
  auto up = fs.lookup(ctx_, root_inode, "..");
  ASSERT_TRUE(up);
  EXPECT_EQ(up->inode, root_inode);
  auto up_again = fs.lookup(ctx_, up->inode, "..");
  ASSERT_TRUE(up_again);
  EXPECT_EQ(up_again->inode, root_inode);
  EXPECT_EQ(fs.lookup(ctx_, root_inode, "..").value().inode, root_inode);
  EXPECT_EQ(fs.lookup(ctx_, up->inode, "outside").error(), std::errc::no_such_file_or_directory);
  const auto d = lookup(root_inode, "d");
  EXPECT_EQ(fs.lookup(ctx_, d, ".").value().inode, d);
  EXPECT_EQ(fs.lookup(ctx_, d, "..").value().inode, root_inode);
  EXPECT_EQ(fs.lookup_count(d), 2u);
  // Creating, removing or renaming "." / ".." is refused outright.
  for (std::string_view name : {".", ".."}) {
    EXPECT_EQ(fs.mkdir(ctx_, root_inode, name, 0777).error(), std::errc::invalid_argument);
    EXPECT_EQ(fs.unlink(ctx_, root_inode, name).error(), std::errc::invalid_argument);
    EXPECT_EQ(fs.rmdir(ctx_, d, name).error(), std::errc::invalid_argument);
    EXPECT_EQ(fs.rename(ctx_, root_inode, name, d, "x", 0).error(), std::errc::invalid_argument);
    EXPECT_EQ(fs.rename(ctx_, d, "..", root_inode, name, 0).error(), std::errc::invalid_argument);
    EXPECT_EQ(fs.symlink(ctx_, "/", root_inode, name).error(), std::errc::invalid_argument);
  }
  EXPECT_TRUE(fs::exists(source_ / "d"));
}

// A directory the host moves out of the source keeps its node, but ".." from it finds only
// directories looked up before (a Linux client holds the parents of what it holds), never the
// new host parent outside.
TEST_F(PassthroughSecurityTest, DotDotOfADirectoryMovedOutFindsNothingOutside) {
  fs::create_directories(source_ / "a" / "d");
  auto& fs = make();
  const auto a = lookup(root_inode, "a");
  const auto d = lookup(a, "d");
  EXPECT_EQ(fs.lookup(ctx_, d, "..").value().inode, a);
  fs::rename(source_ / "a" / "d", outside_ / "d");
  EXPECT_EQ(fs.lookup(ctx_, d, "..").error(), std::errc::no_such_file_or_directory);
  fs::rename(outside_ / "d", source_ / "a" / "d");
}

// Symlinks to / and to ../outside: lookup gives the link, nothing ever follows it.
TEST_F(PassthroughSecurityTest, SymlinksOutOfTheSourceAreNeverFollowed) {
  fs::create_symlink("/", source_ / "to_root");
  fs::create_symlink("../outside", source_ / "to_outside");
  fs::create_symlink("../outside/sentinel", source_ / "to_sentinel");
  fs::create_symlink("../outside/new", source_ / "dangling");
  Config config;
  config.xattr = true;
  auto& fs = make(config);
  for (std::string_view name : {"to_root", "to_outside", "to_sentinel", "dangling"}) {
    SCOPED_TRACE(name);
    auto entry = fs.lookup(ctx_, root_inode, name);
    ASSERT_TRUE(entry);
    EXPECT_TRUE(S_ISLNK(entry->attr.st_mode));
    const auto link = entry->inode;
    // Not a directory to look in or create in.
    EXPECT_EQ(fs.lookup(ctx_, link, "sentinel").error(), std::errc::not_a_directory);
    EXPECT_EQ(fs.lookup(ctx_, link, "etc").error(), std::errc::not_a_directory);
    EXPECT_EQ(fs.mkdir(ctx_, link, "x", 0777).error(), std::errc::not_a_directory);
    EXPECT_EQ(fs.create(ctx_, link, "new", S_IFREG | 0666, O_RDWR | O_CREAT).error(),
              std::errc::not_a_directory);
    EXPECT_EQ(fs.unlink(ctx_, link, "sentinel").error(), std::errc::not_a_directory);
    EXPECT_EQ(fs.opendir(ctx_, link, 0).error(), std::errc::not_a_directory);
    // Not a file to open, truncate, chmod or tag.
    EXPECT_EQ(fs.open(ctx_, link, O_RDWR | O_TRUNC, 0).error(),
              std::errc::too_many_symbolic_link_levels);
    api::SetattrIn truncate;
    truncate.valid = abi::fattr::size;
    EXPECT_EQ(fs.setattr(ctx_, link, truncate, std::nullopt).error(), std::errc::invalid_argument);
    api::SetattrIn chmod;
    chmod.valid = abi::fattr::mode;
    chmod.attr.st_mode = 0777;
    EXPECT_FALSE(fs.setattr(ctx_, link, chmod, std::nullopt));
    const std::string evil = "evil";
    EXPECT_EQ(fs.setxattr(ctx_, link, "user.evil", std::as_bytes(std::span(evil)), 0, 0).error(),
              std::errc::operation_not_permitted);
    EXPECT_EQ(fs.setxattr(ctx_, link, "trusted.evil", std::as_bytes(std::span(evil)), 0, 0).error(),
              std::errc::operation_not_permitted);
    EXPECT_EQ(fs.removexattr(ctx_, link, "user.evil").error(), std::errc::operation_not_permitted);
    // Owner and times change on the link itself (AT_SYMLINK_NOFOLLOW).
    api::SetattrIn touch;
    touch.valid = abi::fattr::uid | abi::fattr::mtime;
    touch.attr.st_uid = 4242;
    touch.attr.st_mtim = {12345, 0};
    ASSERT_TRUE(fs.setattr(ctx_, link, touch, std::nullopt));
    struct stat st {};
    ASSERT_EQ(::lstat((source_ / std::string(name)).c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 4242u);
    EXPECT_EQ(st.st_mtim.tv_sec, 12345);
    // A hard link of the link is another link, not a link to the target.
    const std::string copy = std::string(name) + "_hard";
    auto hard = fs.link(ctx_, link, root_inode, copy);
    ASSERT_TRUE(hard) << std::make_error_code(hard.error()).message();
    EXPECT_EQ(hard->inode, link);
    EXPECT_TRUE(fs::is_symlink(source_ / copy));
  }
  // create() through a dangling symlink's name must not create its target.
  EXPECT_EQ(fs.create(ctx_, root_inode, "dangling", S_IFREG | 0666, O_RDWR | O_CREAT).error(),
            std::errc::too_many_symbolic_link_levels);
  EXPECT_EQ(fs.create(ctx_, root_inode, "to_sentinel", S_IFREG | 0666, O_WRONLY | O_CREAT | O_TRUNC)
                .error(),
            std::errc::too_many_symbolic_link_levels);
  EXPECT_EQ(fs.mknod(ctx_, root_inode, "dangling", S_IFREG | 0666, 0).error(), std::errc::file_exists);
  EXPECT_FALSE(fs::exists(outside_ / "new"));
}

TEST_F(PassthroughSecurityTest, SpecialFilesAreNeverOpened) {
  ASSERT_EQ(::mkfifo((source_ / "fifo").c_str(), 0666), 0);
  ASSERT_EQ(::mknod((source_ / "null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  auto& fs = make();
  for (std::string_view name : {"fifo", "null"}) {
    SCOPED_TRACE(name);
    const auto inode = lookup(root_inode, name);
    EXPECT_EQ(fs.open(ctx_, inode, O_RDWR, 0).error(), std::errc::no_such_device_or_address);
    EXPECT_EQ(fs.create(ctx_, root_inode, name, S_IFREG | 0666, O_RDONLY | O_CREAT).error(),
              std::errc::no_such_device_or_address);
    api::SetattrIn truncate;
    truncate.valid = abi::fattr::size;
    EXPECT_EQ(fs.setattr(ctx_, inode, truncate, std::nullopt).error(), std::errc::invalid_argument);
    // Attributes still work: they never open the file.
    EXPECT_TRUE(fs.getattr(ctx_, inode, std::nullopt));
  }
  // The create fallbacks took no reference they kept.
  EXPECT_EQ(fs_->lookup_count(lookup(root_inode, "fifo")), 2u);
}

TEST_F(PassthroughSecurityTest, ForgedAndForgottenInodeIdsFindNothing) {
  write_file(source_ / "f", "");
  fs::create_directories(source_ / "d");
  auto& fs = make();
  const auto f = lookup(root_inode, "f");
  const auto d = lookup(root_inode, "d");
  fs.forget(ctx_, f, 1);
  fs.forget(ctx_, d, 1);
  const auto stale = errc_of(ESTALE);
  for (api::InodeId id : {f, d, api::InodeId{0}, api::InodeId{999999}, api::InodeId{~0ull}}) {
    EXPECT_EQ(fs.getattr(ctx_, id, std::nullopt).error(), stale);
    EXPECT_EQ(fs.lookup(ctx_, id, "f").error(), stale);
    EXPECT_EQ(fs.mkdir(ctx_, id, "x", 0777).error(), stale);
    EXPECT_EQ(fs.open(ctx_, id, O_RDONLY, 0).error(), stale);
    EXPECT_EQ(fs.opendir(ctx_, id, 0).error(), stale);
    EXPECT_EQ(fs.unlink(ctx_, id, "f").error(), stale);
    EXPECT_EQ(fs.link(ctx_, id, root_inode, "x").error(), stale);
    EXPECT_EQ(fs.rename(ctx_, id, "f", root_inode, "x", 0).error(), stale);
    EXPECT_EQ(fs.statfs(ctx_, id).error(), stale);
    fs.forget(ctx_, id, 1);  // tolerated
  }
  EXPECT_TRUE(fs::exists(source_ / "f"));
  EXPECT_FALSE(fs::exists(source_ / "x"));
}

TEST_F(PassthroughSecurityTest, BogusHandlesAreBadFileDescriptors) {
  write_file(source_ / "a", "AAAA");
  write_file(source_ / "b", "BBBB");
  auto& fs = make();
  const auto a = lookup(root_inode, "a");
  const auto b = lookup(root_inode, "b");
  auto handle_a = fs.open(ctx_, a, O_RDWR, 0);
  ASSERT_TRUE(handle_a);
  const auto badf = std::errc::bad_file_descriptor;
  // Never-issued handles, 0 (no_open is off), and a's handle used with b's inode.
  for (auto [inode, handle] : {std::pair{a, api::HandleId{12345}}, std::pair{a, api::HandleId{0}},
                               std::pair{b, handle_a->handle}}) {
    MemoryWriter out(16);
    EXPECT_EQ(fs.read(ctx_, inode, handle, out, 16, 0, 0).error(), badf);
    MemoryReader in("XX");
    EXPECT_EQ(fs.write(ctx_, inode, handle, in, 2, 0, 0, 0).error(), badf);
    EXPECT_EQ(fs.fsync(ctx_, inode, handle, false).error(), badf);
    EXPECT_EQ(fs.flush(ctx_, inode, handle, 0).error(), badf);
    EXPECT_EQ(fs.fallocate(ctx_, inode, handle, 0, 0, 10).error(), badf);
    EXPECT_EQ(fs.getattr(ctx_, inode, handle).error(), badf);
    VectorSink sink(4096);
    EXPECT_EQ(fs.readdir(ctx_, inode, handle, 0, sink).error(), badf);
    EXPECT_EQ(fs.release(ctx_, inode, handle, 0, 0, 0).error(), badf);
    EXPECT_EQ(fs.releasedir(ctx_, inode, handle, 0).error(), badf);
  }
  EXPECT_EQ(read_file(source_ / "b"), "BBBB");
  // Released handles are dead.
  ASSERT_TRUE(fs.release(ctx_, a, handle_a->handle, 0, 0, 0));
  MemoryWriter out(16);
  EXPECT_EQ(fs.read(ctx_, a, handle_a->handle, out, 16, 0, 0).error(), badf);
  EXPECT_EQ(fs.release(ctx_, a, handle_a->handle, 0, 0, 0).error(), badf);
  // A file handle is no directory handle.
  auto file = fs.open(ctx_, a, O_RDONLY, 0);
  VectorSink sink(4096);
  EXPECT_EQ(fs.readdir(ctx_, a, file->handle, 0, sink).error(), std::errc::not_a_directory);
}

// The directory a lookup returned is replaced by a symlink to the outside before the next
// request: the pinned O_PATH fd keeps every later operation in the original directory.
TEST_F(PassthroughSecurityTest, DirectorySwappedForSymlinkAfterLookupIsNotFollowed) {
  fs::create_directories(source_ / "d");
  write_file(source_ / "d" / "inner", "inner");
  auto& fs = make();
  const auto d = lookup(root_inode, "d");
  fs::rename(source_ / "d", source_ / "d_moved");
  fs::create_directory_symlink(outside_, source_ / "d");

  auto made = fs.mkdir(ctx_, d, "made", 0777);
  ASSERT_TRUE(made);
  auto created = fs.create(ctx_, d, "created", S_IFREG | 0666, O_RDWR | O_CREAT);
  ASSERT_TRUE(created);
  EXPECT_TRUE(fs.symlink(ctx_, "t", d, "sym"));
  EXPECT_TRUE(fs::exists(source_ / "d_moved" / "made"));
  EXPECT_TRUE(fs::exists(source_ / "d_moved" / "created"));
  EXPECT_EQ(fs.unlink(ctx_, d, "sentinel").error(), std::errc::no_such_file_or_directory);
  EXPECT_EQ(fs.lookup(ctx_, d, "sentinel").error(), std::errc::no_such_file_or_directory);
  EXPECT_TRUE(fs.lookup(ctx_, d, "inner"));
  ASSERT_TRUE(fs.rename(ctx_, d, "inner", d, "renamed", 0));
  EXPECT_TRUE(fs::exists(source_ / "d_moved" / "renamed"));

  // Its listing is the moved directory's, not the symlink target's.
  auto listing = fs.opendir(ctx_, d, 0);
  ASSERT_TRUE(listing);
  VectorSink sink(100000);
  ASSERT_TRUE(fs.readdirplus(ctx_, d, listing->handle, 0, sink));
  std::vector<std::string> listed, expected{".", ".."};
  for (const auto& item : sink.items) listed.push_back(item.name);
  for (const auto& entry : fs::directory_iterator(source_ / "d_moved"))
    expected.push_back(entry.path().filename());
  std::sort(listed.begin(), listed.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(listed, expected);

  // A fresh lookup of the name now finds the symlink, which is again not followed.
  auto now = fs.lookup(ctx_, root_inode, "d");
  ASSERT_TRUE(now);
  EXPECT_TRUE(S_ISLNK(now->attr.st_mode));
  EXPECT_EQ(fs.mkdir(ctx_, now->inode, "x", 0777).error(), std::errc::not_a_directory);
}

// A file swapped for a symlink after lookup: opening the old inode opens the old file.
TEST_F(PassthroughSecurityTest, FileSwappedForSymlinkAfterLookupOpensTheOriginal) {
  write_file(source_ / "f", "original");
  auto& fs = make();
  const auto f = lookup(root_inode, "f");
  fs::rename(source_ / "f", source_ / "f_moved");
  fs::create_symlink(outside_ / "sentinel", source_ / "f");
  auto opened = fs.open(ctx_, f, O_RDWR | O_TRUNC, 0);
  ASSERT_TRUE(opened);
  MemoryReader in("rewritten");
  ASSERT_TRUE(fs.write(ctx_, f, opened->handle, in, 9, 0, 0, 0));
  EXPECT_EQ(read_file(source_ / "f_moved"), "rewritten");
  api::SetattrIn chmod;
  chmod.valid = abi::fattr::mode;
  chmod.attr.st_mode = 0600;
  ASSERT_TRUE(fs.setattr(ctx_, f, chmod, std::nullopt));
  EXPECT_EQ(fs::status(source_ / "f_moved").permissions(), fs::perms::owner_read | fs::perms::owner_write);
}

// Hard-link and rename requests cannot reach a name outside, and link of an inode that sits
// outside (moved there by the host) stays impossible through names the client controls.
TEST_F(PassthroughSecurityTest, RenameAndLinkStayInside) {
  write_file(source_ / "f", "f");
  fs::create_symlink("../outside", source_ / "out");
  auto& fs = make();
  const auto f = lookup(root_inode, "f");
  const auto out = lookup(root_inode, "out");
  EXPECT_EQ(fs.rename(ctx_, root_inode, "f", out, "stolen", 0).error(), std::errc::not_a_directory);
  EXPECT_EQ(fs.link(ctx_, f, out, "stolen").error(), std::errc::not_a_directory);
  EXPECT_EQ(fs.rename(ctx_, out, "sentinel", root_inode, "got", 0).error(), std::errc::not_a_directory);
  // Replacing the symlink itself is fine and leaves its target alone.
  ASSERT_TRUE(fs.rename(ctx_, root_inode, "f", root_inode, "out", 0));
  EXPECT_EQ(read_file(source_ / "out"), "f");
}

TEST_F(PassthroughSecurityTest, UnprivilegedCallerCannotCreateDevices) {
  fs::create_directories(source_ / "d");
  auto& fs = make();
  const auto d = lookup(root_inode, "d");
  EXPECT_EQ(fs.mknod(caller(4242, 4242), d, "mem", S_IFCHR | 0666, makedev(1, 1)).error(),
            std::errc::operation_not_permitted);
  EXPECT_FALSE(fs::exists(source_ / "d" / "mem"));
  auto unmapped = caller(abi::invalid_uidgid, 0);
  EXPECT_EQ(fs.mkdir(unmapped, d, "x", 0777).error(), std::errc::operation_not_permitted);
}

}  // namespace
}  // namespace fuse_backend::passthrough::testing
