// The one seam between the library and the OS: every system call goes through `syscall_result`,
// which retries EINTR and turns "-1 and errno" into a Result.
//
// Layer: detail (used by every layer that touches the OS). Header-only, noexcept. Keeping the
// errno handling in one place means no caller forgets EINTR or reads a stale errno, and tests have
// a single place to intercept failures.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <cerrno>
#include <concepts>
#include <type_traits>

#include <fuse_backend/result.hpp>

namespace fuse_backend::detail {

// Calls `call` (a lambda wrapping one system call) until it does not fail with EINTR; a negative
// return becomes the errno as an error, anything else the value (converted to T).
template <class T = long, class Call>
  requires std::is_invocable_v<Call&>
[[nodiscard]] inline Result<T> syscall_result(Call&& call) noexcept {
  for (;;) {
    const auto rc = call();
    if (rc >= 0) return static_cast<T>(rc);
    if (errno != EINTR) return fail_errno();
  }
}

// For calls whose only interesting outcome is success or an errno.
template <class Call>
  requires std::is_invocable_v<Call&>
[[nodiscard]] inline Result<void> syscall_void(Call&& call) noexcept {
  auto rc = syscall_result<long>(std::forward<Call>(call));
  if (!rc) return fail(rc.error());
  return {};
}

}  // namespace fuse_backend::detail
