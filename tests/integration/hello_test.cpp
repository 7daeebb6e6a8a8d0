// Integration tests of examples/hello: the built binary mounts its filesystem on a temp dir, the
// test reads it with ordinary POSIX calls, then ends it with SIGTERM / SIGINT / an unmount from
// outside and checks the mount is gone and the exit status is 0. Needs root and /dev/fuse.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <support/files.hpp>
#include <support/mount_guard.hpp>
#include <support/program.hpp>
#include <support/temp_dir.hpp>

namespace {

using fuse_backend::testing::ChildGuard;
using fuse_backend::testing::exited_with;
using fuse_backend::testing::ProgramRun;
using fuse_backend::testing::run_program;
using fuse_backend::testing::spawn_program;
using fuse_backend::testing::is_mounted;
using fuse_backend::testing::list_dir;
using fuse_backend::testing::read_file;
using fuse_backend::testing::MountGuard;
using fuse_backend::testing::TempDir;
using fuse_backend::testing::wait_for_mount;

const std::string hello_binary = FUSE_BACKEND_EXAMPLES_DIR "/hello";

class HelloExample : public ::testing::Test {
 protected:
  // Starts hello on the temp dir and waits until it is mounted.
  void start() {
    child_.emplace(spawn_program(hello_binary, {dir_.str()}));
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
  EXPECT_EQ(list_dir(dir_.str(), /*with_dots=*/true), (std::vector<std::string>{".", "..", "README", "hello.txt"}));
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
  const ProgramRun run = run_program(hello_binary, args);
  EXPECT_TRUE(exited_with(run.status, 1)) << "status " << run.status;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  EXPECT_EQ(run.err.rfind("hello: ", 0), 0u) << run.err;
  return run.err;
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
  const ProgramRun run = run_program(hello_binary, {"--help"});
  EXPECT_TRUE(exited_with(run.status, 0)) << "status " << run.status;
  EXPECT_EQ(run.out.rfind("usage: hello MOUNTPOINT", 0), 0u) << run.out;
}

}  // namespace
