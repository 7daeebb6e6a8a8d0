// VhostUserFsDevice: a virtio-fs device (hiprio queue + N request queues, each chain one FUSE
// request answered by a Server<virtio::Transport, Fs>) in the shape VhostUserBackend serves.
//
// Layer: transport/virtio. `ServerT` is an api::Server instantiated for virtio::Transport; the
// device never names the filesystem. Queue 0 is the hiprio queue (FORGET, BATCH_FORGET,
// INTERRUPT), queues 1..N carry every other request; the Server answers whatever arrives on any
// queue, so a driver that misplaces a request is still served. A chain whose request takes no
// reply, or that is malformed, or whose reply could not be written (fewer than 16 writable
// bytes), still goes back to the used ring with 0 bytes: the driver frees its buffers only then.
//
// Contract: the VhostUserDevice one: process_queue() runs concurrently for different queues and
// never twice at once for the same queue; each queue owns its Virtqueue, chain storage and
// bounce buffer, so steady-state processing allocates nothing. The Server is shared (it is
// thread safe) and must outlive the device.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <fuse_backend/result.hpp>
#include <fuse_backend/transport/virtio/chain_io.hpp>
#include <fuse_backend/transport/virtio/descriptor_chain.hpp>
#include <fuse_backend/transport/virtio/vhost_user_backend.hpp>
#include <fuse_backend/transport/virtio/virtqueue.hpp>

namespace fuse_backend::transport::virtio {

template <class ServerT>
class VhostUserFsDevice final : public VhostUserDevice {
 public:
  // Serves 1 hiprio + `request_queues` request queues through `server`.
  VhostUserFsDevice(ServerT& server, std::size_t request_queues)
      : server_(server), queues_(1 + request_queues) {
    for (Queue& queue : queues_) queue.bounce.resize(request_bounce_size);
  }

  std::size_t queue_count() const noexcept override { return queues_.size(); }

  std::uint64_t device_features() const noexcept override {
    return features::version_1 | features::indirect_desc | features::event_idx;
  }

  Result<void> start_queue(std::size_t index, const VringConfig& config,
                           std::shared_ptr<const GuestMemory> memory) noexcept override {
    Virtqueue& queue = queues_[index].queue;
    if (auto sized = queue.set_size(config.size); !sized) return sized;
    queue.set_addresses({config.descriptor_table, config.available_ring, config.used_ring,
                         AddressKind::guest_physical, std::nullopt});
    queue.set_features((config.event_idx ? features::event_idx : 0) |
                       (config.indirect ? features::indirect_desc : 0));
    queue.set_base(config.next_available);
    return queue.start(std::move(memory));
  }

  QueueRun process_queue(std::size_t index,
                         std::shared_ptr<const GuestMemory> memory) noexcept override {
    Queue& q = queues_[index];
    QueueRun run;
    if (!q.queue.set_memory(std::move(memory))) return {0, false, true};
    for (;;) {
      auto head = q.queue.pop();
      if (!head) {
        run.failed = true;
        break;
      }
      if (!*head) break;
      bool returned = false;
      if (q.chain.walk(q.queue.descriptor_table(), **head) == ChainError::none) {
        ChainReader reader(q.chain, q.bounce);
        ChainWriter writer(q.queue, q.chain);
        (void)server_.handle(reader, writer);
        returned = writer.committed();
      }
      if (!returned && !q.queue.push_used(**head, 0)) {
        run.failed = true;
        break;
      }
      ++run.chains;
    }
    run.notify = q.queue.needs_notification();
    return run;
  }

  std::uint16_t stop_queue(std::size_t index) noexcept override {
    Virtqueue& queue = queues_[index].queue;
    queue.stop();
    return queue.base();
  }

 private:
  struct Queue {
    Virtqueue queue;
    DescriptorChain chain;
    std::vector<std::byte> bounce;
  };

  ServerT& server_;
  std::vector<Queue> queues_;
};

}  // namespace fuse_backend::transport::virtio
