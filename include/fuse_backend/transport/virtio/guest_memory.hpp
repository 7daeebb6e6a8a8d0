// Guest memory: the regions of a virtual machine's RAM that a virtio device may touch, and the
// bounds-checked translation of guest addresses to host pointers.
//
// Layer: transport/virtio. Every address a guest hands the device (descriptor buffers, rings,
// indirect tables) is translated here and nowhere else, with checked arithmetic: a translated
// range lies entirely inside one region and never wraps around the 64-bit address space.
//
// - GuestRegion: one contiguous range of guest physical addresses (gpa) mapped at `host`; for
//   vhost-user it also carries the VMM's own virtual address of the range (`user_addr`: QEMU
//   sends ring addresses as its virtual addresses) and the fd + offset it was mapped from.
// - GuestMemory: an immutable set of non-overlapping regions (plus an optional dirty-page log).
//   Immutable so it can be shared: changing memory (SET_MEM_TABLE, ADD_MEM_REG, REM_MEM_REG,
//   SET_LOG_BASE) builds a new GuestMemory from the old one.
// - SharedGuestMemory: the current GuestMemory. The control thread store()s a new snapshot; a
//   queue thread load()s one when it starts processing a queue and keeps using it until it is
//   done, so a region removed meanwhile stays mapped (its `owner` is released with the last
//   snapshot that holds it) and a queue thread never sees a half-updated table.
//
// Buffers spanning regions: translate() answers only ranges inside ONE region (EFAULT
// otherwise): rings, indirect tables and anything the device needs contiguous. Descriptor
// buffers may legitimately cross from one region into an adjacent one (memory hotplug places
// DIMMs back to back); the chain walk uses translate_prefix() and splits such a buffer into one
// segment per region.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include <fuse_backend/result.hpp>
#include <fuse_backend/transport/virtio/dirty_log.hpp>

namespace fuse_backend::transport::virtio {

struct GuestRegion {
  std::uint64_t guest_addr = 0;  // guest physical address of the first byte
  std::uint64_t size = 0;        // bytes, > 0
  std::byte* host = nullptr;     // where the first byte is mapped in this process
  // The VMM's virtual address of the first byte (vhost-user userspace_addr), if known.
  std::optional<std::uint64_t> user_addr;
  // The fd the region was mapped from and the region's offset in it (vhost-user mmap_offset),
  // -1 when the VMM passed plain memory. Not owned here: `owner` keeps it open.
  int fd = -1;
  std::uint64_t mmap_offset = 0;
  // Keeps the mapping (and fd) alive as long as any snapshot refers to the region; empty when
  // the embedder owns the memory for longer than the device lives.
  std::shared_ptr<const void> owner;

  // True when [addr, addr + len) lies inside [base, base + size) (no wrap-around, len may be 0
  // when addr is inside or at the end).
  static constexpr bool contains(std::uint64_t base, std::uint64_t size, std::uint64_t addr,
                                 std::uint64_t len) noexcept {
    return addr >= base && addr - base <= size && len <= size - (addr - base);
  }
};

// Maps `size` bytes of `fd` starting at `mmap_offset` read-write and shared, and returns the
// region (owner unmaps and closes). Takes ownership of `fd`, also on failure. Used for the
// regions vhost-user passes with SET_MEM_TABLE / ADD_MEM_REG.
Result<GuestRegion> map_region(int fd, std::uint64_t guest_addr, std::uint64_t size,
                               std::uint64_t user_addr, std::uint64_t mmap_offset) noexcept;

class GuestMemory {
 public:
  GuestMemory() noexcept = default;

  // A memory from `regions`: EINVAL if a region is empty, has no host mapping, wraps around the
  // address space, or overlaps another one (in guest or in user addresses).
  static Result<GuestMemory> create(std::vector<GuestRegion> regions) noexcept;

  // A copy with `region` added (ADD_MEM_REG), with the same checks as create().
  Result<GuestMemory> with_region(GuestRegion region) const noexcept;
  // A copy without the region starting at `guest_addr` with `size` bytes (REM_MEM_REG); ENOENT
  // when there is none.
  Result<GuestMemory> without_region(std::uint64_t guest_addr, std::uint64_t size) const noexcept;
  // A copy that logs writes into `log` (nullptr: logging off, the default).
  GuestMemory with_dirty_log(std::shared_ptr<const DirtyLog> log) const noexcept;

  // The host bytes of [gpa, gpa + len), which must lie in one region; EFAULT otherwise.
  Result<std::span<std::byte>> translate(std::uint64_t gpa, std::uint64_t len) const noexcept {
    const GuestRegion* region = find(gpa);
    if (region == nullptr || !GuestRegion::contains(region->guest_addr, region->size, gpa, len))
      return fail(std::errc::bad_address);
    return std::span<std::byte>(region->host + (gpa - region->guest_addr), len);
  }

  // The longest prefix of [gpa, gpa + len) that lies in one region (at least one byte when
  // len > 0); EFAULT when gpa is unmapped. Calling it again for the rest splits a buffer at
  // region boundaries.
  Result<std::span<std::byte>> translate_prefix(std::uint64_t gpa, std::uint64_t len) const noexcept {
    const GuestRegion* region = find(gpa);
    if (region == nullptr) return fail(std::errc::bad_address);
    const std::uint64_t offset = gpa - region->guest_addr;
    const std::uint64_t in_region = region->size - offset;
    return std::span<std::byte>(region->host + offset, len < in_region ? len : in_region);
  }

  // The host bytes of [uva, uva + len) given as the VMM's virtual addresses (vhost-user
  // SET_VRING_ADDR); in one region; EFAULT otherwise.
  Result<std::span<std::byte>> translate_user(std::uint64_t uva, std::uint64_t len) const noexcept;
  // The guest physical address of the VMM virtual address `uva`; EFAULT when unmapped.
  Result<std::uint64_t> user_to_guest(std::uint64_t uva) const noexcept;

  // Records a device write to [gpa, gpa + len) in the dirty log, if logging is on.
  void log_write(std::uint64_t gpa, std::uint64_t len) const noexcept {
    if (log_ != nullptr) log_->mark(gpa, len);
  }
  bool logging() const noexcept { return log_ != nullptr; }

  // The regions, sorted by guest address.
  std::span<const GuestRegion> regions() const noexcept { return regions_; }

 private:
  explicit GuestMemory(std::vector<GuestRegion> regions, std::shared_ptr<const DirtyLog> log) noexcept
      : regions_(std::move(regions)), log_(std::move(log)) {}

  // The region containing `gpa`, or nullptr. Regions are few (QEMU allows 32 slots) and sorted:
  // a binary search.
  const GuestRegion* find(std::uint64_t gpa) const noexcept {
    std::size_t lo = 0;
    std::size_t hi = regions_.size();
    while (lo < hi) {
      const std::size_t mid = lo + (hi - lo) / 2;
      const GuestRegion& region = regions_[mid];
      if (gpa < region.guest_addr)
        hi = mid;
      else if (gpa - region.guest_addr >= region.size)
        lo = mid + 1;
      else
        return &region;
    }
    return nullptr;
  }

  std::vector<GuestRegion> regions_;
  std::shared_ptr<const DirtyLog> log_;
};

// The current GuestMemory, replaced as a whole by the control thread and read by queue threads.
// load() and store() are thread safe; a loaded snapshot stays valid (and mapped) while held.
class SharedGuestMemory {
 public:
  SharedGuestMemory() : current_(std::make_shared<const GuestMemory>()) {}

  std::shared_ptr<const GuestMemory> load() const noexcept {
    std::lock_guard lock(mutex_);
    return current_;
  }
  void store(GuestMemory memory) {
    auto next = std::make_shared<const GuestMemory>(std::move(memory));
    std::lock_guard lock(mutex_);
    current_.swap(next);
    // `lock` is released before `next` (now the old snapshot): unmapping happens outside the
    // lock, and only once no queue thread holds the old snapshot any more.
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const GuestMemory> current_;
};

}  // namespace fuse_backend::transport::virtio
