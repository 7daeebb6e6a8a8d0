// Split virtqueue ring protocol (see virtqueue.hpp for the memory-ordering argument).
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/transport/virtio/virtqueue.hpp>

#include <atomic>
#include <bit>
#include <cstdint>
#include <mutex>

namespace fuse_backend::transport::virtio {
namespace {

// A view of a little-endian ring field in guest memory as an atomic object. The rings are
// checked to be aligned (start()), so every field is naturally aligned.
template <class T>
std::atomic_ref<T> field(std::byte* base, std::uint64_t offset) noexcept {
  return std::atomic_ref<T>(*reinterpret_cast<T*>(base + offset));
}

bool aligned(std::uint64_t addr, const std::byte* host, std::uint64_t alignment) noexcept {
  return addr % alignment == 0 && reinterpret_cast<std::uintptr_t>(host) % alignment == 0;
}

}  // namespace

Result<void> Virtqueue::set_size(std::uint32_t size) noexcept {
  if (size == 0 || size > ring_layout::max_queue_size || !std::has_single_bit(size))
    return fail(std::errc::invalid_argument);
  size_ = static_cast<std::uint16_t>(size);
  return {};
}

Result<void> Virtqueue::map_rings(const GuestMemory& memory) noexcept {
  if (size_ == 0) return fail(std::errc::invalid_argument);
  const bool user = addresses_.kind == AddressKind::user_virtual;
  auto translate = [&](std::uint64_t addr, std::uint64_t len) {
    return user ? memory.translate_user(addr, len) : memory.translate(addr, len);
  };
  auto descriptors = translate(addresses_.descriptors, ring_layout::descriptor_table_size(size_));
  auto avail = translate(addresses_.avail, ring_layout::avail_size(size_));
  auto used = translate(addresses_.used, ring_layout::used_size(size_));
  if (!descriptors || !avail || !used) return fail(std::errc::bad_address);
  if (!aligned(addresses_.descriptors, descriptors->data(), ring_layout::descriptor_alignment) ||
      !aligned(addresses_.avail, avail->data(), ring_layout::avail_alignment) ||
      !aligned(addresses_.used, used->data(), ring_layout::used_alignment))
    return fail(std::errc::invalid_argument);
  descriptors_ = *descriptors;
  avail_ = avail->data();
  used_ = used->data();
  used_log_addr_ = addresses_.used_log_addr;
  if (!used_log_addr_ && !user) used_log_addr_ = addresses_.used;
  return {};
}

Result<void> Virtqueue::start(std::shared_ptr<const GuestMemory> memory) noexcept {
  if (memory == nullptr) return fail(std::errc::invalid_argument);
  if (auto mapped = map_rings(*memory); !mapped) return mapped;
  memory_ = std::move(memory);
  signalled_used_valid_ = false;
  pushed_since_signal_ = false;
  broken_ = false;
  started_ = true;
  return {};
}

void Virtqueue::stop() noexcept {
  std::lock_guard guard(used_lock_);
  started_ = false;
  // Drop the snapshot: a stopped queue must not keep removed regions mapped.
  memory_.reset();
  descriptors_ = {};
  avail_ = nullptr;
  used_ = nullptr;
}

Result<void> Virtqueue::set_memory(std::shared_ptr<const GuestMemory> memory) noexcept {
  if (!started_ || memory == memory_) return {};
  if (memory == nullptr) return fail(std::errc::invalid_argument);
  Result<void> mapped;
  {
    // Completions on other threads use used_ and memory_ (the dirty log): swap under their lock.
    std::lock_guard guard(used_lock_);
    mapped = map_rings(*memory);
    if (mapped) memory_ = std::move(memory);
  }
  if (!mapped) stop();
  return mapped;
}

Result<std::optional<std::uint16_t>> Virtqueue::pop() noexcept {
  if (!started_ || broken_) return fail(std::errc::io_error);
  auto avail_idx = field<std::uint16_t>(avail_, ring_layout::avail_idx_offset);
  std::uint16_t published = avail_idx.load(std::memory_order_acquire);
  if (published == next_avail_ && event_idx()) {
    // Going idle: ask for a kick at the next entry, then look again. The fence orders our
    // avail_event store before the idx load, pairing with the driver's fence between its idx
    // store and its avail_event load: one of us sees the other's write.
    field<std::uint16_t>(used_, ring_layout::avail_event_offset(size_)).store(next_avail_, std::memory_order_relaxed);
    log_used(ring_layout::avail_event_offset(size_), sizeof(std::uint16_t));
    std::atomic_thread_fence(std::memory_order_seq_cst);
    published = avail_idx.load(std::memory_order_acquire);
  }
  const std::uint16_t pending = static_cast<std::uint16_t>(published - next_avail_);
  if (pending == 0) return Result<std::optional<std::uint16_t>>(std::in_place, std::nullopt);  // in place: g++ 12 warns on copying an empty optional
  if (pending > size_) {
    broken_ = true;
    return fail(std::errc::io_error);
  }
  const std::uint64_t slot = ring_layout::avail_ring_offset + 2ULL * (next_avail_ & (size_ - 1U));
  const std::uint16_t head = field<std::uint16_t>(avail_, slot).load(std::memory_order_relaxed);
  ++next_avail_;
  return std::optional<std::uint16_t>(head);
}

Result<void> Virtqueue::push_used(std::uint16_t head, std::uint32_t len) noexcept {
  std::lock_guard guard(used_lock_);
  if (!started_) return fail(std::errc::io_error);
  const std::uint64_t element = ring_layout::used_ring_offset +
                                ring_layout::used_element_size * (used_idx_ & (size_ - 1U));
  field<std::uint32_t>(used_, element).store(head, std::memory_order_relaxed);
  field<std::uint32_t>(used_, element + 4).store(len, std::memory_order_relaxed);
  log_used(element, ring_layout::used_element_size);
  ++used_idx_;
  pushed_since_signal_ = true;
  field<std::uint16_t>(used_, ring_layout::used_idx_offset).store(used_idx_, std::memory_order_release);
  log_used(ring_layout::used_idx_offset, sizeof(std::uint16_t));
  return {};
}

bool Virtqueue::needs_notification() noexcept {
  std::lock_guard guard(used_lock_);
  if (!started_) return false;
  const std::uint16_t old_idx = signalled_used_;
  const bool valid = signalled_used_valid_;
  if (!pushed_since_signal_) return false;
  pushed_since_signal_ = false;
  signalled_used_ = used_idx_;
  signalled_used_valid_ = true;
  // Our used->idx store must be globally visible before we read what the driver asked for,
  // pairing with the driver's fence between writing used_event/flags and reading used->idx.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (event_idx()) {
    if (!valid) return true;
    const std::uint16_t used_event =
        field<std::uint16_t>(avail_, ring_layout::used_event_offset(size_)).load(std::memory_order_relaxed);
    return need_event(used_event, used_idx_, old_idx);
  }
  const std::uint16_t flags = field<std::uint16_t>(avail_, 0).load(std::memory_order_relaxed);
  return (flags & avail_flag_no_interrupt) == 0;
}

void Virtqueue::log_used(std::uint64_t offset, std::uint64_t len) const noexcept {
  if (used_log_addr_ && memory_->logging()) memory_->log_write(*used_log_addr_ + offset, len);
}

}  // namespace fuse_backend::transport::virtio
