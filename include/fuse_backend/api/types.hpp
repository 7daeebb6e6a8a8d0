// Value types a filesystem receives and returns: ids, entries, attributes, open replies, locks.
//
// Layer: api. Plain values, no behaviour beyond conversions; the Server turns them into the
// kernel's wire structures (abi), so a filesystem never fills a wire struct by hand.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <chrono>
#include <cstdint>
#include <string_view>

namespace fuse_backend::api {

// The kernel's node id for an inode (1 is the root) and a filesystem's file/dir handle.
enum class InodeId : std::uint64_t {};
enum class HandleId : std::uint64_t {};
inline constexpr InodeId root_inode{1};

using Timeout = std::chrono::nanoseconds;

// Reply to lookup/mknod/mkdir/symlink/link/create: the kernel takes one lookup reference.
// An `inode` of 0 is a negative entry: cached for `entry_timeout`, no reference taken.
struct Entry {
  InodeId inode{};
  std::uint64_t generation = 0;
  struct stat attr {};
  std::uint32_t attr_flags = 0;  // abi::attr_flags (submount, dax)
  Timeout attr_timeout{};
  Timeout entry_timeout{};
};

struct AttrReply {
  struct stat attr {};
  std::uint32_t attr_flags = 0;
  Timeout timeout{};
};

// Reply to open/opendir (and the open half of create/tmpfile).
struct OpenReply {
  HandleId handle{};
  std::uint32_t open_flags = 0;  // abi::fopen (direct_io, keep_cache, passthrough, ...)
  std::int32_t backing_id = 0;   // with abi::fopen::passthrough: id from BackingFiles::open
};

struct CreateReply {
  Entry entry;
  OpenReply open;
};

// SETATTR: which fields of `attr` are valid is in `valid` (abi::fattr bits); atime/mtime "now"
// arrive as abi::fattr::atime_now / mtime_now with no time value.
struct SetattrIn {
  std::uint32_t valid = 0;
  struct stat attr {};
};

// POSIX lock as the kernel describes it (fuse_file_lock): [start, end], type F_RDLCK/F_WRLCK/F_UNLCK.
struct FileLock {
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  std::uint32_t type = 0;
  std::uint32_t pid = 0;
};

struct StatxReply {
  struct statx stx {};
  std::uint32_t attr_flags = 0;
  Timeout timeout{};
};

struct ForgetOne {
  InodeId inode{};
  std::uint64_t nlookup = 0;
};

// One directory entry for readdir/readdirplus. `offset` is the cookie of the *next* entry: the
// kernel passes it back as the READDIR offset to continue after this one.
struct DirEntry {
  std::uint64_t ino = 0;
  std::uint64_t offset = 0;
  std::uint32_t type = 0;  // DT_* value (mode >> 12)
  std::string_view name;
};

struct IoctlReply {
  std::int32_t result = 0;
  std::size_t out_size = 0;  // bytes of the output buffer filled
};

}  // namespace fuse_backend::api
