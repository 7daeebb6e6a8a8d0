// The /dev/fuse channel: one device fd, one request buffer, one reply buffer.
//
// Layer: transport::fusedev. Channel::receive() reads exactly one request per read(2) into a
// buffer it reuses for the whole session and hands out a Reader over those bytes; writer() hands
// out a Writer that appends the reply payload into the channel's reply buffer, and commit() sends
// header + payload with ONE writev, as the kernel requires (one write = one whole message).
// Reader and Writer model api::RequestReader / api::ReplyWriter (fusedev::Transport names them
// for Server<Transport, Fs>) and the zero-copy interfaces: file data moves with one pwrite from
// the request buffer / one pread into the reply buffer. Nothing allocates after construction.
//
// Spliced writes (ReceiveOptions::splice_writes): a 1 MiB WRITE read(2) into our buffer and then
// pwrite(2) to the host file costs two copies of the data after the kernel's own; spliced from
// the device into a pipe (the kernel then only references its page-cache pages) and from there
// into the file, one. A splice costs a syscall more per request, though (the request must then
// be read from the pipe), and read(2) cannot learn a request's size before taking it. So a
// channel splices its next request only when the one it just took was a WRITE of at least
// splice_write_threshold bytes: a stream of large writes is spliced, everything else read
// (libfuse splices every request, and pays that syscall on each small one). The copy saved is
// the kernel's page-cache pages; a direct_io file's writes come from the caller's memory, which
// the kernel copies into the pipe, so there splicing saves nothing. A splice the kernel refuses
// makes the channel read from then on. After a large WRITE a busy-polling channel sleeps at once
// (see receive()): its caller has the next write's data to copy first.
// The pipe must hold the largest request, a slot per page: 2 MiB for max_write 1 MiB, which a
// process may only make with CAP_SYS_RESOURCE or fs.pipe-max-size >= 2 MiB (the default is
// 1 MiB). Without either the channel always reads, as libfuse does then; max_write 1016 KiB
// fits the default. Measured on 2 CPUs, 1 MiB writes to a tmpfs source: +7% (new file + fsync)
// and +12% (cached) throughput and -20% daemon CPU against copying them.
//
// Threading: a Channel, and the Reader/Writer it hands out, belong to one worker thread; they
// are valid until the next receive()/writer() on that channel. DeviceNotifier and
// DeviceBackingFiles only issue single system calls on the fd and are thread-safe.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sys/uio.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/api/backing.hpp>
#include <fuse_backend/api/notifier.hpp>
#include <fuse_backend/api/transport.hpp>
#include <fuse_backend/api/zero_copy.hpp>
#include <fuse_backend/detail/unique_fd.hpp>
#include <fuse_backend/result.hpp>

namespace fuse_backend::transport::fusedev {

// The kernel refuses reads into buffers smaller than this (FUSE_MIN_READ_BUFFER).
inline constexpr std::size_t min_read_buffer = 8192;
// A WRITE this large (whole request) makes its channel splice the next request.
inline constexpr std::size_t splice_write_threshold = 64 * 1024;
// A busy-polling channel that takes this many requests in a row without waiting (each was queued
// before it asked) pauses its polling for the next poll_pause_requests requests (see receive()).
inline constexpr unsigned queued_in_a_row_to_pause = 2;
inline constexpr unsigned poll_pause_requests = 32;

// How a Channel reads requests.
struct ReceiveOptions {
  // Non-zero: the fd is non-blocking and receive() busy-polls it this long (see there).
  std::chrono::microseconds busy_poll{};
  // Splice large WRITE payloads through a pipe instead of copying them (see above).
  bool splice_writes = false;
  // Shared by the channels of one service (or null): how many hold a request they have not
  // finished, i.e. returned by receive() and not yet followed by their next receive(). A
  // busy-polling channel does not poll while another is answering: requests then come in
  // parallel, and a spinning CPU only takes time from the callers and the other workers (fio,
  // 16 random 4 KiB reads in flight, 2 CPUs: 84-92k IOPS polling after every request, 95-118k
  // now), while a caller that waits for each reply leaves the other workers idle and keeps the
  // gain. A request that waits long in its handler (a blocking lock) keeps polling off as long.
  std::atomic<unsigned>* answering = nullptr;
};

// Request bytes a channel left in its pipe: a spliced WRITE payload. Whatever the Reader did not
// consume is drained before the next request.
struct PipedPayload {
  int fd = -1;  // the pipe's read end
  std::size_t unread = 0;
};

// The bytes of one request, read front to back: a view of the request buffer, followed for a
// spliced WRITE by its payload in the channel's pipe. read_bytes()/skip() see the buffer only;
// read_to()/read() take the payload too.
class Reader final : public api::ZeroCopyReader {
 public:
  Reader() noexcept = default;
  // `may_block` false: the handler must not wait (an io_uring queue's own thread).
  Reader(std::span<const std::byte> request, api::BackingFiles* backing, bool may_block = true) noexcept
      : data_(request), backing_(backing), may_block_(may_block) {}
  // `spare` is request buffer the Reader may copy piped bytes into when they cannot be spliced
  // on: an append (splice(2) has no RWF_APPEND), or a target that takes no splice.
  Reader(std::span<const std::byte> request, PipedPayload& piped, std::span<std::byte> spare,
         api::BackingFiles* backing) noexcept
      : data_(request), backing_(backing), piped_(&piped), piped_left_(piped.unread), spare_(spare) {}

  std::size_t remaining() const noexcept override { return data_.size() + piped_left_; }
  void limit(std::size_t count) noexcept {
    if (count < data_.size()) data_ = data_.first(count);
    piped_left_ = std::min(piped_left_, count - data_.size());
  }
  // Contiguous already: a view into the request buffer, no bounce copy.
  std::span<const std::byte> read_bytes(std::size_t count) noexcept {
    if (count > data_.size()) return {};
    auto bytes = data_.first(count);
    data_ = data_.subspan(count);
    return bytes;
  }
  bool skip(std::size_t count) noexcept {
    if (count > data_.size()) return false;
    data_ = data_.subspan(count);
    return true;
  }
  api::BackingFiles* backing_files() noexcept { return backing_; }
  bool may_block() const noexcept { return may_block_; }

  Result<std::size_t> read_to(int fd, std::size_t count, std::uint64_t offset,
                              api::WriteAt at) noexcept override;
  std::size_t read(std::span<std::byte> out) noexcept override;

 private:
  // Reads up to `count` piped bytes into `into`; consumes them.
  std::size_t read_piped(std::byte* into, std::size_t count) noexcept;
  // `count` piped bytes have left the pipe (read or spliced on).
  void consume_piped(std::size_t count) noexcept {
    piped_left_ -= count;
    piped_->unread -= count;
  }

  std::span<const std::byte> data_;
  api::BackingFiles* backing_ = nullptr;
  bool may_block_ = true;
  PipedPayload* piped_ = nullptr;
  std::size_t piped_left_ = 0;  // of piped_->unread, what this request may consume
  std::span<std::byte> spare_;
};

// Where a Writer's commit() delivers a reply: the device (Channel: one writev) or an io_uring
// entry (UringQueue: the entry's buffers, then one COMMIT_AND_FETCH).
class ReplySink {
 public:
  // ENOENT from the kernel means the request is gone (it was interrupted and the kernel no
  // longer waits for it); ENODEV that it was unmounted.
  virtual Result<void> send(const abi::out_header& header, std::span<const std::byte> payload) noexcept = 0;

 protected:
  ~ReplySink() = default;
};

// The reply to one request: payload appended into a buffer of the sink's.
class Writer final : public api::ZeroCopyWriter {
 public:
  Writer() noexcept = default;
  Writer(ReplySink& sink, std::span<std::byte> payload_buffer) noexcept
      : sink_(&sink), buffer_(payload_buffer) {}

  std::size_t written() const noexcept { return used_; }
  std::size_t available() const noexcept override { return buffer_.size() - used_; }
  bool append(std::span<const std::byte> bytes) noexcept {
    if (bytes.size() > available()) return false;
    (void)write(bytes);
    return true;
  }
  void discard() noexcept { used_ = 0; }
  // Hands `header` and the payload to the sink.
  Result<void> commit(const abi::out_header& header) noexcept {
    return sink_->send(header, std::span<const std::byte>(buffer_.data(), used_));
  }

  Result<std::size_t> write_from(int fd, std::size_t count, std::uint64_t offset) noexcept override;
  std::size_t write(std::span<const std::byte> in) noexcept override;

 private:
  ReplySink* sink_ = nullptr;
  std::span<std::byte> buffer_;
  std::size_t used_ = 0;
};

// What Server<Transport, Fs> is instantiated with for /dev/fuse.
struct Transport {
  using Reader = fusedev::Reader;
  using Writer = fusedev::Writer;
};
static_assert(api::Transport<Transport>);

// Notifications: one writev of the whole message on the device fd.
class DeviceNotifier final : public api::Notifier {
 public:
  explicit DeviceNotifier(int fd) noexcept : fd_(fd) {}
  Result<void> send(std::span<const iovec> message) noexcept override;

 private:
  int fd_;
};

// Passthrough backing files via FUSE_DEV_IOC_BACKING_OPEN / _CLOSE on the device fd. Needs
// CAP_SYS_ADMIN in the initial user namespace and abi::init_flags::passthrough negotiated.
class DeviceBackingFiles final : public api::BackingFiles {
 public:
  explicit DeviceBackingFiles(int fd) noexcept : fd_(fd) {}
  Result<std::int32_t> open(int fd) noexcept override;
  Result<void> close(std::int32_t backing_id) noexcept override;

 private:
  int fd_;
};

class Channel final : public ReplySink {
 public:
  // A channel on `fd`, borrowed (the Session's fd) with buffers of `buffer_size` bytes each
  // (raised to min_read_buffer). Allocates its buffers (and pipe) here, once. With a non-zero
  // busy_poll the fd must be non-blocking.
  Channel(int fd, std::size_t buffer_size, ReceiveOptions options = {});
  // A channel on a new fd cloned from `session_fd` (FUSE_DEV_IOC_CLONE): requests are then
  // spread over the clones, and each reply must go out on the fd its request came from. The
  // clone is blocking, or non-blocking when options.busy_poll is non-zero.
  static Result<Channel> clone(int session_fd, std::size_t buffer_size, ReceiveOptions options = {});

  int fd() const noexcept { return fd_; }

  // Reads one request. ENOENT (the request was interrupted before we read it) and EINTR are
  // retried here, but once `*stop` is set (checked before every read, so a signal that
  // interrupts a blocked read ends it) the result is operation_canceled. ENODEV (unmounted) and
  // anything else are returned, and so is EAGAIN (a non-blocking fd with nothing queued) unless
  // the channel busy-polls: then it keeps re-reading for `busy_poll` (not after a large WRITE,
  // nor while another channel of `answering` holds a request, nor while its polling is paused)
  // and afterwards sleeps in epoll_wait until the fd is readable (or a signal interrupts it). The
  // Reader is valid until the next receive().
  //
  // Paused polling: requests that are already queued when the channel comes back for them,
  // queued_in_a_row_to_pause of them in a row, mean callers that keep several in flight (a caller
  // that waits for each reply cannot queue its next before it has one; the kernel's own RELEASE
  // after a FLUSH makes one in a row). Polling there only takes CPU from those callers, and
  // takes each request alone as it comes where a sleeping channel wakes to several: the channel
  // then sleeps at once whenever the queue runs empty, for its next poll_pause_requests requests
  // (renewed by every such streak). Measured with fio, 16 random 4 KiB reads in flight on tmpfs,
  // 2 CPUs: 0.2-0.5 sched_yield and as many empty reads per request before, none now, and more
  // IOPS in each of 8 alternating rounds (79-92k before, 93-100k now, libfuse 90-97k); one
  // request at a time (psync) keeps its polling and its figure (35.7-41.5k IOPS before,
  // 34.6-41.1k now, in 4 rounds).
  Result<Reader> receive(api::BackingFiles* backing, const std::atomic<bool>* stop = nullptr) noexcept;
  // From now on receive() never waits: it returns a request already queued, or EAGAIN (the fd
  // becomes non-blocking, busy polling ends). For draining at a stop. False when the fd cannot
  // be made non-blocking.
  bool stop_waiting() noexcept;
  // A fresh writer over the reply buffer behind the header's room, valid until the next writer().
  Writer writer() noexcept {
    return Writer(*this, std::span<std::byte>(reply_).subspan(sizeof(abi::out_header)));
  }
  // One write of `header` and `payload`: the kernel takes one write as one whole message. A
  // payload from writer() already sits behind the header's room, so the reply leaves as one
  // contiguous range: the kernel pins each page of ours it copies from, and a small reply (an
  // entry, attributes, a WRITE's count) then touches one page instead of two (the header's on
  // the stack and the payload's). Any other payload goes with writev.
  Result<void> send(const abi::out_header& header, std::span<const std::byte> payload) noexcept override;

  // Whether large writes can be spliced (asked for, and the pipe could be made large enough).
  bool splices() const noexcept { return pipe_write_.valid(); }
  // Requests taken with splice so far.
  std::uint64_t spliced_requests() const noexcept { return spliced_requests_; }

 private:
  Channel(detail::UniqueFd owned, std::size_t buffer_size, ReceiveOptions options);
  // Makes the pipe, or leaves the channel reading only.
  void open_pipe() noexcept;
  // Makes sleep_fd_, or leaves await_request() sleeping in poll(2), which the kernel wakes for
  // every request, also those another worker takes.
  void open_sleep_fd() noexcept;
  // receive() but for the count of answering channels.
  Result<Reader> take_request(api::BackingFiles* backing, const std::atomic<bool>* stop) noexcept;
  // Counts a request taken, `queued` when it was there before the channel asked (no EAGAIN).
  void count_request(bool queued) noexcept;
  // One request from the device into request_ (read) or the pipe (splice). Returns its size.
  Result<std::size_t> take(const std::atomic<bool>* stop, bool splicing) noexcept;
  // After a splice of `size` bytes: the header (and for a large WRITE its write_in) into
  // request_, the rest too unless it is that WRITE's payload.
  Result<Reader> unpipe(std::size_t size, api::BackingFiles* backing) noexcept;
  // Empties the pipe of a previous request's unconsumed payload.
  Result<void> drain_pipe() noexcept;
  // After EAGAIN: true to read again (within the busy-poll window that starts at `*idle_since`,
  // or once the sleep saw the fd readable or was interrupted).
  bool await_request(std::optional<std::chrono::steady_clock::time_point>& idle_since) const noexcept;

  detail::UniqueFd owned_;
  int fd_;
  std::chrono::microseconds busy_poll_;
  std::atomic<unsigned>* answering_;
  bool counted_ = false;  // this channel is one of *answering_
  std::vector<std::byte> request_;
  std::vector<std::byte> reply_;
  detail::UniqueFd pipe_read_, pipe_write_;
  // A busy-polling channel sleeps in epoll_wait on it: fd_ registered EPOLLEXCLUSIVE.
  detail::UniqueFd sleep_fd_;
  PipedPayload piped_;
  bool after_large_write_ = false;  // the last request taken was a WRITE worth splicing
  unsigned queued_in_a_row_ = 0;     // requests taken in a row that were queued before we asked
  unsigned polls_paused_for_ = 0;    // requests still to take before polling again
  std::uint64_t spliced_requests_ = 0;
};

}  // namespace fuse_backend::transport::fusedev
