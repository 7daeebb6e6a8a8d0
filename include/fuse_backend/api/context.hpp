// Context: who sent a request, and whether it has been interrupted since.
//
// Layer: api. Built by the Server for each request from the kernel's in_header (and, when
// negotiated, the supplementary-groups extension); handed to every filesystem op by const
// reference and valid only for that call. All views point into the request buffer.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <span>

#include <fuse_backend/api/backing.hpp>
#include <fuse_backend/api/detail/inflight_requests.hpp>

namespace fuse_backend::api {

struct Context {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint32_t pid = 0;
  // The caller's umask for create/mkdir/mknod/tmpfile (0 for other ops).
  std::uint32_t umask = 0;
  // The kernel's request id (in_header.unique).
  std::uint64_t unique = 0;
  // Supplementary groups: only present when FUSE_CREATE_SUPP_GROUP was negotiated and the kernel
  // attached them (it does so for creating ops in set-group-id directories).
  std::span<const std::uint32_t> supplementary_groups;

  // True once the kernel sent FUSE_INTERRUPT for this request: a long-running op may stop early
  // and answer EINTR.
  bool interrupted() const noexcept {
    return interrupted_ != nullptr && (interrupted_->load(std::memory_order_relaxed) &
                                       detail::InflightRequests::interrupted_bit) != 0;
  }
  // Whether the op may hold its thread waiting (for a contended lock). False where the thread
  // serves a queue that nothing else would serve meanwhile (a virtio queue, an io_uring queue's
  // own thread): the op should then answer at once.
  bool may_block() const noexcept { return may_block_; }
  // Where to register passthrough backing files; answers ENOTSUP on transports without them.
  BackingFiles& backing_files() const noexcept {
    return backing_ != nullptr ? *backing_ : NoBackingFiles::instance();
  }

  // The request's slot in the server's table of running requests: its id, with the low bit set
  // once interrupted (api/detail/inflight_requests.hpp).
  const std::atomic<std::uint64_t>* interrupted_ = nullptr;
  BackingFiles* backing_ = nullptr;
  bool may_block_ = true;
};

}  // namespace fuse_backend::api
