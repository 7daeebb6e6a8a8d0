// The /dev/fuse channel: request reads, one-writev replies, notifications, backing-file ioctls.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/transport/fusedev/channel.hpp>

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include <fuse_backend/detail/syscall.hpp>

namespace fuse_backend::transport::fusedev {

Result<std::size_t> Reader::read_to(int fd, std::size_t count, std::uint64_t offset) noexcept {
  const std::size_t n = std::min(count, data_.size());
  if (n == 0) return std::size_t{0};
  auto written = detail::syscall_result<std::size_t>(
      [&] { return ::pwrite(fd, data_.data(), n, static_cast<off_t>(offset)); });
  if (written) data_ = data_.subspan(*written);
  return written;
}

std::size_t Reader::read(std::span<std::byte> out) noexcept {
  const std::size_t n = std::min(out.size(), data_.size());
  if (n != 0) std::memcpy(out.data(), data_.data(), n);
  data_ = data_.subspan(n);
  return n;
}

Result<void> Channel::send(const abi::out_header& header, std::span<const std::byte> payload) noexcept {
  std::array<iovec, 2> iov{{{const_cast<abi::out_header*>(&header), sizeof(header)},
                            {const_cast<std::byte*>(payload.data()), payload.size()}}};
  const int count = payload.empty() ? 1 : 2;
  return detail::syscall_void([&] { return ::writev(fd_, iov.data(), count); });
}

Result<std::size_t> Writer::write_from(int fd, std::size_t count, std::uint64_t offset) noexcept {
  const std::size_t n = std::min(count, available());
  if (n == 0) return std::size_t{0};
  auto got = detail::syscall_result<std::size_t>(
      [&] { return ::pread(fd, buffer_.data() + used_, n, static_cast<off_t>(offset)); });
  if (got) used_ += *got;
  return got;
}

std::size_t Writer::write(std::span<const std::byte> in) noexcept {
  const std::size_t n = std::min(in.size(), available());
  if (n != 0) std::memcpy(buffer_.data() + used_, in.data(), n);
  used_ += n;
  return n;
}

Result<void> DeviceNotifier::send(std::span<const iovec> message) noexcept {
  if (message.empty() || message.size() > IOV_MAX) return fail(std::errc::invalid_argument);
  return detail::syscall_void(
      [&] { return ::writev(fd_, message.data(), static_cast<int>(message.size())); });
}

Result<std::int32_t> DeviceBackingFiles::open(int fd) noexcept {
  abi::backing_map map{};
  map.fd = fd;
  return detail::syscall_result<std::int32_t>(
      [&] { return ::ioctl(fd_, abi::dev_ioc_backing_open, &map); });
}

Result<void> DeviceBackingFiles::close(std::int32_t backing_id) noexcept {
  return detail::syscall_void([&] { return ::ioctl(fd_, abi::dev_ioc_backing_close, &backing_id); });
}

Channel::Channel(int fd, std::size_t buffer_size, std::chrono::microseconds busy_poll)
    : fd_(fd),
      busy_poll_(busy_poll),
      request_(std::max(buffer_size, min_read_buffer)),
      reply_(std::max(buffer_size, min_read_buffer)) {}

Channel::Channel(detail::UniqueFd owned, std::size_t buffer_size, std::chrono::microseconds busy_poll)
    : Channel(owned.get(), buffer_size, busy_poll) {
  owned_ = std::move(owned);
}

Result<Channel> Channel::clone(int session_fd, std::size_t buffer_size, std::chrono::microseconds busy_poll) {
  const int flags = O_RDWR | O_CLOEXEC | (busy_poll.count() > 0 ? O_NONBLOCK : 0);
  auto opened = detail::syscall_result<int>([&] { return ::open("/dev/fuse", flags); });
  if (!opened) return fail(opened.error());
  detail::UniqueFd fd(*opened);
  auto source = static_cast<std::uint32_t>(session_fd);
  if (auto cloned = detail::syscall_void([&] { return ::ioctl(fd.get(), abi::dev_ioc_clone, &source); });
      !cloned) {
    return fail(cloned.error());
  }
  return Channel(std::move(fd), buffer_size, busy_poll);
}

Result<Reader> Channel::receive(api::BackingFiles* backing, const std::atomic<bool>* stop) noexcept {
  std::optional<std::chrono::steady_clock::time_point> idle_since;
  for (;;) {
    // syscall_result retries EINTR by calling this again: the flag is re-checked after every
    // interruption, so the signal stop() sends ends a blocked read.
    auto got = detail::syscall_result<std::size_t>([&]() -> ssize_t {
      if (stop != nullptr && stop->load(std::memory_order_acquire)) {
        errno = ECANCELED;
        return -1;
      }
      return ::read(fd_, request_.data(), request_.size());
    });
    if (got) return Reader(std::span<const std::byte>(request_.data(), *got), backing);
    // ENOENT: the request was interrupted and dropped between poll and read; take the next.
    if (got.error() == std::errc::no_such_file_or_directory) continue;
    if (got.error() == std::errc::resource_unavailable_try_again && await_request(idle_since)) continue;
    return fail(got.error());
  }
}

bool Channel::await_request(std::optional<std::chrono::steady_clock::time_point>& idle_since) const noexcept {
  if (busy_poll_.count() <= 0) return false;
  const auto now = std::chrono::steady_clock::now();
  if (!idle_since) idle_since = now;
  if (now - *idle_since < busy_poll_) {
    // Polite polling: a thread waiting for this CPU runs first (often the caller about to send
    // the next request); without one this returns at once.
    (void)::sched_yield();
    return true;
  }
  // Idle for the whole window: sleep until a request is queued. A signal (stop()) interrupts the
  // poll and the read that follows checks the flag; an error shows up in that read too.
  pollfd readable{fd_, POLLIN, 0};
  (void)::poll(&readable, 1, -1);
  idle_since.reset();
  return true;
}

}  // namespace fuse_backend::transport::fusedev
