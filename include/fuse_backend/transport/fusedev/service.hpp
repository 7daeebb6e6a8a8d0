// Service<Fs>: worker threads serving one mounted Session with a Server<fusedev::Transport, Fs>.
//
// Layer: transport::fusedev. Worker 0 reads the Session's own fd; every further worker gets its
// own fd cloned from it (FUSE_DEV_IOC_CLONE), so the kernel spreads requests over the workers
// and each reply goes back on the fd its request came from. Each worker owns its Channel (request
// and reply buffers of Server::buffer_size() bytes, allocated once in start()), so serving
// allocates nothing. Each worker blocks in read(2) on its own (blocking) fd: all clones share the
// kernel's one request queue, and a blocked reader is woken exclusively, so one request wakes one
// worker (polling the fds instead woke every worker for every request).
//
// Stopping blocked readers: stop() sets a flag and sends ServiceOptions::wake_signal to each
// worker thread (tgkill). start() installs a no-op handler for that signal WITHOUT SA_RESTART,
// so the read fails with EINTR and the worker sees the flag; each worker unblocks the signal in
// its own mask (other signals stay as inherited, e.g. SIGINT/SIGTERM blocked by SignalWatcher).
// A signal that lands after the worker checked the flag but before it blocked in read(2) is
// lost; join() therefore re-sends it every few milliseconds to workers that have not ended.
// The default, SIGURG, is ignored by default, so a stray or late one can never kill the process;
// start() refuses (EBUSY) a wake signal for which the application installed its own handler.
//
// Busy polling (ServiceOptions::busy_poll, default 50 us): the cost of a /dev/fuse round trip is
// mostly the wake-ups (perf: ~65% of a worker's time in the scheduler under 4 KiB random reads),
// and a caller that issues its next request right after our reply finds a sleeping worker again.
// So worker 0 reads a non-blocking clone and, once the queue is empty, keeps re-reading it for
// `busy_poll` (yielding the CPU between reads to any thread that wants it) before it sleeps in
// epoll_wait (EPOLLEXCLUSIVE, so a request wakes one sleeping worker, not this one besides):
// back-to-back requests then skip the worker's wake-up. Measured on 2 CPUs (a VM),
// against blocking workers (which are at libfuse's figure): create/stat/unlink 1.1-1.5x, 4 KiB
// psync random I/O 1.3-1.6x, or no gain in runs where the scheduler keeps the caller on the
// other CPU, which then halts while it waits (the reply's wake-up of a halted CPU is the other
// half of the cost, and only the caller's side can avoid it). The price is up to `busy_poll` of
// one CPU after each burst of requests (with io_uring: of each queue thread's), nothing while
// idle. Worker 0 does not poll while another worker answers a request (ReceiveOptions::
// answering), nor for a while after requests queued up behind each other (channel.hpp, "Paused
// polling"): requests in parallel want every CPU for the callers and the workers, and polling
// there cost about a tenth of the IOPS at depth 16.
// The other workers block in read(2) as above and take requests while worker 0 is busy with one.
// With io_uring the /dev/fuse workers only see FORGET and INTERRUPT and never poll; each queue
// thread polls its ring instead.
//
// FUSE-over-io_uring (ServiceOptions::io_uring): start() also starts one queue thread per
// possible CPU. They wait until a /dev/fuse worker has answered INIT; if the kernel offered
// FUSE_OVER_IO_URING (Linux >= 6.14, fuse.enable_uring=1) and the reply took it, each serves its
// CPU's requests through a UringQueue (thread name fuse-uring-CPU), starting on that CPU and
// moving to the CPUs the thread calling start() may use while its callers keep several requests
// in flight (queue_affinity.hpp; so start() from a thread pinned to one CPU keeps them all on
// it, as the application asked), busy polling its ring for `busy_poll` after each burst of
// requests; the /dev/fuse workers keep
// serving what the kernel still sends there (FORGET, INTERRUPT). Otherwise the queue threads end
// at once and the /dev/fuse workers serve everything (said once on stderr). A queue thread is
// one thread per CPU by design, so a request that blocks (a waiting lock) would hold up the requests
// of its CPU: such requests (SETLKW) go to a helper thread instead (uring_queue.hpp).
//
// A Service ends when
//   - stop() is called (async-signal-safe: atomics, one write(2) to an eventfd that join()
//     sleeps on, one tgkill(2) per worker; errno preserved; every request then reads as
//     interrupted, so a handler waiting for a lock gives up), or
//   - the filesystem is unmounted from outside (the device answers ENODEV), or
//   - the kernel sent DESTROY,
// and join() then reports success; it reports an error only for a failure of the channel itself.
// drain_and_stop() is the graceful stop(): each /dev/fuse worker first answers what the kernel
// has already queued (and what those answers release: the kernel holds back background WRITEs
// beyond max_background until earlier ones are answered) until nothing is left or its time is
// up. After Session::sync() that is every WRITE of the data the kernel held dirty, which a
// plain stop() would leave unanswered (sync on FUSE does not wait for them). io_uring queues
// drain the same way: what the kernel handed their entries, and what it hands on as the
// replies re-arm them (uring_queue.hpp).
// The filesystem stays mounted after stop(): unmount it with Session::unmount().
//
// Lifetime: the Session and the filesystem must outlive the Service; ~Service stops and joins.
// start(), join() and the destructor are for the owning thread; stop() and notifier() may be used
// from anywhere.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <fuse_backend/api/filesystem.hpp>
#include <fuse_backend/api/server.hpp>
#include <fuse_backend/detail/unique_fd.hpp>
#include <fuse_backend/result.hpp>
#include <fuse_backend/transport/fusedev/channel.hpp>
#include <fuse_backend/transport/fusedev/drain_deadline.hpp>
#include <fuse_backend/transport/fusedev/session.hpp>
#include <fuse_backend/transport/fusedev/uring_queue.hpp>

namespace fuse_backend::transport::fusedev {

struct ServiceOptions {
  // Worker threads (at least 1). More than one needs FUSE_DEV_IOC_CLONE (Linux >= 4.2).
  unsigned threads = 1;
  // How long worker 0 keeps re-reading its (non-blocking, cloned) fd for the next request before
  // it sleeps, and each io_uring queue thread its ring; 0: they sleep at once (worker 0 in
  // read(2) like the others). See "Busy polling" above.
  std::chrono::microseconds busy_poll{50};
  // Splice streams of large WRITEs from the device to the filesystem's fd instead of copying
  // them through the request buffer, where a pipe can hold the largest request (see
  // channel.hpp, "Spliced writes"; otherwise they are copied).
  bool splice_writes = true;
  api::ServerOptions server;
  // The signal stop() sends to wake workers blocked in read(2). The Service installs a no-op
  // handler for it (once, process-wide); pick another if the application handles SIGURG.
  int wake_signal = SIGURG;
  // Serve through FUSE-over-io_uring when the kernel offers it (see above).
  bool io_uring = false;
  // Requests each io_uring queue holds at once (entries of max_write bytes each). A queue thread
  // leaves its CPU only when one reap brings two requests (queue_affinity.hpp): with depth 1 it
  // never does. At most depth - 1 blocking locks per queue wait at once (uring_queue.hpp): with
  // depth 1 none does (ENOLCK).
  unsigned io_uring_depth = 2;
};

// The kernel's FUSE queues are per possible CPU: how many there are (0 when unknown).
unsigned possible_cpus() noexcept;

namespace impl {

// The non-template part of Service: stop flag and wake-ups, workers' channels and threads, the
// io_uring queues, the outcome.
class ServiceCore {
 public:
  // Serves until `stopping` is set (Channel::receive then reports operation_canceled) or the
  // session ends.
  using Serve = void (*)(void* service, Channel& channel, const std::atomic<bool>& stopping);

  // The io_uring queue threads: how many (0: none), entries per queue, how long each polls.
  struct RingOptions {
    unsigned queues = 0;
    unsigned depth = 0;
    std::chrono::microseconds busy_poll{};
  };

  // `ring.queues` io_uring queue threads besides the `threads` /dev/fuse workers, which read as
  // `receive` says, except that only the first busy-polls.
  ServiceCore(int session_fd, unsigned threads, ReceiveOptions receive, RingOptions ring,
              int wake_signal) noexcept;
  ~ServiceCore();
  ServiceCore(const ServiceCore&) = delete;
  ServiceCore& operator=(const ServiceCore&) = delete;

  struct Hooks {
    void* service;
    std::size_t buffer_size;  // of each channel buffer and io_uring payload
    Serve serve;
    UringQueue::Handler serve_ring;
    // Called once the io_uring queues exist (true) or could not be made (false), before the
    // first /dev/fuse read.
    void (*ring_usable)(void* service, bool usable);
    // Called by every stop() once start() has begun (async-signal-safe): makes requests that
    // wait give up (Server::interrupt_all), so that their threads end.
    void (*interrupt_all)(void* service);
    api::BackingFiles* backing;
  };

  // Installs the wake signal's handler, creates the channels (cloning fds, all made blocking
  // except a busy-polling worker 0's own non-blocking clone),
  // starts the io_uring queue threads (each creates its queue, then waits for open_ring() and
  // hands each request to hooks.serve_ring) and then one thread per channel running
  // hooks.serve(service, channel, stopping). On failure nothing is left running. Each thread
  // keeps its own copy of `hooks`.
  Result<void> start(const Hooks& hooks);
  // After INIT: lets the io_uring queue threads serve (`use`) or end (the kernel did not take
  // it). Only the first call counts.
  void open_ring(bool use) noexcept;
  bool ring_pending() const noexcept { return ring_state_.load(std::memory_order_acquire) == ring_waiting; }
  // Requests served through io_uring so far, over all queues.
  std::uint64_t ring_requests() const noexcept;
  // Requests the /dev/fuse workers that have ended (all, after join()) took with splice.
  std::uint64_t spliced_requests() noexcept;
  // Async-signal-safe.
  void stop() noexcept;
  // stop() after which the /dev/fuse workers and io_uring queues drain for at most `limit`.
  // Async-signal-safe.
  void drain_and_stop(std::chrono::milliseconds limit) noexcept;
  // When draining workers give up; nullopt after a plain stop().
  std::optional<std::chrono::steady_clock::time_point> drain_deadline() const noexcept {
    return drain_deadline_.get();
  }
  // Waits for every worker; after stop() keeps waking those that have not ended.
  Result<void> join() noexcept;
  // Records the first error that ends a worker, and stops the others.
  void record_error(std::errc error) noexcept;

  int session_fd() const noexcept { return session_fd_; }

 private:
  // A /dev/fuse worker (with a channel; thread name fuse-dev-`number`, from 0, the one that may
  // busy-poll) or an io_uring queue thread (`number`: its queue id, i.e. its CPU).
  struct Worker {
    Worker(Channel c, unsigned n) noexcept : channel(std::move(c)), number(n) {}
    explicit Worker(unsigned queue) noexcept : number(queue) {}
    std::optional<Channel> channel;
    unsigned number = 0;
    std::atomic<std::uint64_t> served{0};  // io_uring requests
    std::thread thread;
    // The kernel thread id while the worker runs (0 before and after): what stop() signals.
    std::atomic<pid_t> tid{0};
    bool ended = false;  // under mutex_
  };

  void run(Worker& worker, const Hooks& hooks) noexcept;
  void run_ring(Worker& worker, const Hooks& hooks) noexcept;
  // Sleeps until open_ring() or stop(); true when the ring is to be served.
  bool wait_for_ring() noexcept;
  // Signals each worker still running. Async-signal-safe.
  void wake_workers() const noexcept;

  static constexpr int ring_waiting = 0, ring_open = 1, ring_unused = 2;

  int session_fd_;
  unsigned thread_count_;
  ReceiveOptions receive_;
  // The channels answering a request right now (ReceiveOptions::answering), when one polls.
  std::atomic<unsigned> answering_{0};
  RingOptions ring_;
  int wake_signal_;
  std::atomic<int> ring_state_{ring_waiting};
  std::atomic<bool> ring_refused_{false};  // said so on stderr
  unsigned rings_created_ = 0;             // queue threads done creating theirs (under mutex_)
  std::optional<std::errc> ring_error_;    // the first that failed (under mutex_)
  std::condition_variable created_;
  // Readable once open_ring() decided: the queue threads sleep on it.
  detail::UniqueFd ring_fd_;
  std::atomic<bool> stopping_{false};
  DrainDeadline drain_deadline_;
  // Hooks::interrupt_all and its argument, for stop() (set once by start()).
  std::atomic<void (*)(void*)> interrupt_all_{nullptr};
  void* interrupt_context_ = nullptr;
  // Readable once stop() was called: join() sleeps on it instead of polling the flag.
  detail::UniqueFd stop_fd_;
  std::errc stop_fd_error_{};
  std::vector<std::unique_ptr<Worker>> workers_;
  // How many entries of workers_ stop() may look at (published after workers_ is complete).
  std::atomic<std::size_t> published_{0};
  std::mutex mutex_;
  std::condition_variable ended_;
  std::optional<std::errc> error_;
};

}  // namespace impl

template <api::Filesystem Fs>
class Service {
 public:
  using Server = api::Server<Transport, Fs>;

  Service(Session& session, Fs& fs, ServiceOptions options = {}) noexcept
      : server_(fs, server_options(options)),
        core_(session.fd(), options.threads, receive_options(options), ring_options(options),
              options.wake_signal),
        notifier_(session.fd()),
        backing_(session.fd()) {}
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;
  ~Service() {
    stop();
    (void)join();
  }

  // Starts the workers; returns once they run (or with the error that prevented it).
  Result<void> start() {
    return core_.start({this, server_.buffer_size(), &Service::serve, &Service::serve_ring_request,
                        &Service::ring_usable, &Service::interrupt_all, &backing_});
  }
  // Asks every worker to return after its current request. Async-signal-safe.
  void stop() noexcept { core_.stop(); }
  // Asks every /dev/fuse worker to answer the requests already queued first, for at most
  // `limit` (see above). Async-signal-safe.
  void drain_and_stop(std::chrono::milliseconds limit) noexcept { core_.drain_and_stop(limit); }
  // Waits for every worker; success after stop(), an unmount or DESTROY.
  Result<void> join() noexcept { return core_.join(); }
  // start() + join().
  Result<void> run() {
    if (auto started = start(); !started) return started;
    return join();
  }

  // For api/notify.hpp: notifications go out on the session fd.
  api::Notifier& notifier() noexcept { return notifier_; }
  Server& server() noexcept { return server_; }
  // Requests served through FUSE-over-io_uring so far (0 without it).
  std::uint64_t io_uring_requests() const noexcept { return core_.ring_requests(); }
  // Requests taken with splice (each one that followed a large WRITE on its worker), counted
  // once the workers ended (after join()).
  std::uint64_t spliced_requests() noexcept { return core_.spliced_requests(); }

 private:
  static api::ServerOptions server_options(const ServiceOptions& options) noexcept {
    api::ServerOptions server = options.server;
    if (options.io_uring) server.transport_init_flags |= abi::init_flags::over_io_uring;
    return server;
  }

  // With io_uring the /dev/fuse workers only see FORGET and INTERRUPT: no polling, no splicing
  // (also when the ring turns out unusable and they serve everything).
  static ReceiveOptions receive_options(const ServiceOptions& options) noexcept {
    if (options.io_uring) return {};
    return {options.busy_poll, options.splice_writes};
  }
  static impl::ServiceCore::RingOptions ring_options(const ServiceOptions& options) noexcept {
    if (!options.io_uring) return {};
    return {possible_cpus(), options.io_uring_depth, options.busy_poll};
  }

  static void serve(void* self, Channel& channel, const std::atomic<bool>& stopping) {
    static_cast<Service*>(self)->serve_loop(channel, stopping);
  }

  static void interrupt_all(void* self) { static_cast<Service*>(self)->server_.interrupt_all(); }

  static void ring_usable(void* self, bool usable) {
    if (!usable) static_cast<Service*>(self)->server_.set_transport_init_flags(0);
  }

  static void serve_ring_request(void* self, Reader& reader, Writer& writer) {
    auto& service = *static_cast<Service*>(self);
    (void)service.server_.handle(reader, writer);  // a reply that cannot be sent ends the ring
    if (service.server_.destroyed()) service.stop();
  }

  void serve_loop(Channel& channel, const std::atomic<bool>& stopping) noexcept {
    for (;;) {
      auto reader = channel.receive(&backing_, &stopping);
      if (!reader) {
        if (reader.error() == std::errc::operation_canceled) return drain(channel);  // stop()
        // Unmounted, or aborted (ECONNABORTED since abort_error is negotiated): a clean end.
        if (reader.error() == std::errc::no_such_device ||
            reader.error() == std::errc::connection_aborted)
          return stop();
        return core_.record_error(reader.error());
      }
      if (!answer(channel, *reader)) return stop();
    }
  }

  // After drain_and_stop(): answers what is queued until nothing is (EAGAIN), the device is
  // gone, or the deadline passes.
  void drain(Channel& channel) noexcept {
    const auto deadline = core_.drain_deadline();
    if (!deadline || !channel.stop_waiting()) return;
    while (std::chrono::steady_clock::now() < *deadline) {
      auto reader = channel.receive(&backing_);
      if (!reader || !answer(channel, *reader)) return;
    }
  }

  // Handles one request; false when serving must end (unmounted, or DESTROY).
  bool answer(Channel& channel, Reader& reader) noexcept {
    Writer writer = channel.writer();
    auto handled = server_.handle(reader, writer);
    if (core_.ring_pending() && server_.initialized()) {
      core_.open_ring((server_.negotiated_flags() & abi::init_flags::over_io_uring) != 0);
    }
    // A reply that cannot be sent: ENODEV = unmounted meanwhile; ENOENT = the kernel dropped
    // the (interrupted) request; anything else concerns that one request only.
    if (!handled && handled.error() == std::errc::no_such_device) return false;
    return !server_.destroyed();
  }

  Server server_;
  impl::ServiceCore core_;
  DeviceNotifier notifier_;
  DeviceBackingFiles backing_;
};

}  // namespace fuse_backend::transport::fusedev
