// IoUring: the few io_uring operations the FUSE-over-io_uring transport needs, on the raw
// system calls.
//
// Layer: detail. One ring with 128-byte SQEs (FUSE puts its command in the SQE's 80-byte command
// area), created by and used from ONE thread: IORING_SETUP_SINGLE_ISSUER, and DEFER_TASKRUN
// where the kernel has it (completion work then runs only inside our io_uring_enter, on our
// thread, instead of interrupting it). No liburing: the project depends on nothing for 150 lines
// of ring bookkeeping (see README, "Dependencies").
//
// Use: prepare() an SQE per command (filled in by the caller), submit_and_wait() to hand them
// all to the kernel and sleep until at least one completion (or, to poll, only collect what has
// completed), then drain completions with next_completion(). A signal interrupts the wait
// (EINTR is returned, not retried: the caller decides whether it was asked to stop). Not
// thread-safe; move-only.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <linux/io_uring.h>

#include <cstddef>
#include <cstdint>
#include <optional>

#include <fuse_backend/detail/unique_fd.hpp>
#include <fuse_backend/result.hpp>

namespace fuse_backend::detail {

struct Completion {
  std::uint64_t user_data;
  std::int32_t result;  // >= 0, or -errno
};

class IoUring {
 public:
  // A ring with room for `entries` SQEs in flight (rounded up to a power of two by the kernel).
  static Result<IoUring> create(unsigned entries) noexcept;

  IoUring(IoUring&& other) noexcept;
  IoUring& operator=(IoUring&&) = delete;
  IoUring(const IoUring&) = delete;
  IoUring& operator=(const IoUring&) = delete;
  ~IoUring();

  // A zeroed 128-byte SQE to fill in, queued for the next submit_and_wait(); nullptr when the
  // submission queue is full (submit first).
  io_uring_sqe* prepare() noexcept;
  // Submits every prepared SQE, lets the kernel post what has completed and, when `wait`, sleeps
  // until a completion is there. EINTR when a signal arrived (whatever was submitted stays
  // submitted).
  Result<void> submit_and_wait(bool wait = true) noexcept;
  // The oldest completion not yet taken, or nothing.
  std::optional<Completion> next_completion() noexcept;

  // The command area of an SQE of this ring (IORING_OP_URING_CMD): command_size bytes from
  // offset 48, past the 64 bytes the SQE struct declares.
  static constexpr std::size_t command_size = 80;
  static void* command_area(io_uring_sqe* sqe) noexcept { return reinterpret_cast<std::byte*>(sqe) + 48; }

 private:
  IoUring() noexcept = default;
  void unmap() noexcept;

  UniqueFd fd_;
  void* rings_ = nullptr;  // SQ and CQ rings, one mapping (IORING_FEAT_SINGLE_MMAP)
  std::size_t rings_size_ = 0;
  io_uring_sqe* sqes_ = nullptr;  // 2 x io_uring_sqe each (SQE128)
  std::size_t sqes_size_ = 0;
  unsigned* sq_head_ = nullptr;
  unsigned* sq_tail_ = nullptr;
  unsigned* sq_array_ = nullptr;
  unsigned sq_mask_ = 0;
  unsigned sq_entries_ = 0;
  unsigned* cq_head_ = nullptr;
  unsigned* cq_tail_ = nullptr;
  io_uring_cqe* cqes_ = nullptr;
  unsigned cq_mask_ = 0;
  unsigned next_tail_ = 0;  // the SQ tail after the SQEs prepared so far
};

}  // namespace fuse_backend::detail
