// Pinning test threads to one CPU: with FUSE-over-io_uring the kernel queues a request on its
// caller's CPU, so a test picks the queue its requests go to by where it runs them.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sched.h>

namespace fuse_backend::testing {

// The lowest CPU this thread may run on (0 when that cannot be read).
inline int first_allowed_cpu() {
  cpu_set_t allowed;
  if (::sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &allowed)) return cpu;
  }
  return 0;
}

// Keeps the calling thread (and the children it forks) on `cpu` for its scope.
class OnOneCpu {
 public:
  explicit OnOneCpu(int cpu) {
    restore_ = ::sched_getaffinity(0, sizeof(saved_), &saved_) == 0;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pinned_ = ::sched_setaffinity(0, sizeof(one), &one) == 0;
  }
  ~OnOneCpu() {
    if (restore_) ::sched_setaffinity(0, sizeof(saved_), &saved_);
  }
  OnOneCpu(const OnOneCpu&) = delete;
  OnOneCpu& operator=(const OnOneCpu&) = delete;

  bool pinned() const noexcept { return pinned_; }

 private:
  cpu_set_t saved_;
  bool restore_ = false;
  bool pinned_ = false;
};

}  // namespace fuse_backend::testing
