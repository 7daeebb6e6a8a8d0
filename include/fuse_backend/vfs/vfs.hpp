// Vfs: several filesystems behind one FUSE device, mounted at paths of a pseudo filesystem.
//
// Layer: vfs (uses api only; compiled once in src/vfs/). Vfs models api::Filesystem; serve it with
// any Server. The root is a pseudo directory tree holding the mount points: mount("/b/c", fs)
// creates the pseudo directory "b" and makes "c" show the root of `fs`.
//
// Inode numbers: one 64-bit space. The high 8 bits name the filesystem (0 = the pseudo
// filesystem, 1..255 = backends, never reused while the Vfs lives, so a stale kernel inode can
// never reach a later backend), the low 56 bits are the backend's own inode. A backend inode
// that does not fit is refused with EIO (and its lookup reference is returned to the backend)
// instead of colliding. Handles are not translated: every op that carries a handle also
// carries the inode that picks the backend, and the handle is handed back to that backend as-is.
// Attributes are rewritten so that st_ino (stx_ino) is the Vfs inode number: unique across
// backends within the one st_dev the kernel gives the mount; readdir's d_ino is combined the
// same way (its low 56 bits).
//
// Routing: every op goes to the backend its inode belongs to, with the inode translated back.
// rename / link / copy_file_range across two backends, or between a backend and the pseudo
// tree, are EXDEV. The pseudo tree is read-only (EPERM for changes, EISDIR for file ops on its
// directories, ENOTSUP for its xattrs); lookup of a mount point returns the backend root's
// entry (from the backend's getattr: the backend itself hands out no reference for its root,
// so forgets of backend roots are not forwarded, as the Filesystem contract promises
// backends). An op a backend lacks answers ENOSYS (note that the kernel remembers ENOSYS for
// some ops, e.g. open, xattrs, fsync, for the whole mount). syncfs of a pseudo inode syncs every
// backend. DAX mappings (setupmapping/removemapping) are not offered: removemapping names no
// inode to route by.
//
// INIT: the flags wanted are the intersection of what every mounted backend's init() answers
// (AnyFilesystem::init: op-backed and always-on flags, or the backend's own choice), asked again
// with that intersection until no backend drops more, so that each is set up for what the
// kernel gets; without backends, the Server's always-on flags. A backend mounted after INIT must
// accept the flags in effect (its init() is called with them and must keep them all), or mount()
// fails ENOTSUP and the backend is destroyed. PassthroughFs declines some always-on flags
// (auto_inval_data or cache_symlinks, by cache policy; setxattr_ext), so it joins a Vfs whose
// INIT it did not take part in only when those are not in effect: mount it before the kernel
// connects. Notifications (api/notify.hpp) carry the Vfs's node ids: a backend cannot send its
// own (none of this library's does).
// DESTROY reaches every backend.
//
// Thread safety: every op may run concurrently with every other and with mount/umount. The
// mount table and pseudo tree sit behind a shared_mutex; backend ops run without it held, on a
// shared_ptr so that umount never frees a backend under a running request. umount calls the
// backend's destroy() (when INIT happened) while requests already routed to it may still finish.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sys/statvfs.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <ctime>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <fuse_backend/api/any_filesystem.hpp>
#include <fuse_backend/api/context.hpp>
#include <fuse_backend/api/dir_sink.hpp>
#include <fuse_backend/api/types.hpp>
#include <fuse_backend/api/zero_copy.hpp>
#include <fuse_backend/result.hpp>

namespace fuse_backend::vfs {

struct VfsOptions {
  // Entry and attribute timeouts of the pseudo directories (and of a mount point's entry).
  // Short, because mounts come and go while the kernel caches.
  api::Timeout timeout = std::chrono::seconds(1);
};

class Vfs {
 public:
  static constexpr unsigned index_bits = 8;
  static constexpr unsigned inode_bits = 64 - index_bits;
  // The largest backend inode number that fits.
  static constexpr std::uint64_t max_backend_inode = (std::uint64_t{1} << inode_bits) - 1;
  static constexpr std::size_t max_backends = (std::size_t{1} << index_bits) - 1;

  explicit Vfs(VfsOptions options = {});
  Vfs(const Vfs&) = delete;
  Vfs& operator=(const Vfs&) = delete;
  ~Vfs();

  // Mounts `fs` at the absolute `path` ("/a", "/b/c"), creating pseudo directories on the way.
  // Errors: EINVAL (not absolute, "/", empty, "." or ".." components), ENAMETOOLONG (a component
  // over 255 bytes), EBUSY (already a mount point, a non-empty pseudo directory, or inside
  // a mounted backend), ENOSPC (255 backends mounted over the Vfs's life), ENOTSUP (after INIT:
  // the backend refuses the flags in effect), or the backend's init() error.
  Result<void> mount(std::string_view path, api::AnyFilesystem fs);
  // Removes the mount point at `path` (its pseudo parents stay). ENOENT when nothing is there,
  // EINVAL when `path` is a pseudo directory rather than a mount point. Kernel inodes of the
  // backend go stale (ENOENT).
  Result<void> umount(std::string_view path);

  // --- api::Filesystem ------------------------------------------------------------------------
  // Contracts as in api/filesystem.hpp; the routing rules are in the header comment.
  Result<std::uint64_t> init(std::uint64_t offered);
  void destroy();
  Result<api::Entry> lookup(const api::Context& ctx, api::InodeId parent, std::string_view name);
  void forget(const api::Context& ctx, api::InodeId inode, std::uint64_t nlookup);
  void batch_forget(const api::Context& ctx, std::span<const api::ForgetOne> forgets);
  Result<api::AttrReply> getattr(const api::Context& ctx, api::InodeId inode, std::optional<api::HandleId> handle);
  Result<api::AttrReply> setattr(const api::Context& ctx, api::InodeId inode, const api::SetattrIn& in,
                                 std::optional<api::HandleId> handle);
  Result<std::size_t> readlink(const api::Context& ctx, api::InodeId inode, std::span<char> target);
  Result<api::Entry> symlink(const api::Context& ctx, std::string_view target, api::InodeId parent,
                             std::string_view name);
  Result<api::Entry> mknod(const api::Context& ctx, api::InodeId parent, std::string_view name, std::uint32_t mode,
                           std::uint32_t rdev);
  Result<api::Entry> mkdir(const api::Context& ctx, api::InodeId parent, std::string_view name, std::uint32_t mode);
  Result<void> unlink(const api::Context& ctx, api::InodeId parent, std::string_view name);
  Result<void> rmdir(const api::Context& ctx, api::InodeId parent, std::string_view name);
  Result<void> rename(const api::Context& ctx, api::InodeId old_parent, std::string_view old_name,
                      api::InodeId new_parent, std::string_view new_name, std::uint32_t flags);
  Result<api::Entry> link(const api::Context& ctx, api::InodeId inode, api::InodeId new_parent,
                          std::string_view new_name);
  Result<api::OpenReply> open(const api::Context& ctx, api::InodeId inode, std::uint32_t flags,
                              std::uint32_t open_flags);
  Result<api::CreateReply> create(const api::Context& ctx, api::InodeId parent, std::string_view name,
                                  std::uint32_t mode, std::uint32_t flags);
  Result<api::CreateReply> tmpfile(const api::Context& ctx, api::InodeId parent, std::uint32_t mode,
                                   std::uint32_t flags);
  Result<std::size_t> read(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                           api::ZeroCopyWriter& out, std::uint32_t size, std::uint64_t offset, std::uint32_t flags);
  Result<std::size_t> write(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                            api::ZeroCopyReader& in, std::uint32_t size, std::uint64_t offset,
                            std::uint32_t write_flags, std::uint32_t flags);
  Result<void> flush(const api::Context& ctx, api::InodeId inode, api::HandleId handle, std::uint64_t lock_owner);
  Result<void> release(const api::Context& ctx, api::InodeId inode, api::HandleId handle, std::uint32_t flags,
                       std::uint32_t release_flags, std::uint64_t lock_owner);
  Result<void> fsync(const api::Context& ctx, api::InodeId inode, api::HandleId handle, bool datasync);
  Result<void> fallocate(const api::Context& ctx, api::InodeId inode, api::HandleId handle, std::uint32_t mode,
                         std::uint64_t offset, std::uint64_t length);
  Result<std::uint64_t> lseek(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                              std::uint64_t offset, std::uint32_t whence);
  Result<std::uint64_t> copy_file_range(const api::Context& ctx, api::InodeId inode_in, api::HandleId handle_in,
                                        std::uint64_t offset_in, api::InodeId inode_out, api::HandleId handle_out,
                                        std::uint64_t offset_out, std::uint64_t length, std::uint64_t flags);
  Result<api::IoctlReply> ioctl(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                                std::uint32_t flags, std::uint32_t command, std::uint64_t argument,
                                std::span<const std::byte> in, std::span<std::byte> out);
  Result<std::uint32_t> poll(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                             std::uint64_t kernel_handle, std::uint32_t flags, std::uint32_t events);
  Result<std::uint64_t> bmap(const api::Context& ctx, api::InodeId inode, std::uint64_t block,
                             std::uint32_t block_size);
  Result<api::FileLock> getlk(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                              std::uint64_t owner, const api::FileLock& lock, std::uint32_t lock_flags);
  Result<void> setlk(const api::Context& ctx, api::InodeId inode, api::HandleId handle, std::uint64_t owner,
                     const api::FileLock& lock, std::uint32_t lock_flags, bool wait);
  Result<api::OpenReply> opendir(const api::Context& ctx, api::InodeId inode, std::uint32_t flags);
  Result<void> readdir(const api::Context& ctx, api::InodeId inode, api::HandleId handle, std::uint64_t offset,
                       api::DirSink& sink);
  Result<void> readdirplus(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                           std::uint64_t offset, api::DirSink& sink);
  Result<void> releasedir(const api::Context& ctx, api::InodeId inode, api::HandleId handle, std::uint32_t flags);
  Result<void> fsyncdir(const api::Context& ctx, api::InodeId inode, api::HandleId handle, bool datasync);
  Result<struct statvfs> statfs(const api::Context& ctx, api::InodeId inode);
  Result<void> access(const api::Context& ctx, api::InodeId inode, std::uint32_t mask);
  Result<void> syncfs(const api::Context& ctx, api::InodeId inode);
  Result<api::StatxReply> statx(const api::Context& ctx, api::InodeId inode, std::optional<api::HandleId> handle,
                                std::uint32_t flags, std::uint32_t mask);
  Result<void> setxattr(const api::Context& ctx, api::InodeId inode, std::string_view name,
                        std::span<const std::byte> value, std::uint32_t flags, std::uint32_t setxattr_flags);
  Result<std::size_t> getxattr(const api::Context& ctx, api::InodeId inode, std::string_view name,
                               std::span<std::byte> value);
  Result<std::size_t> listxattr(const api::Context& ctx, api::InodeId inode, std::span<char> names);
  Result<void> removexattr(const api::Context& ctx, api::InodeId inode, std::string_view name);
  void retrieve_reply(const api::Context& ctx, std::uint64_t notify_unique, api::InodeId inode,
                      std::uint64_t offset, api::ZeroCopyReader& in);

 private:
  struct Backend {
    api::AnyFilesystem fs;
    std::uint64_t index;
  };
  // A pseudo directory, or (backend != 0) a mount point, which the kernel never sees itself.
  struct PseudoNode {
    std::uint64_t parent = 0;
    std::map<std::string, std::uint64_t, std::less<>> children;
    std::uint64_t backend = 0;
  };
  // Where an inode lives: a backend (with its own inode number) or the pseudo tree.
  struct Route {
    std::shared_ptr<Backend> backend;
    api::InodeId inode{};
  };

  Result<Route> route(api::InodeId inode) const;
  // Runs `op(fs, backend_inode)` for a backend inode, or returns `pseudo_error` for a pseudo one.
  template <class Op>
  auto on_backend(api::InodeId inode, std::errc pseudo_error, Op&& op) -> decltype(op(std::declval<Backend&>(), inode));
  // The two inodes of rename/link/copy_file_range: EXDEV unless both are in the same backend.
  Result<std::shared_ptr<Backend>> same_backend(api::InodeId first, api::InodeId second) const;

  // Backend results made Vfs-wide: inode and st_ino translated; on overflow the backend gets its
  // reference (and, for create, its handle) back and the caller EIO.
  Result<api::Entry> translate_entry(Backend& backend, const api::Context& ctx, Result<api::Entry> entry) const;
  Result<api::CreateReply> translate_created(Backend& backend, const api::Context& ctx,
                                             Result<api::CreateReply> reply) const;
  static Result<api::AttrReply> translate_attr(api::InodeId inode, Result<api::AttrReply> reply);
  Result<void> list(const api::Context& ctx, api::InodeId inode, api::HandleId handle, std::uint64_t offset,
                    api::DirSink& sink, bool plus);

  // The pseudo tree (callers hold mutex_).
  const PseudoNode* pseudo_node(api::InodeId inode) const;
  api::AttrReply pseudo_attr(std::uint64_t ino, const PseudoNode& node) const;
  Result<api::Entry> lookup_pseudo(const api::Context& ctx, api::InodeId parent, std::string_view name);
  Result<void> list_pseudo(api::InodeId inode, std::uint64_t offset, api::DirSink& sink, bool plus) const;

  VfsOptions options_;
  struct timespec created_ {};
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::uint64_t, PseudoNode> pseudo_;
  std::uint64_t next_pseudo_ino_ = 2;
  std::array<std::shared_ptr<Backend>, max_backends + 1> backends_;  // [0] unused: the pseudo fs
  std::uint64_t next_index_ = 1;
  bool initialized_ = false;
  std::uint64_t negotiated_ = 0;
};

static_assert(api::Filesystem<Vfs>);
static_assert(api::check_signatures<Vfs>());

}  // namespace fuse_backend::vfs
