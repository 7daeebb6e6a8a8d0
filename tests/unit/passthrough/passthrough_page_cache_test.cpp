// cache=auto's open decision (PageCacheVersion): an OPEN keeps the kernel's page cache
// (FOPEN_KEEP_CACHE) only while the host file is the version that cache reflects. Each test
// first sets the file's mtime an hour back, so that a later change is told apart by its mtime
// whatever the granularity of the host's clock.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <sys/stat.h>

#include <functional>

#include <fuse_backend/abi/kernel.hpp>

#include "passthrough_fixture.hpp"

namespace fuse_backend::passthrough::testing {
namespace {

class PassthroughPageCache : public PassthroughTest {
 protected:
  void SetUp() override {
    PassthroughTest::SetUp();
    write_file(source_ / "f", "original");
    age(source_ / "f");
    make();
    file_ = lookup(api::root_inode, "f");
  }

  static void age(const fs::path& path) {
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    const struct timespec times[2] = {st.st_atim, {st.st_mtim.tv_sec - 3600, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  }

  // A host process overwrites the file in place: same size, new contents.
  void change_on_host() {
    const int fd = ::open((source_ / "f").c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, "CHANGED!", 8, 0), 8);
    ::close(fd);
  }

  // Opens the file, returns whether the reply keeps the cache; the handle stays in handle_.
  bool open_keeps_cache(std::uint32_t flags = O_RDONLY) {
    auto opened = fs_->open(ctx_, file_, flags, 0);
    EXPECT_TRUE(opened) << std::make_error_code(opened.error()).message();
    if (!opened) return false;
    handle_ = opened->handle;
    return (opened->open_flags & abi::fopen::keep_cache) != 0;
  }
  // What the kernel sends at close(2): FLUSH, then RELEASE.
  void close_handle() {
    EXPECT_TRUE(fs_->flush(ctx_, file_, handle_, 0));
    EXPECT_TRUE(fs_->release(ctx_, file_, handle_, 0, 0, 0));
  }
  void write_through(std::string data, std::uint64_t offset) {
    MemoryReader in(data);
    auto written = fs_->write(ctx_, file_, handle_, in, static_cast<std::uint32_t>(data.size()), offset, 0, 0);
    ASSERT_TRUE(written);
    EXPECT_EQ(*written, data.size());
  }

  api::InodeId file_{};
  api::HandleId handle_{};
};

TEST_F(PassthroughPageCache, FirstOpenDropsAndAReopenOfAnUnchangedFileKeeps) {
  EXPECT_FALSE(open_keeps_cache());
  close_handle();
  EXPECT_TRUE(open_keeps_cache());
  const api::HandleId first = handle_;
  EXPECT_TRUE(open_keeps_cache(O_RDWR));  // a second open while the first is still open
  close_handle();
  handle_ = first;
  close_handle();
}

TEST_F(PassthroughPageCache, AChangeOnTheHostDropsTheCacheAtTheNextOpen) {
  EXPECT_FALSE(open_keeps_cache());
  close_handle();
  change_on_host();
  EXPECT_FALSE(open_keeps_cache());
  close_handle();
  // That open recorded the new version.
  EXPECT_TRUE(open_keeps_cache());
  close_handle();
}

TEST_F(PassthroughPageCache, OurOwnWritesKeepTheCacheOnceFlushed) {
  EXPECT_FALSE(open_keeps_cache(O_RDWR));
  write_through("rewritten, and longer", 0);
  close_handle();
  EXPECT_TRUE(open_keeps_cache(O_RDWR));
  write_through("again", 4);
  close_handle();
  EXPECT_TRUE(open_keeps_cache());
  close_handle();
  EXPECT_EQ(read_file(source_ / "f"), "rewragain, and longer");
}

// A READ while our WRITEs are under way (before or between them) may have refilled a page the
// kernel had already written to from the host's older bytes: those WRITEs are not taken for ours.
TEST_F(PassthroughPageCache, WritesMixedWithReadsAreNotTakenForOurs) {
  for (const bool read_first : {true, false}) {
    SCOPED_TRACE(read_first ? "read, then write" : "write, then read");
    EXPECT_EQ(open_keeps_cache(O_RDWR), !read_first);  // the first open ever drops, the second keeps
    MemoryWriter out(8);
    if (!read_first) write_through("written", 0);
    ASSERT_TRUE(fs_->read(ctx_, file_, handle_, out, 8, 0, 0));
    if (read_first) write_through("written", 0);
    close_handle();
    EXPECT_FALSE(open_keeps_cache());
    close_handle();
  }
  // Reads alone change nothing.
  EXPECT_TRUE(open_keeps_cache());
  MemoryWriter out(8);
  ASSERT_TRUE(fs_->read(ctx_, file_, handle_, out, 8, 0, 0));
  close_handle();
  EXPECT_TRUE(open_keeps_cache());
  close_handle();
}

TEST_F(PassthroughPageCache, OtherChangesThroughTheMountDropTheCacheAtTheNextOpen) {
  write_file(source_ / "g", "source of a copy");
  const api::InodeId source = lookup(api::root_inode, "g");
  auto copy_from = fs_->open(ctx_, source, O_RDONLY, 0);
  ASSERT_TRUE(copy_from);
  api::HandleId read_only{};
  const std::function<void()> changes[] = {
      [&] {
        api::SetattrIn shrink{};
        shrink.valid = abi::fattr::size;
        shrink.attr.st_size = 4;
        ASSERT_TRUE(fs_->setattr(ctx_, file_, shrink, handle_));
      },
      [&] { ASSERT_TRUE(fs_->fallocate(ctx_, file_, handle_, 0, 0, 4096)); },
      [&] {
        ASSERT_TRUE(fs_->copy_file_range(ctx_, source, copy_from->handle, 0, file_, handle_, 0, 6, 0));
      },
      // A WRITE that fails: this handle cannot write.
      [&] {
        MemoryReader in("x");
        EXPECT_FALSE(fs_->write(ctx_, file_, read_only, in, 1, 0, 0, 0));
      },
  };
  for (const auto& change : changes) {
    EXPECT_FALSE(open_keeps_cache(O_RDWR));  // records the version
    auto opened = fs_->open(ctx_, file_, O_RDONLY, 0);
    ASSERT_TRUE(opened);
    read_only = opened->handle;
    change();
    EXPECT_TRUE(fs_->release(ctx_, file_, read_only, 0, 0, 0));
    close_handle();
  }
  EXPECT_FALSE(open_keeps_cache());
  close_handle();
}

TEST_F(PassthroughPageCache, WritesUnderTheWritebackCacheAreNotTakenForOurs) {
  Config config;
  config.writeback = true;
  make(config);
  file_ = lookup(api::root_inode, "f");
  EXPECT_FALSE(open_keeps_cache(O_RDWR));
  close_handle();
  EXPECT_TRUE(open_keeps_cache(O_RDWR));  // unchanged: kept, as without writeback
  write_through("x", 0);
  close_handle();
  EXPECT_FALSE(open_keeps_cache());
  close_handle();
}

TEST_F(PassthroughPageCache, AHostChangeBeforeOurWriteIsNotTakenForOurs) {
  EXPECT_FALSE(open_keeps_cache(O_RDWR));
  change_on_host();
  write_through("x", 100);
  close_handle();
  EXPECT_FALSE(open_keeps_cache());
  close_handle();
  EXPECT_EQ(read_file(source_ / "f").substr(0, 8), "CHANGED!");
}

TEST_F(PassthroughPageCache, MetadataChangedThroughTheMountDropsTheCache) {
  // A chmod moves the ctime; only writes are recognised as our own.
  EXPECT_FALSE(open_keeps_cache());
  close_handle();
  // The ctime cannot be set back like the mtime: let the clock that stamps it tick first.
  struct timespec tick {};
  ASSERT_EQ(::clock_getres(CLOCK_REALTIME_COARSE, &tick), 0);
  tick.tv_nsec *= 2;
  ::nanosleep(&tick, nullptr);
  api::SetattrIn chmod{};
  chmod.valid = abi::fattr::mode;
  chmod.attr.st_mode = 0600;
  ASSERT_TRUE(fs_->setattr(ctx_, file_, chmod, std::nullopt));
  EXPECT_FALSE(open_keeps_cache());
  close_handle();
}

TEST_F(PassthroughPageCache, ACreatedFileKeepsItsCacheAtTheNextOpen) {
  auto created = fs_->create(ctx_, api::root_inode, "new", S_IFREG | 0644, O_RDWR | O_CREAT);
  ASSERT_TRUE(created);
  EXPECT_EQ(created->open.open_flags & abi::fopen::keep_cache, 0u);
  file_ = created->entry.inode;
  handle_ = created->open.handle;
  write_through("fresh", 0);
  close_handle();
  EXPECT_TRUE(open_keeps_cache());
  close_handle();
}

TEST_F(PassthroughPageCache, OnlyCacheAutoDecides) {
  for (const CachePolicy policy : {CachePolicy::never, CachePolicy::metadata, CachePolicy::always}) {
    Config config;
    config.cache_policy = policy;
    make(config);
    file_ = lookup(api::root_inode, "f");
    const bool keeps = policy == CachePolicy::always;
    EXPECT_EQ(open_keeps_cache(), keeps);
    close_handle();
    change_on_host();
    EXPECT_EQ(open_keeps_cache(), keeps);
    close_handle();
  }
}

}  // namespace
}  // namespace fuse_backend::passthrough::testing
