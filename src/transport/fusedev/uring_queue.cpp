// UringQueue and UringEntry (see include/fuse_backend/transport/fusedev/uring_queue.hpp).
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/transport/fusedev/uring_queue.hpp>

#include <sched.h>
#include <sys/mman.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <new>
#include <optional>

namespace fuse_backend::transport::fusedev {
namespace {

constexpr std::size_t page = 4096;
// The staging area in front of the payload: in_header + the largest op struct.
constexpr std::size_t staging_size = sizeof(abi::in_header) + abi::uring_op_in_out_sz;
// The header buffer sits right before the staging area, all within the first page.
constexpr std::size_t header_offset = page - staging_size - sizeof(abi::uring_req_header);
static_assert(header_offset % alignof(abi::uring_req_header) == 0);

constexpr std::size_t round_up(std::size_t value, std::size_t to) noexcept {
  return (value + to - 1) / to * to;
}

// The kernel ends every pending entry with one of these when the connection goes away.
constexpr bool connection_ended(int error) noexcept {
  return error == ENOTCONN || error == ECONNABORTED || error == ECANCELED || error == ENODEV;
}

}  // namespace

Result<std::unique_ptr<UringEntry>> UringEntry::create(std::size_t payload_size) noexcept {
  payload_size = round_up(payload_size, page);
  // First page: header + staging. Then the payload, twice over: the request's, then room for a
  // full-size reply behind it. Untouched pages cost nothing (anonymous mapping).
  const std::size_t size = page + 2 * payload_size;
  void* memory = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) return fail_errno();
  auto* entry = new (std::nothrow) UringEntry(static_cast<std::byte*>(memory), size, payload_size);
  if (entry == nullptr) {
    ::munmap(memory, size);
    return fail(std::errc::not_enough_memory);
  }
  return std::unique_ptr<UringEntry>(entry);
}

UringEntry::UringEntry(std::byte* memory, std::size_t size, std::size_t payload_size) noexcept
    : memory_(memory),
      size_(size),
      payload_size_(payload_size),
      header_(reinterpret_cast<abi::uring_req_header*>(memory + header_offset)),
      payload_(memory + page) {
  iov_[0] = {header_, sizeof(abi::uring_req_header)};
  iov_[1] = {payload_, payload_size_};
}

UringEntry::~UringEntry() { ::munmap(memory_, size_); }

std::span<const std::byte> UringEntry::request() noexcept {
  committed_ = false;
  request_payload_ = 0;
  abi::in_header in;
  std::memcpy(&in, header_->in_out, sizeof(in));
  abi::uring_ent_in_out ring;
  std::memcpy(&ring, &header_->ring_ent_in_out, sizeof(ring));
  // The reply, even an EIO for a malformed request, needs both.
  commit_id_ = ring.commit_id;
  unique_ = in.unique;
  constexpr std::size_t in_size = sizeof(abi::in_header);
  // len = in_header + op struct (in op_in) + payload_sz; anything else is not a request we
  // can take apart safely.
  if (ring.payload_sz > payload_size_ || in.len < in_size + ring.payload_sz) return {};
  const std::size_t op_size = in.len - in_size - ring.payload_sz;
  if (op_size > abi::uring_op_in_out_sz) return {};
  std::byte* start = payload_ - in_size - op_size;
  std::memcpy(start, &in, in_size);
  std::memcpy(start + in_size, header_->op_in, op_size);
  request_payload_ = ring.payload_sz;
  return {start, in.len};
}

Writer UringEntry::writer() noexcept {
  const std::size_t offset = round_up(request_payload_, 64);
  return Writer(*this, std::span<std::byte>(payload_ + offset, payload_size_));
}

Result<void> UringEntry::send(const abi::out_header& header, std::span<const std::byte> payload) noexcept {
  if (payload.size() > payload_size_) return fail(std::errc::message_size);
  if (!payload.empty() && payload.data() != payload_) std::memmove(payload_, payload.data(), payload.size());
  std::memcpy(header_->in_out, &header, sizeof(header));
  const auto payload_sz = static_cast<std::uint32_t>(payload.size());
  std::memcpy(reinterpret_cast<std::byte*>(&header_->ring_ent_in_out) +
                  offsetof(abi::uring_ent_in_out, payload_sz),
              &payload_sz, sizeof(payload_sz));
  committed_ = true;
  return {};
}

Result<UringQueue> UringQueue::create(int fuse_fd, unsigned qid, unsigned depth,
                                      std::size_t payload_size) noexcept {
  if (depth == 0) depth = 1;
  auto ring = detail::IoUring::create(depth);
  if (!ring) return fail(ring.error());
  UringQueue queue(std::move(*ring), fuse_fd, qid);
  try {
    queue.entries_.reserve(depth);
  } catch (const std::bad_alloc&) {
    return fail(std::errc::not_enough_memory);
  }
  for (unsigned i = 0; i < depth; ++i) {
    auto entry = UringEntry::create(payload_size);
    if (!entry) return fail(entry.error());
    queue.entries_.push_back(std::move(*entry));  // reserved: cannot throw
    if (auto queued = queue.queue_command(abi::uring_cmd::register_entry, i); !queued) return fail(queued.error());
  }
  return queue;
}

Result<void> UringQueue::queue_command(abi::uring_cmd command, std::size_t index) noexcept {
  io_uring_sqe* sqe = ring_.prepare();
  if (sqe == nullptr) return fail(std::errc::no_buffer_space);  // depth SQEs: never more in flight
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = fuse_fd_;
  sqe->cmd_op = static_cast<std::uint32_t>(command);
  sqe->user_data = index;
  UringEntry& entry = *entries_[index];
  abi::uring_cmd_req request{};
  request.qid = static_cast<std::uint16_t>(qid_);
  if (command == abi::uring_cmd::register_entry) {
    sqe->addr = reinterpret_cast<std::uintptr_t>(entry.buffers());
    sqe->len = 2;
  } else {
    request.commit_id = entry.commit_id();
  }
  std::memcpy(detail::IoUring::command_area(sqe), &request, sizeof(request));
  return {};
}

Result<void> UringQueue::serve(const Target& target, const Pacing& pacing,
                               const std::atomic<bool>& stopping,
                               std::atomic<std::uint64_t>& served) noexcept {
  using clock = std::chrono::steady_clock;
  // Since the last reap that brought requests (none yet: sleep). An elapsed time, not a deadline,
  // so that any busy_poll is safe (now + a huge window would overflow).
  std::optional<clock::time_point> last_busy;
  for (;;) {
    if (stopping.load(std::memory_order_acquire)) return {};
    const bool polling = last_busy && clock::now() - *last_busy < pacing.busy_poll;
    if (auto reaped = ring_.submit_and_wait(!polling); !reaped) {
      if (reaped.error() == std::errc::interrupted) continue;
      return reaped;
    }
    unsigned requests = 0;
    while (auto completion = ring_.next_completion()) {
      const std::size_t index = completion->user_data;
      if (index >= entries_.size()) return fail(std::errc::protocol_error);
      if (completion->result < 0) {
        if (connection_ended(-completion->result)) return {};
        return fail(static_cast<std::errc>(-completion->result));
      }
      delivered_ = true;
      UringEntry& entry = *entries_[index];
      const auto request = entry.request();
      Reader reader(request, target.backing);
      Writer writer = entry.writer();
      if (!request.empty()) target.handler(target.context, reader, writer);
      if (!entry.committed()) {
        // Malformed, or not answered: the kernel still waits for this request.
        abi::out_header header{};
        header.len = sizeof(header);
        header.error = -EIO;
        header.unique = entry.unique();
        (void)entry.send(header, {});
      }
      served.fetch_add(1, std::memory_order_relaxed);
      ++requests;
      if (auto queued = queue_command(abi::uring_cmd::commit_and_fetch, index); !queued) return queued;
    }
    if (requests == 0) {
      // Between empty reaps the CPU goes to anyone who wants it; after a busy one, the replies
      // (submitted by the next reap) go out first.
      if (polling) ::sched_yield();
      continue;
    }
    if (pacing.busy_poll.count() > 0) last_busy = clock::now();
    if (pacing.affinity == nullptr) continue;
    if (const cpu_set_t* cpus = pacing.affinity->after_reap(requests)) {
      // A refusal (a cpuset changed meanwhile) leaves the thread where it is.
      (void)::sched_setaffinity(0, sizeof(*cpus), cpus);
    }
  }
}

}  // namespace fuse_backend::transport::fusedev
