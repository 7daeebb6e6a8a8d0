// PassthroughFs's Config modes through a real mount: FUSE passthrough backing files (the
// daemon must see no READ/WRITE), writeback cache, cache=never with mmap, killpriv_v2 and
// no_open. The fixture counts the requests the daemon really receives. Needs root,
// /dev/fuse and (for backing files) Linux >= 6.9.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <sys/mman.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "passthrough_mount_fixture.hpp"

namespace fuse_backend::passthrough::testing {
namespace {

class PassthroughModes : public PassthroughMount {
 protected:
  // cache=auto (PageCacheVersion) with attribute timeouts of a minute: the kernel itself would
  // not look at the host file again within a test, so what it reads follows the daemon's open
  // decisions.
  static Config auto_cache() {
    Config config = uncached();
    config.cache_policy = CachePolicy::automatic;
    config.entry_timeout = config.attr_timeout = std::chrono::seconds(60);
    return config;
  }
  // fcntl(F_SETFL) on the mount sets and clears O_APPEND as on a native file: the kernel
  // reports it with each WRITE, and where the writes land follows it; a file that no longer
  // appends takes copy_file_range (which refuses an O_APPEND target).
  void expect_append_follows_fcntl() {
    write_file(host("log"), "0123456789");
    write_file(host("cd"), "cd");
    {
      UniqueFd fd = open_file(path("log"), O_WRONLY | O_APPEND);
      ASSERT_TRUE(fd.valid()) << errno_text();
      ASSERT_EQ(::write(fd.get(), "ab", 2), 2);
      ASSERT_EQ(::fcntl(fd.get(), F_SETFL, 0), 0) << errno_text();
      UniqueFd source = open_file(path("cd"), O_RDONLY);
      loff_t from = 0, to = 4;
      ASSERT_EQ(::copy_file_range(source.get(), &from, fd.get(), &to, 2, 0), 2) << errno_text();
      ASSERT_EQ(::pwrite(fd.get(), "XY", 2, 2), 2) << errno_text();
      ASSERT_EQ(::fcntl(fd.get(), F_SETFL, O_APPEND), 0) << errno_text();
      ASSERT_EQ(::pwrite(fd.get(), "!", 1, 0), 1);  // Linux appends whatever the offset
    }
    EXPECT_EQ(read_file(host("log")), "01XYcd6789ab!");
    {
      UniqueFd fd = open_file(path("log"), O_WRONLY);
      ASSERT_TRUE(fd.valid()) << errno_text();
      ASSERT_EQ(::fcntl(fd.get(), F_SETFL, O_APPEND), 0) << errno_text();
      ASSERT_EQ(::write(fd.get(), "Z", 1), 1);
    }
    EXPECT_EQ(read_file(host("log")), "01XYcd6789ab!Z");
  }
};

std::string big_text(std::size_t size) {
  std::string text(size, '\0');
  for (std::size_t i = 0; i < size; ++i) text[i] = static_cast<char>('A' + (i * 7) % 26);
  return text;
}

TEST_F(PassthroughModes, BackingFilesBypassTheDaemon) {
  Config config = uncached();
  config.passthrough_backing = true;
  start(config);
  const std::string data = big_text(3 << 20);
  write_file(path("f"), data);
  EXPECT_EQ(read_file(path("f")), data);
  {
    UniqueFd fd = open_file(path("f"), O_RDWR);
    void* map = ::mmap(nullptr, data.size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    ASSERT_NE(map, MAP_FAILED) << errno_text();
    EXPECT_EQ(std::string_view(static_cast<const char*>(map), 26), data.substr(0, 26));
    static_cast<char*>(map)[0] = 'z';
    ASSERT_EQ(::msync(map, data.size(), MS_SYNC), 0);
    ::munmap(map, data.size());
  }
  EXPECT_EQ(read_file(host("f"))[0], 'z');
  EXPECT_GE(requests_[abi::opcode::open] + requests_[abi::opcode::create], 3u);
  EXPECT_EQ(requests_[abi::opcode::read], 0u);
  EXPECT_EQ(requests_[abi::opcode::write], 0u);
  // Every backing file was handed back at RELEASE: the daemon holds no handle.
  for (int i = 0; i < 500 && fs_->handle_count() != 0; ++i) ::usleep(10'000);  // RELEASE is asynchronous
  EXPECT_EQ(fs_->handle_count(), 0u);
}

TEST_F(PassthroughModes, WithoutBackingFilesTheDaemonServesData) {
  start(uncached());
  write_file(path("f"), big_text(1 << 20));
  EXPECT_EQ(read_file(path("f")).size(), 1u << 20);
  EXPECT_GT(requests_[abi::opcode::write], 0u);
  EXPECT_GT(requests_[abi::opcode::read], 0u);
}

TEST_F(PassthroughModes, WritebackCacheWithWriteOnlyOpens) {
  Config config = uncached();
  config.writeback = true;
  start(config);
  write_file(host("f"), "0123456789");
  {
    UniqueFd fd = open_file(path("f"), O_WRONLY);
    ASSERT_TRUE(fd.valid());
    // Partial-page writes: the kernel reads the page through the O_WRONLY handle.
    ASSERT_EQ(::pwrite(fd.get(), "ab", 2, 3), 2);
    ASSERT_EQ(::pwrite(fd.get(), "Z", 1, 9), 1);
  }
  EXPECT_EQ(read_file(host("f")), "012ab5678Z");
  {
    UniqueFd fd = open_file(path("f"), O_WRONLY | O_APPEND);
    ASSERT_EQ(::write(fd.get(), "++", 2), 2);
  }
  EXPECT_EQ(read_file(host("f")), "012ab5678Z++");
}

TEST_F(PassthroughModes, AppendFollowsFcntl) {
  start(auto_cache());
  expect_append_follows_fcntl();
}

TEST_F(PassthroughModes, AppendFollowsFcntlUnderTheWritebackCache) {
  Config config = auto_cache();
  config.writeback = true;
  start(config);
  expect_append_follows_fcntl();
}

TEST_F(PassthroughModes, AppendFollowsFcntlWithoutOpen) {
  Config config = uncached();
  config.no_open = true;
  start(config);
  expect_append_follows_fcntl();
}

TEST_F(PassthroughModes, AutoCacheKeepsAnUnchangedFileAndDropsAChangedOne) {
  start(auto_cache());
  const std::string data = big_text(256 << 10);
  write_file(host("f"), data);
  // An mtime an hour back, so that the host's change below moves it whatever its clock's grain.
  const struct timespec hour_ago[2] = {{0, UTIME_OMIT}, {::time(nullptr) - 3600, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, host("f").c_str(), hour_ago, 0), 0);
  EXPECT_EQ(read_file(path("f")), data);
  const std::uint64_t reads = requests_[abi::opcode::read];
  EXPECT_GT(reads, 0u);
  // Reopened unchanged: served from the kernel's page cache.
  EXPECT_EQ(read_file(path("f")), data);
  EXPECT_EQ(requests_[abi::opcode::read], reads);
  // Changed on the host, same size: the next open drops the cache.
  {
    UniqueFd fd = open_file(host("f"), O_WRONLY);
    ASSERT_EQ(::pwrite(fd.get(), "changed", 7, 0), 7);
  }
  EXPECT_EQ(read_file(path("f")).substr(0, 8), "changed" + data.substr(7, 1));
  EXPECT_GT(requests_[abi::opcode::read], reads);
}

TEST_F(PassthroughModes, AutoCacheKeepsWhatTheMountWrote) {
  start(auto_cache());
  const std::size_t size = 256 << 10;
  write_file(path("f"), big_text(size));
  // Reopened: the pages the writes left in the kernel's cache are still there (mincore sees the
  // page cache of a file mapping before anything is faulted in).
  UniqueFd fd = open_file(path("f"), O_RDONLY);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd.get(), 0);
  ASSERT_NE(map, MAP_FAILED) << errno_text();
  std::vector<unsigned char> resident(size / static_cast<std::size_t>(::getpagesize()));
  ASSERT_EQ(::mincore(map, size, resident.data()), 0) << errno_text();
  ::munmap(map, size);
  EXPECT_EQ(std::count_if(resident.begin(), resident.end(), [](unsigned char r) { return (r & 1) != 0; }),
            static_cast<std::ptrdiff_t>(resident.size()));
}

TEST_F(PassthroughModes, CacheNeverStillAllowsMmap) {
  Config config = uncached();
  config.cache_policy = CachePolicy::never;
  start(config);
  write_file(path("f"), "mapped contents");
  UniqueFd fd = open_file(path("f"), O_RDONLY);
  void* map = ::mmap(nullptr, 15, PROT_READ, MAP_SHARED, fd.get(), 0);
  ASSERT_NE(map, MAP_FAILED) << errno_text();
  EXPECT_EQ(std::string_view(static_cast<const char*>(map), 15), "mapped contents");
  ::munmap(map, 15);
  // Changes behind the mount's back are seen at once (no page cache).
  write_file(host("f"), "changed on host");
  EXPECT_EQ(read_file(path("f")), "changed on host");
}

TEST_F(PassthroughModes, KillprivV2ClearsSetuidOnUnprivilegedWrite) {
  ::chmod(source_.str().c_str(), 0755);
  Config config = uncached();
  config.killpriv_v2 = true;
  start(config);
  write_file(host("suid"), "program");
  ::chown(host("suid").c_str(), 4242, 4242);
  ::chmod(host("suid").c_str(), 04777);
  const std::string file = path("suid");
  // Root (with CAP_FSETID) keeps the bit.
  {
    UniqueFd fd = open_file(file, O_WRONLY);
    ASSERT_EQ(::pwrite(fd.get(), "P", 1, 0), 1);
  }
  EXPECT_EQ(std::filesystem::status(host("suid")).permissions() & std::filesystem::perms::set_uid,
            std::filesystem::perms::set_uid);
  EXPECT_EQ(as_user(5000, 5000, [&] {
              const int fd = ::open(file.c_str(), O_WRONLY);
              return fd >= 0 && ::pwrite(fd, "p", 1, 0) == 1 ? 0 : 1;
            }),
            0);
  struct stat st {};
  ASSERT_EQ(::stat(host("suid").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0777u);
}

TEST_F(PassthroughModes, NoOpenServesFilesWithoutOpenRequests) {
  Config config = uncached();
  config.no_open = true;
  config.no_opendir = true;
  start(config);
  write_file(host("f"), "no open needed");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(read_file(path("f")), "no open needed");
  write_file(path("f"), "written");
  EXPECT_EQ(read_file(host("f")), "written");
  EXPECT_TRUE(std::filesystem::exists(path("f")));
  int entries = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(path())) ++entries;
  EXPECT_EQ(entries, 1);
  // The kernel stops sending OPEN after the first ENOSYS.
  EXPECT_LE(requests_[abi::opcode::open], 1u);
  EXPECT_LE(requests_[abi::opcode::opendir], 1u);
  EXPECT_EQ(fs_->handle_count(), 0u);
}

}  // namespace
}  // namespace fuse_backend::passthrough::testing
