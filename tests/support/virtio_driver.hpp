// VirtioDriver: test code that plays the guest side of one split virtqueue.
//
// Layer: test support. Owns fake guest RAM (one or more regions with adjacent guest addresses,
// each its own host allocation so a buffer crossing them really is split), lays out a
// descriptor table and the avail/used rings in it, allocates buffers, posts chains (direct or
// through an indirect table), reads the used ring, and exposes the EVENT_IDX fields. Hostile
// tests write raw descriptors and avail entries themselves. Ring fields are accessed with the
// same atomics a real driver uses (release store of avail->idx, acquire load of used->idx).
// Single-threaded unless a test says otherwise; allocation is fine here. SignalCounter is the
// driver's end of virtio::QueueSignal (thread safe).
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <fuse_backend/transport/virtio/device.hpp>
#include <fuse_backend/transport/virtio/guest_memory.hpp>
#include <fuse_backend/transport/virtio/split_ring.hpp>
#include <fuse_backend/transport/virtio/virtqueue.hpp>

namespace fuse_backend::testing {

namespace virtio = transport::virtio;

class VirtioDriver {
 public:
  struct Options {
    std::uint16_t queue_size = 16;
    std::uint64_t features = 0;  // virtio::features::* the "guest" acked
    std::uint64_t guest_base = 0x100000;
    // Sizes of the regions, placed back to back from guest_base.
    std::vector<std::uint64_t> region_sizes{std::uint64_t{1} << 20};
    // avail->idx / used->idx start here (and the queue's base): tests of 16-bit wrap-around.
    std::uint16_t start_index = 0;
  };

  struct Buffer {
    std::uint64_t gpa;
    std::uint32_t len;
    bool writable;
  };

  struct Used {
    std::uint32_t id;
    std::uint32_t len;
  };

  explicit VirtioDriver(Options options) : options_(std::move(options)) {
    std::uint64_t gpa = options_.guest_base;
    std::vector<virtio::GuestRegion> regions;
    for (std::uint64_t size : options_.region_sizes) {
      auto& storage = storage_.emplace_back(std::make_unique<std::byte[]>(size + 64));
      // Page-like alignment for the host side, as an mmap would give.
      auto* host = reinterpret_cast<std::byte*>((reinterpret_cast<std::uintptr_t>(storage.get()) + 63) & ~std::uintptr_t{63});
      std::memset(host, 0, size);
      virtio::GuestRegion region;
      region.guest_addr = gpa;
      region.size = size;
      region.host = host;
      region.user_addr = user_base + (gpa - options_.guest_base);
      regions.push_back(region);
      gpa += size;
    }
    auto memory = virtio::GuestMemory::create(std::move(regions));
    if (!memory) throw std::runtime_error("VirtioDriver: bad regions");
    memory_ = std::make_shared<const virtio::GuestMemory>(std::move(*memory));
    next_free_ = options_.guest_base;

    const std::uint16_t n = options_.queue_size;
    descriptors_ = alloc(virtio::ring_layout::descriptor_table_size(n), 16);
    avail_ = alloc(virtio::ring_layout::avail_size(n), 2);
    used_ = alloc(virtio::ring_layout::used_size(n), 4);
    avail_idx_ = options_.start_index;
    last_used_ = options_.start_index;
    field16(avail_ + virtio::ring_layout::avail_idx_offset).store(avail_idx_, std::memory_order_relaxed);
    field16(used_ + virtio::ring_layout::used_idx_offset).store(avail_idx_, std::memory_order_relaxed);
    for (std::uint16_t i = 0; i < n; ++i) free_.push_back(static_cast<std::uint16_t>(n - 1 - i));
    chains_.resize(n);
  }

  // The VMM's virtual address of guest_base (regions follow contiguously in this space too).
  static constexpr std::uint64_t user_base = 0x7f0000000000;

  std::shared_ptr<const virtio::GuestMemory> memory() const { return memory_; }
  const Options& options() const { return options_; }

  virtio::RingAddresses addresses(virtio::AddressKind kind = virtio::AddressKind::guest_physical) const {
    if (kind == virtio::AddressKind::guest_physical) return {descriptors_, avail_, used_, kind, std::nullopt};
    return {to_user(descriptors_), to_user(avail_), to_user(used_), kind, used_};
  }
  std::uint64_t to_user(std::uint64_t gpa) const { return user_base + (gpa - options_.guest_base); }

  // Configures and starts `queue` the way a VMM would after the guest set DRIVER_OK.
  void start(virtio::Virtqueue& queue, virtio::AddressKind kind = virtio::AddressKind::guest_physical) const {
    if (!queue.set_size(options_.queue_size)) throw std::runtime_error("set_size");
    queue.set_addresses(addresses(kind));
    queue.set_features(options_.features);
    queue.set_base(options_.start_index);
    if (!queue.start(memory_)) throw std::runtime_error("start");
  }

  // --- guest memory ------------------------------------------------------------------------

  // Bump allocation of guest memory (never freed; see mark()/release()).
  std::uint64_t alloc(std::uint64_t size, std::uint64_t align = 8) {
    const std::uint64_t at = (next_free_ + align - 1) & ~(align - 1);
    if (at + size > end()) throw std::runtime_error("VirtioDriver: out of guest memory");
    next_free_ = at + size;
    return at;
  }
  // Allocation watermark: release(mark()) later frees everything allocated in between.
  std::uint64_t mark() const { return next_free_; }
  void release(std::uint64_t mark) { next_free_ = mark; }
  std::uint64_t end() const {
    std::uint64_t total = 0;
    for (auto size : options_.region_sizes) total += size;
    return options_.guest_base + total;
  }

  // Host pointer of one guest byte (tests poke guest memory through it).
  std::byte* host(std::uint64_t gpa) const {
    auto span = memory_->translate(gpa, 1);
    if (!span) throw std::runtime_error("VirtioDriver: unmapped address");
    return span->data();
  }
  // Copies across region boundaries like a driver's scatter-gather would.
  void write(std::uint64_t gpa, std::span<const std::byte> bytes) const {
    for (std::size_t done = 0; done < bytes.size();) {
      auto piece = memory_->translate_prefix(gpa + done, bytes.size() - done);
      if (!piece) throw std::runtime_error("VirtioDriver: unmapped address");
      std::memcpy(piece->data(), bytes.data() + done, piece->size());
      done += piece->size();
    }
  }
  std::vector<std::byte> read(std::uint64_t gpa, std::size_t len) const {
    std::vector<std::byte> out(len);
    for (std::size_t done = 0; done < len;) {
      auto piece = memory_->translate_prefix(gpa + done, len - done);
      if (!piece) throw std::runtime_error("VirtioDriver: unmapped address");
      std::memcpy(out.data() + done, piece->data(), piece->size());
      done += piece->size();
    }
    return out;
  }
  // Allocates a buffer holding `bytes`.
  std::uint64_t place(std::span<const std::byte> bytes, std::uint64_t align = 1) {
    const std::uint64_t gpa = alloc(bytes.size(), align);
    write(gpa, bytes);
    return gpa;
  }

  // --- posting chains ------------------------------------------------------------------------

  // Posts one chain of `buffers` (readable ones first, as a driver must) and returns its head.
  // With `indirect`, the chain is a single descriptor pointing to a table in guest memory.
  std::uint16_t post(std::span<const Buffer> buffers, bool indirect = false) {
    std::vector<virtio::Descriptor> table;
    for (std::size_t i = 0; i < buffers.size(); ++i) {
      std::uint16_t flags = buffers[i].writable ? virtio::descriptor_flags::write : 0;
      if (i + 1 < buffers.size()) flags |= virtio::descriptor_flags::next;
      table.push_back({buffers[i].gpa, buffers[i].len, flags, static_cast<std::uint16_t>(i + 1)});
    }
    if (indirect) {
      const std::uint64_t gpa = alloc(table.size() * sizeof(virtio::Descriptor), 16);
      write(gpa, std::as_bytes(std::span(table)));
      const std::uint16_t head = take_descriptors(1).front();
      write_descriptor(head, {gpa, static_cast<std::uint32_t>(table.size() * sizeof(virtio::Descriptor)),
                              virtio::descriptor_flags::indirect, 0});
      chains_[head] = {head};
      publish(head);
      return head;
    }
    const std::vector<std::uint16_t> slots = take_descriptors(table.size());
    for (std::size_t i = 0; i < table.size(); ++i) {
      if (i + 1 < table.size()) table[i].next = slots[i + 1];
      write_descriptor(slots[i], table[i]);
    }
    chains_[slots.front()] = slots;
    publish(slots.front());
    return slots.front();
  }

  // Raw access for hostile tables.
  void write_descriptor(std::uint16_t index, const virtio::Descriptor& descriptor) const {
    write(descriptors_ + index * sizeof(virtio::Descriptor), std::as_bytes(std::span(&descriptor, 1)));
  }
  // Makes `head` available: ring entry, then avail->idx with release (what virtio_wmb orders).
  void publish(std::uint16_t head) {
    const std::uint64_t slot = avail_ + virtio::ring_layout::avail_ring_offset +
                               2ULL * (avail_idx_ & (options_.queue_size - 1U));
    field16(slot).store(head, std::memory_order_relaxed);
    ++avail_idx_;
    field16(avail_ + virtio::ring_layout::avail_idx_offset).store(avail_idx_, std::memory_order_release);
  }
  // Sets avail->idx directly (a driver claiming more entries than exist).
  void set_avail_idx(std::uint16_t idx) {
    avail_idx_ = idx;
    field16(avail_ + virtio::ring_layout::avail_idx_offset).store(idx, std::memory_order_release);
  }
  std::uint16_t avail_idx() const { return avail_idx_; }

  // --- used ring ------------------------------------------------------------------------------

  std::uint16_t used_idx() const {
    return field16(used_ + virtio::ring_layout::used_idx_offset).load(std::memory_order_acquire);
  }
  // The next used element not seen yet; frees its descriptors.
  std::optional<Used> next_used() {
    if (last_used_ == used_idx()) return std::nullopt;
    const std::uint64_t element = used_ + virtio::ring_layout::used_ring_offset +
                                  virtio::ring_layout::used_element_size * (last_used_ & (options_.queue_size - 1U));
    Used used;
    std::memcpy(&used.id, host(element), 4);
    std::memcpy(&used.len, host(element + 4), 4);
    ++last_used_;
    if (used.id < chains_.size()) {
      for (auto index : chains_[used.id]) free_.push_back(index);
      chains_[used.id].clear();
    }
    return used;
  }

  // --- notification fields ---------------------------------------------------------------------

  void set_used_event(std::uint16_t value) const {
    field16(avail_ + virtio::ring_layout::used_event_offset(options_.queue_size)).store(value, std::memory_order_relaxed);
  }
  std::uint16_t avail_event() const {
    return field16(used_ + virtio::ring_layout::avail_event_offset(options_.queue_size)).load(std::memory_order_relaxed);
  }
  void set_no_interrupt(bool on) const {
    field16(avail_).store(on ? virtio::avail_flag_no_interrupt : 0, std::memory_order_relaxed);
  }

  std::uint64_t descriptor_table_gpa() const { return descriptors_; }
  std::uint64_t avail_gpa() const { return avail_; }
  std::uint64_t used_gpa() const { return used_; }

 private:
  std::atomic_ref<std::uint16_t> field16(std::uint64_t gpa) const {
    return std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(host(gpa)));
  }
  std::vector<std::uint16_t> take_descriptors(std::size_t count) {
    if (count > free_.size()) throw std::runtime_error("VirtioDriver: descriptor table full");
    std::vector<std::uint16_t> slots(free_.end() - static_cast<std::ptrdiff_t>(count), free_.end());
    free_.resize(free_.size() - count);
    std::reverse(slots.begin(), slots.end());
    return slots;
  }

  Options options_;
  std::vector<std::unique_ptr<std::byte[]>> storage_;
  std::shared_ptr<const virtio::GuestMemory> memory_;
  std::uint64_t next_free_ = 0;
  std::uint64_t descriptors_ = 0;
  std::uint64_t avail_ = 0;
  std::uint64_t used_ = 0;
  std::uint16_t avail_idx_ = 0;
  std::uint16_t last_used_ = 0;
  std::vector<std::uint16_t> free_;
  std::vector<std::vector<std::uint16_t>> chains_;
};

// The driver's side of virtio::QueueSignal (completions a device makes on its own threads):
// counts chains and notifications per queue; tests wait for a number of chains.
class SignalCounter final : public virtio::QueueSignal {
 public:
  void completed(std::size_t index, std::size_t chains, bool notify) noexcept override {
    {
      std::lock_guard guard(mutex_);
      if (counts_.size() <= index) counts_.resize(index + 1);
      counts_[index].chains += chains;
      counts_[index].notifications += notify ? 1 : 0;
    }
    changed_.notify_all();
  }
  // Waits (up to 10 s) until `count` chains of queue `index` have been reported in total.
  bool wait_for_chains(std::size_t index, std::uint64_t count) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(10),
                             [&] { return index < counts_.size() && counts_[index].chains >= count; });
  }
  std::uint64_t chains(std::size_t index) const {
    std::lock_guard guard(mutex_);
    return index < counts_.size() ? counts_[index].chains : 0;
  }
  std::uint64_t notifications(std::size_t index) const {
    std::lock_guard guard(mutex_);
    return index < counts_.size() ? counts_[index].notifications : 0;
  }

 private:
  struct Counts {
    std::uint64_t chains = 0;
    std::uint64_t notifications = 0;
  };
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Counts> counts_;
};

}  // namespace fuse_backend::testing
