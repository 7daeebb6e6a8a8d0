// ZeroCopyReader / ZeroCopyWriter: how request and reply data cross into a filesystem.
//
// Layer: api. Small virtual interfaces that every transport implements over its own buffers
// (/dev/fuse: the request/reply buffer; virtio: guest memory behind descriptors), so a filesystem
// moves data straight between a host fd and the transport (pwritev/preadv on the underlying
// iovecs) without an intermediate copy, and passthrough/vfs stay compiled once in src/.
// Objects are owned by the transport, valid for one request, used by one thread.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include <fuse_backend/result.hpp>

namespace fuse_backend::api {

// Where ZeroCopyReader::read_to() puts the bytes in the file.
enum class WriteAt : std::uint8_t {
  offset,  // at the offset given (pwrite)
  end,     // at the file's end whatever the offset, as O_APPEND would, but for this one write
};

// The pwritev2(2) flags for `at`. RWF_APPEND (Linux 4.16) appends without setting O_APPEND on
// the fd, which other requests on the same open file write through at their own offsets.
constexpr int pwritev2_flags(WriteAt at) noexcept { return at == WriteAt::end ? RWF_APPEND : 0; }

// Data the request carries (WRITE payload, NOTIFY_REPLY data).
class ZeroCopyReader {
 public:
  // Bytes of request data not consumed yet.
  virtual std::size_t remaining() const noexcept = 0;
  // Writes up to `count` bytes of request data to `fd` at `offset`, or at its end (one pwritev2);
  // consumes what was written. Returns the number of bytes written (0 when nothing remains).
  virtual Result<std::size_t> read_to(int fd, std::size_t count, std::uint64_t offset,
                                      WriteAt at) noexcept = 0;
  // Copies up to out.size() bytes into memory; consumes them. Returns bytes copied.
  virtual std::size_t read(std::span<std::byte> out) noexcept = 0;

 protected:
  ~ZeroCopyReader() = default;
};

// Room for reply data (READ payload).
class ZeroCopyWriter {
 public:
  // Bytes the reply can still take.
  virtual std::size_t available() const noexcept = 0;
  // Reads up to `count` bytes from `fd` at `offset` into the reply (one preadv). Returns bytes read
  // (0 at end of file).
  virtual Result<std::size_t> write_from(int fd, std::size_t count, std::uint64_t offset) noexcept = 0;
  // Copies bytes into the reply; returns how many fit.
  virtual std::size_t write(std::span<const std::byte> in) noexcept = 0;

 protected:
  ~ZeroCopyWriter() = default;
};

}  // namespace fuse_backend::api
