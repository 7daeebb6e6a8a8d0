// The non-template part of fusedev::Service: the wake signal, worker threads, stop and join.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/transport/fusedev/service.hpp>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <system_error>

#include <fuse_backend/detail/status_flags.hpp>
#include <fuse_backend/detail/syscall.hpp>
#include <fuse_backend/detail/thread_name.hpp>

namespace fuse_backend::transport::fusedev {

unsigned possible_cpus() noexcept {
  // "0-1", "0", "0-3,5": the queues are numbered up to the highest CPU id.
  try {
    std::ifstream file("/sys/devices/system/cpu/possible");
    std::string text;
    if (!std::getline(file, text) || text.empty()) return 0;
    const std::size_t last = text.find_last_of(",-");
    return static_cast<unsigned>(std::stoul(last == std::string::npos ? text : text.substr(last + 1))) + 1;
  } catch (...) {
    return 0;
  }
}

}  // namespace fuse_backend::transport::fusedev

namespace fuse_backend::transport::fusedev::impl {
namespace {

detail::UniqueFd make_event_fd(std::errc& error) noexcept {
  auto fd = detail::syscall_result<int>([] { return ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); });
  if (!fd) {
    error = fd.error();
    return {};
  }
  return detail::UniqueFd(*fd);
}

// Makes an eventfd readable for good (never drained). Async-signal-safe: one write(2).
void signal_event(int fd) noexcept {
  const std::uint64_t one = 1;
  (void)detail::syscall_result([&] { return ::write(fd, &one, sizeof(one)); });
}

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

// How often join() re-sends the wake signal to workers that have not ended: a signal that lands
// between the worker's flag check and its read(2) is otherwise lost.
constexpr std::chrono::milliseconds rewake_interval{2};

}  // namespace

ServiceCore::ServiceCore(int session_fd, unsigned threads, ReceiveOptions receive, RingOptions ring,
                         int wake_signal) noexcept
    : session_fd_(session_fd),
      thread_count_(threads == 0 ? 1 : threads),
      receive_(receive),
      ring_(ring),
      wake_signal_(wake_signal) {
  if (receive_.busy_poll.count() > 0) receive_.answering = &answering_;
  // Level-triggered and never drained: once set, join() (and the queue threads) see it whenever
  // they look.
  stop_fd_ = make_event_fd(stop_fd_error_);
  if (ring_.queues != 0) {
    ring_fd_ = make_event_fd(stop_fd_error_);
  } else {
    ring_state_.store(ring_unused);
  }
}

ServiceCore::~ServiceCore() {
  stop();
  (void)join();
}

Result<void> ServiceCore::start(const Hooks& hooks) {
  if (!stop_fd_ || (ring_.queues != 0 && !ring_fd_)) return fail(stop_fd_error_);
  if (!workers_.empty()) return fail(std::errc::operation_in_progress);
  if (auto installed = install_wake_handler(wake_signal_); !installed) return installed;
  interrupt_context_ = hooks.service;
  interrupt_all_.store(hooks.interrupt_all);
  std::vector<std::unique_ptr<Worker>> workers;
  try {
    for (unsigned i = 0; i < thread_count_; ++i) {
      // Worker 0 reads the session fd, unless it busy-polls: that needs a non-blocking fd, and
      // the session's own stays as the application opened it.
      ReceiveOptions receive = receive_;
      if (i != 0) receive.busy_poll = {};
      const bool polls = receive.busy_poll.count() > 0;
      auto channel = i == 0 && !polls ? Result<Channel>(Channel(session_fd_, hooks.buffer_size, receive))
                                      : Channel::clone(session_fd_, hooks.buffer_size, receive);
      if (!channel) return fail(channel.error());
      // Non-polling workers block in read(2): clear O_NONBLOCK in case the fd was opened or left
      // non-blocking.
      if (!polls) {
        auto blocking = detail::set_status_flag(channel->fd(), O_NONBLOCK, false);
        if (!blocking) return blocking;
      }
      auto worker = std::make_unique<Worker>(std::move(*channel), i);
      workers.push_back(std::move(worker));
    }
    for (unsigned qid = 0; qid < ring_.queues; ++qid) {
      workers.push_back(std::make_unique<Worker>(qid));
    }
    workers_ = std::move(workers);
    published_.store(workers_.size(), std::memory_order_release);
    // Queue threads first: every queue must exist before INIT may announce io_uring, because
    // once it has, the kernel holds back all requests until every queue has registered.
    for (unsigned i = thread_count_; i < workers_.size(); ++i) {
      Worker* w = workers_[i].get();
      w->thread = std::thread([=, this] { run(*w, hooks); });
    }
    bool ring_usable = false;
    if (ring_.queues != 0) {
      std::unique_lock lock(mutex_);
      created_.wait(lock, [&] { return rings_created_ == ring_.queues; });
      ring_usable = !ring_error_;
    }
    if (ring_.queues != 0 && !ring_usable) {
      fmt::print(stderr, "fuse_backend: cannot set up FUSE-over-io_uring ({}); serving over /dev/fuse\n",
                 std::make_error_code(*ring_error_).message());
      ring_state_.store(ring_unused);
      signal_event(ring_fd_.get());
    }
    if (ring_.queues != 0) hooks.ring_usable(hooks.service, ring_usable);
    for (unsigned i = 0; i < thread_count_; ++i) {
      Worker* w = workers_[i].get();
      w->thread = std::thread([=, this] { run(*w, hooks); });
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

void ServiceCore::run(Worker& worker, const Hooks& hooks) noexcept {
  // Threads inherit the starter's mask (SignalWatcher blocks SIGINT/SIGTERM there, and they must
  // stay blocked); only the wake signal must get through to interrupt read(2).
  sigset_t wake;
  sigemptyset(&wake);
  sigaddset(&wake, wake_signal_);
  pthread_sigmask(SIG_UNBLOCK, &wake, nullptr);
  // Published before the first flag check (both sequentially consistent): stop() either finds
  // the tid or the worker finds the flag.
  worker.tid.store(::gettid());
  if (worker.channel) {
    detail::name_this_thread("fuse-dev", worker.number);
    hooks.serve(hooks.service, *worker.channel, stopping_);
  } else {
    run_ring(worker, hooks);
  }
  worker.tid.store(0);
  {
    std::lock_guard lock(mutex_);
    worker.ended = true;
  }
  ended_.notify_all();
}

void ServiceCore::open_ring(bool use) noexcept {
  int expected = ring_waiting;
  if (!ring_state_.compare_exchange_strong(expected, use ? ring_open : ring_unused)) return;
  if (!use) {
    fmt::print(stderr,
               "fuse_backend: INIT did not take FUSE-over-io_uring (the kernel offers it from Linux "
               "6.14 with fuse.enable_uring=1, unless the server options mask it); serving over "
               "/dev/fuse\n");
  }
  signal_event(ring_fd_.get());
}

bool ServiceCore::wait_for_ring() noexcept {
  std::array<pollfd, 2> events{{{ring_fd_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}}};
  // A signal (stop()) interrupts the poll: the flag is checked before sleeping again.
  while (!stopping_.load() && ring_state_.load(std::memory_order_acquire) == ring_waiting) {
    (void)::poll(events.data(), events.size(), -1);
  }
  return !stopping_.load() && ring_state_.load(std::memory_order_acquire) == ring_open;
}

void ServiceCore::run_ring(Worker& worker, const Hooks& hooks) noexcept {
  detail::name_this_thread("fuse-uring", worker.number);
  // The kernel hands this queue the requests of callers on CPU `number`: start there (the
  // entries' memory is then touched first on that CPU's node); QueueAffinity moves the thread
  // under load.
  cpu_set_t allowed;
  if (::sched_getaffinity(0, sizeof(allowed), &allowed) != 0) CPU_ZERO(&allowed);
  QueueAffinity affinity(worker.number, allowed);
  if (affinity.pinned()) (void)::sched_setaffinity(0, sizeof(cpu_set_t), &affinity.home());
  auto queue = UringQueue::create(session_fd_, worker.number, ring_.depth, hooks.buffer_size);
  {
    std::lock_guard lock(mutex_);
    ++rings_created_;
    if (!queue && !ring_error_) ring_error_ = queue.error();
  }
  created_.notify_all();
  if (!queue || !wait_for_ring()) return;
  const UringQueue::Target target{hooks.serve_ring, hooks.service, hooks.backing};
  const UringQueue::Pacing pacing{ring_.busy_poll, &affinity};
  auto served = queue->serve(target, pacing, stopping_, drain_deadline_, worker.served);
  if (served) return;
  if (queue->delivered()) return record_error(served.error());
  // Refused before any request: the kernel turned io_uring off and stays on /dev/fuse.
  if (!ring_refused_.exchange(true)) {
    fmt::print(stderr, "fuse_backend: the kernel refused FUSE-over-io_uring queue {} ({}); serving over /dev/fuse\n",
               worker.number, std::make_error_code(served.error()).message());
  }
}

std::uint64_t ServiceCore::ring_requests() const noexcept {
  std::uint64_t total = 0;
  const std::size_t count = published_.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < count; ++i) total += workers_[i]->served.load(std::memory_order_relaxed);
  return total;
}

std::uint64_t ServiceCore::spliced_requests() noexcept {
  std::lock_guard lock(mutex_);
  std::uint64_t total = 0;
  for (const auto& worker : workers_) {
    if (worker->ended && worker->channel) total += worker->channel->spliced_requests();
  }
  return total;
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
  if (auto interrupt_all = interrupt_all_.load()) interrupt_all(interrupt_context_);
  if (stop_fd_) signal_event(stop_fd_.get());
  wake_workers();
  errno = saved_errno;
}

void ServiceCore::drain_and_stop(std::chrono::milliseconds limit) noexcept {
  drain_deadline_.set(limit);  // published before stop() wakes anyone
  stop();
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
