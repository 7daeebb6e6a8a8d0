// FsDevice<Fs>: the virtio-fs device logic: a hiprio queue (index 0: FORGET, BATCH_FORGET,
// INTERRUPT) and N request queues, every chain served by Server<virtio::Transport, Fs>.
//
// Layer: transport/virtio. The device owns the virtqueues and their per-queue scratch (chain
// segment lists, request bounce buffer), nothing else: whoever owns the notifications drives it
// through the VirtioDevice interface (device.hpp), either the vhost-user back-end or a VMM with its own
// event loop (start_queue with the ring addresses the guest programmed, process_queue when the
// queue is kicked, signal the guest when the run says `notify`, stop_queue to read the base).
//
// Per chain: walk it (descriptor_chain.hpp), hand the reader/writer pair to Server::handle.
// Every popped chain goes back to the used ring exactly once, whatever happens:
//   - a reply: the writer's commit pushes it with 16 + payload bytes;
//   - no reply (FORGET/BATCH_FORGET/INTERRUPT, Disposition::no_reply), a request too malformed
//     to answer (Disposition::dropped, fewer readable bytes than a FUSE header), a chain the
//     walk rejects, or a reply area too small for the reply: pushed with 0 bytes, because the
//     guest waits for its buffers (Linux frees a FORGET's only when it comes back).
// Rejected and unanswerable chains are counted per queue and described through the optional
// log; they never stop the queue. Only a broken ring (avail->idx jumping ahead, a head index out
// of range: nothing can be returned safely) makes process_queue report `failed`.
//
// DAX: SETUPMAPPING / REMOVEMAPPING reach the filesystem with the api::DaxMapper given in the
// Server's ServerOptions::dax_mapper (the VMM's cache window); without one they are ENOSYS.
//
// Thread pool (FsDeviceOptions::thread_pool_size N > 0, virtiofsd --thread-pool-size): each
// request queue gets N threads (a RequestPool, started at its first start_queue); process_queue
// only pops chains (in ring order, with the memory snapshot of that pass) and submits them, and
// each pool thread walks its chain, runs the request, pushes the used entry (Virtqueue's lock:
// completions go out in any order, which split virtqueues allow) and reports it through the
// start_queue's QueueSignal, with `notify` when needs_notification() says the driver wants it.
// stop_queue drains the pool before reading the base, so the base never covers a chain still in
// flight. The hiprio queue is always served inline (FORGETs are cheap and ordered), as are all
// queues with N = 0 (the default: no hand-off cost; a request blocks its queue).
//
// Contract: process_queue runs concurrently for different queues (the Server and the filesystem
// are shared and thread safe; with a pool, also concurrently for requests of one queue) but never
// twice at once for the same queue, nor between stop_queue and the next start_queue of it;
// start/stop of a queue are not concurrent with its processing (the vhost-user back-end
// guarantees all of this). process_queue never throws and allocates nothing per request;
// stats() may be read from any thread.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/api/filesystem.hpp>
#include <fuse_backend/api/server.hpp>
#include <fuse_backend/result.hpp>
#include <fuse_backend/transport/virtio/chain_io.hpp>
#include <fuse_backend/transport/virtio/descriptor_chain.hpp>
#include <fuse_backend/transport/virtio/guest_memory.hpp>
#include <fuse_backend/transport/virtio/split_ring.hpp>
#include <fuse_backend/transport/virtio/device.hpp>
#include <fuse_backend/transport/virtio/request_pool.hpp>
#include <fuse_backend/transport/virtio/virtqueue.hpp>

namespace fuse_backend::transport::virtio {

inline constexpr std::uint32_t fs_device_id = 26;  // VIRTIO_ID_FS
inline constexpr std::size_t hiprio_queue = 0;

// struct virtio_fs_config: what the guest reads from the device's configuration space.
struct FsConfig {
  static constexpr std::size_t tag_size = 36;
  static constexpr std::size_t wire_size = tag_size + 4;

  std::array<char, tag_size> tag{};     // the mount tag, NUL-padded (no NUL needed at 36 bytes)
  std::uint32_t num_request_queues = 1;

  // EINVAL for an empty tag, one longer than 36 bytes or containing NUL, or 0 queues.
  static Result<FsConfig> make(std::string_view tag, std::uint32_t num_request_queues) noexcept {
    if (tag.empty() || tag.size() > tag_size || tag.find('\0') != std::string_view::npos ||
        num_request_queues == 0 || num_request_queues > 0xffff)
      return fail(std::errc::invalid_argument);
    FsConfig config;
    std::memcpy(config.tag.data(), tag.data(), tag.size());
    config.num_request_queues = num_request_queues;
    return config;
  }
  // The configuration space bytes (little-endian, as virtio 1.x requires).
  std::array<std::byte, wire_size> bytes() const noexcept {
    std::array<std::byte, wire_size> out{};
    std::memcpy(out.data(), tag.data(), tag_size);
    std::memcpy(out.data() + tag_size, &num_request_queues, sizeof(num_request_queues));
    return out;
  }
};

struct FsDeviceOptions {
  // One line per rejected chain or unsendable reply (queue, head, reason); none: only counted.
  std::function<void(std::string_view)> log;
  // Threads per request queue serving its requests concurrently; 0: the queue's own thread
  // (the one calling process_queue) serves them one at a time.
  std::size_t thread_pool_size = 0;
};

template <api::Filesystem Fs>
class FsDevice final : public VirtioDevice {
 public:
  using Server = api::Server<Transport, Fs>;

  struct QueueStats {
    std::uint64_t chains = 0;     // chains returned to the used ring
    std::uint64_t malformed = 0;  // rejected by the walk, or unanswerable (no header, no room)
    std::uint64_t send_errors = 0;  // replies the writer could not commit
  };

  FsDevice(Server& server, FsConfig config, FsDeviceOptions options = {})
      : server_(server),
        config_(config),
        options_(std::move(options)),
        queue_count_(1 + std::size_t{config.num_request_queues}),
        queues_(std::make_unique<Queue[]>(queue_count_)) {
    for (std::size_t i = 0; i < queue_count_; ++i) {
      queues_[i].device = this;
      queues_[i].index = i;
    }
  }
  // Pool threads stop (RequestPool's destructor) before the queues they serve go away: queues_
  // is the last member, destroyed first. Every queue must be stopped by then.

  const FsConfig& config() const noexcept { return config_; }

  std::size_t queue_count() const noexcept override { return queue_count_; }
  std::uint64_t device_features() const noexcept override {
    return features::version_1 | features::indirect_desc | features::event_idx;
  }

  Result<void> start_queue(std::size_t index, const VringConfig& ring,
                           std::shared_ptr<const GuestMemory> memory,
                           QueueSignal& signal) noexcept override {
    if (index >= queue_count_) return fail(std::errc::invalid_argument);
    Queue& q = queues_[index];
    Virtqueue& queue = q.queue;
    if (auto sized = queue.set_size(ring.size); !sized) return sized;
    queue.set_addresses({ring.descriptor_table, ring.available_ring, ring.used_ring,
                         AddressKind::guest_physical, std::nullopt});
    queue.set_features(features::version_1 | (ring.event_idx ? features::event_idx : 0) |
                       (ring.indirect ? features::indirect_desc : 0));
    queue.set_base(ring.next_available);
    if (pooled(index)) {
      if (auto pool = q.pool.start(options_.thread_pool_size, ring.size, q); !pool) return pool;
    }
    q.signal = &signal;
    return queue.start(std::move(memory));
  }

  // Serves every chain available on queue `index`.
  QueueRun process_queue(std::size_t index, std::shared_ptr<const GuestMemory> memory) noexcept override {
    QueueRun run;
    if (index >= queue_count_) {
      run.failed = true;
      return run;
    }
    Queue& q = queues_[index];
    if (!q.queue.started()) return run;
    // Copied, not moved: each chain handed to the pool holds the snapshot too, since a newer one
    // may replace the queue's before a pool thread walks it.
    if (!q.queue.set_memory(memory)) {
      report(index, 0, "the rings are no longer inside guest memory");
      run.failed = true;
      return run;
    }
    for (std::uint32_t popped = 0;; ++popped) {
      if (popped == q.queue.size()) {
        run.more = true;
        break;
      }
      auto head = q.queue.pop();
      if (!head) {
        report(index, 0, "the driver made more buffers available than the queue holds");
        run.failed = true;
        break;
      }
      if (!*head) break;
      if (**head >= q.queue.size()) {
        // Nothing can be returned for a head that names no descriptor: the ring is broken.
        report(index, **head, describe(ChainError::head_out_of_range));
        run.failed = true;
        break;
      }
      if (pooled(index)) {
        q.pool.submit({**head, q.queue.descriptor_table(), memory});
        continue;
      }
      if (!serve_chain(index, q, q.scratch, **head, q.queue.descriptor_table())) {
        run.failed = true;
        break;
      }
      ++run.chains;
    }
    run.notify = q.queue.needs_notification();
    return run;
  }

  std::uint16_t stop_queue(std::size_t index) noexcept override {
    if (index >= queue_count_) return 0;
    Queue& q = queues_[index];
    q.pool.drain();  // every popped chain is back on the used ring before the base is read
    q.queue.stop();
    return q.queue.base();
  }

  QueueStats stats(std::size_t index) const noexcept {
    if (index >= queue_count_) return {};
    const Queue& q = queues_[index];
    return {q.chains.load(std::memory_order_relaxed), q.malformed.load(std::memory_order_relaxed),
            q.send_errors.load(std::memory_order_relaxed)};
  }

 private:
  struct Queue final : RequestPool::Handler {
    FsDevice* device = nullptr;
    std::size_t index = 0;
    Virtqueue queue;
    ChainScratch scratch;  // inline serving (no pool, or the hiprio queue)
    QueueSignal* signal = nullptr;
    std::atomic<std::uint64_t> chains{0};
    std::atomic<std::uint64_t> malformed{0};
    std::atomic<std::uint64_t> send_errors{0};
    RequestPool pool;  // last: its threads stop before the rest of the queue goes away

    // A pool thread: serve, then tell the driver. A push can only fail once the queue stopped,
    // which stop_queue's drain rules out, so there is nothing else to report.
    void serve(ChainScratch& thread_scratch, const PoppedChain& popped) noexcept override {
      const bool pushed = device->serve_chain(index, *this, thread_scratch, popped.head, popped.table);
      const bool notify = queue.needs_notification();
      if (pushed || notify) signal->completed(index, pushed ? 1 : 0, notify);
    }
  };

  bool pooled(std::size_t index) const noexcept {
    return options_.thread_pool_size > 0 && index != hiprio_queue;
  }

  // Serves one popped chain (head in range) with `scratch` and makes sure it reaches the used
  // ring, counting it; false when even that is impossible (the queue stopped under us).
  bool serve_chain(std::size_t index, Queue& q, ChainScratch& scratch, std::uint16_t head,
                   const DescriptorTable& table) noexcept {
    const bool pushed = answer_chain(index, q, scratch, head, table);
    if (pushed) q.chains.fetch_add(1, std::memory_order_relaxed);
    return pushed;
  }

  bool answer_chain(std::size_t index, Queue& q, ChainScratch& scratch, std::uint16_t head,
                    const DescriptorTable& table) noexcept {
    DescriptorChain& chain = scratch.chain;
    const ChainError error = chain.walk(table, head);
    if (error != ChainError::none) {
      q.malformed.fetch_add(1, std::memory_order_relaxed);
      report(index, head, describe(error));
      return q.queue.push_used(head, 0).has_value();
    }
    if (chain.readable_bytes() < sizeof(abi::in_header)) {
      q.malformed.fetch_add(1, std::memory_order_relaxed);
      report(index, head, "fewer readable bytes than a FUSE request header");
      return q.queue.push_used(head, 0).has_value();
    }
    ChainReader reader(chain, scratch.bounce);
    ChainWriter writer(q.queue, chain);
    const Result<api::Disposition> handled = server_.handle(reader, writer);
    if (!handled) {
      q.send_errors.fetch_add(1, std::memory_order_relaxed);
      report(index, head, chain.writable_bytes() < sizeof(abi::out_header)
                              ? "no room for the reply header"
                              : "the reply could not be sent");
    } else if (*handled == api::Disposition::dropped) {
      q.malformed.fetch_add(1, std::memory_order_relaxed);
      report(index, head, "request too malformed to answer");
    }
    if (writer.committed()) return true;
    return q.queue.push_used(head, 0).has_value();
  }

  void report(std::size_t index, std::uint16_t head, std::string_view reason) const noexcept {
    if (!options_.log) return;
    std::array<char, 160> line;
    const auto result = fmt::format_to_n(line.data(), line.size(), "virtio-fs queue {} chain {}: {}",
                                         index, head, reason);
    const std::size_t size = result.size < line.size() ? result.size : line.size();
#if defined(__cpp_exceptions)
    try {
      options_.log(std::string_view(line.data(), size));
    } catch (...) {
      // A throwing log sink loses the line, not the request.
    }
#else
    options_.log(std::string_view(line.data(), size));
#endif
  }

  Server& server_;
  FsConfig config_;
  FsDeviceOptions options_;
  std::size_t queue_count_;
  std::unique_ptr<Queue[]> queues_;
};

}  // namespace fuse_backend::transport::virtio
