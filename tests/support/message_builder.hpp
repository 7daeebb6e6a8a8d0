// MessageBuilder / ParsedReply: real kernel-format FUSE requests and replies, for tests, the
// fuzzer's seed corpus and benchmarks.
//
// Layer: test support. A builder appends wire structs, NUL-terminated names, raw bytes and
// extension headers after an in_header, and fills in len / total_extlen at build() (or leaves a
// deliberately wrong len for malformed-input tests). Plain values; allocation is fine here.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

#include <fuse_backend/abi/kernel.hpp>

namespace fuse_backend::testing {

class MessageBuilder {
 public:
  explicit MessageBuilder(abi::opcode op, std::uint64_t nodeid = 1, std::uint64_t unique = 2) {
    header_.opcode = static_cast<std::uint32_t>(op);
    header_.nodeid = nodeid;
    header_.unique = unique;
    header_.uid = 1000;
    header_.gid = 1000;
    header_.pid = 4242;
  }

  MessageBuilder& caller(std::uint32_t uid, std::uint32_t gid, std::uint32_t pid) {
    header_.uid = uid;
    header_.gid = gid;
    header_.pid = pid;
    return *this;
  }
  template <class T>
    requires std::is_trivially_copyable_v<T>
  MessageBuilder& add(const T& value) {
    return bytes(std::as_bytes(std::span<const T, 1>(&value, 1)));
  }
  // A name with its terminating NUL.
  MessageBuilder& name(std::string_view text) {
    bytes(std::as_bytes(std::span<const char>(text.data(), text.size())));
    body_.push_back(std::byte{0});
    return *this;
  }
  MessageBuilder& bytes(std::span<const std::byte> data) {
    body_.insert(body_.end(), data.begin(), data.end());
    return *this;
  }
  MessageBuilder& bytes(std::size_t count, std::byte fill) {
    body_.insert(body_.end(), count, fill);
    return *this;
  }
  // The FUSE_EXT_GROUPS extension (7.38) with these supplementary groups.
  MessageBuilder& groups(std::span<const std::uint32_t> gids) {
    const std::size_t payload = sizeof(abi::supp_groups) + gids.size() * sizeof(std::uint32_t);
    const std::size_t size = (sizeof(abi::ext_header) + payload + 7) & ~std::size_t{7};
    const abi::ext_header ext{static_cast<std::uint32_t>(size), static_cast<std::uint32_t>(abi::ext_type::groups)};
    const abi::supp_groups list{static_cast<std::uint32_t>(gids.size())};
    append(extensions_, ext);
    append(extensions_, list);
    for (auto gid : gids) append(extensions_, gid);
    extensions_.resize(extensions_.size() + (size - sizeof(ext) - payload));
    return *this;
  }

  // The request with a correct len (or `len_override` for malformed-input tests).
  std::vector<std::byte> build(std::optional<std::uint32_t> len_override = std::nullopt) const {
    abi::in_header header = header_;
    const std::size_t total = sizeof(header) + body_.size() + extensions_.size();
    header.len = len_override.value_or(static_cast<std::uint32_t>(total));
    header.total_extlen = static_cast<std::uint16_t>(extensions_.size() / 8);
    std::vector<std::byte> message;
    append(message, header);
    message.insert(message.end(), body_.begin(), body_.end());
    message.insert(message.end(), extensions_.begin(), extensions_.end());
    return message;
  }

 private:
  template <class T>
  static void append(std::vector<std::byte>& out, const T& value) {
    const auto* first = reinterpret_cast<const std::byte*>(&value);
    out.insert(out.end(), first, first + sizeof(T));
  }

  abi::in_header header_{};
  std::vector<std::byte> body_;
  std::vector<std::byte> extensions_;
};

// Everything a 6.18 kernel offers at INIT (see shared/reference/kernel-abi.md).
inline constexpr std::uint64_t kernel_offer = 0x73fffffbull | (0x7fdull << 32);

// The INIT request a kernel of version major.minor sends, offering `flags` (64-bit init flags;
// flags2 is only sent from 7.36 on, as the kernel does).
inline std::vector<std::byte> init_request(std::uint32_t major, std::uint32_t minor, std::uint64_t flags,
                                           std::uint32_t max_readahead = 1u << 17) {
  abi::init_in in{};
  in.major = major;
  in.minor = minor;
  in.max_readahead = max_readahead;
  in.flags = static_cast<std::uint32_t>(flags);
  in.flags2 = static_cast<std::uint32_t>(flags >> 32);
  MessageBuilder builder(abi::opcode::init, 0, 1);
  if (minor >= 36) return builder.add(in).build();
  return builder.bytes(std::as_bytes(std::span(&in, 1)).first(abi::compat_init_in_size)).build();
}

// A reply as the kernel would parse it.
struct ParsedReply {
  abi::out_header header{};
  std::vector<std::byte> payload;

  static ParsedReply parse(std::span<const std::byte> bytes) {
    ParsedReply reply;
    if (bytes.size() < sizeof(abi::out_header)) return reply;
    std::memcpy(&reply.header, bytes.data(), sizeof(abi::out_header));
    reply.payload.assign(bytes.begin() + sizeof(abi::out_header), bytes.end());
    return reply;
  }
  int error() const { return -header.error; }
  // The payload as a wire struct (zero-filled if the payload is shorter).
  template <class T>
  T as(std::size_t offset = 0) const {
    T value{};
    if (offset < payload.size()) std::memcpy(&value, payload.data() + offset, std::min(sizeof(T), payload.size() - offset));
    return value;
  }
  std::string_view text() const { return {reinterpret_cast<const char*>(payload.data()), payload.size()}; }
};

}  // namespace fuse_backend::testing
