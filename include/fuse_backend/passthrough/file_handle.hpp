// FileHandle and MountFds: host file handles for the "inode file handles" mode of PassthroughFs.
//
// Layer: passthrough. A FileHandle is what name_to_handle_at(2) returns for one host object
// (plus the id of the mount it was seen on); open_by_handle_at(2) turns it back into an fd for
// as long as the object exists, whatever it has been renamed to, and fails with ESTALE once it
// is gone. An inode that keeps only its handle costs no fd, so the kernel may keep millions of
// inodes referenced without exhausting the daemon's fd limit.
// open_by_handle_at needs an fd on the handle's mount that is not O_PATH, and
// CAP_DAC_READ_SEARCH in the effective set (so it is called before a per-request credential
// switch to a non-root fsuid, which clears that capability).
//
// MountFds caches one such fd per mount id, opened read-only through /proc/self/fd from the
// first directory or regular file seen on that mount (never a special file, which must not be
// opened). Thread safety: FileHandle is a plain value; MountFds is thread-safe (a shared lock
// for opening, the exclusive lock only the first time a mount is seen); open() allocates
// nothing.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <fcntl.h>
#include <sys/types.h>

#include <shared_mutex>
#include <unordered_map>

#include <fuse_backend/detail/unique_fd.hpp>
#include <fuse_backend/result.hpp>

namespace fuse_backend::passthrough {

class FileHandle {
 public:
  // The handle of the object `fd` refers to (any fd, O_PATH included; a symlink is the link).
  // EOPNOTSUPP where the file system has no handles, EOVERFLOW for handles above MAX_HANDLE_SZ.
  static Result<FileHandle> of(int fd) noexcept;

  int mount_id() const noexcept { return mount_id_; }
  struct file_handle* get() noexcept { return reinterpret_cast<struct file_handle*>(storage_); }
  // Whether both name the same object: the same mount, type and handle bytes.
  bool operator==(const FileHandle& other) const noexcept;

 private:
  alignas(struct file_handle) unsigned char storage_[sizeof(struct file_handle) + MAX_HANDLE_SZ]{};
  int mount_id_ = -1;
};

class MountFds {
 public:
  // `proc_self_fd`: an fd of /proc/self/fd, which must outlive this object.
  explicit MountFds(int proc_self_fd) noexcept : proc_self_fd_(proc_self_fd) {}

  // Makes sure `mount_id` has a mount fd, opening it from `fd` (an fd of an object of type
  // `type` on that mount) if not. EOPNOTSUPP when a mount fd is needed and `type` is neither a
  // directory nor a regular file; the errno of the open otherwise.
  Result<void> ensure(int mount_id, int fd, mode_t type);
  // open_by_handle_at(handle, flags) on the handle's mount: ESTALE when the object is gone or
  // the mount was never seen.
  Result<detail::UniqueFd> open(FileHandle& handle, int flags) const noexcept;

 private:
  int proc_self_fd_;
  mutable std::shared_mutex mutex_;
  std::unordered_map<int, detail::UniqueFd> fds_;
};

}  // namespace fuse_backend::passthrough
