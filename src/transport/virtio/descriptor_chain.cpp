// The descriptor-chain walk (see descriptor_chain.hpp for the rules it enforces).
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/transport/virtio/descriptor_chain.hpp>

#include <atomic>
#include <cstring>

namespace fuse_backend::transport::virtio {
namespace {

// Reads descriptor `index` of `table` once. The compiler barrier keeps the compiler from
// re-loading a field from guest memory later instead of using the copy (the guest may change
// the table at any time; everything checked must be what is used).
Descriptor read_descriptor(std::span<const std::byte> table, std::size_t index) noexcept {
  Descriptor descriptor;
  std::memcpy(&descriptor, table.data() + index * sizeof(Descriptor), sizeof(Descriptor));
  std::atomic_signal_fence(std::memory_order_seq_cst);
  return descriptor;
}

}  // namespace

std::string_view describe(ChainError error) noexcept {
  switch (error) {
    case ChainError::none: return "no error";
    case ChainError::head_out_of_range: return "head descriptor index beyond the queue size";
    case ChainError::next_out_of_range: return "next descriptor index beyond its table";
    case ChainError::chain_too_long: return "chain longer than its table (a loop)";
    case ChainError::total_length_overflow: return "total buffer length exceeds 32 bits";
    case ChainError::address_out_of_range: return "buffer outside guest memory";
    case ChainError::indirect_not_negotiated: return "indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC";
    case ChainError::indirect_with_next: return "indirect descriptor with the next flag";
    case ChainError::indirect_bad_size: return "indirect table length not a multiple of 16 in 16..512 KiB";
    case ChainError::indirect_table_out_of_range: return "indirect table outside guest memory";
    case ChainError::nested_indirect: return "indirect descriptor inside an indirect table";
    case ChainError::readable_after_writable: return "device-readable descriptor after a writable one";
    case ChainError::out_of_memory: return "out of memory for the segment list";
  }
  return "unknown chain error";
}

ChainError DescriptorChain::walk(const DescriptorTable& table, std::uint16_t head) noexcept {
  readable_.clear();
  writable_.clear();
  readable_bytes_ = 0;
  writable_bytes_ = 0;
  seen_writable_ = false;
  head_ = head;
  memory_ = table.memory;

  std::span<const std::byte> current = table.descriptors;
  std::size_t limit = current.size() / sizeof(Descriptor);
  if (head >= limit) return ChainError::head_out_of_range;
  std::size_t index = head;
  std::size_t visited = 0;
  bool in_indirect = false;
  for (;;) {
    if (++visited > limit) return ChainError::chain_too_long;
    const Descriptor descriptor = read_descriptor(current, index);
    if ((descriptor.flags & descriptor_flags::indirect) != 0) {
      if (in_indirect) return ChainError::nested_indirect;
      if (!table.indirect_allowed) return ChainError::indirect_not_negotiated;
      if ((descriptor.flags & descriptor_flags::next) != 0) return ChainError::indirect_with_next;
      if (descriptor.len == 0 || descriptor.len % sizeof(Descriptor) != 0 ||
          descriptor.len / sizeof(Descriptor) > ring_layout::max_queue_size)
        return ChainError::indirect_bad_size;
      auto indirect = table.memory->translate(descriptor.addr, descriptor.len);
      if (!indirect) return ChainError::indirect_table_out_of_range;
      current = *indirect;
      limit = current.size() / sizeof(Descriptor);
      index = 0;
      visited = 0;
      in_indirect = true;
      continue;
    }
    if (const ChainError error = add_buffer(*table.memory, descriptor); error != ChainError::none)
      return error;
    if ((descriptor.flags & descriptor_flags::next) == 0) return ChainError::none;
    if (descriptor.next >= limit) return ChainError::next_out_of_range;
    index = descriptor.next;
  }
}

ChainError DescriptorChain::add_buffer(const GuestMemory& memory, const Descriptor& descriptor) noexcept {
  const bool writable = (descriptor.flags & descriptor_flags::write) != 0;
  if (!writable && seen_writable_) return ChainError::readable_after_writable;
  seen_writable_ = seen_writable_ || writable;
  std::uint64_t& total = writable ? writable_bytes_ : readable_bytes_;
  total += descriptor.len;  // at most 2^32 descriptors of < 2^32 bytes each: cannot wrap 64 bits
  if (total > UINT32_MAX) return ChainError::total_length_overflow;
  if (descriptor.len == 0) return ChainError::none;
  if (descriptor.len - 1 > UINT64_MAX - descriptor.addr) return ChainError::address_out_of_range;
  std::vector<Segment>& segments = writable ? writable_ : readable_;
  std::uint64_t gpa = descriptor.addr;
  std::uint64_t left = descriptor.len;
  try {
    while (left > 0) {
      auto piece = memory.translate_prefix(gpa, left);
      if (!piece) return ChainError::address_out_of_range;
      segments.push_back(Segment{piece->data(), gpa, static_cast<std::uint32_t>(piece->size())});
      // A piece ending at the top of the address space is the buffer's last: gpa cannot wrap.
      gpa += piece->size();
      left -= piece->size();
    }
  } catch (...) {
    return ChainError::out_of_memory;
  }
  return ChainError::none;
}

}  // namespace fuse_backend::transport::virtio
