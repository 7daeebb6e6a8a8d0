// UringQueue: one FUSE-over-io_uring queue (Linux >= 6.14, FUSE_OVER_IO_URING negotiated).
//
// Layer: transport::fusedev. The kernel keeps one request queue per possible CPU and hands a
// request to the queue of the CPU its caller runs on. A UringQueue serves one of them from one
// thread: its own io_uring holds `depth` entries registered with FUSE_IO_URING_CMD_REGISTER, each
// a header buffer (fuse_uring_req_header) and a payload buffer. A completion means an entry holds
// a request; the reply goes back into the same buffers and one COMMIT_AND_FETCH both completes
// it and re-arms the entry, so a request costs one io_uring_enter instead of a read(2) and a
// writev(2) (see Service, ServiceOptions::io_uring; where the thread runs: queue_affinity.hpp).
//
// What the Server sees: the same fusedev::Reader and Writer as for /dev/fuse. The kernel splits
// a request into in_header (in_out), the opcode's fixed argument struct (op_in) and the rest
// (payload, `payload_sz` bytes); the entry's memory is laid out so that in_header + op struct
// are copied (at most 168 bytes) right in front of the payload, making the request one
// contiguous, bounds-checked span. Its length is cross-checked: in_header.len must equal
// 40 + op struct (<= 128 bytes) + payload_sz, or the request gets EIO without being parsed.
// The reply is built behind the request's payload (so a reply never overwrites request bytes
// the filesystem may still be reading) and moved to the payload's start at commit. Every
// request taken from the ring gets a commit, also one the Server did not answer (EIO), or the
// entry would be lost.
//
// Requests that wait (SETLKW on a contended lock): the queue's thread is the only one serving
// its CPU's requests, so a request waiting there would hold up every other request from that CPU
// (the unlock that would end the wait among them). A SETLKW that asks for a lock therefore runs
// on a helper thread of its own (fuse-lock-N) with the entry's buffers as its reader and writer;
// the queue thread goes on with its other entries and commits the reply once the helper is done,
// woken by an eventfd it keeps a READ pending on. The thread is started for the request: tens of
// microseconds, small beside a lock wait but paid by every blocking lock call (an unlock runs on
// the queue thread; a pool would save it, not needed so far). At most depth - 1 helpers run at
// once (io_uring_depth 2: one per CPU), so one entry always serves everything else; a SETLKW beyond
// that (or when no thread can be started) runs on the queue thread with Context::may_block
// false, as does every other request, so the filesystem answers at once instead of waiting.
// A helper's wait ends with the lock, an INTERRUPT (which comes over /dev/fuse), or the Server
// interrupting everything when the Service stops (Server::interrupt_all); a stopping serve()
// commits the helpers' replies before it returns (a caller waiting for one could otherwise only
// be freed by the connection's end, which a forked child holding the ring's fd can put off
// for ever), and the destructor joins any helper still running.
//
// Stopping: after Service::drain_and_stop() a queue first answers, without waiting, what the
// kernel already handed its entries and what it hands on as the commits re-arm them (the
// writeback WRITEs a sync queued, the background requests the answers release), until a reap
// brings nothing or the deadline passes; no helper threads then, nothing may wait. A plain stop()
// ends at once. Either way the helpers' replies are committed last (above).
//
// Teardown: an unmount or abort completes pending entries with ENOTCONN/ECONNABORTED; serve()
// then returns success. Entry buffers stay allocated until the UringQueue is destroyed, after
// the ring (whose close cancels what is still pending).
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/api/backing.hpp>
#include <fuse_backend/detail/io_uring.hpp>
#include <fuse_backend/detail/unique_fd.hpp>
#include <fuse_backend/result.hpp>
#include <fuse_backend/transport/fusedev/channel.hpp>
#include <fuse_backend/transport/fusedev/drain_deadline.hpp>
#include <fuse_backend/transport/fusedev/queue_affinity.hpp>

namespace fuse_backend::transport::fusedev {

// One registered entry: header and payload buffers in one page-aligned anonymous mapping.
class UringEntry final : public ReplySink {
 public:
  // Memory for a payload of `payload_size` bytes (the connection's max_payload_sz or more).
  static Result<std::unique_ptr<UringEntry>> create(std::size_t payload_size) noexcept;
  ~UringEntry();
  UringEntry(const UringEntry&) = delete;
  UringEntry& operator=(const UringEntry&) = delete;

  // The two iovecs FUSE_IO_URING_CMD_REGISTER points at.
  const iovec* buffers() const noexcept { return iov_; }
  abi::uring_req_header& header() noexcept { return *header_; }

  // The request the kernel left in the buffers, as one contiguous span (see the file comment);
  // empty when its lengths do not add up.
  std::span<const std::byte> request() noexcept;
  // A writer for the reply to request(): room behind the request's payload.
  Writer writer() noexcept;
  // What the last request's unique id was (for the EIO commit of an unanswered request).
  std::uint64_t unique() const noexcept { return unique_; }
  // The id the kernel gave the last request, to commit its reply with.
  std::uint64_t commit_id() const noexcept { return commit_id_; }

  // Commit: header into in_out, payload moved to the payload buffer's start, payload_sz set.
  Result<void> send(const abi::out_header& header, std::span<const std::byte> payload) noexcept override;
  bool committed() const noexcept { return committed_; }

 private:
  UringEntry(std::byte* memory, std::size_t size, std::size_t payload_size) noexcept;

  std::byte* memory_;
  std::size_t size_;
  std::size_t payload_size_;
  abi::uring_req_header* header_;
  std::byte* payload_;
  iovec iov_[2];
  std::size_t request_payload_ = 0;  // bytes of payload the current request uses
  std::uint64_t commit_id_ = 0;
  std::uint64_t unique_ = 0;
  bool committed_ = false;
};

class UringQueue {
 public:
  // Called for each request with a reader over it and a writer for its reply.
  using Handler = void (*)(void* context, Reader& reader, Writer& writer);

  // Creates the ring and `depth` entries (payloads of `payload_size` bytes) for queue `qid` on
  // the calling thread, which must be the one that calls serve() (the ring is single-issuer),
  // and queues their registration (submitted by serve()). `fuse_fd` is the session's fd.
  // Handlers run on this thread, and SETLKW handlers on helper threads (see above).
  static Result<UringQueue> create(int fuse_fd, unsigned qid, unsigned depth, std::size_t payload_size) noexcept;

  UringQueue(UringQueue&&) noexcept = default;
  UringQueue& operator=(UringQueue&&) = delete;

  // Where requests go: handler(context, ...), with `backing` for the Readers.
  struct Target {
    Handler handler;
    void* context;
    api::BackingFiles* backing;
  };
  // How the thread waits and where it runs between requests.
  struct Pacing {
    // After a reap that brought requests, keep reaping without sleeping for this long (0: sleep
    // at once), yielding the CPU after each empty reap; see ServiceOptions::busy_poll.
    std::chrono::microseconds busy_poll{};
    // Told of each reap's request count, to move the thread (queue_affinity.hpp); may be null.
    QueueAffinity* affinity = nullptr;
  };

  // Serves requests until `stopping` is seen (after any wake-up: a signal interrupts the wait;
  // then drains first if `drain_deadline` is set) or the connection ends (both success). A
  // failed completion fails with its error: when no request came before (delivered() is false)
  // that is the kernel refusing the registration, after which it turns io_uring off for the
  // connection and keeps using /dev/fuse. `served` counts the requests handled.
  Result<void> serve(const Target& target, const Pacing& pacing, const std::atomic<bool>& stopping,
                     const DrainDeadline& drain_deadline, std::atomic<std::uint64_t>& served) noexcept;
  // At least one request came through this queue.
  bool delivered() const noexcept { return delivered_; }

 private:
  // The helper threads of one queue and how they hand their entries back.
  struct Helpers {
    explicit Helpers(std::size_t depth);
    ~Helpers();  // joins the threads
    Helpers(const Helpers&) = delete;
    Helpers& operator=(const Helpers&) = delete;
    std::vector<std::thread> threads;                 // by entry index; joinable while taken
    std::unique_ptr<std::atomic<bool>[]> finished;    // by entry index: reply written
    detail::UniqueFd wake_fd;                         // written once per finished helper
    std::uint64_t wake_count = 0;                     // the pending READ's buffer
    bool wake_pending = false;                        // a READ of wake_fd is in the ring
    std::size_t running = 0;
  };

  UringQueue(detail::IoUring ring, int fuse_fd, unsigned qid, std::unique_ptr<Helpers> helpers) noexcept
      : helpers_(std::move(helpers)), ring_(std::move(ring)), fuse_fd_(fuse_fd), qid_(qid) {}
  // Queues REGISTER (register_entry) or COMMIT_AND_FETCH for entry `index`.
  Result<void> queue_command(abi::uring_cmd command, std::size_t index) noexcept;
  // Answers `request`, held in `entry` (EIO when malformed or unanswered).
  static void answer(UringEntry& entry, const Target& target, std::span<const std::byte> request,
                     bool may_block) noexcept;
  // Hands a SETLKW in entry `index` to a helper thread; false when it must run here.
  bool hand_to_helper(const Target& target, std::size_t index, std::span<const std::byte> request) noexcept;
  // Commits the entries of helpers that have finished and keeps a READ of wake_fd pending while
  // any still runs.
  Result<void> take_back_finished() noexcept;
  // What a completion was.
  enum class Taken { request, wake, connection_ended };
  // Takes one completion: a request is answered (or handed to a helper, if allowed) and its
  // commit queued.
  Result<Taken> take(const detail::Completion& completion, const Target& target,
                     std::atomic<std::uint64_t>& served, bool helpers_allowed) noexcept;
  // Takes every completion the ring holds (take()): how many were requests, or nullopt once one
  // says the connection ended.
  Result<std::optional<unsigned>> take_all(const Target& target, std::atomic<std::uint64_t>& served,
                                           bool helpers_allowed) noexcept;
  // At drain_and_stop(): answers what the ring holds and is handed until a reap brings no
  // request or `deadline` passes (see Stopping above); false when the connection ended.
  Result<bool> drain(const Target& target, std::atomic<std::uint64_t>& served,
                     DrainDeadline::clock::time_point deadline) noexcept;
  // At stop: waits for the helpers (the Server interrupts their waits) and commits their
  // replies, so that the requests they hold are answered before the ring closes.
  Result<void> finish_helpers(const Target& target, std::atomic<std::uint64_t>& served) noexcept;

  // Declared before ring_, so destroyed after it: the ring must close (cancelling what the
  // kernel still holds, a READ into helpers_ among it) before the buffers go, and helpers_
  // (joining the threads that write into entries_) before entries_.
  std::vector<std::unique_ptr<UringEntry>> entries_;
  std::unique_ptr<Helpers> helpers_;
  bool delivered_ = false;
  detail::IoUring ring_;
  int fuse_fd_;
  unsigned qid_;
};

}  // namespace fuse_backend::transport::fusedev
