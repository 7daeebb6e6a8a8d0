// RequestPool: the worker threads that serve one request queue's chains concurrently (virtiofsd's
// --thread-pool-size), and ChainScratch, the per-thread storage serving a chain needs.
//
// Layer: transport/virtio. The queue's ring thread pops chains in order and submit()s them; a
// pool thread takes each, in submission order, and hands it to the Handler with its own
// ChainScratch. Nothing is allocated per chain: the hand-off queue is a fixed ring (sized at
// start), the scratch is allocated once per thread, and a PoppedChain carries the memory
// snapshot it was popped with by a reference count. Handlers finish in any order.
//
// Contract: submit() and drain() are called by one thread at a time (the queue's driver);
// start() only while drained. submit() blocks while the hand-off queue is full (a guest can make
// more chains available than are completed only by re-using heads still in flight). drain()
// returns once every submitted chain's Handler::serve has returned. The destructor drains and
// joins the threads. All calls are noexcept; the threads run only Handler::serve.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <fuse_backend/result.hpp>
#include <fuse_backend/transport/virtio/chain_io.hpp>
#include <fuse_backend/transport/virtio/descriptor_chain.hpp>
#include <fuse_backend/transport/virtio/guest_memory.hpp>

namespace fuse_backend::transport::virtio {

// What serving one chain needs besides the chain: walk storage and the reader's bounce buffer.
struct ChainScratch {
  DescriptorChain chain;
  std::vector<std::byte> bounce = std::vector<std::byte>(request_bounce_size);
};

// A chain popped from a ring, with the descriptor table and memory snapshot of that moment.
struct PoppedChain {
  std::uint16_t head = 0;
  DescriptorTable table;
  std::shared_ptr<const GuestMemory> memory;  // keeps `table` and the chain's buffers mapped
};

class RequestPool {
 public:
  class Handler {
   public:
    // Serves `chain` (walk, request, used-ring push, signal) on a pool thread.
    virtual void serve(ChainScratch& scratch, const PoppedChain& chain) noexcept = 0;

   protected:
    ~Handler() = default;
  };

  RequestPool() noexcept = default;
  RequestPool(const RequestPool&) = delete;
  RequestPool& operator=(const RequestPool&) = delete;
  ~RequestPool();

  // Runs `threads` threads serving through `handler` (starting those still missing; the
  // handler must stay the same) with room for `capacity` queued chains. EAGAIN if a thread
  // cannot be started (those started keep serving).
  Result<void> start(std::size_t threads, std::size_t capacity, Handler& handler) noexcept;
  std::size_t threads() const noexcept { return threads_.size(); }

  // Queues `chain` for a pool thread (waits for room while the hand-off queue is full).
  void submit(PoppedChain chain) noexcept;
  // Waits until every submitted chain has been served.
  void drain() noexcept;

 private:
  void run(ChainScratch& scratch) noexcept;

  std::mutex mutex_;
  std::condition_variable work_;  // a chain was queued, or shutdown
  std::condition_variable done_;  // a chain was taken (room) or served (drain)
  std::vector<PoppedChain> queued_;  // ring buffer: count_ entries from front_
  std::size_t front_ = 0;
  std::size_t count_ = 0;
  std::size_t in_flight_ = 0;  // submitted, not yet served
  bool shutdown_ = false;
  Handler* handler_ = nullptr;
  std::vector<std::unique_ptr<ChainScratch>> scratch_;
  std::vector<std::thread> threads_;
};

}  // namespace fuse_backend::transport::virtio
