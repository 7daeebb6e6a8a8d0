// DirStream: a directory read with getdents64 and positioned by the host's d_off cookies.
//
// Layer: passthrough. READDIR hands back, for each entry, the cookie of the *next* one; the
// kernel returns it as the next READDIR offset. DirStream keeps one buffer of raw entries and
// the cookie of the last entry consumed, so a READDIR continuing where the previous one stopped
// (the usual case) costs no lseek and reuses what is already buffered; any other offset seeks the
// host fd (telldir/seekdir semantics: cookies are opaque but stable for an open directory).
// Not thread-safe: the owner serialises (one READDIR at a time per open directory). The buffer
// is allocated once at construction; reading allocates nothing. The fd is borrowed.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include <fuse_backend/result.hpp>

namespace fuse_backend::passthrough {

struct RawDirEntry {
  std::uint64_t ino = 0;
  std::uint64_t next_offset = 0;  // cookie to continue after this entry
  std::uint8_t type = 0;          // DT_*
  std::string_view name;          // valid until the next next()/consume()/seek()
};

class DirStream {
 public:
  // `fd` must be a directory opened for reading; the caller keeps it open while the stream is
  // used (an OpenFile owns both).
  explicit DirStream(int fd);

  // Makes the next entry the one after cookie `offset` (0 = the beginning).
  Result<void> seek(std::uint64_t offset) noexcept;
  // The next entry without consuming it; nullopt at the end of the directory.
  Result<std::optional<RawDirEntry>> peek() noexcept;
  // Consumes the entry peek() returned.
  void consume() noexcept;

 private:
  static constexpr std::size_t buffer_size = 32 * 1024;

  int fd_;
  std::unique_ptr<std::byte[]> buffer_;
  std::size_t filled_ = 0;   // bytes from the last getdents64
  std::size_t cursor_ = 0;   // next unconsumed record in buffer_
  std::uint64_t position_ = 0;  // cookie of the last consumed entry (0: at the start)
};

}  // namespace fuse_backend::passthrough
