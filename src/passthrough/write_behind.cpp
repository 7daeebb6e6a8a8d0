// WriteBehind (see include/fuse_backend/passthrough/write_behind.hpp).
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/passthrough/write_behind.hpp>

#include <fcntl.h>

#include <fuse_backend/detail/thread_name.hpp>

namespace fuse_backend::passthrough {

std::optional<FileRange> WriteBehind::completed_chunks(FileRange written, std::uint64_t size_before) noexcept {
  if (written.end <= size_before) return std::nullopt;
  const FileRange whole{written.start / chunk * chunk, written.end / chunk * chunk};
  if (whole.end <= whole.start) return std::nullopt;
  return whole;
}

WriteBehind::WriteBehind() : thread_([this] { run(); }) {
  detail::name_thread(thread_.native_handle(), "fuse-wb", 0);  // named once this returns
}

WriteBehind::~WriteBehind() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  queued_.notify_one();
  thread_.join();
}

void WriteBehind::write_back(const std::shared_ptr<OpenFile>& file, FileRange range) noexcept {
  {
    std::lock_guard lock(mutex_);
    if (size_ != 0) {
      Pending& last = ring_[(head_ + size_ - 1) % queue_capacity];
      if (last.file == file && last.range.end == range.start) {
        last.range.end = range.end;
        return;  // the thread is awake already: the ring was not empty
      }
    }
    if (size_ == queue_capacity) return;
    ring_[(head_ + size_) % queue_capacity] = Pending{file, range};
    ++size_;
  }
  queued_.notify_one();
}

void WriteBehind::forget(const OpenFile& file) noexcept {
  std::unique_lock lock(mutex_);
  std::size_t kept = 0;
  for (std::size_t i = 0; i < size_; ++i) {
    Pending& pending = ring_[(head_ + i) % queue_capacity];
    if (pending.file.get() == &file) {
      pending = {};
      continue;
    }
    if (kept != i) ring_[(head_ + kept) % queue_capacity] = std::move(pending);
    ++kept;
  }
  size_ = kept;
  started_.wait(lock, [&] { return in_progress_ != &file; });
}

void WriteBehind::run() noexcept {
  std::unique_lock lock(mutex_);
  for (;;) {
    queued_.wait(lock, [&] { return stop_ || size_ != 0; });
    if (stop_) return;
    Pending pending = std::move(ring_[head_]);
    head_ = (head_ + 1) % queue_capacity;
    --size_;
    in_progress_ = pending.file.get();
    lock.unlock();
    // A hint: an error (the file truncated meanwhile, a filesystem without writeback) leaves
    // the pages to the kernel's flusher, as without write-behind.
    (void)::sync_file_range(pending.file->fd(), static_cast<off64_t>(pending.range.start),
                            static_cast<off64_t>(pending.range.end - pending.range.start),
                            SYNC_FILE_RANGE_WRITE);
    pending.file.reset();  // may close the fd, outside the lock
    lock.lock();
    in_progress_ = nullptr;
    started_.notify_all();
  }
}

}  // namespace fuse_backend::passthrough
