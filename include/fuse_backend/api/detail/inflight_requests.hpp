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
// come, so that a handler waiting for something (a contended lock) gives up. Thread-safe; the
// marking functions are also async-signal-safe (atomics only).
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

  struct Slot {
    std::atomic<std::uint64_t> unique{0};
    std::atomic<bool> interrupted{false};
  };

  // RAII claim of one slot; `flag()` is null when the request is untracked.
  class Claim {
   public:
    Claim(InflightRequests& table, std::uint64_t unique) noexcept : slot_(table.claim(unique)) {
      // After the claim (all sequentially consistent): either interrupt_all() / interrupt()
      // finds this slot, or this request finds the table closed / its id among the early ones.
      if (slot_ != nullptr && (table.closed_.load() || table.interrupted_early(unique))) {
        slot_->interrupted.store(true, std::memory_order_relaxed);
      }
    }
    Claim(const Claim&) = delete;
    Claim& operator=(const Claim&) = delete;
    ~Claim() {
      if (slot_ != nullptr) {
        slot_->interrupted.store(false, std::memory_order_relaxed);
        slot_->unique.store(0, std::memory_order_release);
      }
    }
    const std::atomic<bool>* flag() const noexcept {
      return slot_ != nullptr ? &slot_->interrupted : nullptr;
    }

   private:
    Slot* slot_;
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
    for (Slot& slot : slots_) {
      if (slot.unique.load() != 0) slot.interrupted.store(true, std::memory_order_relaxed);
    }
  }

 private:
  static std::size_t start(std::uint64_t unique) noexcept {
    return static_cast<std::size_t>(unique >> 1) % capacity;  // the kernel's ids step by 2
  }
  Slot* claim(std::uint64_t unique) noexcept {
    if (unique == 0) return nullptr;
    for (std::size_t i = 0; i < capacity; ++i) {
      Slot& slot = slots_[(start(unique) + i) % capacity];
      std::uint64_t expected = 0;
      if (slot.unique.compare_exchange_strong(expected, unique)) {
        return &slot;
      }
    }
    return nullptr;
  }

  // Marks the slot holding `unique`; false when there is none.
  bool mark_running(std::uint64_t unique) noexcept {
    for (std::size_t i = 0; i < capacity; ++i) {
      Slot& slot = slots_[(start(unique) + i) % capacity];
      if (slot.unique.load() == unique) {
        slot.interrupted.store(true, std::memory_order_relaxed);
        return true;
      }
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

  std::array<Slot, capacity> slots_{};
  std::atomic<bool> closed_{false};
  std::array<std::atomic<std::uint64_t>, early_capacity> early_{};
  std::atomic<std::size_t> early_next_{0};
};

}  // namespace fuse_backend::api::detail
