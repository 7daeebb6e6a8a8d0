// The descriptor-chain walk: turns the head index the driver made available into the lists of
// device-readable and device-writable buffers, translated to host memory, or a precise reason
// why the chain is malformed.
//
// Layer: transport/virtio. The guest is not trusted: every descriptor is copied out of guest
// memory exactly once and only the copy is used (the guest may rewrite the table while we
// walk), every address goes through GuestMemory's checked translation, and the walk is bounded:
//   - a direct chain visits at most `queue size` descriptors, an indirect table at most its own
//     entry count (so a loop ends as chain_too_long);
//   - `next` must stay inside the table it indexes;
//   - readable and writable totals must each fit the 32-bit length a used-ring entry carries;
//   - an indirect descriptor needs VIRTIO_RING_F_INDIRECT_DESC, must not also have `next` (it
//     ends the chain), must describe a whole number of descriptors (1 .. 32768) inside one
//     region, and an indirect table may not contain another indirect descriptor;
//   - device-readable descriptors come first (virtio 2.7.4.2): a readable one after a writable
//     one is rejected.
// The write flag on a descriptor that points to an indirect table is ignored, as the spec asks.
// Zero-length buffers are accepted and contribute no segment. A buffer that crosses from one
// region into an adjacent one becomes one segment per region (see guest_memory.hpp).
//
// Contract: DescriptorChain is reusable storage (clear on every walk, capacity kept, so the
// steady state allocates nothing); one thread at a time. Segments point into guest memory and
// stay valid while the GuestMemory snapshot that translated them is held.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include <fuse_backend/transport/virtio/guest_memory.hpp>
#include <fuse_backend/transport/virtio/split_ring.hpp>

namespace fuse_backend::transport::virtio {

// One contiguous host piece of a descriptor's buffer.
struct Segment {
  std::byte* host;
  std::uint64_t gpa;  // guest address of host[0] (for the dirty log)
  std::uint32_t len;
};

// Why a chain was rejected. A diagnostic for the device's counters and logs, never sent to the
// guest (a malformed chain is returned to the used ring with 0 bytes written).
enum class ChainError : std::uint8_t {
  none,
  head_out_of_range,
  next_out_of_range,
  chain_too_long,
  total_length_overflow,
  address_out_of_range,
  indirect_not_negotiated,
  indirect_with_next,
  indirect_bad_size,
  indirect_table_out_of_range,
  nested_indirect,
  readable_after_writable,
  out_of_memory,
};

std::string_view describe(ChainError error) noexcept;

// What the walk needs from a queue: its descriptor table (size * 16 bytes of host memory), the
// memory to translate buffers with, and whether indirect descriptors were negotiated.
struct DescriptorTable {
  std::span<const std::byte> descriptors;
  const GuestMemory* memory = nullptr;
  bool indirect_allowed = false;
};

class DescriptorChain {
 public:
  DescriptorChain() = default;

  // Walks the chain starting at `head`, replacing this object's contents. On an error the
  // segment lists are unspecified and must not be used.
  ChainError walk(const DescriptorTable& table, std::uint16_t head) noexcept;

  std::uint16_t head() const noexcept { return head_; }
  // The snapshot that translated the segments (the last walk's table.memory): replies are
  // logged in its dirty log, whatever snapshot the queue has moved on to since.
  const GuestMemory* memory() const noexcept { return memory_; }
  std::span<const Segment> readable() const noexcept { return readable_; }
  std::span<const Segment> writable() const noexcept { return writable_; }
  std::uint32_t readable_bytes() const noexcept { return static_cast<std::uint32_t>(readable_bytes_); }
  std::uint32_t writable_bytes() const noexcept { return static_cast<std::uint32_t>(writable_bytes_); }

 private:
  ChainError add_buffer(const GuestMemory& memory, const Descriptor& descriptor) noexcept;

  std::vector<Segment> readable_;
  std::vector<Segment> writable_;
  std::uint64_t readable_bytes_ = 0;
  std::uint64_t writable_bytes_ = 0;
  bool seen_writable_ = false;
  std::uint16_t head_ = 0;
  const GuestMemory* memory_ = nullptr;
};

}  // namespace fuse_backend::transport::virtio
