// PassthroughFs with inode file handles (mandatory) through a real mount: a small POSIX
// workload (files, directories, renames, hard links, symlinks, listings, a non-root caller)
// and the point of the mode: the kernel keeping many inodes referenced costs the daemon no
// fds. Needs root (CAP_DAC_READ_SEARCH), /dev/fuse and a /tmp with file handles.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <dirent.h>

#include <filesystem>
#include <string>
#include <vector>

#include "passthrough_mount_fixture.hpp"

namespace fuse_backend::passthrough::testing {
namespace {

std::size_t open_fd_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

class PassthroughFileHandles : public PassthroughMount {
 protected:
  void start_with_handles() {
    Config config = uncached();
    config.inode_file_handles = InodeFileHandles::mandatory;
    start(config);
  }
};

TEST_F(PassthroughFileHandles, PosixWorkload) {
  ASSERT_NO_FATAL_FAILURE(start_with_handles());
  ASSERT_EQ(::mkdir(path("d").c_str(), 0755), 0) << errno_text();
  write_file(path("d/a"), "alpha");
  EXPECT_EQ(read_file(host("d/a")), "alpha");
  {
    UniqueFd fd = open_file(path("d/a"), O_WRONLY | O_APPEND);
    ASSERT_TRUE(fd) << errno_text();
    ASSERT_EQ(::write(fd.get(), "+beta", 5), 5);
  }
  EXPECT_EQ(read_file(path("d/a")), "alpha+beta");

  // Hard links: one inode.
  ASSERT_EQ(::link(path("d/a").c_str(), path("b").c_str()), 0) << errno_text();
  struct stat a {}, b {};
  ASSERT_EQ(::stat(path("d/a").c_str(), &a), 0);
  ASSERT_EQ(::stat(path("b").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(b.st_nlink, 2u);

  // Renames through the mount and behind its back; an open directory fd follows its inode.
  UniqueFd dir = open_file(path("d"), O_RDONLY | O_DIRECTORY);
  ASSERT_TRUE(dir) << errno_text();
  ASSERT_EQ(::rename(path("d").c_str(), path("e").c_str()), 0) << errno_text();
  std::filesystem::rename(host("e/a"), host("e/moved"));
  EXPECT_EQ(read_file(path("e/moved")), "alpha+beta");
  UniqueFd created(::openat(dir.get(), "c", O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  ASSERT_TRUE(created) << errno_text();
  EXPECT_TRUE(std::filesystem::exists(host("e/c")));

  // Symlinks are links, listings list.
  ASSERT_EQ(::symlink("moved", path("e/link").c_str()), 0) << errno_text();
  EXPECT_EQ(read_file(path("e/link")), "alpha+beta");
  EXPECT_EQ(list_dir(path("e")), (std::vector<std::string>{"c", "link", "moved"}));

  // Deleted on the host: gone through the mount too.
  std::filesystem::remove(host("e/c"));
  struct stat st {};
  EXPECT_NE(::stat(path("e/c").c_str(), &st), 0);

  // A non-root caller: the daemon reopens inodes before taking the caller's ids (which drop
  // CAP_DAC_READ_SEARCH).
  ASSERT_EQ(::chmod(source_.str().c_str(), 0755), 0);
  ASSERT_EQ(::chmod(host("e").c_str(), 0777), 0);
  const std::string user_file = path("e/user"), root_file = path("e/moved");
  EXPECT_EQ(as_user(65534, 65534, [&] {
              UniqueFd fd(::open(user_file.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600));
              if (!fd) return 1;
              if (::write(fd.get(), "u", 1) != 1) return 2;
              struct stat own {};
              if (::fstat(fd.get(), &own) != 0 || own.st_uid != 65534) return 3;
              // Someone else's file: not writable for this caller.
              if (::open(root_file.c_str(), O_WRONLY | O_CLOEXEC) != -1) return 4;
              return errno == EACCES ? 0 : 5;
            }),
            0);

  // Removal.
  ASSERT_EQ(::unlink(path("e/link").c_str()), 0) << errno_text();
  ASSERT_EQ(::unlink(path("e/moved").c_str()), 0) << errno_text();
  ASSERT_EQ(::unlink(path("e/user").c_str()), 0) << errno_text();
  ASSERT_EQ(::unlink(path("b").c_str()), 0) << errno_text();
  dir = UniqueFd();
  created = UniqueFd();
  ASSERT_EQ(::rmdir(path("e").c_str()), 0) << errno_text();
  EXPECT_TRUE(list_dir(source_.str()).empty());
}

TEST_F(PassthroughFileHandles, ReferencedInodesCostNoFds) {
  constexpr int files = 300;
  for (int i = 0; i < files; ++i) write_file(host(std::to_string(i)), "x");
  ASSERT_NO_FATAL_FAILURE(start_with_handles());
  const std::size_t before = open_fd_count();
  // Each lookup leaves the inode referenced by the kernel. An O_PATH fd of ours (no OPEN reaches
  // the daemon) pins each dentry, so that a drop_caches elsewhere (another test) cannot make the
  // kernel forget them meanwhile.
  std::vector<UniqueFd> pinned;
  for (int i = 0; i < files; ++i) {
    pinned.emplace_back(::open(path(std::to_string(i)).c_str(), O_PATH | O_CLOEXEC));
    ASSERT_TRUE(pinned.back().valid()) << errno_text();
  }
  EXPECT_GE(fs_->inode_count(), static_cast<std::size_t>(files));
  // Our own pins, and a few fds in flight in the workers; nowhere near one per inode more.
  EXPECT_LT(open_fd_count(), before + files + 10);
}

}  // namespace
}  // namespace fuse_backend::passthrough::testing
