// SignalWatcher: turns SIGINT / SIGTERM into a call (typically Service::stop()), for daemons.
//
// Layer: transport::fusedev (a cold-path helper for programs; the library never installs signal
// handlers by itself). The constructor blocks the signals in the calling thread, so construct it
// in main() BEFORE starting any thread: threads inherit the mask, and a thread that does not
// block them would take the default action (terminate) instead. start() then runs a thread that
// reads them from a signalfd and calls `on_signal(signo)` for each, in that thread (no
// async-signal-safety needed in the callback). The destructor ends the thread and restores the
// previous mask of the calling thread. Not movable; one per program is enough.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <signal.h>

#include <atomic>
#include <functional>
#include <initializer_list>
#include <thread>

#include <fuse_backend/detail/unique_fd.hpp>
#include <fuse_backend/result.hpp>

namespace fuse_backend::transport::fusedev {

class SignalWatcher {
 public:
  explicit SignalWatcher(std::initializer_list<int> signals = {SIGINT, SIGTERM}) noexcept;
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;
  ~SignalWatcher();

  // Starts the watching thread.
  Result<void> start(std::function<void(int)> on_signal);
  // The last signal received, 0 if none.
  int received() const noexcept { return received_.load(std::memory_order_acquire); }

 private:
  void watch() noexcept;

  sigset_t signals_{};
  sigset_t previous_{};
  detail::UniqueFd signal_fd_;
  detail::UniqueFd quit_fd_;
  std::function<void(int)> on_signal_;
  std::thread thread_;
  std::atomic<int> received_{0};
};

}  // namespace fuse_backend::transport::fusedev
