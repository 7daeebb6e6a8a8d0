// ScopedCredentials / ScopedNoFsetid: the switch is per thread, complete, and undone.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/passthrough/credentials.hpp>

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <tuple>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fuse_backend/abi/kernel.hpp>

namespace fuse_backend::passthrough {
namespace {

// One line of /proc/thread-self/status ("Uid:", "Gid:", "Groups:", "CapEff:"), after the key.
std::string status_line(const std::string& key) {
  std::ifstream in("/proc/thread-self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key, 0) == 0) return line.substr(key.size());
  return {};
}

// The fourth id of a Uid:/Gid: line is the filesystem id.
unsigned fs_id(const std::string& key) {
  std::istringstream ids(status_line(key));
  unsigned real, effective, saved, fs;
  ids >> real >> effective >> saved >> fs;
  return fs;
}

std::string groups() {
  std::istringstream in(status_line("Groups:"));
  std::string all, one;
  while (in >> one) all += one + " ";
  return all;
}

api::Context caller(std::uint32_t uid, std::uint32_t gid) {
  api::Context ctx;
  ctx.uid = uid;
  ctx.gid = gid;
  return ctx;
}

class CredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_FAIL() << "credential switching is only done (and testable) as root";
    daemon_groups_.resize(static_cast<std::size_t>(::getgroups(0, nullptr)));
    ::getgroups(static_cast<int>(daemon_groups_.size()), daemon_groups_.data());
  }
  std::vector<gid_t> daemon_groups_;
};

TEST_F(CredentialsTest, SwitchesFsIdsAndGroupsOfThisThreadOnly) {
  const std::string before_groups = groups();
  const std::uint32_t supplementary[] = {7001, 7002};
  auto ctx = caller(4242, 4343);
  ctx.supplementary_groups = supplementary;
  // A thread that exists before the switch (a new thread would inherit the switched ids).
  std::promise<void> switched;
  std::promise<std::tuple<unsigned, unsigned, std::string>> seen;
  std::thread other([&] {
    switched.get_future().wait();
    seen.set_value({fs_id("Uid:"), fs_id("Gid:"), groups()});
  });
  {
    auto creds = ScopedCredentials::enter(ctx, daemon_groups_);
    ASSERT_TRUE(creds);
    EXPECT_EQ(fs_id("Uid:"), 4242u);
    EXPECT_EQ(fs_id("Gid:"), 4343u);
    EXPECT_EQ(groups(), "7001 7002 ");
    switched.set_value();
    const auto [uid, gid, other_groups] = seen.get_future().get();
    other.join();
    EXPECT_EQ(uid, 0u);
    EXPECT_EQ(gid, 0u);
    EXPECT_EQ(other_groups, before_groups);
    // Moving the guard does not restore early.
    auto moved = std::move(*creds);
    EXPECT_EQ(fs_id("Uid:"), 4242u);
  }
  EXPECT_EQ(fs_id("Uid:"), 0u);
  EXPECT_EQ(fs_id("Gid:"), 0u);
  EXPECT_EQ(groups(), before_groups);
}

// On a thread of its own holding daemon groups {4545}: a caller without groups gets none, one
// with the daemon's keeps them (no setgroups needed), and the daemon's are back afterwards.
TEST_F(CredentialsTest, CallerGetsExactlyItsOwnGroups) {
  std::thread([] {
    const gid_t daemon[] = {4545};
    ASSERT_EQ(::syscall(SYS_setgroups, 1L, daemon), 0);
    const std::uint32_t same[] = {4545};
    using Groups = std::span<const std::uint32_t>;
    for (const Groups wanted : {Groups{}, Groups{same}}) {
      auto ctx = caller(4242, 4242);
      ctx.supplementary_groups = wanted;
      {
        auto creds = ScopedCredentials::enter(ctx, daemon);
        ASSERT_TRUE(creds);
        EXPECT_EQ(groups(), wanted.empty() ? "" : "4545 ");
        EXPECT_EQ(fs_id("Uid:"), 4242u);
      }
      EXPECT_EQ(groups(), "4545 ");
      EXPECT_EQ(fs_id("Uid:"), 0u);
    }
  }).join();
}

TEST_F(CredentialsTest, RootCallerSwitchesNothing) {
  const std::string before = status_line("CapEff:");
  auto creds = ScopedCredentials::enter(caller(0, 0), daemon_groups_);
  ASSERT_TRUE(creds);
  EXPECT_EQ(fs_id("Uid:"), 0u);
  EXPECT_EQ(status_line("CapEff:"), before);
}

TEST_F(CredentialsTest, FileCapabilitiesComeBackAfterTheSwitch) {
  const std::string before = status_line("CapEff:");
  {
    auto creds = ScopedCredentials::enter(caller(4242, 4242), daemon_groups_);
    ASSERT_TRUE(creds);
    EXPECT_NE(status_line("CapEff:"), before);  // fsuid != 0 drops CAP_DAC_OVERRIDE & co.
  }
  EXPECT_EQ(status_line("CapEff:"), before);
}

TEST_F(CredentialsTest, UnmappedIdsAreRefused) {
  EXPECT_EQ(ScopedCredentials::enter(caller(abi::invalid_uidgid, 0), daemon_groups_).error(),
            std::errc::operation_not_permitted);
  EXPECT_EQ(ScopedCredentials::enter(caller(0, abi::invalid_uidgid), daemon_groups_).error(),
            std::errc::operation_not_permitted);
  EXPECT_EQ(fs_id("Uid:"), 0u);
}

TEST_F(CredentialsTest, NoFsetidDropsAndRestoresOneCapability) {
  const std::string before = status_line("CapEff:");
  {
    auto scope = ScopedNoFsetid::enter();
    ASSERT_TRUE(scope);
    const auto during = std::stoull(status_line("CapEff:"), nullptr, 16);
    EXPECT_EQ(during & (1ull << CAP_FSETID), 0u);
    EXPECT_EQ(during | (1ull << CAP_FSETID), std::stoull(before, nullptr, 16));
  }
  EXPECT_EQ(status_line("CapEff:"), before);
}

}  // namespace
}  // namespace fuse_backend::passthrough
