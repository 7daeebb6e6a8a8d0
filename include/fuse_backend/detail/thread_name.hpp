// name_thread / name_this_thread: names a thread "PREFIX-N", so that top -H and /proc tell the
// library's threads apart (tests find them by name too).
//
// Layer: detail. The kernel keeps at most 15 characters; longer names are cut.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <pthread.h>

#include <array>
#include <cstdio>

namespace fuse_backend::detail {

inline void name_thread(pthread_t thread, const char* prefix, unsigned number) noexcept {
  std::array<char, 16> name{};
  (void)std::snprintf(name.data(), name.size(), "%s-%u", prefix, number);
  (void)::pthread_setname_np(thread, name.data());
}

inline void name_this_thread(const char* prefix, unsigned number) noexcept {
  name_thread(::pthread_self(), prefix, number);
}

}  // namespace fuse_backend::detail
