// set_status_flag: sets or clears one of an open file's status flags (O_NONBLOCK, say).
//
// Layer: detail. fcntl(F_SETFL) replaces all of them, so each change is a read (F_GETFL) and a
// write of the result; the write is skipped when the flag is already as asked.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <fcntl.h>

#include <fuse_backend/detail/syscall.hpp>
#include <fuse_backend/result.hpp>

namespace fuse_backend::detail {

[[nodiscard]] inline Result<void> set_status_flag(int fd, int flag, bool on) noexcept {
  auto flags = syscall_result<int>([&] { return ::fcntl(fd, F_GETFL); });
  if (!flags) return fail(flags.error());
  const int wanted = on ? *flags | flag : *flags & ~flag;
  if (wanted == *flags) return {};
  return syscall_void([&] { return ::fcntl(fd, F_SETFL, wanted); });
}

}  // namespace fuse_backend::detail
