// Per-thread credential switches (see include/fuse_backend/passthrough/credentials.hpp).
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/passthrough/credentials.hpp>

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/detail/syscall.hpp>

namespace fuse_backend::passthrough {
namespace {

static_assert(sizeof(gid_t) == sizeof(std::uint32_t), "supplementary groups are passed as-is");

// setfsuid/setfsgid return the previous id and never fail visibly; asking again with -1 (an
// invalid id that changes nothing) tells whether the switch took.
long set_fs_id(long call, std::uint32_t id) noexcept {
  return ::syscall(call, static_cast<long>(id));
}
bool fs_id_is(long call, std::uint32_t id) noexcept {
  return static_cast<std::uint32_t>(::syscall(call, -1L)) == id;
}

Result<void> set_groups(std::span<const gid_t> groups) noexcept {
  // Raw syscall: the glibc wrapper would change the groups of every thread.
  return detail::syscall_void(
      [&] { return ::syscall(SYS_setgroups, static_cast<long>(groups.size()), groups.data()); });
}

struct CapabilitySet {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
};

Result<void> change_fsetid(bool raise) noexcept {
  CapabilitySet caps;
  if (auto rc = detail::syscall_void([&] { return ::syscall(SYS_capget, &caps.header, caps.data); });
      !rc)
    return rc;
  constexpr std::uint32_t bit = 1u << CAP_FSETID;  // CAP_FSETID < 32: word 0
  if (raise)
    caps.data[0].effective |= bit;
  else
    caps.data[0].effective &= ~bit;
  return detail::syscall_void([&] { return ::syscall(SYS_capset, &caps.header, caps.data); });
}

bool has_effective_fsetid() noexcept {
  CapabilitySet caps;
  if (::syscall(SYS_capget, &caps.header, caps.data) != 0) return false;
  return (caps.data[0].effective & (1u << CAP_FSETID)) != 0;
}

}  // namespace

Result<ScopedCredentials> ScopedCredentials::enter(const api::Context& ctx,
                                                   std::span<const gid_t> daemon_groups) noexcept {
  if (ctx.uid == abi::invalid_uidgid || ctx.gid == abi::invalid_uidgid)
    return fail(std::errc::operation_not_permitted);
  ScopedCredentials creds(daemon_groups);
  // Between requests a thread holds the daemon's groups. A caller gets exactly its own (none
  // if it has none: the daemon's must not lend it access), so the two setgroups calls, the
  // dearest part of a switch, are needed only when the lists differ; commonly both are empty.
  const bool same_groups = std::ranges::equal(ctx.supplementary_groups, daemon_groups);
  if (ctx.uid == 0 && ctx.gid == 0 && same_groups) return creds;

  // Groups first, while the thread still has CAP_SETGID for certain.
  if (!same_groups) {
    if (auto rc = set_groups(ctx.supplementary_groups); !rc) return fail(rc.error());
    creds.groups_ = true;
  }
  creds.previous_gid_ = static_cast<std::uint32_t>(set_fs_id(SYS_setfsgid, ctx.gid));
  creds.gid_ = true;
  if (!fs_id_is(SYS_setfsgid, ctx.gid)) return fail(std::errc::operation_not_permitted);
  if (ctx.uid != 0) {
    creds.previous_uid_ = static_cast<std::uint32_t>(set_fs_id(SYS_setfsuid, ctx.uid));
    creds.uid_ = true;
    if (!fs_id_is(SYS_setfsuid, ctx.uid)) return fail(std::errc::operation_not_permitted);
  }
  return creds;
}

ScopedCredentials::ScopedCredentials(ScopedCredentials&& other) noexcept
    : daemon_groups_(other.daemon_groups_),
      groups_(std::exchange(other.groups_, false)),
      gid_(std::exchange(other.gid_, false)),
      uid_(std::exchange(other.uid_, false)),
      previous_uid_(other.previous_uid_),
      previous_gid_(other.previous_gid_) {}

ScopedCredentials::~ScopedCredentials() { restore(); }

void ScopedCredentials::restore() noexcept {
  // Restoring fsuid 0 first brings the file capabilities back into the effective set.
  if (uid_) set_fs_id(SYS_setfsuid, previous_uid_);
  if (gid_) set_fs_id(SYS_setfsgid, previous_gid_);
  if (groups_) (void)set_groups(daemon_groups_);
  uid_ = gid_ = groups_ = false;
}

Result<ScopedNoFsetid> ScopedNoFsetid::enter() noexcept {
  ScopedNoFsetid scope;
  if (!has_effective_fsetid()) return scope;
  if (auto rc = change_fsetid(false); !rc) return fail(rc.error());
  scope.dropped_ = true;
  return scope;
}

ScopedNoFsetid::ScopedNoFsetid(ScopedNoFsetid&& other) noexcept
    : dropped_(std::exchange(other.dropped_, false)) {}

ScopedNoFsetid::~ScopedNoFsetid() {
  if (dropped_) (void)change_fsetid(true);
}

}  // namespace fuse_backend::passthrough
