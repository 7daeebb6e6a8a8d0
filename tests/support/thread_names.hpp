// thread_name(task), thread_name(tid), threads_named(name): the names of this process's threads
// as /proc/self/task/TID/comm shows them (what detail::name_thread set, cut at 15 characters).
//
// Layer: tests/support. For tests that find the library's threads by name.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace fuse_backend::testing {

// The name of the thread whose /proc directory is `task` (/proc/self/task/TID).
inline std::string thread_name(const std::filesystem::path& task) {
  std::ifstream comm(task / "comm");
  std::string name;
  std::getline(comm, name);
  return name;
}

inline std::string thread_name(pid_t tid) {
  return thread_name(std::filesystem::path("/proc/self/task") / std::to_string(tid));
}

// How many threads of this process are named `name`.
inline int threads_named(const std::string& name) {
  int count = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    if (thread_name(task.path()) == name) ++count;
  }
  return count;
}

}  // namespace fuse_backend::testing
