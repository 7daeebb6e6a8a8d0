// Service<Fs>: worker threads serving one mounted Session with a Server<fusedev::Transport, Fs>.
//
// Layer: transport::fusedev. Worker 0 reads the Session's own fd; every further worker gets its
// own fd cloned from it (FUSE_DEV_IOC_CLONE), so the kernel spreads requests over the workers
// and each reply goes back on the fd its request came from. Each worker owns its Channel (request
// and reply buffers of Server::buffer_size() bytes, allocated once in start()), so serving
// allocates nothing. The device fds are non-blocking and polled with epoll together with one
// eventfd that stop() makes readable: any worker blocked waiting wakes up and returns.
//
// A Service ends when
//   - stop() is called (async-signal-safe: one write(2) to the eventfd), or
//   - the filesystem is unmounted from outside (the device answers ENODEV), or
//   - the kernel sent DESTROY,
// and join() then reports success; it reports an error only for a failure of the channel itself.
// The filesystem stays mounted after stop(): unmount it with Session::unmount().
//
// Lifetime: the Session and the filesystem must outlive the Service; ~Service stops and joins.
// start(), join() and the destructor are for the owning thread; stop() and notifier() may be used
// from anywhere.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <cerrno>
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
#include <fuse_backend/transport/fusedev/session.hpp>

namespace fuse_backend::transport::fusedev {

struct ServiceOptions {
  // Worker threads (at least 1). More than one needs FUSE_DEV_IOC_CLONE (Linux >= 4.2).
  unsigned threads = 1;
  api::ServerOptions server;
};

namespace impl {

// Waits until a device fd is readable (or broken) or the stop eventfd is set.
class Poller {
 public:
  enum class Event { device, stop };
  // Makes `device_fd` non-blocking and watches it together with `stop_fd`.
  static Result<Poller> create(int device_fd, int stop_fd) noexcept;
  Result<Event> wait() noexcept;

 private:
  explicit Poller(detail::UniqueFd epoll, int stop_fd) noexcept
      : epoll_(std::move(epoll)), stop_fd_(stop_fd) {}
  detail::UniqueFd epoll_;
  int stop_fd_;
};

// The non-template part of Service: stop event, workers' channels and threads, the outcome.
class ServiceCore {
 public:
  using Serve = void (*)(void* service, Channel& channel, Poller& poller);

  ServiceCore(int session_fd, unsigned threads) noexcept;
  ~ServiceCore();
  ServiceCore(const ServiceCore&) = delete;
  ServiceCore& operator=(const ServiceCore&) = delete;

  // Creates the channels (cloning fds) and starts one thread per channel running
  // serve(service, channel, poller). On failure nothing is left running.
  Result<void> start(std::size_t buffer_size, Serve serve, void* service);
  void stop() noexcept;
  Result<void> join() noexcept;
  // Records the first error that ends a worker, and stops the others.
  void record_error(std::errc error) noexcept;

  int session_fd() const noexcept { return session_fd_; }

 private:
  struct Worker {
    Channel channel;
    Poller poller;
    std::thread thread;
  };

  int session_fd_;
  unsigned thread_count_;
  detail::UniqueFd stop_fd_;
  std::errc stop_fd_error_{};
  std::vector<std::unique_ptr<Worker>> workers_;
  std::mutex mutex_;
  std::optional<std::errc> error_;
};

}  // namespace impl

template <api::Filesystem Fs>
class Service {
 public:
  using Server = api::Server<Transport, Fs>;

  Service(Session& session, Fs& fs, ServiceOptions options = {}) noexcept
      : server_(fs, options.server),
        core_(session.fd(), options.threads),
        notifier_(session.fd()),
        backing_(session.fd()) {}
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;
  ~Service() {
    stop();
    (void)join();
  }

  // Starts the workers; returns once they run (or with the error that prevented it).
  Result<void> start() { return core_.start(server_.buffer_size(), &Service::serve, this); }
  // Asks every worker to return after its current request. Async-signal-safe.
  void stop() noexcept { core_.stop(); }
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

 private:
  static void serve(void* self, Channel& channel, impl::Poller& poller) {
    static_cast<Service*>(self)->serve_loop(channel, poller);
  }

  void serve_loop(Channel& channel, impl::Poller& poller) noexcept {
    for (;;) {
      auto event = poller.wait();
      if (!event) return core_.record_error(event.error());
      if (*event == impl::Poller::Event::stop) return;
      auto reader = channel.receive(&backing_);
      if (!reader) {
        if (reader.error() == std::errc::resource_unavailable_try_again) continue;  // another worker took it
        if (reader.error() == std::errc::no_such_device) return stop();  // unmounted: a clean end
        return core_.record_error(reader.error());
      }
      Writer writer = channel.writer();
      auto handled = server_.handle(*reader, writer);
      // A reply that cannot be sent: ENODEV = unmounted meanwhile; ENOENT = the kernel dropped
      // the (interrupted) request; anything else concerns that one request only.
      if (!handled && handled.error() == std::errc::no_such_device) return stop();
      if (server_.destroyed()) return stop();
    }
  }

  Server server_;
  impl::ServiceCore core_;
  DeviceNotifier notifier_;
  DeviceBackingFiles backing_;
};

}  // namespace fuse_backend::transport::fusedev
