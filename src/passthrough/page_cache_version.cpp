// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/passthrough/page_cache_version.hpp>

namespace fuse_backend::passthrough {

PageCacheVersion::Version PageCacheVersion::of(const struct stat& st) noexcept {
  return {st.st_mtim.tv_sec, st.st_ctim.tv_sec, st.st_size,
          static_cast<std::int32_t>(st.st_mtim.tv_nsec), static_cast<std::int32_t>(st.st_ctim.tv_nsec)};
}

bool PageCacheVersion::current(int fd, Version& version) noexcept {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return false;
  version = of(st);
  return true;
}

void PageCacheVersion::record(const Version& version) noexcept {
  version_ = version;
  read_since_record_.store(false, std::memory_order_release);
  state_.store(State::recorded, std::memory_order_release);
}

void PageCacheVersion::before_read() noexcept {
  if (!read_since_record_.load(std::memory_order_acquire))
    read_since_record_.store(true, std::memory_order_release);
}

bool PageCacheVersion::keep_on_open(int fd) noexcept {
  Version now;
  const bool known = current(fd, now);
  std::lock_guard lock(mutex_);
  if (known && state_.load(std::memory_order_relaxed) != State::unknown && version_ == now) return true;
  // The kernel drops its cache now: whatever it caches next comes from this version. (A change
  // of ours still under way, if any, moves the host past it and is caught at the next open.)
  if (known) record(now);
  else state_.store(State::unknown, std::memory_order_release);
  return false;
}

void PageCacheVersion::record_created(const struct stat& created) noexcept {
  std::lock_guard lock(mutex_);
  record(of(created));
}

void PageCacheVersion::before_own_write(int fd) noexcept {
  if (state_.load(std::memory_order_acquire) != State::recorded) return;
  std::lock_guard lock(mutex_);
  if (state_.load(std::memory_order_relaxed) != State::recorded) return;
  Version now;
  state_.store(current(fd, now) && now == version_ ? State::changing : State::unknown,
               std::memory_order_release);
}

void PageCacheVersion::after_own_writes(int fd) noexcept {
  if (state_.load(std::memory_order_acquire) != State::changing) return;
  std::lock_guard lock(mutex_);
  if (state_.load(std::memory_order_relaxed) != State::changing) return;
  Version now;
  if (!read_since_record_.load(std::memory_order_acquire) && current(fd, now)) record(now);
  else state_.store(State::unknown, std::memory_order_release);
}

void PageCacheVersion::forget() noexcept {
  if (state_.load(std::memory_order_acquire) == State::unknown) return;
  std::lock_guard lock(mutex_);
  state_.store(State::unknown, std::memory_order_release);
}

}  // namespace fuse_backend::passthrough
