// The non-template part of fusedev::Service: stop event, polling, worker threads.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/transport/fusedev/service.hpp>

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <system_error>

#include <fuse_backend/detail/syscall.hpp>

namespace fuse_backend::transport::fusedev::impl {

Result<Poller> Poller::create(int device_fd, int stop_fd) noexcept {
  // Non-blocking: several workers may be woken for one request; the losers must not block in
  // read(2) where stop() cannot reach them.
  auto flags = detail::syscall_result<int>([&] { return ::fcntl(device_fd, F_GETFL); });
  if (!flags) return fail(flags.error());
  if (auto set = detail::syscall_void([&] { return ::fcntl(device_fd, F_SETFL, *flags | O_NONBLOCK); });
      !set) {
    return fail(set.error());
  }
  auto epoll = detail::syscall_result<int>([] { return ::epoll_create1(EPOLL_CLOEXEC); });
  if (!epoll) return fail(epoll.error());
  detail::UniqueFd epoll_fd(*epoll);
  for (const int fd : {device_fd, stop_fd}) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = fd;
    if (auto added = detail::syscall_void([&] { return ::epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, fd, &event); });
        !added) {
      return fail(added.error());
    }
  }
  return Poller(std::move(epoll_fd), stop_fd);
}

Result<Poller::Event> Poller::wait() noexcept {
  std::array<epoll_event, 2> events{};
  auto ready = detail::syscall_result<int>(
      [&] { return ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), -1); });
  if (!ready) return fail(ready.error());
  for (int i = 0; i < *ready; ++i) {
    if (events[static_cast<std::size_t>(i)].data.fd == stop_fd_) return Event::stop;
  }
  // Readable, or EPOLLERR once the connection is gone: the read then says which.
  return Event::device;
}

ServiceCore::ServiceCore(int session_fd, unsigned threads) noexcept
    : session_fd_(session_fd), thread_count_(threads == 0 ? 1 : threads) {
  // Level-triggered and never drained: once set, every worker's poll sees it.
  auto fd = detail::syscall_result<int>([] { return ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); });
  if (fd) {
    stop_fd_.reset(*fd);
  } else {
    stop_fd_error_ = fd.error();
  }
}

ServiceCore::~ServiceCore() {
  stop();
  (void)join();
}

Result<void> ServiceCore::start(std::size_t buffer_size, Serve serve, void* service) {
  if (!stop_fd_) return fail(stop_fd_error_);
  if (!workers_.empty()) return fail(std::errc::operation_in_progress);
  std::vector<std::unique_ptr<Worker>> workers;
  try {
    for (unsigned i = 0; i < thread_count_; ++i) {
      auto channel = i == 0 ? Result<Channel>(Channel(session_fd_, buffer_size))
                            : Channel::clone(session_fd_, buffer_size);
      if (!channel) return fail(channel.error());
      auto poller = Poller::create(channel->fd(), stop_fd_.get());
      if (!poller) return fail(poller.error());
      workers.push_back(std::make_unique<Worker>(Worker{std::move(*channel), std::move(*poller), {}}));
    }
    workers_ = std::move(workers);
    for (auto& worker : workers_) {
      Worker* w = worker.get();
      w->thread = std::thread([serve, service, w] { serve(service, w->channel, w->poller); });
    }
  } catch (const std::system_error& e) {  // std::thread could not start one
    stop();
    (void)join();
    return fail(static_cast<std::errc>(e.code().value()));
  } catch (const std::bad_alloc&) {
    stop();
    (void)join();
    return fail(std::errc::not_enough_memory);
  }
  return {};
}

void ServiceCore::stop() noexcept {
  if (!stop_fd_) return;
  // Called from signal handlers too: only write(2), and errno left as it was.
  const int saved_errno = errno;
  const std::uint64_t one = 1;
  (void)detail::syscall_result([&] { return ::write(stop_fd_.get(), &one, sizeof(one)); });
  errno = saved_errno;
}

Result<void> ServiceCore::join() noexcept {
  for (auto& worker : workers_) {
    if (worker->thread.joinable()) worker->thread.join();
  }
  std::lock_guard lock(mutex_);
  if (error_) return fail(*error_);
  return {};
}

void ServiceCore::record_error(std::errc error) noexcept {
  {
    std::lock_guard lock(mutex_);
    if (!error_) error_ = error;
  }
  stop();
}

}  // namespace fuse_backend::transport::fusedev::impl
