// The non-template part of fusedev::Service: the wake signal, worker threads, stop and join.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/transport/fusedev/service.hpp>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <system_error>

#include <fuse_backend/detail/syscall.hpp>

namespace fuse_backend::transport::fusedev::impl {
namespace {

// Does nothing: its only job is to be a handler, so that the signal interrupts read(2).
void on_wake_signal(int) {}

// Installs on_wake_signal for `signo` without SA_RESTART (the blocked read must fail with EINTR
// rather than be restarted). Idempotent; refuses to replace a handler the application installed.
Result<void> install_wake_handler(int signo) noexcept {
  struct sigaction current {};
  if (auto got = detail::syscall_void([&] { return ::sigaction(signo, nullptr, &current); }); !got) {
    return fail(got.error());
  }
  const bool has_info = (current.sa_flags & SA_SIGINFO) != 0;
  if (!has_info && current.sa_handler == &on_wake_signal) return {};
  if (has_info || (current.sa_handler != SIG_DFL && current.sa_handler != SIG_IGN)) {
    return fail(std::errc::device_or_resource_busy);
  }
  struct sigaction action {};
  action.sa_handler = &on_wake_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;
  return detail::syscall_void([&] { return ::sigaction(signo, &action, nullptr); });
}

// Workers block in read(2): clear O_NONBLOCK in case the fd was opened or left non-blocking.
Result<void> make_blocking(int fd) noexcept {
  auto flags = detail::syscall_result<int>([&] { return ::fcntl(fd, F_GETFL); });
  if (!flags) return fail(flags.error());
  if ((*flags & O_NONBLOCK) == 0) return {};
  return detail::syscall_void([&] { return ::fcntl(fd, F_SETFL, *flags & ~O_NONBLOCK); });
}

// How often join() re-sends the wake signal to workers that have not ended: a signal that lands
// between the worker's flag check and its read(2) is otherwise lost.
constexpr std::chrono::milliseconds rewake_interval{2};

}  // namespace

ServiceCore::ServiceCore(int session_fd, unsigned threads, int wake_signal) noexcept
    : session_fd_(session_fd), thread_count_(threads == 0 ? 1 : threads), wake_signal_(wake_signal) {
  // Level-triggered and never drained: once set, join() sees it whenever it looks.
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
  if (auto installed = install_wake_handler(wake_signal_); !installed) return installed;
  std::vector<std::unique_ptr<Worker>> workers;
  try {
    for (unsigned i = 0; i < thread_count_; ++i) {
      auto channel = i == 0 ? Result<Channel>(Channel(session_fd_, buffer_size))
                            : Channel::clone(session_fd_, buffer_size);
      if (!channel) return fail(channel.error());
      if (auto blocking = make_blocking(channel->fd()); !blocking) return blocking;
      auto worker = std::make_unique<Worker>(std::move(*channel));
      workers.push_back(std::move(worker));
    }
    workers_ = std::move(workers);
    published_.store(workers_.size(), std::memory_order_release);
    for (auto& worker : workers_) {
      Worker* w = worker.get();
      w->thread = std::thread([this, serve, service, w] { run(*w, serve, service); });
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

void ServiceCore::run(Worker& worker, Serve serve, void* service) noexcept {
  // Threads inherit the starter's mask (SignalWatcher blocks SIGINT/SIGTERM there, and they must
  // stay blocked); only the wake signal must get through to interrupt read(2).
  sigset_t wake;
  sigemptyset(&wake);
  sigaddset(&wake, wake_signal_);
  pthread_sigmask(SIG_UNBLOCK, &wake, nullptr);
  // Published before the first flag check (both sequentially consistent): stop() either finds
  // the tid or the worker finds the flag.
  worker.tid.store(::gettid());
  serve(service, worker.channel, stopping_);
  worker.tid.store(0);
  {
    std::lock_guard lock(mutex_);
    worker.ended = true;
  }
  ended_.notify_all();
}

void ServiceCore::wake_workers() const noexcept {
  const pid_t pid = ::getpid();
  const std::size_t count = published_.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < count; ++i) {
    // A worker that ends right after this load leaves a tid the kernel may reuse for another
    // thread of this process; the worst that thread sees is one EINTR from the no-op handler.
    const pid_t tid = workers_[i]->tid.load();
    if (tid != 0) (void)::tgkill(pid, tid, wake_signal_);
  }
}

void ServiceCore::stop() noexcept {
  // Called from signal handlers too: only atomics, write(2), getpid(2), tgkill(2), and errno
  // left as it was.
  const int saved_errno = errno;
  stopping_.store(true);
  if (stop_fd_) {
    const std::uint64_t one = 1;
    (void)detail::syscall_result([&] { return ::write(stop_fd_.get(), &one, sizeof(one)); });
  }
  wake_workers();
  errno = saved_errno;
}

Result<void> ServiceCore::join() noexcept {
  const auto all_ended = [this] {
    for (const auto& worker : workers_) {
      if (worker->thread.joinable() && !worker->ended) return false;
    }
    return true;
  };
  std::unique_lock lock(mutex_);
  if (!all_ended()) {
    lock.unlock();
    // Every way a worker ends goes through stop() (unmount, DESTROY and errors call it), so sleep
    // until then rather than poll the flag: stop() may come from a signal handler, which cannot
    // notify a condition variable.
    pollfd stop_event{stop_fd_.get(), POLLIN, 0};
    (void)detail::syscall_result([&] { return ::poll(&stop_event, 1, -1); });
    lock.lock();
    while (!ended_.wait_for(lock, rewake_interval, all_ended)) wake_workers();
  }
  lock.unlock();
  for (auto& worker : workers_) {
    if (worker->thread.joinable()) worker->thread.join();
  }
  lock.lock();
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
