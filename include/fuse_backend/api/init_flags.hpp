// Which INIT capabilities a filesystem gets: the rules shared by the Server, AnyFilesystem and
// any filesystem that writes its own init().
//
// Layer: api. Three groups of abi::init_flags:
// - always on: what the Server implements for every filesystem (async reads, max_pages, ...);
// - op backed: on when the filesystem has the op behind them (readdirplus -> DO_READDIRPLUS,
//   getlk+setlk -> POSIX_LOCKS, setlk -> FLOCK_LOCKS, ioctl -> HAS_IOCTL_DIR, setxattr ->
//   SETXATTR_EXT);
// - opt in: they change semantics (writeback cache, passthrough, no_open, killpriv, ...), so
//   only a filesystem's init() can turn them on.
// Without init(), a filesystem gets default_init_flags<Fs>() ∩ what the kernel offers. An init()
// that wants one opt-in returns e.g. `offered & (default_init_flags<MyFs>() | passthrough)`.
// Pure constexpr functions.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <cstdint>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/api/filesystem.hpp>

namespace fuse_backend::api {

inline constexpr std::uint64_t always_on_init_flags =
    abi::init_flags::async_read | abi::init_flags::atomic_o_trunc | abi::init_flags::big_writes |
    abi::init_flags::auto_inval_data | abi::init_flags::async_dio | abi::init_flags::parallel_dirops |
    abi::init_flags::abort_error | abi::init_flags::max_pages | abi::init_flags::cache_symlinks |
    abi::init_flags::init_ext | abi::init_flags::has_expire_only |
    abi::init_flags::direct_io_allow_mmap | abi::init_flags::create_supp_group;

inline constexpr std::uint64_t opt_in_init_flags =
    abi::init_flags::writeback_cache | abi::init_flags::no_open_support |
    abi::init_flags::no_opendir_support | abi::init_flags::handle_killpriv |
    abi::init_flags::handle_killpriv_v2 | abi::init_flags::posix_acl | abi::init_flags::dont_mask |
    abi::init_flags::explicit_inval_data | abi::init_flags::submounts |
    abi::init_flags::export_support | abi::init_flags::no_export_support |
    abi::init_flags::passthrough | abi::init_flags::has_resend;

// One bit per opcode (every filesystem opcode is below 64; CUSE_INIT is not a filesystem op).
constexpr std::uint64_t opcode_bit(abi::opcode op) noexcept {
  const auto value = static_cast<std::uint32_t>(op);
  return value < 64 ? std::uint64_t{1} << value : 0;
}

// The op-backed flags, given the set of opcodes (opcode_bit) a filesystem serves.
constexpr std::uint64_t op_backed_init_flags(std::uint64_t opcodes) noexcept {
  namespace flags = abi::init_flags;
  const auto has = [opcodes](abi::opcode op) { return (opcodes & opcode_bit(op)) != 0; };
  std::uint64_t backed = 0;
  if (has(abi::opcode::getlk) && has(abi::opcode::setlk)) backed |= flags::posix_locks;
  if (has(abi::opcode::setlk)) backed |= flags::flock_locks;
  if (has(abi::opcode::ioctl)) backed |= flags::has_ioctl_dir;
  if (has(abi::opcode::readdirplus)) backed |= flags::do_readdirplus | flags::readdirplus_auto;
  if (has(abi::opcode::setxattr)) backed |= flags::setxattr_ext;
  return backed;
}

// The same, from the ops Fs has at compile time.
template <class Fs>
constexpr std::uint64_t op_backed_init_flags() noexcept {
  std::uint64_t opcodes = 0;
  if constexpr (SupportsGetlk<Fs>) opcodes |= opcode_bit(abi::opcode::getlk);
  if constexpr (SupportsSetlk<Fs>) opcodes |= opcode_bit(abi::opcode::setlk);
  if constexpr (SupportsIoctl<Fs>) opcodes |= opcode_bit(abi::opcode::ioctl);
  if constexpr (SupportsReaddirplus<Fs>) opcodes |= opcode_bit(abi::opcode::readdirplus);
  if constexpr (SupportsSetxattr<Fs>) opcodes |= opcode_bit(abi::opcode::setxattr);
  return op_backed_init_flags(opcodes);
}

// What Fs gets without an init() of its own.
template <class Fs>
constexpr std::uint64_t default_init_flags() noexcept {
  return always_on_init_flags | op_backed_init_flags<Fs>();
}

// Everything the Server may offer Fs's init().
template <class Fs>
constexpr std::uint64_t possible_init_flags() noexcept {
  return default_init_flags<Fs>() | opt_in_init_flags;
}

}  // namespace fuse_backend::api
