// PageCacheVersion: whether the kernel's page cache of one file still matches the host file, so
// that an OPEN under cache=auto may keep it (FOPEN_KEEP_CACHE) instead of dropping it.
//
// Layer: passthrough. cache=auto promises close-to-open consistency: an open sees every change
// made on the host before it. Dropping the kernel's cache at every open keeps that promise (it
// is what libfuse's passthrough_ll, virtiofsd and the crate do) but throws a warm cache away on
// each reopen: a program that reads a file again reads it from the daemon again, and one that
// rewrites it makes the kernel allocate every page anew (measured: about half the throughput of
// a kept cache for 1 MiB writes, a fifth for reads). So the cache is kept when the host file's
// version - mtime, ctime and size - is the one the cache reflects:
//  - An open that lets the kernel drop the cache records the version the open fd has: whatever
//    the kernel caches afterwards was read at or after that version.
//  - Our own WRITEs move the version on, but the kernel's cache follows them (it writes through
//    it). Before the first WRITE since the record the host must still have the recorded version,
//    else someone else changed the file and the record is forgotten; at the next FLUSH (every
//    close) the version after our WRITEs is recorded - unless a READ was served since the
//    record. The kernel unlocks a written page before its WRITE reaches us, so an invalidation
//    in between (auto_inval_data) lets a concurrent READ refill that page from the host's older
//    bytes, and the cache then lags our WRITEs; the next open must drop it.
//  - Anything else drops the cache at the next open. A host process or a metadata change through
//    the mount moves the ctime, so the version differs. The rest forgets the record: a WRITE that
//    fails or falls short; truncation, FALLOCATE and COPY_FILE_RANGE (rare; a failure half-way
//    can leave the host and the kernel's cache apart); any WRITE under the writeback cache,
//    where the kernel never drops a regular file's cache on an attribute change, so nothing
//    would bound a mistake.
// Limits. As for NFS and the kernel's own auto_inval_data, a host write within the timestamp
// grain of the host's clock that keeps the size is not seen (Linux >= 6.13 gives ext4, xfs,
// btrfs and tmpfs fine-grained timestamps once a ctime was read, as here), nor is one on a host
// filesystem whose fstat answers from an attribute cache (NFS, CIFS). A host write made between
// our first WRITE and the next FLUSH is taken for ours; the kernel then still drops the cache
// when its next attribute check sees the new mtime (before the first read after our WRITEs, or
// once the attribute timeout expired), so the staleness is that of auto_inval_data for a file
// changed while open, bounded by the attribute timeout.
//
// Thread safety: all members are thread-safe. The calls on the read and write paths cost one
// atomic load once the first READ or WRITE since the record was noted.
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
  // Before a WRITE to the file open as `fd`.
  void before_own_write(int fd) noexcept;
  // Before a READ of the file is served.
  void before_read() noexcept;
  // At FLUSH of `fd`: records the version our WRITEs left (forgets it after a READ, above).
  void after_own_writes(int fd) noexcept;
  // After anything else that changed or may have changed the file: the next open drops the cache.
  void forget() noexcept;

 private:
  struct Version {
    std::int64_t mtime_sec = 0, ctime_sec = 0, size = 0;
    std::int32_t mtime_nsec = 0, ctime_nsec = 0;
    friend bool operator==(const Version&, const Version&) = default;
  };
  enum class State : std::uint8_t {
    unknown,   // nothing recorded: the next open drops the cache
    recorded,  // `version_` is what the cache reflects
    changing,  // as recorded, plus our own WRITEs since
  };
  static Version of(const struct stat& st) noexcept;
  static bool current(int fd, Version& version) noexcept;
  void record(const Version& version) noexcept;

  std::mutex mutex_;
  std::atomic<State> state_{State::unknown};  // written under mutex_
  std::atomic<bool> read_since_record_{false};
  Version version_;  // guarded by mutex_
};

}  // namespace fuse_backend::passthrough
