// Virtqueue: the device side of one split virtqueue in guest memory.
//
// Layer: transport/virtio. Holds the queue's configuration (size, ring addresses, negotiated
// features, the index to resume from) and its running state (next available index to consume,
// next used index to fill, the used index last signalled), and implements the ring protocol:
//   pop()                 the head of the next available chain. avail->idx is loaded with
//                         acquire semantics, so the ring entry and the descriptors it names are
//                         visible; with EVENT_IDX, an empty ring publishes avail_event and
//                         checks again after a full fence, so a kick racing with going idle is
//                         never lost.
//   push_used()           writes the used element, then stores used->idx with release
//                         semantics (the guest sees the element and every byte written into the
//                         chain's buffers before it sees the index).
//   needs_notification()  after a full fence (our used->idx store before the guest's
//                         used_event/flags load): EVENT_IDX's vring_need_event, or the
//                         NO_INTERRUPT flag; false when nothing was pushed since the last call.
// Ring indices live in guest memory and are accessed through std::atomic_ref; descriptors are
// read once by the chain walk (descriptor_chain.hpp). The device never sets used->flags
// NO_NOTIFY: without EVENT_IDX the guest always kicks.
//
// Ring addresses are given either as guest physical addresses or as the VMM's virtual addresses
// (vhost-user SET_VRING_ADDR), and are re-translated whenever the GuestMemory snapshot changes
// (set_memory), so a memory-table update never leaves stale ring pointers behind.
//
// Contract: configure (set_*, start, stop) while no chain of the queue is in flight; one thread
// at a time pops (and calls set_memory). Whoever drives the device serialises these (the
// vhost-user back-end stops a ring's worker before changing the ring, and the device drains
// its pool in stop_queue; see VirtioDevice). Completion is thread safe: push_used and
// needs_notification take the queue's used-ring lock (which set_memory and stop also take, as
// they move the ring pointers), so chains popped in order may be completed out of order from
// several threads; a split virtqueue allows that. All processing calls are noexcept.
// A guest that breaks the ring protocol (avail->idx more than `size` ahead) marks the queue
// broken: pop() fails from then on until it is started again.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>

#include <fuse_backend/result.hpp>
#include <fuse_backend/transport/virtio/descriptor_chain.hpp>
#include <fuse_backend/transport/virtio/guest_memory.hpp>
#include <fuse_backend/transport/virtio/split_ring.hpp>

namespace fuse_backend::transport::virtio {

// How RingAddresses are expressed.
enum class AddressKind : std::uint8_t {
  guest_physical,  // what a VMM's own virtio transport (PCI/MMIO registers) gives
  user_virtual,    // the VMM's virtual addresses, as vhost-user SET_VRING_ADDR sends them
};

struct RingAddresses {
  std::uint64_t descriptors = 0;
  std::uint64_t avail = 0;
  std::uint64_t used = 0;
  AddressKind kind = AddressKind::guest_physical;
  // Guest physical address of the used ring, for the dirty log (vhost-user log_guest_addr with
  // VHOST_VRING_F_LOG). Unset: with guest_physical addresses `used` is taken; with user_virtual
  // ones, used-ring writes are not logged.
  std::optional<std::uint64_t> used_log_addr;
};

class Virtqueue {
 public:
  Virtqueue() noexcept = default;

  // --- configuration: only while stopped -----------------------------------------------------

  // Number of entries: a power of two in 1..32768 (EINVAL otherwise). vhost-user sends a u32.
  Result<void> set_size(std::uint32_t size) noexcept;
  void set_addresses(const RingAddresses& addresses) noexcept { addresses_ = addresses; }
  // The negotiated virtio features; only indirect_desc and event_idx matter here.
  void set_features(std::uint64_t negotiated) noexcept { features_ = negotiated; }
  // SET_VRING_BASE: the avail index to resume from (also the used index: a stopped queue has
  // completed everything it consumed).
  void set_base(std::uint16_t next_avail) noexcept {
    next_avail_ = next_avail;
    used_idx_ = next_avail;
  }
  // GET_VRING_BASE: the next avail index this queue would consume (stop() it first).
  std::uint16_t base() const noexcept { return next_avail_; }

  // Translates and checks the rings (alignment, inside one region each) against `memory` and
  // starts processing. EINVAL without a size, EFAULT/EINVAL for bad rings.
  Result<void> start(std::shared_ptr<const GuestMemory> memory) noexcept;
  // Stops processing; base() is where a later start resumes.
  void stop() noexcept;
  bool started() const noexcept { return started_; }
  bool broken() const noexcept { return broken_; }

  // --- processing: one thread at a time, while started ---------------------------------------

  // Switches to another memory snapshot (no-op if it is the current one), re-translating the
  // rings; on failure the queue stops and the error is returned.
  Result<void> set_memory(std::shared_ptr<const GuestMemory> memory) noexcept;
  // The head of the next available chain, nullopt when none, EIO once the queue is broken.
  Result<std::optional<std::uint16_t>> pop() noexcept;
  // Returns chain `head` to the driver with `len` bytes written into its writable buffers.
  // Thread safe (the used-ring lock).
  Result<void> push_used(std::uint16_t head, std::uint32_t len) noexcept;
  // Whether the driver wants an interrupt for what was pushed since the last call. Thread safe
  // (the used-ring lock); at most one of several concurrent callers gets true for a push.
  bool needs_notification() noexcept;

  // What the chain walk needs.
  DescriptorTable descriptor_table() const noexcept {
    return {descriptors_, memory_.get(), (features_ & features::indirect_desc) != 0};
  }
  const GuestMemory& memory() const noexcept { return *memory_; }
  std::uint16_t size() const noexcept { return size_; }
  std::uint16_t used_index() const noexcept {
    std::lock_guard guard(used_lock_);
    return used_idx_;
  }

 private:
  Result<void> map_rings(const GuestMemory& memory) noexcept;
  bool event_idx() const noexcept { return (features_ & features::event_idx) != 0; }
  void log_used(std::uint64_t offset, std::uint64_t len) const noexcept;

  RingAddresses addresses_;
  std::uint64_t features_ = 0;
  std::uint16_t size_ = 0;
  std::uint16_t next_avail_ = 0;
  std::uint16_t used_idx_ = 0;
  std::uint16_t signalled_used_ = 0;
  bool signalled_used_valid_ = false;
  bool pushed_since_signal_ = false;
  bool started_ = false;
  bool broken_ = false;

  std::shared_ptr<const GuestMemory> memory_;
  std::span<const std::byte> descriptors_;
  std::byte* avail_ = nullptr;
  std::byte* used_ = nullptr;
  std::optional<std::uint64_t> used_log_addr_;
  // Serialises completions (used_idx_, the signalled_* state, writes to the used ring) with one
  // another and with the ring pointers/snapshot changing under them (set_memory, stop).
  mutable std::mutex used_lock_;
};

}  // namespace fuse_backend::transport::virtio
