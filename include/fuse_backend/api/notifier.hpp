// Notifier: how unsolicited messages (notifications) reach the kernel through a transport.
//
// Layer: api. /dev/fuse implements it with one writev on the device fd; a virtio-fs device
// without a notification queue answers ENOTSUP. The messages themselves are built by
// api/notify.hpp. Implementations are thread-safe.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sys/uio.h>

#include <span>

#include <fuse_backend/result.hpp>

namespace fuse_backend::api {

class Notifier {
 public:
  // Sends one whole message: message[0] is the abi::out_header (unique 0, error = notify code,
  // len = total length), the rest its payload.
  virtual Result<void> send(std::span<const iovec> message) noexcept = 0;

 protected:
  ~Notifier() = default;
};

}  // namespace fuse_backend::api
