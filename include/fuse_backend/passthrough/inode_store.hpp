// InodeStore: the inodes a PassthroughFs has handed to the kernel, with their lookup counts.
//
// Layer: passthrough. Each Inode owns an O_PATH fd of one host object (opened with O_NOFOLLOW, so
// a symlink is the link itself) - or, in the inode file handles mode (file_handle.hpp), only the
// object's host file handle, reopened as an O_PATH fd while a request pins it - and is keyed twice: by its FUSE node id (what requests name) and
// by its host identity (st_ino, st_dev, mount id), so every path to one host object - hard links,
// a rename, a readdirplus - gives the kernel the same node id. Node ids are never reused (a
// 64-bit counter), so a stale id from the kernel finds nothing instead of another file.
//
// Thread safety: all members are thread-safe. Lookups of known inodes (by id or by key) take a
// shared lock and allocate nothing; inserting and forgetting take the exclusive lock. An Inode
// stays alive while a request holds its shared_ptr even if forget removes it from the store
// meanwhile, so an op never sees its fd closed under it. A handle inode's fd exists while at
// least one PinnedInode holds it (the first pin opens it, the last unpin closes it).
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include <fuse_backend/api/types.hpp>
#include <fuse_backend/detail/unique_fd.hpp>
#include <fuse_backend/passthrough/file_handle.hpp>
#include <fuse_backend/passthrough/page_cache_version.hpp>
#include <fuse_backend/result.hpp>

namespace fuse_backend::passthrough {

// A host object's identity. The mount id tells apart the same (ino, dev) seen through two bind
// mounts, which must not share one FUSE inode (their mount options may differ).
struct InodeKey {
  std::uint64_t ino = 0;
  std::uint64_t dev = 0;
  std::uint64_t mount_id = 0;
  friend bool operator==(const InodeKey&, const InodeKey&) = default;
};

struct InodeKeyHash {
  std::size_t operator()(const InodeKey& key) const noexcept {
    // ino varies most; dev and mount id mostly repeat. A multiply-xor mix is enough here.
    std::uint64_t h = key.ino * 0x9e3779b97f4a7c15ull;
    h ^= (key.dev + 0x632be59bd9b4e019ull) * 0xc2b2ae3d27d4eb4full;
    h ^= key.mount_id * 0x165667b19e3779f9ull;
    return static_cast<std::size_t>(h ^ (h >> 29));
  }
};

class Inode {
 public:
  // Keeps `fd` open for its lifetime; with a `handle`, closes `fd` and reopens the object from
  // the handle whenever it is pinned.
  Inode(api::InodeId id, detail::UniqueFd fd, InodeKey key, mode_t type,
        std::unique_ptr<FileHandle> handle = nullptr) noexcept
      : id_(id), fd_(handle ? detail::UniqueFd() : std::move(fd)), key_(key), type_(type & S_IFMT),
        handle_(std::move(handle)) {}

  api::InodeId id() const noexcept { return id_; }
  // The O_PATH|O_NOFOLLOW fd: for *at() calls and /proc/self/fd reopening only, never for I/O.
  // For a handle inode valid only while pinned (-1 otherwise).
  int fd() const noexcept { return fd_.get(); }
  // True when this inode keeps a file handle instead of an fd.
  bool has_handle() const noexcept { return handle_ != nullptr; }
  // Whether `fd` refers to this inode's host object, given that its key matched: always for an
  // fd inode (its open fd keeps the object, and so its inode number, alive); for a handle inode
  // when `fd`'s file handle is this one.
  bool is_object_of(int fd) const noexcept;
  const InodeKey& key() const noexcept { return key_; }
  // S_IFMT bits; a host object's type never changes, so checking it once is enough.
  mode_t type() const noexcept { return type_; }
  bool is_regular() const noexcept { return S_ISREG(type_); }
  bool is_directory() const noexcept { return S_ISDIR(type_); }
  bool is_symlink() const noexcept { return S_ISLNK(type_); }

  // Passthrough backing file shared by every open of this inode: the kernel refuses a second,
  // different backing file for one FUSE inode (EBUSY), so the first passthrough open registers
  // one and the last release closes it. Guarded by backing_mutex.
  std::mutex backing_mutex;
  std::int32_t backing_id = 0;
  std::uint32_t backing_users = 0;

  // Regular files under cache=auto: whether an open may keep the kernel's page cache.
  PageCacheVersion page_cache;

 private:
  friend class InodeStore;
  api::InodeId id_;
  detail::UniqueFd fd_;
  InodeKey key_;
  mode_t type_;
  friend class PinnedInode;
  // Handle inodes only: fd_ is opened by the first pin and closed by the last unpin, both under
  // pin_mutex_, so a pinned holder reads a stable fd_ without locking.
  std::unique_ptr<FileHandle> handle_;
  std::mutex pin_mutex_;
  std::uint32_t pins_ = 0;
  // Kernel references (lookup count). Incremented under the store's shared lock, decremented
  // under its exclusive lock, so a decrement to 0 and the erase are one step.
  std::atomic<std::uint64_t> lookups_{0};
};

// An inode whose fd() is usable while this object lives (for an fd-keeping inode, a plain
// shared_ptr: pinning costs nothing). Opening a handle inode calls open_by_handle_at, so pin
// before switching to a caller's credentials. Movable, not copyable.
class PinnedInode {
 public:
  PinnedInode() noexcept = default;
  // ESTALE (or the open_by_handle_at errno) when a handle inode cannot be reopened.
  static Result<PinnedInode> pin(std::shared_ptr<Inode> inode, const MountFds& mounts) noexcept {
    if (inode->handle_) {
      std::lock_guard lock(inode->pin_mutex_);
      if (inode->pins_ == 0) {
        auto fd = mounts.open(*inode->handle_, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (!fd) return fail(fd.error());
        inode->fd_ = std::move(*fd);
      }
      ++inode->pins_;
    }
    return PinnedInode(std::move(inode));
  }
  PinnedInode(PinnedInode&& other) noexcept : inode_(std::move(other.inode_)) {}
  PinnedInode& operator=(PinnedInode&& other) noexcept {
    if (this != &other) {
      unpin();
      inode_ = std::move(other.inode_);
    }
    return *this;
  }
  ~PinnedInode() { unpin(); }

  Inode& operator*() const noexcept { return *inode_; }
  Inode* operator->() const noexcept { return inode_.get(); }
  const std::shared_ptr<Inode>& shared() const noexcept { return inode_; }

 private:
  explicit PinnedInode(std::shared_ptr<Inode> inode) noexcept : inode_(std::move(inode)) {}
  void unpin() noexcept {
    if (!inode_ || !inode_->handle_) return;
    std::lock_guard lock(inode_->pin_mutex_);
    if (--inode_->pins_ == 0) inode_->fd_.reset();
  }
  std::shared_ptr<Inode> inode_;
};

class InodeStore {
 public:
  // `root` is never forgotten and never counted.
  explicit InodeStore(std::shared_ptr<Inode> root);

  // The inode with this node id, or nullptr when the id is unknown or forgotten.
  std::shared_ptr<Inode> get(api::InodeId id) const noexcept;
  // The known inode with this identity, with one more lookup reference; nullptr if unknown, or
  // if it keeps a file handle: such an inode holds no host object, whose inode number the host
  // may have given to a new object since, so it is only taken given an fd of the object (below).
  // Allocates nothing.
  std::shared_ptr<Inode> reference(const InodeKey& key) noexcept;
  // The same for the object `object_fd` refers to, handle inodes included when their handle is
  // that object's (one name_to_handle_at). Allocates nothing.
  std::shared_ptr<Inode> reference(const InodeKey& key, int object_fd) noexcept;
  // reference(key, fd) if known; otherwise a new inode owning `fd` (or, given one, `handle`:
  // see Inode), with one reference. `fd` is closed when an existing inode is returned. A handle
  // inode of another object with the same key (gone, its inode number reused) is no longer
  // found by its key; it answers by its id until the kernel forgets it. Throws std::bad_alloc
  // only when memory runs out.
  std::shared_ptr<Inode> reference_or_insert(const InodeKey& key, detail::UniqueFd fd, mode_t type,
                                             std::unique_ptr<FileHandle> handle = nullptr);
  // Takes one more reference on an inode the caller already holds (link, "." lookups). Root too
  // (a no-op for it).
  void reference(Inode& inode) noexcept;
  // Drops `count` references; the inode leaves the store at 0. Unknown ids, the root and
  // counts larger than held are tolerated (a hostile or confused kernel must not crash us).
  void forget(api::InodeId id, std::uint64_t count) noexcept;

  // Forgets every inode but the root (the kernel is gone: DESTROY).
  void clear() noexcept;

  // Inodes in the store, root included (for tests and statistics).
  std::size_t size() const noexcept;
  // The lookup count of `id` (0 for unknown ids), for tests.
  std::uint64_t lookups(api::InodeId id) const noexcept;

 private:
  // `inode` (found under the lock held) with one more reference.
  std::shared_ptr<Inode> referenced(Inode& inode) const noexcept;

  mutable std::shared_mutex mutex_;
  std::unordered_map<std::uint64_t, std::shared_ptr<Inode>> by_id_;
  std::unordered_map<InodeKey, Inode*, InodeKeyHash> by_key_;
  std::shared_ptr<Inode> root_;
  std::uint64_t next_id_ = 2;  // 1 is the root
};

}  // namespace fuse_backend::passthrough
