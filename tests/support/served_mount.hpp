// ServedMount<Fs>: a filesystem mounted on a fresh temp dir and served in-process by a
// fusedev::Service, for real-mount tests that drive it with ordinary POSIX calls.
//
// Layer: tests/support. Construction mounts and starts the workers (check ok() / error());
// destruction unmounts lazily first, so the workers end through ENODEV even if a test left
// them busy, then joins them, then removes the directory (a MountGuard covers every early exit).
// The filesystem must outlive the ServedMount. Not thread-safe; one owner.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include <fuse_backend/api/filesystem.hpp>
#include <fuse_backend/transport/fusedev/service.hpp>
#include <fuse_backend/transport/fusedev/session.hpp>
#include <support/mount_guard.hpp>
#include <support/temp_dir.hpp>

namespace fuse_backend::testing {

template <api::Filesystem Fs>
class ServedMount {
 public:
  using Service = transport::fusedev::Service<Fs>;

  explicit ServedMount(Fs& fs, transport::fusedev::ServiceOptions options = two_workers(),
                       const transport::fusedev::MountOptions& mount = {}) {
    auto session = transport::fusedev::Session::mount(dir_.str(), mount);
    if (!session) {
      error_ = session.error();
      return;
    }
    session_.emplace(std::move(*session));
    service_.emplace(*session_, fs, options);
    if (auto started = service_->start(); !started) error_ = started.error();
  }
  ServedMount(const ServedMount&) = delete;
  ServedMount& operator=(const ServedMount&) = delete;
  ~ServedMount() {
    if (session_) (void)session_->unmount(/*lazy=*/true);
    service_.reset();
    session_.reset();
  }

  bool ok() const noexcept { return !error_; }
  // Why mounting or starting failed, as text for an assertion message.
  std::string error() const { return error_ ? std::make_error_code(*error_).message() : "no error"; }

  // The mountpoint, or a path below it.
  std::string path(std::string_view relative = {}) const {
    return relative.empty() ? dir_.str() : dir_.str() + "/" + std::string(relative);
  }
  transport::fusedev::Session& session() { return *session_; }
  Service& service() { return *service_; }

 private:
  static transport::fusedev::ServiceOptions two_workers() {
    transport::fusedev::ServiceOptions options;
    options.threads = 2;
    return options;
  }

  TempDir dir_{"fuse_backend_mount"};
  MountGuard guard_{dir_.str()};
  std::optional<std::errc> error_;
  std::optional<transport::fusedev::Session> session_;
  std::optional<Service> service_;
};

}  // namespace fuse_backend::testing
