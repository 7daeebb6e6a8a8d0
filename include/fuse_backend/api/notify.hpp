// Notifications: messages a filesystem sends to the kernel unasked, through a Notifier.
//
// Layer: api. Each function builds one message (out_header with unique 0 and the notify code in
// `error`, then the code's struct and payload) and sends it with a single Notifier::send, so a
// message is never interleaved with a reply. Nothing is allocated. Thread-safe as the Notifier.
// A name must be 1..1024 bytes (the kernel's limit) or the call fails with EINVAL unsent.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/api/notifier.hpp>
#include <fuse_backend/api/types.hpp>
#include <fuse_backend/result.hpp>

namespace fuse_backend::api {

namespace detail {

template <class Wire>
Result<void> send_notification(Notifier& notifier, abi::notify_code code, const Wire& wire,
                               std::span<const std::byte> tail = {}, bool nul_after_tail = false) noexcept {
  static constexpr char nul = '\0';
  const std::size_t length = sizeof(abi::out_header) + sizeof(Wire) + tail.size() + (nul_after_tail ? 1 : 0);
  const abi::out_header header{static_cast<std::uint32_t>(length), static_cast<std::int32_t>(code), 0};
  const std::array<iovec, 4> parts{{
      {const_cast<abi::out_header*>(&header), sizeof(header)},
      {const_cast<Wire*>(&wire), sizeof(Wire)},
      {const_cast<std::byte*>(tail.data()), tail.size()},
      {const_cast<char*>(&nul), nul_after_tail ? 1u : 0u},
  }};
  return notifier.send(parts);
}

inline bool valid_name(std::string_view name) noexcept { return !name.empty() && name.size() <= 1024; }

inline std::span<const std::byte> name_bytes(std::string_view name) noexcept {
  return std::as_bytes(std::span<const char>(name.data(), name.size()));
}

}  // namespace detail

// Drop cached data of `inode` in [offset, offset+length) (length 0: to the end; offset -1: only
// the attributes).
inline Result<void> notify_inval_inode(Notifier& notifier, InodeId inode, std::int64_t offset,
                                       std::int64_t length) noexcept {
  return detail::send_notification(notifier, abi::notify_code::inval_inode,
                                   abi::notify_inval_inode_out{static_cast<std::uint64_t>(inode), offset, length});
}

// Drop the dentry `name` in `parent` (flags: abi::expire_only to only expire it).
inline Result<void> notify_inval_entry(Notifier& notifier, InodeId parent, std::string_view name,
                                       std::uint32_t flags = 0) noexcept {
  if (!detail::valid_name(name)) return fail(std::errc::invalid_argument);
  const abi::notify_inval_entry_out out{static_cast<std::uint64_t>(parent), static_cast<std::uint32_t>(name.size()),
                                        flags};
  return detail::send_notification(notifier, abi::notify_code::inval_entry, out, detail::name_bytes(name), true);
}

// `name` in `parent` (which was `child`) is gone: the kernel drops the dentry and its inode.
inline Result<void> notify_delete(Notifier& notifier, InodeId parent, InodeId child, std::string_view name) noexcept {
  if (!detail::valid_name(name)) return fail(std::errc::invalid_argument);
  const abi::notify_delete_out out{static_cast<std::uint64_t>(parent), static_cast<std::uint64_t>(child),
                                   static_cast<std::uint32_t>(name.size()), 0};
  return detail::send_notification(notifier, abi::notify_code::delete_entry, out, detail::name_bytes(name), true);
}

// Put `data` into the kernel's page cache of `inode` at `offset`.
inline Result<void> notify_store(Notifier& notifier, InodeId inode, std::uint64_t offset,
                                 std::span<const std::byte> data) noexcept {
  const abi::notify_store_out out{static_cast<std::uint64_t>(inode), offset, static_cast<std::uint32_t>(data.size()), 0};
  return detail::send_notification(notifier, abi::notify_code::store, out, data);
}

// Ask for `size` cached bytes of `inode` at `offset`; they arrive as a NOTIFY_REPLY request with
// unique = `notify_unique` (SupportsRetrieveReply).
inline Result<void> notify_retrieve(Notifier& notifier, std::uint64_t notify_unique, InodeId inode,
                                    std::uint64_t offset, std::uint32_t size) noexcept {
  const abi::notify_retrieve_out out{notify_unique, static_cast<std::uint64_t>(inode), offset, size, 0};
  return detail::send_notification(notifier, abi::notify_code::retrieve, out);
}

// Wake up pollers waiting on kernel poll handle `kernel_handle`.
inline Result<void> notify_poll(Notifier& notifier, std::uint64_t kernel_handle) noexcept {
  return detail::send_notification(notifier, abi::notify_code::poll, abi::notify_poll_wakeup_out{kernel_handle});
}

// Ask the kernel to resend every request still waiting for a reply (7.40, FUSE_HAS_RESEND).
inline Result<void> notify_resend(Notifier& notifier) noexcept {
  const abi::out_header header{sizeof(abi::out_header), static_cast<std::int32_t>(abi::notify_code::resend), 0};
  const std::array<iovec, 1> parts{{{const_cast<abi::out_header*>(&header), sizeof(header)}}};
  return notifier.send(parts);
}

}  // namespace fuse_backend::api
