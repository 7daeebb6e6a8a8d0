// PageCacheVersion: whether the kernel's page cache of one file still matches the host file, so
// that an OPEN under cache=auto may keep it (FOPEN_KEEP_CACHE) instead of dropping it.
//
// Layer: passthrough. cache=auto promises close-to-open consistency: an open sees every change
// made on the host before it. Dropping the kernel's cache at every open keeps that promise (it
// is what libfuse's passthrough_ll, virtiofsd and the crate do) but throws a warm cache away on
// each reopen: a program that reads a file again reads it from the daemon again, and one that
// rewrites it makes the kernel allocate every page anew (measured: about half the throughput of
// a kept cache for 1 MiB writes, a fifth for reads). So the cache is kept when the host file's
// version - mtime, ctime and size; nobody can set a ctime back - is the one the cache reflects:
//  - An open that lets the kernel drop the cache records the version the open fd has: whatever
//    the kernel caches afterwards was read at or after that version.
//  - Our own changes (WRITE, FALLOCATE, COPY_FILE_RANGE, a truncating SETATTR) move the version
//    on, but the kernel's cache follows them (it writes through the cache or drops the range
//    itself). Before the first such change the host must still have the recorded version, else
//    someone else changed the file and the record is forgotten; at the next FLUSH (every close)
//    the version after our changes is recorded.
//  - Any other change - a host process, or metadata changed through the mount, which moves the
//    ctime - shows as another version at the next open, which then drops the cache.
// Limits, as for NFS and the kernel's own auto_inval_data: a host write inside the timestamp
// granularity of the host's clock that keeps the size goes unnoticed (Linux >= 6.13 gives
// ext4, xfs, btrfs and tmpfs fine-grained timestamps once a ctime was read, as here), and so
// does a host write made while a FUSE caller was writing the same file, until the kernel's next
// attribute check (it re-reads attributes before a read after its own writes). Changes while
// the file is open stay the business of auto_inval_data, as before.
//
// Thread safety: all members are thread-safe. The calls on the write path cost one atomic load
// once the first change since the record was checked.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <mutex>

namespace fuse_backend::passthrough {

class PageCacheVersion {
 public:
  // At an open of `fd` (regular file, cache=auto): true if the kernel may keep its cache.
  // Otherwise the kernel drops it, and the version of `fd` is recorded.
  bool keep_on_open(int fd) noexcept;
  // The same for a file just created and opened, whose attributes `created` were just read.
  void record_created(const struct stat& created) noexcept;
  // Before WRITE, FALLOCATE, COPY_FILE_RANGE into, or a truncation of the file open as `fd`.
  void before_own_change(int fd) noexcept;
  // At FLUSH of `fd`: records the version our changes left.
  void after_own_changes(int fd) noexcept;

 private:
  struct Version {
    std::int64_t mtime_sec = 0, ctime_sec = 0, size = 0;
    std::int32_t mtime_nsec = 0, ctime_nsec = 0;
    friend bool operator==(const Version&, const Version&) = default;
  };
  enum class State : std::uint8_t {
    unknown,   // nothing recorded: the next open drops the cache
    recorded,  // `version_` is what the cache reflects
    changing,  // as recorded, plus our own changes since
  };
  static Version of(const struct stat& st) noexcept;
  static bool current(int fd, Version& version) noexcept;
  void record(const Version& version) noexcept;

  std::mutex mutex_;
  std::atomic<State> state_{State::unknown};  // written under mutex_
  Version version_;                           // guarded by mutex_
};

}  // namespace fuse_backend::passthrough
