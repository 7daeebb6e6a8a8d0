// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//
// fuse_backend/abi/opcode_table.hpp: the one table describing every FUSE opcode: its name, the
// size of the fixed argument struct that follows in_header, and whether the kernel waits for a
// reply. The decoder, the logger and the fuzzer all read it; nothing else may keep its own copy.
//
// Layer: abi. Depends on kernel.hpp only. Everything is constexpr data with static storage:
// thread safe, no allocation, pointers returned by find_opcode() live for the whole program.
//
// fixed_in_size is the size of the struct we define for the newest protocol. Two opcodes arrive
// shorter from older or differently configured kernels and the decoder must allow for it:
//   INIT      compat_init_in_size (16) before 7.36,
//   SETXATTR  compat_setxattr_in_size (8) unless init_flags::setxattr_ext was negotiated.
// Opcodes whose arguments are only names/data (LOOKUP, UNLINK, ...) have fixed_in_size 0.
//
// replies == false means the server must never answer:
//   FORGET, BATCH_FORGET  the kernel does not wait for them;
//   NOTIFY_REPLY          the kernel's data for an earlier NOTIFY_RETRIEVE, sent without
//                         expecting an answer;
//   INTERRUPT             normally unanswered: the interrupted request answers (often EINTR).
//                         The one exception is EAGAIN when the target request is not known
//                         yet, which asks the kernel to queue the interrupt again.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuse_backend/abi/kernel.hpp"

namespace fuse_backend::abi {

struct opcode_info {
  std::string_view name;        // kernel name without FUSE_ ("LOOKUP", "CUSE_INIT")
  std::uint32_t fixed_in_size;  // bytes of the fixed argument struct after in_header, 0 if none
  bool replies;                 // false: never write a reply for this opcode
};

namespace detail {

template <class T>
inline constexpr std::uint32_t in_size = static_cast<std::uint32_t>(sizeof(T));

// Dense, indexed by opcode number 0..53; a default entry (empty name) marks a hole (0, 7, 19).
inline constexpr std::size_t fuse_opcode_limit = 54;

constexpr std::array<opcode_info, fuse_opcode_limit> make_opcode_table() noexcept {
  std::array<opcode_info, fuse_opcode_limit> t{};
  auto set = [&t](opcode op, std::string_view name, std::uint32_t size, bool replies = true) {
    t[static_cast<std::size_t>(op)] = opcode_info{name, size, replies};
  };
  set(opcode::lookup, "LOOKUP", 0);
  set(opcode::forget, "FORGET", in_size<forget_in>, false);
  set(opcode::getattr, "GETATTR", in_size<getattr_in>);
  set(opcode::setattr, "SETATTR", in_size<setattr_in>);
  set(opcode::readlink, "READLINK", 0);
  set(opcode::symlink, "SYMLINK", 0);
  set(opcode::mknod, "MKNOD", in_size<mknod_in>);
  set(opcode::mkdir, "MKDIR", in_size<mkdir_in>);
  set(opcode::unlink, "UNLINK", 0);
  set(opcode::rmdir, "RMDIR", 0);
  set(opcode::rename, "RENAME", in_size<rename_in>);
  set(opcode::link, "LINK", in_size<link_in>);
  set(opcode::open, "OPEN", in_size<open_in>);
  set(opcode::read, "READ", in_size<read_in>);
  set(opcode::write, "WRITE", in_size<write_in>);
  set(opcode::statfs, "STATFS", 0);
  set(opcode::release, "RELEASE", in_size<release_in>);
  set(opcode::fsync, "FSYNC", in_size<fsync_in>);
  set(opcode::setxattr, "SETXATTR", in_size<setxattr_in>);
  set(opcode::getxattr, "GETXATTR", in_size<getxattr_in>);
  set(opcode::listxattr, "LISTXATTR", in_size<getxattr_in>);
  set(opcode::removexattr, "REMOVEXATTR", 0);
  set(opcode::flush, "FLUSH", in_size<flush_in>);
  set(opcode::init, "INIT", in_size<init_in>);
  set(opcode::opendir, "OPENDIR", in_size<open_in>);
  set(opcode::readdir, "READDIR", in_size<read_in>);
  set(opcode::releasedir, "RELEASEDIR", in_size<release_in>);
  set(opcode::fsyncdir, "FSYNCDIR", in_size<fsync_in>);
  set(opcode::getlk, "GETLK", in_size<lk_in>);
  set(opcode::setlk, "SETLK", in_size<lk_in>);
  set(opcode::setlkw, "SETLKW", in_size<lk_in>);
  set(opcode::access, "ACCESS", in_size<access_in>);
  set(opcode::create, "CREATE", in_size<create_in>);
  set(opcode::interrupt, "INTERRUPT", in_size<interrupt_in>, false);
  set(opcode::bmap, "BMAP", in_size<bmap_in>);
  set(opcode::destroy, "DESTROY", 0);
  set(opcode::ioctl, "IOCTL", in_size<ioctl_in>);
  set(opcode::poll, "POLL", in_size<poll_in>);
  set(opcode::notify_reply, "NOTIFY_REPLY", in_size<notify_retrieve_in>, false);
  set(opcode::batch_forget, "BATCH_FORGET", in_size<batch_forget_in>, false);
  set(opcode::fallocate, "FALLOCATE", in_size<fallocate_in>);
  set(opcode::readdirplus, "READDIRPLUS", in_size<read_in>);
  set(opcode::rename2, "RENAME2", in_size<rename2_in>);
  set(opcode::lseek, "LSEEK", in_size<lseek_in>);
  set(opcode::copy_file_range, "COPY_FILE_RANGE", in_size<copy_file_range_in>);
  set(opcode::setupmapping, "SETUPMAPPING", in_size<setupmapping_in>);
  set(opcode::removemapping, "REMOVEMAPPING", in_size<removemapping_in>);
  set(opcode::syncfs, "SYNCFS", in_size<syncfs_in>);
  set(opcode::tmpfile, "TMPFILE", in_size<create_in>);
  set(opcode::statx, "STATX", in_size<statx_in>);
  set(opcode::copy_file_range_64, "COPY_FILE_RANGE_64", in_size<copy_file_range_in>);
  return t;
}

inline constexpr std::array<opcode_info, fuse_opcode_limit> fuse_opcode_table =
    make_opcode_table();

// CUSE_INIT (4096) sits far outside the dense range.
inline constexpr opcode_info cuse_init_info{"CUSE_INIT", in_size<cuse_init_in>, true};

}  // namespace detail

// Every opcode enumerator, in numeric order (for tests, fuzz dictionaries, benchmarks).
inline constexpr std::array<opcode, 52> all_opcodes{
    opcode::lookup,         opcode::forget,       opcode::getattr,
    opcode::setattr,        opcode::readlink,     opcode::symlink,
    opcode::mknod,          opcode::mkdir,        opcode::unlink,
    opcode::rmdir,          opcode::rename,       opcode::link,
    opcode::open,           opcode::read,         opcode::write,
    opcode::statfs,         opcode::release,      opcode::fsync,
    opcode::setxattr,       opcode::getxattr,     opcode::listxattr,
    opcode::removexattr,    opcode::flush,        opcode::init,
    opcode::opendir,        opcode::readdir,      opcode::releasedir,
    opcode::fsyncdir,       opcode::getlk,        opcode::setlk,
    opcode::setlkw,         opcode::access,       opcode::create,
    opcode::interrupt,      opcode::bmap,         opcode::destroy,
    opcode::ioctl,          opcode::poll,         opcode::notify_reply,
    opcode::batch_forget,   opcode::fallocate,    opcode::readdirplus,
    opcode::rename2,        opcode::lseek,        opcode::copy_file_range,
    opcode::setupmapping,   opcode::removemapping, opcode::syncfs,
    opcode::tmpfile,        opcode::statx,        opcode::copy_file_range_64,
    opcode::cuse_init,
};

// The entry for a raw in_header.opcode, or nullptr when the number is not a known opcode.
constexpr const opcode_info* find_opcode(std::uint32_t op) noexcept {
  if (op < detail::fuse_opcode_limit) {
    const opcode_info& info = detail::fuse_opcode_table[op];
    return info.name.empty() ? nullptr : &info;
  }
  if (op == static_cast<std::uint32_t>(opcode::cuse_init)) return &detail::cuse_init_info;
  return nullptr;
}

constexpr const opcode_info* find_opcode(opcode op) noexcept {
  return find_opcode(static_cast<std::uint32_t>(op));
}

// Whether a raw in_header.opcode is a known opcode. Like opcode_name, it never compares pointers,
// so it stays a constant expression under g++'s -fsanitize=null.
constexpr bool is_known_opcode(std::uint32_t op) noexcept {
  if (op < detail::fuse_opcode_limit) return !detail::fuse_opcode_table[op].name.empty();
  return op == static_cast<std::uint32_t>(opcode::cuse_init);
}

// "LOOKUP", ..., or "UNKNOWN" for a number that is no opcode.
constexpr std::string_view opcode_name(std::uint32_t op) noexcept {
  if (!is_known_opcode(op)) return "UNKNOWN";
  return op < detail::fuse_opcode_limit ? detail::fuse_opcode_table[op].name : detail::cuse_init_info.name;
}

constexpr std::string_view opcode_name(opcode op) noexcept {
  return opcode_name(static_cast<std::uint32_t>(op));
}

// The table and the enum agree: every enumerator has an entry and no entry lacks an enumerator.
static_assert([] {
  std::size_t entries = detail::fuse_opcode_table.size() + 1;  // + cuse_init
  for (const opcode_info& info : detail::fuse_opcode_table)
    entries -= info.name.empty() ? std::size_t{1} : std::size_t{0};
  for (opcode op : all_opcodes)
    if (!is_known_opcode(static_cast<std::uint32_t>(op))) return false;
  return entries == all_opcodes.size();
}());
static_assert(detail::fuse_opcode_table[static_cast<std::uint32_t>(opcode::init)].fixed_in_size == sizeof(init_in));
static_assert(!is_known_opcode(7u) && !is_known_opcode(19u));
static_assert(opcode_name(opcode::cuse_init) == "CUSE_INIT");

}  // namespace fuse_backend::abi
