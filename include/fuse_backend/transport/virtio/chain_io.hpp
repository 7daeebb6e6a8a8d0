// ChainReader / ChainWriter: the api::RequestReader / api::ReplyWriter pair over one descriptor
// chain, and virtio::Transport, which names them for Server<virtio::Transport, Fs>.
//
// Layer: transport/virtio. A FUSE request may be split across the chain's readable descriptors
// at any byte, and its reply across the writable ones.
//
// Reader: read_bytes() ALWAYS copies, into the reader's bounce buffer, even when the bytes lie
// in one descriptor: the guest can rewrite its buffers while the Server parses them, and a name
// whose NUL was checked must still have it when used. Copies go to consecutive (8-byte aligned)
// places of the bounce buffer, so earlier views stay valid while later reads fit; a read that
// does not fit the rest starts again at the front (the contract only promises validity until the
// next call). request_bounce_size holds any non-data request (the Server reads everything after
// the header at once): a 64 KiB xattr value, two 4 KiB names and the headers. File data does
// not go through it: WRITE payloads move with read_to() (one pwritev2 straight from the guest
// buffers) and read() (a copy into the caller's memory).
//
// Writer: the first 16 writable bytes are kept for the out_header, which commit() writes once
// the payload is complete; commit() then pushes the chain to the used ring with 16 + written()
// bytes. READ data moves with write_from() (one preadv straight into the guest buffers). Every
// byte written into guest memory is recorded in the dirty log when logging is on. A chain with
// fewer than 16 writable bytes cannot carry a reply: commit() fails with ENOBUFS and the device
// returns the chain with 0 bytes.
//
// Contract: a reader/writer pair serves one chain on one thread and is noexcept throughout. They
// point into the DescriptorChain's segments (and the GuestMemory snapshot that walked it), the
// bounce buffer and the queue, which must outlive them. Pairs for different chains of one queue
// may run on different threads at once (a device's thread pool): the writer touches the queue
// only through push_used, which is thread safe. backing_files() is nullptr: virtio-fs has no passthrough backing files.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/api/backing.hpp>
#include <fuse_backend/api/transport.hpp>
#include <fuse_backend/api/zero_copy.hpp>
#include <fuse_backend/result.hpp>
#include <fuse_backend/transport/virtio/descriptor_chain.hpp>
#include <fuse_backend/transport/virtio/guest_memory.hpp>
#include <fuse_backend/transport/virtio/virtqueue.hpp>

namespace fuse_backend::transport::virtio {

// Bounce-buffer size for a ChainReader: XATTR_SIZE_MAX + two PATH_MAX names + headers.
inline constexpr std::size_t request_bounce_size = 65536 + 2 * 4096 + 4096;

// A position in a list of segments, moved forward only.
class SegmentCursor {
 public:
  explicit SegmentCursor(std::span<const Segment> segments) noexcept : segments_(segments) {}

  // Copies out.size() bytes from guest memory (the caller checked they are there).
  void copy_out(std::span<std::byte> out) noexcept;
  // Copies `in` into guest memory (the caller checked there is room), logging the pages.
  void copy_in(std::span<const std::byte> in, const GuestMemory& memory) noexcept;
  void advance(std::size_t count) noexcept;
  // Logs the next `count` bytes as written (after an external write such as preadv) and advances.
  void advance_written(std::size_t count, const GuestMemory& memory) noexcept;
  // Describes up to `count` bytes from the position as iovecs (at most iov.size()), without
  // moving; returns how many iovecs were filled.
  std::size_t gather(std::span<iovec> iov, std::size_t count) const noexcept;

 private:
  template <class Piece>
  void consume(std::size_t count, Piece&& piece) noexcept;

  std::span<const Segment> segments_;
  std::size_t index_ = 0;
  std::size_t offset_ = 0;
};

class ChainReader final : public api::ZeroCopyReader {
 public:
  // Reads the readable part of `chain`; `bounce` should have request_bounce_size bytes.
  ChainReader(const DescriptorChain& chain, std::span<std::byte> bounce) noexcept
      : cursor_(chain.readable()), remaining_(chain.readable_bytes()), bounce_(bounce) {}

  std::size_t remaining() const noexcept override { return remaining_; }
  void limit(std::size_t count) noexcept {
    if (count < remaining_) remaining_ = count;
  }
  std::span<const std::byte> read_bytes(std::size_t count) noexcept;
  bool skip(std::size_t count) noexcept;
  api::BackingFiles* backing_files() noexcept { return nullptr; }
  // A virtio queue's thread serves every request of its queue (and the Linux guest never sends
  // FUSE_INTERRUPT): nothing may hold it.
  bool may_block() const noexcept { return false; }

  Result<std::size_t> read_to(int fd, std::size_t count, std::uint64_t offset,
                              api::WriteAt at) noexcept override;
  std::size_t read(std::span<std::byte> out) noexcept override;

 private:
  SegmentCursor cursor_;
  std::size_t remaining_;
  std::span<std::byte> bounce_;
  std::size_t bounce_used_ = 0;
};

class ChainWriter final : public api::ZeroCopyWriter {
 public:
  // Writes the reply into the writable part of `chain` (walked: its snapshot is the one the
  // reply is logged in), returned to `queue` at commit (push_used, thread safe).
  ChainWriter(Virtqueue& queue, const DescriptorChain& chain) noexcept;

  std::size_t written() const noexcept { return written_; }
  bool append(std::span<const std::byte> bytes) noexcept;
  void discard() noexcept;
  Result<void> commit(const abi::out_header& header) noexcept;
  // Whether commit() pushed the chain to the used ring (if not, the device must).
  bool committed() const noexcept { return committed_; }

  std::size_t available() const noexcept override { return payload_capacity_ - written_; }
  Result<std::size_t> write_from(int fd, std::size_t count, std::uint64_t offset) noexcept override;
  std::size_t write(std::span<const std::byte> in) noexcept override;

 private:
  Virtqueue& queue_;
  const GuestMemory& memory_;
  std::span<const Segment> segments_;
  std::uint16_t head_;
  bool fits_header_;
  std::size_t payload_capacity_;
  SegmentCursor cursor_;
  std::size_t written_ = 0;
  bool committed_ = false;
};

struct Transport {
  using Reader = ChainReader;
  using Writer = ChainWriter;
};
static_assert(api::Transport<Transport>);

}  // namespace fuse_backend::transport::virtio
