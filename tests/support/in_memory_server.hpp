// InMemoryServer<Fs>: a Server<MemoryTransport, Fs> with its reply buffer, initialised as a 6.18
// kernel would, that serves one request at a time from bytes and says how its reply went.
//
// Layer: test support. For replaying a RequestMix (request_mix.hpp) in tests and benchmarks:
// serve() adds no allocation of its own to the Server's (the writer's buffer is allocated once,
// here). The filesystem must outlive it. One thread at a time.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <span>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/api/server.hpp>
#include <support/memory_transport.hpp>
#include <support/message_builder.hpp>

namespace fuse_backend::testing {

template <api::Filesystem Fs>
class InMemoryServer {
 public:
  explicit InMemoryServer(Fs& fs) : server_(fs) { (void)serve(init_request(7, 45, kernel_offer)); }

  // False when INIT failed.
  bool initialized() const noexcept { return server_.initialized(); }

  // Serves one request; the errno its reply carries (0 on success, and for ops without a reply).
  int serve(std::span<const std::byte> message) noexcept {
    MemoryReader reader(message);
    writer_.reset();
    (void)server_.handle(reader, writer_);
    if (writer_.commits() == 0) return 0;
    abi::out_header header;
    std::memcpy(&header, writer_.reply().data(), sizeof header);
    return -header.error;
  }

  // The last reply's payload read as T (an OPEN's open_out, say); zero-filled if shorter.
  template <class T>
  T reply_as() const noexcept {
    const auto payload =
        writer_.reply().subspan(std::min(writer_.reply().size(), sizeof(abi::out_header)));
    T value{};
    std::memcpy(&value, payload.data(), std::min(sizeof value, payload.size()));
    return value;
  }

 private:
  api::Server<MemoryTransport, Fs> server_;
  MemoryWriter writer_;
};

}  // namespace fuse_backend::testing
