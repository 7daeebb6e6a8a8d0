// SignalWatcher: see signals.hpp.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/transport/fusedev/signals.hpp>

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <array>
#include <system_error>

#include <fuse_backend/detail/syscall.hpp>

namespace fuse_backend::transport::fusedev {

SignalWatcher::SignalWatcher(std::initializer_list<int> signals) noexcept {
  sigemptyset(&signals_);
  for (const int signo : signals) sigaddset(&signals_, signo);
  pthread_sigmask(SIG_BLOCK, &signals_, &previous_);
}

SignalWatcher::~SignalWatcher() {
  if (thread_.joinable()) {
    const std::uint64_t one = 1;
    (void)detail::syscall_result([&] { return ::write(quit_fd_.get(), &one, sizeof(one)); });
    thread_.join();
  }
  pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
}

Result<void> SignalWatcher::start(std::function<void(int)> on_signal) {
  if (thread_.joinable()) return fail(std::errc::operation_in_progress);
  auto sfd = detail::syscall_result<int>([&] { return ::signalfd(-1, &signals_, SFD_CLOEXEC); });
  if (!sfd) return fail(sfd.error());
  signal_fd_.reset(*sfd);
  auto qfd = detail::syscall_result<int>([] { return ::eventfd(0, EFD_CLOEXEC); });
  if (!qfd) return fail(qfd.error());
  quit_fd_.reset(*qfd);
  on_signal_ = std::move(on_signal);
  try {
    thread_ = std::thread([this] { watch(); });
  } catch (const std::system_error& e) {
    return fail(static_cast<std::errc>(e.code().value()));
  }
  return {};
}

void SignalWatcher::watch() noexcept {
  for (;;) {
    std::array<pollfd, 2> fds{{{signal_fd_.get(), POLLIN, 0}, {quit_fd_.get(), POLLIN, 0}}};
    auto ready = detail::syscall_result<int>([&] { return ::poll(fds.data(), fds.size(), -1); });
    if (!ready || (fds[1].revents & POLLIN) != 0) return;
    signalfd_siginfo info{};
    auto got = detail::syscall_result<std::size_t>([&] { return ::read(signal_fd_.get(), &info, sizeof(info)); });
    if (!got || *got != sizeof(info)) continue;
    received_.store(static_cast<int>(info.ssi_signo), std::memory_order_release);
    try {
      on_signal_(static_cast<int>(info.ssi_signo));
    } catch (...) {  // a throwing callback must not take the process down from this thread
    }
  }
}

}  // namespace fuse_backend::transport::fusedev
