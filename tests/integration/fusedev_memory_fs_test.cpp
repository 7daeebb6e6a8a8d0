// Real-mount tests of the /dev/fuse transport + Server + MemoryFs: the in-memory read-write
// filesystem is mounted in-process (Service with two workers) and exercised through ordinary
// POSIX calls, so every request is a real kernel request. Timeouts are 0, so the kernel asks the
// filesystem every time instead of answering from its caches. Needs root and /dev/fuse.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <fuse_backend/detail/unique_fd.hpp>
#include <support/files.hpp>
#include <support/memory_fs.hpp>
#include <support/served_mount.hpp>

namespace {

using fuse_backend::detail::UniqueFd;
using fuse_backend::testing::MemoryFs;
using fuse_backend::testing::ServedMount;

std::string errno_text() { return std::strerror(errno); }

class MemoryFsMount : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(mount_.ok()) << "mount: " << mount_.error(); }

  std::string path(std::string_view relative) const { return mount_.path(relative); }

  UniqueFd open_file(std::string_view relative, int flags, mode_t mode = 0644) {
    return UniqueFd(::open(path(relative).c_str(), flags | O_CLOEXEC, mode));
  }
  void write_file(std::string_view relative, const std::string& data) {
    fuse_backend::testing::write_file(path(relative), data);
  }
  std::string read_file(std::string_view relative) { return fuse_backend::testing::read_file(path(relative)); }
  std::vector<std::string> list(std::string_view relative) {
    return fuse_backend::testing::list_dir(path(relative), /*with_dots=*/true);
  }

  // Waits until the filesystem holds `count` inodes (forgets and releases arrive asynchronously).
  bool wait_for_inode_count(std::size_t count) {
    for (int i = 0; i < 300; ++i) {
      if (fs_.inode_count() == count) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  MemoryFs fs_{std::chrono::seconds(0)};
  ServedMount<MemoryFs> mount_{fs_};
};

TEST_F(MemoryFsMount, RootIsAnEmptyDirectory) {
  struct stat st {};
  ASSERT_EQ(::stat(path("").c_str(), &st), 0) << errno_text();
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_ino, 1u);
  EXPECT_EQ(list(""), (std::vector<std::string>{".", ".."}));
  EXPECT_EQ(::stat(path("missing").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
}

TEST_F(MemoryFsMount, CreateLookupAndStat) {
  UniqueFd fd = open_file("new", O_RDWR | O_CREAT | O_EXCL, 0640);
  ASSERT_TRUE(fd.valid()) << errno_text();
  struct stat by_fd {};
  ASSERT_EQ(::fstat(fd.get(), &by_fd), 0);
  EXPECT_TRUE(S_ISREG(by_fd.st_mode));
  EXPECT_EQ(by_fd.st_mode & 07777, 0640u);
  EXPECT_EQ(by_fd.st_size, 0);
  EXPECT_EQ(by_fd.st_uid, ::geteuid());
  struct stat by_path {};
  ASSERT_EQ(::stat(path("new").c_str(), &by_path), 0);
  EXPECT_EQ(by_path.st_ino, by_fd.st_ino);
  EXPECT_FALSE(open_file("new", O_RDWR | O_CREAT | O_EXCL).valid());
  EXPECT_EQ(errno, EEXIST);
  EXPECT_GE(fs_.lookup_count(fuse_backend::api::InodeId{by_fd.st_ino}), 1u);
}

TEST_F(MemoryFsMount, WriteThenReadBack) {
  std::string data(300 * 1024, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + (i * 7) % 26);
  ASSERT_NO_FATAL_FAILURE(write_file("big", data));
  EXPECT_EQ(read_file("big"), data);

  UniqueFd fd = open_file("big", O_RDWR);
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(::pwrite(fd.get(), "XYZ", 3, 1000), 3);
  std::array<char, 5> back{};
  ASSERT_EQ(::pread(fd.get(), back.data(), 5, 999), 5);
  EXPECT_EQ(std::string(back.data(), 5), data.substr(999, 1) + "XYZ" + data.substr(1003, 1));
  EXPECT_EQ(::pread(fd.get(), back.data(), 5, static_cast<off_t>(data.size())), 0) << "end of file";

  UniqueFd append = open_file("big", O_WRONLY | O_APPEND);
  ASSERT_TRUE(append.valid());
  ASSERT_EQ(::write(append.get(), "tail", 4), 4);
  struct stat st {};
  ASSERT_EQ(::stat(path("big").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(data.size() + 4));
  EXPECT_EQ(read_file("big").substr(data.size()), "tail");
}

TEST_F(MemoryFsMount, ReaddirSpansSeveralReplies) {
  std::vector<std::string> expected{".", ".."};
  for (int i = 0; i < 300; ++i) {
    const std::string name = "file-with-a-longish-name-" + std::to_string(i);
    ASSERT_NO_FATAL_FAILURE(write_file(name, ""));
    expected.push_back(name);
  }
  ASSERT_EQ(::mkdir(path("subdir").c_str(), 0755), 0);
  expected.emplace_back("subdir");
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(list(""), expected);

  DIR* dir = ::opendir(path("").c_str());
  ASSERT_NE(dir, nullptr);
  while (const dirent* entry = ::readdir(dir)) {
    const std::string_view name = entry->d_name;
    const unsigned char want = (name == "." || name == ".." || name == "subdir") ? DT_DIR : DT_REG;
    EXPECT_EQ(entry->d_type, want) << name;
  }
  ::closedir(dir);
}

TEST_F(MemoryFsMount, UnlinkRemovesAndForgetFreesTheInode) {
  const std::size_t initial = fs_.inode_count();
  ASSERT_NO_FATAL_FAILURE(write_file("doomed", "bye"));
  EXPECT_EQ(fs_.inode_count(), initial + 1);
  ASSERT_EQ(::unlink(path("doomed").c_str()), 0) << errno_text();
  struct stat st {};
  EXPECT_EQ(::stat(path("doomed").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(::unlink(path("doomed").c_str()), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_TRUE(wait_for_inode_count(initial)) << "the kernel's FORGET never freed the inode";
}

TEST_F(MemoryFsMount, UnlinkedFileStaysReadableWhileOpen) {
  const std::size_t initial = fs_.inode_count();
  ASSERT_NO_FATAL_FAILURE(write_file("open-unlinked", "still here"));
  {
    UniqueFd fd = open_file("open-unlinked", O_RDONLY);
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(::unlink(path("open-unlinked").c_str()), 0);
    std::array<char, 16> buffer{};
    ASSERT_EQ(::pread(fd.get(), buffer.data(), buffer.size(), 0), 10);
    EXPECT_EQ(std::string(buffer.data(), 10), "still here");
  }
  EXPECT_TRUE(wait_for_inode_count(initial));
}

TEST_F(MemoryFsMount, MkdirAndRmdir) {
  ASSERT_EQ(::mkdir(path("d").c_str(), 0750), 0) << errno_text();
  ASSERT_EQ(::mkdir(path("d/e").c_str(), 0755), 0);
  struct stat st {};
  ASSERT_EQ(::stat(path("d").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_nlink, 3u) << "itself, its entry, and e's ..";
  EXPECT_EQ(::mkdir(path("d").c_str(), 0755), -1);
  EXPECT_EQ(errno, EEXIST);
  EXPECT_EQ(::rmdir(path("d").c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);
  ASSERT_NO_FATAL_FAILURE(write_file("d/file", "x"));
  EXPECT_EQ(::rmdir(path("d/file").c_str()), -1);
  EXPECT_EQ(errno, ENOTDIR);
  EXPECT_EQ(::unlink(path("d/e").c_str()), -1);
  EXPECT_EQ(errno, EISDIR);
  ASSERT_EQ(::unlink(path("d/file").c_str()), 0);
  ASSERT_EQ(::rmdir(path("d/e").c_str()), 0);
  ASSERT_EQ(::rmdir(path("d").c_str()), 0);
  EXPECT_EQ(list(""), (std::vector<std::string>{".", ".."}));
}

TEST_F(MemoryFsMount, RenameMovesReplacesAndHonoursFlags) {
  ASSERT_NO_FATAL_FAILURE(write_file("a", "content a"));
  ASSERT_NO_FATAL_FAILURE(write_file("b", "content b"));
  ASSERT_EQ(::mkdir(path("dir").c_str(), 0755), 0);

  ASSERT_EQ(::rename(path("a").c_str(), path("dir/a2").c_str()), 0) << errno_text();
  EXPECT_EQ(read_file("dir/a2"), "content a");
  EXPECT_EQ(::access(path("a").c_str(), F_OK), -1);

  EXPECT_EQ(::renameat2(AT_FDCWD, path("b").c_str(), AT_FDCWD, path("dir/a2").c_str(), RENAME_NOREPLACE), -1);
  EXPECT_EQ(errno, EEXIST);

  ASSERT_EQ(::renameat2(AT_FDCWD, path("b").c_str(), AT_FDCWD, path("dir/a2").c_str(), RENAME_EXCHANGE), 0)
      << errno_text();
  EXPECT_EQ(read_file("b"), "content a");
  EXPECT_EQ(read_file("dir/a2"), "content b");

  ASSERT_EQ(::rename(path("b").c_str(), path("dir/a2").c_str()), 0) << "replace";
  EXPECT_EQ(read_file("dir/a2"), "content a");
  EXPECT_EQ(list("dir"), (std::vector<std::string>{".", "..", "a2"}));
  EXPECT_EQ(list(""), (std::vector<std::string>{".", "..", "dir"}));

  ASSERT_EQ(::mkdir(path("dir/sub").c_str(), 0755), 0);
  EXPECT_EQ(::rename(path("dir").c_str(), path("dir/sub/inside").c_str()), -1);
  EXPECT_EQ(errno, EINVAL);
  ASSERT_EQ(::rename(path("dir/sub").c_str(), path("moved").c_str()), 0);
  struct stat st {};
  ASSERT_EQ(::stat(path("").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 4u) << "root: itself, its entry, dir/.., moved/..";
}

TEST_F(MemoryFsMount, SymlinkAndReadlink) {
  ASSERT_NO_FATAL_FAILURE(write_file("target", "pointed at"));
  ASSERT_EQ(::symlink("target", path("link").c_str()), 0) << errno_text();
  std::array<char, 64> buffer{};
  const ssize_t n = ::readlink(path("link").c_str(), buffer.data(), buffer.size());
  ASSERT_EQ(n, 6);
  EXPECT_EQ(std::string(buffer.data(), 6), "target");
  struct stat st {};
  ASSERT_EQ(::lstat(path("link").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(st.st_size, 6);
  EXPECT_EQ(read_file("link"), "pointed at");
  EXPECT_EQ(::readlink(path("target").c_str(), buffer.data(), buffer.size()), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST_F(MemoryFsMount, HardLinkSharesTheInode) {
  ASSERT_NO_FATAL_FAILURE(write_file("one", "shared"));
  ASSERT_EQ(::link(path("one").c_str(), path("two").c_str()), 0) << errno_text();
  struct stat first {}, second {};
  ASSERT_EQ(::stat(path("one").c_str(), &first), 0);
  ASSERT_EQ(::stat(path("two").c_str(), &second), 0);
  EXPECT_EQ(first.st_ino, second.st_ino);
  EXPECT_EQ(second.st_nlink, 2u);
  ASSERT_EQ(::unlink(path("one").c_str()), 0);
  EXPECT_EQ(read_file("two"), "shared");
  ASSERT_EQ(::stat(path("two").c_str(), &second), 0);
  EXPECT_EQ(second.st_nlink, 1u);
}

TEST_F(MemoryFsMount, ExtendedAttributes) {
  ASSERT_NO_FATAL_FAILURE(write_file("x", ""));
  const std::string file = path("x");
  ASSERT_EQ(::setxattr(file.c_str(), "user.colour", "blue", 4, 0), 0) << errno_text();
  ASSERT_EQ(::setxattr(file.c_str(), "user.size", "big", 3, XATTR_CREATE), 0);
  EXPECT_EQ(::setxattr(file.c_str(), "user.size", "small", 5, XATTR_CREATE), -1);
  EXPECT_EQ(errno, EEXIST);
  EXPECT_EQ(::setxattr(file.c_str(), "user.absent", "v", 1, XATTR_REPLACE), -1);
  EXPECT_EQ(errno, ENODATA);

  std::array<char, 64> value{};
  EXPECT_EQ(::getxattr(file.c_str(), "user.colour", nullptr, 0), 4) << "size query";
  ASSERT_EQ(::getxattr(file.c_str(), "user.colour", value.data(), value.size()), 4);
  EXPECT_EQ(std::string(value.data(), 4), "blue");
  EXPECT_EQ(::getxattr(file.c_str(), "user.colour", value.data(), 2), -1);
  EXPECT_EQ(errno, ERANGE);
  EXPECT_EQ(::getxattr(file.c_str(), "user.absent", value.data(), value.size()), -1);
  EXPECT_EQ(errno, ENODATA);

  std::array<char, 128> names{};
  const ssize_t listed = ::listxattr(file.c_str(), names.data(), names.size());
  ASSERT_EQ(listed, static_cast<ssize_t>(sizeof("user.colour") + sizeof("user.size")));
  EXPECT_EQ(std::string(names.data(), static_cast<std::size_t>(listed)), std::string("user.colour\0user.size\0", 22));

  ASSERT_EQ(::removexattr(file.c_str(), "user.colour"), 0);
  EXPECT_EQ(::getxattr(file.c_str(), "user.colour", value.data(), value.size()), -1);
  EXPECT_EQ(errno, ENODATA);
  EXPECT_EQ(::removexattr(file.c_str(), "user.colour"), -1);
  EXPECT_EQ(errno, ENODATA);
}

TEST_F(MemoryFsMount, TruncateChmodChownUtimens) {
  ASSERT_NO_FATAL_FAILURE(write_file("t", "0123456789abcdef"));
  ASSERT_EQ(::truncate(path("t").c_str(), 10), 0) << errno_text();
  EXPECT_EQ(read_file("t"), "0123456789");
  {
    UniqueFd fd = open_file("t", O_RDWR);
    ASSERT_EQ(::ftruncate(fd.get(), 12), 0);
  }
  EXPECT_EQ(read_file("t"), std::string("0123456789\0\0", 12));
  ASSERT_NO_FATAL_FAILURE(write_file("t", "short"));  // O_TRUNC on open
  EXPECT_EQ(read_file("t"), "short");

  ASSERT_EQ(::chmod(path("t").c_str(), 0600), 0);
  ASSERT_EQ(::chown(path("t").c_str(), 123, 456), 0);
  const timespec times[2] = {{1000, 5}, {2000, 7}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path("t").c_str(), times, 0), 0);
  struct stat st {};
  ASSERT_EQ(::stat(path("t").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, 123u);
  EXPECT_EQ(st.st_gid, 456u);
  EXPECT_EQ(st.st_atim.tv_sec, 1000);
  EXPECT_EQ(st.st_atim.tv_nsec, 5);
  EXPECT_EQ(st.st_mtim.tv_sec, 2000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 7);
  EXPECT_EQ(::truncate(path("").c_str(), 0), -1);
  EXPECT_EQ(errno, EISDIR);
}

TEST_F(MemoryFsMount, Statfs) {
  struct statvfs st {};
  ASSERT_EQ(::statvfs(path("").c_str(), &st), 0) << errno_text();
  EXPECT_EQ(st.f_bsize, 4096u);
  EXPECT_EQ(st.f_namemax, 255u);
  EXPECT_EQ(st.f_blocks, 1u << 20);
  EXPECT_GT(st.f_files, 0u);
  EXPECT_LE(st.f_ffree, st.f_files);
}

TEST_F(MemoryFsMount, MknodFifo) {
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0644), 0) << errno_text();
  struct stat st {};
  ASSERT_EQ(::lstat(path("fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

}  // namespace
