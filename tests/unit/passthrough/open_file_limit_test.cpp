// raise_open_file_limit: raises the soft limit (to the hard one without CAP_SYS_RESOURCE, past it
// with), never lowers anything. Each case runs in a child (a death test) so that this process's
// own limits stay as they were.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/passthrough/open_file_limit.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <gtest/gtest.h>

namespace fuse_backend::passthrough {
namespace {

// In the child: exits 0 when `ok`, else 1 after saying why.
void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "failed: %s\n", what);
  std::_Exit(1);
}

rlimit current() {
  rlimit limit{};
  require(::getrlimit(RLIMIT_NOFILE, &limit) == 0, "getrlimit");
  return limit;
}

// Soft 64, hard 1000 (lowering needs no privilege).
void start_low() {
  const rlimit low{64, 1000};
  require(::setrlimit(RLIMIT_NOFILE, &low) == 0, "setrlimit 64/1000");
}

TEST(RaiseOpenFileLimit, RaisesTheSoftLimitWithinTheHardOne) {
  EXPECT_EXIT(
      {
        start_low();
        const auto raised = raise_open_file_limit(500);
        require(raised && raised->before == 64 && raised->after == 500, "reported 64 -> 500");
        require(current().rlim_cur == 500 && current().rlim_max == 1000, "now 500/1000");
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(RaiseOpenFileLimit, NeverLowers) {
  EXPECT_EXIT(
      {
        start_low();
        const auto unchanged = raise_open_file_limit(10);
        require(unchanged && unchanged->before == 64 && unchanged->after == 64, "reported 64 -> 64");
        require(current().rlim_cur == 64 && current().rlim_max == 1000, "still 64/1000");
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

// Past the hard limit: both go to the wanted value with CAP_SYS_RESOURCE, else the soft one stops
// at the hard one. Either way the report matches the limit now in force.
TEST(RaiseOpenFileLimit, PastTheHardLimitAsFarAsAllowed) {
  EXPECT_EXIT(
      {
        start_low();
        const auto raised = raise_open_file_limit(5000);
        require(raised.has_value(), "no error");
        const rlimit now = current();
        require(raised->after == now.rlim_cur, "reports the limit in force");
        require((now.rlim_cur == 5000 && now.rlim_max == 5000) ||
                    (now.rlim_cur == 1000 && now.rlim_max == 1000),
                "5000/5000 with CAP_SYS_RESOURCE, else 1000/1000");
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace fuse_backend::passthrough
