// RequestObserver: the metrics / tracing hook of the Server.
//
// Layer: api. Called on the worker thread around every request (after the header was decoded, and
// once the reply was sent or dropped); must be thread-safe and cheap. With no observer installed
// the Server pays one null check per request.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <cstddef>
#include <cstdint>

#include <fuse_backend/abi/kernel.hpp>

namespace fuse_backend::api {

class RequestObserver {
 public:
  virtual void on_request(const abi::in_header& header) noexcept = 0;
  // `error` is the errno sent (0 on success, -1 when no reply was sent); `reply_size` the bytes.
  virtual void on_reply(const abi::in_header& header, int error, std::size_t reply_size) noexcept = 0;

 protected:
  ~RequestObserver() = default;
};

}  // namespace fuse_backend::api
