// Guest memory: region table checks, translation edge cases, snapshots, fd mappings, dirty log.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include <fuse_backend/transport/virtio/dirty_log.hpp>
#include <fuse_backend/transport/virtio/guest_memory.hpp>

namespace fuse_backend::transport::virtio {
namespace {

GuestRegion region_at(std::uint64_t gpa, std::vector<std::byte>& storage,
                      std::optional<std::uint64_t> user = std::nullopt) {
  GuestRegion region;
  region.guest_addr = gpa;
  region.size = storage.size();
  region.host = storage.data();
  region.user_addr = user;
  return region;
}

class OneRegion : public ::testing::Test {
 protected:
  std::vector<std::byte> storage_ = std::vector<std::byte>(0x1000);
  GuestMemory memory_ = *GuestMemory::create({region_at(0x1000, storage_, 0x7000)});
};

TEST_F(OneRegion, TranslatesWholeRegion) {
  auto span = memory_.translate(0x1000, 0x1000);
  ASSERT_TRUE(span);
  EXPECT_EQ(span->data(), storage_.data());
  EXPECT_EQ(span->size(), 0x1000u);
}

TEST_F(OneRegion, TranslatesLastByte) {
  auto span = memory_.translate(0x1fff, 1);
  ASSERT_TRUE(span);
  EXPECT_EQ(span->data(), storage_.data() + 0xfff);
}

TEST_F(OneRegion, RejectsRangesReachingOutside) {
  EXPECT_EQ(memory_.translate(0x1fff, 2).error(), std::errc::bad_address);
  EXPECT_EQ(memory_.translate(0x2000, 1).error(), std::errc::bad_address);
  EXPECT_EQ(memory_.translate(0x0fff, 1).error(), std::errc::bad_address);
  EXPECT_EQ(memory_.translate(0x0fff, 2).error(), std::errc::bad_address);
  EXPECT_EQ(memory_.translate(0x1000, 0x1001).error(), std::errc::bad_address);
}

TEST_F(OneRegion, RejectsLengthsThatWouldWrap) {
  EXPECT_FALSE(memory_.translate(0x1800, UINT64_MAX));
  EXPECT_FALSE(memory_.translate(0x1800, UINT64_MAX - 0x7ff));
  EXPECT_FALSE(memory_.translate_user(0x7800, UINT64_MAX));
}

TEST_F(OneRegion, ZeroLengthNeedsAMappedAddress) {
  EXPECT_TRUE(memory_.translate(0x1fff, 0));
  EXPECT_FALSE(memory_.translate(0x2000, 0));
  EXPECT_FALSE(memory_.translate(0, 0));
}

TEST_F(OneRegion, TranslatesUserAddresses) {
  auto span = memory_.translate_user(0x7010, 0x10);
  ASSERT_TRUE(span);
  EXPECT_EQ(span->data(), storage_.data() + 0x10);
  EXPECT_FALSE(memory_.translate_user(0x7ff0, 0x11));
  EXPECT_FALSE(memory_.translate_user(0x6fff, 1));
  EXPECT_EQ(*memory_.user_to_guest(0x7fff), 0x1fffu);
  EXPECT_FALSE(memory_.user_to_guest(0x8000));
}

TEST(GuestMemory, EmptyMemoryTranslatesNothing) {
  GuestMemory memory;
  EXPECT_FALSE(memory.translate(0, 1));
  EXPECT_FALSE(memory.translate_prefix(0, 1));
  EXPECT_FALSE(memory.translate_user(0, 1));
}

TEST(GuestMemory, RegionAtTopOfAddressSpace) {
  std::vector<std::byte> storage(0x1000);
  auto memory = GuestMemory::create({region_at(UINT64_MAX - 0xfff, storage)});
  ASSERT_TRUE(memory);
  auto last = memory->translate(UINT64_MAX, 1);
  ASSERT_TRUE(last);
  EXPECT_EQ(last->data(), storage.data() + 0xfff);
  EXPECT_TRUE(memory->translate(UINT64_MAX - 0xfff, 0x1000));
  EXPECT_FALSE(memory->translate(UINT64_MAX, 2));
  EXPECT_FALSE(memory->translate(UINT64_MAX - 0xfff, 0x1001));
  auto prefix = memory->translate_prefix(UINT64_MAX - 1, 100);
  ASSERT_TRUE(prefix);
  EXPECT_EQ(prefix->size(), 2u);
}

TEST(GuestMemory, RejectsBadRegionTables) {
  std::vector<std::byte> a(0x1000);
  std::vector<std::byte> b(0x1000);
  // Wraps around the address space.
  GuestRegion wrapping = region_at(UINT64_MAX - 0xffe, a);
  EXPECT_EQ(GuestMemory::create({wrapping}).error(), std::errc::invalid_argument);
  GuestRegion user_wrapping = region_at(0, a, UINT64_MAX - 0x10);
  EXPECT_FALSE(GuestMemory::create({user_wrapping}));
  // Empty, unmapped.
  GuestRegion empty = region_at(0, a);
  empty.size = 0;
  EXPECT_FALSE(GuestMemory::create({empty}));
  GuestRegion unmapped = region_at(0, a);
  unmapped.host = nullptr;
  EXPECT_FALSE(GuestMemory::create({unmapped}));
  // Overlapping guest ranges (by one byte), in either order.
  EXPECT_FALSE(GuestMemory::create({region_at(0x1000, a), region_at(0x1fff, b)}));
  EXPECT_FALSE(GuestMemory::create({region_at(0x1fff, b), region_at(0x1000, a)}));
  // Overlapping user ranges.
  EXPECT_FALSE(GuestMemory::create({region_at(0x1000, a, 0x9000), region_at(0x4000, b, 0x9800)}));
  // Adjacent is fine.
  EXPECT_TRUE(GuestMemory::create({region_at(0x1000, a, 0x9000), region_at(0x2000, b, 0xa000)}));
}

class AdjacentRegions : public ::testing::Test {
 protected:
  std::vector<std::byte> low_ = std::vector<std::byte>(0x1000);
  std::vector<std::byte> high_ = std::vector<std::byte>(0x1000);
  // Given out of order: create() sorts.
  GuestMemory memory_ = *GuestMemory::create({region_at(0x2000, high_), region_at(0x1000, low_)});
};

// Decision (documented in guest_memory.hpp): translate() never spans regions; a buffer crossing
// a boundary is split by translate_prefix() into one piece per region.
TEST_F(AdjacentRegions, TranslateRefusesToSpanRegions) {
  EXPECT_EQ(memory_.translate(0x1ff0, 0x20).error(), std::errc::bad_address);
  EXPECT_TRUE(memory_.translate(0x1ff0, 0x10));
  EXPECT_TRUE(memory_.translate(0x2000, 0x10));
}

TEST_F(AdjacentRegions, TranslatePrefixSplitsAtTheBoundary) {
  auto first = memory_.translate_prefix(0x1ff0, 0x20);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->data(), low_.data() + 0xff0);
  EXPECT_EQ(first->size(), 0x10u);
  auto second = memory_.translate_prefix(0x2000, 0x10);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->data(), high_.data());
  EXPECT_EQ(second->size(), 0x10u);
  // Past the end of the second region: the prefix stops there, the rest is unmapped.
  auto tail = memory_.translate_prefix(0x2ff0, 0x20);
  ASSERT_TRUE(tail);
  EXPECT_EQ(tail->size(), 0x10u);
  EXPECT_FALSE(memory_.translate_prefix(0x3000, 1));
}

TEST_F(AdjacentRegions, AddAndRemoveRegions) {
  std::vector<std::byte> more(0x1000);
  auto grown = memory_.with_region(region_at(0x8000, more));
  ASSERT_TRUE(grown);
  EXPECT_EQ(grown->regions().size(), 3u);
  EXPECT_TRUE(grown->translate(0x8fff, 1));
  EXPECT_FALSE(memory_.translate(0x8fff, 1)) << "the original snapshot is unchanged";
  EXPECT_FALSE(grown->with_region(region_at(0x8800, more))) << "overlap";

  auto shrunk = grown->without_region(0x1000, 0x1000);
  ASSERT_TRUE(shrunk);
  EXPECT_FALSE(shrunk->translate(0x1000, 1));
  EXPECT_TRUE(shrunk->translate(0x2000, 1));
  EXPECT_EQ(grown->without_region(0x1000, 0x800).error(), std::errc::no_such_file_or_directory);
  EXPECT_EQ(grown->without_region(0x5000, 0x1000).error(), std::errc::no_such_file_or_directory);
}

TEST(SharedGuestMemory, LoadedSnapshotOutlivesReplacement) {
  auto owner = std::make_shared<int>(0);
  std::vector<std::byte> storage(0x1000);
  GuestRegion region = region_at(0, storage);
  region.owner = owner;
  SharedGuestMemory shared;
  shared.store(*GuestMemory::create({std::move(region)}));
  auto snapshot = shared.load();
  shared.store(GuestMemory());
  EXPECT_TRUE(snapshot->translate(0, 1));
  EXPECT_FALSE(shared.load()->translate(0, 1));
  EXPECT_EQ(owner.use_count(), 2) << "the old snapshot still holds the region's owner";
  snapshot.reset();
  EXPECT_EQ(owner.use_count(), 1) << "released with the last snapshot";
}

int make_memfd(std::size_t size) {
  const int fd = ::memfd_create("virtio-guest-memory-test", MFD_CLOEXEC);
  if (fd >= 0 && ::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST(MapRegion, MapsAtAnUnalignedOffsetOfAnFd) {
  const int fd = make_memfd(0x3000);
  ASSERT_GE(fd, 0);
  const int probe = ::dup(fd);
  ASSERT_GE(probe, 0);
  auto region = map_region(fd, 0x40000, 0x1000, 0x7f0000, 0x1010);
  ASSERT_TRUE(region) << region.error_number();
  EXPECT_EQ(region->fd >= 0, true);
  EXPECT_EQ(region->mmap_offset, 0x1010u);
  auto memory = GuestMemory::create({*region});
  ASSERT_TRUE(memory);
  auto span = memory->translate(0x40000, 4);
  ASSERT_TRUE(span);
  std::memcpy(span->data(), "abcd", 4);
  std::array<char, 4> back{};
  ASSERT_EQ(::pread(probe, back.data(), 4, 0x1010), 4);
  EXPECT_EQ(std::memcmp(back.data(), "abcd", 4), 0);
  ::close(probe);
}

TEST(MapRegion, RefusesARangeBeyondTheEndOfTheFile) {
  // mmap would accept it; touching the tail would then raise SIGBUS in the daemon.
  const int fd = make_memfd(0x1000);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(map_region(fd, 0, 0x100000, 0, 0).error(), std::errc::invalid_argument);
  const int second = make_memfd(0x2000);
  ASSERT_GE(second, 0);
  EXPECT_EQ(map_region(second, 0, 0x1000, 0, 0x1001).error(), std::errc::invalid_argument);
  const int exact = make_memfd(0x2000);
  ASSERT_GE(exact, 0);
  EXPECT_TRUE(map_region(exact, 0, 0x1000, 0, 0x1000)) << "the last page exactly";
}

TEST(MapRegion, FailsCleanlyOnABadFd) {
  EXPECT_FALSE(map_region(-1, 0, 0x1000, 0, 0));
  const int fd = make_memfd(0x1000);
  ASSERT_GE(fd, 0);
  EXPECT_FALSE(map_region(fd, 0, 0, 0, 0)) << "empty region";
}

TEST(DirtyLog, MarksEveryTouchedPage) {
  std::array<std::byte, 4> bitmap{};
  DirtyLog log(bitmap);
  log.mark(0x1fff, 2);  // pages 1 and 2
  EXPECT_FALSE(log.is_dirty(0x0000));
  EXPECT_TRUE(log.is_dirty(0x1000));
  EXPECT_TRUE(log.is_dirty(0x2fff));
  EXPECT_FALSE(log.is_dirty(0x3000));
  EXPECT_EQ(bitmap[0], std::byte{0x06});
  log.mark(0x5000, 0);
  EXPECT_FALSE(log.is_dirty(0x5000)) << "an empty write marks nothing";
  log.mark(31 * 0x1000, 0x10000);  // runs past the 32 pages the bitmap covers
  EXPECT_TRUE(log.is_dirty(31 * 0x1000));
  EXPECT_EQ(bitmap[3], std::byte{0x80});
  log.mark(UINT64_MAX - 10, 100);  // far beyond the bitmap, and the range would wrap: ignored
}

TEST(DirtyLog, GuestMemoryLogsOnlyWhenEnabled) {
  std::vector<std::byte> storage(0x4000);
  auto memory = *GuestMemory::create({region_at(0, storage)});
  EXPECT_FALSE(memory.logging());
  memory.log_write(0, 1);  // no log: nothing to do, nothing to crash
  std::array<std::byte, 1> bitmap{};
  auto log = std::make_shared<DirtyLog>(bitmap);
  auto logged = memory.with_dirty_log(log);
  EXPECT_TRUE(logged.logging());
  logged.log_write(0x2000, 0x1001);
  EXPECT_EQ(bitmap[0], std::byte{0x0c});
  EXPECT_TRUE(logged.translate(0x3fff, 1)) << "regions are kept";
  auto grown_storage = std::vector<std::byte>(0x1000);
  auto grown = logged.with_region(region_at(0x10000, grown_storage));
  ASSERT_TRUE(grown);
  EXPECT_TRUE(grown->logging()) << "the log survives a region change";
}

TEST(DirtyLog, MapsAnFd) {
  const int fd = make_memfd(0x2000);
  ASSERT_GE(fd, 0);
  const int probe = ::dup(fd);
  auto log = DirtyLog::map(fd, 16, 0x1008);
  ASSERT_TRUE(log);
  (*log)->mark(0x9000, 1);  // page 9: byte 1, bit 1
  unsigned char byte = 0;
  ASSERT_EQ(::pread(probe, &byte, 1, 0x1009), 1);
  EXPECT_EQ(byte, 0x02);
  ::close(probe);
}

}  // namespace
}  // namespace fuse_backend::transport::virtio
