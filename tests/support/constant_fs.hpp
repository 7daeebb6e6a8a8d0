// ConstantFs: a filesystem that answers lookup, getattr, forget, open, read, write and readdir
// from constants, and the request mix that exercises each of them.
//
// Layer: test support. Its handlers cost (next to) nothing and allocate nothing, so what a
// request costs through Server<MemoryTransport, ConstantFs> is the Server's own decode, dispatch
// and encode: bench/server_bench.cpp times that, tests/unit/api/request_allocations_test.cpp
// requires it to allocate nothing. Stateless; thread-safe.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include <fuse_backend/api/filesystem.hpp>
#include <support/message_builder.hpp>
#include <support/request_mix.hpp>

namespace fuse_backend::testing {

struct ConstantFs {
  api::Entry entry{api::InodeId{2}, 1, {}, 0, std::chrono::seconds(1), std::chrono::seconds(1)};
  Result<api::Entry> lookup(const api::Context&, api::InodeId, std::string_view) { return entry; }
  Result<api::AttrReply> getattr(const api::Context&, api::InodeId, std::optional<api::HandleId>) {
    return api::AttrReply{entry.attr, 0, std::chrono::seconds(1)};
  }
  void forget(const api::Context&, api::InodeId, std::uint64_t) {}
  Result<api::OpenReply> open(const api::Context&, api::InodeId, std::uint32_t, std::uint32_t) {
    return api::OpenReply{};
  }
  Result<std::size_t> read(const api::Context&, api::InodeId, api::HandleId,
                           api::ZeroCopyWriter& out, std::uint32_t size, std::uint64_t,
                           std::uint32_t) {
    static const std::array<std::byte, 4096> page{};
    return out.write(std::span(page).first(std::min<std::size_t>(size, page.size())));
  }
  Result<std::size_t> write(const api::Context&, api::InodeId, api::HandleId,
                            api::ZeroCopyReader& in, std::uint32_t, std::uint64_t, std::uint32_t,
                            std::uint32_t) {
    std::array<std::byte, 4096> sink;
    return in.read(sink);
  }
  Result<void> readdir(const api::Context&, api::InodeId, api::HandleId, std::uint64_t offset,
                       api::DirSink& sink) {
    for (std::uint64_t i = offset; i < 32; ++i) {
      if (!sink.add(api::DirEntry{i + 10, i + 1, 8, "some-file-name"})) break;
    }
    return {};
  }
};

// One request per op ConstantFs has, plus an opcode no kernel sends (answered ENOSYS).
inline RequestMix constant_fs_mix() {
  namespace r = requests;
  return {
      {"Lookup", r::lookup(1, "a-file-name")},
      {"Getattr", r::getattr(1)},
      {"Forget", r::forget(1, 1)},
      {"Open", r::open(1, 0)},
      {"Read4k", r::read(1, 0, 4096)},
      {"Write4k", r::write(1, 0, 4096)},
      {"Readdir", r::readdir(1, 0, 4096)},
      {"UnknownOpcode", MessageBuilder(static_cast<abi::opcode>(999)).build(), ENOSYS},
  };
}

}  // namespace fuse_backend::testing
