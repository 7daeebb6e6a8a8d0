// wait_channel(task): where a process or thread sleeps in the kernel, from /proc/TASK/wchan
// (a thread id works there too): a kernel function such as "request_wait_answer" (waiting for a
// FUSE reply) or "do_epoll_wait"; "0" or "" while it runs or waits for a CPU.
//
// Layer: tests/support. For tests that must act only once another task really waits.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sys/types.h>

#include <fstream>
#include <string>

namespace fuse_backend::testing {

inline std::string wait_channel(pid_t task) {
  std::ifstream wchan("/proc/" + std::to_string(task) + "/wchan");
  std::string where;
  wchan >> where;
  return where;
}

// Whether `task` sleeps in the kernel (a wait channel other than "0").
inline bool sleeps(pid_t task) {
  const std::string where = wait_channel(task);
  return !where.empty() && where != "0";
}

}  // namespace fuse_backend::testing
