// FileHandle and MountFds (see include/fuse_backend/passthrough/file_handle.hpp).
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/passthrough/file_handle.hpp>

#include <sys/stat.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <mutex>

#include <fuse_backend/detail/syscall.hpp>

namespace fuse_backend::passthrough {

Result<FileHandle> FileHandle::of(int fd) noexcept {
  FileHandle handle;
  handle.get()->handle_bytes = MAX_HANDLE_SZ;
  auto rc = detail::syscall_void(
      [&] { return ::name_to_handle_at(fd, "", handle.get(), &handle.mount_id_, AT_EMPTY_PATH); });
  if (!rc) return fail(rc.error());
  return handle;
}

bool FileHandle::operator==(const FileHandle& other) const noexcept {
  const auto* mine = reinterpret_cast<const struct file_handle*>(storage_);
  const auto* theirs = reinterpret_cast<const struct file_handle*>(other.storage_);
  return mount_id_ == other.mount_id_ && mine->handle_type == theirs->handle_type &&
         mine->handle_bytes == theirs->handle_bytes &&
         std::memcmp(mine->f_handle, theirs->f_handle, mine->handle_bytes) == 0;
}

Result<void> MountFds::ensure(int mount_id, int fd, mode_t type) {
  {
    std::shared_lock lock(mutex_);
    if (fds_.contains(mount_id)) return {};
  }
  // Opened read-only, and only for a directory or a regular file: a fifo or device is never
  // opened (see passthrough_fs.hpp), and open_by_handle_at refuses O_PATH mount fds.
  if (!S_ISDIR(type) && !S_ISREG(type)) return fail(std::errc::operation_not_supported);
  char name[16];
  *std::to_chars(name, name + sizeof name - 1, fd).ptr = '\0';
  const int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (S_ISDIR(type) ? O_DIRECTORY : 0);
  auto opened = detail::syscall_result<int>([&] { return ::openat(proc_self_fd_, name, flags); });
  if (!opened) return fail(opened.error());
  detail::UniqueFd owned(*opened);
  std::unique_lock lock(mutex_);
  fds_.try_emplace(mount_id, std::move(owned));  // a concurrent ensure may have won: keep its fd
  return {};
}

Result<detail::UniqueFd> MountFds::open(FileHandle& handle, int flags) const noexcept {
  std::shared_lock lock(mutex_);
  auto it = fds_.find(handle.mount_id());
  if (it == fds_.end()) return fail(static_cast<std::errc>(ESTALE));
  auto fd = detail::syscall_result<int>(
      [&] { return ::open_by_handle_at(it->second.get(), handle.get(), flags); });
  // ENOMEM here means stale too: when the object is gone and its inode number is being reused
  // by a file that is being created right now, the kernel's inode lookup (iget_locked) fails
  // the race as an allocation failure, and exportfs passes exactly that errno through.
  if (!fd && fd.error() == std::errc::not_enough_memory) return fail(static_cast<std::errc>(ESTALE));
  if (!fd) return fail(fd.error());
  return detail::UniqueFd(*fd);
}

}  // namespace fuse_backend::passthrough
