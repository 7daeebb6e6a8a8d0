// The /dev/fuse channel: request reads, one-writev replies, notifications, backing-file ioctls.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/transport/fusedev/channel.hpp>

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include <fuse_backend/detail/status_flags.hpp>
#include <fuse_backend/detail/syscall.hpp>

namespace fuse_backend::transport::fusedev {

namespace {

// Reads `count` bytes that are already in pipe `fd` (a spliced request), all of them unless the
// pipe fails, which it cannot while they are there; returns how many it read.
std::size_t read_from_pipe(int fd, std::byte* into, std::size_t count) noexcept {
  std::size_t done = 0;
  while (done < count) {
    auto got = detail::syscall_result<std::size_t>([&] { return ::read(fd, into + done, count - done); });
    if (!got || *got == 0) break;
    done += *got;
  }
  return done;
}

// read_from_pipe() for bytes the channel cannot do without (a request's own).
Result<void> read_exactly(int fd, std::byte* into, std::size_t count) noexcept {
  if (read_from_pipe(fd, into, count) != count) return fail(std::errc::io_error);
  return {};
}

// Whether the request whose first `size` bytes are `request` is a WRITE worth splicing.
bool large_write(const std::byte* request, std::size_t size) noexcept {
  if (size < splice_write_threshold) return false;
  abi::in_header header;
  std::memcpy(&header, request, sizeof(header));
  return header.opcode == static_cast<std::uint32_t>(abi::opcode::write);
}

}  // namespace

Result<std::size_t> Reader::read_to(int fd, std::size_t count, std::uint64_t offset,
                                    api::WriteAt at) noexcept {
  if (data_.empty() && piped_left_ != 0 && count != 0) {
    if (at == api::WriteAt::offset) {
      auto target = static_cast<loff_t>(offset);
      auto moved = detail::syscall_result<std::size_t>([&] {
        return ::splice(piped_->fd, nullptr, fd, &target, std::min(count, piped_left_), SPLICE_F_NONBLOCK);
      });
      if (moved) {
        consume_piped(*moved);
        return moved;
      }
      if (moved.error() != std::errc::invalid_argument) return moved;
    }
    // An append, or a target that takes no splice (one opened O_APPEND, or a filesystem without
    // splice support): copy into the request buffer and write from there.
    const std::size_t n = read_piped(spare_.data(), std::min({count, piped_left_, spare_.size()}));
    data_ = std::span<const std::byte>(spare_.data(), n);
  }
  const std::size_t n = std::min(count, data_.size());
  if (n == 0) return std::size_t{0};
  const iovec bytes{const_cast<std::byte*>(data_.data()), n};
  auto written = detail::syscall_result<std::size_t>(
      [&] { return ::pwritev2(fd, &bytes, 1, static_cast<off_t>(offset), api::pwritev2_flags(at)); });
  if (written) data_ = data_.subspan(*written);
  return written;
}

std::size_t Reader::read(std::span<std::byte> out) noexcept {
  const std::size_t n = std::min(out.size(), data_.size());
  if (n != 0) std::memcpy(out.data(), data_.data(), n);
  data_ = data_.subspan(n);
  return n + read_piped(out.data() + n, std::min(out.size() - n, piped_left_));
}

std::size_t Reader::read_piped(std::byte* into, std::size_t count) noexcept {
  if (count == 0) return 0;  // also when nothing was piped (piped_ null)
  const std::size_t done = read_from_pipe(piped_->fd, into, count);
  consume_piped(done);
  return done;
}

Result<void> Channel::send(const abi::out_header& header, std::span<const std::byte> payload) noexcept {
  std::byte* const start = reply_.data();
  if (payload.empty() || payload.data() == start + sizeof(header)) {
    std::memcpy(start, &header, sizeof(header));
    return detail::syscall_void([&] { return ::write(fd_, start, sizeof(header) + payload.size()); });
  }
  std::array<iovec, 2> iov{{{const_cast<abi::out_header*>(&header), sizeof(header)},
                            {const_cast<std::byte*>(payload.data()), payload.size()}}};
  return detail::syscall_void([&] { return ::writev(fd_, iov.data(), static_cast<int>(iov.size())); });
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

Channel::Channel(int fd, std::size_t buffer_size, ReceiveOptions options)
    : fd_(fd),
      busy_poll_(options.busy_poll),
      answering_(options.answering),
      request_(std::max(buffer_size, min_read_buffer)),
      reply_(std::max(buffer_size, min_read_buffer) + sizeof(abi::out_header)) {
  if (options.splice_writes) open_pipe();
  if (busy_poll_.count() > 0) open_sleep_fd();
}

void Channel::open_sleep_fd() noexcept {
  detail::UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll.valid()) return;
  epoll_event event{};
  event.events = EPOLLIN | EPOLLEXCLUSIVE;
  if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd_, &event) != 0) return;
  sleep_fd_ = std::move(epoll);
}

Channel::Channel(detail::UniqueFd owned, std::size_t buffer_size, ReceiveOptions options)
    : Channel(owned.get(), buffer_size, options) {
  owned_ = std::move(owned);
}

void Channel::open_pipe() noexcept {
  std::array<int, 2> ends{};
  if (::pipe2(ends.data(), O_CLOEXEC | O_NONBLOCK) != 0) return;
  detail::UniqueFd read_end(ends[0]), write_end(ends[1]);
  // The largest request is a WRITE of max_write bytes, the buffer's size less a page (header
  // room, see Server::buffer_size()): a slot per page it touches (one more than its pages when
  // it does not start on a page boundary) and one for the page its header is copied into. Too
  // few, and the kernel fails the request after taking it from its queue.
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const std::size_t needed = ((request_.size() + page - 1) / page + 1) * page;
  if (::fcntl(write_end.get(), F_SETPIPE_SZ, static_cast<int>(needed)) < 0) return;
  pipe_read_ = std::move(read_end);
  pipe_write_ = std::move(write_end);
  piped_.fd = pipe_read_.get();
}

Result<Channel> Channel::clone(int session_fd, std::size_t buffer_size, ReceiveOptions options) {
  const int flags = O_RDWR | O_CLOEXEC | (options.busy_poll.count() > 0 ? O_NONBLOCK : 0);
  auto opened = detail::syscall_result<int>([&] { return ::open("/dev/fuse", flags); });
  if (!opened) return fail(opened.error());
  detail::UniqueFd fd(*opened);
  auto source = static_cast<std::uint32_t>(session_fd);
  if (auto cloned = detail::syscall_void([&] { return ::ioctl(fd.get(), abi::dev_ioc_clone, &source); });
      !cloned) {
    return fail(cloned.error());
  }
  return Channel(std::move(fd), buffer_size, options);
}

Result<std::size_t> Channel::take(const std::atomic<bool>* stop, bool splicing) noexcept {
  // syscall_result retries EINTR by calling this again: the flag is re-checked after every
  // interruption, so the signal stop() sends ends a blocked read.
  return detail::syscall_result<std::size_t>([&]() -> ssize_t {
    if (stop != nullptr && stop->load(std::memory_order_acquire)) {
      errno = ECANCELED;
      return -1;
    }
    // The whole buffer's length either way: the kernel fails a request that does not fit.
    return splicing ? ::splice(fd_, nullptr, pipe_write_.get(), nullptr, request_.size(), 0)
                    : ::read(fd_, request_.data(), request_.size());
  });
}

Result<Reader> Channel::unpipe(std::size_t size, api::BackingFiles* backing) noexcept {
  ++spliced_requests_;
  const std::size_t head = std::min(size, sizeof(abi::in_header) + sizeof(abi::write_in));
  if (auto got = read_exactly(pipe_read_.get(), request_.data(), head); !got) return fail(got.error());
  after_large_write_ = large_write(request_.data(), size);
  if (!after_large_write_) {
    if (auto got = read_exactly(pipe_read_.get(), request_.data() + head, size - head); !got) {
      return fail(got.error());
    }
    return Reader(std::span<const std::byte>(request_.data(), size), backing);
  }
  piped_.unread = size - head;
  return Reader(std::span<const std::byte>(request_.data(), head), piped_,
                std::span<std::byte>(request_).subspan(head), backing);
}

Result<void> Channel::drain_pipe() noexcept {
  while (piped_.unread != 0) {
    const std::size_t count = std::min(piped_.unread, request_.size());
    if (auto got = read_exactly(pipe_read_.get(), request_.data(), count); !got) return got;
    piped_.unread -= count;
  }
  return {};
}

Result<Reader> Channel::receive(api::BackingFiles* backing, const std::atomic<bool>* stop) noexcept {
  if (counted_) answering_->fetch_sub(1, std::memory_order_relaxed);
  auto got = take_request(backing, stop);
  counted_ = got && answering_ != nullptr;
  if (counted_) answering_->fetch_add(1, std::memory_order_relaxed);
  return got;
}

Result<Reader> Channel::take_request(api::BackingFiles* backing,
                                     const std::atomic<bool>* stop) noexcept {
  if (auto drained = drain_pipe(); !drained) return fail(drained.error());
  std::optional<std::chrono::steady_clock::time_point> idle_since;
  bool queued = true;  // until a read finds the queue empty
  for (;;) {
    const bool splicing = after_large_write_ && splices();
    auto got = take(stop, splicing);
    if (got) count_request(queued);
    if (got && splicing) return unpipe(*got, backing);
    if (got) {
      after_large_write_ = large_write(request_.data(), *got);
      return Reader(std::span<const std::byte>(request_.data(), *got), backing);
    }
    // ENOENT: the request was interrupted and dropped between poll and read; take the next.
    if (got.error() == std::errc::no_such_file_or_directory) continue;
    if (got.error() == std::errc::resource_unavailable_try_again) {
      queued = false;
      if (await_request(idle_since)) continue;
    }
    if (splicing && got.error() != std::errc::operation_canceled && got.error() != std::errc::no_such_device) {
      // A splice the kernel refused (it cannot have taken a request then, or that request has
      // already been failed back to its caller) never ends the service for a speed-up: read
      // from now on. A fault of the device itself shows up again in the read.
      pipe_write_.reset();
      pipe_read_.reset();
      continue;
    }
    return fail(got.error());
  }
}

void Channel::count_request(bool queued) noexcept {
  queued_in_a_row_ = queued ? std::min(queued_in_a_row_ + 1, queued_in_a_row_to_pause) : 0;
  if (queued_in_a_row_ >= queued_in_a_row_to_pause) {
    polls_paused_for_ = poll_pause_requests;
  } else if (polls_paused_for_ != 0) {
    --polls_paused_for_;
  }
}

bool Channel::stop_waiting() noexcept {
  busy_poll_ = {};
  return detail::set_status_flag(fd_, O_NONBLOCK, true).has_value();
}

bool Channel::await_request(std::optional<std::chrono::steady_clock::time_point>& idle_since) const noexcept {
  if (busy_poll_.count() <= 0) return false;
  const auto now = std::chrono::steady_clock::now();
  if (!idle_since) idle_since = now;
  // No window after a large WRITE: its caller has the next one's data to copy first, which takes
  // longer than the window (and an empty splice attempt costs the kernel an allocation).
  // Nor while another channel answers a request (ReceiveOptions::answering), nor while paused
  // (receive()).
  const bool others_answer =
      answering_ != nullptr && answering_->load(std::memory_order_relaxed) != 0;
  if (!after_large_write_ && !others_answer && polls_paused_for_ == 0 &&
      now - *idle_since < busy_poll_) {
    // Polite polling: a thread waiting for this CPU runs first (often the caller about to send
    // the next request); without one this returns at once.
    (void)::sched_yield();
    return true;
  }
  // Idle for the whole window: sleep until a request is queued. A signal (stop()) interrupts the
  // wait and the read that follows checks the flag; an error shows up in that read too. With
  // EPOLLEXCLUSIVE the kernel wakes one waiter per request, this one or a worker blocked in
  // read(2); poll(2) would wake this worker for every request, also the ones another worker
  // takes (measured with 1 MiB fio writes: 1.73 context switches per request, now 1.03).
  if (sleep_fd_.valid()) {
    epoll_event event{};
    (void)::epoll_wait(sleep_fd_.get(), &event, 1, -1);
  } else {
    pollfd readable{fd_, POLLIN, 0};
    (void)::poll(&readable, 1, -1);
  }
  idle_since.reset();
  return true;
}

}  // namespace fuse_backend::transport::fusedev
