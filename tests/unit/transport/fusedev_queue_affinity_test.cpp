// QueueAffinity's decisions: start on the home CPU, widen on the first reap of two or more
// requests, come home after calm_reaps single-request reaps in a row (a busy reap restarts the
// count), and never pin where pinning means nothing or is not allowed. (That a real queue thread
// moves: FusedevService.IoUringQueueThreadLeavesItsCpuUnderLoadAndComesBack.)
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <sched.h>

#include <initializer_list>

#include <gtest/gtest.h>

#include <fuse_backend/transport/fusedev/queue_affinity.hpp>

namespace {

using fuse_backend::transport::fusedev::QueueAffinity;

cpu_set_t cpus(std::initializer_list<int> list) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int cpu : list) CPU_SET(cpu, &set);
  return set;
}

bool same(const cpu_set_t* a, const cpu_set_t& b) { return a != nullptr && CPU_EQUAL(a, &b); }

TEST(QueueAffinity, StartsOnItsHomeCpu) {
  QueueAffinity affinity(2, cpus({0, 1, 2, 3}));
  EXPECT_TRUE(affinity.pinned());
  const cpu_set_t home = cpus({2});
  EXPECT_TRUE(CPU_EQUAL(&affinity.home(), &home));
}

TEST(QueueAffinity, SingleRequestsKeepItHome) {
  QueueAffinity affinity(1, cpus({0, 1}));
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(affinity.after_reap(1), nullptr);
  EXPECT_TRUE(affinity.pinned());
}

TEST(QueueAffinity, TwoRequestsInOneReapWidenItToEveryAllowedCpu) {
  const cpu_set_t allowed = cpus({0, 1, 5});
  QueueAffinity affinity(1, allowed);
  EXPECT_TRUE(same(affinity.after_reap(2), allowed));
  EXPECT_FALSE(affinity.pinned());
  EXPECT_EQ(affinity.after_reap(16), nullptr) << "already wide";
}

TEST(QueueAffinity, ComesHomeAfterCalmReapsOfOneRequestInARow) {
  QueueAffinity affinity(0, cpus({0, 1}));
  ASSERT_NE(affinity.after_reap(3), nullptr);
  for (unsigned i = 1; i < QueueAffinity::calm_reaps; ++i) {
    ASSERT_EQ(affinity.after_reap(1), nullptr) << i;
  }
  EXPECT_TRUE(same(affinity.after_reap(1), cpus({0})));
  EXPECT_TRUE(affinity.pinned());
}

TEST(QueueAffinity, ABusyReapRestartsTheCount) {
  QueueAffinity affinity(0, cpus({0, 1}));
  ASSERT_NE(affinity.after_reap(2), nullptr);
  for (unsigned i = 1; i < QueueAffinity::calm_reaps; ++i) {
    ASSERT_EQ(affinity.after_reap(1), nullptr) << i;
  }
  EXPECT_EQ(affinity.after_reap(2), nullptr);
  for (unsigned i = 1; i < QueueAffinity::calm_reaps; ++i) {
    ASSERT_EQ(affinity.after_reap(1), nullptr) << i;
  }
  EXPECT_NE(affinity.after_reap(1), nullptr);
}

TEST(QueueAffinity, NeverPinsOutsideItsAllowedCpusOrWithOneCpu) {
  for (const cpu_set_t& allowed : {cpus({0, 1}), cpus({3}), cpus({})}) {
    QueueAffinity affinity(3, allowed);
    QueueAffinity beyond_the_set(CPU_SETSIZE, cpus({0, 1}));
    EXPECT_FALSE(beyond_the_set.pinned());
    EXPECT_EQ(beyond_the_set.after_reap(2), nullptr);
    EXPECT_FALSE(affinity.pinned());
    for (unsigned requests : {2u, 1u, 5u}) {
      for (unsigned i = 0; i <= QueueAffinity::calm_reaps; ++i) {
        EXPECT_EQ(affinity.after_reap(requests), nullptr);
      }
    }
  }
}

}  // namespace
