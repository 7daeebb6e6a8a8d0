// InflightRequests, the Server's table of running requests that FUSE_INTERRUPT marks: a mark
// reaches the request it names and no other, also when that request ends and another takes its
// slot at the same moment; early interrupts; interrupt_all.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <fuse_backend/api/context.hpp>
#include <fuse_backend/api/detail/inflight_requests.hpp>

namespace fuse_backend::api::detail {
namespace {

bool interrupted(const InflightRequests::Claim& claim) {
  Context ctx;
  ctx.interrupted_ = claim.flag();
  return ctx.interrupted();
}

TEST(InflightRequests, MarksTheRunningRequestAndRemembersEarlyOnes) {
  InflightRequests table;
  {
    InflightRequests::Claim running(table, 10);
    EXPECT_FALSE(interrupted(running));
    EXPECT_TRUE(table.interrupt(10));
    EXPECT_TRUE(interrupted(running));
  }
  EXPECT_FALSE(table.interrupt(12)) << "not running yet";
  InflightRequests::Claim arriving(table, 12);
  EXPECT_TRUE(interrupted(arriving)) << "an interrupt that came first";
  InflightRequests::Claim other(table, 14);
  EXPECT_FALSE(interrupted(other));
  InflightRequests::Claim huge(table, std::uint64_t{1} << 63);  // no room for the mark: untracked
  EXPECT_EQ(huge.flag(), nullptr);
  table.interrupt_all();
  EXPECT_TRUE(interrupted(other));
  InflightRequests::Claim after(table, 16);
  EXPECT_TRUE(interrupted(after)) << "claimed after interrupt_all";
}

// Request U ends and request V takes its slot while an INTERRUPT for U is being marked: V must
// never see the mark. (V's id maps to U's slot: ids 2 * capacity apart.)
TEST(InflightRequests, AMarkNeverLandsOnTheRequestThatTookTheSlotOver) {
  InflightRequests table;
  constexpr std::uint64_t first = 2, second = first + 2 * InflightRequests::capacity;
  std::atomic<bool> done{false};
  std::thread interrupter([&] {
    while (!done.load()) (void)table.interrupt(first);
  });
  std::uint64_t spurious = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  while (std::chrono::steady_clock::now() < until) {
    { InflightRequests::Claim ending(table, first); }
    InflightRequests::Claim taking_over(table, second);
    if (interrupted(taking_over)) ++spurious;
  }
  done = true;
  interrupter.join();
  EXPECT_EQ(spurious, 0u);
}

}  // namespace
}  // namespace fuse_backend::api::detail
