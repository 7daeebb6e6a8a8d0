// Split virtqueue: pop/push against a simulated driver, 16-bit wrap-around, EVENT_IDX and
// NO_INTERRUPT notification decisions, configuration checks, memory switches, dirty logging,
// and a concurrent guest.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <array>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <fuse_backend/transport/virtio/descriptor_chain.hpp>
#include <fuse_backend/transport/virtio/split_ring.hpp>
#include <fuse_backend/transport/virtio/virtqueue.hpp>
#include <support/virtio_driver.hpp>

namespace fuse_backend::transport::virtio {
namespace {

using testing::VirtioDriver;

VirtioDriver::Options options(std::uint16_t size, std::uint64_t features = 0, std::uint16_t start = 0) {
  VirtioDriver::Options o;
  o.queue_size = size;
  o.features = features;
  o.start_index = start;
  return o;
}

std::uint16_t post_one(VirtioDriver& driver, std::uint32_t len = 8) {
  const VirtioDriver::Buffer buffer{driver.alloc(len), len, true};
  return driver.post(std::span(&buffer, 1));
}

std::optional<std::uint16_t> pop(Virtqueue& queue) {
  auto head = queue.pop();
  EXPECT_TRUE(head);
  return head ? *head : std::nullopt;
}

TEST(Virtqueue, PopsPostedHeadsInOrderAndReturnsThem) {
  VirtioDriver driver(options(8));
  Virtqueue queue;
  driver.start(queue);
  EXPECT_EQ(pop(queue), std::nullopt);
  const auto a = post_one(driver);
  const auto b = post_one(driver);
  EXPECT_EQ(pop(queue), a);
  EXPECT_EQ(pop(queue), b);
  EXPECT_EQ(pop(queue), std::nullopt);
  ASSERT_TRUE(queue.push_used(b, 5));
  ASSERT_TRUE(queue.push_used(a, 0));
  auto first = driver.next_used();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->id, b);
  EXPECT_EQ(first->len, 5u);
  EXPECT_EQ(driver.next_used()->id, a);
  EXPECT_FALSE(driver.next_used());
  EXPECT_EQ(queue.base(), 2);
}

TEST(Virtqueue, IndicesWrapAround) {
  VirtioDriver driver(options(4, 0, 65530));
  Virtqueue queue;
  driver.start(queue);
  for (int round = 0; round < 20; ++round) {
    const auto head = post_one(driver);
    EXPECT_EQ(pop(queue), head) << round;
    ASSERT_TRUE(queue.push_used(head, static_cast<std::uint32_t>(round)));
    auto used = driver.next_used();
    ASSERT_TRUE(used) << round;
    EXPECT_EQ(used->id, head);
    EXPECT_EQ(used->len, static_cast<std::uint32_t>(round));
  }
  EXPECT_EQ(queue.base(), static_cast<std::uint16_t>(65530 + 20));
  EXPECT_EQ(driver.used_idx(), static_cast<std::uint16_t>(65530 + 20));
}

TEST(Virtqueue, FullRingAcrossTheWrap) {
  VirtioDriver driver(options(8, 0, 65532));
  Virtqueue queue;
  driver.start(queue);
  std::vector<std::uint16_t> heads;
  for (int i = 0; i < 8; ++i) heads.push_back(post_one(driver));
  for (auto head : heads) EXPECT_EQ(pop(queue), head);
  EXPECT_EQ(pop(queue), std::nullopt);
}

TEST(Virtqueue, AvailIndexTooFarAheadBreaksTheQueue) {
  VirtioDriver driver(options(8));
  Virtqueue queue;
  driver.start(queue);
  driver.set_avail_idx(9);
  EXPECT_EQ(queue.pop().error(), std::errc::io_error);
  EXPECT_TRUE(queue.broken());
  driver.set_avail_idx(1);
  EXPECT_FALSE(queue.pop()) << "stays broken until restarted";
  queue.stop();
  driver.start(queue);
  EXPECT_FALSE(queue.broken());
}

TEST(Virtqueue, AvailIndexBehindIsAlsoBroken) {
  VirtioDriver driver(options(8, 0, 100));
  Virtqueue queue;
  driver.start(queue);
  driver.set_avail_idx(99);  // 65535 entries "pending"
  EXPECT_FALSE(queue.pop());
}

TEST(Virtqueue, ConfigurationChecks) {
  Virtqueue queue;
  EXPECT_FALSE(queue.set_size(0));
  EXPECT_FALSE(queue.set_size(3));
  EXPECT_FALSE(queue.set_size(65536));
  EXPECT_FALSE(queue.set_size(1u << 31));
  EXPECT_TRUE(queue.set_size(1));
  EXPECT_TRUE(queue.set_size(32768));

  VirtioDriver driver(options(8));
  Virtqueue unsized;
  unsized.set_addresses(driver.addresses());
  EXPECT_FALSE(unsized.start(driver.memory())) << "no size";
  EXPECT_FALSE(unsized.started());
  EXPECT_FALSE(unsized.pop());

  Virtqueue misaligned;
  ASSERT_TRUE(misaligned.set_size(8));
  auto addresses = driver.addresses();
  addresses.descriptors += 8;
  misaligned.set_addresses(addresses);
  EXPECT_EQ(misaligned.start(driver.memory()).error(), std::errc::invalid_argument);
  addresses = driver.addresses();
  addresses.used += 2;
  misaligned.set_addresses(addresses);
  EXPECT_FALSE(misaligned.start(driver.memory()));

  Virtqueue outside;
  ASSERT_TRUE(outside.set_size(8));
  addresses = driver.addresses();
  addresses.avail = driver.end() - 4;
  outside.set_addresses(addresses);
  EXPECT_EQ(outside.start(driver.memory()).error(), std::errc::bad_address);
  addresses = driver.addresses();
  addresses.used = UINT64_MAX - 8;
  outside.set_addresses(addresses);
  EXPECT_FALSE(outside.start(driver.memory()));
}

TEST(Virtqueue, RingsAtUserVirtualAddresses) {
  VirtioDriver driver(options(8));
  Virtqueue queue;
  driver.start(queue, AddressKind::user_virtual);
  const auto head = post_one(driver);
  EXPECT_EQ(pop(queue), head);
  ASSERT_TRUE(queue.push_used(head, 3));
  EXPECT_EQ(driver.next_used()->len, 3u);
}

TEST(Virtqueue, BaseIsWhereARestartResumes) {
  VirtioDriver driver(options(8));
  Virtqueue queue;
  driver.start(queue);
  const auto a = post_one(driver);
  EXPECT_EQ(pop(queue), a);
  ASSERT_TRUE(queue.push_used(a, 0));
  queue.stop();
  EXPECT_FALSE(queue.started());
  EXPECT_EQ(queue.base(), 1);
  const auto b = post_one(driver);
  Virtqueue resumed;
  ASSERT_TRUE(resumed.set_size(8));
  resumed.set_addresses(driver.addresses());
  resumed.set_base(queue.base());
  ASSERT_TRUE(resumed.start(driver.memory()));
  EXPECT_EQ(pop(resumed), b);
  ASSERT_TRUE(resumed.push_used(b, 1));
  EXPECT_EQ(driver.next_used()->id, a);
  EXPECT_EQ(driver.next_used()->id, b);
}

TEST(Virtqueue, NoInterruptFlagWithoutEventIdx) {
  VirtioDriver driver(options(8));
  Virtqueue queue;
  driver.start(queue);
  EXPECT_FALSE(queue.needs_notification()) << "nothing pushed yet";
  auto head = post_one(driver);
  ASSERT_TRUE(queue.pop());
  ASSERT_TRUE(queue.push_used(head, 0));
  EXPECT_TRUE(queue.needs_notification());
  EXPECT_FALSE(queue.needs_notification()) << "already signalled";
  driver.set_no_interrupt(true);
  head = post_one(driver);
  ASSERT_TRUE(queue.pop());
  ASSERT_TRUE(queue.push_used(head, 0));
  EXPECT_FALSE(queue.needs_notification());
  driver.set_no_interrupt(false);
  head = post_one(driver);
  ASSERT_TRUE(queue.pop());
  ASSERT_TRUE(queue.push_used(head, 0));
  EXPECT_TRUE(queue.needs_notification());
}

// Pushes `count` chains and asks whether to notify.
bool push_and_ask(VirtioDriver& driver, Virtqueue& queue, int count) {
  for (int i = 0; i < count; ++i) {
    const auto head = post_one(driver);
    EXPECT_EQ(pop(queue), head);
    EXPECT_TRUE(queue.push_used(head, 0));
    EXPECT_TRUE(driver.next_used());
  }
  return queue.needs_notification();
}

class EventIdx : public ::testing::TestWithParam<std::uint16_t> {};

TEST_P(EventIdx, NotifiesExactlyWhenUsedEventIsCrossed) {
  const std::uint16_t start = GetParam();
  VirtioDriver driver(options(8, features::event_idx, start));
  Virtqueue queue;
  driver.start(queue);
  // First notification after start is always sent (nothing known about the past).
  EXPECT_TRUE(push_and_ask(driver, queue, 1));
  std::uint16_t used = static_cast<std::uint16_t>(start + 1);
  // used_event = the index of the next entry: notify once it is published.
  driver.set_used_event(used);
  EXPECT_TRUE(push_and_ask(driver, queue, 1));
  used = static_cast<std::uint16_t>(used + 1);
  // used_event three entries ahead: not after 1 or 2 more, but after the 3rd.
  driver.set_used_event(static_cast<std::uint16_t>(used + 2));
  EXPECT_FALSE(push_and_ask(driver, queue, 1));
  EXPECT_FALSE(push_and_ask(driver, queue, 1));
  EXPECT_TRUE(push_and_ask(driver, queue, 1));
  used = static_cast<std::uint16_t>(used + 3);
  // A batch that jumps over used_event notifies once.
  driver.set_used_event(static_cast<std::uint16_t>(used + 1));
  EXPECT_TRUE(push_and_ask(driver, queue, 4));
  used = static_cast<std::uint16_t>(used + 4);
  // used_event behind (already passed): no notification.
  driver.set_used_event(static_cast<std::uint16_t>(used - 3));
  EXPECT_FALSE(push_and_ask(driver, queue, 2));
  // Nothing pushed: nothing to say.
  EXPECT_FALSE(queue.needs_notification());
  // EVENT_IDX ignores the NO_INTERRUPT flag.
  used = static_cast<std::uint16_t>(used + 2);
  driver.set_no_interrupt(true);
  driver.set_used_event(used);
  EXPECT_TRUE(push_and_ask(driver, queue, 1));
}

INSTANTIATE_TEST_SUITE_P(Starts, EventIdx, ::testing::Values(0, 65530, 65534, 65535));

TEST(Virtqueue, EventIdxPublishesAvailEventWhenIdle) {
  VirtioDriver driver(options(8, features::event_idx, 65534));
  Virtqueue queue;
  driver.start(queue);
  EXPECT_EQ(pop(queue), std::nullopt);
  EXPECT_EQ(driver.avail_event(), 65534) << "kick me when entry 65534 arrives";
  const auto a = post_one(driver);
  const auto b = post_one(driver);
  EXPECT_TRUE(need_event(driver.avail_event(), driver.avail_idx(), 65534)) << "the guest kicks";
  EXPECT_EQ(pop(queue), a);
  EXPECT_EQ(pop(queue), b);
  EXPECT_EQ(driver.avail_event(), 65534) << "not rewritten while busy";
  EXPECT_EQ(pop(queue), std::nullopt);
  EXPECT_EQ(driver.avail_event(), 0) << "wrapped";
  // A guest that checks avail_event after publishing sees it must kick.
  post_one(driver);
  EXPECT_TRUE(need_event(driver.avail_event(), driver.avail_idx(), 0));
}

TEST(NeedEvent, MatchesTheKernelFormula) {
  EXPECT_TRUE(need_event(0, 1, 0));
  EXPECT_FALSE(need_event(1, 1, 0));
  EXPECT_TRUE(need_event(65535, 0, 65535));
  EXPECT_TRUE(need_event(65535, 2, 65534));
  EXPECT_FALSE(need_event(2, 2, 65534));
  EXPECT_TRUE(need_event(1, 2, 65534));
  EXPECT_FALSE(need_event(5, 5, 5));
}

TEST(Virtqueue, SwitchesMemorySnapshots) {
  VirtioDriver driver(options(8));
  Virtqueue queue;
  driver.start(queue);
  std::vector<std::byte> extra(0x1000);
  GuestRegion region;
  region.guest_addr = 0x10000000;
  region.size = extra.size();
  region.host = extra.data();
  auto grown = driver.memory()->with_region(region);
  ASSERT_TRUE(grown);
  ASSERT_TRUE(queue.set_memory(std::make_shared<const GuestMemory>(*grown)));
  EXPECT_TRUE(queue.memory().translate(0x10000000, 1));
  const auto head = post_one(driver);
  EXPECT_EQ(pop(queue), head);
  // A snapshot without the rings' region stops the queue.
  EXPECT_FALSE(queue.set_memory(std::make_shared<const GuestMemory>()));
  EXPECT_FALSE(queue.started());
}

TEST(Virtqueue, LogsUsedRingWrites) {
  VirtioDriver driver(options(8));
  std::array<std::byte, 512> bitmap{};
  auto log = std::make_shared<DirtyLog>(bitmap);
  Virtqueue queue;
  driver.start(queue);
  ASSERT_TRUE(queue.set_memory(std::make_shared<const GuestMemory>(driver.memory()->with_dirty_log(log))));
  const auto head = post_one(driver);
  ASSERT_TRUE(pop(queue));
  ASSERT_TRUE(queue.push_used(head, 0));
  EXPECT_TRUE(log->is_dirty(driver.used_gpa()));
  EXPECT_FALSE(log->is_dirty(driver.used_gpa() + 0x10000));
}

// A guest posting from another thread while the device pops and pushes: the device must see
// each buffer's contents as written before the chain was published (acquire/release), and the
// guest each completion.
TEST(Virtqueue, ConcurrentGuest) {
  constexpr int total = 20000;
  constexpr std::uint16_t size = 64;
  VirtioDriver driver(options(size, features::event_idx));
  Virtqueue queue;
  driver.start(queue);
  // Twice as many buffers as can be in flight: buffer k % 128 is rewritten only after chain k
  // was completed (in-order completion, at most 64 outstanding).
  std::vector<std::uint64_t> buffers(2 * size);
  for (auto& gpa : buffers) gpa = driver.alloc(8, 8);

  std::atomic<bool> failed{false};
  std::thread device([&] {
    DescriptorChain chain;
    int done = 0;
    while (done < total && !failed) {
      auto head = queue.pop();
      if (!head) {
        failed = true;
        break;
      }
      if (!*head) {
        std::this_thread::yield();
        continue;
      }
      if (chain.walk(queue.descriptor_table(), **head) != ChainError::none || chain.readable().size() != 1) {
        failed = true;
        break;
      }
      std::uint64_t value = 0;
      std::memcpy(&value, chain.readable()[0].host, sizeof(value));
      if (!queue.push_used(**head, static_cast<std::uint32_t>(value))) failed = true;
      ++done;
    }
  });
  int posted = 0;
  int completed = 0;
  int in_flight = 0;
  std::vector<std::uint32_t> expected(size);
  while (completed < total && !failed) {
    while (auto used = driver.next_used()) {
      if (used->len != expected[used->id]) failed = true;
      ++completed;
      --in_flight;
    }
    if (posted < total && in_flight < size) {
      const std::uint64_t value = static_cast<std::uint64_t>(posted) * 7 + 1;
      const std::uint64_t gpa = buffers[static_cast<std::size_t>(posted) % buffers.size()];
      driver.write(gpa, std::as_bytes(std::span(&value, 1)));
      const VirtioDriver::Buffer buffer{gpa, 8, false};
      const std::uint16_t head = driver.post(std::span(&buffer, 1));
      expected[head] = static_cast<std::uint32_t>(value);
      ++posted;
      ++in_flight;
    } else {
      std::this_thread::yield();
    }
  }
  device.join();
  EXPECT_FALSE(failed);
  EXPECT_EQ(completed, total);
}

}  // namespace
}  // namespace fuse_backend::transport::virtio
