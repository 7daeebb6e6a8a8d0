// dirty_pages(fd): how many pages of an open file the host's page cache holds dirty or under
// writeback, through cachestat(2) (Linux >= 6.5), which names neither glibc nor these kernel
// headers yet; nullopt if the kernel has no cachestat.
//
// Layer: tests/support. For tests of when data leaves the page cache for the disk.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <optional>

namespace fuse_backend::testing {

inline std::optional<std::uint64_t> dirty_pages(int fd) {
  constexpr long cachestat_syscall = 451;  // the same number on every architecture
  struct {
    std::uint64_t offset, length;  // length 0: to the end of the file
  } range{0, 0};
  struct {
    std::uint64_t cached, dirty, writeback, evicted, recently_evicted;
  } state{};
  if (::syscall(cachestat_syscall, fd, &range, &state, 0) != 0) return std::nullopt;
  return state.dirty + state.writeback;
}

}  // namespace fuse_backend::testing
