// PassthroughFs (see include/fuse_backend/passthrough/passthrough_fs.hpp for the contract).
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/passthrough/passthrough_fs.hpp>

#include <fcntl.h>
#include <linux/fs.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <limits>
#include <system_error>
#include <thread>

#include <fmt/format.h>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/detail/syscall.hpp>
#include <fuse_backend/passthrough/credentials.hpp>

namespace fuse_backend::passthrough {
namespace {

using api::InodeId;
using detail::syscall_result;
using detail::syscall_void;
using detail::UniqueFd;

// --- names -------------------------------------------------------------------------------------

// A NUL-terminated copy of one request name, on the stack (no allocation on lookup).
struct Name {
  char text[NAME_MAX + 1];
  const char* c_str() const noexcept { return text; }
  std::string_view view() const noexcept { return text; }
};

Result<Name> copy_name(std::string_view name, std::errc too_long) noexcept {
  if (name.size() > NAME_MAX) return fail(too_long);
  if (name.find('\0') != std::string_view::npos) return fail(std::errc::invalid_argument);
  Name out;
  std::memcpy(out.text, name.data(), name.size());
  out.text[name.size()] = '\0';
  return out;
}

// One path component that may name an existing entry ("." and ".." are the caller's business).
Result<Name> component(std::string_view name) noexcept {
  if (name.empty() || name.find('/') != std::string_view::npos)
    return fail(std::errc::invalid_argument);
  return copy_name(name, std::errc::filename_too_long);
}

bool is_dot_or_dotdot(std::string_view name) noexcept { return name == "." || name == ".."; }

// A component that is created, removed or renamed: never "." or "..".
Result<Name> new_component(std::string_view name) noexcept {
  if (is_dot_or_dotdot(name)) return fail(std::errc::invalid_argument);
  return component(name);
}

Result<Name> xattr_name(std::string_view name) noexcept {
  if (name.empty()) return fail(std::errc::result_out_of_range);
  return copy_name(name, std::errc::result_out_of_range);
}

// "N" (relative to /proc/self/fd) and "/proc/self/fd/N" for one of our fds.
struct ProcName {
  char text[16];
  explicit ProcName(int fd) noexcept {
    auto end = std::to_chars(text, text + sizeof text - 1, fd).ptr;
    *end = '\0';
  }
};
struct ProcPath {
  char text[40];
  explicit ProcPath(int fd) noexcept {
    static constexpr char prefix[] = "/proc/self/fd/";
    std::memcpy(text, prefix, sizeof prefix - 1);
    auto end = std::to_chars(text + sizeof prefix - 1, text + sizeof text - 1, fd).ptr;
    *end = '\0';
  }
};

// --- attributes --------------------------------------------------------------------------------

constexpr unsigned statx_wanted = STATX_BASIC_STATS | STATX_MNT_ID;

// statx of `name` in `dirfd` (or of dirfd itself for ""), never following a symlink or
// triggering an automount.
Result<struct statx> statx_at(int dirfd, const char* name, unsigned mask = statx_wanted,
                              int sync = AT_STATX_SYNC_AS_STAT) noexcept {
  struct statx stx {};
  int flags = AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | sync;
  if (name[0] == '\0') flags |= AT_EMPTY_PATH;
  auto rc = syscall_void([&] { return ::statx(dirfd, name, flags, mask, &stx); });
  if (!rc) return fail(rc.error());
  return stx;
}

InodeKey key_of(const struct statx& stx) noexcept {
  return {stx.stx_ino, makedev(stx.stx_dev_major, stx.stx_dev_minor),
          (stx.stx_mask & STATX_MNT_ID) != 0 ? stx.stx_mnt_id : 0};
}

struct stat to_stat(const struct statx& stx) noexcept {
  struct stat st {};
  st.st_dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
  st.st_ino = stx.stx_ino;
  st.st_mode = stx.stx_mode;
  st.st_nlink = stx.stx_nlink;
  st.st_uid = stx.stx_uid;
  st.st_gid = stx.stx_gid;
  st.st_rdev = makedev(stx.stx_rdev_major, stx.stx_rdev_minor);
  st.st_size = static_cast<off_t>(stx.stx_size);
  st.st_blksize = static_cast<blksize_t>(stx.stx_blksize);
  st.st_blocks = static_cast<blkcnt_t>(stx.stx_blocks);
  st.st_atim = {stx.stx_atime.tv_sec, static_cast<long>(stx.stx_atime.tv_nsec)};
  st.st_mtim = {stx.stx_mtime.tv_sec, static_cast<long>(stx.stx_mtime.tv_nsec)};
  st.st_ctim = {stx.stx_ctime.tv_sec, static_cast<long>(stx.stx_ctime.tv_nsec)};
  return st;
}

// --- open flags --------------------------------------------------------------------------------

// The host flags for the kernel's open flags: never create, never follow (the inode is reopened
// through /proc, whose magic link must be followed exactly once), never bypass the host page
// cache with O_DIRECT (the transport's buffers are not aligned for it), never append, always
// close-on-exec. Each WRITE carries the FUSE file's flags as they are then, and one that says
// O_APPEND appends by itself (WriteAt::end); an O_APPEND host fd would append every write, also
// those of a caller that cleared the flag since, and refuse copy_file_range into it. (A backing
// file is the kernel's own open of the host file, with the FUSE open's flags.) Under seal_size
// O_TRUNC is decided by open_inode.
int host_open_flags(std::uint32_t kernel_flags, bool writeback, bool seal_size) noexcept {
  int flags = static_cast<int>(kernel_flags) &
              ~(O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW | O_DIRECT | O_PATH | __O_TMPFILE | O_APPEND);
  // The writeback cache reads pages back to fill partial writes.
  if (writeback && (flags & O_ACCMODE) == O_WRONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
  if (seal_size) flags &= ~O_TRUNC;
  return flags | O_CLOEXEC;
}

std::uint32_t cache_open_flags(CachePolicy policy, bool directory) noexcept {
  switch (policy) {
    // Direct writes to the host file need no serialisation per inode in the kernel: each is
    // one pwrite on the host.
    case CachePolicy::never:
      return directory ? 0 : abi::fopen::direct_io | abi::fopen::parallel_direct_writes;
    case CachePolicy::metadata:
      return directory ? abi::fopen::cache_dir | abi::fopen::keep_cache
                       : abi::fopen::direct_io | abi::fopen::parallel_direct_writes;
    // No cache_dir: without keep_cache the kernel drops a cached listing at the next opendir,
    // so it would only serve rewinddir within one open, while every listing paid to fill it
    // (readdir of 10,000 entries measured 1.3M/s with it, 1.9M/s without). As the crate and
    // virtiofsd do.
    case CachePolicy::automatic:
      return 0;
    case CachePolicy::always:
      return directory ? abi::fopen::cache_dir | abi::fopen::keep_cache : abi::fopen::keep_cache;
  }
  return 0;
}

bool starts_with(std::string_view s, std::string_view prefix) noexcept {
  return s.substr(0, prefix.size()) == prefix;
}

bool would_block(const Result<void>& rc) noexcept {
  return !rc && (rc.error() == std::errc::resource_unavailable_try_again ||
                 rc.error() == std::errc::operation_would_block);
}

// SETLKW: takes the lock at once if it is free. Otherwise the request may wait (retrying a
// non-blocking attempt, so an INTERRUPT from the kernel ends it with EINTR) only while fewer
// than `max_waiters` requests wait: a waiting request holds a worker, and the INTERRUPT that
// would free it needs another one. max_waiters 0 answers EOPNOTSUPP, as virtiofsd does for
// every blocking lock; a full set of waiters, or a thread that may not wait
// (Context::may_block), answers ENOLCK. See Config::max_lock_waiters.
template <class Attempt>
Result<void> wait_for_lock(const api::Context& ctx, std::atomic<std::size_t>& waiters,
                           std::size_t max_waiters, Attempt&& attempt) {
  auto rc = attempt();
  if (!would_block(rc)) return rc;
  if (max_waiters == 0) return fail(std::errc::operation_not_supported);
  if (!ctx.may_block()) return fail(std::errc::no_lock_available);
  // Take a slot, unless all are taken, or the request is interrupted already: then it would only
  // give it back, and meanwhile turn away a request that may wait.
  std::size_t taken = waiters.load(std::memory_order_relaxed);
  do {
    if (taken >= max_waiters) return fail(std::errc::no_lock_available);
    if (ctx.interrupted()) return fail(std::errc::interrupted);
  } while (!waiters.compare_exchange_weak(taken, taken + 1, std::memory_order_relaxed));
  auto delay = std::chrono::milliseconds(1);
  while (would_block(rc) && !ctx.interrupted()) {
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, std::chrono::milliseconds(50));
    rc = attempt();
  }
  waiters.fetch_sub(1, std::memory_order_relaxed);
  return would_block(rc) ? fail(std::errc::interrupted) : rc;
}

}  // namespace

// Everything that needs the private state but no place in the header.
class PassthroughFs::Impl {
 public:
  using Creds = std::optional<ScopedCredentials>;

  // Runs the rest of the scope as the caller when the daemon is root.
  static Result<Creds> as_caller(const PassthroughFs& fs, const api::Context& ctx) noexcept {
    if (!fs.privileged_) return Creds{};
    auto creds = ScopedCredentials::enter(ctx, fs.daemon_groups_);
    if (!creds) return fail(creds.error());
    return Creds{std::move(*creds)};
  }

  static Result<PinnedInode> directory(const PassthroughFs& fs, InodeId id) noexcept {
    auto inode = fs.find_inode(id);
    if (inode && !(*inode)->is_directory()) return fail(std::errc::not_a_directory);
    return inode;
  }

  static api::Entry make_entry(const PassthroughFs& fs, const Inode& inode,
                               const struct statx& stx, const Inode& parent) noexcept {
    api::Entry entry;
    entry.inode = inode.id();
    entry.attr = to_stat(stx);
    if (!fs.config_.use_host_ino) entry.attr.st_ino = static_cast<ino_t>(inode.id());
    entry.attr_timeout = fs.config_.attr_timeout;
    entry.entry_timeout = fs.config_.entry_timeout;
    if (fs.submounts_.load(std::memory_order_relaxed) && inode.is_directory() &&
        inode.key().mount_id != parent.key().mount_id)
      entry.attr_flags |= abi::attr_flags::submount;
    return entry;
  }

  // Whether a new inode is to keep a handle: whenever handles are usable with prefer and
  // mandatory; with automatic once the store holds the fd budget (logged once, also when
  // handles are unusable, for that is when EMFILE may follow).
  static bool wants_handle(PassthroughFs& fs) {
    if (fs.config_.inode_file_handles != InodeFileHandles::automatic) return fs.use_handles_;
    if (fs.inodes_.size() < fs.inode_fd_budget_) return false;
    if (!fs.budget_logged_.load(std::memory_order_relaxed) && !fs.budget_logged_.exchange(true)) {
      if (fs.use_handles_)
        fmt::print(stderr, "fuse_backend: {} inodes hold an fd each; further ones keep file handles\n",
                   fs.inode_fd_budget_);
      else
        fmt::print(stderr,
                   "fuse_backend: {} inodes hold an fd each and file handles are unavailable: "
                   "lookups fail with EMFILE at the fd limit\n",
                   fs.inode_fd_budget_);
    }
    return fs.use_handles_;
  }

  // The file handle a new inode for the object `fd` keeps instead of `fd` (inode file handles),
  // or nullptr when it keeps `fd`: see wants_handle, or this object has none (prefer and
  // automatic; logged once). `mandatory` fails instead.
  static Result<std::unique_ptr<FileHandle>> handle_for(PassthroughFs& fs, int fd,
                                                        const struct statx& stx) {
    if (!wants_handle(fs)) return std::unique_ptr<FileHandle>();
    auto handle = FileHandle::of(fd);
    Result<void> usable = handle ? fs.mount_fds_.ensure(handle->mount_id(), fd, stx.stx_mode)
                                 : Result<void>(fail(handle.error()));
    if (usable) return std::make_unique<FileHandle>(*handle);
    if (fs.config_.inode_file_handles == InodeFileHandles::mandatory) return fail(usable.error());
    if (!fs.handles_warned_.exchange(true))
      fmt::print(stderr, "fuse_backend: no file handle for an inode ({}); it keeps an fd\n",
                 std::make_error_code(usable.error()).message());
    return std::unique_ptr<FileHandle>();
  }

  // Looks `name` up in `parent` (already validated; `parent_fd` is its O_PATH fd or an open fd
  // of it) and takes one lookup reference.
  static Result<api::Entry> lookup_name(PassthroughFs& fs, const Inode& parent, int parent_fd,
                                        const char* name) {
    // Known host objects cost one statx and no allocation; the name is resolved without
    // following anything, exactly as the openat below would resolve it.
    auto stx = statx_at(parent_fd, name);
    if (!stx) return fail(stx.error());
    if (auto known = fs.inodes_.reference(key_of(*stx))) return make_entry(fs, *known, *stx, parent);

    // Unknown, or a handle inode, which is taken only once the name is seen to be its object.
    auto fd = syscall_result<int>(
        [&] { return ::openat(parent_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC); });
    if (!fd) return fail(fd.error());
    UniqueFd owned(*fd);
    // The name may now be another object than the one stat'ed: describe what was opened.
    stx = statx_at(owned.get(), "");
    if (!stx) return fail(stx.error());
    // ".." only to a known parent. A Linux client's cached directory pins its parent's entry, so
    // the parent of a directory it holds is one it looked up (from the root); one never seen
    // means the host moved this directory, perhaps out of the source, whose parents are not
    // served. (The kernel sends ".." only for NFS export, which init() declines.)
    if (std::string_view(name) == "..") {
      auto known = fs.inodes_.reference(key_of(*stx), owned.get());
      if (!known) return fail(std::errc::no_such_file_or_directory);
      return make_entry(fs, *known, *stx, parent);
    }
    auto handle = handle_for(fs, owned.get(), *stx);
    if (!handle) return fail(handle.error());
    auto inode = fs.inodes_.reference_or_insert(key_of(*stx), std::move(owned), stx->stx_mode,
                                                std::move(*handle));
    return make_entry(fs, *inode, *stx, parent);
  }

  // The entry (one lookup reference) for a file just created and opened as `fd`.
  static Result<api::Entry> entry_for_open_fd(PassthroughFs& fs, const Inode& parent, int fd) {
    auto stx = statx_at(fd, "");
    if (!stx) return fail(stx.error());
    const InodeKey key = key_of(*stx);
    if (auto known = fs.inodes_.reference(key)) return make_entry(fs, *known, *stx, parent);
    auto path_fd = syscall_result<int>([&] {
      return ::openat(fs.proc_self_fd_.get(), ProcName(fd).text, O_PATH | O_CLOEXEC);
    });
    if (!path_fd) return fail(path_fd.error());
    UniqueFd owned(*path_fd);
    auto handle = handle_for(fs, owned.get(), *stx);
    if (!handle) return fail(handle.error());
    auto inode = fs.inodes_.reference_or_insert(key, std::move(owned), stx->stx_mode,
                                                std::move(*handle));
    return make_entry(fs, *inode, *stx, parent);
  }

  // Opens the inode for I/O by reopening its O_PATH fd through /proc/self/fd. Only regular
  // files and directories: a symlink is never followed (ELOOP) and a fifo, socket or device is
  // never opened (ENXIO), whatever the flags.
  static Result<UniqueFd> reopen(const PassthroughFs& fs, const Inode& inode, int flags) noexcept {
    return reopen_fd(fs, inode, inode.fd(), flags);
  }
  // The same for `fd`, an fd of `inode` (its O_PATH fd, or an open file of it).
  static Result<UniqueFd> reopen_fd(const PassthroughFs& fs, const Inode& inode, int fd,
                                    int flags) noexcept {
    if (inode.is_symlink()) return fail(std::errc::too_many_symbolic_link_levels);
    if (!inode.is_regular() && !inode.is_directory()) return fail(std::errc::no_such_device_or_address);
    auto opened = syscall_result<int>(
        [&] { return ::openat(fs.proc_self_fd_.get(), ProcName(fd).text, flags); });
    if (!opened) return fail(opened.error());
    return UniqueFd(*opened);
  }

  // Registers the inode's passthrough backing file for one more open (the first open registers
  // `fd`). False when passthrough is off or failed (logged once; a permanent failure turns it
  // off).
  static bool attach_backing(PassthroughFs& fs, const api::Context& ctx, Inode& inode, int fd,
                             api::OpenReply& reply) noexcept {
    if (!fs.passthrough_.load(std::memory_order_relaxed) || !inode.is_regular()) return false;
    std::lock_guard lock(inode.backing_mutex);
    if (inode.backing_users == 0) {
      auto id = ctx.backing_files().open(fd);
      if (!id) {
        if (!fs.passthrough_warned_.exchange(true))
          fmt::print(stderr,
                     "fuse_backend: passthrough backing files unavailable ({}); reads and writes "
                     "go through the daemon\n",
                     std::make_error_code(id.error()).message());
        if (id.error() == std::errc::not_supported || id.error() == std::errc::operation_not_permitted ||
            id.error() == std::errc::inappropriate_io_control_operation)
          fs.passthrough_.store(false, std::memory_order_relaxed);
        return false;
      }
      inode.backing_id = *id;
    }
    ++inode.backing_users;
    // The kernel accepts no page-cache flags with passthrough: its page cache is the host's.
    reply.open_flags = abi::fopen::passthrough;
    reply.backing_id = inode.backing_id;
    return true;
  }

  static void detach_backing(const api::Context& ctx, OpenFile& file) noexcept {
    if (!file.uses_backing) return;
    Inode& inode = file.inode();
    std::lock_guard lock(inode.backing_mutex);
    if (--inode.backing_users == 0) {
      (void)ctx.backing_files().close(inode.backing_id);
      inode.backing_id = 0;
    }
    file.uses_backing = false;
  }

  // Wraps an opened fd as a handle with the cache policy's FOPEN flags (or passthrough).
  // `kernel_flags`: the open's flags as the kernel sent them. `created`: the attributes of a
  // file this open just created.
  static Result<api::OpenReply> make_handle(PassthroughFs& fs, const api::Context& ctx,
                                            std::shared_ptr<Inode> inode, UniqueFd fd,
                                            int host_flags, std::uint32_t kernel_flags,
                                            const struct stat* created = nullptr) {
    const bool directory = inode->is_directory();
    auto file = std::make_shared<OpenFile>(std::move(inode), std::move(fd), host_flags);
    api::OpenReply reply;
    reply.open_flags = cache_open_flags(fs.config_.cache_policy, directory);
    if (directory) file->dir.emplace(file->fd());
    // No backing file for an O_DIRECT open: the kernel opens it with the open's flags and
    // ignores a later fcntl(F_SETFL) that clears O_DIRECT (Linux 6.18), so the unaligned write
    // that follows one (GNU dd's short last block) would fail with EINVAL on the host. Through
    // the daemon O_DIRECT still bypasses the client's page cache, at any size.
    if ((kernel_flags & O_DIRECT) == 0)
      file->uses_backing = attach_backing(fs, ctx, file->inode(), file->fd(), reply);
    if (fs.config_.cache_policy == CachePolicy::automatic && file->inode().is_regular() &&
        !file->uses_backing) {
      PageCacheVersion& cache = file->inode().page_cache;
      if (created != nullptr)
        cache.record_created(*created);
      else if (cache.keep_on_open(file->fd()))
        reply.open_flags |= abi::fopen::keep_cache;
    }
    reply.handle = fs.handles_.insert(file);
    return reply;
  }

  // The reply to create/tmpfile from the new file's open fd: its entry (one lookup reference,
  // returned if the handle cannot be made) and its handle. The new inode is not pinned: the
  // file is open already, so its O_PATH fd is not needed.
  static Result<api::CreateReply> created_reply(PassthroughFs& fs, const api::Context& ctx,
                                                const Inode& parent, UniqueFd fd, int host_flags,
                                                std::uint32_t kernel_flags) {
    auto entry = entry_for_open_fd(fs, parent, fd.get());
    if (!entry) return fail(entry.error());
    auto inode = fs.inodes_.get(entry->inode);
    if (!inode) return fail(static_cast<std::errc>(ESTALE));
    auto opened = make_handle(fs, ctx, std::move(inode), std::move(fd), host_flags, kernel_flags,
                              &entry->attr);
    if (!opened) {
      fs.inodes_.forget(entry->inode, 1);
      return fail(opened.error());
    }
    return api::CreateReply{*entry, *opened};
  }

  // Opens an existing inode for the caller (open, and create of an existing name).
  static Result<api::OpenReply> open_inode(PassthroughFs& fs, const api::Context& ctx,
                                           PinnedInode inode, std::uint32_t flags,
                                           bool kill_suidgid) {
    int host_flags = host_open_flags(flags, fs.writeback_.load(std::memory_order_relaxed),
                                     fs.config_.seal_size);
    UniqueFd fd;
    {
      auto creds = as_caller(fs, ctx);
      if (!creds) return fail(creds.error());
      std::optional<ScopedNoFsetid> no_fsetid;
      if (kill_suidgid && (host_flags & O_TRUNC) != 0) {
        auto scope = ScopedNoFsetid::enter();
        if (!scope) return fail(scope.error());
        no_fsetid.emplace(std::move(*scope));
      }
      auto opened = reopen(fs, *inode, host_flags);
      if (!opened && opened.error() == std::errc::permission_denied &&
          (host_flags & O_ACCMODE) != (static_cast<int>(flags) & O_ACCMODE)) {
        // Writeback made a write-only open read-write; a caller allowed to write but not to
        // read still gets its file (as virtiofsd does), and the kernel's page-filling reads
        // of partial pages then fail on it rather than the whole open.
        host_flags = (host_flags & ~O_ACCMODE) | (static_cast<int>(flags) & O_ACCMODE);
        opened = reopen(fs, *inode, host_flags);
      }
      if (!opened && opened.error() == std::errc::operation_not_permitted && (flags & O_APPEND) != 0 &&
          (host_flags & O_ACCMODE) != O_RDONLY) {
        // An append-only host file (chattr +a) opens for writing only with O_APPEND. Its writes
        // then all append, as natively: O_APPEND cannot be cleared on such a file.
        host_flags |= O_APPEND;
        opened = reopen(fs, *inode, host_flags);
      }
      if (!opened) return fail(opened.error());
      fd = std::move(*opened);
    }
    // seal_size: truncating to 0 changes the size of anything but an empty file. host_flags
    // has no O_TRUNC then; checking the opened file leaves no window for a host writer.
    if (fs.config_.seal_size && (flags & O_TRUNC) != 0) {
      if (auto rc = check_seal(fs, fd.get(), 0, true); !rc) return fail(rc.error());
    }
    return make_handle(fs, ctx, inode.shared(), std::move(fd), host_flags, flags);
  }

  // An fd to do I/O on: the handle's, or in no_open / no_opendir mode (handle 0 once the
  // kernel stopped opening) a fresh reopen for this request.
  struct IoFile {
    std::shared_ptr<OpenFile> file;
    PinnedInode pinned;
    UniqueFd temporary;
    int fd() const noexcept { return file ? file->fd() : temporary.get(); }
    Inode& inode() const noexcept { return file ? file->inode() : *pinned; }
  };
  // Handle 0 once the kernel stopped opening (no_open / no_opendir negotiated): the request
  // is about the inode, with no open file behind it.
  static bool unopened(const PassthroughFs& fs, api::HandleId handle) noexcept {
    return static_cast<std::uint64_t>(handle) == 0 &&
           (fs.no_open_.load(std::memory_order_relaxed) || fs.no_opendir_.load(std::memory_order_relaxed));
  }
  // The handle to use for an op with an optional one (getattr, setattr, statx).
  static std::optional<api::HandleId> opened(const PassthroughFs& fs,
                                             std::optional<api::HandleId> handle) noexcept {
    if (handle && unopened(fs, *handle)) return std::nullopt;
    return handle;
  }

  static Result<IoFile> io_file(const PassthroughFs& fs, const api::Context& ctx, InodeId inode_id,
                                api::HandleId handle, int access) {
    IoFile io;
    if (!unopened(fs, handle)) {
      auto file = fs.find_handle(inode_id, handle);
      if (!file) return fail(file.error());
      io.file = std::move(*file);
      return io;
    }
    auto inode = fs.find_inode(inode_id);
    if (!inode) return fail(inode.error());
    auto creds = as_caller(fs, ctx);
    if (!creds) return fail(creds.error());
    const int flags = ((*inode)->is_directory() ? O_RDONLY | O_DIRECTORY : access) | O_CLOEXEC;
    auto fd = reopen(fs, **inode, flags);
    if (!fd) return fail(fd.error());
    io.pinned = std::move(*inode);
    io.temporary = std::move(*fd);
    return io;
  }

  // The host file's size before a write that may complete a write-behind chunk (an append, or
  // one that reaches a chunk boundary), to learn whether it grew the file; nullopt for the
  // others, which need no fstat.
  static std::optional<std::uint64_t> size_for_write_behind(const PassthroughFs& fs, const IoFile& io,
                                                            std::uint64_t offset, std::uint32_t size,
                                                            bool appends) noexcept {
    if (!fs.write_behind_ || !io.file) return std::nullopt;
    if (!appends && (offset + size) / WriteBehind::chunk == offset / WriteBehind::chunk) return std::nullopt;
    struct stat st {};
    if (::fstat(io.fd(), &st) != 0) return std::nullopt;
    return static_cast<std::uint64_t>(st.st_size);
  }

  // seal_size: nothing may move a file's end, neither past `end` nor (`shrink`) below it.
  static Result<void> check_seal(const PassthroughFs& fs, int fd, std::uint64_t end,
                                 bool shrink = false) noexcept {
    if (!fs.config_.seal_size) return {};
    struct stat st {};
    if (auto rc = syscall_void([&] { return ::fstat(fd, &st); }); !rc) return rc;
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (end > size || (shrink && end < size)) return fail(std::errc::operation_not_permitted);
    return {};
  }

  // A fresh open file description of `file`: same access mode as the open the kernel checked;
  // no credential switch, the caller's permission was established when the FUSE file was opened.
  // Reopened through the open file's own fd: a handle inode may have no O_PATH fd now.
  static Result<UniqueFd> reopen_for_locks(const PassthroughFs& fs, const OpenFile& file) noexcept {
    return reopen_fd(fs, file.inode(), file.fd(), (file.flags() & O_ACCMODE) | O_CLOEXEC);
  }

  // The host open file description that holds `owner`'s POSIX locks on `file`, or -1 when the
  // owner has none yet. Kernel-chosen owners cost no fd until they take a lock.
  static int existing_lock_owner_fd(OpenFile& file, std::uint64_t owner) {
    std::lock_guard lock(file.locks_mutex);
    auto it = file.lock_owners.find(owner);
    return it != file.lock_owners.end() ? it->second.get() : -1;
  }

  // The description for `owner`, created for a lock request; at most max_lock_owners per
  // handle (ENOLCK beyond), so a hostile kernel inventing owners cannot exhaust the daemon's
  // fds.
  static Result<int> lock_owner_fd(const PassthroughFs& fs, OpenFile& file, std::uint64_t owner) {
    std::lock_guard lock(file.locks_mutex);
    auto it = file.lock_owners.find(owner);
    if (it != file.lock_owners.end()) return it->second.get();
    if (file.lock_owners.size() >= OpenFile::max_lock_owners) return fail(std::errc::no_lock_available);
    auto fd = reopen_for_locks(fs, file);
    if (!fd) return fail(fd.error());
    const int raw = fd->get();
    file.lock_owners.emplace(owner, std::move(*fd));
    return raw;
  }

  static Result<api::Entry> finish_create(PassthroughFs& fs, const Inode& parent,
                                          const Name& name, Result<void> created) {
    if (!created) return fail(created.error());
    return lookup_name(fs, parent, parent.fd(), name.c_str());
  }

  // Three quarters of the soft RLIMIT_NOFILE: the rest is for open files, lock owners, the
  // transport and requests in flight.
  static std::size_t default_inode_fd_budget() noexcept {
    struct rlimit limit {};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
      return std::numeric_limits<std::size_t>::max();
    return static_cast<std::size_t>(limit.rlim_cur / 4 * 3);
  }

  // Whether the source can be reopened from its file handle (create(), inode file handles):
  // the file system has handles and the daemon may call open_by_handle_at.
  static Result<void> probe_handles(PassthroughFs& fs) {
    const Inode& root = *fs.inodes_.get(api::root_inode);
    auto handle = FileHandle::of(root.fd());
    if (!handle) return fail(handle.error());
    if (auto rc = fs.mount_fds_.ensure(handle->mount_id(), root.fd(), S_IFDIR); !rc) return rc;
    auto fd = fs.mount_fds_.open(*handle, O_PATH | O_CLOEXEC);
    if (!fd) return fail(fd.error());
    return {};
  }

  // xattr policy for a root daemon acting for an unprivileged caller: the daemon's
  // CAP_SYS_ADMIN / CAP_SETFCAP must not let the caller write trusted.* or security.* (file
  // capabilities!) nor read trusted.*, which the host kernel would refuse the caller itself.
  static bool unprivileged(const PassthroughFs& fs, const api::Context& ctx) noexcept {
    return fs.privileged_ && ctx.uid != 0;
  }

  // unlink (flags 0) and rmdir (AT_REMOVEDIR): a valid component of a live directory, removed
  // as the caller.
  static Result<void> remove_entry(const PassthroughFs& fs, const api::Context& ctx, InodeId parent_id,
                                   std::string_view name, int flags) noexcept {
    auto parent = directory(fs, parent_id);
    if (!parent) return fail(parent.error());
    auto checked = new_component(name);
    if (!checked) return fail(checked.error());
    auto creds = as_caller(fs, ctx);
    if (!creds) return fail(creds.error());
    return syscall_void([&] { return ::unlinkat((*parent)->fd(), checked->c_str(), flags); });
  }

  struct XattrTarget {
    PinnedInode inode;
    Name name;
  };
  // What setxattr and removexattr check before changing anything: xattrs on, a live inode, a
  // valid name, not a symlink (the /proc magic link of a symlink's O_PATH fd is no race-free way
  // to reach the link itself), and no trusted.* / security.* change by an unprivileged caller.
  static Result<XattrTarget> xattr_to_change(const PassthroughFs& fs, const api::Context& ctx,
                                             InodeId inode_id, std::string_view name) noexcept {
    if (!fs.config_.xattr) return fail(std::errc::function_not_supported);
    auto inode = fs.find_inode(inode_id);
    if (!inode) return fail(inode.error());
    auto checked = xattr_name(name);
    if (!checked) return fail(checked.error());
    if ((*inode)->is_symlink()) return fail(std::errc::operation_not_permitted);
    if (unprivileged(fs, ctx) && (starts_with(name, "trusted.") || starts_with(name, "security.")))
      return fail(std::errc::operation_not_permitted);
    return XattrTarget{std::move(*inode), *checked};
  }
};

// --- construction ------------------------------------------------------------------------------

PassthroughFs::PassthroughFs(Config config, UniqueFd proc_self_fd, std::shared_ptr<Inode> root,
                             std::vector<gid_t> daemon_groups, bool privileged)
    : config_(std::move(config)),
      proc_self_fd_(std::move(proc_self_fd)),
      inodes_(std::move(root)),
      daemon_groups_(std::move(daemon_groups)),
      privileged_(privileged) {
  // Under seal_size no write grows a file, so write-behind would never have work (and each
  // write at a chunk boundary would pay its fstat beside check_seal's).
  if (config_.write_behind && !config_.seal_size) write_behind_.emplace();
}

PassthroughFs::~PassthroughFs() = default;

Result<std::unique_ptr<PassthroughFs>> PassthroughFs::create(Config config) {
  // Backing files are written by the kernel itself: no writeback cache over them (the kernel
  // refuses it), and no seal_size, whose checks of every WRITE would never run.
  if (config.passthrough_backing && (config.writeback || config.seal_size))
    return fail(std::errc::invalid_argument);
  if (config.source.empty()) return fail(std::errc::no_such_file_or_directory);
  auto proc = syscall_result<int>(
      [] { return ::open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC); });
  if (!proc) return fail(proc.error());
  UniqueFd proc_fd(*proc);
  // The source itself may be a symlink the administrator chose; it is the one path followed.
  auto root_fd = syscall_result<int>(
      [&] { return ::open(config.source.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC); });
  if (!root_fd) return fail(root_fd.error());
  UniqueFd root_owned(*root_fd);
  auto stx = statx_at(root_owned.get(), "");
  if (!stx) return fail(stx.error());
  auto root = std::make_shared<Inode>(api::root_inode, std::move(root_owned), key_of(*stx),
                                      stx->stx_mode);

  std::vector<gid_t> groups;
  if (int n = ::getgroups(0, nullptr); n > 0) {
    groups.resize(static_cast<std::size_t>(n));
    n = ::getgroups(n, groups.data());
    groups.resize(static_cast<std::size_t>(std::max(n, 0)));
  }
  std::unique_ptr<PassthroughFs> fs(new PassthroughFs(
      std::move(config), std::move(proc_fd), std::move(root), std::move(groups), ::geteuid() == 0));
  if (fs->config_.inode_file_handles != InodeFileHandles::never) {
    auto usable = Impl::probe_handles(*fs);
    if (!usable && fs->config_.inode_file_handles == InodeFileHandles::mandatory)
      return fail(usable.error());
    if (!usable && fs->config_.inode_file_handles == InodeFileHandles::prefer) {
      fs->handles_warned_.store(true);
      fmt::print(stderr, "fuse_backend: inode file handles unavailable ({}); inodes keep fds\n",
                 std::make_error_code(usable.error()).message());
    }
    fs->use_handles_ = usable.has_value();
  }
  fs->inode_fd_budget_ = fs->config_.inode_fd_budget != 0 ? fs->config_.inode_fd_budget
                                                          : Impl::default_inode_fd_budget();
  // Modes arrive with the caller's umask applied by the kernel; see the header.
  ::umask(0);
  return fs;
}

Result<PinnedInode> PassthroughFs::find_inode(InodeId id) const noexcept {
  auto inode = inodes_.get(id);
  if (!inode) return fail(static_cast<std::errc>(ESTALE));
  return PinnedInode::pin(std::move(inode), mount_fds_);
}

Result<std::shared_ptr<OpenFile>> PassthroughFs::find_handle(InodeId inode,
                                                             api::HandleId handle) const noexcept {
  auto file = handles_.get(handle);
  if (!file || file->inode().id() != inode) return fail(std::errc::bad_file_descriptor);
  return file;
}

// --- lifecycle ---------------------------------------------------------------------------------

Result<std::uint64_t> PassthroughFs::init(std::uint64_t offered) {
  namespace f = abi::init_flags;
  // Start from what is offered (the Server's own capabilities such as max_pages or splice pass
  // through) and drop what this filesystem does not do or the Config turns off.
  std::uint64_t wanted = offered;
  // Never: the daemon does not kill privileges v1-style, apply umask, serve ACLs itself, do
  // DAX, security contexts, id-mapped mounts, NFS export or SETXATTR_EXT flags.
  wanted &= ~(f::handle_killpriv | f::dont_mask | f::posix_acl | f::map_alignment |
              f::has_inode_dax | f::security_ctx | f::allow_idmap | f::export_support |
              f::setxattr_ext | f::explicit_inval_data);
  if (!config_.writeback) wanted &= ~f::writeback_cache;
  if (!config_.no_open) wanted &= ~f::no_open_support;
  if (!config_.no_opendir) wanted &= ~f::no_opendir_support;
  if (!config_.killpriv_v2) wanted &= ~f::handle_killpriv_v2;
  if (!config_.announce_submounts) wanted &= ~f::submounts;
  if (!config_.readdirplus) wanted &= ~(f::do_readdirplus | f::readdirplus_auto);
  if (!config_.posix_locks) wanted &= ~f::posix_locks;
  if (!config_.passthrough_backing) wanted &= ~f::passthrough;
  if (!privileged_) wanted &= ~f::create_supp_group;
  if (config_.cache_policy == CachePolicy::always) wanted &= ~f::auto_inval_data;
  if (config_.cache_policy != CachePolicy::always) wanted &= ~f::cache_symlinks;
  // The kernel ignores passthrough together with writeback; Config forbids the pair already.
  if ((wanted & f::writeback_cache) != 0) wanted &= ~f::passthrough;
  if ((wanted & f::no_open_support) != 0) {
    // Without OPEN nothing would apply O_TRUNC (the kernel then sends SETATTR size 0 instead),
    // and locks need an open file description to live on (the kernel keeps them local).
    wanted &= ~(f::atomic_o_trunc | f::posix_locks | f::flock_locks);
  }

  writeback_.store((wanted & f::writeback_cache) != 0);
  no_open_.store((wanted & f::no_open_support) != 0);
  no_opendir_.store((wanted & f::no_opendir_support) != 0);
  killpriv_v2_.store((wanted & f::handle_killpriv_v2) != 0);
  submounts_.store((wanted & f::submounts) != 0);
  passthrough_.store((wanted & f::passthrough) != 0);
  return wanted;
}

void PassthroughFs::destroy() {
  handles_.clear();
  inodes_.clear();
}

void PassthroughFs::forget(const api::Context&, InodeId inode, std::uint64_t nlookup) {
  inodes_.forget(inode, nlookup);
}

void PassthroughFs::batch_forget(const api::Context&, std::span<const api::ForgetOne> forgets) {
  for (const auto& one : forgets) inodes_.forget(one.inode, one.nlookup);
}

// --- names and attributes ----------------------------------------------------------------------

Result<api::Entry> PassthroughFs::lookup(const api::Context& ctx, InodeId parent_id,
                                         std::string_view name) {
  auto parent = Impl::directory(*this, parent_id);
  if (!parent) return fail(parent.error());
  auto checked = component(name);
  if (!checked) return fail(checked.error());
  // "." is the directory itself; ".." of the root is the root (nothing above is reachable),
  // also when the source directory is seen through another node (a bind mount of itself).
  const auto& root_key = inodes_.get(api::root_inode)->key();
  const bool at_root = (*parent)->key().ino == root_key.ino && (*parent)->key().dev == root_key.dev;
  if (name == "." || (name == ".." && at_root)) {
    auto stx = statx_at((*parent)->fd(), "");
    if (!stx) return fail(stx.error());
    inodes_.reference(**parent);
    return Impl::make_entry(*this, **parent, *stx, **parent);
  }
  auto creds = Impl::as_caller(*this, ctx);
  if (!creds) return fail(creds.error());
  return Impl::lookup_name(*this, **parent, (*parent)->fd(), checked->c_str());
}

Result<api::AttrReply> PassthroughFs::getattr(const api::Context&, InodeId inode_id,
                                              std::optional<api::HandleId> handle) {
  handle = Impl::opened(*this, handle);
  Result<struct statx> stx = fail(std::errc::bad_file_descriptor);
  if (handle) {
    auto file = find_handle(inode_id, *handle);
    if (!file) return fail(file.error());
    stx = statx_at((*file)->fd(), "");
  } else {
    auto inode = find_inode(inode_id);
    if (!inode) return fail(inode.error());
    stx = statx_at((*inode)->fd(), "");
  }
  if (!stx) return fail(stx.error());
  api::AttrReply reply;
  reply.attr = to_stat(*stx);
  if (!config_.use_host_ino) reply.attr.st_ino = static_cast<ino_t>(inode_id);
  reply.timeout = config_.attr_timeout;
  return reply;
}

Result<api::AttrReply> PassthroughFs::setattr(const api::Context& ctx, InodeId inode_id,
                                              const api::SetattrIn& in,
                                              std::optional<api::HandleId> handle) {
  namespace fattr = abi::fattr;
  handle = Impl::opened(*this, handle);
  auto inode_result = find_inode(inode_id);
  if (!inode_result) return fail(inode_result.error());
  Inode& inode = **inode_result;
  std::shared_ptr<OpenFile> file;
  if (handle) {
    auto found = find_handle(inode_id, *handle);
    if (!found) return fail(found.error());
    file = std::move(*found);
  }
  {
    auto creds = Impl::as_caller(*this, ctx);
    if (!creds) return fail(creds.error());
    std::optional<ScopedNoFsetid> no_fsetid;
    if ((in.valid & fattr::kill_suidgid) != 0 && killpriv_v2_.load(std::memory_order_relaxed)) {
      auto scope = ScopedNoFsetid::enter();
      if (!scope) return fail(scope.error());
      no_fsetid.emplace(std::move(*scope));
    }

    if ((in.valid & fattr::mode) != 0) {
      const mode_t mode = in.attr.st_mode & 07777;
      Result<void> rc;
      if (file)
        rc = syscall_void([&] { return ::fchmod(file->fd(), mode); });
      else if (inode.is_symlink())
        rc = fail(std::errc::operation_not_supported);
      else
        rc = syscall_void(
            [&] { return ::fchmodat(proc_self_fd_.get(), ProcName(inode.fd()).text, mode, 0); });
      if (!rc) return fail(rc.error());
    }
    if ((in.valid & (fattr::uid | fattr::gid)) != 0) {
      const uid_t uid = (in.valid & fattr::uid) != 0 ? in.attr.st_uid : static_cast<uid_t>(-1);
      const gid_t gid = (in.valid & fattr::gid) != 0 ? in.attr.st_gid : static_cast<gid_t>(-1);
      if (auto rc = syscall_void([&] {
            return ::fchownat(inode.fd(), "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
          });
          !rc)
        return fail(rc.error());
    }
    if ((in.valid & fattr::size) != 0) {
      const auto size = static_cast<std::uint64_t>(in.attr.st_size);
      Result<void> rc;
      if (file) {
        rc = Impl::check_seal(*this, file->fd(), size, true);
        if (rc) rc = syscall_void([&] { return ::ftruncate(file->fd(), in.attr.st_size); });
      } else if (inode.is_directory()) {
        rc = fail(std::errc::is_a_directory);
      } else if (!inode.is_regular()) {
        rc = fail(std::errc::invalid_argument);
      } else {
        // truncate(2) on the /proc magic link: a permission-checked truncate without opening.
        rc = Impl::check_seal(*this, inode.fd(), size, true);
        if (rc) rc = syscall_void([&] { return ::truncate(ProcPath(inode.fd()).text, in.attr.st_size); });
      }
      inode.page_cache.forget();
      if (!rc) return fail(rc.error());
    }
    if ((in.valid & (fattr::atime | fattr::mtime | fattr::atime_now | fattr::mtime_now)) != 0) {
      struct timespec times[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
      if ((in.valid & fattr::atime_now) != 0)
        times[0].tv_nsec = UTIME_NOW;
      else if ((in.valid & fattr::atime) != 0)
        times[0] = in.attr.st_atim;
      if ((in.valid & fattr::mtime_now) != 0)
        times[1].tv_nsec = UTIME_NOW;
      else if ((in.valid & fattr::mtime) != 0)
        times[1] = in.attr.st_mtim;
      Result<void> rc;
      if (file)
        rc = syscall_void([&] { return ::futimens(file->fd(), times); });
      else
        rc = syscall_void([&] {
          return ::utimensat(inode.fd(), "", times, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
        });
      if (!rc) return fail(rc.error());
    }
  }
  return getattr(ctx, inode_id, handle);
}

Result<std::size_t> PassthroughFs::readlink(const api::Context&, InodeId inode_id,
                                            std::span<char> target) {
  auto inode = find_inode(inode_id);
  if (!inode) return fail(inode.error());
  if (!(*inode)->is_symlink()) return fail(std::errc::invalid_argument);
  return syscall_result<std::size_t>(
      [&] { return ::readlinkat((*inode)->fd(), "", target.data(), target.size()); });
}

Result<api::Entry> PassthroughFs::symlink(const api::Context& ctx, std::string_view target,
                                          InodeId parent_id, std::string_view name) {
  auto parent = Impl::directory(*this, parent_id);
  if (!parent) return fail(parent.error());
  auto checked = new_component(name);
  if (!checked) return fail(checked.error());
  if (target.empty() || target.find('\0') != std::string_view::npos)
    return fail(std::errc::invalid_argument);
  if (target.size() >= PATH_MAX) return fail(std::errc::filename_too_long);
  char target_text[PATH_MAX];
  std::memcpy(target_text, target.data(), target.size());
  target_text[target.size()] = '\0';
  auto creds = Impl::as_caller(*this, ctx);
  if (!creds) return fail(creds.error());
  // The target is stored, never resolved by the daemon.
  return Impl::finish_create(*this, **parent, *checked, syscall_void([&] {
    return ::symlinkat(target_text, (*parent)->fd(), checked->c_str());
  }));
}

Result<api::Entry> PassthroughFs::mknod(const api::Context& ctx, InodeId parent_id,
                                        std::string_view name, std::uint32_t mode,
                                        std::uint32_t rdev) {
  auto parent = Impl::directory(*this, parent_id);
  if (!parent) return fail(parent.error());
  auto checked = new_component(name);
  if (!checked) return fail(checked.error());
  auto creds = Impl::as_caller(*this, ctx);
  if (!creds) return fail(creds.error());
  return Impl::finish_create(*this, **parent, *checked, syscall_void([&] {
    return ::mknodat((*parent)->fd(), checked->c_str(), mode, rdev);
  }));
}

Result<api::Entry> PassthroughFs::mkdir(const api::Context& ctx, InodeId parent_id,
                                        std::string_view name, std::uint32_t mode) {
  auto parent = Impl::directory(*this, parent_id);
  if (!parent) return fail(parent.error());
  auto checked = new_component(name);
  if (!checked) return fail(checked.error());
  auto creds = Impl::as_caller(*this, ctx);
  if (!creds) return fail(creds.error());
  return Impl::finish_create(*this, **parent, *checked, syscall_void([&] {
    return ::mkdirat((*parent)->fd(), checked->c_str(), mode);
  }));
}

Result<void> PassthroughFs::unlink(const api::Context& ctx, InodeId parent_id,
                                   std::string_view name) {
  return Impl::remove_entry(*this, ctx, parent_id, name, 0);
}

Result<void> PassthroughFs::rmdir(const api::Context& ctx, InodeId parent_id,
                                  std::string_view name) {
  return Impl::remove_entry(*this, ctx, parent_id, name, AT_REMOVEDIR);
}

Result<void> PassthroughFs::rename(const api::Context& ctx, InodeId old_parent_id,
                                   std::string_view old_name, InodeId new_parent_id,
                                   std::string_view new_name, std::uint32_t flags) {
  if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT)) != 0)
    return fail(std::errc::invalid_argument);
  auto old_parent = Impl::directory(*this, old_parent_id);
  if (!old_parent) return fail(old_parent.error());
  auto new_parent = Impl::directory(*this, new_parent_id);
  if (!new_parent) return fail(new_parent.error());
  auto from = new_component(old_name);
  if (!from) return fail(from.error());
  auto to = new_component(new_name);
  if (!to) return fail(to.error());
  auto creds = Impl::as_caller(*this, ctx);
  if (!creds) return fail(creds.error());
  return syscall_void([&] {
    return ::syscall(SYS_renameat2, (*old_parent)->fd(), from->c_str(), (*new_parent)->fd(),
                     to->c_str(), flags);
  });
}

Result<api::Entry> PassthroughFs::link(const api::Context& ctx, InodeId inode_id,
                                       InodeId new_parent_id, std::string_view new_name) {
  auto inode = find_inode(inode_id);
  if (!inode) return fail(inode.error());
  auto parent = Impl::directory(*this, new_parent_id);
  if (!parent) return fail(parent.error());
  auto checked = new_component(new_name);
  if (!checked) return fail(checked.error());
  auto creds = Impl::as_caller(*this, ctx);
  if (!creds) return fail(creds.error());
  // linkat through the /proc magic link needs no CAP_DAC_READ_SEARCH (AT_EMPTY_PATH would) and
  // links exactly the inode the O_PATH fd pins.
  return Impl::finish_create(*this, **parent, *checked, syscall_void([&] {
    return ::linkat(proc_self_fd_.get(), ProcName((*inode)->fd()).text, (*parent)->fd(),
                    checked->c_str(), AT_SYMLINK_FOLLOW);
  }));
}

// --- files -------------------------------------------------------------------------------------

Result<api::OpenReply> PassthroughFs::open(const api::Context& ctx, InodeId inode_id,
                                           std::uint32_t flags, std::uint32_t open_flags) {
  if (no_open_.load(std::memory_order_relaxed)) return fail(std::errc::function_not_supported);
  auto inode = find_inode(inode_id);
  if (!inode) return fail(inode.error());
  const bool kill = (open_flags & abi::open_flags::kill_suidgid) != 0 &&
                    killpriv_v2_.load(std::memory_order_relaxed);
  return Impl::open_inode(*this, ctx, std::move(*inode), flags, kill);
}

Result<api::CreateReply> PassthroughFs::create(const api::Context& ctx, InodeId parent_id,
                                               std::string_view name, std::uint32_t mode,
                                               std::uint32_t flags) {
  auto parent = Impl::directory(*this, parent_id);
  if (!parent) return fail(parent.error());
  auto checked = new_component(name);
  if (!checked) return fail(checked.error());
  const int host_flags = host_open_flags(flags, writeback_.load(std::memory_order_relaxed), config_.seal_size);
  Result<int> created = fail(std::errc::invalid_argument);
  {
    auto creds = Impl::as_caller(*this, ctx);
    if (!creds) return fail(creds.error());
    // Always O_EXCL|O_NOFOLLOW: creating never opens something that already exists (a fifo
    // would block, a symlink would be followed); an existing name is opened like OPEN does.
    created = syscall_result<int>([&] {
      return ::openat((*parent)->fd(), checked->c_str(), host_flags | O_CREAT | O_EXCL | O_NOFOLLOW,
                      static_cast<mode_t>(mode));
    });
  }
  if (!created) {
    if (created.error() != std::errc::file_exists || (flags & O_EXCL) != 0)
      return fail(created.error());
    Result<api::Entry> entry = fail(std::errc::invalid_argument);
    {
      auto creds = Impl::as_caller(*this, ctx);
      if (!creds) return fail(creds.error());
      entry = Impl::lookup_name(*this, **parent, (*parent)->fd(), checked->c_str());
    }
    if (!entry) return fail(entry.error());
    auto inode = find_inode(entry->inode);
    auto opened = inode ? Impl::open_inode(*this, ctx, std::move(*inode), flags, false)
                        : Result<api::OpenReply>(fail(inode.error()));
    if (!opened) {
      inodes_.forget(entry->inode, 1);
      return fail(opened.error());
    }
    return api::CreateReply{*entry, *opened};
  }
  return Impl::created_reply(*this, ctx, **parent, UniqueFd(*created), host_flags, flags);
}

Result<api::CreateReply> PassthroughFs::tmpfile(const api::Context& ctx, InodeId parent_id,
                                                std::uint32_t mode, std::uint32_t flags) {
  auto parent = Impl::directory(*this, parent_id);
  if (!parent) return fail(parent.error());
  int host_flags = host_open_flags(flags, writeback_.load(std::memory_order_relaxed), config_.seal_size);
  if ((host_flags & O_ACCMODE) == O_RDONLY) host_flags = (host_flags & ~O_ACCMODE) | O_RDWR;
  Result<int> created = fail(std::errc::invalid_argument);
  {
    auto creds = Impl::as_caller(*this, ctx);
    if (!creds) return fail(creds.error());
    created = syscall_result<int>([&] {
      return ::openat((*parent)->fd(), ".", (host_flags & ~O_DIRECTORY) | O_TMPFILE,
                      static_cast<mode_t>(mode));
    });
  }
  if (!created) return fail(created.error());
  return Impl::created_reply(*this, ctx, **parent, UniqueFd(*created), host_flags, flags);
}

Result<std::size_t> PassthroughFs::read(const api::Context& ctx, InodeId inode,
                                        api::HandleId handle, api::ZeroCopyWriter& out,
                                        std::uint32_t size, std::uint64_t offset, std::uint32_t) {
  auto io = Impl::io_file(*this, ctx, inode, handle, O_RDONLY);
  if (!io) return fail(io.error());
  io->inode().page_cache.before_read();
  // A short read is not the end of the file on every host filesystem (NFS, a FUSE submount):
  // only 0 is, and the kernel takes a short reply for EOF.
  std::size_t done = 0;
  while (done < size) {
    auto n = out.write_from(io->fd(), size - done, offset + done);
    if (!n) {
      if (done != 0) break;  // report what was read
      return fail(n.error());
    }
    if (*n == 0) break;
    done += *n;
  }
  return done;
}

Result<std::size_t> PassthroughFs::write(const api::Context& ctx, InodeId inode,
                                         api::HandleId handle, api::ZeroCopyReader& in,
                                         std::uint32_t size, std::uint64_t offset,
                                         std::uint32_t write_flags, std::uint32_t flags) {
  auto io = Impl::io_file(*this, ctx, inode, handle, O_WRONLY);
  if (!io) return fail(io.error());
  if (auto rc = Impl::check_seal(*this, io->fd(), offset + size); !rc) return fail(rc.error());
  // The caller's O_APPEND as it is now (a fcntl(F_SETFL) since the open shows), for this write
  // alone. Not under the writeback cache (the kernel appends itself and sends the final offsets)
  // nor seal_size (the offsets are checked, then used).
  const bool appends = (flags & O_APPEND) != 0 && !writeback_.load(std::memory_order_relaxed) &&
                       !config_.seal_size;
  const api::WriteAt at = appends ? api::WriteAt::end : api::WriteAt::offset;
  std::optional<ScopedNoFsetid> no_fsetid;
  if ((write_flags & abi::write_flags::kill_suidgid) != 0 &&
      killpriv_v2_.load(std::memory_order_relaxed)) {
    auto scope = ScopedNoFsetid::enter();
    if (!scope) return fail(scope.error());
    no_fsetid.emplace(std::move(*scope));
  }
  // Under the writeback cache our WRITEs are not taken for ours (see PageCacheVersion).
  PageCacheVersion& cache = io->inode().page_cache;
  if (!writeback_.load(std::memory_order_relaxed)) cache.before_own_write(io->fd());
  const auto size_before = Impl::size_for_write_behind(*this, *io, offset, size, appends);
  std::size_t done = 0;
  Result<std::size_t> last = 0;
  while (done < size) {
    last = in.read_to(io->fd(), size - done, offset + done, at);
    if (!last || *last == 0) break;
    done += *last;
  }
  if (done != size) cache.forget();
  if (size_before) {
    const std::uint64_t start = appends ? *size_before : offset;  // where an append landed
    if (auto chunks = WriteBehind::completed_chunks({start, start + done}, *size_before))
      write_behind_->write_back(io->file, *chunks);
  }
  if (done == 0 && !last) return fail(last.error());
  return done;  // a short count for the part that reached the file
}

Result<void> PassthroughFs::flush(const api::Context&, InodeId inode, api::HandleId handle,
                                  std::uint64_t lock_owner) {
  if (Impl::unopened(*this, handle)) return {};
  auto file = find_handle(inode, handle);
  if (!file) return fail(file.error());
  {
    // close(2) drops the closing process's POSIX locks on the file.
    std::lock_guard lock((*file)->locks_mutex);
    (*file)->lock_owners.erase(lock_owner);
  }
  (*file)->inode().page_cache.after_own_writes((*file)->fd());
  // Closing a duplicate makes the host filesystem see a close(2) (NFS writes back on close and
  // reports errors there) while the handle stays open.
  auto dup = syscall_result<int>([&] { return ::fcntl((*file)->fd(), F_DUPFD_CLOEXEC, 0); });
  if (!dup) return fail(dup.error());
  return check_errno(::close(*dup));
}

Result<void> PassthroughFs::release(const api::Context& ctx, InodeId inode, api::HandleId handle,
                                    std::uint32_t, std::uint32_t release_flags, std::uint64_t) {
  if (Impl::unopened(*this, handle)) return {};
  if (!find_handle(inode, handle)) return fail(std::errc::bad_file_descriptor);
  auto file = handles_.remove(handle);
  if (!file) return fail(std::errc::bad_file_descriptor);
  if (write_behind_) write_behind_->forget(*file);
  // A request still running on this handle keeps the fd open a little longer; a flock must not
  // outlive the RELEASE that asked to drop it.
  if ((release_flags & abi::release_flags::flock_unlock) != 0) (void)::flock(file->fd(), LOCK_UN);
  Impl::detach_backing(ctx, *file);
  return {};
}

Result<void> PassthroughFs::fsync(const api::Context& ctx, InodeId inode, api::HandleId handle,
                                  bool datasync) {
  auto io = Impl::io_file(*this, ctx, inode, handle, O_RDONLY);
  if (!io) return fail(io.error());
  return syscall_void([&] { return datasync ? ::fdatasync(io->fd()) : ::fsync(io->fd()); });
}

Result<void> PassthroughFs::fallocate(const api::Context& ctx, InodeId inode, api::HandleId handle,
                                      std::uint32_t mode, std::uint64_t offset,
                                      std::uint64_t length) {
  // The modes the kernel's FUSE client sends. Others (collapse, insert range...) move data and
  // the file's end in ways seal_size and the kernel's cached size do not expect.
  if ((mode & ~static_cast<std::uint32_t>(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) != 0)
    return fail(std::errc::operation_not_supported);
  auto io = Impl::io_file(*this, ctx, inode, handle, O_WRONLY);
  if (!io) return fail(io.error());
  if ((mode & FALLOC_FL_KEEP_SIZE) == 0) {
    if (auto rc = Impl::check_seal(*this, io->fd(), offset + length); !rc) return rc;
  }
  auto rc = syscall_void([&] {
    return ::fallocate(io->fd(), static_cast<int>(mode), static_cast<off_t>(offset),
                       static_cast<off_t>(length));
  });
  io->inode().page_cache.forget();
  return rc;
}

Result<std::uint64_t> PassthroughFs::lseek(const api::Context& ctx, InodeId inode,
                                           api::HandleId handle, std::uint64_t offset,
                                           std::uint32_t whence) {
  // The kernel asks only SEEK_DATA/SEEK_HOLE of regular files (it seeks by itself otherwise),
  // and a file's fd position is never used for I/O (pread/pwrite): moving it is harmless. A
  // directory's is where READDIR goes on, so a seek there is refused.
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return fail(std::errc::invalid_argument);
  auto io = Impl::io_file(*this, ctx, inode, handle, O_RDONLY);
  if (!io) return fail(io.error());
  if (!io->inode().is_regular()) return fail(std::errc::invalid_argument);
  return syscall_result<std::uint64_t>(
      [&] { return ::lseek(io->fd(), static_cast<off_t>(offset), static_cast<int>(whence)); });
}

Result<std::uint64_t> PassthroughFs::copy_file_range(const api::Context& ctx, InodeId inode_in,
                                                     api::HandleId handle_in,
                                                     std::uint64_t offset_in, InodeId inode_out,
                                                     api::HandleId handle_out,
                                                     std::uint64_t offset_out,
                                                     std::uint64_t length, std::uint64_t flags) {
  if (flags != 0) return fail(std::errc::invalid_argument);
  auto in = Impl::io_file(*this, ctx, inode_in, handle_in, O_RDONLY);
  if (!in) return fail(in.error());
  auto out = Impl::io_file(*this, ctx, inode_out, handle_out, O_WRONLY);
  if (!out) return fail(out.error());
  if (auto rc = Impl::check_seal(*this, out->fd(), offset_out + length); !rc) return fail(rc.error());
  auto off_in = static_cast<loff_t>(offset_in);
  auto off_out = static_cast<loff_t>(offset_out);
  auto copied = syscall_result<std::uint64_t>([&] {
    return ::copy_file_range(in->fd(), &off_in, out->fd(), &off_out, length, 0);
  });
  out->inode().page_cache.forget();
  return copied;
}

Result<api::IoctlReply> PassthroughFs::ioctl(const api::Context& ctx, InodeId inode,
                                             api::HandleId handle, std::uint32_t,
                                             std::uint32_t command, std::uint64_t,
                                             std::span<const std::byte> in,
                                             std::span<std::byte> out) {
  // FUSE sends inode flags as a 4-byte int whatever the command's encoded size says.
  const bool get = command == static_cast<std::uint32_t>(FS_IOC_GETFLAGS);
  const bool set = command == static_cast<std::uint32_t>(FS_IOC_SETFLAGS);
  // The kernel reads the old attributes with FSGETXATTR before any SETFLAGS (vfs_fileattr_set).
  const bool get_extended = command == static_cast<std::uint32_t>(FS_IOC_FSGETXATTR);
  if (!get && !set && !get_extended) return fail(std::errc::inappropriate_io_control_operation);
  auto file = Impl::io_file(*this, ctx, inode, handle, O_RDONLY);
  if (!file) return fail(file.error());
  if (get_extended) {
    struct fsxattr attributes {};
    if (auto rc = syscall_void([&] { return ::ioctl(file->fd(), FS_IOC_FSGETXATTR, &attributes); }); !rc)
      return fail(rc.error());
    if (out.size() < sizeof attributes) return fail(std::errc::invalid_argument);
    std::memcpy(out.data(), &attributes, sizeof attributes);
    return api::IoctlReply{0, sizeof attributes};
  }
  int current = 0;
  if (auto rc = syscall_void([&] { return ::ioctl(file->fd(), FS_IOC_GETFLAGS, &current); }); !rc)
    return fail(rc.error());
  if (get) {
    if (out.size() < sizeof current) return fail(std::errc::invalid_argument);
    std::memcpy(out.data(), &current, sizeof current);
    return api::IoctlReply{0, sizeof current};
  }
  if (in.size() < sizeof(int)) return fail(std::errc::invalid_argument);
  int wanted = 0;
  std::memcpy(&wanted, in.data(), sizeof wanted);
  // As the caller: a non-zero fsuid drops the daemon's CAP_LINUX_IMMUTABLE with the other
  // file-system capabilities (the kernel's CAP_FS_SET), so the host refuses an unprivileged
  // owner's change of immutable / append-only itself.
  auto creds = Impl::as_caller(*this, ctx);
  if (!creds) return fail(creds.error());
  if (auto rc = syscall_void([&] { return ::ioctl(file->fd(), FS_IOC_SETFLAGS, &wanted); }); !rc)
    return fail(rc.error());
  return api::IoctlReply{0, 0};
}

Result<std::uint32_t> PassthroughFs::poll(const api::Context& ctx, InodeId inode,
                                          api::HandleId handle, std::uint64_t, std::uint32_t,
                                          std::uint32_t events) {
  auto file = Impl::io_file(*this, ctx, inode, handle, O_RDONLY);
  if (!file) return fail(file.error());
  struct pollfd pfd {file->fd(), static_cast<short>(events), 0};
  if (auto rc = syscall_void([&] { return ::poll(&pfd, 1, 0); }); !rc) return fail(rc.error());
  return static_cast<std::uint32_t>(static_cast<std::uint16_t>(pfd.revents));
}

// --- locks -------------------------------------------------------------------------------------

namespace {

struct flock to_host_lock(const api::FileLock& lock) noexcept {
  struct flock fl {};
  fl.l_type = static_cast<short>(lock.type);
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(lock.start);
  // The kernel sends end = OFFSET_MAX for "to the end of file", which POSIX spells length 0.
  fl.l_len = lock.end >= static_cast<std::uint64_t>(LLONG_MAX)
                 ? 0
                 : static_cast<off_t>(lock.end - lock.start + 1);
  return fl;
}

}  // namespace

Result<api::FileLock> PassthroughFs::getlk(const api::Context&, InodeId inode, api::HandleId handle,
                                           std::uint64_t owner, const api::FileLock& lock,
                                           std::uint32_t) {
  if (lock.end < lock.start) return fail(std::errc::invalid_argument);
  auto file = find_handle(inode, handle);
  if (!file) return fail(file.error());
  // An owner without a description holds no locks: any description of the file sees the same
  // conflicts, so a temporary one answers without keeping an fd.
  UniqueFd temporary;
  int fd = Impl::existing_lock_owner_fd(**file, owner);
  if (fd < 0) {
    auto opened = Impl::reopen_for_locks(*this, **file);
    if (!opened) return fail(opened.error());
    temporary = std::move(*opened);
    fd = temporary.get();
  }
  struct flock fl = to_host_lock(lock);
  if (auto rc = syscall_void([&] { return ::fcntl(fd, F_OFD_GETLK, &fl); }); !rc)
    return fail(rc.error());
  api::FileLock result = lock;
  result.type = static_cast<std::uint32_t>(fl.l_type);
  if (fl.l_type != F_UNLCK) {
    result.start = static_cast<std::uint64_t>(fl.l_start);
    result.end = fl.l_len == 0 ? static_cast<std::uint64_t>(LLONG_MAX)
                               : static_cast<std::uint64_t>(fl.l_start + fl.l_len - 1);
    // OFD locks have no owning process; 0 tells the kernel "unknown".
    result.pid = 0;
  }
  return result;
}

Result<void> PassthroughFs::setlk(const api::Context& ctx, InodeId inode, api::HandleId handle,
                                  std::uint64_t owner, const api::FileLock& lock,
                                  std::uint32_t lock_flags, bool wait) {
  if (lock.end < lock.start) return fail(std::errc::invalid_argument);
  auto file = find_handle(inode, handle);
  if (!file) return fail(file.error());
  if ((lock_flags & abi::lk_flags::flock) != 0) {
    // flock(2) belongs to the open file description, i.e. to this FUSE handle.
    int operation = 0;
    switch (lock.type) {
      case F_RDLCK: operation = LOCK_SH; break;
      case F_WRLCK: operation = LOCK_EX; break;
      case F_UNLCK: operation = LOCK_UN; break;
      default: return fail(std::errc::invalid_argument);
    }
    const int fd = (*file)->fd();
    auto attempt = [&] { return syscall_void([&] { return ::flock(fd, operation | LOCK_NB); }); };
    return wait ? wait_for_lock(ctx, lock_waiters_, config_.max_lock_waiters, attempt) : attempt();
  }
  if (lock.type != F_RDLCK && lock.type != F_WRLCK && lock.type != F_UNLCK)
    return fail(std::errc::invalid_argument);
  // Unlocking for an owner that never locked has nothing to release.
  if (lock.type == F_UNLCK && Impl::existing_lock_owner_fd(**file, owner) < 0) return {};
  auto fd = Impl::lock_owner_fd(*this, **file, owner);
  if (!fd) return fail(fd.error());
  const struct flock fl = to_host_lock(lock);
  auto attempt = [&] {
    struct flock copy = fl;
    return syscall_void([&] { return ::fcntl(*fd, F_OFD_SETLK, &copy); });
  };
  return wait ? wait_for_lock(ctx, lock_waiters_, config_.max_lock_waiters, attempt) : attempt();
}

// --- directories -------------------------------------------------------------------------------

Result<api::OpenReply> PassthroughFs::opendir(const api::Context& ctx, InodeId inode_id,
                                              std::uint32_t) {
  if (no_opendir_.load(std::memory_order_relaxed)) return fail(std::errc::function_not_supported);
  auto inode = Impl::directory(*this, inode_id);
  if (!inode) return fail(inode.error());
  constexpr int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  UniqueFd fd;
  {
    auto creds = Impl::as_caller(*this, ctx);
    if (!creds) return fail(creds.error());
    auto opened = Impl::reopen(*this, **inode, flags);
    if (!opened) return fail(opened.error());
    fd = std::move(*opened);
  }
  return Impl::make_handle(*this, ctx, inode->shared(), std::move(fd), flags, flags);
}

namespace {

// A host name longer than any directory record may carry (getdents from a FUSE submount, say):
// no sink takes it, so it is skipped rather than ending the listing at it.
bool listable(std::string_view name) noexcept { return name.size() <= api::max_entry_name; }

// Runs `add` for each entry from cookie `offset` on, until it returns false (sink full) or the
// directory ends; `add` gets the raw entry and consumes it by returning true.
template <class Add>
Result<void> list_directory(std::optional<DirStream>& temporary, OpenFile* file, int fd,
                            std::uint64_t offset, Add&& add) {
  std::unique_lock<std::mutex> lock;
  DirStream* stream;
  if (file != nullptr) {
    lock = std::unique_lock(file->dir_mutex);
    if (!file->dir) return fail(std::errc::not_a_directory);
    stream = &*file->dir;
  } else {
    stream = &temporary.emplace(fd);
  }
  if (auto rc = stream->seek(offset); !rc) return rc;
  for (;;) {
    auto entry = stream->peek();
    if (!entry) return fail(entry.error());
    if (!*entry) return {};
    auto added = add(**entry);
    if (!added) return fail(added.error());
    if (!*added) return {};
    stream->consume();
  }
}

}  // namespace

Result<void> PassthroughFs::readdir(const api::Context& ctx, InodeId inode, api::HandleId handle,
                                    std::uint64_t offset, api::DirSink& sink) {
  auto io = Impl::io_file(*this, ctx, inode, handle, O_RDONLY | O_DIRECTORY);
  if (!io) return fail(io.error());
  std::optional<DirStream> temporary;
  return list_directory(temporary, io->file.get(), io->fd(), offset,
                        [&](const RawDirEntry& raw) -> Result<bool> {
                          if (!listable(raw.name)) return true;  // skipped, see listable
                          return sink.add(api::DirEntry{raw.ino, raw.next_offset, raw.type, raw.name});
                        });
}

Result<void> PassthroughFs::readdirplus(const api::Context& ctx, InodeId inode_id,
                                        api::HandleId handle, std::uint64_t offset,
                                        api::DirSink& sink) {
  auto io = Impl::io_file(*this, ctx, inode_id, handle, O_RDONLY | O_DIRECTORY);
  if (!io) return fail(io.error());
  const Inode& dir = io->inode();
  // The entries' attributes are looked up as the caller: a directory it may list but not
  // search (r without x) shows names without attributes, as on the host.
  auto creds = Impl::as_caller(*this, ctx);
  if (!creds) return fail(creds.error());
  std::optional<DirStream> temporary;
  return list_directory(
      temporary, io->file.get(), io->fd(), offset, [&](const RawDirEntry& raw) -> Result<bool> {
        if (!listable(raw.name)) return true;  // skipped, see listable
        const api::DirEntry entry{raw.ino, raw.next_offset, raw.type, raw.name};
        // The name with node id 0: the kernel lists it and takes no reference.
        auto without_attributes = [&] {
          api::Entry attributes;
          attributes.attr.st_ino = raw.ino;
          attributes.attr.st_mode = static_cast<mode_t>(raw.type) << 12;
          return sink.add(entry, attributes);
        };
        // No reference for "." and "..": the kernel never looks them up through readdirplus.
        if (is_dot_or_dotdot(raw.name)) return without_attributes();
        // Longer than NAME_MAX: the host cannot look it up (ENAMETOOLONG), the kernel can still
        // list it.
        auto name = copy_name(raw.name, std::errc::filename_too_long);
        if (!name) return without_attributes();
        if (!sink.fits(raw.name)) return false;
        auto found = Impl::lookup_name(*this, dir, io->fd(), name->c_str());
        // Gone since getdents, or not searchable: the name without attributes.
        if (!found) return without_attributes();
        if (!sink.add(entry, *found)) {
          inodes_.forget(found->inode, 1);
          return false;
        }
        return true;
      });
}

Result<void> PassthroughFs::releasedir(const api::Context&, InodeId inode, api::HandleId handle,
                                       std::uint32_t) {
  if (Impl::unopened(*this, handle)) return {};
  if (!find_handle(inode, handle)) return fail(std::errc::bad_file_descriptor);
  if (!handles_.remove(handle)) return fail(std::errc::bad_file_descriptor);
  return {};
}

Result<void> PassthroughFs::fsyncdir(const api::Context& ctx, InodeId inode, api::HandleId handle,
                                     bool datasync) {
  return fsync(ctx, inode, handle, datasync);
}

// --- whole filesystem, permissions, extended attributes ----------------------------------------

Result<struct statvfs> PassthroughFs::statfs(const api::Context&, InodeId inode_id) {
  auto inode = find_inode(inode_id);
  if (!inode) return fail(inode.error());
  struct statvfs st {};
  if (auto rc = syscall_void([&] { return ::fstatvfs((*inode)->fd(), &st); }); !rc)
    return fail(rc.error());
  return st;
}

Result<void> PassthroughFs::access(const api::Context& ctx, InodeId inode_id, std::uint32_t mask) {
  auto inode = find_inode(inode_id);
  if (!inode) return fail(inode.error());
  auto creds = Impl::as_caller(*this, ctx);
  if (!creds) return fail(creds.error());
  // AT_EACCESS: check with the (switched) fs ids instead of the daemon's real ids.
  return syscall_void([&] {
    return ::syscall(SYS_faccessat2, (*inode)->fd(), "", static_cast<int>(mask),
                     AT_EMPTY_PATH | AT_EACCESS);
  });
}

Result<void> PassthroughFs::syncfs(const api::Context&, InodeId inode_id) {
  auto inode = find_inode(inode_id);
  if (!inode) return fail(inode.error());
  // syncfs(2) refuses O_PATH fds; a special file is synced through the root's file system.
  // (The root keeps its fd; `inode` stays pinned meanwhile.)
  auto target = (*inode)->is_regular() || (*inode)->is_directory() ? inode->shared()
                                                                    : inodes_.get(api::root_inode);
  auto fd = Impl::reopen(*this, *target, ((*target).is_directory() ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
  if (!fd) return fail(fd.error());
  return syscall_void([&] { return ::syncfs(fd->get()); });
}

Result<api::StatxReply> PassthroughFs::statx(const api::Context&, InodeId inode_id,
                                             std::optional<api::HandleId> handle,
                                             std::uint32_t flags, std::uint32_t mask) {
  handle = Impl::opened(*this, handle);
  int fd = -1;
  std::shared_ptr<OpenFile> file;
  PinnedInode inode;
  if (handle) {
    auto found = find_handle(inode_id, *handle);
    if (!found) return fail(found.error());
    file = std::move(*found);
    fd = file->fd();
  } else {
    auto found = find_inode(inode_id);
    if (!found) return fail(found.error());
    inode = std::move(*found);
    fd = inode->fd();
  }
  auto stx = statx_at(fd, "", mask, static_cast<int>(flags) & AT_STATX_SYNC_TYPE);
  if (!stx) return fail(stx.error());
  api::StatxReply reply;
  reply.stx = *stx;
  if (!config_.use_host_ino) reply.stx.stx_ino = static_cast<std::uint64_t>(inode_id);
  reply.timeout = config_.attr_timeout;
  return reply;
}

Result<void> PassthroughFs::setxattr(const api::Context& ctx, InodeId inode_id,
                                     std::string_view name, std::span<const std::byte> value,
                                     std::uint32_t flags, std::uint32_t) {
  auto target = Impl::xattr_to_change(*this, ctx, inode_id, name);
  if (!target) return fail(target.error());
  auto creds = Impl::as_caller(*this, ctx);
  if (!creds) return fail(creds.error());
  return syscall_void([&] {
    return ::setxattr(ProcPath(target->inode->fd()).text, target->name.c_str(), value.data(),
                      value.size(), static_cast<int>(flags));
  });
}

Result<std::size_t> PassthroughFs::getxattr(const api::Context& ctx, InodeId inode_id,
                                            std::string_view name, std::span<std::byte> value) {
  if (!config_.xattr) return fail(std::errc::function_not_supported);
  auto inode = find_inode(inode_id);
  if (!inode) return fail(inode.error());
  auto checked = xattr_name(name);
  if (!checked) return fail(checked.error());
  if ((*inode)->is_symlink()) return fail(std::errc::no_message_available);  // ENODATA
  if (Impl::unprivileged(*this, ctx) && starts_with(name, "trusted."))
    return fail(std::errc::no_message_available);
  auto creds = Impl::as_caller(*this, ctx);
  if (!creds) return fail(creds.error());
  return syscall_result<std::size_t>([&] {
    return ::getxattr(ProcPath((*inode)->fd()).text, checked->c_str(),
                      value.empty() ? nullptr : value.data(), value.size());
  });
}

Result<std::size_t> PassthroughFs::listxattr(const api::Context& ctx, InodeId inode_id,
                                             std::span<char> names) {
  if (!config_.xattr) return fail(std::errc::function_not_supported);
  auto inode = find_inode(inode_id);
  if (!inode) return fail(inode.error());
  if ((*inode)->is_symlink()) return std::size_t{0};
  Result<std::size_t> size = fail(std::errc::invalid_argument);
  {
    auto creds = Impl::as_caller(*this, ctx);
    if (!creds) return fail(creds.error());
    size = syscall_result<std::size_t>([&] {
      return ::listxattr(ProcPath((*inode)->fd()).text, names.empty() ? nullptr : names.data(),
                         names.size());
    });
  }
  if (!size || names.empty() || !Impl::unprivileged(*this, ctx)) return size;
  // Hide trusted.* names from an unprivileged caller, as the host kernel would.
  std::size_t kept = 0;
  for (std::size_t at = 0; at < *size;) {
    const std::string_view one(names.data() + at);
    const std::size_t length = one.size() + 1;
    if (!starts_with(one, "trusted.")) {
      std::memmove(names.data() + kept, names.data() + at, length);
      kept += length;
    }
    at += length;
  }
  return kept;
}

Result<void> PassthroughFs::removexattr(const api::Context& ctx, InodeId inode_id,
                                        std::string_view name) {
  auto target = Impl::xattr_to_change(*this, ctx, inode_id, name);
  if (!target) return fail(target.error());
  auto creds = Impl::as_caller(*this, ctx);
  if (!creds) return fail(creds.error());
  return syscall_void(
      [&] { return ::removexattr(ProcPath(target->inode->fd()).text, target->name.c_str()); });
}

}  // namespace fuse_backend::passthrough
