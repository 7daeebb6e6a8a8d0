// The Filesystem concept and one SupportsX concept per FUSE operation.
//
// Layer: api. A filesystem is any type with `lookup` and `getattr` (the core); every other op is
// optional and detected by its own concept, so a missing op is answered ENOSYS by the Server in
// one place and INIT only advertises capabilities that exist (no readdirplus -> no
// DO_READDIRPLUS). A method that exists with the wrong signature is a compile error
// (check_signatures), never a silent ENOSYS.
//
// Contract for implementers:
// - Thread safety: one filesystem object is shared by every worker thread (and every virtio
//   queue); ops run concurrently, including on the same inode, so synchronise internally.
// - Errors are Result errors carrying errno values; anything outside 1..511 is sent as EIO.
//   Exceptions escaping an op are answered EIO (one catch at the call boundary).
// - Lookup counting: every successful reply carrying an Entry with a non-zero inode (lookup,
//   mknod, mkdir, symlink, link, create, tmpfile, and each readdirplus entry) gives the kernel one
//   reference; forget/batch_forget return `nlookup` of them. The root is never forgotten.
// - Names (`std::string_view`) are non-empty, contain no NUL, at most 1024 bytes (the kernel's
//   limit), and are NOT checked for '/', "." or "..": a filesystem serving host paths must
//   reject what would escape it.
// - Each op below says whether a handle is passed (the HandleId an open/opendir/create returned).
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sys/statvfs.h>

#include <concepts>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include <fuse_backend/api/context.hpp>
#include <fuse_backend/api/dir_sink.hpp>
#include <fuse_backend/api/types.hpp>
#include <fuse_backend/api/zero_copy.hpp>
#include <fuse_backend/result.hpp>

namespace fuse_backend::api {

// Handed to setupmapping/removemapping (virtio-fs DAX): maps a file range into the device's
// cache window. Implemented by the VMM; transports without a DAX window pass none (ENOSYS).
class DaxMapper {
 public:
  virtual Result<void> map(std::uint64_t window_offset, int fd, std::uint64_t file_offset,
                           std::uint64_t length, std::uint32_t flags) noexcept = 0;
  virtual Result<void> unmap(std::uint64_t window_offset, std::uint64_t length) noexcept = 0;

 protected:
  ~DaxMapper() = default;
};

// --- core --------------------------------------------------------------------------------------

// LOOKUP: find `name` in directory `parent`. +1 lookup reference on success (0 for a negative
// entry). No handle. Errors: ENOENT, ENOTDIR, EACCES, ...
template <class Fs>
concept SupportsLookup = requires(Fs& fs, const Context& ctx, InodeId parent, std::string_view name) {
  { fs.lookup(ctx, parent, name) } -> std::same_as<Result<Entry>>;
};

// GETATTR: attributes of `inode`; `handle` is set when the kernel asks for an open file's (fstat).
template <class Fs>
concept SupportsGetattr = requires(Fs& fs, const Context& ctx, InodeId inode, std::optional<HandleId> handle) {
  { fs.getattr(ctx, inode, handle) } -> std::same_as<Result<AttrReply>>;
};

template <class Fs>
concept Filesystem = SupportsLookup<Fs> && SupportsGetattr<Fs>;

// --- lifecycle ---------------------------------------------------------------------------------

// INIT: `offered` = init flags (abi::init_flags) the kernel offers intersected with what the
// Server and the user allow; return the subset the filesystem wants. Without init, the Server
// enables default_init_flags<Fs>() (api/init_flags.hpp): its own capabilities and those backed
// by an op the filesystem has, never the opt-in ones.
template <class Fs>
concept SupportsInit = requires(Fs& fs, std::uint64_t offered) {
  { fs.init(offered) } -> std::same_as<Result<std::uint64_t>>;
};
// DESTROY: the kernel is unmounting; no further requests follow.
template <class Fs>
concept SupportsDestroy = requires(Fs& fs) {
  { fs.destroy() } -> std::same_as<void>;
};
// FORGET: drop `nlookup` references of `inode`. No reply, never fails.
template <class Fs>
concept SupportsForget = requires(Fs& fs, const Context& ctx, InodeId inode, std::uint64_t nlookup) {
  { fs.forget(ctx, inode, nlookup) } -> std::same_as<void>;
};
// BATCH_FORGET: several forgets in one message. Without it the Server calls forget for each.
template <class Fs>
concept SupportsBatchForget = requires(Fs& fs, const Context& ctx, std::span<const ForgetOne> forgets) {
  { fs.batch_forget(ctx, forgets) } -> std::same_as<void>;
};

// --- attributes and links ----------------------------------------------------------------------

// SETATTR: change the fields named by `in.valid`; `handle` set for ftruncate/futimens/fchmod.
template <class Fs>
concept SupportsSetattr = requires(Fs& fs, const Context& ctx, InodeId inode, const SetattrIn& in,
                                   std::optional<HandleId> handle) {
  { fs.setattr(ctx, inode, in, handle) } -> std::same_as<Result<AttrReply>>;
};
// READLINK: copy the target into `target` (at most its size); return the length copied.
template <class Fs>
concept SupportsReadlink = requires(Fs& fs, const Context& ctx, InodeId inode, std::span<char> target) {
  { fs.readlink(ctx, inode, target) } -> std::same_as<Result<std::size_t>>;
};
// SYMLINK: create `name` in `parent` pointing at `target`. +1 reference.
template <class Fs>
concept SupportsSymlink = requires(Fs& fs, const Context& ctx, std::string_view target, InodeId parent,
                                   std::string_view name) {
  { fs.symlink(ctx, target, parent, name) } -> std::same_as<Result<Entry>>;
};
// MKNOD: create a regular file, fifo, socket or device node; umask is in ctx.umask. +1 reference.
template <class Fs>
concept SupportsMknod = requires(Fs& fs, const Context& ctx, InodeId parent, std::string_view name,
                                 std::uint32_t mode, std::uint32_t rdev) {
  { fs.mknod(ctx, parent, name, mode, rdev) } -> std::same_as<Result<Entry>>;
};
// MKDIR: umask is in ctx.umask. +1 reference.
template <class Fs>
concept SupportsMkdir = requires(Fs& fs, const Context& ctx, InodeId parent, std::string_view name,
                                 std::uint32_t mode) {
  { fs.mkdir(ctx, parent, name, mode) } -> std::same_as<Result<Entry>>;
};
template <class Fs>
concept SupportsUnlink = requires(Fs& fs, const Context& ctx, InodeId parent, std::string_view name) {
  { fs.unlink(ctx, parent, name) } -> std::same_as<Result<void>>;
};
template <class Fs>
concept SupportsRmdir = requires(Fs& fs, const Context& ctx, InodeId parent, std::string_view name) {
  { fs.rmdir(ctx, parent, name) } -> std::same_as<Result<void>>;
};
// RENAME and RENAME2: `flags` is 0 for RENAME, else RENAME_NOREPLACE / EXCHANGE / WHITEOUT.
template <class Fs>
concept SupportsRename = requires(Fs& fs, const Context& ctx, InodeId old_parent, std::string_view old_name,
                                  InodeId new_parent, std::string_view new_name, std::uint32_t flags) {
  { fs.rename(ctx, old_parent, old_name, new_parent, new_name, flags) } -> std::same_as<Result<void>>;
};
// LINK: hard link `inode` as `new_name` in `new_parent`. +1 reference on `inode`.
template <class Fs>
concept SupportsLink = requires(Fs& fs, const Context& ctx, InodeId inode, InodeId new_parent,
                                std::string_view new_name) {
  { fs.link(ctx, inode, new_parent, new_name) } -> std::same_as<Result<Entry>>;
};

// --- files -------------------------------------------------------------------------------------

// OPEN: `flags` are the open(2) flags; `open_flags` the kernel's (abi::open_flags::kill_suidgid).
template <class Fs>
concept SupportsOpen = requires(Fs& fs, const Context& ctx, InodeId inode, std::uint32_t flags,
                                std::uint32_t open_flags) {
  { fs.open(ctx, inode, flags, open_flags) } -> std::same_as<Result<OpenReply>>;
};
// CREATE: create and open `name` (O_CREAT; O_EXCL as the flags say). umask in ctx. +1 reference.
template <class Fs>
concept SupportsCreate = requires(Fs& fs, const Context& ctx, InodeId parent, std::string_view name,
                                  std::uint32_t mode, std::uint32_t flags) {
  { fs.create(ctx, parent, name, mode, flags) } -> std::same_as<Result<CreateReply>>;
};
// TMPFILE: an unnamed file in `parent` (O_TMPFILE). +1 reference.
template <class Fs>
concept SupportsTmpfile = requires(Fs& fs, const Context& ctx, InodeId parent, std::uint32_t mode,
                                   std::uint32_t flags) {
  { fs.tmpfile(ctx, parent, mode, flags) } -> std::same_as<Result<CreateReply>>;
};
// READ: write at most `size` bytes at `offset` into `out`; return the count (short = EOF).
// Handle passed. `flags` are the open flags of the file.
template <class Fs>
concept SupportsRead = requires(Fs& fs, const Context& ctx, InodeId inode, HandleId handle, ZeroCopyWriter& out,
                                std::uint32_t size, std::uint64_t offset, std::uint32_t flags) {
  { fs.read(ctx, inode, handle, out, size, offset, flags) } -> std::same_as<Result<std::size_t>>;
};
// WRITE: take `size` bytes from `in` and write them at `offset`; return the count written.
// Handle passed. `write_flags` are abi::write_flags (cache, lockowner, kill_suidgid); `flags` the
// file's open flags as they are now (a fcntl(F_SETFL) since the open shows, O_APPEND above all).
template <class Fs>
concept SupportsWrite = requires(Fs& fs, const Context& ctx, InodeId inode, HandleId handle, ZeroCopyReader& in,
                                 std::uint32_t size, std::uint64_t offset, std::uint32_t write_flags,
                                 std::uint32_t flags) {
  { fs.write(ctx, inode, handle, in, size, offset, write_flags, flags) } -> std::same_as<Result<std::size_t>>;
};
// FLUSH: on every close(2) of a descriptor. Handle passed.
template <class Fs>
concept SupportsFlush = requires(Fs& fs, const Context& ctx, InodeId inode, HandleId handle, std::uint64_t lock_owner) {
  { fs.flush(ctx, inode, handle, lock_owner) } -> std::same_as<Result<void>>;
};
// RELEASE: last reference to the open file is gone; the handle is dead afterwards.
// `release_flags` are abi::release_flags (flush, flock_unlock).
template <class Fs>
concept SupportsRelease = requires(Fs& fs, const Context& ctx, InodeId inode, HandleId handle, std::uint32_t flags,
                                   std::uint32_t release_flags, std::uint64_t lock_owner) {
  { fs.release(ctx, inode, handle, flags, release_flags, lock_owner) } -> std::same_as<Result<void>>;
};
template <class Fs>
concept SupportsFsync = requires(Fs& fs, const Context& ctx, InodeId inode, HandleId handle, bool datasync) {
  { fs.fsync(ctx, inode, handle, datasync) } -> std::same_as<Result<void>>;
};
// FALLOCATE: `mode` as fallocate(2). Handle passed.
template <class Fs>
concept SupportsFallocate = requires(Fs& fs, const Context& ctx, InodeId inode, HandleId handle, std::uint32_t mode,
                                     std::uint64_t offset, std::uint64_t length) {
  { fs.fallocate(ctx, inode, handle, mode, offset, length) } -> std::same_as<Result<void>>;
};
// LSEEK: SEEK_DATA / SEEK_HOLE (the kernel handles the others); returns the new offset.
template <class Fs>
concept SupportsLseek = requires(Fs& fs, const Context& ctx, InodeId inode, HandleId handle, std::uint64_t offset,
                                 std::uint32_t whence) {
  { fs.lseek(ctx, inode, handle, offset, whence) } -> std::same_as<Result<std::uint64_t>>;
};
// COPY_FILE_RANGE and COPY_FILE_RANGE_64: returns bytes copied (the Server caps the 32-bit reply).
template <class Fs>
concept SupportsCopyFileRange = requires(Fs& fs, const Context& ctx, InodeId inode_in, HandleId handle_in,
                                         std::uint64_t offset_in, InodeId inode_out, HandleId handle_out,
                                         std::uint64_t offset_out, std::uint64_t length, std::uint64_t flags) {
  {
    fs.copy_file_range(ctx, inode_in, handle_in, offset_in, inode_out, handle_out, offset_out, length, flags)
  } -> std::same_as<Result<std::uint64_t>>;
};
// IOCTL (restricted only: input and output sizes are fixed by the kernel). Copy at most
// out.size() bytes into `out`. Handle passed.
template <class Fs>
concept SupportsIoctl = requires(Fs& fs, const Context& ctx, InodeId inode, HandleId handle, std::uint32_t flags,
                                 std::uint32_t command, std::uint64_t argument, std::span<const std::byte> in,
                                 std::span<std::byte> out) {
  { fs.ioctl(ctx, inode, handle, flags, command, argument, in, out) } -> std::same_as<Result<IoctlReply>>;
};
// POLL: return the ready events (POLLIN...). `kernel_handle` identifies a later poll wakeup.
template <class Fs>
concept SupportsPoll = requires(Fs& fs, const Context& ctx, InodeId inode, HandleId handle,
                                std::uint64_t kernel_handle, std::uint32_t flags, std::uint32_t events) {
  { fs.poll(ctx, inode, handle, kernel_handle, flags, events) } -> std::same_as<Result<std::uint32_t>>;
};
// BMAP: map a file block to a device block (block-device backed filesystems only).
template <class Fs>
concept SupportsBmap = requires(Fs& fs, const Context& ctx, InodeId inode, std::uint64_t block,
                                std::uint32_t block_size) {
  { fs.bmap(ctx, inode, block, block_size) } -> std::same_as<Result<std::uint64_t>>;
};

// --- locks -------------------------------------------------------------------------------------

// GETLK: the first lock that would conflict with `lock`, or `lock` with type F_UNLCK.
template <class Fs>
concept SupportsGetlk = requires(Fs& fs, const Context& ctx, InodeId inode, HandleId handle, std::uint64_t owner,
                                 const FileLock& lock, std::uint32_t lock_flags) {
  { fs.getlk(ctx, inode, handle, owner, lock, lock_flags) } -> std::same_as<Result<FileLock>>;
};
// SETLK / SETLKW (`wait` true): POSIX lock, or flock(2) when lock_flags has abi::lk_flags::flock.
// A waiting lock should answer EINTR once ctx.interrupted().
template <class Fs>
concept SupportsSetlk = requires(Fs& fs, const Context& ctx, InodeId inode, HandleId handle, std::uint64_t owner,
                                 const FileLock& lock, std::uint32_t lock_flags, bool wait) {
  { fs.setlk(ctx, inode, handle, owner, lock, lock_flags, wait) } -> std::same_as<Result<void>>;
};

// --- directories -------------------------------------------------------------------------------

template <class Fs>
concept SupportsOpendir = requires(Fs& fs, const Context& ctx, InodeId inode, std::uint32_t flags) {
  { fs.opendir(ctx, inode, flags) } -> std::same_as<Result<OpenReply>>;
};
// READDIR: add entries after cookie `offset` until the sink is full. Handle passed.
template <class Fs>
concept SupportsReaddir = requires(Fs& fs, const Context& ctx, InodeId inode, HandleId handle,
                                   std::uint64_t offset, DirSink& sink) {
  { fs.readdir(ctx, inode, handle, offset, sink) } -> std::same_as<Result<void>>;
};
// READDIRPLUS: as readdir, with attributes; each added entry with a non-zero inode takes a lookup
// reference (ask sink.fits() before the lookup). Enables abi::init_flags::do_readdirplus.
template <class Fs>
concept SupportsReaddirplus = requires(Fs& fs, const Context& ctx, InodeId inode, HandleId handle,
                                       std::uint64_t offset, DirSink& sink) {
  { fs.readdirplus(ctx, inode, handle, offset, sink) } -> std::same_as<Result<void>>;
};
template <class Fs>
concept SupportsReleasedir = requires(Fs& fs, const Context& ctx, InodeId inode, HandleId handle, std::uint32_t flags) {
  { fs.releasedir(ctx, inode, handle, flags) } -> std::same_as<Result<void>>;
};
template <class Fs>
concept SupportsFsyncdir = requires(Fs& fs, const Context& ctx, InodeId inode, HandleId handle, bool datasync) {
  { fs.fsyncdir(ctx, inode, handle, datasync) } -> std::same_as<Result<void>>;
};

// --- whole filesystem, permissions, attributes -------------------------------------------------

template <class Fs>
concept SupportsStatfs = requires(Fs& fs, const Context& ctx, InodeId inode) {
  { fs.statfs(ctx, inode) } -> std::same_as<Result<struct statvfs>>;
};
// ACCESS: `mask` as access(2). Only sent without default_permissions.
template <class Fs>
concept SupportsAccess = requires(Fs& fs, const Context& ctx, InodeId inode, std::uint32_t mask) {
  { fs.access(ctx, inode, mask) } -> std::same_as<Result<void>>;
};
// SYNCFS: flush the whole filesystem (sync(2), syncfs(2)).
template <class Fs>
concept SupportsSyncfs = requires(Fs& fs, const Context& ctx, InodeId inode) {
  { fs.syncfs(ctx, inode) } -> std::same_as<Result<void>>;
};
// STATX: `handle` set for an open file; `mask` = STATX_* wanted, `flags` = AT_STATX_* sync mode.
template <class Fs>
concept SupportsStatx = requires(Fs& fs, const Context& ctx, InodeId inode, std::optional<HandleId> handle,
                                 std::uint32_t flags, std::uint32_t mask) {
  { fs.statx(ctx, inode, handle, flags, mask) } -> std::same_as<Result<StatxReply>>;
};
// SETXATTR: `flags` as setxattr(2) (XATTR_CREATE / REPLACE); `setxattr_flags` abi::setxattr_flags.
template <class Fs>
concept SupportsSetxattr = requires(Fs& fs, const Context& ctx, InodeId inode, std::string_view name,
                                    std::span<const std::byte> value, std::uint32_t flags,
                                    std::uint32_t setxattr_flags) {
  { fs.setxattr(ctx, inode, name, value, flags, setxattr_flags) } -> std::same_as<Result<void>>;
};
// GETXATTR / LISTXATTR, like getxattr(2) / listxattr(2): with an empty `value` return the size
// needed; else fill it and return the size (ERANGE when too small).
template <class Fs>
concept SupportsGetxattr = requires(Fs& fs, const Context& ctx, InodeId inode, std::string_view name,
                                    std::span<std::byte> value) {
  { fs.getxattr(ctx, inode, name, value) } -> std::same_as<Result<std::size_t>>;
};
template <class Fs>
concept SupportsListxattr = requires(Fs& fs, const Context& ctx, InodeId inode, std::span<char> names) {
  { fs.listxattr(ctx, inode, names) } -> std::same_as<Result<std::size_t>>;
};
template <class Fs>
concept SupportsRemovexattr = requires(Fs& fs, const Context& ctx, InodeId inode, std::string_view name) {
  { fs.removexattr(ctx, inode, name) } -> std::same_as<Result<void>>;
};

// --- notifications and virtio-fs ---------------------------------------------------------------

// NOTIFY_REPLY: the kernel's answer to a retrieve notification (api/notify.hpp) carrying
// `in.remaining()` bytes of cached data of `inode` from `offset`. No reply.
template <class Fs>
concept SupportsRetrieveReply = requires(Fs& fs, const Context& ctx, std::uint64_t notify_unique, InodeId inode,
                                         std::uint64_t offset, ZeroCopyReader& in) {
  { fs.retrieve_reply(ctx, notify_unique, inode, offset, in) } -> std::same_as<void>;
};
// SETUPMAPPING / REMOVEMAPPING (virtio-fs DAX): map `length` bytes of the file at `file_offset`
// to `window_offset` of the cache window through `mapper`. Handle passed to setupmapping.
template <class Fs>
concept SupportsSetupmapping = requires(Fs& fs, const Context& ctx, InodeId inode, HandleId handle,
                                        std::uint64_t file_offset, std::uint64_t length, std::uint64_t flags,
                                        std::uint64_t window_offset, DaxMapper& mapper) {
  {
    fs.setupmapping(ctx, inode, handle, file_offset, length, flags, window_offset, mapper)
  } -> std::same_as<Result<void>>;
};
template <class Fs>
concept SupportsRemovemapping = requires(Fs& fs, const Context& ctx, std::uint64_t window_offset,
                                         std::uint64_t length, DaxMapper& mapper) {
  { fs.removemapping(ctx, window_offset, length, mapper) } -> std::same_as<Result<void>>;
};
// CUSE_INIT has no concept: it only arrives on /dev/cuse, which this library does not serve; the
// Server answers it ENOSYS like any op the filesystem lacks.

// Every op a type declares must match its concept: a near miss is a compile error, not ENOSYS.
#define FUSE_BACKEND_CHECK_OP(member, concept_name)                                           \
  static_assert(!requires { &Fs::member; } || concept_name<Fs>,                                 \
                "Fs::" #member " exists but its signature does not match " #concept_name      \
                " (see fuse_backend/api/filesystem.hpp)")

template <class Fs>
consteval bool check_signatures() {
  FUSE_BACKEND_CHECK_OP(init, SupportsInit);
  FUSE_BACKEND_CHECK_OP(destroy, SupportsDestroy);
  FUSE_BACKEND_CHECK_OP(forget, SupportsForget);
  FUSE_BACKEND_CHECK_OP(batch_forget, SupportsBatchForget);
  FUSE_BACKEND_CHECK_OP(setattr, SupportsSetattr);
  FUSE_BACKEND_CHECK_OP(readlink, SupportsReadlink);
  FUSE_BACKEND_CHECK_OP(symlink, SupportsSymlink);
  FUSE_BACKEND_CHECK_OP(mknod, SupportsMknod);
  FUSE_BACKEND_CHECK_OP(mkdir, SupportsMkdir);
  FUSE_BACKEND_CHECK_OP(unlink, SupportsUnlink);
  FUSE_BACKEND_CHECK_OP(rmdir, SupportsRmdir);
  FUSE_BACKEND_CHECK_OP(rename, SupportsRename);
  FUSE_BACKEND_CHECK_OP(link, SupportsLink);
  FUSE_BACKEND_CHECK_OP(open, SupportsOpen);
  FUSE_BACKEND_CHECK_OP(create, SupportsCreate);
  FUSE_BACKEND_CHECK_OP(tmpfile, SupportsTmpfile);
  FUSE_BACKEND_CHECK_OP(read, SupportsRead);
  FUSE_BACKEND_CHECK_OP(write, SupportsWrite);
  FUSE_BACKEND_CHECK_OP(flush, SupportsFlush);
  FUSE_BACKEND_CHECK_OP(release, SupportsRelease);
  FUSE_BACKEND_CHECK_OP(fsync, SupportsFsync);
  FUSE_BACKEND_CHECK_OP(fallocate, SupportsFallocate);
  FUSE_BACKEND_CHECK_OP(lseek, SupportsLseek);
  FUSE_BACKEND_CHECK_OP(copy_file_range, SupportsCopyFileRange);
  FUSE_BACKEND_CHECK_OP(ioctl, SupportsIoctl);
  FUSE_BACKEND_CHECK_OP(poll, SupportsPoll);
  FUSE_BACKEND_CHECK_OP(bmap, SupportsBmap);
  FUSE_BACKEND_CHECK_OP(getlk, SupportsGetlk);
  FUSE_BACKEND_CHECK_OP(setlk, SupportsSetlk);
  FUSE_BACKEND_CHECK_OP(opendir, SupportsOpendir);
  FUSE_BACKEND_CHECK_OP(readdir, SupportsReaddir);
  FUSE_BACKEND_CHECK_OP(readdirplus, SupportsReaddirplus);
  FUSE_BACKEND_CHECK_OP(releasedir, SupportsReleasedir);
  FUSE_BACKEND_CHECK_OP(fsyncdir, SupportsFsyncdir);
  FUSE_BACKEND_CHECK_OP(statfs, SupportsStatfs);
  FUSE_BACKEND_CHECK_OP(access, SupportsAccess);
  FUSE_BACKEND_CHECK_OP(syncfs, SupportsSyncfs);
  FUSE_BACKEND_CHECK_OP(statx, SupportsStatx);
  FUSE_BACKEND_CHECK_OP(setxattr, SupportsSetxattr);
  FUSE_BACKEND_CHECK_OP(getxattr, SupportsGetxattr);
  FUSE_BACKEND_CHECK_OP(listxattr, SupportsListxattr);
  FUSE_BACKEND_CHECK_OP(removexattr, SupportsRemovexattr);
  FUSE_BACKEND_CHECK_OP(retrieve_reply, SupportsRetrieveReply);
  FUSE_BACKEND_CHECK_OP(setupmapping, SupportsSetupmapping);
  FUSE_BACKEND_CHECK_OP(removemapping, SupportsRemovemapping);
  return true;
}

#undef FUSE_BACKEND_CHECK_OP

}  // namespace fuse_backend::api
