// Data integrity through a real PassthroughFs mount: concurrent writers checked with checksums,
// readers racing rewrites of the file they read, spliced writes, and nothing lost once files are
// closed and the filesystem is unmounted (default mode and writeback cache). All but the splice
// test run three times: through the daemon over /dev/fuse, with FUSE passthrough backing files
// (the kernel reads and writes the host files, no READ/WRITE reaches the daemon), and through
// the daemon over FUSE-over-io_uring. Needs root, /dev/fuse and Linux >= 6.14.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <support/eventually.hpp>
#include <support/fuse_io_uring.hpp>
#include <support/page_cache_state.hpp>

#include "passthrough_mount_fixture.hpp"

namespace fuse_backend::passthrough::testing {
namespace {

using fuse_backend::testing::dirty_pages;
using fuse_backend::testing::eventually;

// Deterministic contents: word i of stream `seed`.
std::uint64_t pattern(std::uint64_t seed, std::uint64_t i) {
  const std::uint64_t x = (seed + 1) * 0x9e3779b97f4a7c15ull ^ i * 0xbf58476d1ce4e5b9ull;
  return x ^ x >> 31;
}

// The first `size` bytes of stream `seed`.
std::vector<std::uint8_t> expected_bytes(std::uint64_t seed, std::size_t size) {
  std::vector<std::uint8_t> bytes(size);
  for (std::size_t at = 0; at < size; at += 8) {
    const std::uint64_t word = pattern(seed, at / 8);
    std::memcpy(bytes.data() + at, &word, std::min<std::size_t>(8, size - at));
  }
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

// Region `index` of a file of 64 KiB regions as generation `generation` writes it: each 8-byte
// word says (little-endian) its place in bytes 0-1, the region in bytes 2-4 and the generation
// in bytes 5-7, so that a byte read back tells where it belongs, whatever it was torn from.
// Generation 0 is the zeros of the sparse file.
constexpr std::size_t region_size = 64 * 1024;

std::uint64_t region_word(std::size_t index, std::uint32_t generation, std::size_t word) {
  return generation == 0 ? 0 : std::uint64_t{generation} << 40 | std::uint64_t{index} << 16 | word;
}

std::vector<std::uint8_t> region_bytes(std::size_t index, std::uint32_t generation) {
  std::vector<std::uint8_t> bytes(region_size);
  for (std::size_t word = 0; word < region_size / 8; ++word) {
    const std::uint64_t value = region_word(index, generation, word);
    std::memcpy(bytes.data() + 8 * word, &value, 8);
  }
  return bytes;
}

// The offset of the first byte of `data`, read from region `index`, that is not that byte of a
// generation from `oldest` to `newest`; region_size when there is none. With oldest 0 only the
// place and an upper bound are checked, byte by byte (any mix of generations passes), which is
// cheap for however many generations there were.
std::size_t first_foreign_byte(const std::vector<std::uint8_t>& data, std::size_t index, std::uint32_t oldest,
                               std::uint32_t newest) {
  if (oldest == 0) {
    for (std::size_t i = 0; i < region_size; ++i) {
      const unsigned byte = i % 8;
      const std::uint64_t place = region_word(index, 1, i / 8) >> 8 * byte & 0xff;
      const bool fits = byte < 5 ? data[i] == place || data[i] == 0
                                 : data[i] <= std::min<std::uint64_t>(0xff, newest >> 8 * (byte - 5));
      if (!fits) return i;
    }
    return region_size;
  }
  std::vector<std::vector<std::uint8_t>> generations;
  for (std::uint32_t g = oldest; g <= newest; ++g) generations.push_back(region_bytes(index, g));
  if (std::find(generations.begin(), generations.end(), data) != generations.end()) return region_size;  // the usual case
  for (std::size_t i = 0; i < region_size; ++i) {
    if (std::none_of(generations.begin(), generations.end(), [&](const auto& g) { return g[i] == data[i]; }))
      return i;
  }
  return region_size;
}

// The generation the first word of each 4 KiB page of `data`, read from region `index`, says it
// holds ("?" for a word of another place), for failure messages.
std::string page_generations(const std::vector<std::uint8_t>& data, std::size_t index) {
  constexpr std::size_t page = 4096;
  std::string text;
  for (std::size_t at = 0; at < region_size; at += page) {
    std::uint64_t word = 0;
    std::memcpy(&word, data.data() + at, 8);
    const bool placed = word == 0 || (word & 0xffffffffff) == region_word(index, 1, at / 8) % (1ull << 40);
    text += " " + (placed ? std::to_string(word >> 40) : std::string("?"));
  }
  return text;
}

enum class Mode { dev_fuse, backing_files, io_uring };

class PassthroughIntegrity : public PassthroughMount, public ::testing::WithParamInterface<Mode> {
 protected:
  static void SetUpTestSuite() { ASSERT_EQ(fuse_backend::testing::enable_fuse_io_uring(), ""); }
  PassthroughIntegrity() { io_uring_ = GetParam() == Mode::io_uring; }
  void TearDown() override {
    if (mount_) stop();  // this mode's checks of what the daemon served
  }

  // The fixture's start() and stop() in this test's mode.
  void start(Config config = uncached(), unsigned threads = 2) {
    config.passthrough_backing = GetParam() == Mode::backing_files;
    PassthroughMount::start(std::move(config), threads);
  }
  // Unmounts once the mode's path is seen to have carried the data: a kernel or transport that
  // cannot serve it would otherwise fall back to plain /dev/fuse I/O unnoticed.
  void stop() {
    const std::uint64_t data_requests = requests_[abi::opcode::read] + requests_[abi::opcode::write];
    if (GetParam() == Mode::backing_files) {
      EXPECT_EQ(data_requests, 0u);
    } else {
      EXPECT_GT(data_requests, 0u);
    }
    if (io_uring_) {
      EXPECT_GT(mount_->service().io_uring_requests(), 0u);
    }
    PassthroughMount::stop();
  }
};

INSTANTIATE_TEST_SUITE_P(Modes, PassthroughIntegrity,
                         ::testing::Values(Mode::dev_fuse, Mode::backing_files, Mode::io_uring),
                         [](const ::testing::TestParamInfo<Mode>& param) {
                           return param.param == Mode::dev_fuse   ? "dev_fuse"
                                  : param.param == Mode::io_uring ? "io_uring"
                                                                  : "backing_files";
                         });

TEST_P(PassthroughIntegrity, ConcurrentWritersAndReadersKeepEveryByte) {
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

TEST_P(PassthroughIntegrity, ConcurrentWritersToDisjointRegionsOfOneFile) {
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

// Readers of a file that writers keep rewriting, region by region (one pwrite of a whole aligned
// 64 KiB region each). Neither POSIX nor Linux makes a read atomic with respect to a concurrent
// write: the kernel copies an up-to-date page-cache page (with backing files: the host file's)
// to a reader without the page lock while a writer may be copying into it, so a racing read may
// mix generations, even within a page. What holds is that every byte read is the zero or the
// written byte of some generation, none newer than the last write begun before the read ended,
// none from another place. With backing files (the host's page cache) it is also none older than
// the last write completed before the read began. Through FUSE's own page cache under cache=auto
// Linux does not promise that: a write-through WRITE unlocks its up-to-date pages before the
// daemon has the data, so an invalidation in between (auto_inval_data, seeing the mtime of an
// earlier write) lets a concurrent READ refill them from the host's older bytes, and they stay
// until the next invalidation (seen here about once in five runs, with any daemon). What cache=auto
// does promise is close-to-open: once the writers closed, a new open reads the last generation of
// every region (PageCacheVersion must not keep such a cache). Half the reads go to the region a
// writer began last, so that many race a write; each region has one writer, so its generations
// land in order.
TEST_P(PassthroughIntegrity, ReadersRacingRewritesSeeOnlyWrittenBytes) {
  constexpr std::size_t regions = 48;
  constexpr std::size_t writers = 3;
  constexpr int wanted_reads = 10000;
  start(uncached(), 4);
  {
    UniqueFd fd = open_file(path("regions"), O_WRONLY | O_CREAT);
    ASSERT_EQ(::ftruncate(fd.get(), regions * region_size), 0) << errno_text();
  }
  struct Generations {
    std::atomic<std::uint32_t> begun{0}, completed{0};
  };
  std::vector<Generations> generations(regions);
  std::atomic<std::size_t> latest{0};  // the region whose write began last
  std::atomic<bool> writing{true};
  std::atomic<int> reads{0}, racing_reads{0};
  std::vector<std::thread> readers, writer_threads;
  for (std::size_t w = 0; w < writers; ++w)
    writer_threads.emplace_back([&, w] {
      UniqueFd fd = open_file(path("regions"), O_WRONLY);
      std::mt19937_64 random(w);
      while (writing) {
        const std::size_t index = w + (random() % (regions / writers)) * writers;  // one of its own
        const std::uint32_t generation = generations[index].completed + 1;
        const auto bytes = region_bytes(index, generation);
        generations[index].begun = generation;
        latest = index;
        if (::pwrite(fd.get(), bytes.data(), region_size, static_cast<off_t>(index * region_size)) !=
            static_cast<ssize_t>(region_size)) {
          ADD_FAILURE() << "pwrite: " << errno_text();
          return;
        }
        generations[index].completed = generation;
      }
    });
  for (unsigned r = 0; r < 2; ++r)
    readers.emplace_back([&, r] {
      UniqueFd fd = open_file(path("regions"), O_RDONLY);
      std::mt19937_64 random(100 + r);
      std::vector<std::uint8_t> data(region_size);
      while (reads++ < wanted_reads) {
        const std::size_t index = random() % 2 ? latest.load() : random() % regions;
        const std::uint32_t completed = generations[index].completed;
        const std::uint32_t oldest = GetParam() == Mode::backing_files ? completed : 0u;
        const ssize_t got = ::pread(fd.get(), data.data(), region_size, static_cast<off_t>(index * region_size));
        const std::uint32_t newest = generations[index].begun;
        if (got != static_cast<ssize_t>(region_size)) {
          ADD_FAILURE() << "pread: " << got << " " << errno_text();
          return;
        }
        if (const std::size_t at = first_foreign_byte(data, index, oldest, newest); at != region_size) {
          ADD_FAILURE() << "region " << index << " byte " << at << " is " << int{data[at]}
                        << ", from no generation " << oldest << ".." << newest
                        << "; its pages hold generations" << page_generations(data, index);
          return;
        }
        if (newest != completed) ++racing_reads;
      }
    });
  for (auto& reader : readers) reader.join();
  writing = false;
  for (auto& writer : writer_threads) writer.join();
  EXPECT_GT(racing_reads.load(), 0) << "no read overlapped a write";

  std::vector<std::uint8_t> last;
  for (std::size_t index = 0; index < regions; ++index) {
    const auto bytes = region_bytes(index, generations[index].completed);
    last.insert(last.end(), bytes.begin(), bytes.end());
  }
  const std::uint64_t sum = fnv1a(last.data(), last.size());
  EXPECT_EQ(checksum_of(path("regions"), last.size()), sum) << "a new open after the writers closed";
  stop();
  EXPECT_EQ(checksum_of(host("regions"), last.size()), sum);
}

// Splicing is /dev/fuse's alone.
class PassthroughIntegrityOverDevFuse : public PassthroughMount {};

// A stream of large writes is spliced from the device into the host file (max_write 1016 KiB:
// the largest whose requests fit a pipe of fs.pipe-max-size's default 1 MiB, which a process
// without CAP_SYS_RESOURCE cannot exceed), O_APPEND ones included (copied: splice(2) refuses
// O_APPEND targets); every byte arrives.
TEST_F(PassthroughIntegrityOverDevFuse, SplicedWritesKeepEveryByte) {
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

// Write-behind (on by default): a file written through the mount in large writes, and not
// synced, leaves the host's page cache for its disk within seconds instead of the kernel
// flusher's 30 (the source is on a filesystem with writeback: the ext4 under /tmp here).
TEST_F(PassthroughIntegrityOverDevFuse, AStreamedFileReachesTheHostDiskWithoutFsync) {
  start();
  constexpr std::size_t size = 8 << 20;
  const auto bytes = expected_bytes(6, size);
  {
    UniqueFd fd = open_file(path("stream"), O_WRONLY | O_CREAT | O_TRUNC);
    ASSERT_TRUE(fd.valid()) << errno_text();
    for (std::size_t at = 0; at < size; at += 1 << 20) {
      ASSERT_EQ(::write(fd.get(), bytes.data() + at, 1 << 20), 1 << 20) << errno_text();
    }
  }
  UniqueFd host_fd = open_file(host("stream"), O_RDONLY);
  ASSERT_TRUE(host_fd.valid()) << errno_text();
  ASSERT_TRUE(dirty_pages(host_fd.get())) << "no cachestat(2): " << errno_text();
  EXPECT_TRUE(eventually([&] { return dirty_pages(host_fd.get()) == 0u; }))
      << dirty_pages(host_fd.get()).value_or(0) << " pages still dirty";
  EXPECT_EQ(checksum_of(host("stream"), size), fnv1a(bytes.data(), size));
}

// Closed files are complete on the host once the filesystem is unmounted, with and without
// the kernel's writeback cache (whose dirty pages the close must have flushed).
TEST_P(PassthroughIntegrity, NothingIsLostAfterUnmount) {
  for (bool writeback : {false, true}) {
    if (writeback && GetParam() == Mode::backing_files) continue;  // the kernel refuses the pair
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
