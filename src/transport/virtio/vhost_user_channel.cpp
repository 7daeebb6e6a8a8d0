// vhost_user::Channel: exact header-then-payload reads with SCM_RIGHTS, whole-message sends.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/transport/virtio/vhost_user_channel.hpp>

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>

#include <fuse_backend/detail/syscall.hpp>

namespace fuse_backend::transport::virtio::vhost_user {

void Message::clear() noexcept {
  header = {};
  for (std::size_t i = 0; i < fd_count; ++i) fds[i].reset();
  fd_count = 0;
}

namespace {

// Room for one more fd than a message may carry, so an oversized batch is seen as such instead
// of as MSG_CTRUNC of a legal one.
constexpr std::size_t control_fds = max_fds_per_message + 1;
struct ControlBuffer {
  alignas(cmsghdr) char bytes[CMSG_SPACE(sizeof(int) * control_fds)];
};

}  // namespace

Result<bool> Channel::read_exact(std::span<std::byte> out, Message& message,
                                 bool eof_ok) noexcept {
  std::size_t done = 0;
  bool too_many_fds = false;
  while (done < out.size()) {
    iovec iov{out.data() + done, out.size() - done};
    ControlBuffer control{};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.bytes;
    msg.msg_controllen = sizeof(control.bytes);
    auto n = detail::syscall_result<std::size_t>(
        [&] { return ::recvmsg(socket_.get(), &msg, MSG_CMSG_CLOEXEC); });
    if (!n) return fail(n.error());
    // Take every fd that arrived before judging the message, so none leaks.
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      const auto* data = CMSG_DATA(c);
      for (std::size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, data + i * sizeof(int), sizeof(int));
        if (message.fd_count < message.fds.size()) {
          message.fds[message.fd_count++].reset(fd);
        } else {
          detail::UniqueFd discard(fd);
          too_many_fds = true;
        }
      }
    }
    if ((msg.msg_flags & MSG_CTRUNC) != 0) too_many_fds = true;
    if (*n == 0) {
      if (done == 0 && eof_ok && !too_many_fds && message.fd_count == 0) return false;
      return fail(std::errc::protocol_error);
    }
    done += *n;
  }
  if (too_many_fds) return fail(std::errc::protocol_error);
  return true;
}

Result<bool> Channel::receive(Message& message) noexcept {
  message.clear();
  auto got = read_exact({reinterpret_cast<std::byte*>(&message.header), sizeof(Header)}, message,
                        true);
  if (!got || !*got) return got;
  if ((message.header.flags & flags::version_mask) != flags::version)
    return fail(std::errc::protocol_error);
  if (message.header.size > max_payload_size) return fail(std::errc::message_size);
  if (message.header.size > 0) {
    got = read_exact({message.payload.data(), message.header.size}, message, false);
    if (!got) return got;
  }
  return true;
}

Result<void> Channel::send_raw(std::span<const std::byte> bytes, std::span<const int> fds) noexcept {
  if (fds.size() > max_fds_per_message) return fail(std::errc::invalid_argument);
  std::size_t done = 0;
  bool fds_sent = fds.empty();
  while (done < bytes.size() || !fds_sent) {
    iovec iov{const_cast<std::byte*>(bytes.data()) + done, bytes.size() - done};
    ControlBuffer control{};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (!fds_sent) {
      msg.msg_control = control.bytes;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    auto n = detail::syscall_result<std::size_t>(
        [&] { return ::sendmsg(socket_.get(), &msg, MSG_NOSIGNAL); });
    if (!n) return fail(n.error());
    fds_sent = true;
    done += *n;
  }
  return {};
}

Result<void> Channel::send(std::uint32_t request, std::uint32_t message_flags,
                           std::span<const std::byte> payload, std::span<const int> fds) noexcept {
  if (payload.size() > max_payload_size) return fail(std::errc::message_size);
  std::array<std::byte, sizeof(Header) + max_payload_size> buffer;
  const Header header{request, (message_flags & ~flags::version_mask) | flags::version,
                      static_cast<std::uint32_t>(payload.size())};
  std::memcpy(buffer.data(), &header, sizeof header);
  std::copy(payload.begin(), payload.end(), buffer.begin() + sizeof header);
  return send_raw({buffer.data(), sizeof header + payload.size()}, fds);
}

}  // namespace fuse_backend::transport::virtio::vhost_user
