// WriteBehind: starts the host's writeback of a file as it grows, on a thread of its own.
//
// Layer: passthrough. Data a client streams into a new file (a copy, an untar of large files, a
// download) lands dirty in the host's page cache and stays there until the kernel's flusher
// takes it (dirty_expire_centisecs, 30 s by default) or the client's fsync, which then writes
// all of it while the client waits. Each whole MiB (`chunk`) that a write appending to a file
// completes is instead handed to this thread, which starts its writeback at once
// (sync_file_range SYNC_FILE_RANGE_WRITE, no waiting for the disk), the way databases flush
// behind their own writes. The request does not wait for it, so the writeback overlaps the
// stream instead of following it, and a growing file does not build up gigabytes of dirty
// pages beside the FUSE page cache's copy of them. compare.sh's fio job (a new 256 MiB file
// in 1 MiB writes, then fsync) on ext4 on zram, 2 CPUs, six alternating rounds: native
// 337-736 MiB/s, libfuse 287-597, ours without write-behind 317-577, with it 389-1071 (five
// rounds above 770): the RAM disk compresses on the CPU that fsync left idle before.
//
// What it leaves alone, and why:
// - Rewrites of existing data (only writes that end past the file's size before them count):
//   a file rewritten in place is likely rewritten again, and each writeback of it would be
//   repeated work.
// - Writes that complete no whole chunk: small files are often short-lived, and a file that
//   is deleted before the flusher reaches it never costs a write.
// The price: a large file written and deleted within 30 s is written to the disk. Turn it off
// with Config::write_behind = false (`-o no_write_behind`).
//
// Thread safety: all members are thread-safe. write_back() never blocks on the disk and never
// allocates: it queues into a fixed ring, merging a range that continues the last one, and
// drops the hint when the ring is full (the flusher or fsync write those pages later).
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <array>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <fuse_backend/passthrough/handle_table.hpp>

namespace fuse_backend::passthrough {

// A byte range of a file, [start, end).
struct FileRange {
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  friend bool operator==(const FileRange&, const FileRange&) = default;
};

class WriteBehind {
 public:
  static constexpr std::uint64_t chunk = 1 << 20;
  static constexpr std::size_t queue_capacity = 16;

  // The whole chunks to write back after a write of `written` (the bytes that reached the file,
  // where they landed) to a file that was `size_before` bytes long: those the write completed,
  // if it grew the file; none otherwise.
  static std::optional<FileRange> completed_chunks(FileRange written, std::uint64_t size_before) noexcept;

  // Starts the thread (named "fuse-wb-0").
  WriteBehind();
  // Stops the thread; hints still queued are dropped.
  ~WriteBehind();
  WriteBehind(const WriteBehind&) = delete;
  WriteBehind& operator=(const WriteBehind&) = delete;

  // Queues writeback of `range` of `file` (see completed_chunks).
  void write_back(const std::shared_ptr<OpenFile>& file, FileRange range) noexcept;
  // `file` is being released: drops its queued ranges and waits for one being started, so the
  // thread holds no reference to it when this returns and its fd closes with the last request.
  void forget(const OpenFile& file) noexcept;

 private:
  struct Pending {
    std::shared_ptr<OpenFile> file;
    FileRange range;
  };
  void run() noexcept;

  std::mutex mutex_;
  std::condition_variable queued_;  // a range was queued, or stop
  std::condition_variable started_;  // the thread finished starting a range's writeback
  std::array<Pending, queue_capacity> ring_;
  std::size_t head_ = 0;  // the oldest pending range
  std::size_t size_ = 0;
  const OpenFile* in_progress_ = nullptr;  // whose writeback the thread is starting now
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace fuse_backend::passthrough
