// Data integrity through a real PassthroughFs mount: concurrent writers and readers checked with
// checksums, spliced writes, and nothing lost once files are closed and the filesystem is
// unmounted (default mode and writeback cache). Needs root and /dev/fuse.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "passthrough_mount_fixture.hpp"

namespace fuse_backend::passthrough::testing {
namespace {

// Deterministic contents: byte i of stream `seed`.
std::uint8_t pattern(std::uint64_t seed, std::uint64_t i) {
  std::uint64_t x = (seed + 1) * 0x9e3779b97f4a7c15ull ^ (i / 8) * 0xbf58476d1ce4e5b9ull;
  x ^= x >> 31;
  return static_cast<std::uint8_t>(x >> (8 * (i % 8)));
}

std::vector<std::uint8_t> expected_bytes(std::uint64_t seed, std::size_t size) {
  std::vector<std::uint8_t> bytes(size);
  for (std::size_t i = 0; i < size; ++i) bytes[i] = pattern(seed, i);
  return bytes;
}

std::uint64_t fnv1a(const std::uint8_t* data, std::size_t size) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 0x100000001b3ull;
  return h;
}

std::uint64_t checksum_of(const std::string& file, std::size_t size) {
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return 0;
  std::vector<std::uint8_t> data(size + 1);
  std::size_t got = 0;
  for (ssize_t n; got < data.size() && (n = ::pread(fd.get(), data.data() + got, data.size() - got,
                                                    static_cast<off_t>(got))) > 0;)
    got += static_cast<std::size_t>(n);
  return got == size ? fnv1a(data.data(), size) : 0;
}

// Writes `seed`'s stream to `file` in randomly sized chunks, in random order.
bool write_shuffled(const std::string& file, std::uint64_t seed, std::size_t size) {
  UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) return false;
  const auto bytes = expected_bytes(seed, size);
  std::mt19937_64 random(seed);
  std::vector<std::pair<std::size_t, std::size_t>> chunks;
  for (std::size_t at = 0; at < size;) {
    const std::size_t length = std::min<std::size_t>(size - at, 1 + random() % (300 * 1024));
    chunks.emplace_back(at, length);
    at += length;
  }
  std::shuffle(chunks.begin(), chunks.end(), random);
  for (auto [at, length] : chunks) {
    if (::pwrite(fd.get(), bytes.data() + at, length, static_cast<off_t>(at)) != static_cast<ssize_t>(length))
      return false;
  }
  return true;
}

class PassthroughIntegrity : public PassthroughMount {};

TEST_F(PassthroughIntegrity, ConcurrentWritersAndReadersKeepEveryByte) {
  constexpr std::size_t size = 12 << 20;
  constexpr int writers = 4;
  start(uncached(), 4);
  // A file the readers keep verifying while the writers work.
  ASSERT_TRUE(write_shuffled(path("static"), 99, size));
  const std::uint64_t static_sum = fnv1a(expected_bytes(99, size).data(), size);

  std::atomic<bool> writing{true};
  std::atomic<int> failures{0};
  std::atomic<int> verified{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w)
    threads.emplace_back([&, w] {
      if (!write_shuffled(path("w" + std::to_string(w)), static_cast<std::uint64_t>(w), size)) ++failures;
    });
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&] {
      do {
        if (checksum_of(path("static"), size) != static_sum) ++failures;
        ++verified;
      } while (writing.load());
    });
  for (int w = 0; w < writers; ++w) threads[static_cast<std::size_t>(w)].join();
  writing = false;
  for (std::size_t t = writers; t < threads.size(); ++t) threads[t].join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(verified.load(), 0);
  for (int w = 0; w < writers; ++w) {
    const auto sum = fnv1a(expected_bytes(static_cast<std::uint64_t>(w), size).data(), size);
    EXPECT_EQ(checksum_of(path("w" + std::to_string(w)), size), sum) << w;
    EXPECT_EQ(checksum_of(host("w" + std::to_string(w)), size), sum) << w;
  }
}

TEST_F(PassthroughIntegrity, ConcurrentWritersToDisjointRegionsOfOneFile) {
  constexpr std::size_t region = 3 << 20;
  constexpr int writers = 4;
  start(uncached(), 4);
  const auto all = expected_bytes(7, region * writers);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int w = 0; w < writers; ++w)
    threads.emplace_back([&, w] {
      UniqueFd fd(::open(path("shared").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
      const std::size_t base = region * static_cast<std::size_t>(w);
      for (std::size_t at = 0; at < region; at += 64 * 1024) {
        const std::size_t length = std::min<std::size_t>(64 * 1024, region - at);
        if (::pwrite(fd.get(), all.data() + base + at, length, static_cast<off_t>(base + at)) !=
            static_cast<ssize_t>(length))
          ++failures;
      }
    });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(checksum_of(host("shared"), all.size()), fnv1a(all.data(), all.size()));
}

// A stream of large writes is spliced from the device into the host file (max_write 1016 KiB:
// the largest whose requests fit a pipe of fs.pipe-max-size's default 1 MiB, which a process
// without CAP_SYS_RESOURCE cannot exceed), O_APPEND ones included (copied: splice(2) refuses
// O_APPEND targets); every byte arrives.
TEST_F(PassthroughIntegrity, SplicedWritesKeepEveryByte) {
  constexpr std::size_t chunk = 1016 * 1024;
  constexpr std::size_t size = 12 * chunk + 12345;
  transport::fusedev::ServiceOptions options;
  options.server.max_write = chunk;
  options.splice_writes = true;
  start(uncached(), 2, options);
  const auto bytes = expected_bytes(5, size);
  for (const char* name : {"sequential", "appended"}) {
    const bool append = name[0] == 'a';
    UniqueFd fd = open_file(path(name), O_WRONLY | O_CREAT | (append ? O_APPEND : 0));
    ASSERT_TRUE(fd.valid()) << errno_text();
    for (std::size_t at = 0; at < size; at += chunk) {
      const std::size_t length = std::min(chunk, size - at);
      ASSERT_EQ(::pwrite(fd.get(), bytes.data() + at, length, static_cast<off_t>(at)), static_cast<ssize_t>(length))
          << errno_text();
    }
  }
  mount_->service().stop();
  ASSERT_TRUE(mount_->service().join());
  EXPECT_GT(mount_->service().spliced_requests(), 12u) << "the writes were copied, not spliced";
  const auto sum = fnv1a(bytes.data(), size);
  EXPECT_EQ(checksum_of(host("sequential"), size), sum);
  EXPECT_EQ(checksum_of(host("appended"), size), sum);
}

// Closed files are complete on the host once the filesystem is unmounted, with and without
// the kernel's writeback cache (whose dirty pages the close must have flushed).
TEST_F(PassthroughIntegrity, NothingIsLostAfterUnmount) {
  for (bool writeback : {false, true}) {
    SCOPED_TRACE(writeback ? "writeback" : "write-through");
    Config config = uncached();
    config.writeback = writeback;
    start(config);
    std::vector<std::uint64_t> sums;
    for (int i = 0; i < 8; ++i) {
      const std::size_t size = (static_cast<std::size_t>(i) + 1) * 333'333;
      const std::string name = (writeback ? "wb" : "wt") + std::to_string(i);
      ASSERT_TRUE(write_shuffled(path(name), static_cast<std::uint64_t>(i), size));
      sums.push_back(fnv1a(expected_bytes(static_cast<std::uint64_t>(i), size).data(), size));
    }
    ASSERT_EQ(::mkdir(path(writeback ? "dir-wb" : "dir-wt").c_str(), 0700), 0);
    stop();
    for (int i = 0; i < 8; ++i) {
      const std::size_t size = (static_cast<std::size_t>(i) + 1) * 333'333;
      EXPECT_EQ(checksum_of(host((writeback ? "wb" : "wt") + std::to_string(i)), size), sums[static_cast<std::size_t>(i)]) << i;
    }
    struct stat st {};
    EXPECT_EQ(::stat(host(writeback ? "dir-wb" : "dir-wt").c_str(), &st), 0);
  }
}

}  // namespace
}  // namespace fuse_backend::passthrough::testing
