// PassthroughFs with Config::inode_file_handles = prefer, mandatory and automatic beyond its fd
// budget (as root, on /tmp): inodes hold file handles and no fds, are reopened for each use,
// survive renames, answer ESTALE once deleted; every op keeps working. `never` is the control
// that shows the fd count can fail; automatic within its budget keeps fds.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <dirent.h>
#include <sys/stat.h>

#include <climits>

#include <fuse_backend/abi/kernel.hpp>

#include "passthrough_fixture.hpp"

namespace fuse_backend::passthrough::testing {
namespace {

using api::root_inode;

// Open fds of this process.
std::size_t open_fd_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

class PassthroughFileHandlesTest : public PassthroughTest,
                                   public ::testing::WithParamInterface<InodeFileHandles> {
 protected:
  PassthroughFs& make_with_handles() {
    Config config;
    config.inode_file_handles = GetParam();
    config.inode_fd_budget = 1;  // automatic: the root alone fills it
    return make(config);
  }
  std::string read_all(PassthroughFs& fs, api::InodeId inode) {
    auto opened = fs.open(ctx_, inode, O_RDONLY, 0);
    EXPECT_TRUE(opened) << std::make_error_code(opened.error()).message();
    if (!opened) return {};
    MemoryWriter out(4096);
    EXPECT_TRUE(fs.read(ctx_, inode, opened->handle, out, 4096, 0, 0));
    EXPECT_TRUE(fs.release(ctx_, inode, opened->handle, O_RDONLY, 0, 0));
    return out.data();
  }
};

TEST_P(PassthroughFileHandlesTest, LookedUpInodesHoldNoFds) {
  constexpr int files = 64;
  fs::create_directories(source_ / "d");
  for (int i = 0; i < files; ++i) write_file(source_ / "d" / std::to_string(i), "x");
  auto& fs = make_with_handles();
  const auto dir = lookup(root_inode, "d");
  const std::size_t before = open_fd_count();
  for (int i = 0; i < files; ++i) lookup(dir, std::to_string(i));
  EXPECT_EQ(fs.inode_count(), 2u + files);
  EXPECT_EQ(open_fd_count(), before);
  // Each is reopened on use, and closed again after.
  for (int i = 0; i < files; i += 7) {
    auto id = lookup(dir, std::to_string(i));
    ASSERT_TRUE(fs.getattr(ctx_, id, std::nullopt));
    EXPECT_EQ(read_all(fs, id), "x");
  }
  EXPECT_EQ(open_fd_count(), before);
}

TEST(PassthroughFileHandlesControl, NeverKeepsOneFdPerInode) {
  char pattern[] = "/tmp/passthrough-fh-control-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const fs::path source = pattern;
  for (int i = 0; i < 16; ++i) write_file(source / std::to_string(i), "x");
  {
    auto fs = PassthroughFs::create({.source = source.string(), .inode_file_handles = InodeFileHandles::never});
    ASSERT_TRUE(fs);
    const std::size_t before = open_fd_count();
    for (int i = 0; i < 16; ++i) ASSERT_TRUE((*fs)->lookup({}, root_inode, std::to_string(i)));
    EXPECT_EQ(open_fd_count(), before + 16);
  }
  fs::remove_all(source);
}

// automatic: the first inodes up to the budget (root included) keep fds, later ones handles,
// and both kinds serve.
TEST_F(PassthroughTest, AutomaticInodeHandlesKeepFdsWithinTheBudgetOnly) {
  constexpr int files = 20;
  constexpr std::size_t budget = 6;
  for (int i = 0; i < files; ++i) write_file(source_ / std::to_string(i), std::to_string(i));
  Config config;
  config.inode_file_handles = InodeFileHandles::automatic;
  config.inode_fd_budget = budget;
  auto& fs = make(config);
  const std::size_t before = open_fd_count();
  std::vector<api::InodeId> ids;
  for (int i = 0; i < files; ++i) ids.push_back(lookup(root_inode, std::to_string(i)));
  EXPECT_EQ(open_fd_count(), before + budget - 1);
  for (int i = 0; i < files; ++i) {
    auto opened = fs.open(ctx_, ids[i], O_RDONLY, 0);
    ASSERT_TRUE(opened) << i << ": " << std::make_error_code(opened.error()).message();
    MemoryWriter out(64);
    ASSERT_TRUE(fs.read(ctx_, ids[i], opened->handle, out, 64, 0, 0));
    EXPECT_EQ(out.data(), std::to_string(i));
    ASSERT_TRUE(fs.release(ctx_, ids[i], opened->handle, O_RDONLY, 0, 0));
  }
  EXPECT_EQ(open_fd_count(), before + budget - 1);
}

TEST_P(PassthroughFileHandlesTest, HardLinksAreOneInode) {
  write_file(source_ / "a", "same");
  fs::create_directories(source_ / "d");
  fs::create_hard_link(source_ / "a", source_ / "d" / "b");
  auto& fs = make_with_handles();
  const auto a = lookup(root_inode, "a");
  const auto b = lookup(lookup(root_inode, "d"), "b");
  EXPECT_EQ(a, b);
  EXPECT_EQ(fs.lookup_count(a), 2u);
  // LINK through the filesystem gives the same inode again.
  auto linked = fs.link(ctx_, a, root_inode, "c");
  ASSERT_TRUE(linked) << std::make_error_code(linked.error()).message();
  EXPECT_EQ(linked->inode, a);
  EXPECT_EQ(linked->attr.st_nlink, 3u);
}

TEST_P(PassthroughFileHandlesTest, InodesSurviveRenames) {
  write_file(source_ / "a", "content");
  fs::create_directories(source_ / "d");
  fs::create_directories(source_ / "e");
  auto& fs = make_with_handles();
  const auto a = lookup(root_inode, "a");
  const auto d = lookup(root_inode, "d");
  // Renamed behind the daemon's back, the file and a directory are still what the ids name.
  fs::rename(source_ / "a", source_ / "e" / "moved");
  fs::rename(source_ / "d", source_ / "e" / "d2");
  EXPECT_EQ(read_all(fs, a), "content");
  auto attr = fs.getattr(ctx_, a, std::nullopt);
  ASSERT_TRUE(attr);
  EXPECT_EQ(attr->attr.st_size, 7);
  auto created = fs.create(ctx_, d, "inside", S_IFREG | 0600, O_RDWR | O_CREAT);
  ASSERT_TRUE(created) << std::make_error_code(created.error()).message();
  EXPECT_TRUE(fs::exists(source_ / "e" / "d2" / "inside"));
  EXPECT_TRUE(fs.release(ctx_, created->entry.inode, created->open.handle, O_RDWR, 0, 0));
  // And a rename through the filesystem.
  ASSERT_TRUE(fs.rename(ctx_, root_inode, "e", root_inode, "f", 0));
  EXPECT_EQ(read_all(fs, a), "content");
  EXPECT_EQ(lookup(lookup(root_inode, "f"), "moved"), a);
  expect_outside_untouched();
}

TEST_P(PassthroughFileHandlesTest, DeletedInodeIsStale) {
  write_file(source_ / "a", "x");
  auto& fs = make_with_handles();
  const auto a = lookup(root_inode, "a");
  fs::remove(source_ / "a");
  auto opened = fs.open(ctx_, a, O_RDONLY, 0);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error(), errc_of(ESTALE));
  auto attr = fs.getattr(ctx_, a, std::nullopt);
  ASSERT_FALSE(attr);
  EXPECT_EQ(attr.error(), errc_of(ESTALE));
  // The kernel still forgets it normally.
  fs.forget(ctx_, a, 1);
  EXPECT_EQ(fs.inode_count(), 1u);
}

// The host may give a deleted file's inode number to a new file, and a handle inode holds no
// object to prevent that: a lookup of the new file must give a new inode, not the old one
// (whose handle answers ESTALE), which answers ESTALE by its id until the kernel forgets it.
TEST_P(PassthroughFileHandlesTest, ReusedInodeNumberIsANewInode) {
  auto& fs = make_with_handles();
  // ext4 (/tmp here) gives a file the lowest free inode number of its directory's group. A test
  // running beside this one may create a file in /tmp first and take the freed number: then
  // the scene starts again with another file.
  api::InodeId a{};
  ino_t number = 0;
  std::string reused;
  for (int attempt = 0; attempt < 5 && reused.empty(); ++attempt) {
    const std::string old_name = "a" + std::to_string(attempt);
    write_file(source_ / old_name, "old");
    a = lookup(root_inode, old_name);
    struct stat st {};
    ASSERT_EQ(::stat((source_ / old_name).c_str(), &st), 0);
    number = st.st_ino;
    fs::remove(source_ / old_name);
    for (int i = 0; i < 200 && reused.empty(); ++i) {
      const std::string name = "b" + std::to_string(attempt) + "-" + std::to_string(i);
      write_file(source_ / name, "new");
      ASSERT_EQ(::stat((source_ / name).c_str(), &st), 0);
      if (st.st_ino == number) reused = name;
    }
  }
  ASSERT_FALSE(reused.empty()) << "the host did not reuse inode number " << number;
  const auto b = lookup(root_inode, reused);
  EXPECT_NE(b, a);
  EXPECT_EQ(read_all(fs, b), "new");
  auto stale = fs.getattr(ctx_, a, std::nullopt);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error(), errc_of(ESTALE));
  // Forgetting the stale inode leaves the new one found by the key they share.
  fs.forget(ctx_, a, 1);
  EXPECT_EQ(lookup(root_inode, reused), b);
}

TEST_P(PassthroughFileHandlesTest, OpsWorkOnHandleInodes) {
  fs::create_directories(source_ / "d");
  write_file(source_ / "d" / "f", "0123456789");
  fs::create_symlink("f", source_ / "d" / "link");
  auto& fs = make_with_handles();
  const auto d = lookup(root_inode, "d");
  // READDIRPLUS looks entries up through the open directory.
  auto dir = fs.opendir(ctx_, d, 0);
  ASSERT_TRUE(dir);
  VectorSink sink(100000);
  ASSERT_TRUE(fs.readdirplus(ctx_, d, dir->handle, 0, sink));
  api::InodeId f{}, link{};
  for (const auto& item : sink.items) {
    if (item.name == "f") f = item.attributes->inode;
    if (item.name == "link") link = item.attributes->inode;
  }
  ASSERT_NE(static_cast<std::uint64_t>(f), 0u);
  EXPECT_TRUE(fs.releasedir(ctx_, d, dir->handle, 0));
  EXPECT_EQ(lookup(d, "f"), f);
  char target[64];
  auto n = fs.readlink(ctx_, link, target);
  ASSERT_TRUE(n);
  EXPECT_EQ(std::string_view(target, *n), "f");
  // setattr (truncate) through the inode, then POSIX locks on an open file (reopened through
  // the open file, not the inode).
  api::SetattrIn in;
  in.valid = abi::fattr::size;
  in.attr.st_size = 4;
  ASSERT_TRUE(fs.setattr(ctx_, f, in, std::nullopt));
  EXPECT_EQ(read_file(source_ / "d" / "f"), "0123");
  auto opened = fs.open(ctx_, f, O_RDWR, 0);
  ASSERT_TRUE(opened);
  const api::FileLock whole{0, static_cast<std::uint64_t>(LLONG_MAX), F_WRLCK, 100};
  EXPECT_TRUE(fs.setlk(ctx_, f, opened->handle, 1, whole, 0, false));
  EXPECT_TRUE(fs.release(ctx_, f, opened->handle, O_RDWR, 0, 0));
  // mkdir, unlink, rmdir, statfs, access through handle parents.
  auto sub = fs.mkdir(ctx_, d, "sub", 0755);
  ASSERT_TRUE(sub);
  EXPECT_TRUE(fs.access(ctx_, sub->inode, R_OK));
  EXPECT_TRUE(fs.statfs(ctx_, sub->inode));
  EXPECT_TRUE(fs.rmdir(ctx_, d, "sub"));
  EXPECT_TRUE(fs.unlink(ctx_, d, "link"));
  EXPECT_FALSE(fs::exists(fs::symlink_status(source_ / "d" / "link")));
  // ".." of a handle directory is the root.
  EXPECT_EQ(lookup(d, ".."), root_inode);
  expect_outside_untouched();
}

INSTANTIATE_TEST_SUITE_P(Modes, PassthroughFileHandlesTest,
                         ::testing::Values(InodeFileHandles::prefer, InodeFileHandles::mandatory,
                                           InodeFileHandles::automatic),
                         [](const auto& param_info) {
                           switch (param_info.param) {
                             case InodeFileHandles::prefer: return "Prefer";
                             case InodeFileHandles::mandatory: return "Mandatory";
                             default: return "AutomaticBeyondItsBudget";
                           }
                         });

// /proc has no file handles: mandatory refuses it at create(), prefer and automatic (even
// beyond its budget) serve it with fds.
TEST(PassthroughFileHandlesSource, WithoutHandlesMandatoryFailsAndPreferFallsBack) {
  Config mandatory{.source = "/proc/self"};
  mandatory.inode_file_handles = InodeFileHandles::mandatory;
  auto refused = PassthroughFs::create(mandatory);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), std::errc::operation_not_supported);

  for (const auto mode : {InodeFileHandles::prefer, InodeFileHandles::automatic}) {
    Config config{.source = "/proc/self", .inode_file_handles = mode, .inode_fd_budget = 1};
    auto served = PassthroughFs::create(config);
    ASSERT_TRUE(served) << std::make_error_code(served.error()).message();
    auto entry = (*served)->lookup({}, root_inode, "status");
    ASSERT_TRUE(entry);
    EXPECT_TRUE((*served)->getattr({}, entry->inode, std::nullopt));
  }
}

}  // namespace
}  // namespace fuse_backend::passthrough::testing
