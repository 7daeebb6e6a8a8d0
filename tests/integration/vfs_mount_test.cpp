// Real-mount tests of vfs::Vfs: two MemoryFs backends mounted at /a and /b/c of one Vfs, served
// in-process through /dev/fuse (Service with two workers) and driven with ordinary POSIX calls.
// All timeouts are 0, so the kernel asks the Vfs every time (mounts and umounts show at once).
// Needs root and /dev/fuse.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <fuse_backend/detail/unique_fd.hpp>
#include <fuse_backend/vfs/vfs.hpp>
#include <support/files.hpp>
#include <support/memory_fs.hpp>
#include <support/served_mount.hpp>

namespace {

using fuse_backend::api::AnyFilesystem;
using fuse_backend::detail::UniqueFd;
using fuse_backend::testing::MemoryFs;
using fuse_backend::testing::ServedMount;
using fuse_backend::vfs::Vfs;

std::string errno_text() { return std::strerror(errno); }

std::shared_ptr<MemoryFs> uncached_memory_fs() { return std::make_shared<MemoryFs>(std::chrono::seconds(0)); }

Vfs& with_two_backends(Vfs& vfs, const std::shared_ptr<MemoryFs>& a, const std::shared_ptr<MemoryFs>& c) {
  EXPECT_TRUE(vfs.mount("/a", AnyFilesystem(a)));
  EXPECT_TRUE(vfs.mount("/b/c", AnyFilesystem(c)));
  return vfs;
}

class VfsMount : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(mount_.ok()) << "mount: " << mount_.error(); }

  std::string path(std::string_view relative) const { return mount_.path(relative); }
  void write_file(std::string_view relative, const std::string& data) {
    fuse_backend::testing::write_file(path(relative), data);
  }
  std::string read_file(std::string_view relative) { return fuse_backend::testing::read_file(path(relative)); }
  std::vector<std::string> list(std::string_view relative) {
    return fuse_backend::testing::list_dir(path(relative), /*with_dots=*/true);
  }

  int stat_errno(std::string_view relative) {
    struct stat st {};
    return ::stat(path(relative).c_str(), &st) == 0 ? 0 : errno;
  }

  std::shared_ptr<MemoryFs> a_ = uncached_memory_fs();
  std::shared_ptr<MemoryFs> c_ = uncached_memory_fs();
  Vfs vfs_{fuse_backend::vfs::VfsOptions{std::chrono::seconds(0)}};
  ServedMount<Vfs> mount_{with_two_backends(vfs_, a_, c_)};
};

TEST_F(VfsMount, PseudoDirectoriesListMountPoints) {
  EXPECT_EQ(list(""), (std::vector<std::string>{".", "..", "a", "b"}));
  EXPECT_EQ(list("b"), (std::vector<std::string>{".", "..", "c"}));
  EXPECT_EQ(list("a"), (std::vector<std::string>{".", ".."}));

  struct stat st {};
  ASSERT_EQ(::stat(path("a").c_str(), &st), 0) << errno_text();
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_ino), (std::uint64_t{1} << Vfs::inode_bits) | 1);
  ASSERT_EQ(::stat(path("b/c").c_str(), &st), 0) << errno_text();
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_ino), (std::uint64_t{2} << Vfs::inode_bits) | 1);
  ASSERT_EQ(::stat(path("b").c_str(), &st), 0) << errno_text();
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(stat_errno("nothing"), ENOENT);

  struct statvfs fs {};
  EXPECT_EQ(::statvfs(path("").c_str(), &fs), 0) << errno_text();
  EXPECT_EQ(::statvfs(path("a").c_str(), &fs), 0) << errno_text();
}

TEST_F(VfsMount, FilesLiveInTheirOwnBackend) {
  write_file("a/same", "in a");
  write_file("b/c/same", "in c");
  EXPECT_EQ(read_file("a/same"), "in a");
  EXPECT_EQ(read_file("b/c/same"), "in c");
  ASSERT_EQ(::mkdir(path("b/c/dir").c_str(), 0755), 0) << errno_text();
  write_file("b/c/dir/deep", "deeper");
  EXPECT_EQ(read_file("b/c/dir/deep"), "deeper");
  EXPECT_EQ(list("b/c"), (std::vector<std::string>{".", "..", "dir", "same"}));
  EXPECT_EQ(list("a"), (std::vector<std::string>{".", "..", "same"}));

  struct stat in_a {};
  struct stat in_c {};
  ASSERT_EQ(::stat(path("a/same").c_str(), &in_a), 0);
  ASSERT_EQ(::stat(path("b/c/same").c_str(), &in_c), 0);
  EXPECT_NE(in_a.st_ino, in_c.st_ino);
  EXPECT_EQ(static_cast<std::uint64_t>(in_a.st_ino) >> Vfs::inode_bits, 1u);
  EXPECT_EQ(static_cast<std::uint64_t>(in_c.st_ino) >> Vfs::inode_bits, 2u);

  // Within one backend everything works as usual.
  ASSERT_EQ(::rename(path("a/same").c_str(), path("a/renamed").c_str()), 0) << errno_text();
  ASSERT_EQ(::link(path("a/renamed").c_str(), path("a/linked").c_str()), 0) << errno_text();
  EXPECT_EQ(read_file("a/linked"), "in a");
  ASSERT_EQ(::unlink(path("a/renamed").c_str()), 0) << errno_text();
}

TEST_F(VfsMount, CrossingBackendsIsExdevAndThePseudoTreeIsReadOnly) {
  write_file("a/file", "x");
  EXPECT_EQ(::rename(path("a/file").c_str(), path("b/c/file").c_str()), -1);
  EXPECT_EQ(errno, EXDEV);
  EXPECT_EQ(::link(path("a/file").c_str(), path("b/c/file").c_str()), -1);
  EXPECT_EQ(errno, EXDEV);
  EXPECT_EQ(::rename(path("a/file").c_str(), path("file").c_str()), -1);
  EXPECT_EQ(errno, EXDEV);

  EXPECT_EQ(::mkdir(path("new").c_str(), 0755), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(::open(path("b/new").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(::rmdir(path("b").c_str()), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(read_file("a/file"), "x");
}

TEST_F(VfsMount, MountAndUmountWhileServing) {
  write_file("a/kept", "still here");
  ASSERT_TRUE(vfs_.umount("/a"));
  EXPECT_EQ(stat_errno("a"), ENOENT);
  EXPECT_EQ(stat_errno("a/kept"), ENOENT);
  EXPECT_EQ(list(""), (std::vector<std::string>{".", "..", "b"}));

  ASSERT_TRUE(vfs_.mount("/x/y", AnyFilesystem(uncached_memory_fs())));
  EXPECT_EQ(list("x"), (std::vector<std::string>{".", "..", "y"}));
  write_file("x/y/new", "fresh");
  EXPECT_EQ(read_file("x/y/new"), "fresh");

  // The old backend still has its data; mounted again it shows up again.
  ASSERT_TRUE(vfs_.mount("/a", AnyFilesystem(a_)));
  EXPECT_EQ(read_file("a/kept"), "still here");
}

TEST_F(VfsMount, ConcurrentReadersInBothBackends) {
  write_file("a/one", std::string(10000, '1'));
  write_file("b/c/two", std::string(10000, '2'));
  std::vector<std::thread> readers;
  std::array<int, 4> good{};
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&, t] {
      const bool first = t % 2 == 0;
      for (int i = 0; i < 50; ++i) {
        if (read_file(first ? "a/one" : "b/c/two") == std::string(10000, first ? '1' : '2')) ++good[t];
      }
    });
  }
  for (auto& reader : readers) reader.join();
  EXPECT_EQ(good, (std::array<int, 4>{50, 50, 50, 50}));
}

}  // namespace
