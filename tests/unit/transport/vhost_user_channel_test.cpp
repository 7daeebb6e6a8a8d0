// vhost_user::Channel over a real socketpair: exact message framing, fds staying with their
// message when the kernel glues messages, and malformed input rejected without a crash.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include <fuse_backend/transport/virtio/vhost_user_channel.hpp>

namespace vu = fuse_backend::transport::virtio::vhost_user;
using fuse_backend::detail::UniqueFd;

namespace {

struct Pair {
  vu::Channel a;
  vu::Channel b;
};

Pair make_pair() {
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  return {vu::Channel(UniqueFd(sv[0])), vu::Channel(UniqueFd(sv[1]))};
}

UniqueFd make_eventfd() { return UniqueFd(::eventfd(0, EFD_CLOEXEC)); }

ino_t inode_of(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return st.st_ino;
}

std::vector<std::byte> header_bytes(std::uint32_t request, std::uint32_t flags,
                                    std::uint32_t size) {
  const vu::Header h{request, flags, size};
  const auto bytes = vu::as_bytes_of(h);
  return {bytes.begin(), bytes.end()};
}

}  // namespace

TEST(VhostUserChannel, RoundTripsPayloadAndFds) {
  auto [a, b] = make_pair();
  const std::uint64_t value = 0x1234'5678'9abc'def0;
  auto efd = make_eventfd();
  const int fds[] = {efd.get()};
  ASSERT_TRUE(a.send(static_cast<std::uint32_t>(vu::Request::set_vring_call), vu::flags::need_reply,
                     vu::as_bytes_of(value), fds));
  vu::Message m;
  auto got = b.receive(m);
  ASSERT_TRUE(got);
  EXPECT_TRUE(*got);
  EXPECT_EQ(m.request(), vu::Request::set_vring_call);
  EXPECT_EQ(m.header.flags, vu::flags::version | vu::flags::need_reply);
  EXPECT_EQ(m.header.size, 8u);
  EXPECT_EQ(m.payload_as<std::uint64_t>(), value);
  ASSERT_EQ(m.fd_count, 1u);
  auto received = m.take_fd();
  EXPECT_EQ(inode_of(received.get()), inode_of(efd.get()));
  EXPECT_FALSE(m.take_fd(1).valid());
}

TEST(VhostUserChannel, GluedMessagesKeepTheirOwnFds) {
  auto [a, b] = make_pair();
  // Three messages written before the reader looks: the kernel may hand them over in one
  // recvmsg; only the middle one carries an fd.
  const std::uint64_t features = 1;
  ASSERT_TRUE(a.send(static_cast<std::uint32_t>(vu::Request::set_features), 0,
                     vu::as_bytes_of(features)));
  auto efd = make_eventfd();
  const int fds[] = {efd.get()};
  const std::uint64_t kick = 1;
  ASSERT_TRUE(a.send(static_cast<std::uint32_t>(vu::Request::set_vring_kick), 0,
                     vu::as_bytes_of(kick), fds));
  ASSERT_TRUE(a.send(static_cast<std::uint32_t>(vu::Request::get_features), 0, {}));

  vu::Message m;
  ASSERT_TRUE(b.receive(m));
  EXPECT_EQ(m.request(), vu::Request::set_features);
  EXPECT_EQ(m.fd_count, 0u);
  ASSERT_TRUE(b.receive(m));
  EXPECT_EQ(m.request(), vu::Request::set_vring_kick);
  EXPECT_EQ(m.fd_count, 1u);
  ASSERT_TRUE(b.receive(m));
  EXPECT_EQ(m.request(), vu::Request::get_features);
  EXPECT_EQ(m.header.size, 0u);
  EXPECT_EQ(m.fd_count, 0u);
}

TEST(VhostUserChannel, CleanCloseBetweenMessagesIsNotAnError) {
  auto [a, b] = make_pair();
  a.close();
  vu::Message m;
  auto got = b.receive(m);
  ASSERT_TRUE(got);
  EXPECT_FALSE(*got);
}

TEST(VhostUserChannel, ShortHeaderIsAProtocolError) {
  auto [a, b] = make_pair();
  const auto bytes = header_bytes(1, vu::flags::version, 0);
  ASSERT_TRUE(a.send_raw({bytes.data(), 5}));
  a.close();
  vu::Message m;
  auto got = b.receive(m);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error(), std::errc::protocol_error);
}

TEST(VhostUserChannel, ShortPayloadIsAProtocolError) {
  auto [a, b] = make_pair();
  auto bytes = header_bytes(2, vu::flags::version, 8);
  bytes.resize(bytes.size() + 3);
  ASSERT_TRUE(a.send_raw(bytes));
  a.close();
  vu::Message m;
  auto got = b.receive(m);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error(), std::errc::protocol_error);
}

TEST(VhostUserChannel, WrongVersionIsAProtocolError) {
  auto [a, b] = make_pair();
  ASSERT_TRUE(a.send_raw(header_bytes(1, 2, 0)));
  vu::Message m;
  auto got = b.receive(m);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error(), std::errc::protocol_error);
}

TEST(VhostUserChannel, OversizedPayloadIsRejectedBeforeReading) {
  auto [a, b] = make_pair();
  ASSERT_TRUE(a.send_raw(header_bytes(5, vu::flags::version, 0x7fff'ffff)));
  vu::Message m;
  auto got = b.receive(m);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error(), std::errc::message_size);
}

TEST(VhostUserChannel, TooManyFdsAreClosedAndRejected) {
  auto [a, b] = make_pair();
  std::vector<UniqueFd> owned;
  std::vector<int> fds;
  for (std::size_t i = 0; i < vu::max_fds_per_message + 1; ++i) {
    owned.push_back(make_eventfd());
    fds.push_back(owned.back().get());
  }
  // Channel::send refuses to send that many itself, so build the message by hand.
  const auto bytes = header_bytes(5, vu::flags::version, 0);
  ASSERT_FALSE(a.send_raw(bytes, fds));
  const int count = static_cast<int>(fds.size());
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 16)] = {};
  iovec iov{const_cast<std::byte*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * static_cast<std::size_t>(count));
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * static_cast<std::size_t>(count));
  std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  ASSERT_EQ(::sendmsg(a.fd(), &msg, 0), static_cast<ssize_t>(bytes.size()));

  vu::Message m;
  auto got = b.receive(m);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error(), std::errc::protocol_error);
}

TEST(VhostUserChannel, PeerGoneGivesEpipeNotSignal) {
  auto [a, b] = make_pair();
  b.close();
  auto sent = a.send(1, 0, {});
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error(), std::errc::broken_pipe);
}
