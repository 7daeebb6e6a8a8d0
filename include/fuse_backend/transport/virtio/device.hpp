// VirtioDevice: the interface between a virtio device's logic (what happens on its rings, e.g.
// FsDevice) and whatever drives it (owns guest memory, queue notifications and threads): the
// vhost-user back-end (vhost_user_backend.hpp), or a VMM with its own event loop. Also the plain
// data they exchange: VringConfig (where a ring lives, as the driver set it up) and QueueRun
// (what one processing pass did).
//
// Layer: transport/virtio. Transport-neutral on purpose: a VMM embedding a device includes this,
// not the vhost-user protocol.
//
// Contract (the driver of the device guarantees it, implementations rely on it): process_queue
// runs concurrently for different queues but never twice at once for the same queue, and never
// between stop_queue() and the next start_queue() of that queue; start/stop of a queue are not
// concurrent with its processing. Implementations synchronise nothing between queues beyond what
// their own logic needs. Every call is noexcept.
// A device may complete chains on its own threads after process_queue returned (FsDevice with a
// thread pool): it then reports them through the QueueSignal given to start_queue, from those
// threads, until stop_queue() returns; stop_queue() waits for such work, so the returned base
// never covers a chain still being processed. The driver keeps the signal (and what it uses,
// e.g. the call eventfd) valid and unchanged from start_queue until stop_queue returns.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include <fuse_backend/result.hpp>
#include <fuse_backend/transport/virtio/guest_memory.hpp>

namespace fuse_backend::transport::virtio {

// Where a ring lives, in guest physical addresses, as the driver set it up.
struct VringConfig {
  std::uint16_t size = 0;           // descriptors (a power of two, <= 32768)
  std::uint64_t descriptor_table = 0;
  std::uint64_t available_ring = 0;
  std::uint64_t used_ring = 0;
  std::uint16_t next_available = 0;  // SET_VRING_BASE: first avail index to serve
  bool event_idx = false;            // VIRTIO_RING_F_EVENT_IDX was negotiated
  bool indirect = false;             // VIRTIO_RING_F_INDIRECT_DESC was negotiated
};

// What one processing pass over a ring did.
struct QueueRun {
  std::size_t chains = 0;  // descriptor chains completed in this pass (put on the used ring);
                           // chains handed to device threads are reported via QueueSignal
  bool notify = false;     // the driver must be notified (signal the call eventfd)
  bool failed = false;     // the ring is broken (hostile or corrupt); stop serving it
  bool more = false;       // the pass ended after a ring's worth of chains: call again soon,
                           // without waiting for a kick (after honouring any stop request)
};

// How a device reports chains it completed outside process_queue (on its own threads).
class QueueSignal {
 public:
  // `chains` chains of queue `index` went to the used ring; `notify`: the driver must be
  // notified (signal its call eventfd / interrupt). Called from any of the device's threads,
  // concurrently (also for the same queue); must not block for long.
  virtual void completed(std::size_t index, std::size_t chains, bool notify) noexcept = 0;

 protected:
  ~QueueSignal() = default;
};

// A virtio device's queue logic, driven by the vhost-user back-end or a VMM.
class VirtioDevice {
 public:
  // Total virtqueues (virtio-fs: 1 hiprio + N request queues).
  virtual std::size_t queue_count() const noexcept = 0;
  // Virtio feature bits the device offers (VIRTIO_F_VERSION_1, INDIRECT_DESC, EVENT_IDX, ...).
  // The vhost-user back-end adds VHOST_USER_F_PROTOCOL_FEATURES itself.
  virtual std::uint64_t device_features() const noexcept = 0;
  // Prepares queue `index` to be served from `config`; EFAULT/EINVAL if the rings are not
  // inside `memory` or misaligned (EAGAIN if the device's threads cannot be started). May be
  // called again (new memory, new addresses) after stop_queue(). `signal` receives the
  // completions the device makes on its own threads, until stop_queue() returns.
  virtual Result<void> start_queue(std::size_t index, const VringConfig& config,
                                   std::shared_ptr<const GuestMemory> memory,
                                   QueueSignal& signal) noexcept = 0;
  // Serves what is available on queue `index` (started), reading guest memory through `memory`,
  // the current snapshot (the same as at start_queue unless memory changed since). A pass ends
  // after at most a ring's worth of chains (QueueRun::more), so that a driver that keeps the
  // ring full cannot keep the caller from ever returning (to stop the queue, say).
  virtual QueueRun process_queue(std::size_t index,
                                 std::shared_ptr<const GuestMemory> memory) noexcept = 0;
  // Stops serving queue `index` and returns the next avail index it would have served
  // (vhost-user GET_VRING_BASE), after every chain it popped is back on the used ring. Only
  // called for a started queue.
  virtual std::uint16_t stop_queue(std::size_t index) noexcept = 0;

 protected:
  ~VirtioDevice() = default;
};

}  // namespace fuse_backend::transport::virtio
