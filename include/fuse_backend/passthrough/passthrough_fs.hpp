// PassthroughFs: a Filesystem that serves a host directory (the "passthrough" of libfuse,
// virtiofsd and fuse-backend-rs).
//
// Layer: passthrough (-> api only; compiled once in src/passthrough/). Construction:
//   auto fs = PassthroughFs::create({.source = "/srv/share", .cache_policy = ...});
//   if (!fs) { /* fs.error(): ENOENT, ENOTDIR, EACCES, EINVAL (bad option combination), and with
//               inode_file_handles = mandatory EPERM / EOPNOTSUPP... (the source has no usable
//               file handle) */ }
// create() opens the source directory and /proc/self/fd once and sets the process umask to 0:
// the kernel has already applied the caller's umask to every mode it sends, and a daemon umask
// would be applied a second time (umask is per process; a daemon owns its own).
//
// Contract (on top of api/filesystem.hpp's):
// - Thread safety: every op may run concurrently with every other on any thread.
// - Lookup counting as the concept says; node ids are never reused; the root (node 1) is never
//   forgotten. Unknown or forgotten node ids answer ESTALE, unknown or released handles EBADF,
//   a handle used with another inode's id EBADF.
// - Security (DESIGN.md section 6). Nothing a request says reaches outside the source:
//   * every name is one component: empty, "/"-containing or NUL-containing names are EINVAL,
//     longer than NAME_MAX is ENAMETOOLONG; "." and ".." are EINVAL for every op that creates,
//     removes or renames; LOOKUP maps "." to the directory itself and ".." to its parent, with
//     ".." of the root being the root, and a parent not looked up before being ENOENT (a
//     directory the host moved out of the source keeps its node, not its new host parents;
//     the kernel itself never sends "." or ".." unless the export operations ask, which this
//     filesystem does not enable);
//   * names are only ever resolved relative to an inode's O_PATH fd with O_NOFOLLOW (openat,
//     statx with AT_SYMLINK_NOFOLLOW, *at calls on a single component), so a symlink is always
//     the link itself and is never followed by the daemon; a directory swapped for a symlink
//     after lookup is still the directory the O_PATH fd pins;
//   * files are opened for I/O only by reopening the inode's own fd through /proc/self/fd/N,
//     and only regular files and directories: a fifo, socket, device or symlink is never opened
//     for I/O (open answers ENXIO for special files, ELOOP for symlinks); attributes and xattrs
//     go through the fd or /proc/self/fd/N, never through a path the client named.
// - Credentials: when the daemon runs as root, every op that checks permission or creates runs
//   with the caller's fsuid/fsgid and supplementary groups (ScopedCredentials, per thread).
// - ioctl: only FS_IOC_GETFLAGS / FS_IOC_SETFLAGS (chattr/lsattr, 4-byte flags as the FUSE
//   kernel sends them) and FS_IOC_FSGETXATTR (which the kernel reads before every SETFLAGS), on
//   an open regular file or directory, as the caller; an unprivileged caller may not change
//   the immutable/append-only flags (the fsuid switch drops the daemon's CAP_LINUX_IMMUTABLE,
//   tested). Everything else is ENOTTY: FSSETXATTR would let a caller set project ids, other
//   ioctls pass pointers or act on devices, none of which is safe to forward.
// - Locks: POSIX locks are OFD locks on one host description per lock owner (handle_table.hpp);
//   SETLKW never holds a worker beyond Config::max_lock_waiters (EOPNOTSUPP / ENOLCK instead).
// - READDIR / READDIRPLUS: a host name longer than api::max_entry_name is skipped; one longer
//   than NAME_MAX is listed by READDIRPLUS without attributes (node id 0).
// - poll: host regular files and directories are always ready; answers the requested events.
// - Inode file handles (Config::inode_file_handles): inodes other than the root (with `automatic`,
//   those added beyond Config::inode_fd_budget) keep a host file handle and no fd; each request that
//   needs an inode's O_PATH fd reopens it with open_by_handle_at (shared by concurrent requests,
//   closed after the last one), before any credential switch. A request for an inode deleted on the
//   host then answers ESTALE. Open files keep their own fd as always. Security is unchanged: names
//   are still resolved with openat(parent fd, name, O_NOFOLLOW), a handle is only ever taken from
//   such an fd, and only for objects already inside the source.
// - Data moves through api::ZeroCopyReader/Writer straight between the host fd and the transport.
//   read, write, getattr and lookups of known inodes allocate nothing.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sys/statvfs.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include <fuse_backend/api/context.hpp>
#include <fuse_backend/api/dir_sink.hpp>
#include <fuse_backend/api/filesystem.hpp>
#include <fuse_backend/api/types.hpp>
#include <fuse_backend/api/zero_copy.hpp>
#include <fuse_backend/detail/unique_fd.hpp>
#include <fuse_backend/passthrough/config.hpp>
#include <fuse_backend/passthrough/file_handle.hpp>
#include <fuse_backend/passthrough/handle_table.hpp>
#include <fuse_backend/passthrough/inode_store.hpp>
#include <fuse_backend/passthrough/write_behind.hpp>
#include <fuse_backend/result.hpp>

namespace fuse_backend::passthrough {

class PassthroughFs {
 public:
  static Result<std::unique_ptr<PassthroughFs>> create(Config config);

  PassthroughFs(const PassthroughFs&) = delete;
  PassthroughFs& operator=(const PassthroughFs&) = delete;
  ~PassthroughFs();

  const Config& config() const noexcept { return config_; }
  // Counters for tests and statistics.
  std::size_t inode_count() const noexcept { return inodes_.size(); }
  std::size_t handle_count() const noexcept { return handles_.size(); }
  std::uint64_t lookup_count(api::InodeId inode) const noexcept { return inodes_.lookups(inode); }

  // --- lifecycle: init returns the offered flags minus those Config turns off (see .cpp) ---
  Result<std::uint64_t> init(std::uint64_t offered);
  void destroy();
  void forget(const api::Context& ctx, api::InodeId inode, std::uint64_t nlookup);
  void batch_forget(const api::Context& ctx, std::span<const api::ForgetOne> forgets);

  // --- names and attributes ---
  Result<api::Entry> lookup(const api::Context& ctx, api::InodeId parent, std::string_view name);
  Result<api::AttrReply> getattr(const api::Context& ctx, api::InodeId inode,
                                 std::optional<api::HandleId> handle);
  Result<api::AttrReply> setattr(const api::Context& ctx, api::InodeId inode,
                                 const api::SetattrIn& in, std::optional<api::HandleId> handle);
  Result<std::size_t> readlink(const api::Context& ctx, api::InodeId inode, std::span<char> target);
  Result<api::Entry> symlink(const api::Context& ctx, std::string_view target, api::InodeId parent,
                             std::string_view name);
  Result<api::Entry> mknod(const api::Context& ctx, api::InodeId parent, std::string_view name,
                           std::uint32_t mode, std::uint32_t rdev);
  Result<api::Entry> mkdir(const api::Context& ctx, api::InodeId parent, std::string_view name,
                           std::uint32_t mode);
  Result<void> unlink(const api::Context& ctx, api::InodeId parent, std::string_view name);
  Result<void> rmdir(const api::Context& ctx, api::InodeId parent, std::string_view name);
  Result<void> rename(const api::Context& ctx, api::InodeId old_parent, std::string_view old_name,
                      api::InodeId new_parent, std::string_view new_name, std::uint32_t flags);
  Result<api::Entry> link(const api::Context& ctx, api::InodeId inode, api::InodeId new_parent,
                          std::string_view new_name);

  // --- files ---
  Result<api::OpenReply> open(const api::Context& ctx, api::InodeId inode, std::uint32_t flags,
                              std::uint32_t open_flags);
  Result<api::CreateReply> create(const api::Context& ctx, api::InodeId parent,
                                  std::string_view name, std::uint32_t mode, std::uint32_t flags);
  Result<api::CreateReply> tmpfile(const api::Context& ctx, api::InodeId parent,
                                   std::uint32_t mode, std::uint32_t flags);
  Result<std::size_t> read(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                           api::ZeroCopyWriter& out, std::uint32_t size, std::uint64_t offset,
                           std::uint32_t flags);
  Result<std::size_t> write(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                            api::ZeroCopyReader& in, std::uint32_t size, std::uint64_t offset,
                            std::uint32_t write_flags, std::uint32_t flags);
  Result<void> flush(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                     std::uint64_t lock_owner);
  Result<void> release(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                       std::uint32_t flags, std::uint32_t release_flags, std::uint64_t lock_owner);
  Result<void> fsync(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                     bool datasync);
  Result<void> fallocate(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                         std::uint32_t mode, std::uint64_t offset, std::uint64_t length);
  Result<std::uint64_t> lseek(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                              std::uint64_t offset, std::uint32_t whence);
  Result<std::uint64_t> copy_file_range(const api::Context& ctx, api::InodeId inode_in,
                                        api::HandleId handle_in, std::uint64_t offset_in,
                                        api::InodeId inode_out, api::HandleId handle_out,
                                        std::uint64_t offset_out, std::uint64_t length,
                                        std::uint64_t flags);
  Result<api::IoctlReply> ioctl(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                                std::uint32_t flags, std::uint32_t command, std::uint64_t argument,
                                std::span<const std::byte> in, std::span<std::byte> out);
  Result<std::uint32_t> poll(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                             std::uint64_t kernel_handle, std::uint32_t flags,
                             std::uint32_t events);

  // --- locks ---
  Result<api::FileLock> getlk(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                              std::uint64_t owner, const api::FileLock& lock,
                              std::uint32_t lock_flags);
  Result<void> setlk(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                     std::uint64_t owner, const api::FileLock& lock, std::uint32_t lock_flags,
                     bool wait);

  // --- directories ---
  Result<api::OpenReply> opendir(const api::Context& ctx, api::InodeId inode, std::uint32_t flags);
  Result<void> readdir(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                       std::uint64_t offset, api::DirSink& sink);
  Result<void> readdirplus(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                           std::uint64_t offset, api::DirSink& sink);
  Result<void> releasedir(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                          std::uint32_t flags);
  Result<void> fsyncdir(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                        bool datasync);

  // --- whole filesystem, permissions, extended attributes ---
  Result<struct statvfs> statfs(const api::Context& ctx, api::InodeId inode);
  Result<void> access(const api::Context& ctx, api::InodeId inode, std::uint32_t mask);
  Result<void> syncfs(const api::Context& ctx, api::InodeId inode);
  Result<api::StatxReply> statx(const api::Context& ctx, api::InodeId inode,
                                std::optional<api::HandleId> handle, std::uint32_t flags,
                                std::uint32_t mask);
  Result<void> setxattr(const api::Context& ctx, api::InodeId inode, std::string_view name,
                        std::span<const std::byte> value, std::uint32_t flags,
                        std::uint32_t setxattr_flags);
  Result<std::size_t> getxattr(const api::Context& ctx, api::InodeId inode, std::string_view name,
                               std::span<std::byte> value);
  Result<std::size_t> listxattr(const api::Context& ctx, api::InodeId inode, std::span<char> names);
  Result<void> removexattr(const api::Context& ctx, api::InodeId inode, std::string_view name);

 private:
  class Impl;
  PassthroughFs(Config config, detail::UniqueFd proc_self_fd, std::shared_ptr<Inode> root,
                std::vector<gid_t> daemon_groups, bool privileged);

  // The inode with its fd usable (pinned); ESTALE for unknown ids and deleted handle inodes.
  Result<PinnedInode> find_inode(api::InodeId id) const noexcept;
  Result<std::shared_ptr<OpenFile>> find_handle(api::InodeId inode,
                                                api::HandleId handle) const noexcept;

  Config config_;
  detail::UniqueFd proc_self_fd_;  // O_PATH of /proc/self/fd: reopening goes through it
  MountFds mount_fds_{proc_self_fd_.get()};  // inode file handles: one fd per host mount
  bool use_handles_ = false;                 // inode file handles in effect (create decides)
  std::atomic<bool> handles_warned_{false};  // prefer: a fallback to fds was logged
  std::size_t inode_fd_budget_ = 0;          // automatic: inodes with an fd before handles
  std::atomic<bool> budget_logged_{false};   // automatic: crossing the budget was logged
  InodeStore inodes_;
  HandleTable handles_;
  std::vector<gid_t> daemon_groups_;  // restored after each credential switch
  bool privileged_;                   // euid 0: switch credentials per request

  // What INIT negotiated (written once by init, read by every op).
  std::atomic<bool> writeback_{false};
  std::atomic<bool> no_open_{false};
  std::atomic<bool> no_opendir_{false};
  std::atomic<bool> killpriv_v2_{false};
  std::atomic<bool> submounts_{false};
  std::atomic<bool> passthrough_{false};
  std::atomic<bool> passthrough_warned_{false};
  std::atomic<std::size_t> lock_waiters_{0};  // SETLKW requests waiting now (max_lock_waiters)

  // Last, so that its thread stops before the rest goes: it holds open files.
  std::optional<WriteBehind> write_behind_;  // Config::write_behind
};

static_assert(api::Filesystem<PassthroughFs> && api::check_signatures<PassthroughFs>());

}  // namespace fuse_backend::passthrough
