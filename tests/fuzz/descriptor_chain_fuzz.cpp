// Fuzz target: the split virtqueue, the descriptor-chain walk and the chain reader/writer over
// guest memory that is entirely attacker-controlled.
//
// Input layout:
//   byte 0      bit 0: EVENT_IDX, bit 1: INDIRECT_DESC, bits 2-4: log2 of the queue size (0-4)
//   byte 1      bits 0-5: how many chains to serve at most
//   bytes 2-3   the queue's base (SET_VRING_BASE), little-endian
//   the rest    guest memory from guest address 0 (64 KiB, zero-padded); a second 4 KiB region
//               follows at 64 KiB (adjacent, separately allocated, also fuzz data beyond 64 KiB)
// Rings: descriptor table at 0, avail ring at 0x200, used ring at 0x400. Everything else
// (descriptors, indices, buffers, FUSE headers) comes from the input. Each served chain is
// read like a FUSE request (header, then what its len announces, in pieces), data goes to a
// memfd (read_to), a reply is written (append + write_from) and committed; anything not
// committed is returned with 0 bytes, as the device does.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/transport/virtio/chain_io.hpp>
#include <fuse_backend/transport/virtio/descriptor_chain.hpp>
#include <fuse_backend/transport/virtio/guest_memory.hpp>
#include <fuse_backend/transport/virtio/virtqueue.hpp>

namespace {

namespace virtio = fuse_backend::transport::virtio;

constexpr std::size_t low_size = 64 * 1024;
constexpr std::size_t high_size = 4 * 1024;
constexpr std::size_t header_bytes = 4;

struct State {
  alignas(4096) std::array<std::byte, low_size> low{};
  alignas(4096) std::array<std::byte, high_size> high{};
  std::vector<std::byte> bounce = std::vector<std::byte>(virtio::request_bounce_size);
  int sink = ::memfd_create("descriptor-chain-fuzz", MFD_CLOEXEC);
  virtio::DescriptorChain chain;
};

void serve(virtio::Virtqueue& queue, State& state, std::uint16_t head) {
  if (state.chain.walk(queue.descriptor_table(), head) != virtio::ChainError::none) {
    (void)queue.push_used(head, 0);
    return;
  }
  virtio::ChainReader reader(state.chain, state.bounce);
  virtio::ChainWriter writer(queue, state.chain);
  const auto header_view = reader.read_bytes(sizeof(fuse_backend::abi::in_header));
  if (header_view.size() == sizeof(fuse_backend::abi::in_header)) {
    fuse_backend::abi::in_header header;
    std::memcpy(&header, header_view.data(), sizeof(header));
    reader.limit(header.len > sizeof(header) ? header.len - sizeof(header) : 0);
    // Pieces of varying size, through each way of consuming request bytes.
    const std::size_t first = std::min<std::size_t>(header.unique & 0xff, reader.remaining());
    (void)reader.read_bytes(first);
    (void)reader.skip(header.nodeid & 0x3f);
    std::array<std::byte, 100> copy;
    (void)reader.read(std::span(copy).first(std::min<std::size_t>(header.uid % 101, copy.size())));
    (void)reader.read_to(state.sink, header.gid & 0xffff, 0,
                         (header.uid & 1) != 0 ? fuse_backend::api::WriteAt::end
                                               : fuse_backend::api::WriteAt::offset);
    (void)reader.read_bytes(reader.remaining());
    // A reply whose size depends on the request.
    const std::array<std::byte, 64> payload{};
    (void)writer.append(std::span(payload).first(header.pid % 65));
    (void)writer.write_from(state.sink, header.padding, 0);
    if ((header.opcode & 1) != 0) writer.discard();
    (void)writer.write(payload);
    const fuse_backend::abi::out_header out{static_cast<std::uint32_t>(16 + writer.written()), 0, header.unique};
    (void)writer.commit(out);
  }
  if (!writer.committed()) (void)queue.push_used(head, 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static State& state = *new State;
  if (size < header_bytes) return 0;
  const std::uint8_t flags = data[0];
  const std::size_t max_chains = data[1] & 0x3f;
  const std::uint16_t base = static_cast<std::uint16_t>(data[2] | data[3] << 8);
  data += header_bytes;
  size -= header_bytes;
  const std::size_t low = std::min(size, low_size);
  std::memcpy(state.low.data(), data, low);
  std::memset(state.low.data() + low, 0, low_size - low);
  const std::size_t high = std::min(size - low, high_size);
  std::memcpy(state.high.data(), data + low, high);
  std::memset(state.high.data() + high, 0, high_size - high);

  virtio::GuestRegion low_region;
  low_region.guest_addr = 0;
  low_region.size = low_size;
  low_region.host = state.low.data();
  virtio::GuestRegion high_region;
  high_region.guest_addr = low_size;
  high_region.size = high_size;
  high_region.host = state.high.data();
  auto memory = virtio::GuestMemory::create({low_region, high_region});
  if (!memory) __builtin_trap();

  virtio::Virtqueue queue;
  if (!queue.set_size(1u << ((flags >> 2) % 5))) __builtin_trap();
  queue.set_addresses({0, 0x200, 0x400, virtio::AddressKind::guest_physical, std::nullopt});
  queue.set_features(((flags & 1) != 0 ? virtio::features::event_idx : 0) |
                     ((flags & 2) != 0 ? virtio::features::indirect_desc : 0));
  queue.set_base(base);
  if (!queue.start(std::make_shared<const virtio::GuestMemory>(std::move(*memory)))) __builtin_trap();
  for (std::size_t i = 0; i < max_chains; ++i) {
    auto head = queue.pop();
    if (!head || !*head) break;
    serve(queue, state, **head);
  }
  (void)queue.needs_notification();
  return 0;
}
