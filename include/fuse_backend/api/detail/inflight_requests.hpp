// InflightRequests: which requests are being handled right now, so FUSE_INTERRUPT can reach them.
//
// Layer: api/detail. A fixed table of slots (no allocation, lock-free): a handler claims a slot
// for its request id for the duration of the call; INTERRUPT marks the slot holding the target id,
// and the handler sees it through Context::interrupted(). When every slot is taken the request
// runs untracked (an interrupt for it is then ignored, which the protocol permits: interrupts are
// advisory). An INTERRUPT may also come before its request claims a slot (it comes over
// /dev/fuse while the request is still on its way to a handler: another worker, an io_uring
// queue's helper thread that is starting); the last `early_capacity` such ids are kept and a
// claim for one of them starts out interrupted (ids are never reused, so a stale one is
// harmless). interrupt_all() (the server stopping) marks every request, running or still to
// come, so that a handler waiting for something (a contended lock) gives up. A slot is one word,
// the request id shifted left by one with the interrupt mark in the low bit (an id of 2^63 or
// more runs untracked), so marking is one compare-and-swap of the id it expects: it cannot land
// on a request that took the slot over meanwhile. Thread-safe; the marking functions are also
// async-signal-safe (atomics only).
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace fuse_backend::api::detail {

class InflightRequests {
 public:
  static constexpr std::size_t capacity = 256;

  static constexpr std::uint64_t interrupted_bit = 1;

  // RAII claim of one slot; `flag()` is null when the request is untracked.
  class Claim {
   public:
    Claim(InflightRequests& table, std::uint64_t unique) noexcept : slot_(table.claim(unique)) {
      // After the claim (all sequentially consistent): either interrupt_all() / interrupt()
      // finds this slot, or this request finds the table closed / its id among the early ones.
      if (slot_ != nullptr && (table.closed_.load() || table.interrupted_early(unique))) {
        slot_->fetch_or(interrupted_bit);
      }
    }
    Claim(const Claim&) = delete;
    Claim& operator=(const Claim&) = delete;
    ~Claim() {
      if (slot_ != nullptr) slot_->store(0, std::memory_order_release);
    }
    // The slot's word, for Context::interrupted() (its low bit); null when untracked.
    const std::atomic<std::uint64_t>* flag() const noexcept { return slot_; }

   private:
    std::atomic<std::uint64_t>* slot_;
  };

  // Marks request `unique` as interrupted; false when it is not running (finished already, or
  // not read yet).
  bool interrupt(std::uint64_t unique) noexcept {
    if (unique == 0) return false;
    if (mark_running(unique)) return true;
    // Not running (yet): remembered, then looked for once more, in case the request claimed its
    // slot meanwhile without seeing the id.
    early_[early_next_.fetch_add(1) % early_capacity].store(unique);
    return mark_running(unique);
  }

  // Marks every request interrupted, the running ones and every one claimed from now on.
  void interrupt_all() noexcept {
    closed_.store(true);
    for (auto& slot : slots_) {
      std::uint64_t held = slot.load();
      while (held != 0 && !slot.compare_exchange_weak(held, held | interrupted_bit)) {
      }
    }
  }

 private:
  static std::size_t start(std::uint64_t unique) noexcept {
    return static_cast<std::size_t>(unique >> 1) % capacity;  // the kernel's ids step by 2
  }
  // A slot's word for running request `unique`, unmarked; 0 when the id cannot be tracked.
  static std::uint64_t word(std::uint64_t unique) noexcept {
    return unique >> 63 != 0 ? 0 : unique << 1;
  }
  std::atomic<std::uint64_t>* claim(std::uint64_t unique) noexcept {
    const std::uint64_t running = word(unique);
    if (running == 0) return nullptr;
    for (std::size_t i = 0; i < capacity; ++i) {
      auto& slot = slots_[(start(unique) + i) % capacity];
      std::uint64_t expected = 0;
      if (slot.compare_exchange_strong(expected, running)) return &slot;
    }
    return nullptr;
  }

  // Marks the slot holding `unique`; false when there is none.
  bool mark_running(std::uint64_t unique) noexcept {
    const std::uint64_t running = word(unique);
    if (running == 0) return false;
    for (std::size_t i = 0; i < capacity; ++i) {
      auto& slot = slots_[(start(unique) + i) % capacity];
      std::uint64_t expected = running;
      if (slot.compare_exchange_strong(expected, running | interrupted_bit) ||
          expected == (running | interrupted_bit))
        return true;
    }
    return false;
  }
  // Any id remembered at all: the common case costs one load.
  bool interrupted_early(std::uint64_t unique) const noexcept {
    if (early_next_.load() == 0) return false;
    for (const auto& early : early_) {
      if (early.load() == unique) return true;
    }
    return false;
  }

  static constexpr std::size_t early_capacity = 16;

  std::array<std::atomic<std::uint64_t>, capacity> slots_{};
  std::atomic<bool> closed_{false};
  std::array<std::atomic<std::uint64_t>, early_capacity> early_{};
  std::atomic<std::size_t> early_next_{0};
};

}  // namespace fuse_backend::api::detail
