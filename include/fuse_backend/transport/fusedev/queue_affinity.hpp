// QueueAffinity: on which CPUs a FUSE-over-io_uring queue thread runs.
//
// Layer: transport::fusedev. The kernel hands queue q the requests of callers running on CPU q
// (its "home"). Serving them on that CPU is fastest while each caller waits for its reply: caller
// and queue thread take turns on one CPU and no wake-up has to cross to another (halted) CPU. It
// is slowest when the callers keep several requests in flight: the thread then competes with
// them for the home CPU while the other CPUs idle. Measured on 2 CPUs (a VM), tmpfs source,
// 4 KiB O_DIRECT random reads, busy polling on: one at a time (psync) ~95k IOPS pinned against
// ~53k free; 16 in flight (libaio) 150-160k pinned against 250-290k free.
//
// So a queue thread starts pinned to home, widens to every CPU it may use (its mask when it
// started) as soon as one reap of its ring brings two or more requests (its callers are ahead of
// it), and pins itself to home again after `calm_reaps` reaps in a row that brought one request
// each. A thread whose home is not among its allowed CPUs (a cpuset, or none known), or that may
// run on one CPU only, never pins.
//
// Pure decision logic (the queue applies the masks with sched_setaffinity); not thread-safe.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sched.h>

namespace fuse_backend::transport::fusedev {

class QueueAffinity {
 public:
  // Single-request reaps in a row after which a widened thread goes home. Long enough that a
  // stream of requests in flight, whose reaps bring one request now and then, does not flap.
  static constexpr unsigned calm_reaps = 64;

  // `allowed`: the CPUs the thread may run on (empty when unknown).
  QueueAffinity(unsigned home, const cpu_set_t& allowed) noexcept : allowed_(allowed) {
    CPU_ZERO(&home_);
    can_pin_ = home < CPU_SETSIZE && CPU_ISSET(home, &allowed) && CPU_COUNT(&allowed) > 1;
    if (can_pin_) CPU_SET(home, &home_);
    pinned_ = can_pin_;
  }

  // Whether the thread should be on home alone now (from the start: unless it cannot pin).
  bool pinned() const noexcept { return pinned_; }
  const cpu_set_t& home() const noexcept { return home_; }

  // After a reap that brought `requests` (> 0) requests: the mask to switch to, or nullptr to
  // stay where the thread is.
  const cpu_set_t* after_reap(unsigned requests) noexcept {
    if (!can_pin_) return nullptr;
    if (requests >= 2) {
      calm_ = 0;
      if (!pinned_) return nullptr;
      pinned_ = false;
      return &allowed_;
    }
    if (pinned_ || ++calm_ < calm_reaps) return nullptr;
    calm_ = 0;
    pinned_ = true;
    return &home_;
  }

 private:
  cpu_set_t home_;
  cpu_set_t allowed_;
  bool can_pin_ = false;
  bool pinned_ = false;
  unsigned calm_ = 0;
};

}  // namespace fuse_backend::transport::fusedev
