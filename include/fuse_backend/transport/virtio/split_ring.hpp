// The split virtqueue's wire layout (virtio 1.2 section 2.7): descriptor, ring sizes and
// alignments, flag and feature bits, and the EVENT_IDX notification formula.
//
// Layer: transport/virtio. Plain constants and a trivially copyable descriptor struct, no
// behaviour beyond need_event(). All ring fields are little-endian; the library supports
// little-endian hosts only (checked below), so fields are used as they are.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace fuse_backend::transport::virtio {

static_assert(std::endian::native == std::endian::little,
              "virtio rings are little-endian; big-endian hosts would need byte swapping");

// Feature bits the transport understands (masks of the 64-bit virtio feature word).
namespace features {
inline constexpr std::uint64_t notify_on_empty = 1ULL << 24;
inline constexpr std::uint64_t indirect_desc = 1ULL << 28;  // VIRTIO_RING_F_INDIRECT_DESC
inline constexpr std::uint64_t event_idx = 1ULL << 29;      // VIRTIO_RING_F_EVENT_IDX
inline constexpr std::uint64_t version_1 = 1ULL << 32;      // VIRTIO_F_VERSION_1
}  // namespace features

// One entry of a descriptor table (struct virtq_desc).
struct Descriptor {
  std::uint64_t addr;   // guest physical address of the buffer
  std::uint32_t len;    // bytes
  std::uint16_t flags;  // descriptor_flags::*
  std::uint16_t next;   // index of the next descriptor when flags has `next`
};
static_assert(sizeof(Descriptor) == 16);

namespace descriptor_flags {
inline constexpr std::uint16_t next = 1;      // the chain continues at `next`
inline constexpr std::uint16_t write = 2;     // device-writable (else device-readable)
inline constexpr std::uint16_t indirect = 4;  // the buffer is a table of descriptors
}  // namespace descriptor_flags

// avail->flags: the driver asks for no interrupts (ignored with EVENT_IDX).
inline constexpr std::uint16_t avail_flag_no_interrupt = 1;
// used->flags: the device asks for no kicks (ignored with EVENT_IDX).
inline constexpr std::uint16_t used_flag_no_notify = 1;

// Ring geometry for a queue of `size` entries (sizes include the EVENT_IDX trailer, which the
// driver always allocates).
namespace ring_layout {
inline constexpr std::uint16_t max_queue_size = 32768;
inline constexpr std::uint64_t descriptor_alignment = 16;
inline constexpr std::uint64_t avail_alignment = 2;
inline constexpr std::uint64_t used_alignment = 4;
inline constexpr std::uint64_t used_element_size = 8;  // struct virtq_used_elem {le32 id; le32 len;}

constexpr std::uint64_t descriptor_table_size(std::uint16_t size) noexcept { return 16ULL * size; }
// flags, idx, ring[size], used_event
constexpr std::uint64_t avail_size(std::uint16_t size) noexcept { return 4 + 2ULL * size + 2; }
// flags, idx, ring[size], avail_event
constexpr std::uint64_t used_size(std::uint16_t size) noexcept { return 4 + used_element_size * size + 2; }

constexpr std::uint64_t avail_idx_offset = 2;
constexpr std::uint64_t avail_ring_offset = 4;
constexpr std::uint64_t used_idx_offset = 2;
constexpr std::uint64_t used_ring_offset = 4;
constexpr std::uint64_t used_event_offset(std::uint16_t size) noexcept { return 4 + 2ULL * size; }
constexpr std::uint64_t avail_event_offset(std::uint16_t size) noexcept {
  return 4 + used_element_size * size;
}
}  // namespace ring_layout

// vring_need_event: the other side asked (with used_event / avail_event) to be notified once the
// entry at index `event` is published; true when that entry is among those published since the
// last notification, i.e. event is in [old_idx, new_idx). All arithmetic is modulo 2^16, so it
// stays right when the indices wrap.
constexpr bool need_event(std::uint16_t event, std::uint16_t new_idx, std::uint16_t old_idx) noexcept {
  return static_cast<std::uint16_t>(new_idx - event - 1) < static_cast<std::uint16_t>(new_idx - old_idx);
}

}  // namespace fuse_backend::transport::virtio
