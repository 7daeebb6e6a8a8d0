// UringQueue and UringEntry (see include/fuse_backend/transport/fusedev/uring_queue.hpp).
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/transport/fusedev/uring_queue.hpp>

#include <fcntl.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <limits>
#include <new>
#include <optional>

#include <fuse_backend/detail/syscall.hpp>
#include <fuse_backend/detail/thread_name.hpp>

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

// The user_data of the READ of Helpers::wake_fd (entries use their index).
constexpr std::uint64_t wake_tag = std::numeric_limits<std::uint64_t>::max();

// A blocking request for a lock (SETLKW that does not unlock): the one request that may wait
// indefinitely by design. (An unlock never waits; the kernel sends every unlock of a blocking
// fcntl or flock call as SETLKW.)
bool may_wait(std::span<const std::byte> request) noexcept {
  abi::in_header in;
  abi::lk_in lock;
  if (request.size() < sizeof(in) + sizeof(lock)) return false;
  std::memcpy(&in, request.data(), sizeof(in));
  std::memcpy(&lock, request.data() + sizeof(in), sizeof(lock));
  return in.opcode == static_cast<std::uint32_t>(abi::opcode::setlkw) && lock.lk.type != F_UNLCK;
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

UringQueue::Helpers::Helpers(std::size_t depth)
    : threads(depth), finished(std::make_unique<std::atomic<bool>[]>(depth)) {}

UringQueue::Helpers::~Helpers() {
  for (auto& thread : threads) {
    if (thread.joinable()) thread.join();
  }
}

Result<UringQueue> UringQueue::create(int fuse_fd, unsigned qid, unsigned depth,
                                      std::size_t payload_size) noexcept {
  if (depth == 0) depth = 1;
  // One SQE per entry, and one for the READ of the helpers' eventfd.
  auto ring = detail::IoUring::create(depth + 1);
  if (!ring) return fail(ring.error());
  std::unique_ptr<Helpers> helpers;
  try {
    helpers = std::make_unique<Helpers>(depth);
  } catch (const std::bad_alloc&) {
    return fail(std::errc::not_enough_memory);
  }
  // Blocking: a READ of a non-blocking fd would complete at once with EAGAIN.
  auto wake_fd = detail::syscall_result<int>([] { return ::eventfd(0, EFD_CLOEXEC); });
  if (!wake_fd) return fail(wake_fd.error());
  helpers->wake_fd = detail::UniqueFd(*wake_fd);
  UringQueue queue(std::move(*ring), fuse_fd, qid, std::move(helpers));
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

void UringQueue::answer(UringEntry& entry, const Target& target, std::span<const std::byte> request,
                        bool may_block) noexcept {
  Reader reader(request, target.backing, may_block);
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
}

bool UringQueue::hand_to_helper(const Target& target, std::size_t index,
                                std::span<const std::byte> request) noexcept {
  Helpers& helpers = *helpers_;
  if (!may_wait(request) || helpers.running + 1 >= entries_.size()) return false;
  UringEntry* entry = entries_[index].get();
  std::atomic<bool>* finished = &helpers.finished[index];
  const int wake_fd = helpers.wake_fd.get();
  const unsigned qid = qid_;
  try {
    helpers.threads[index] = std::thread([=] {
      detail::name_this_thread("fuse-lock", qid);  // not fuse-uring-N: that is the queue's thread
      answer(*entry, target, request, true);
      finished->store(true, std::memory_order_release);
      const std::uint64_t one = 1;
      (void)detail::syscall_result([&] { return ::write(wake_fd, &one, sizeof(one)); });
    });
  } catch (...) {  // std::system_error, std::bad_alloc
    return false;  // no thread to be had: answered here, without waiting
  }
  ++helpers.running;
  return true;
}

Result<void> UringQueue::take_back_finished() noexcept {
  Helpers& helpers = *helpers_;
  for (std::size_t index = 0; index < entries_.size() && helpers.running != 0; ++index) {
    if (!helpers.threads[index].joinable() || !helpers.finished[index].load(std::memory_order_acquire)) continue;
    helpers.threads[index].join();
    helpers.finished[index].store(false, std::memory_order_relaxed);
    --helpers.running;
    if (auto queued = queue_command(abi::uring_cmd::commit_and_fetch, index); !queued) return queued;
  }
  if (helpers.running == 0 || helpers.wake_pending) return {};
  io_uring_sqe* sqe = ring_.prepare();
  if (sqe == nullptr) return fail(std::errc::no_buffer_space);  // depth + 1 SQEs: never full
  sqe->opcode = IORING_OP_READ;
  sqe->fd = helpers.wake_fd.get();
  sqe->addr = reinterpret_cast<std::uintptr_t>(&helpers.wake_count);
  sqe->len = sizeof(helpers.wake_count);
  sqe->user_data = wake_tag;
  helpers.wake_pending = true;
  return {};
}

Result<UringQueue::Taken> UringQueue::take(const detail::Completion& completion, const Target& target,
                                           std::atomic<std::uint64_t>& served, bool helpers_allowed) noexcept {
  if (completion.user_data == wake_tag) {
    helpers_->wake_pending = false;  // whatever it read: take_back_finished() looks for the helpers
    return Taken::wake;
  }
  const std::size_t index = completion.user_data;
  if (index >= entries_.size()) return fail(std::errc::protocol_error);
  if (completion.result < 0) {
    if (connection_ended(-completion.result)) return Taken::connection_ended;
    return fail(static_cast<std::errc>(-completion.result));
  }
  delivered_ = true;
  served.fetch_add(1, std::memory_order_relaxed);
  UringEntry& entry = *entries_[index];
  const auto request = entry.request();
  // A helper's entry is committed once the helper is done.
  if (helpers_allowed && hand_to_helper(target, index, request)) return Taken::request;
  answer(entry, target, request, false);
  if (auto queued = queue_command(abi::uring_cmd::commit_and_fetch, index); !queued) return fail(queued.error());
  return Taken::request;
}

Result<void> UringQueue::finish_helpers(const Target& target, std::atomic<std::uint64_t>& served) noexcept {
  for (;;) {
    if (auto taken = take_back_finished(); !taken) return taken;
    // The last commits. (What the kernel hands the re-armed entries from now on stays
    // unanswered, as at any stop, until the connection ends.)
    if (helpers_->running == 0) return ring_.submit_and_wait(false);
    if (auto reaped = ring_.submit_and_wait(true); !reaped && reaped.error() != std::errc::interrupted) {
      return reaped;
    }
    // Requests that come meanwhile are answered too, without waiting.
    auto requests = take_all(target, served, false);
    if (!requests) return fail(requests.error());
    if (!*requests) return {};  // the connection ended
  }
}

Result<std::optional<unsigned>> UringQueue::take_all(const Target& target, std::atomic<std::uint64_t>& served,
                                                     bool helpers_allowed) noexcept {
  unsigned requests = 0;
  while (auto completion = ring_.next_completion()) {
    auto taken = take(*completion, target, served, helpers_allowed);
    if (!taken) return fail(taken.error());
    if (*taken == Taken::connection_ended) return std::optional<unsigned>();
    if (*taken == Taken::request) ++requests;
  }
  return std::optional<unsigned>(requests);
}

Result<bool> UringQueue::drain(const Target& target, std::atomic<std::uint64_t>& served,
                               DrainDeadline::clock::time_point deadline) noexcept {
  while (DrainDeadline::clock::now() < deadline) {
    // Submits the previous answers' commits; GETEVENTS runs the kernel's work that hands the
    // re-armed entries whatever is queued.
    if (auto reaped = ring_.submit_and_wait(false); !reaped && reaped.error() != std::errc::interrupted) {
      return fail(reaped.error());
    }
    if (auto taken = take_back_finished(); !taken) return fail(taken.error());
    auto requests = take_all(target, served, false);
    if (!requests) return fail(requests.error());
    if (!*requests) return false;  // the connection ended
    if (**requests == 0) break;
  }
  return true;
}

Result<void> UringQueue::serve(const Target& target, const Pacing& pacing,
                               const std::atomic<bool>& stopping, const DrainDeadline& drain_deadline,
                               std::atomic<std::uint64_t>& served) noexcept {
  using clock = std::chrono::steady_clock;
  // Since the last reap that brought requests (none yet: sleep). An elapsed time, not a deadline,
  // so that any busy_poll is safe (now + a huge window would overflow).
  std::optional<clock::time_point> last_busy;
  for (;;) {
    if (stopping.load(std::memory_order_acquire)) {
      if (const auto deadline = drain_deadline.get()) {
        auto drained = drain(target, served, *deadline);
        if (!drained) return fail(drained.error());
        if (!*drained) return {};  // the connection ended
      }
      return finish_helpers(target, served);
    }
    const bool polling = last_busy && clock::now() - *last_busy < pacing.busy_poll;
    if (auto reaped = ring_.submit_and_wait(!polling); !reaped) {
      if (reaped.error() == std::errc::interrupted) continue;
      return reaped;
    }
    auto taken = take_all(target, served, true);
    if (!taken) return fail(taken.error());
    if (!*taken) return {};  // the connection ended
    const unsigned requests = **taken;
    if (auto finished = take_back_finished(); !finished) return finished;
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
