// OpenFile and HandleTable: the files and directories a PassthroughFs has opened for the kernel.
//
// Layer: passthrough. An OPEN/CREATE/OPENDIR reply carries a HandleId; the kernel passes it back
// with every READ, WRITE, READDIR, ... until RELEASE. The table maps it to an OpenFile (the host
// fd, opened for I/O through /proc/self/fd of the inode's O_PATH fd, plus per-open state: the
// directory stream, POSIX lock owners, whether a passthrough backing file is in use). Ids start
// at 1 and are never reused, so a stale or forged handle answers EBADF instead of reaching
// another file; 0 stays free for "no handle" (no_open mode).
//
// Thread safety: HandleTable is thread-safe (shared lock for lookups, which allocate nothing).
// An OpenFile stays alive while a request holds its shared_ptr, even across a concurrent
// RELEASE; its mutable parts say how they are guarded.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <unordered_map>

#include <fuse_backend/api/types.hpp>
#include <fuse_backend/detail/unique_fd.hpp>
#include <fuse_backend/passthrough/dir_stream.hpp>
#include <fuse_backend/passthrough/inode_store.hpp>

namespace fuse_backend::passthrough {

class OpenFile {
 public:
  // `flags` are the host open(2) flags actually used for `fd`.
  OpenFile(std::shared_ptr<Inode> inode, detail::UniqueFd fd, int flags) noexcept
      : inode_(std::move(inode)), fd_(std::move(fd)), flags_(flags) {}

  int fd() const noexcept { return fd_.get(); }
  int flags() const noexcept { return flags_; }
  Inode& inode() const noexcept { return *inode_; }
  const std::shared_ptr<Inode>& inode_ptr() const noexcept { return inode_; }

  // Set once at open when this open uses the inode's passthrough backing file (then RELEASE
  // drops one Inode::backing_users).
  bool uses_backing = false;

  // Directories only: the listing, created at OPENDIR. READDIRs of one handle are serialised
  // by dir_mutex.
  std::mutex dir_mutex;
  std::optional<DirStream> dir;

  // POSIX locks: one host open file description per lock owner, so owners sharing this FUSE
  // handle (a forked child, threads with fcntl locks) conflict with each other like processes
  // do, while OFD locks keep them independent of the daemon's own process. Guarded by
  // locks_mutex; FLUSH with an owner closes its description, dropping its locks. A description
  // is created only for an owner's first lock request (GETLK and unlocks of owners without one
  // use none), at most max_lock_owners per handle: the kernel picks the owner ids, and one fd
  // per id would let it exhaust the daemon's RLIMIT_NOFILE.
  static constexpr std::size_t max_lock_owners = 64;
  std::mutex locks_mutex;
  std::unordered_map<std::uint64_t, detail::UniqueFd> lock_owners;

 private:
  std::shared_ptr<Inode> inode_;
  detail::UniqueFd fd_;
  int flags_;
};

class HandleTable {
 public:
  // Adds `file`; returns its new id (never 0).
  api::HandleId insert(std::shared_ptr<OpenFile> file);
  // The open file, or nullptr for an unknown or released id.
  std::shared_ptr<OpenFile> get(api::HandleId id) const noexcept;
  // Removes and returns the open file (nullptr if unknown); the fd closes when the last request
  // holding it is done.
  std::shared_ptr<OpenFile> remove(api::HandleId id) noexcept;
  // Drops every open file (the kernel is gone: DESTROY).
  void clear() noexcept;
  std::size_t size() const noexcept;

 private:
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::uint64_t, std::shared_ptr<OpenFile>> files_;
  std::uint64_t next_id_ = 1;
};

}  // namespace fuse_backend::passthrough
