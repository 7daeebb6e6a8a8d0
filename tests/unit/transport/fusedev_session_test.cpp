// Unit tests of fusedev::Session's error paths and mount data (nothing gets mounted here; the
// real mounts are in tests/integration/fusedev_*_test.cpp).
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include <fuse_backend/transport/fusedev/session.hpp>
#include <support/temp_dir.hpp>

namespace {

namespace fusedev = fuse_backend::transport::fusedev;
using fuse_backend::testing::TempDir;

TEST(FusedevSession, MissingMountpointIsEnoent) {
  TempDir dir("fusedev_session");
  auto session = fusedev::Session::mount((dir / "absent").string());
  ASSERT_FALSE(session);
  EXPECT_EQ(session.error(), std::errc::no_such_file_or_directory);
}

TEST(FusedevSession, RegularFileMountpointIsEnotdir) {
  TempDir dir("fusedev_session");
  std::ofstream(dir / "file") << "x";
  auto session = fusedev::Session::mount((dir / "file").string());
  ASSERT_FALSE(session);
  EXPECT_EQ(session.error(), std::errc::not_a_directory);
}

TEST(FusedevSession, PathThroughAFileIsEnotdir) {
  TempDir dir("fusedev_session");
  std::ofstream(dir / "file") << "x";
  auto session = fusedev::Session::mount((dir / "file" / "below").string());
  ASSERT_FALSE(session);
  EXPECT_EQ(session.error(), std::errc::not_a_directory);
}

TEST(FusedevSession, EmptyMountpointIsEnoent) {
  auto session = fusedev::Session::mount("");
  ASSERT_FALSE(session);
  EXPECT_EQ(session.error(), std::errc::no_such_file_or_directory);
}

TEST(FusedevSession, UnknownRawOptionIsRefusedByTheKernel) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to reach mount(2)";
  TempDir dir("fusedev_session");
  fusedev::MountOptions options;
  options.extra.push_back("no_such_option=1");
  auto session = fusedev::Session::mount(dir.str(), options);
  ASSERT_FALSE(session);
  EXPECT_EQ(session.error(), std::errc::invalid_argument);
}

TEST(FusedevMountData, CarriesFdRootmodeOwnerAndOptions) {
  fusedev::MountOptions options;
  EXPECT_EQ(fusedev::mount_data(options, 7, S_IFDIR, 1000, 100),
            "fd=7,rootmode=40000,user_id=1000,group_id=100");
  options.allow_other = true;
  options.default_permissions = true;
  options.max_read = 131072;
  options.extra = {"blksize=4096"};
  EXPECT_EQ(fusedev::mount_data(options, 3, S_IFREG, 0, 0),
            "fd=3,rootmode=100000,user_id=0,group_id=0,allow_other,default_permissions,"
            "max_read=131072,blksize=4096");
}

}  // namespace
