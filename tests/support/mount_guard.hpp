// MountGuard: unmounts a path on scope exit, so a failing real-mount test never leaves a mount.
//
// Layer: tests/support. umount2(MNT_DETACH) detaches at once even when the filesystem is busy or
// its server is gone; "not mounted" (EINVAL) and "no such path" (ENOENT) are fine, since the
// test may have unmounted it itself. ChildGuard is the same for a child process the test
// started: SIGKILL + reap on scope exit, for that pid only. Not thread-safe; one owner each.
// is_mounted() / wait_for_mount() read /proc/self/mountinfo, so they never touch the filesystem
// itself (a stat of a mountpoint whose server hangs would hang the test).
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>

namespace fuse_backend::testing {

// True when `path` (absolute, without symlinks or spaces) is a mount point right now.
inline bool is_mounted(const std::string& path) {
  std::ifstream mountinfo("/proc/self/mountinfo");
  for (std::string line; std::getline(mountinfo, line);) {
    std::istringstream fields(line);
    std::string id, parent, device, root, mount_point;
    fields >> id >> parent >> device >> root >> mount_point;
    if (mount_point == path) return true;
  }
  return false;
}

// Polls until is_mounted(path) == `mounted`; false after `timeout_ms`.
inline bool wait_for_mount(const std::string& path, bool mounted, int timeout_ms = 5000) {
  for (int waited = 0;; waited += 10) {
    if (is_mounted(path) == mounted) return true;
    if (waited >= timeout_ms) return false;
    ::usleep(10'000);
  }
}

class MountGuard {
 public:
  explicit MountGuard(std::string path) : path_(std::move(path)) {}
  MountGuard(const MountGuard&) = delete;
  MountGuard& operator=(const MountGuard&) = delete;
  ~MountGuard() { ::umount2(path_.c_str(), MNT_DETACH); }

  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

class ChildGuard {
 public:
  explicit ChildGuard(pid_t pid) noexcept : pid_(pid) {}
  ChildGuard(const ChildGuard&) = delete;
  ChildGuard& operator=(const ChildGuard&) = delete;
  ~ChildGuard() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  pid_t pid() const noexcept { return pid_; }
  // Waits for the child to exit (the guard then has nothing left to do); returns its wait status.
  int wait() noexcept {
    int status = 0;
    if (pid_ > 0 && ::waitpid(pid_, &status, 0) == pid_) pid_ = -1;
    return status;
  }
  // Like wait(), but gives up after `timeout_ms`; std::nullopt when still running.
  std::optional<int> wait_for(int timeout_ms) noexcept {
    for (int waited = 0; pid_ > 0; waited += 10) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return status;
      }
      if (waited >= timeout_ms) return std::nullopt;
      ::usleep(10'000);
    }
    return std::nullopt;
  }

 private:
  pid_t pid_;
};

}  // namespace fuse_backend::testing
