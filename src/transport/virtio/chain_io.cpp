// Reader and writer over a descriptor chain (see chain_io.hpp).
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/transport/virtio/chain_io.hpp>

#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>

#include <fuse_backend/detail/syscall.hpp>

namespace fuse_backend::transport::virtio {
namespace {

// One preadv/pwritev covers at most this many buffers (the kernel's UIO_MAXIOV), enough for a
// 1 MiB payload in 4 KiB pages several times over; the caller sees a short transfer otherwise.
constexpr std::size_t max_iov = IOV_MAX;

constexpr std::size_t header_size = sizeof(abi::out_header);

}  // namespace

// --- SegmentCursor ---------------------------------------------------------------------------

template <class Piece>
void SegmentCursor::consume(std::size_t count, Piece&& piece) noexcept {
  std::size_t done = 0;
  while (count > 0 && index_ < segments_.size()) {
    const Segment& segment = segments_[index_];
    const std::size_t take = std::min<std::size_t>(count, segment.len - offset_);
    piece(segment.host + offset_, segment.gpa + offset_, take, done);
    done += take;
    count -= take;
    offset_ += take;
    if (offset_ == segment.len) {
      ++index_;
      offset_ = 0;
    }
  }
}

void SegmentCursor::copy_out(std::span<std::byte> out) noexcept {
  consume(out.size(), [&](std::byte* host, std::uint64_t, std::size_t len, std::size_t done) {
    std::memcpy(out.data() + done, host, len);
  });
}

void SegmentCursor::copy_in(std::span<const std::byte> in, const GuestMemory& memory) noexcept {
  consume(in.size(), [&](std::byte* host, std::uint64_t gpa, std::size_t len, std::size_t done) {
    std::memcpy(host, in.data() + done, len);
    memory.log_write(gpa, len);
  });
}

void SegmentCursor::advance(std::size_t count) noexcept {
  consume(count, [](std::byte*, std::uint64_t, std::size_t, std::size_t) {});
}

void SegmentCursor::advance_written(std::size_t count, const GuestMemory& memory) noexcept {
  consume(count, [&](std::byte*, std::uint64_t gpa, std::size_t len, std::size_t) { memory.log_write(gpa, len); });
}

std::size_t SegmentCursor::gather(std::span<iovec> iov, std::size_t count) const noexcept {
  std::size_t filled = 0;
  std::size_t offset = offset_;
  for (std::size_t i = index_; i < segments_.size() && count > 0 && filled < iov.size(); ++i) {
    const Segment& segment = segments_[i];
    const std::size_t take = std::min<std::size_t>(count, segment.len - offset);
    iov[filled++] = iovec{segment.host + offset, take};
    count -= take;
    offset = 0;
  }
  return filled;
}

// --- ChainReader -----------------------------------------------------------------------------

std::span<const std::byte> ChainReader::read_bytes(std::size_t count) noexcept {
  if (count > remaining_ || count > bounce_.size()) return {};
  std::size_t at = (bounce_used_ + 7) & ~std::size_t{7};
  if (at > bounce_.size() || count > bounce_.size() - at) at = 0;
  const std::span<std::byte> view = bounce_.subspan(at, count);
  cursor_.copy_out(view);
  remaining_ -= count;
  bounce_used_ = at + count;
  return view;
}

bool ChainReader::skip(std::size_t count) noexcept {
  if (count > remaining_) return false;
  cursor_.advance(count);
  remaining_ -= count;
  return true;
}

Result<std::size_t> ChainReader::read_to(int fd, std::size_t count, std::uint64_t offset,
                                         api::WriteAt at) noexcept {
  count = std::min(count, remaining_);
  if (count == 0) return std::size_t{0};
  std::array<iovec, max_iov> iov;
  const std::size_t used = cursor_.gather(iov, count);
  auto written = detail::syscall_result<std::size_t>([&] {
    return ::pwritev2(fd, iov.data(), static_cast<int>(used), static_cast<off_t>(offset),
                      api::pwritev2_flags(at));
  });
  if (written) {
    cursor_.advance(*written);
    remaining_ -= *written;
  }
  return written;
}

std::size_t ChainReader::read(std::span<std::byte> out) noexcept {
  const std::size_t count = std::min(out.size(), remaining_);
  cursor_.copy_out(out.first(count));
  remaining_ -= count;
  return count;
}

// --- ChainWriter -----------------------------------------------------------------------------

ChainWriter::ChainWriter(Virtqueue& queue, const DescriptorChain& chain) noexcept
    : queue_(queue),
      memory_(*chain.memory()),
      segments_(chain.writable()),
      head_(chain.head()),
      fits_header_(chain.writable_bytes() >= header_size),
      payload_capacity_(fits_header_ ? chain.writable_bytes() - header_size : 0),
      cursor_(segments_) {
  cursor_.advance(header_size);
}

bool ChainWriter::append(std::span<const std::byte> bytes) noexcept {
  if (bytes.size() > available()) return false;
  cursor_.copy_in(bytes, memory_);
  written_ += bytes.size();
  return true;
}

std::size_t ChainWriter::write(std::span<const std::byte> in) noexcept {
  const std::size_t count = std::min(in.size(), available());
  append(in.first(count));
  return count;
}

void ChainWriter::discard() noexcept {
  cursor_ = SegmentCursor(segments_);
  cursor_.advance(header_size);
  written_ = 0;
}

Result<std::size_t> ChainWriter::write_from(int fd, std::size_t count, std::uint64_t offset) noexcept {
  count = std::min(count, available());
  if (count == 0) return std::size_t{0};
  std::array<iovec, max_iov> iov;
  const std::size_t used = cursor_.gather(iov, count);
  auto read = detail::syscall_result<std::size_t>([&] {
    return ::preadv(fd, iov.data(), static_cast<int>(used), static_cast<off_t>(offset));
  });
  if (read) {
    cursor_.advance_written(*read, memory_);
    written_ += *read;
  }
  return read;
}

Result<void> ChainWriter::commit(const abi::out_header& header) noexcept {
  if (committed_) return fail(std::errc::invalid_argument);
  if (!fits_header_) return fail(std::errc::no_buffer_space);
  SegmentCursor front(segments_);
  front.copy_in(std::as_bytes(std::span<const abi::out_header, 1>(&header, 1)), memory_);
  auto pushed = queue_.push_used(head_, static_cast<std::uint32_t>(header_size + written_));
  if (!pushed) return pushed;
  committed_ = true;
  return {};
}

}  // namespace fuse_backend::transport::virtio
