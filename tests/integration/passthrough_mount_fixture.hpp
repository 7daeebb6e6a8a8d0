// Fixture for real-mount PassthroughFs tests: a temporary source directory served on a fresh
// mountpoint by an in-process fusedev Service (allow_other, so other uids may use it, and no
// default_permissions, so every permission decision is the daemon's), counting the requests the
// daemon receives, plus a helper to run a body in a child process with other filesystem ids.
// Needs root and /dev/fuse.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/api/observer.hpp>
#include <fuse_backend/detail/unique_fd.hpp>
#include <fuse_backend/passthrough/passthrough_fs.hpp>
#include <support/files.hpp>
#include <support/mount_guard.hpp>
#include <support/served_mount.hpp>
#include <support/temp_dir.hpp>

namespace fuse_backend::passthrough::testing {

using fuse_backend::detail::UniqueFd;
using fuse_backend::testing::ChildGuard;
using fuse_backend::testing::list_dir;
using fuse_backend::testing::read_file;
using fuse_backend::testing::ServedMount;
using fuse_backend::testing::TempDir;
using fuse_backend::testing::write_file;

inline std::string errno_text() { return std::strerror(errno); }

// Counts the requests the daemon really receives, by opcode (ServiceOptions::server.observer).
class OpcodeCounter final : public api::RequestObserver {
 public:
  void on_request(const abi::in_header& header) noexcept override {
    if (header.opcode < counts_.size()) counts_[header.opcode].fetch_add(1, std::memory_order_relaxed);
  }
  void on_reply(const abi::in_header&, int, std::size_t) noexcept override {}
  std::uint64_t operator[](abi::opcode op) const {
    return counts_[static_cast<std::size_t>(op)].load(std::memory_order_relaxed);
  }

 private:
  std::array<std::atomic<std::uint64_t>, 64> counts_{};
};

class PassthroughMount : public ::testing::Test {
 protected:
  // Timeouts 0: every stat and lookup reaches the daemon instead of the kernel's caches.
  static Config uncached() {
    Config config;
    config.entry_timeout = config.attr_timeout = std::chrono::seconds(0);
    config.xattr = true;
    return config;
  }

  void start(Config config = uncached(), unsigned threads = 2,
             transport::fusedev::ServiceOptions options = {}) {
    if (options.server.observer == nullptr) options.server.observer = &requests_;
    config.source = source_.str();
    auto created = PassthroughFs::create(std::move(config));
    ASSERT_TRUE(created) << std::make_error_code(created.error()).message();
    fs_ = std::move(*created);
    options.threads = threads;
    options.io_uring = options.io_uring || io_uring_;
    transport::fusedev::MountOptions mount;
    mount.allow_other = true;
    mount.fsname = "passthrough_test";
    mount_.emplace(*fs_, options, mount);
    ASSERT_TRUE(mount_->ok()) << "mount: " << mount_->error();
  }
  // Unmounts and joins the workers (what a daemon does at exit).
  void stop() { mount_.reset(); }

  std::string path(std::string_view relative = {}) const { return mount_->path(relative); }
  std::string host(std::string_view relative) const { return source_.str() + "/" + std::string(relative); }

  UniqueFd open_file(const std::string& file, int flags, mode_t mode = 0644) {
    return UniqueFd(::open(file.c_str(), flags | O_CLOEXEC, mode));
  }


  // Runs `body` in a child whose filesystem ids are uid/gid with no supplementary groups (the
  // ids the kernel puts in FUSE requests); returns body's result or -1 if it did not exit.
  template <class Body>
  static int as_user(uid_t uid, gid_t gid, Body&& body) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      if (::syscall(SYS_setgroups, 0, nullptr) != 0) ::_exit(100);
      ::syscall(SYS_setfsgid, gid);
      ::syscall(SYS_setfsuid, uid);
      ::_exit(body());
    }
    ChildGuard child(pid);
    const int status = child.wait();
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  // Serve through FUSE-over-io_uring (set by transport-parameterised suites).
  bool io_uring_ = false;
  OpcodeCounter requests_;  // what the daemon received; declared before mount_, which it outlives
  TempDir source_{"passthrough_source"};
  std::unique_ptr<PassthroughFs> fs_;
  std::optional<ServedMount<PassthroughFs>> mount_;  // destroyed before fs_
};

}  // namespace fuse_backend::passthrough::testing
