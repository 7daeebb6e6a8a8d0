// vhost_user::Channel: one end of a connected vhost-user unix stream socket, moving whole
// messages (header, payload, SCM_RIGHTS fds) in either direction.
//
// Layer: transport/virtio. Used by the back-end to read front-end requests and send replies, and
// by tests to play the front-end (QEMU) with the same code. A message is read as exactly a
// 12-byte header and then exactly `size` payload bytes: the kernel may glue several messages
// into one recvmsg, and fds belong to the message whose header carried them, so reading
// "whatever is there" would move fds onto the wrong message. Any fds that arrive are owned by the
// Message (closed with it, CLOEXEC set). Blocking I/O, one thread per Channel; noexcept.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

#include <fuse_backend/detail/unique_fd.hpp>
#include <fuse_backend/result.hpp>
#include <fuse_backend/transport/virtio/vhost_user_protocol.hpp>

namespace fuse_backend::transport::virtio::vhost_user {

// One received message. Reused across receive() calls (receive() clears it first).
struct Message {
  Header header{};
  std::array<std::byte, max_payload_size> payload{};
  std::array<detail::UniqueFd, max_fds_per_message> fds{};
  std::size_t fd_count = 0;

  Request request() const noexcept { return static_cast<Request>(header.request); }
  std::span<const std::byte> payload_bytes() const noexcept {
    return {payload.data(), header.size};
  }
  // The payload read as T; the caller has checked the size (payload_size_rule).
  template <class T>
    requires std::is_trivially_copyable_v<T>
  T payload_as(std::size_t offset = 0) const noexcept {
    T value;
    std::memcpy(&value, payload.data() + offset, sizeof(T));
    return value;
  }
  // Takes ownership of received fd `i` (empty when there is none).
  detail::UniqueFd take_fd(std::size_t i = 0) noexcept {
    return i < fd_count ? std::move(fds[i]) : detail::UniqueFd{};
  }
  void clear() noexcept;
};

class Channel {
 public:
  Channel() noexcept = default;
  explicit Channel(detail::UniqueFd socket) noexcept : socket_(std::move(socket)) {}

  bool valid() const noexcept { return socket_.valid(); }
  int fd() const noexcept { return socket_.get(); }
  void close() noexcept { socket_.reset(); }

  // Reads the next message into `message`. true: a message; false: the peer closed the
  // connection cleanly between messages. Errors: protocol_error (EOF inside a message, a header
  // whose version is not 1, more fds than max_fds_per_message), message_size (payload larger
  // than max_payload_size), or the socket's errno.
  Result<bool> receive(Message& message) noexcept;

  // Sends header {request, flags | version 1, payload.size()} + payload, with `fds` attached to
  // the first byte (SCM_RIGHTS). Never raises SIGPIPE (EPIPE instead).
  Result<void> send(std::uint32_t request, std::uint32_t flags, std::span<const std::byte> payload,
                    std::span<const int> fds = {}) noexcept;
  // Raw bytes, for tests that send malformed or partial messages.
  Result<void> send_raw(std::span<const std::byte> bytes, std::span<const int> fds = {}) noexcept;

 private:
  // Reads exactly out.size() bytes, collecting fds into `message`; false on EOF before the first
  // byte when `eof_ok`.
  Result<bool> read_exact(std::span<std::byte> out, Message& message, bool eof_ok) noexcept;

  detail::UniqueFd socket_;
};

// Payload helpers for building messages (replies and test-master requests).
template <class T>
  requires std::is_trivially_copyable_v<T>
std::span<const std::byte> as_bytes_of(const T& value) noexcept {
  return {reinterpret_cast<const std::byte*>(&value), sizeof(T)};
}

}  // namespace fuse_backend::transport::virtio::vhost_user
