// ByteCursor: bounds-checked decoding of an untrusted request body.
//
// Layer: api/detail. A view over bytes that hands out fixed-size wire structs (copied out, so
// alignment never matters) and NUL-terminated names, each only after checking that the bytes are
// really there. Every failure consumes nothing. Never reads outside its span.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <cstddef>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>

namespace fuse_backend::api::detail {

class ByteCursor {
 public:
  explicit ByteCursor(std::span<const std::byte> bytes) noexcept : bytes_(bytes) {}

  std::size_t remaining() const noexcept { return bytes_.size(); }

  template <class T>
    requires std::is_trivially_copyable_v<T>
  std::optional<T> take() noexcept {
    if (bytes_.size() < sizeof(T)) return std::nullopt;
    T value;
    std::memcpy(&value, bytes_.data(), sizeof(T));
    bytes_ = bytes_.subspan(sizeof(T));
    return value;
  }

  // A prefix of at most sizeof(T) bytes, zero-extended: for structs that grew with the protocol
  // (init_in before 7.36 is 16 bytes, setxattr_in before SETXATTR_EXT is 8).
  template <class T>
    requires std::is_trivially_copyable_v<T>
  std::optional<T> take_prefix(std::size_t size) noexcept {
    if (size > sizeof(T) || bytes_.size() < size) return std::nullopt;
    T value{};
    std::memcpy(&value, bytes_.data(), size);
    bytes_ = bytes_.subspan(size);
    return value;
  }

  std::optional<std::span<const std::byte>> take_bytes(std::size_t count) noexcept {
    if (bytes_.size() < count) return std::nullopt;
    auto taken = bytes_.first(count);
    bytes_ = bytes_.subspan(count);
    return taken;
  }

  // A name: the bytes up to a NUL that lies within the span (the NUL is consumed too). Empty
  // names and names longer than `max_length` are rejected, as the kernel never sends them.
  std::optional<std::string_view> take_name(std::size_t max_length) noexcept {
    const auto* begin = reinterpret_cast<const char*>(bytes_.data());
    const void* nul = std::memchr(begin, '\0', bytes_.size());
    if (nul == nullptr) return std::nullopt;
    const auto length = static_cast<std::size_t>(static_cast<const char*>(nul) - begin);
    if (length == 0 || length > max_length) return std::nullopt;
    bytes_ = bytes_.subspan(length + 1);
    return std::string_view(begin, length);
  }

 private:
  std::span<const std::byte> bytes_;
};

}  // namespace fuse_backend::api::detail
