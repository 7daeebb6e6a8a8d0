// RLIMIT_NOFILE for a passthrough daemon (see include/fuse_backend/passthrough/open_file_limit.hpp).
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/passthrough/open_file_limit.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include <fuse_backend/detail/syscall.hpp>

namespace fuse_backend::passthrough {
namespace {

// fs.nr_open: no RLIMIT_NOFILE may exceed it. Without /proc, the kernel's default (2^20).
rlim_t kernel_ceiling() noexcept {
  rlim_t ceiling = 1u << 20;
  if (std::FILE* file = std::fopen("/proc/sys/fs/nr_open", "re")) {
    unsigned long long value = 0;
    if (std::fscanf(file, "%llu", &value) == 1 && value > 0) ceiling = static_cast<rlim_t>(value);
    std::fclose(file);
  }
  return ceiling;
}

}  // namespace

Result<OpenFileLimit> raise_open_file_limit(rlim_t wanted) noexcept {
  struct rlimit limit {};
  if (auto rc = detail::syscall_void([&] { return ::getrlimit(RLIMIT_NOFILE, &limit); }); !rc) {
    return fail(rc.error());
  }
  OpenFileLimit result{limit.rlim_cur, limit.rlim_cur};
  const rlim_t target = std::min(wanted, kernel_ceiling());
  if (limit.rlim_cur >= target) return result;
  if (limit.rlim_max < target) {
    const struct rlimit both{target, target};
    if (::setrlimit(RLIMIT_NOFILE, &both) == 0) {
      result.after = target;
      return result;
    }
    if (errno != EPERM) return fail_errno();
  }
  // Only up to the hard limit without CAP_SYS_RESOURCE.
  const struct rlimit soft{std::min(target, limit.rlim_max), limit.rlim_max};
  if (soft.rlim_cur <= limit.rlim_cur) return result;
  if (auto rc = detail::syscall_void([&] { return ::setrlimit(RLIMIT_NOFILE, &soft); }); !rc) {
    return fail(rc.error());
  }
  result.after = soft.rlim_cur;
  return result;
}

}  // namespace fuse_backend::passthrough
