// DirPacker: the Server's DirSink, packing dirent / direntplus records straight into a reply.
//
// Layer: api/detail. Each record is built in a small stack buffer (at most one name of 1024
// bytes) and appended to the transport's writer in one piece, never exceeding the size the kernel
// asked for. One request, one thread.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <array>
#include <cstddef>
#include <cstring>
#include <span>
#include <string_view>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/api/detail/wire_encoding.hpp>
#include <fuse_backend/api/dir_sink.hpp>
#include <fuse_backend/api/transport.hpp>

namespace fuse_backend::api::detail {

// The longest name a directory record may carry (the kernel's FUSE_NAME_MAX).
inline constexpr std::size_t max_name_length = max_entry_name;

template <ReplyWriter Writer>
class DirPacker final : public DirSink {
 public:
  DirPacker(Writer& writer, std::size_t limit, bool plus) noexcept
      : writer_(writer), limit_(limit), plus_(plus) {}

  bool fits(std::string_view name) const noexcept override {
    return valid(name) && record_size(name) <= limit_ - used_;
  }

  bool add(const DirEntry& entry) noexcept override {
    // In readdirplus, an entry without attributes has node id 0: the kernel takes no reference.
    return plus_ ? append(entry, nullptr) : append(entry, nullptr);
  }

  bool add(const DirEntry& entry, const Entry& attributes) noexcept override {
    // A plain readdir cannot carry attributes; refusing keeps the caller's lookup count right.
    return plus_ && append(entry, &attributes);
  }

  std::size_t size() const noexcept override { return used_; }

 private:
  static bool valid(std::string_view name) noexcept {
    return !name.empty() && name.size() <= max_name_length;
  }
  std::size_t record_size(std::string_view name) const noexcept {
    return plus_ ? abi::direntplus_size(name.size()) : abi::dirent_size(name.size());
  }

  bool append(const DirEntry& entry, const Entry* attributes) noexcept {
    if (!fits(entry.name)) return false;
    const std::size_t size = record_size(entry.name);
    std::array<std::byte, abi::direntplus_size(max_name_length)> record{};
    abi::dirent dirent{entry.ino, entry.offset, static_cast<std::uint32_t>(entry.name.size()),
                       entry.type};
    std::size_t at = 0;
    if (plus_) {
      const abi::entry_out out = attributes != nullptr ? to_wire(*attributes) : abi::entry_out{};
      std::memcpy(record.data(), &out, sizeof(out));
      at = sizeof(out);
    }
    std::memcpy(record.data() + at, &dirent, sizeof(dirent));
    std::memcpy(record.data() + at + sizeof(dirent), entry.name.data(), entry.name.size());
    if (!writer_.append(std::span<const std::byte>(record.data(), size))) return false;
    used_ += size;
    return true;
  }

  Writer& writer_;
  std::size_t limit_;
  std::size_t used_ = 0;
  bool plus_;
};

}  // namespace fuse_backend::api::detail
