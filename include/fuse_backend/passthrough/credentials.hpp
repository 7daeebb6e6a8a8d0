// Per-thread identity switches for a root daemon acting for a FUSE caller.
//
// Layer: passthrough. ScopedCredentials makes the calling *thread* check permissions and create
// files as the request's uid/gid/supplementary groups (fsuid, fsgid, groups) and restores the
// daemon's identity when it goes out of scope; ScopedNoFsetid drops CAP_FSETID from the thread's
// effective set so the host kernel clears set-uid/set-gid bits on a write or truncate, as FUSE
// KILL_SUIDGID asks. Both use the raw system calls on purpose: glibc's setgroups (and
// setresuid & co.) broadcast the change to every thread of the process, while each worker
// thread here serves a different caller at the same time. Linux keeps all of these per thread.
// Objects are not thread-safe and must be destroyed on the thread that made them.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>

#include <fuse_backend/api/context.hpp>
#include <fuse_backend/result.hpp>

namespace fuse_backend::passthrough {

class ScopedCredentials {
 public:
  // Switches to ctx's identity. `daemon_groups` are the supplementary groups to restore
  // afterwards (the daemon's own; they must outlive the object). Only what differs from the
  // daemon is switched: nothing for a root caller with the daemon's supplementary groups.
  // Fails with EPERM for an unmapped id (abi::invalid_uidgid) and with the system call's error
  // otherwise; on failure nothing stays switched.
  static Result<ScopedCredentials> enter(const api::Context& ctx,
                                         std::span<const gid_t> daemon_groups) noexcept;

  ScopedCredentials(ScopedCredentials&& other) noexcept;
  ScopedCredentials& operator=(ScopedCredentials&&) = delete;
  ScopedCredentials(const ScopedCredentials&) = delete;
  ScopedCredentials& operator=(const ScopedCredentials&) = delete;
  ~ScopedCredentials();

 private:
  explicit ScopedCredentials(std::span<const gid_t> daemon_groups) noexcept
      : daemon_groups_(daemon_groups) {}
  void restore() noexcept;

  std::span<const gid_t> daemon_groups_;
  bool groups_ = false;
  bool gid_ = false;
  bool uid_ = false;
  std::uint32_t previous_uid_ = 0;
  std::uint32_t previous_gid_ = 0;
};

class ScopedNoFsetid {
 public:
  // Drops CAP_FSETID from the effective set when it is there (a no-op otherwise).
  static Result<ScopedNoFsetid> enter() noexcept;

  ScopedNoFsetid(ScopedNoFsetid&& other) noexcept;
  ScopedNoFsetid& operator=(ScopedNoFsetid&&) = delete;
  ScopedNoFsetid(const ScopedNoFsetid&) = delete;
  ScopedNoFsetid& operator=(const ScopedNoFsetid&) = delete;
  ~ScopedNoFsetid();

 private:
  ScopedNoFsetid() noexcept = default;
  bool dropped_ = false;
};

}  // namespace fuse_backend::passthrough
