// set_status_flag changes only the flag asked for, in either direction, and reports a bad fd.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <system_error>

#include <gtest/gtest.h>

#include <fuse_backend/detail/status_flags.hpp>
#include <fuse_backend/detail/unique_fd.hpp>

namespace {

using fuse_backend::detail::set_status_flag;
using fuse_backend::detail::UniqueFd;

TEST(SetStatusFlag, SetsAndClearsOneFlagAndKeepsTheOthers) {
  std::array<int, 2> ends{};
  ASSERT_EQ(::pipe2(ends.data(), O_CLOEXEC), 0);
  UniqueFd read_end(ends[0]), write_end(ends[1]);
  ASSERT_EQ(::fcntl(write_end.get(), F_SETFL, O_APPEND), 0);
  ASSERT_TRUE(set_status_flag(write_end.get(), O_NONBLOCK, true));
  EXPECT_EQ(::fcntl(write_end.get(), F_GETFL) & (O_NONBLOCK | O_APPEND), O_NONBLOCK | O_APPEND);
  ASSERT_TRUE(set_status_flag(write_end.get(), O_NONBLOCK, true)) << "already set";
  ASSERT_TRUE(set_status_flag(write_end.get(), O_NONBLOCK, false));
  EXPECT_EQ(::fcntl(write_end.get(), F_GETFL) & (O_NONBLOCK | O_APPEND), O_APPEND);
}

TEST(SetStatusFlag, ABadFdIsAnError) {
  auto result = set_status_flag(-1, O_NONBLOCK, true);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error(), std::errc::bad_file_descriptor);
}

}  // namespace
