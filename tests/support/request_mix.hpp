// RequestMix: named kernel-format requests that a filesystem serves over and over in steady
// state, and the builders for them.
//
// Layer: test support. A mix is built once for the node ids and handles a filesystem gave out
// (ConstantFs's, a PassthroughScene's) and then replayed unchanged: the allocation test
// (tests/unit/api/request_allocations_test.cpp) requires that replaying allocates nothing, and
// bench/server_bench.cpp times each request. Building allocates; replaying is up to the server.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <fuse_backend/abi/kernel.hpp>
#include <support/message_builder.hpp>

namespace fuse_backend::testing {

struct NamedRequest {
  std::string name;  // CamelCase, for test messages and benchmark names
  std::vector<std::byte> message;
  int error = 0;  // the errno its reply must carry (0: success, or no reply)
};
using RequestMix = std::vector<NamedRequest>;

// One builder per request kind; `node` is the request's node id, `fh` a handle from OPEN/OPENDIR.
namespace requests {

using abi::opcode;

inline std::vector<std::byte> lookup(std::uint64_t parent, std::string_view name) {
  return MessageBuilder(opcode::lookup, parent).name(name).build();
}
inline std::vector<std::byte> getattr(std::uint64_t node) {
  return MessageBuilder(opcode::getattr, node).add(abi::getattr_in{}).build();
}
inline std::vector<std::byte> forget(std::uint64_t node, std::uint64_t nlookup) {
  return MessageBuilder(opcode::forget, node).add(abi::forget_in{nlookup}).build();
}
inline std::vector<std::byte> open(std::uint64_t node, std::uint32_t flags) {
  return MessageBuilder(opcode::open, node).add(abi::open_in{flags, 0}).build();
}
inline std::vector<std::byte> opendir(std::uint64_t node) {
  return MessageBuilder(opcode::opendir, node).add(abi::open_in{}).build();
}
inline std::vector<std::byte> release(std::uint64_t node, std::uint64_t fh) {
  return MessageBuilder(opcode::release, node).add(abi::release_in{fh, 0, 0, 0}).build();
}
// The handle / offset / size a READ, WRITE or READDIR carries (read_in or write_in).
template <class In>
In io_in(std::uint64_t fh, std::uint32_t size, std::uint64_t offset) {
  In in{};
  in.fh = fh;
  in.offset = offset;
  in.size = size;
  return in;
}
inline std::vector<std::byte> read(std::uint64_t node, std::uint64_t fh, std::uint32_t size,
                                   std::uint64_t offset = 0) {
  return MessageBuilder(opcode::read, node).add(io_in<abi::read_in>(fh, size, offset)).build();
}
// A WRITE of `size` bytes of 7.
inline std::vector<std::byte> write(std::uint64_t node, std::uint64_t fh, std::uint32_t size,
                                    std::uint64_t offset = 0) {
  return MessageBuilder(opcode::write, node)
      .add(io_in<abi::write_in>(fh, size, offset))
      .bytes(size, std::byte{7})
      .build();
}
// READDIR, or READDIRPLUS with `plus`, of up to `size` bytes from the start.
inline std::vector<std::byte> readdir(std::uint64_t node, std::uint64_t fh, std::uint32_t size,
                                      bool plus = false) {
  return MessageBuilder(plus ? opcode::readdirplus : opcode::readdir, node)
      .add(io_in<abi::read_in>(fh, size, 0))
      .build();
}
// SETATTR of both times to now, through the handle, as touch(1) makes the kernel send.
inline std::vector<std::byte> touch(std::uint64_t node, std::uint64_t fh) {
  namespace fattr = abi::fattr;
  abi::setattr_in in{};
  in.valid = fattr::atime | fattr::atime_now | fattr::mtime | fattr::mtime_now | fattr::fh;
  in.fh = fh;
  return MessageBuilder(opcode::setattr, node).add(in).build();
}
inline std::vector<std::byte> flush(std::uint64_t node, std::uint64_t fh) {
  return MessageBuilder(opcode::flush, node).add(abi::flush_in{fh, 0, 0, 0}).build();
}
inline std::vector<std::byte> fsync(std::uint64_t node, std::uint64_t fh) {
  return MessageBuilder(opcode::fsync, node).add(abi::fsync_in{fh, 0, 0}).build();
}
inline std::vector<std::byte> statfs(std::uint64_t node) {
  return MessageBuilder(opcode::statfs, node).build();
}

}  // namespace requests
}  // namespace fuse_backend::testing
