// Fixture for tests that run the examples/passthrough daemon as a separate process: a temporary
// source directory served on a fresh mountpoint, the daemon's stdout / stderr in a log folder,
// and guards that kill the daemon (by pid) and unmount even when a test fails. Shared by the
// command-line tests and the tests that run ordinary tools through the mount. Needs root and
// /dev/fuse.
//
// PassthroughDaemonFixture<Base> derives from Base (::testing::Test, or TestWithParam<T> for a
// parameterised suite). Killing the daemon is safe: it is another process, never this one.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <support/files.hpp>
#include <support/mount_guard.hpp>
#include <support/program.hpp>
#include <support/temp_dir.hpp>

namespace fuse_backend::testing {

inline const std::string passthrough_binary = FUSE_BACKEND_EXAMPLES_DIR "/passthrough";

template <class Base = ::testing::Test>
class PassthroughDaemonFixture : public Base {
 protected:
  // Starts the daemon on source_ -> mnt_ with `extra` options and waits for the mount.
  void start(std::vector<std::string> extra = {}) {
    extra.push_back(source_.str());
    extra.push_back(mnt_.str());
    child_.emplace(
        spawn_program(passthrough_binary, extra, logs_.str() + "/out", logs_.str() + "/err"));
    ASSERT_GT(child_->pid(), 0);
    ASSERT_TRUE(wait_for_mount(mnt_.str(), true)) << "not mounted; stderr: " << stderr_text();
  }
  // Waits for the daemon to end; its wait status, or -1 after 10 s.
  int wait_exit() {
    const auto status = child_->wait_for(10'000);
    return status ? *status : -1;
  }
  std::string stderr_text() const { return read_file(logs_.str() + "/err"); }

  void expect_clean_exit() {
    const int status = wait_exit();
    EXPECT_TRUE(exited_with(status, 0))
        << "wait status " << status << "; stderr: " << stderr_text();
    EXPECT_FALSE(is_mounted(mnt_.str())) << "still mounted after the daemon exited";
  }

  // SIGTERM, then a clean exit with nothing on stderr (no fallback was logged: the mode asked
  // for is the mode that served).
  void stop_quietly() {
    ASSERT_EQ(::kill(child_->pid(), SIGTERM), 0);
    expect_clean_exit();
    EXPECT_EQ(stderr_text(), "");
  }

  TempDir logs_{"fuse_backend_daemon_logs"};
  TempDir source_{"fuse_backend_daemon_src"};
  TempDir mnt_{"fuse_backend_daemon_mnt"};
  MountGuard mount_guard_{mnt_.str()};  // after mnt_: unmounts before the directory goes
  std::optional<ChildGuard> child_;     // last: killed first, before the unmount
};

}  // namespace fuse_backend::testing
