// IoUring (see include/fuse_backend/detail/io_uring.hpp).
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/detail/io_uring.hpp>

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

#include <fuse_backend/detail/syscall.hpp>

namespace fuse_backend::detail {
namespace {

constexpr std::size_t sqe128_size = 2 * sizeof(io_uring_sqe);
static_assert(sizeof(io_uring_sqe) == 64 && offsetof(io_uring_sqe, cmd) == 48 &&
              48 + IoUring::command_size == sqe128_size);

template <class T>
T* at(void* base, std::uint32_t offset) noexcept {
  return reinterpret_cast<T*>(static_cast<std::byte*>(base) + offset);
}

}  // namespace

Result<IoUring> IoUring::create(unsigned entries) noexcept {
  io_uring_params params{};
  // SUBMIT_ALL: a command the kernel refuses gets its own failed completion instead of stopping
  // the submission of the ones behind it.
  constexpr unsigned base = IORING_SETUP_SQE128 | IORING_SETUP_SUBMIT_ALL;
  params.flags = base | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  auto fd = syscall_result<int>([&] { return ::syscall(SYS_io_uring_setup, entries, &params); });
  if (!fd && fd.error() == std::errc::invalid_argument) {  // before Linux 6.1
    params = io_uring_params{};
    params.flags = base;
    fd = syscall_result<int>([&] { return ::syscall(SYS_io_uring_setup, entries, &params); });
  }
  if (!fd) return fail(fd.error());
  IoUring ring;
  ring.fd_.reset(*fd);
  if ((params.features & IORING_FEAT_SINGLE_MMAP) == 0) return fail(std::errc::not_supported);

  ring.rings_size_ = std::max<std::size_t>(params.sq_off.array + params.sq_entries * sizeof(unsigned),
                                           params.cq_off.cqes + params.cq_entries * sizeof(io_uring_cqe));
  void* rings = ::mmap(nullptr, ring.rings_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                       ring.fd_.get(), IORING_OFF_SQ_RING);
  if (rings == MAP_FAILED) return fail_errno();
  ring.rings_ = rings;
  ring.sqes_size_ = params.sq_entries * sqe128_size;
  void* sqes = ::mmap(nullptr, ring.sqes_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                      ring.fd_.get(), IORING_OFF_SQES);
  if (sqes == MAP_FAILED) return fail_errno();
  ring.sqes_ = static_cast<io_uring_sqe*>(sqes);

  ring.sq_head_ = at<unsigned>(rings, params.sq_off.head);
  ring.sq_tail_ = at<unsigned>(rings, params.sq_off.tail);
  ring.sq_array_ = at<unsigned>(rings, params.sq_off.array);
  ring.sq_mask_ = *at<unsigned>(rings, params.sq_off.ring_mask);
  ring.sq_entries_ = params.sq_entries;
  ring.next_tail_ = *ring.sq_tail_;
  ring.cq_head_ = at<unsigned>(rings, params.cq_off.head);
  ring.cq_tail_ = at<unsigned>(rings, params.cq_off.tail);
  ring.cqes_ = at<io_uring_cqe>(rings, params.cq_off.cqes);
  ring.cq_mask_ = *at<unsigned>(rings, params.cq_off.ring_mask);
  return ring;
}

IoUring::IoUring(IoUring&& other) noexcept
    : fd_(std::move(other.fd_)),
      rings_(std::exchange(other.rings_, nullptr)),
      rings_size_(other.rings_size_),
      sqes_(std::exchange(other.sqes_, nullptr)),
      sqes_size_(other.sqes_size_),
      sq_head_(other.sq_head_),
      sq_tail_(other.sq_tail_),
      sq_array_(other.sq_array_),
      sq_mask_(other.sq_mask_),
      sq_entries_(other.sq_entries_),
      cq_head_(other.cq_head_),
      cq_tail_(other.cq_tail_),
      cqes_(other.cqes_),
      cq_mask_(other.cq_mask_),
      next_tail_(other.next_tail_) {}

IoUring::~IoUring() {
  // Closing the ring cancels the commands still pending in the kernel.
  fd_.reset();
  unmap();
}

void IoUring::unmap() noexcept {
  if (sqes_ != nullptr) ::munmap(sqes_, sqes_size_);
  if (rings_ != nullptr) ::munmap(rings_, rings_size_);
  sqes_ = nullptr;
  rings_ = nullptr;
}

io_uring_sqe* IoUring::prepare() noexcept {
  // We are the only producer: the tail only moves here; the kernel moves the head.
  const unsigned head = std::atomic_ref<unsigned>(*sq_head_).load(std::memory_order_acquire);
  if (next_tail_ - head >= sq_entries_) return nullptr;
  const unsigned index = next_tail_ & sq_mask_;
  auto* sqe = reinterpret_cast<io_uring_sqe*>(reinterpret_cast<std::byte*>(sqes_) + index * sqe128_size);
  std::memset(sqe, 0, sqe128_size);
  sq_array_[index] = index;
  ++next_tail_;
  return sqe;
}

Result<void> IoUring::submit_and_wait(bool wait) noexcept {
  std::atomic_ref<unsigned>(*sq_tail_).store(next_tail_, std::memory_order_release);
  const unsigned pending = next_tail_ - std::atomic_ref<unsigned>(*sq_head_).load(std::memory_order_acquire);
  // GETEVENTS also without waiting: on a DEFER_TASKRUN ring it runs the completion work queued
  // for us, without which nothing new reaches the completion queue.
  // Not syscall_result: EINTR must reach the caller (a stop request), not be retried. SQEs the
  // kernel did not take stay published and go with the next call.
  const long rc = ::syscall(SYS_io_uring_enter, fd_.get(), pending, wait ? 1u : 0u,
                            IORING_ENTER_GETEVENTS, nullptr, 0);
  if (rc < 0) return fail_errno();
  return {};
}

std::optional<Completion> IoUring::next_completion() noexcept {
  const unsigned head = *cq_head_;  // we are the only consumer
  if (head == std::atomic_ref<unsigned>(*cq_tail_).load(std::memory_order_acquire)) return std::nullopt;
  const io_uring_cqe& cqe = cqes_[head & cq_mask_];
  const Completion completion{cqe.user_data, cqe.res};
  std::atomic_ref<unsigned>(*cq_head_).store(head + 1, std::memory_order_release);
  return completion;
}

}  // namespace fuse_backend::detail
