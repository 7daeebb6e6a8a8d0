// RequestPool: hand-off ring, worker threads, drain (see request_pool.hpp).
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/transport/virtio/request_pool.hpp>

#include <exception>
#include <utility>

namespace fuse_backend::transport::virtio {

RequestPool::~RequestPool() {
  {
    std::lock_guard guard(mutex_);
    shutdown_ = true;
  }
  work_.notify_all();
  for (std::thread& thread : threads_) thread.join();
}

Result<void> RequestPool::start(std::size_t threads, std::size_t capacity,
                                Handler& handler) noexcept {
  try {
    {
      std::lock_guard guard(mutex_);
      handler_ = &handler;
      if (queued_.size() < capacity) {
        // Drained, so the ring holds nothing: growing it moves no live entry.
        queued_.resize(capacity);
        front_ = 0;
      }
    }
    while (threads_.size() < threads) {
      scratch_.push_back(std::make_unique<ChainScratch>());
      threads_.emplace_back([this, scratch = scratch_.back().get()] { run(*scratch); });
    }
  } catch (const std::exception&) {
    if (scratch_.size() > threads_.size()) scratch_.pop_back();
    return fail(std::errc::resource_unavailable_try_again);
  }
  return {};
}

void RequestPool::submit(PoppedChain chain) noexcept {
  {
    std::unique_lock lock(mutex_);
    done_.wait(lock, [&] { return count_ < queued_.size(); });
    queued_[(front_ + count_) % queued_.size()] = std::move(chain);
    ++count_;
    ++in_flight_;
  }
  work_.notify_one();
}

void RequestPool::drain() noexcept {
  std::unique_lock lock(mutex_);
  done_.wait(lock, [&] { return in_flight_ == 0; });
}

void RequestPool::run(ChainScratch& scratch) noexcept {
  std::unique_lock lock(mutex_);
  for (;;) {
    work_.wait(lock, [&] { return shutdown_ || count_ > 0; });
    if (count_ == 0) return;  // shutdown with nothing left
    PoppedChain chain = std::move(queued_[front_]);
    front_ = (front_ + 1) % queued_.size();
    --count_;
    lock.unlock();
    done_.notify_all();  // room for a waiting submit()
    handler_->serve(scratch, chain);
    // Drop the snapshot before reporting done: drain() may be followed by unmapping it.
    chain.memory.reset();
    lock.lock();
    --in_flight_;
    if (in_flight_ == 0) done_.notify_all();
  }
}

}  // namespace fuse_backend::transport::virtio
