// Conversions from the api's value types to the kernel's reply structs.
//
// Layer: api/detail. Pure functions; the only place where a struct stat, statvfs, statx or a
// timeout becomes wire bytes, so every transport and every filesystem encode them identically.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>

#include <chrono>
#include <cstdint>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/api/types.hpp>

namespace fuse_backend::api::detail {

struct WireTimeout {
  std::uint64_t seconds;
  std::uint32_t nanoseconds;
};

constexpr WireTimeout to_wire(Timeout timeout) noexcept {
  if (timeout.count() <= 0) return {0, 0};
  const auto count = static_cast<std::uint64_t>(timeout.count());
  return {count / 1'000'000'000u, static_cast<std::uint32_t>(count % 1'000'000'000u)};
}

inline abi::attr to_wire(const struct stat& st, std::uint32_t attr_flags) noexcept {
  abi::attr out{};
  out.ino = st.st_ino;
  out.size = static_cast<std::uint64_t>(st.st_size);
  out.blocks = static_cast<std::uint64_t>(st.st_blocks);
  out.atime = static_cast<std::uint64_t>(st.st_atim.tv_sec);
  out.mtime = static_cast<std::uint64_t>(st.st_mtim.tv_sec);
  out.ctime = static_cast<std::uint64_t>(st.st_ctim.tv_sec);
  out.atimensec = static_cast<std::uint32_t>(st.st_atim.tv_nsec);
  out.mtimensec = static_cast<std::uint32_t>(st.st_mtim.tv_nsec);
  out.ctimensec = static_cast<std::uint32_t>(st.st_ctim.tv_nsec);
  out.mode = st.st_mode;
  out.nlink = static_cast<std::uint32_t>(st.st_nlink);
  out.uid = st.st_uid;
  out.gid = st.st_gid;
  // The wire rdev is the kernel's new_encode_dev() of a 32-bit dev_t.
  out.rdev = static_cast<std::uint32_t>((minor(st.st_rdev) & 0xff) | (major(st.st_rdev) << 8) |
                                        ((minor(st.st_rdev) & ~0xffu) << 12));
  out.blksize = static_cast<std::uint32_t>(st.st_blksize);
  out.flags = attr_flags;
  return out;
}

inline abi::entry_out to_wire(const Entry& entry) noexcept {
  abi::entry_out out{};
  out.nodeid = static_cast<std::uint64_t>(entry.inode);
  out.generation = entry.generation;
  const auto entry_valid = to_wire(entry.entry_timeout);
  const auto attr_valid = to_wire(entry.attr_timeout);
  out.entry_valid = entry_valid.seconds;
  out.entry_valid_nsec = entry_valid.nanoseconds;
  out.attr_valid = attr_valid.seconds;
  out.attr_valid_nsec = attr_valid.nanoseconds;
  out.attr = to_wire(entry.attr, entry.attr_flags);
  return out;
}

inline abi::attr_out to_wire(const AttrReply& reply) noexcept {
  abi::attr_out out{};
  const auto valid = to_wire(reply.timeout);
  out.attr_valid = valid.seconds;
  out.attr_valid_nsec = valid.nanoseconds;
  out.attr = to_wire(reply.attr, reply.attr_flags);
  return out;
}

inline abi::open_out to_wire(const OpenReply& reply) noexcept {
  abi::open_out out{};
  out.fh = static_cast<std::uint64_t>(reply.handle);
  out.open_flags = reply.open_flags;
  out.backing_id = reply.backing_id;
  return out;
}

inline abi::kstatfs to_wire(const struct statvfs& st) noexcept {
  abi::kstatfs out{};
  out.blocks = st.f_blocks;
  out.bfree = st.f_bfree;
  out.bavail = st.f_bavail;
  out.files = st.f_files;
  out.ffree = st.f_ffree;
  out.bsize = static_cast<std::uint32_t>(st.f_bsize);
  out.namelen = static_cast<std::uint32_t>(st.f_namemax);
  out.frsize = static_cast<std::uint32_t>(st.f_frsize);
  return out;
}

inline abi::sx_time to_wire(const struct statx_timestamp& time) noexcept {
  return {time.tv_sec, time.tv_nsec, 0};
}

inline abi::statx_out to_wire(const StatxReply& reply) noexcept {
  abi::statx_out out{};
  const auto valid = to_wire(reply.timeout);
  out.attr_valid = valid.seconds;
  out.attr_valid_nsec = valid.nanoseconds;
  out.flags = reply.attr_flags;
  const struct statx& in = reply.stx;
  abi::statx& st = out.stat;
  st.mask = in.stx_mask;
  st.blksize = in.stx_blksize;
  st.attributes = in.stx_attributes;
  st.nlink = in.stx_nlink;
  st.uid = in.stx_uid;
  st.gid = in.stx_gid;
  st.mode = in.stx_mode;
  st.ino = in.stx_ino;
  st.size = in.stx_size;
  st.blocks = in.stx_blocks;
  st.attributes_mask = in.stx_attributes_mask;
  st.atime = to_wire(in.stx_atime);
  st.btime = to_wire(in.stx_btime);
  st.ctime = to_wire(in.stx_ctime);
  st.mtime = to_wire(in.stx_mtime);
  st.rdev_major = in.stx_rdev_major;
  st.rdev_minor = in.stx_rdev_minor;
  st.dev_major = in.stx_dev_major;
  st.dev_minor = in.stx_dev_minor;
  return out;
}

inline abi::file_lock to_wire(const FileLock& lock) noexcept {
  return {lock.start, lock.end, lock.type, lock.pid};
}
inline FileLock from_wire(const abi::file_lock& lock) noexcept {
  return {lock.start, lock.end, lock.type, lock.pid};
}

// SETATTR's wire struct as the api's SetattrIn (only the fields `valid` names are meaningful).
inline SetattrIn from_wire(const abi::setattr_in& in) noexcept {
  SetattrIn out{};
  out.valid = in.valid;
  out.attr.st_mode = in.mode;
  out.attr.st_uid = in.uid;
  out.attr.st_gid = in.gid;
  out.attr.st_size = static_cast<off_t>(in.size);
  out.attr.st_atim.tv_sec = static_cast<time_t>(in.atime);
  out.attr.st_atim.tv_nsec = in.atimensec;
  out.attr.st_mtim.tv_sec = static_cast<time_t>(in.mtime);
  out.attr.st_mtim.tv_nsec = in.mtimensec;
  out.attr.st_ctim.tv_sec = static_cast<time_t>(in.ctime);
  out.attr.st_ctim.tv_nsec = in.ctimensec;
  return out;
}

}  // namespace fuse_backend::api::detail
