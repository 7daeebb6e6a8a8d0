// DirtyLog: the dirty-page bitmap a device writes during live migration.
//
// Layer: transport/virtio. One bit per 4 KiB page of guest physical memory (bit n of byte k is
// page 8k+n), in an area shared with the VMM (vhost-user SET_LOG_BASE passes it as an fd). The
// device sets the bit of every page it writes (reply buffers, the used ring) so the VMM copies
// that page again; pages beyond the bitmap are not logged (the VMM sized the log to its memory).
//
// Contract: mark() is thread safe (atomic fetch_or on the shared bytes: the VMM clears bits while
// the device sets them) and noexcept. The bitmap memory is owned by `owner` (for example an
// mmap), which the DirtyLog keeps alive; the DirtyLog is immutable and shared through
// std::shared_ptr by the guest-memory snapshots that use it.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include <fuse_backend/result.hpp>

namespace fuse_backend::transport::virtio {

class DirtyLog {
 public:
  // vhost-user's VHOST_LOG_PAGE.
  static constexpr std::uint64_t page_size = 4096;

  DirtyLog(std::span<std::byte> bitmap, std::shared_ptr<const void> owner = {}) noexcept
      : bitmap_(bitmap), owner_(std::move(owner)) {}

  // Maps `size` bytes of `fd` at `offset` (SET_LOG_BASE). Takes ownership of `fd`.
  static Result<std::shared_ptr<DirtyLog>> map(int fd, std::uint64_t size, std::uint64_t offset) noexcept;

  // Marks every page touched by [gpa, gpa + len). len 0 marks nothing.
  void mark(std::uint64_t gpa, std::uint64_t len) const noexcept {
    if (len == 0) return;
    const std::uint64_t first = gpa / page_size;
    // gpa + len - 1 may wrap only for a range the translation already rejected; clamp anyway.
    const std::uint64_t last_byte = len - 1 > UINT64_MAX - gpa ? UINT64_MAX : gpa + (len - 1);
    const std::uint64_t last = last_byte / page_size;
    for (std::uint64_t page = first; page <= last && page / 8 < bitmap_.size(); ++page) {
      std::atomic_ref<unsigned char> byte(reinterpret_cast<unsigned char&>(bitmap_[page / 8]));
      byte.fetch_or(static_cast<unsigned char>(1U << (page % 8)), std::memory_order_relaxed);
    }
  }

  // Whether the page holding `gpa` is marked (for tests and diagnostics).
  bool is_dirty(std::uint64_t gpa) const noexcept {
    const std::uint64_t page = gpa / page_size;
    if (page / 8 >= bitmap_.size()) return false;
    std::atomic_ref<unsigned char> byte(reinterpret_cast<unsigned char&>(bitmap_[page / 8]));
    return (byte.load(std::memory_order_relaxed) >> (page % 8) & 1U) != 0;
  }

  std::span<std::byte> bitmap() const noexcept { return bitmap_; }

 private:
  std::span<std::byte> bitmap_;
  std::shared_ptr<const void> owner_;
};

}  // namespace fuse_backend::transport::virtio
