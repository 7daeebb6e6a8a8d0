// VhostUserBackend: the back-end side of the vhost-user protocol (QEMU's docs/interop/
// vhost-user.rst) serving any virtio device that implements VirtioDevice (device.hpp), plus
// VhostUserListener, the unix socket a front-end (QEMU) connects to.
//
// Layer: transport/virtio. The back-end owns the protocol and the threads: it negotiates
// features, maps the guest memory the front-end passes as fds (into a SharedGuestMemory),
// collects each ring's size/addresses/base/eventfds, and runs one worker thread per started and
// enabled ring that waits on the ring's kick eventfd and asks the device to process the ring,
// signalling the call eventfd when the device says the driver must be notified. The device owns
// what happens on a ring (virtqueue, descriptor chains, FUSE); it never sees the socket.
//
// Contract:
// - serve() handles one connection at a time, on the calling thread, until the front-end closes
//   it (success) or sends anything malformed or out of order (an error, logged with the request
//   name): bad payload size, unknown or unoffered request, queue index out of range, missing
//   fds, ring addresses outside guest memory, ... In every case serve() returns only after
//   stopping all ring workers, closing every fd and unmapping the memory, so the next serve()
//   starts from scratch (reconnect-safe). It never throws and never aborts on peer input.
// - A message with NEED_REPLY gets a u64 reply (0 or an errno) unless the request has its own
//   reply (REPLY_ACK); a failing message is acknowledged with its errno before the disconnect.
// - Ring workers call VirtioDevice::process_queue concurrently for different queues, never
//   for the same queue at once. Control messages that change a ring (SET_VRING_CALL, ADDR,
//   memory tables, GET_VRING_BASE) first stop that ring's worker and then the device queue
//   (memory changes stop all of them); VirtioDevice::stop_queue waits for chains the device
//   is still serving on its own threads, so the device never runs a ring whose configuration
//   is changing. Such completions arrive through QueueSignal (signalling the call fd, and the
//   log fd while logging) on the device's threads.
// - Queues: QEMU may set up more queues than GET_QUEUE_NUM announced (vhost-user-fs sets up
//   1 + num-request-queues whatever the answer); every index < device.queue_count() is accepted.
// - Offered: the device's features + VHOST_USER_F_PROTOCOL_FEATURES + VHOST_F_LOG_ALL; protocol
//   features MQ, LOG_SHMFD, REPLY_ACK, SLAVE_REQ (the fd is kept, nothing is sent on it yet) and
//   CONFIGURE_MEM_SLOTS. Migration: SET_LOG_BASE maps the dirty log, which guest memory carries
//   while LOG_ALL is negotiated, so every device write (replies, used ring) marks its pages;
//   SET_LOG_FD's eventfd is kicked after each ring pass that logged. Polling rings (no kick fd),
//   CONFIG, INFLIGHT, STATUS and postcopy are not offered.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <fuse_backend/detail/unique_fd.hpp>
#include <fuse_backend/result.hpp>
#include <fuse_backend/transport/virtio/device.hpp>

namespace fuse_backend::transport::virtio {

struct VhostUserBackendOptions {
  // Log every message received (name, flags, size, fds) through `log`.
  bool trace = false;
  // Receives one line per event (errors, disconnects, trace); default: stderr. Called from the
  // serving thread and from ring worker threads, so it must be thread safe.
  std::function<void(std::string_view)> log;
};

class VhostUserBackend {
 public:
  explicit VhostUserBackend(VirtioDevice& device, VhostUserBackendOptions options = {});
  ~VhostUserBackend();
  VhostUserBackend(const VhostUserBackend&) = delete;
  VhostUserBackend& operator=(const VhostUserBackend&) = delete;

  // Serves the front-end on `connection` (a connected unix stream socket) until it disconnects:
  // success when it closed the connection between messages, an error (errno of the failure,
  // EPROTO for protocol violations) after a malformed or out-of-order message. All state is
  // reset on return either way.
  Result<void> serve(detail::UniqueFd connection) noexcept;

  // Statistics of queue `index` since the back-end was created (all connections); zeros for an
  // index out of range. Safe to read while serving.
  struct QueueStats {
    std::uint64_t chains = 0;  // descriptor chains completed
    std::uint64_t starts = 0;  // times the ring was started (worker thread launched)
  };
  QueueStats queue_stats(std::size_t index) const noexcept;

 private:
  struct Connection;
  struct Counters {
    std::atomic<std::uint64_t> chains{0};
    std::atomic<std::uint64_t> starts{0};
  };
  VirtioDevice& device_;
  VhostUserBackendOptions options_;
  std::unique_ptr<Counters[]> counters_;
};

// A listening unix stream socket at `path` for one front-end at a time.
class VhostUserListener {
 public:
  // Binds and listens at `path`. A stale socket file left by an earlier run is replaced; any
  // other existing file is an error (EEXIST), as is a path longer than sun_path.
  static Result<VhostUserListener> bind(std::string path) noexcept;
  VhostUserListener(VhostUserListener&&) noexcept = default;
  VhostUserListener& operator=(VhostUserListener&&) noexcept = default;
  ~VhostUserListener();  // removes the socket file

  // Waits for the next front-end connection.
  Result<detail::UniqueFd> accept() noexcept;
  const std::string& path() const noexcept { return path_; }

 private:
  VhostUserListener(detail::UniqueFd fd, std::string path) noexcept
      : fd_(std::move(fd)), path_(std::move(path)) {}
  detail::UniqueFd fd_;
  std::string path_;
};

}  // namespace fuse_backend::transport::virtio
