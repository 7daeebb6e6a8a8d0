// Test doubles and a fixture for PassthroughFs unit tests: memory-backed ZeroCopyReader/Writer,
// a DirSink collecting entries up to a byte budget, a BackingFiles that records registrations,
// and a fixture with a temporary source directory next to an "outside" directory of sentinels
// that no request may touch.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <fuse_backend/passthrough/passthrough_fs.hpp>

namespace fuse_backend::passthrough::testing {

namespace fs = std::filesystem;

// Request data from memory (WRITE payloads).
class MemoryReader final : public api::ZeroCopyReader {
 public:
  explicit MemoryReader(std::string data) : data_(std::move(data)) {}
  std::size_t remaining() const noexcept override { return data_.size() - consumed_; }
  Result<std::size_t> read_to(int fd, std::size_t count, std::uint64_t offset,
                              api::WriteAt at) noexcept override {
    count = std::min(count, remaining());
    const iovec data{data_.data() + consumed_, count};
    const ssize_t n = ::pwritev2(fd, &data, 1, static_cast<off_t>(offset), api::pwritev2_flags(at));
    if (n < 0) return fail_errno();
    consumed_ += static_cast<std::size_t>(n);
    return static_cast<std::size_t>(n);
  }
  std::size_t read(std::span<std::byte> out) noexcept override {
    const std::size_t n = std::min(out.size(), remaining());
    std::memcpy(out.data(), data_.data() + consumed_, n);
    consumed_ += n;
    return n;
  }

 private:
  std::string data_;
  std::size_t consumed_ = 0;
};

// Reply room in memory (READ payloads).
class MemoryWriter final : public api::ZeroCopyWriter {
 public:
  explicit MemoryWriter(std::size_t capacity) : capacity_(capacity) {}
  std::size_t available() const noexcept override { return capacity_ - data_.size(); }
  Result<std::size_t> write_from(int fd, std::size_t count, std::uint64_t offset) noexcept override {
    count = std::min(count, available());
    const std::size_t old = data_.size();
    data_.resize(old + count);
    const ssize_t n = ::pread(fd, data_.data() + old, count, static_cast<off_t>(offset));
    if (n < 0) {
      data_.resize(old);
      return fail_errno();
    }
    data_.resize(old + static_cast<std::size_t>(n));
    return static_cast<std::size_t>(n);
  }
  std::size_t write(std::span<const std::byte> in) noexcept override {
    const std::size_t n = std::min(in.size(), available());
    data_.append(reinterpret_cast<const char*>(in.data()), n);
    return n;
  }
  const std::string& data() const { return data_; }

 private:
  std::size_t capacity_;
  std::string data_;
};

// Collects directory entries up to `capacity` bytes, sized like the kernel's records.
class VectorSink final : public api::DirSink {
 public:
  struct Item {
    std::string name;
    std::uint64_t ino = 0;
    std::uint64_t offset = 0;
    std::uint32_t type = 0;
    std::optional<api::Entry> attributes;
  };

  explicit VectorSink(std::size_t capacity) : capacity_(capacity) {}
  bool fits(std::string_view name) const noexcept override {
    return used_ + record(152, name) <= capacity_;
  }
  bool add(const api::DirEntry& entry) noexcept override { return push(entry, std::nullopt, 24); }
  bool add(const api::DirEntry& entry, const api::Entry& attributes) noexcept override {
    return push(entry, attributes, 152);
  }
  std::size_t size() const noexcept override { return used_; }

  std::vector<Item> items;

 private:
  static std::size_t record(std::size_t fixed, std::string_view name) {
    return (fixed + name.size() + 7) & ~std::size_t{7};
  }
  bool push(const api::DirEntry& entry, std::optional<api::Entry> attributes, std::size_t fixed) {
    const std::size_t size = record(fixed, entry.name);
    if (used_ + size > capacity_) return false;
    used_ += size;
    items.push_back({std::string(entry.name), entry.ino, entry.offset, entry.type, attributes});
    return true;
  }
  std::size_t capacity_;
  std::size_t used_ = 0;
};

// Records backing-file registrations; can be told to fail.
class RecordingBackingFiles final : public api::BackingFiles {
 public:
  Result<std::int32_t> open(int fd) noexcept override {
    std::lock_guard lock(mutex);
    if (failure) return fail(*failure);
    struct stat st {};
    ::fstat(fd, &st);
    opened.push_back(st.st_ino);
    return next_id++;
  }
  Result<void> close(std::int32_t id) noexcept override {
    std::lock_guard lock(mutex);
    closed.push_back(id);
    return {};
  }

  std::mutex mutex;
  std::optional<std::errc> failure;
  std::vector<ino_t> opened;
  std::vector<std::int32_t> closed;
  std::int32_t next_id = 7;
};

inline std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
inline void write_file(const fs::path& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

// A temporary tree: base/src is served, base/outside holds sentinels next to it.
class PassthroughTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // PassthroughFs::create sets the process umask to 0 (the kernel applied the caller's
    // already); do it first so every test builds its tree the same way, whether it runs alone
    // (as under ctest) or after others in one process.
    ::umask(0);
    char pattern[] = "/tmp/passthrough-unit-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    base_ = pattern;
    source_ = base_ / "src";
    outside_ = base_ / "outside";
    fs::create_directories(source_);
    fs::create_directories(outside_);
    write_file(outside_ / "sentinel", "untouched");
    fs::permissions(source_, fs::perms::all);
    ASSERT_EQ(::stat((outside_ / "sentinel").c_str(), &sentinel_), 0);
  }
  void TearDown() override {
    fs_.reset();
    std::error_code ignored;
    fs::remove_all(base_, ignored);
  }

  // Builds the filesystem (after the test has shaped the tree) and runs INIT with `offered`.
  PassthroughFs& make(Config config = {}, std::uint64_t offered = ~std::uint64_t{0}) {
    config.source = source_.string();
    auto created = PassthroughFs::create(std::move(config));
    EXPECT_TRUE(created) << std::make_error_code(created.error()).message();
    fs_ = std::move(*created);
    EXPECT_TRUE(fs_->init(offered));
    return *fs_;
  }

  api::InodeId lookup(api::InodeId parent, std::string_view name) {
    auto entry = fs_->lookup(ctx_, parent, name);
    EXPECT_TRUE(entry) << name << ": " << std::make_error_code(entry.error()).message();
    return entry ? entry->inode : api::InodeId{};
  }

  // The sentinels outside the source are as SetUp left them (and nothing was added).
  void expect_outside_untouched() {
    EXPECT_EQ(read_file(outside_ / "sentinel"), "untouched");
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(outside_)) names.push_back(entry.path().filename());
    EXPECT_EQ(names, std::vector<std::string>{"sentinel"});
    struct stat st {};
    ASSERT_EQ(::stat((outside_ / "sentinel").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode, sentinel_.st_mode);
    EXPECT_EQ(st.st_uid, sentinel_.st_uid);
    EXPECT_EQ(st.st_nlink, 1u);
    EXPECT_EQ(st.st_mtim.tv_sec, sentinel_.st_mtim.tv_sec);
    EXPECT_EQ(st.st_mtim.tv_nsec, sentinel_.st_mtim.tv_nsec);
    EXPECT_EQ(::getxattr((outside_ / "sentinel").c_str(), "user.evil", nullptr, 0), -1);
  }

  static api::Context caller(std::uint32_t uid, std::uint32_t gid) {
    api::Context ctx;
    ctx.uid = uid;
    ctx.gid = gid;
    return ctx;
  }

  fs::path base_, source_, outside_;
  struct stat sentinel_ {};
  api::Context ctx_;
  std::unique_ptr<PassthroughFs> fs_;
};

inline std::errc errc_of(int e) { return static_cast<std::errc>(e); }

}  // namespace fuse_backend::passthrough::testing
