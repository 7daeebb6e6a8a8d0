// Integration tests of examples/hello: the built binary mounts its filesystem on a temp dir, the
// test reads it with ordinary POSIX calls, then ends it with SIGTERM / SIGINT / an unmount from
// outside and checks the mount is gone and the exit status is 0. Needs root and /dev/fuse.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <fuse_backend/detail/unique_fd.hpp>
#include <support/mount_guard.hpp>
#include <support/temp_dir.hpp>

extern char** environ;

namespace {

using fuse_backend::detail::UniqueFd;
using fuse_backend::testing::ChildGuard;
using fuse_backend::testing::is_mounted;
using fuse_backend::testing::MountGuard;
using fuse_backend::testing::TempDir;
using fuse_backend::testing::wait_for_mount;

const std::string hello_binary = FUSE_BACKEND_EXAMPLES_DIR "/hello";

// Starts hello with `args`; its stderr goes to `stderr_fd` when given.
pid_t spawn_hello(const std::vector<std::string>& args, int stderr_fd = -1) {
  std::vector<char*> argv{const_cast<char*>(hello_binary.c_str())};
  for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (stderr_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stderr_fd, STDERR_FILENO);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, hello_binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(rc, 0) << "cannot start " << hello_binary;
  return rc == 0 ? pid : -1;
}

std::string read_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return "<open failed: " + std::string(std::strerror(errno)) + ">";
  std::string out(4096, '\0');
  const ssize_t n = ::read(fd.get(), out.data(), out.size());
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> names;
  if (DIR* dir = ::opendir(path.c_str())) {
    while (const dirent* entry = ::readdir(dir)) names.emplace_back(entry->d_name);
    ::closedir(dir);
  }
  std::sort(names.begin(), names.end());
  return names;
}

class HelloExample : public ::testing::Test {
 protected:
  // Starts hello on the temp dir and waits until it is mounted.
  void start() {
    child_.emplace(spawn_hello({dir_.str()}));
    ASSERT_GT(child_->pid(), 0);
    ASSERT_TRUE(wait_for_mount(dir_.str(), true)) << "hello did not mount " << dir_.str();
  }
  // Waits for hello to exit; returns its wait status (or -1 after 10 s).
  int wait_exit() {
    const auto status = child_->wait_for(10'000);
    return status ? *status : -1;
  }

  TempDir dir_{"fuse_backend_hello"};
  MountGuard mount_guard_{dir_.str()};
  std::optional<ChildGuard> child_;
};

TEST_F(HelloExample, ServesItsFilesUntilSigterm) {
  ASSERT_NO_FATAL_FAILURE(start());
  EXPECT_EQ(list_dir(dir_.str()), (std::vector<std::string>{".", "..", "README", "hello.txt"}));
  EXPECT_EQ(read_file(dir_.str() + "/hello.txt"), "Hello, world!\n");
  EXPECT_NE(read_file(dir_.str() + "/README").find("hello"), std::string::npos);

  struct stat st {};
  ASSERT_EQ(::stat((dir_.str() + "/hello.txt").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0444u);
  EXPECT_EQ(st.st_size, 14);
  ASSERT_EQ(::stat(dir_.str().c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(::stat((dir_.str() + "/missing").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(::open((dir_.str() + "/hello.txt").c_str(), O_WRONLY | O_CLOEXEC), -1);
  EXPECT_EQ(errno, EROFS);

  ASSERT_EQ(::kill(child_->pid(), SIGTERM), 0);
  const int status = wait_exit();
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_FALSE(is_mounted(dir_.str())) << "hello must unmount on SIGTERM";
}

TEST_F(HelloExample, SigintStopsAndUnmountsToo) {
  ASSERT_NO_FATAL_FAILURE(start());
  EXPECT_EQ(read_file(dir_.str() + "/hello.txt"), "Hello, world!\n");
  ASSERT_EQ(::kill(child_->pid(), SIGINT), 0);
  const int status = wait_exit();
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_FALSE(is_mounted(dir_.str()));
}

TEST_F(HelloExample, ExitsCleanlyWhenUnmountedFromOutside) {
  ASSERT_NO_FATAL_FAILURE(start());
  EXPECT_EQ(read_file(dir_.str() + "/hello.txt"), "Hello, world!\n");
  ASSERT_EQ(::umount2(dir_.str().c_str(), 0), 0) << std::strerror(errno);
  const int status = wait_exit();
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// Runs hello with `args`, expecting exit status 1 and exactly one line on stderr.
std::string expect_one_line_failure(const std::vector<std::string>& args) {
  std::array<int, 2> fds{};
  EXPECT_EQ(::pipe2(fds.data(), O_CLOEXEC), 0);
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  ChildGuard child(spawn_hello(args, write_end.get()));
  write_end.reset();
  std::string err;
  std::array<char, 512> buffer{};
  for (ssize_t n; (n = ::read(read_end.get(), buffer.data(), buffer.size())) > 0;) {
    err.append(buffer.data(), static_cast<std::size_t>(n));
  }
  const int status = child.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << "status " << status;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_EQ(err.rfind("hello: ", 0), 0u) << err;
  return err;
}

TEST(HelloExampleUsage, BadUsageIsOneLineAndExitOne) {
  expect_one_line_failure({});
  expect_one_line_failure({"a", "b"});
  expect_one_line_failure({"--bogus"});
}

TEST(HelloExampleUsage, MountFailureIsOneLineAndExitOne) {
  TempDir dir("fuse_backend_hello");
  const std::string err = expect_one_line_failure({dir.str() + "/absent"});
  EXPECT_NE(err.find("cannot mount"), std::string::npos) << err;
  EXPECT_FALSE(is_mounted(dir.str() + "/absent"));
}

TEST(HelloExampleUsage, HelpExitsZero) {
  ChildGuard child(spawn_hello({"--help"}));
  const int status = child.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
}

}  // namespace
