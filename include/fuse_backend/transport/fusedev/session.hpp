// Session: one FUSE mount and the /dev/fuse descriptor that serves it.
//
// Layer: transport::fusedev. Session::mount() opens /dev/fuse and mounts it with mount(2)
// (`fd=N,rootmode=...,user_id=...,group_id=...`); when the kernel refuses (EPERM: not
// privileged) it asks the set-uid helper `fusermount3` instead and receives the device fd over a
// socketpair (_FUSE_COMMFD, SCM_RIGHTS), exactly as libfuse does. unmount() undoes whichever was
// used. The Session owns the device fd; the workers that serve it (fusedev::Service) borrow it,
// so a Session must outlive its Service. Not thread-safe: mount, unmount and destroy from one
// thread (unmounting from outside while a Service serves is fine: the Service sees ENODEV).
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <fuse_backend/detail/unique_fd.hpp>
#include <fuse_backend/result.hpp>

namespace fuse_backend::transport::fusedev {

struct MountOptions {
  // Shown as the mount source in /proc/mounts.
  std::string fsname = "fuse_backend";
  // Mount type becomes "fuse.<subtype>" ("fuse" when empty).
  std::string subtype;
  // Let users other than the mounter access the filesystem (unprivileged: needs
  // `user_allow_other` in /etc/fuse.conf).
  bool allow_other = false;
  // Let the kernel check permissions from the file modes (no ACCESS requests then).
  bool default_permissions = false;
  bool read_only = false;
  bool nosuid = true;
  bool nodev = true;
  bool noexec = false;
  // Largest READ the kernel sends (0: the kernel's default).
  std::uint32_t max_read = 0;
  // Further raw options appended to the mount data / fusermount3 -o, e.g. "blksize=4096".
  std::vector<std::string> extra;
};

class Session {
 public:
  // Mounts a new FUSE filesystem on `mountpoint`, which must be an existing directory.
  // Errors: ENOENT (no such mountpoint), ENOTDIR (not a directory), EBUSY, EPERM/EACCES (neither
  // mount(2) nor fusermount3 may mount there), ENODEV (no /dev/fuse), or an errno of the helper.
  static Result<Session> mount(const std::string& mountpoint, const MountOptions& options = {});

  Session(Session&& other) noexcept;
  Session& operator=(Session&& other) noexcept;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  // Unmounts lazily if still mounted, then closes the device fd.
  ~Session();

  // The /dev/fuse descriptor of this mount (valid until the Session is destroyed).
  int fd() const noexcept { return fd_.get(); }
  const std::string& mountpoint() const noexcept { return mountpoint_; }
  bool mounted() const noexcept { return mounted_; }
  // True when the mount went through fusermount3 (so does the unmount).
  bool via_fusermount() const noexcept { return via_fusermount_; }

  // Has the kernel write back what it holds dirty for this mount (syncfs(2) on its root). The
  // writeback cache and shared writable mappings keep written data in the kernel; it reaches
  // the filesystem only as WRITE requests, and whatever is still dirty when the connection ends
  // is lost. syncfs may return once those WRITEs are queued, not answered (Linux 6.18 does not
  // wait for the writeback cache's, and here lost mmap stores under load too), so a daemon
  // stopping on a signal calls this while its Service still serves (from another thread: it
  // costs an OPENDIR, a STATFS and a RELEASEDIR) and then Service::drain_and_stop(), which
  // answers them. A no-op once the mount is gone.
  Result<void> sync() const noexcept;

  // Unmounts (umount2, MNT_DETACH when `lazy`; `fusermount3 -u [-z]` when unprivileged).
  // A filesystem already unmounted from outside counts as success, and whatever has been mounted
  // at the mount point since (another device) is left alone. Serving workers then read ENODEV
  // and end.
  Result<void> unmount(bool lazy = false) noexcept;

 private:
  Session(detail::UniqueFd fd, std::string mountpoint, bool via_fusermount) noexcept;

  detail::UniqueFd fd_;
  std::string mountpoint_;
  std::uint64_t mount_id_ = 0;  // of our mount (0: unknown), so that unmount() leaves others alone
  bool mounted_ = false;
  bool via_fusermount_ = false;
};

// The mount(2) data string for `options` on a device fd `fd` whose mountpoint has file type
// `root_mode` (S_IFDIR...), for uid/gid: exposed for tests and for callers that mount by hand.
std::string mount_data(const MountOptions& options, int fd, std::uint32_t root_mode,
                       std::uint32_t uid, std::uint32_t gid);

}  // namespace fuse_backend::transport::fusedev
