// DirStream (see include/fuse_backend/passthrough/dir_stream.hpp).
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/passthrough/dir_stream.hpp>

#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include <fuse_backend/detail/syscall.hpp>

namespace fuse_backend::passthrough {
namespace {

// struct linux_dirent64's fixed part; glibc's struct dirent64 has the same layout but a fixed
// 256-byte name, so records are read field by field from the buffer instead.
constexpr std::size_t ino_at = 0, off_at = 8, reclen_at = 16, type_at = 18, name_at = 19;

template <class T>
T load(const std::byte* p) noexcept {
  T value;
  std::memcpy(&value, p, sizeof value);
  return value;
}

}  // namespace

DirStream::DirStream(int fd)
    : fd_(fd), buffer_(std::make_unique<std::byte[]>(buffer_size)) {}

Result<void> DirStream::seek(std::uint64_t offset) noexcept {
  if (offset == position_) return {};
  if (auto rc = detail::syscall_void(
          [&] { return ::lseek(fd_, static_cast<off_t>(offset), SEEK_SET); });
      !rc)
    return rc;
  filled_ = cursor_ = 0;
  position_ = offset;
  return {};
}

Result<std::optional<RawDirEntry>> DirStream::peek() noexcept {
  if (cursor_ >= filled_) {
    auto got = detail::syscall_result<std::size_t>(
        [&] { return ::syscall(SYS_getdents64, fd_, buffer_.get(), buffer_size); });
    if (!got) return fail(got.error());
    filled_ = *got;
    cursor_ = 0;
    if (filled_ == 0) return std::optional<RawDirEntry>{};
  }
  const std::byte* record = buffer_.get() + cursor_;
  RawDirEntry entry;
  entry.ino = load<std::uint64_t>(record + ino_at);
  entry.next_offset = load<std::uint64_t>(record + off_at);
  entry.type = load<std::uint8_t>(record + type_at);
  entry.name = std::string_view(reinterpret_cast<const char*>(record + name_at));
  return std::optional<RawDirEntry>{entry};
}

void DirStream::consume() noexcept {
  if (cursor_ >= filled_) return;
  const std::byte* record = buffer_.get() + cursor_;
  position_ = load<std::uint64_t>(record + off_at);
  cursor_ += load<std::uint16_t>(record + reclen_at);
}

}  // namespace fuse_backend::passthrough
