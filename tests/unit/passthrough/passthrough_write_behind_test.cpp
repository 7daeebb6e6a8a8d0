// Write-behind (WriteBehind): which chunks a write hands over, and that PassthroughFs starts
// the host's writeback of a file growing in large writes, without fsync, long before the
// kernel's flusher would (30 s). Needs a source directory on a filesystem with writeback (the
// ext4 under /tmp here) and cachestat(2) (Linux >= 6.5).
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <dirent.h>
#include <fcntl.h>

#include <fstream>
#include <string>

#include <fuse_backend/passthrough/write_behind.hpp>
#include <support/eventually.hpp>
#include <support/page_cache_state.hpp>
#include <support/thread_names.hpp>

#include "passthrough_fixture.hpp"

namespace fuse_backend::passthrough::testing {
namespace {

using fuse_backend::testing::dirty_pages;
using fuse_backend::testing::eventually;
using fuse_backend::testing::threads_named;

constexpr std::uint64_t MiB = WriteBehind::chunk;

TEST(WriteBehindChunks, AWriteThatGrowsTheFileHandsOverTheChunksItCompleted) {
  // 1 MiB appends, aligned.
  EXPECT_EQ(WriteBehind::completed_chunks({0, MiB}, 0), (FileRange{0, MiB}));
  EXPECT_EQ(WriteBehind::completed_chunks({3 * MiB, 4 * MiB}, 3 * MiB), (FileRange{3 * MiB, 4 * MiB}));
  // The 128 KiB append that fills a chunk hands over all of it, the earlier ones nothing.
  EXPECT_EQ(WriteBehind::completed_chunks({MiB - 128 * 1024, MiB}, MiB - 128 * 1024), (FileRange{0, MiB}));
  EXPECT_EQ(WriteBehind::completed_chunks({0, 128 * 1024}, 0), std::nullopt);
  // Unaligned: the chunk it finished, not the one it started.
  EXPECT_EQ(WriteBehind::completed_chunks({MiB / 2, 3 * MiB / 2}, MiB / 2), (FileRange{0, MiB}));
  // Growing a file only partly still counts.
  EXPECT_EQ(WriteBehind::completed_chunks({MiB, 3 * MiB}, 2 * MiB), (FileRange{MiB, 3 * MiB}));
}

TEST(WriteBehindChunks, RewritesInsideTheFileHandOverNothing) {
  EXPECT_EQ(WriteBehind::completed_chunks({0, MiB}, MiB), std::nullopt);
  EXPECT_EQ(WriteBehind::completed_chunks({MiB, 2 * MiB}, 8 * MiB), std::nullopt);
}

class PassthroughWriteBehind : public PassthroughTest {
 protected:
  // Creates `name` and writes `chunks` MiB to it, a MiB per WRITE, each at the end of the
  // last; the file stays open.
  api::HandleId write_chunks(std::string_view name, int chunks) {
    auto created = fs_->create(ctx_, api::root_inode, name, S_IFREG | 0644, O_WRONLY | O_CREAT);
    EXPECT_TRUE(created);
    if (!created) return {};
    inode_ = created->entry.inode;
    for (int i = 0; i < chunks; ++i) {
      MemoryReader in(std::string(MiB, static_cast<char>('a' + i)));
      const auto offset = static_cast<std::uint64_t>(i) * MiB;
      auto written = fs_->write(ctx_, inode_, created->open.handle, in, MiB, offset, 0, O_WRONLY);
      EXPECT_TRUE(written && *written == MiB);
    }
    return created->open.handle;
  }

  // Pages of the host file dirty or being written.
  std::optional<std::uint64_t> host_dirty(std::string_view name) {
    detail::UniqueFd fd(::open((source_ / std::string(name)).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return std::nullopt;
    return dirty_pages(fd.get());
  }

  // The fds of this process open on the host file `name` for I/O (not the inode's O_PATH one).
  int open_fds_on(std::string_view name) {
    const std::string target = (source_ / std::string(name)).string();
    int count = 0;
    DIR* dir = ::opendir("/proc/self/fd");
    while (dirent* entry = ::readdir(dir)) {
      std::string link(4096, '\0');
      const std::string fd_path = std::string("/proc/self/fd/") + entry->d_name;
      const ssize_t n = ::readlink(fd_path.c_str(), link.data(), link.size());
      if (n > 0 && link.substr(0, static_cast<std::size_t>(n)) == target && !path_only(entry->d_name)) ++count;
    }
    ::closedir(dir);
    return count;
  }

  static bool path_only(const char* fd) {
    std::ifstream info(std::string("/proc/self/fdinfo/") + fd);
    std::string key;
    unsigned long flags = 0;
    while (info >> key) {
      if (key == "flags:" && info >> std::oct >> flags) break;
    }
    return (flags & O_PATH) != 0;
  }

  api::InodeId inode_{};
};

TEST_F(PassthroughWriteBehind, AFileGrowingInLargeWritesIsWrittenBackWithoutFsync) {
  make();
  ASSERT_TRUE(host_dirty("."));  // cachestat(2) is there
  write_chunks("stream", 8);
  EXPECT_TRUE(eventually([&] { return host_dirty("stream") == 0u; }))
      << host_dirty("stream").value_or(0) << " pages still dirty";
}

TEST_F(PassthroughWriteBehind, AppendsAreWrittenBackWhereTheyLanded) {
  make();
  // O_APPEND writes land at the end whatever offset they carry: the chunks to hand over are
  // found from the size before each, not from the offset.
  auto created = fs_->create(ctx_, api::root_inode, "log", S_IFREG | 0644, O_WRONLY | O_CREAT | O_APPEND);
  ASSERT_TRUE(created);
  for (int i = 0; i < 8; ++i) {
    MemoryReader in(std::string(MiB, 'x'));
    auto written = fs_->write(ctx_, created->entry.inode, created->open.handle, in, MiB, 0, 0,
                              O_WRONLY | O_APPEND);
    ASSERT_TRUE(written && *written == MiB);
  }
  EXPECT_TRUE(eventually([&] { return host_dirty("log") == 0u; }))
      << host_dirty("log").value_or(0) << " pages still dirty";
}

TEST_F(PassthroughWriteBehind, ReleaseClosesTheFileAtOnceWhateverIsStillQueued) {
  make();
  for (int round = 0; round < 8; ++round) {
    const std::string name = "f" + std::to_string(round);
    const auto handle = write_chunks(name, 16);
    ASSERT_TRUE(fs_->release(ctx_, inode_, handle, O_WRONLY, 0, 0));
    EXPECT_EQ(open_fds_on(name), 0) << "round " << round;
  }
}

// Off (or moot), the daemon starts no writeback thread, so nothing but the kernel writes the
// pages back (checked by the thread rather than by pages staying dirty, which a sync anywhere
// on this machine, e.g. another test's, would end).
TEST_F(PassthroughWriteBehind, OffStartsNoThread) {
  make();
  EXPECT_EQ(threads_named("fuse-wb-0"), 1);
  fs_.reset();
  EXPECT_EQ(threads_named("fuse-wb-0"), 0);
  Config config;
  config.write_behind = false;
  make(config);
  write_chunks("stream", 8);
  EXPECT_EQ(threads_named("fuse-wb-0"), 0);
  // Nor under seal_size, where no write may grow a file.
  fs_.reset();
  Config sealed;
  sealed.seal_size = true;
  make(sealed);
  EXPECT_EQ(threads_named("fuse-wb-0"), 0);
}

}  // namespace
}  // namespace fuse_backend::passthrough::testing
