// BackingFiles: how a filesystem asks its transport to register a host fd as a FUSE passthrough
// backing file (kernel >= 6.9, FUSE_DEV_IOC_BACKING_OPEN), so reads, writes and mmap of the
// opened file bypass the daemon.
//
// Layer: api. Transport-neutral: /dev/fuse implements it with the backing ioctls; virtio-fs has no
// such mechanism, so a filesystem there sees no BackingFiles (Context::backing_files() answers
// ENOTSUP) and must fall back to ordinary reads and writes. Implementations are thread-safe.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <cstdint>

#include <fuse_backend/result.hpp>

namespace fuse_backend::api {

class BackingFiles {
 public:
  // Registers `fd` (kept open by the kernel until close()); returns the backing id to put in
  // OpenReply::backing_id together with abi::fopen::passthrough.
  virtual Result<std::int32_t> open(int fd) noexcept = 0;
  virtual Result<void> close(std::int32_t backing_id) noexcept = 0;

 protected:
  ~BackingFiles() = default;
};

// The answer where a transport has no backing files.
class NoBackingFiles final : public BackingFiles {
 public:
  Result<std::int32_t> open(int) noexcept override { return fail(std::errc::not_supported); }
  Result<void> close(std::int32_t) noexcept override { return fail(std::errc::not_supported); }
  static NoBackingFiles& instance() noexcept {
    static NoBackingFiles none;
    return none;
  }
};

}  // namespace fuse_backend::api
