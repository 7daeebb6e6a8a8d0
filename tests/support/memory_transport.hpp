// MemoryTransport: a real Transport over in-memory buffers, for tests, fuzzing and benchmarks.
//
// Layer: test support. The Reader serves the bytes of one request (contiguous, like /dev/fuse);
// the Writer collects one reply into a buffer allocated once. Data moves through the zero-copy
// interfaces with real preadv/pwritev on file descriptors. One reader/writer per thread.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sys/uio.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <span>
#include <vector>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/api/backing.hpp>
#include <fuse_backend/api/transport.hpp>
#include <fuse_backend/detail/syscall.hpp>

namespace fuse_backend::testing {

class MemoryReader final : public api::ZeroCopyReader {
 public:
  explicit MemoryReader(std::span<const std::byte> bytes, api::BackingFiles* backing = nullptr) noexcept
      : bytes_(bytes), backing_(backing) {}

  std::size_t remaining() const noexcept override { return bytes_.size(); }
  void limit(std::size_t count) noexcept { bytes_ = bytes_.first(std::min(count, bytes_.size())); }
  std::span<const std::byte> read_bytes(std::size_t count) noexcept {
    if (count > bytes_.size()) return {};
    auto taken = bytes_.first(count);
    bytes_ = bytes_.subspan(count);
    return taken;
  }
  bool skip(std::size_t count) noexcept { return read_bytes(count).size() == count; }
  api::BackingFiles* backing_files() noexcept { return backing_; }
  bool may_block() const noexcept { return may_block_; }
  void set_may_block(bool may_block) noexcept { may_block_ = may_block; }

  Result<std::size_t> read_to(int fd, std::size_t count, std::uint64_t offset,
                              api::WriteAt at) noexcept override {
    count = std::min(count, bytes_.size());
    const iovec data{const_cast<std::byte*>(bytes_.data()), count};
    auto written = detail::syscall_result<std::size_t>(
        [&] { return ::pwritev2(fd, &data, 1, static_cast<off_t>(offset), api::pwritev2_flags(at)); });
    if (written) bytes_ = bytes_.subspan(*written);
    return written;
  }
  std::size_t read(std::span<std::byte> out) noexcept override {
    const auto bytes = read_bytes(std::min(out.size(), bytes_.size()));
    std::memcpy(out.data(), bytes.data(), bytes.size());
    return bytes.size();
  }

 private:
  std::span<const std::byte> bytes_;
  api::BackingFiles* backing_;
  bool may_block_ = true;
};

class MemoryWriter final : public api::ZeroCopyWriter {
 public:
  explicit MemoryWriter(std::size_t capacity = (1u << 20) + 4096)
      : buffer_(capacity + sizeof(abi::out_header)) {}

  std::size_t written() const noexcept { return used_; }
  bool append(std::span<const std::byte> bytes) noexcept {
    if (bytes.size() > available()) return false;
    std::memcpy(payload() + used_, bytes.data(), bytes.size());
    used_ += bytes.size();
    return true;
  }
  void discard() noexcept { used_ = 0; }
  Result<void> commit(const abi::out_header& header) noexcept {
    std::memcpy(buffer_.data(), &header, sizeof(header));
    committed_ = sizeof(header) + used_;
    ++commits_;
    return {};
  }

  std::size_t available() const noexcept override { return buffer_.size() - sizeof(abi::out_header) - used_; }
  Result<std::size_t> write_from(int fd, std::size_t count, std::uint64_t offset) noexcept override {
    count = std::min(count, available());
    auto read = detail::syscall_result<std::size_t>(
        [&] { return ::pread(fd, payload() + used_, count, static_cast<off_t>(offset)); });
    if (read) used_ += *read;
    return read;
  }
  std::size_t write(std::span<const std::byte> in) noexcept override {
    const std::size_t count = std::min(in.size(), available());
    append(in.first(count));
    return count;
  }

  // The last committed reply (header + payload), empty when nothing was committed.
  std::span<const std::byte> reply() const noexcept { return {buffer_.data(), committed_}; }
  std::size_t commits() const noexcept { return commits_; }
  void reset() noexcept {
    used_ = committed_ = 0;
    commits_ = 0;
  }

 private:
  std::byte* payload() noexcept { return buffer_.data() + sizeof(abi::out_header); }

  std::vector<std::byte> buffer_;
  std::size_t used_ = 0;
  std::size_t committed_ = 0;
  std::size_t commits_ = 0;
};

struct MemoryTransport {
  using Reader = MemoryReader;
  using Writer = MemoryWriter;
};
static_assert(api::Transport<MemoryTransport>);

}  // namespace fuse_backend::testing
