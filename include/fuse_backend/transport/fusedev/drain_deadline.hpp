// DrainDeadline: until when a stopping Service still answers what the kernel already queued.
//
// Layer: transport::fusedev. Service::drain_and_stop() sets it, from a signal handler too,
// before it sets the stop flag; the /dev/fuse workers and the io_uring queue threads read it
// once they see that flag. It stays unset after a plain stop().
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <type_traits>

namespace fuse_backend::transport::fusedev {

class DrainDeadline {
 public:
  using clock = std::chrono::steady_clock;

  // `limit` from now. Async-signal-safe: clock_gettime and an atomic store.
  void set(std::chrono::milliseconds limit) noexcept {
    const auto until = clock::now() + limit;
    until_.store(std::max<std::int64_t>(1, until.time_since_epoch().count()));
  }
  std::optional<clock::time_point> get() const noexcept {
    const std::int64_t until = until_.load();
    if (until == 0) return std::nullopt;
    return clock::time_point(clock::duration(until));
  }

 private:
  std::atomic<std::int64_t> until_{0};  // clock ticks since its epoch; 0: not set
  static_assert(std::is_same_v<clock::rep, std::int64_t>);
};

}  // namespace fuse_backend::transport::fusedev
