// Descriptor-chain walk and the reader/writer over it, driven by a simulated guest: requests and
// replies split at every byte, indirect tables, buffers crossing regions, zero-copy file I/O,
// dirty logging, and hostile tables (each rejected with its reason, never a crash).
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/detail/unique_fd.hpp>
#include <fuse_backend/transport/virtio/chain_io.hpp>
#include <fuse_backend/transport/virtio/descriptor_chain.hpp>
#include <fuse_backend/transport/virtio/virtqueue.hpp>
#include <support/message_builder.hpp>
#include <support/virtio_driver.hpp>

namespace fuse_backend::transport::virtio {
namespace {

using testing::VirtioDriver;
using Buffers = std::vector<VirtioDriver::Buffer>;

std::vector<std::byte> pattern(std::size_t size, unsigned seed = 1) {
  std::vector<std::byte> bytes(size);
  for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<std::byte>((i * 31 + seed) & 0xff);
  return bytes;
}

std::vector<std::byte> to_vector(std::span<const std::byte> bytes) { return {bytes.begin(), bytes.end()}; }

// A request as real FUSE bytes: MKDIR with a name (header, fixed struct, name).
std::vector<std::byte> sample_request() {
  abi::mkdir_in in{};
  in.mode = 0755;
  in.umask = 022;
  return testing::MessageBuilder(abi::opcode::mkdir, 1, 77).add(in).name("a-directory-name").build();
}

VirtioDriver::Options make_options(std::uint64_t features = features::indirect_desc,
                                   std::vector<std::uint64_t> regions = {std::uint64_t{1} << 20}) {
  VirtioDriver::Options options;
  options.queue_size = 256;
  options.features = features;
  options.region_sizes = std::move(regions);
  return options;
}

class Chains : public ::testing::Test {
 protected:
  explicit Chains(VirtioDriver::Options options = make_options()) : driver_(std::move(options)) {
    driver_.start(queue_);
  }

  // Pops the next chain and walks it.
  ChainError take() {
    auto head = queue_.pop();
    EXPECT_TRUE(head && *head);
    if (!head || !*head) return ChainError::head_out_of_range;
    return chain_.walk(queue_.descriptor_table(), **head);
  }
  // Buffers holding `bytes` split at `cuts` (ascending offsets; equal cuts give empty buffers).
  Buffers split(std::span<const std::byte> bytes, std::span<const std::size_t> cuts, bool writable) {
    Buffers buffers;
    std::size_t from = 0;
    auto add = [&](std::size_t to) {
      const std::uint64_t gpa = driver_.alloc(std::max<std::size_t>(to - from, 1));
      driver_.write(gpa, bytes.subspan(from, to - from));
      buffers.push_back({gpa, static_cast<std::uint32_t>(to - from), writable});
      from = to;
    };
    for (std::size_t cut : cuts) add(cut);
    add(bytes.size());
    return buffers;
  }
  // The bytes of writable buffers, concatenated.
  std::vector<std::byte> gather(const Buffers& buffers) const {
    std::vector<std::byte> out;
    for (const auto& buffer : buffers) {
      if (!buffer.writable) continue;
      auto bytes = driver_.read(buffer.gpa, buffer.len);
      out.insert(out.end(), bytes.begin(), bytes.end());
    }
    return out;
  }

  VirtioDriver driver_;
  Virtqueue queue_;
  DescriptorChain chain_;
  std::vector<std::byte> bounce_ = std::vector<std::byte>(request_bounce_size);
};

Buffers concat(Buffers a, const Buffers& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Reads `request` back through a ChainReader exactly as the Server does (header, then the rest).
void expect_reads_back(const DescriptorChain& chain, std::span<std::byte> bounce,
                       const std::vector<std::byte>& request) {
  ChainReader reader(chain, bounce);
  ASSERT_EQ(reader.remaining(), request.size());
  const auto header = reader.read_bytes(sizeof(abi::in_header));
  ASSERT_EQ(header.size(), sizeof(abi::in_header));
  const auto rest = reader.read_bytes(request.size() - sizeof(abi::in_header));
  ASSERT_EQ(rest.size(), request.size() - sizeof(abi::in_header));
  EXPECT_EQ(to_vector(header), std::vector(request.begin(), request.begin() + sizeof(abi::in_header)));
  EXPECT_EQ(to_vector(rest), std::vector(request.begin() + sizeof(abi::in_header), request.end()));
  EXPECT_EQ(reader.remaining(), 0u);
}

// Writes a reply with `payload` through a ChainWriter and commits it.
void write_reply(Virtqueue& queue, const DescriptorChain& chain, std::span<const std::byte> payload) {
  ChainWriter writer(queue, chain);
  ASSERT_TRUE(writer.append(payload));
  const abi::out_header header{static_cast<std::uint32_t>(sizeof(abi::out_header) + payload.size()), 0, 77};
  ASSERT_TRUE(writer.commit(header));
  EXPECT_TRUE(writer.committed());
}

std::vector<std::byte> expected_reply(std::span<const std::byte> payload) {
  const abi::out_header header{static_cast<std::uint32_t>(sizeof(abi::out_header) + payload.size()), 0, 77};
  std::vector<std::byte> out(sizeof(header));
  std::memcpy(out.data(), &header, sizeof(header));
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

TEST_F(Chains, RequestSplitAtEveryByte) {
  const auto request = sample_request();
  const auto payload = pattern(40);
  for (std::size_t cut = 0; cut <= request.size(); ++cut) {
    for (const bool indirect : {false, true}) {
      const auto mark = driver_.mark();
      const std::array cuts{cut};
      const Buffers reply = split(std::vector<std::byte>(sizeof(abi::out_header) + payload.size()), {}, true);
      const Buffers buffers = concat(split(request, cuts, false), reply);
      driver_.post(buffers, indirect);
      ASSERT_EQ(take(), ChainError::none) << cut;
      expect_reads_back(chain_, bounce_, request);
      write_reply(queue_, chain_, payload);
      const auto used = driver_.next_used();
      ASSERT_TRUE(used);
      EXPECT_EQ(used->len, sizeof(abi::out_header) + payload.size());
      EXPECT_EQ(gather(buffers), expected_reply(payload)) << cut;
      driver_.release(mark);
    }
  }
}

TEST_F(Chains, ReplySplitAtEveryByte) {
  const auto request = sample_request();
  const auto payload = pattern(60, 7);
  const std::size_t reply_size = sizeof(abi::out_header) + payload.size();
  for (std::size_t cut = 0; cut <= reply_size; ++cut) {
    for (const bool indirect : {false, true}) {
      const auto mark = driver_.mark();
      const std::array cuts{cut};
      const Buffers buffers = concat(split(request, {}, false), split(std::vector<std::byte>(reply_size), cuts, true));
      driver_.post(buffers, indirect);
      ASSERT_EQ(take(), ChainError::none) << cut;
      write_reply(queue_, chain_, payload);
      EXPECT_EQ(driver_.next_used()->len, reply_size);
      EXPECT_EQ(gather(buffers), expected_reply(payload)) << cut;
      driver_.release(mark);
    }
  }
}

TEST_F(Chains, EveryByteItsOwnDescriptor) {
  const auto request = sample_request();
  const auto payload = pattern(20, 3);
  const std::size_t reply_size = sizeof(abi::out_header) + payload.size();
  std::vector<std::size_t> request_cuts(request.size() - 1);
  std::iota(request_cuts.begin(), request_cuts.end(), 1);
  std::vector<std::size_t> reply_cuts(reply_size - 1);
  std::iota(reply_cuts.begin(), reply_cuts.end(), 1);
  for (const bool indirect : {false, true}) {
    const Buffers buffers =
        concat(split(request, request_cuts, false), split(std::vector<std::byte>(reply_size), reply_cuts, true));
    ASSERT_LE(buffers.size(), 256u);
    driver_.post(buffers, indirect);
    ASSERT_EQ(take(), ChainError::none);
    EXPECT_EQ(chain_.readable().size(), request.size());
    expect_reads_back(chain_, bounce_, request);
    write_reply(queue_, chain_, payload);
    EXPECT_EQ(driver_.next_used()->len, reply_size);
    EXPECT_EQ(gather(buffers), expected_reply(payload));
  }
}

TEST_F(Chains, ZeroLengthDescriptorsAreSkipped) {
  const auto request = sample_request();
  const std::array cuts{std::size_t{0}, std::size_t{0}, std::size_t{10}, std::size_t{10}};
  driver_.post(split(request, cuts, false));
  ASSERT_EQ(take(), ChainError::none);
  EXPECT_EQ(chain_.readable().size(), 2u);
  expect_reads_back(chain_, bounce_, request);
}

class TwoRegions : public Chains {
 protected:
  // Region boundary at guest_base + 64 KiB.
  TwoRegions() : Chains(make_options(features::indirect_desc, {0x10000, 0x10000})) {}
};

TEST_F(TwoRegions, BufferCrossingRegionsIsSplit) {
  const auto request = sample_request();
  const std::uint64_t boundary = driver_.options().guest_base + 0x10000;
  driver_.release(boundary - 20);  // the next allocation straddles the boundary
  const std::uint64_t gpa = driver_.place(request);
  ASSERT_LT(gpa, boundary);
  ASSERT_GT(gpa + request.size(), boundary);
  const VirtioDriver::Buffer buffer{gpa, static_cast<std::uint32_t>(request.size()), false};
  driver_.post(std::span(&buffer, 1));
  ASSERT_EQ(take(), ChainError::none);
  ASSERT_EQ(chain_.readable().size(), 2u);
  EXPECT_EQ(chain_.readable()[0].len, 20u);
  EXPECT_EQ(chain_.readable()[1].gpa, boundary);
  expect_reads_back(chain_, bounce_, request);
}

TEST_F(TwoRegions, BufferRunningPastTheLastRegionIsRejected) {
  const VirtioDriver::Buffer buffer{driver_.end() - 8, 16, false};
  driver_.post(std::span(&buffer, 1));
  EXPECT_EQ(take(), ChainError::address_out_of_range);
}

// --- reader --------------------------------------------------------------------------------

TEST_F(Chains, ReaderBoundsAndViews) {
  const auto data = pattern(100);
  const std::array cuts{std::size_t{3}, std::size_t{50}};
  driver_.post(split(data, cuts, false));
  ASSERT_EQ(take(), ChainError::none);
  ChainReader reader(chain_, bounce_);
  EXPECT_EQ(reader.backing_files(), nullptr);
  const auto first = reader.read_bytes(10);
  ASSERT_EQ(first.size(), 10u);
  EXPECT_TRUE(reader.read_bytes(91).empty()) << "more than remains";
  EXPECT_EQ(reader.remaining(), 90u) << "a failed read consumes nothing";
  EXPECT_FALSE(reader.skip(91));
  EXPECT_TRUE(reader.skip(5));
  reader.limit(200);
  EXPECT_EQ(reader.remaining(), 85u) << "limit never grows";
  reader.limit(80);
  const auto second = reader.read_bytes(40);
  ASSERT_EQ(second.size(), 40u);
  EXPECT_EQ(to_vector(first), std::vector(data.begin(), data.begin() + 10)) << "earlier view still valid";
  EXPECT_EQ(to_vector(second), std::vector(data.begin() + 15, data.begin() + 55));
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(second.data()) % 8, 0u);
  std::array<std::byte, 64> out{};
  EXPECT_EQ(reader.read(out), 40u) << "read stops at the limit";
  EXPECT_EQ(to_vector(std::span(out).first(40)), std::vector(data.begin() + 55, data.begin() + 95));
  EXPECT_EQ(reader.remaining(), 0u);
  EXPECT_TRUE(reader.read_bytes(0).empty());
  EXPECT_EQ(reader.read(out), 0u);
}

TEST_F(Chains, ReaderCopiesEvenFromOneDescriptor) {
  // The guest may rewrite its buffer while the request is parsed: views must be private copies.
  const auto data = pattern(64);
  const Buffers buffers = split(data, {}, false);
  driver_.post(buffers);
  ASSERT_EQ(take(), ChainError::none);
  ChainReader reader(chain_, bounce_);
  const auto view = reader.read_bytes(64);
  ASSERT_EQ(view.size(), 64u);
  driver_.write(buffers[0].gpa, pattern(64, 99));
  EXPECT_EQ(to_vector(view), data);
}

TEST_F(Chains, BounceBufferLimits) {
  const auto data = pattern(request_bounce_size + 100);
  driver_.post(split(data, std::array{std::size_t{request_bounce_size / 2}}, false));
  ASSERT_EQ(take(), ChainError::none);
  ChainReader reader(chain_, bounce_);
  EXPECT_TRUE(reader.read_bytes(request_bounce_size + 1).empty()) << "larger than the bounce buffer";
  ASSERT_EQ(reader.read_bytes(100).size(), 100u);
  // Does not fit behind the first view: starts again at the front (allowed by the contract).
  const auto big = reader.read_bytes(request_bounce_size - 50);
  ASSERT_EQ(big.size(), request_bounce_size - 50);
  EXPECT_EQ(to_vector(big), std::vector(data.begin() + 100, data.begin() + 100 + static_cast<std::ptrdiff_t>(big.size())));
}

detail::UniqueFd memfd() { return detail::UniqueFd(::memfd_create("virtio-chain-test", MFD_CLOEXEC)); }

TEST_F(Chains, ReadToWritesGuestBuffersToAFile) {
  const auto header = pattern(24, 5);
  const auto data = pattern(10000, 9);
  std::vector<std::byte> all = header;
  all.insert(all.end(), data.begin(), data.end());
  const std::array cuts{std::size_t{20}, std::size_t{30}, std::size_t{4000}, std::size_t{4001}};
  driver_.post(split(all, cuts, false));
  ASSERT_EQ(take(), ChainError::none);
  ChainReader reader(chain_, bounce_);
  ASSERT_EQ(reader.read_bytes(24).size(), 24u);
  auto fd = memfd();
  ASSERT_TRUE(fd);
  auto written = reader.read_to(fd.get(), 20000, 100, api::WriteAt::offset);
  ASSERT_TRUE(written);
  EXPECT_EQ(*written, data.size());
  EXPECT_EQ(reader.remaining(), 0u);
  std::vector<std::byte> back(data.size());
  ASSERT_EQ(::pread(fd.get(), back.data(), back.size(), 100), static_cast<ssize_t>(back.size()));
  EXPECT_EQ(back, data);
  EXPECT_EQ(*reader.read_to(fd.get(), 10, 0, api::WriteAt::offset), 0u) << "nothing left";
  EXPECT_FALSE(ChainReader(chain_, bounce_).read_to(-1, 10, 0, api::WriteAt::offset)) << "errors are reported";
}

// WriteAt::end appends whatever the offset (RWF_APPEND), on an fd without O_APPEND.
TEST_F(Chains, ReadToAtTheEndAppends) {
  const auto data = pattern(5000, 3);
  const std::array cuts{std::size_t{1000}};
  driver_.post(split(data, cuts, false));
  ASSERT_EQ(take(), ChainError::none);
  auto fd = memfd();
  ASSERT_TRUE(fd);
  ASSERT_EQ(::pwrite(fd.get(), "head", 4, 0), 4);
  ChainReader reader(chain_, bounce_);
  auto written = reader.read_to(fd.get(), data.size(), 0, api::WriteAt::end);
  ASSERT_TRUE(written);
  EXPECT_EQ(*written, data.size());
  std::vector<std::byte> back(data.size());
  ASSERT_EQ(::pread(fd.get(), back.data(), back.size(), 4), static_cast<ssize_t>(back.size()));
  EXPECT_EQ(back, data);
  struct stat st {};
  ASSERT_EQ(::fstat(fd.get(), &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(4 + data.size()));
}

// --- writer --------------------------------------------------------------------------------

TEST_F(Chains, WriteFromFillsGuestBuffersFromAFile) {
  const auto data = pattern(9000, 4);
  auto fd = memfd();
  ASSERT_TRUE(fd);
  ASSERT_EQ(::pwrite(fd.get(), data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
  const std::size_t reply_size = sizeof(abi::out_header) + 8 + 8192;
  const std::array cuts{std::size_t{10}, std::size_t{30}, std::size_t{4096}};
  const Buffers buffers = concat(split(sample_request(), {}, false), split(std::vector<std::byte>(reply_size), cuts, true));
  driver_.post(buffers);
  ASSERT_EQ(take(), ChainError::none);
  ChainWriter writer(queue_, chain_);
  EXPECT_EQ(writer.available(), 8 + 8192u);
  const auto prefix = pattern(8, 2);
  ASSERT_TRUE(writer.append(prefix));
  auto read = writer.write_from(fd.get(), 100000, 100);
  ASSERT_TRUE(read);
  EXPECT_EQ(*read, 8192u) << "capped at the room left";
  EXPECT_EQ(writer.available(), 0u);
  EXPECT_EQ(*writer.write_from(fd.get(), 10, 0), 0u);
  std::vector<std::byte> payload = prefix;
  payload.insert(payload.end(), data.begin() + 100, data.begin() + 100 + 8192);
  const abi::out_header header{static_cast<std::uint32_t>(reply_size), 0, 77};
  ASSERT_TRUE(writer.commit(header));
  EXPECT_EQ(driver_.next_used()->len, reply_size);
  EXPECT_EQ(gather(buffers), expected_reply(payload));
}

TEST_F(Chains, WriterCapacityDiscardAndCommitOnce) {
  const Buffers buffers = concat(split(sample_request(), {}, false), split(std::vector<std::byte>(40), {}, true));
  driver_.post(buffers);
  ASSERT_EQ(take(), ChainError::none);
  ChainWriter writer(queue_, chain_);
  EXPECT_EQ(writer.available(), 24u);
  EXPECT_FALSE(writer.append(pattern(25))) << "all or nothing";
  EXPECT_EQ(writer.written(), 0u);
  EXPECT_EQ(writer.write(pattern(30)), 24u) << "write() takes what fits";
  EXPECT_EQ(writer.written(), 24u);
  writer.discard();
  EXPECT_EQ(writer.written(), 0u);
  EXPECT_EQ(writer.available(), 24u);
  const abi::out_header error{16, -2, 77};
  ASSERT_TRUE(writer.commit(error));
  EXPECT_FALSE(writer.commit(error)) << "a chain is returned once";
  const auto used = driver_.next_used();
  EXPECT_EQ(used->len, 16u);
  EXPECT_FALSE(driver_.next_used());
  const auto bytes = gather(buffers);
  abi::out_header back;
  std::memcpy(&back, bytes.data(), sizeof(back));
  EXPECT_EQ(back.error, -2);
  EXPECT_EQ(back.len, 16u);
}

TEST_F(Chains, WriterWithoutRoomForTheHeader) {
  driver_.post(concat(split(sample_request(), {}, false), split(std::vector<std::byte>(15), {}, true)));
  ASSERT_EQ(take(), ChainError::none);
  ChainWriter writer(queue_, chain_);
  EXPECT_EQ(writer.available(), 0u);
  EXPECT_FALSE(writer.append(pattern(1)));
  EXPECT_TRUE(writer.append({}));
  EXPECT_EQ(writer.commit(abi::out_header{16, 0, 1}).error(), std::errc::no_buffer_space);
  EXPECT_FALSE(writer.committed());
  EXPECT_FALSE(driver_.next_used()) << "not pushed: the device returns it with 0 bytes";
}

TEST_F(Chains, WriterLogsDirtyPages) {
  std::array<std::byte, 64> bitmap{};
  auto log = std::make_shared<DirtyLog>(bitmap);
  ASSERT_TRUE(queue_.set_memory(std::make_shared<const GuestMemory>(driver_.memory()->with_dirty_log(log))));
  driver_.release(driver_.options().guest_base + 0x8000 - 8);  // reply straddles two pages
  const Buffers reply = split(std::vector<std::byte>(64), {}, true);
  driver_.post(concat(split(sample_request(), {}, false), reply));
  ASSERT_EQ(take(), ChainError::none);
  ChainReader reader(chain_, bounce_);
  (void)reader.read_bytes(16);
  EXPECT_FALSE(log->is_dirty(reply[0].gpa)) << "reading logs nothing";
  write_reply(queue_, chain_, pattern(48));
  EXPECT_TRUE(log->is_dirty(reply[0].gpa));
  EXPECT_TRUE(log->is_dirty(reply[0].gpa + 63));
  EXPECT_TRUE(log->is_dirty(driver_.used_gpa()));
}

// --- hostile tables ------------------------------------------------------------------------

class Hostile : public Chains {
 protected:
  Hostile() : Chains(hostile_options()) {}
  static VirtioDriver::Options hostile_options() {
    VirtioDriver::Options options = make_options();
    options.queue_size = 8;
    return options;
  }
  ChainError walk(std::uint16_t head) { return chain_.walk(queue_.descriptor_table(), head); }
  std::uint64_t buffer(std::uint32_t len = 64) { return driver_.alloc(len); }
  std::uint64_t table(std::span<const Descriptor> descriptors) {
    const std::uint64_t gpa = driver_.alloc(descriptors.size_bytes(), 16);
    driver_.write(gpa, std::as_bytes(descriptors));
    return gpa;
  }
  static constexpr std::uint16_t next = descriptor_flags::next;
  static constexpr std::uint16_t write = descriptor_flags::write;
  static constexpr std::uint16_t indirect = descriptor_flags::indirect;
};

TEST_F(Hostile, HeadOutOfRange) {
  EXPECT_EQ(walk(8), ChainError::head_out_of_range);
  EXPECT_EQ(walk(65535), ChainError::head_out_of_range);
}

TEST_F(Hostile, SelfLoop) {
  driver_.write_descriptor(0, {buffer(), 64, next, 0});
  EXPECT_EQ(walk(0), ChainError::chain_too_long);
}

TEST_F(Hostile, TwoDescriptorLoop) {
  driver_.write_descriptor(2, {buffer(), 64, next, 5});
  driver_.write_descriptor(5, {buffer(), 64, next | write, 2});
  EXPECT_EQ(walk(2), ChainError::readable_after_writable) << "caught first by the order rule";
  driver_.write_descriptor(5, {buffer(), 64, next, 2});
  EXPECT_EQ(walk(2), ChainError::chain_too_long);
}

TEST_F(Hostile, ZeroLengthLoop) {
  for (std::uint16_t i = 0; i < 8; ++i) driver_.write_descriptor(i, {0, 0, next, static_cast<std::uint16_t>((i + 1) % 8)});
  EXPECT_EQ(walk(3), ChainError::chain_too_long);
}

TEST_F(Hostile, FullLengthChainIsFine) {
  for (std::uint16_t i = 0; i < 8; ++i)
    driver_.write_descriptor(i, {buffer(8), 8, static_cast<std::uint16_t>(i < 7 ? next : 0), static_cast<std::uint16_t>(i + 1)});
  EXPECT_EQ(walk(0), ChainError::none);
  EXPECT_EQ(chain_.readable_bytes(), 64u);
}

TEST_F(Hostile, NextOutOfRange) {
  driver_.write_descriptor(0, {buffer(), 64, next, 8});
  EXPECT_EQ(walk(0), ChainError::next_out_of_range);
}

TEST(HostileLengths, TotalLengthOverflow) {
  // 8 GiB of address space that is never touched (the walk only computes pointers), so lengths
  // near 2^32 translate and the 32-bit total is what fails.
  constexpr std::size_t size = std::size_t{1} << 33;
  void* reserved = ::mmap(nullptr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_NE(reserved, MAP_FAILED);
  GuestRegion region;
  region.guest_addr = 0;
  region.size = size;
  region.host = static_cast<std::byte*>(reserved);
  const GuestMemory memory = *GuestMemory::create({region});
  std::array<Descriptor, 4> descriptors{};
  const DescriptorTable table{std::as_bytes(std::span(descriptors)), &memory, false};
  DescriptorChain chain;

  descriptors[0] = {0, 0xffffffff, descriptor_flags::next, 1};
  descriptors[1] = {0, 0, 0, 0};
  EXPECT_EQ(chain.walk(table, 0), ChainError::none) << "exactly 2^32 - 1 is fine";
  EXPECT_EQ(chain.readable_bytes(), 0xffffffffu);
  descriptors[1] = {0x100000000, 1, 0, 0};
  EXPECT_EQ(chain.walk(table, 0), ChainError::total_length_overflow);
  descriptors[0] = {0, 0x80000000, descriptor_flags::next | descriptor_flags::write, 1};
  descriptors[1] = {0x80000000, 0x80000000, descriptor_flags::write, 0};
  EXPECT_EQ(chain.walk(table, 0), ChainError::total_length_overflow);
  // Readable and writable totals are separate.
  descriptors[0] = {0, 0xffffffff, descriptor_flags::next, 1};
  descriptors[1] = {0x100000000, 0xffffffff, descriptor_flags::write, 0};
  EXPECT_EQ(chain.walk(table, 0), ChainError::none);
  ::munmap(reserved, size);
}

TEST_F(Hostile, AddressesOutOfRange) {
  driver_.write_descriptor(0, {0, 16, 0, 0});
  EXPECT_EQ(walk(0), ChainError::address_out_of_range) << "below guest memory";
  driver_.write_descriptor(0, {driver_.end() - 8, 16, 0, 0});
  EXPECT_EQ(walk(0), ChainError::address_out_of_range) << "runs past the end";
  driver_.write_descriptor(0, {UINT64_MAX - 10, 100, 0, 0});
  EXPECT_EQ(walk(0), ChainError::address_out_of_range) << "wraps around";
  driver_.write_descriptor(0, {UINT64_MAX, 0xffffffff, write, 0});
  EXPECT_EQ(walk(0), ChainError::address_out_of_range);
}

TEST_F(Hostile, ReadableAfterWritable) {
  driver_.write_descriptor(0, {buffer(), 64, next | write, 1});
  driver_.write_descriptor(1, {buffer(), 64, 0, 0});
  EXPECT_EQ(walk(0), ChainError::readable_after_writable);
  driver_.write_descriptor(0, {buffer(), 0, next | write, 1});
  EXPECT_EQ(walk(0), ChainError::readable_after_writable) << "even after an empty writable one";
}

TEST_F(Hostile, IndirectNotNegotiated) {
  VirtioDriver::Options options = hostile_options();
  options.features = 0;
  VirtioDriver driver(options);
  Virtqueue queue;
  driver.start(queue);
  const std::array table{Descriptor{driver.alloc(8), 8, 0, 0}};
  const std::uint64_t gpa = driver.alloc(16, 16);
  driver.write(gpa, std::as_bytes(std::span(table)));
  driver.write_descriptor(0, {gpa, 16, indirect, 0});
  EXPECT_EQ(chain_.walk(queue.descriptor_table(), 0), ChainError::indirect_not_negotiated);
}

TEST_F(Hostile, IndirectWithNext) {
  const std::array inner{Descriptor{buffer(), 8, 0, 0}};
  driver_.write_descriptor(0, {table(inner), 16, indirect | next, 1});
  driver_.write_descriptor(1, {buffer(), 8, write, 0});
  EXPECT_EQ(walk(0), ChainError::indirect_with_next);
}

TEST_F(Hostile, IndirectBadSizes) {
  const std::array inner{Descriptor{buffer(), 8, 0, 0}, Descriptor{buffer(), 8, 0, 0}};
  const std::uint64_t gpa = table(inner);
  for (std::uint32_t len : {0u, 1u, 15u, 17u, 31u}) {
    driver_.write_descriptor(0, {gpa, len, indirect, 0});
    EXPECT_EQ(walk(0), ChainError::indirect_bad_size) << len;
  }
  driver_.write_descriptor(0, {gpa, 16 * 32769, indirect, 0});
  EXPECT_EQ(walk(0), ChainError::indirect_bad_size);
}

TEST_F(Hostile, IndirectTableOutOfRange) {
  driver_.write_descriptor(0, {driver_.end() - 16, 32, indirect, 0});
  EXPECT_EQ(walk(0), ChainError::indirect_table_out_of_range);
  driver_.write_descriptor(0, {UINT64_MAX - 15, 32, indirect, 0});
  EXPECT_EQ(walk(0), ChainError::indirect_table_out_of_range);
}

TEST_F(Hostile, NestedIndirect) {
  const std::array innermost{Descriptor{buffer(), 8, 0, 0}};
  const std::array inner{Descriptor{table(innermost), 16, indirect, 0}};
  driver_.write_descriptor(0, {table(inner), 16, indirect, 0});
  EXPECT_EQ(walk(0), ChainError::nested_indirect);
}

TEST_F(Hostile, LoopInsideIndirectTable) {
  // The table has 3 entries: its own length is the limit, not the queue size.
  const std::array inner{Descriptor{buffer(), 8, next, 1}, Descriptor{buffer(), 8, next, 2},
                         Descriptor{buffer(), 8, next, 0}};
  driver_.write_descriptor(0, {table(inner), 48, indirect, 0});
  EXPECT_EQ(walk(0), ChainError::chain_too_long);
}

TEST_F(Hostile, NextOutOfRangeInsideIndirectTable) {
  const std::array inner{Descriptor{buffer(), 8, next, 2}, Descriptor{buffer(), 8, 0, 0}};
  driver_.write_descriptor(0, {table(inner), 32, indirect, 0});
  EXPECT_EQ(walk(0), ChainError::next_out_of_range) << "index 2 is in the queue's table, not this one";
}

TEST_F(Hostile, DirectDescriptorsThenIndirectTable) {
  // Allowed by virtio 2.7.5.3.2: normal descriptors followed by one indirect descriptor; the
  // write flag on the indirect descriptor itself is ignored.
  const std::array inner{Descriptor{buffer(), 8, next, 1}, Descriptor{buffer(), 32, write, 0}};
  driver_.write_descriptor(0, {buffer(), 40, next, 1});
  driver_.write_descriptor(1, {table(inner), 32, indirect | write, 0});
  EXPECT_EQ(walk(0), ChainError::none);
  EXPECT_EQ(chain_.readable_bytes(), 48u);
  EXPECT_EQ(chain_.writable_bytes(), 32u);
}

TEST_F(Hostile, WriteOnlyChainHasNothingToRead) {
  driver_.write_descriptor(0, {buffer(), 64, write, 0});
  ASSERT_EQ(walk(0), ChainError::none);
  EXPECT_EQ(chain_.readable_bytes(), 0u);
  ChainReader reader(chain_, bounce_);
  EXPECT_TRUE(reader.read_bytes(sizeof(abi::in_header)).empty());
}

// A guest rewriting its descriptor table (and indirect table) while the device walks it: every
// walk ends with a verdict on one consistent copy of each descriptor, and whatever it accepted
// is readable without leaving guest memory (run under ASan).
TEST_F(Hostile, TableRewrittenDuringTheWalk) {
  const std::uint64_t indirect_table = driver_.alloc(4 * sizeof(Descriptor), 16);
  const std::uint64_t data = driver_.alloc(4096);
  std::atomic<bool> stop{false};
  std::atomic<bool> rewriting{false};
  std::thread guest([&] {
    std::uint64_t x = 88172645463325252ull;
    while (!stop.load(std::memory_order_relaxed)) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      const auto index = static_cast<std::uint16_t>(x % 12);
      const Descriptor descriptor{(x & 1) != 0 ? data + (x >> 40) % 4096 : indirect_table + (x >> 20) % 64,
                                  static_cast<std::uint32_t>((x >> 8) % 8192),
                                  static_cast<std::uint16_t>((x >> 24) & 7), static_cast<std::uint16_t>((x >> 32) % 9)};
      if (index < 8) {
        driver_.write_descriptor(index, descriptor);
      } else {
        driver_.write(indirect_table + (index - 8) * sizeof(Descriptor), std::as_bytes(std::span(&descriptor, 1)));
      }
      rewriting.store(true, std::memory_order_relaxed);
    }
  });
  // A loaded machine may start the guest thread late: walk only while it rewrites, and go on
  // (within a bound) until some walk was accepted.
  while (!rewriting.load(std::memory_order_relaxed)) std::this_thread::yield();
  std::array<std::byte, 256> sink;
  int accepted = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (int i = 0; i < 20000 || (accepted == 0 && std::chrono::steady_clock::now() < deadline); ++i) {
    if (walk(static_cast<std::uint16_t>(i % 8)) != ChainError::none) continue;
    ++accepted;
    ChainReader reader(chain_, bounce_);
    while (reader.read(sink) > 0) {
    }
  }
  stop = true;
  guest.join();
  EXPECT_GT(accepted, 0);
}

TEST_F(Hostile, ErrorsAreDescribed) {
  for (int error = 0; error <= static_cast<int>(ChainError::out_of_memory); ++error) {
    EXPECT_FALSE(describe(static_cast<ChainError>(error)).empty());
    EXPECT_NE(describe(static_cast<ChainError>(error)), "unknown chain error");
  }
}

}  // namespace
}  // namespace fuse_backend::transport::virtio
