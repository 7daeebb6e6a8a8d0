// Real-mount test of the unprivileged path: a forked child drops to uid/gid 65534 ("nobody"), so
// mount(2) refuses it and Session::mount must go through fusermount3 (_FUSE_COMMFD + SCM_RIGHTS),
// serve the mount, and unmount it with `fusermount3 -u`. Needs root (to drop privileges),
// /dev/fuse and the set-uid fusermount3 from Debian's fuse3 package.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>

#include <gtest/gtest.h>

#include <fuse_backend/detail/unique_fd.hpp>
#include <fuse_backend/transport/fusedev/service.hpp>
#include <fuse_backend/transport/fusedev/session.hpp>
#include <support/memory_fs.hpp>
#include <support/mount_guard.hpp>
#include <support/temp_dir.hpp>

namespace {

namespace fusedev = fuse_backend::transport::fusedev;
using fuse_backend::detail::UniqueFd;
using fuse_backend::testing::ChildGuard;
using fuse_backend::testing::MemoryFs;
using fuse_backend::testing::MountGuard;
using fuse_backend::testing::TempDir;

constexpr uid_t nobody = 65534;

// What the child does, as an exit code: 0, or the step that failed (with a line on stderr).
int mount_serve_unmount_as_nobody(const std::string& mountpoint) {
  if (::setgroups(0, nullptr) != 0 || ::setgid(nobody) != 0 || ::setuid(nobody) != 0) return 10;
  // A comma in a name must not become an option: unescaped, this would ask fusermount3 for
  // allow_other, which it refuses to an ordinary user.
  fusedev::MountOptions options;
  options.fsname = "/srv/a,allow_other";
  auto session = fusedev::Session::mount(mountpoint, options);
  if (!session) {
    std::fprintf(stderr, "mount: %s\n", std::make_error_code(session.error()).message().c_str());
    return 11;
  }
  if (!session->via_fusermount()) return 12;
  MemoryFs fs;
  fusedev::Service service(*session, fs);
  if (!service.start()) return 13;
  {
    const std::string file = mountpoint + "/file";
    UniqueFd fd(::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    char back[5] = {};
    if (!fd || ::write(fd.get(), "hello", 5) != 5 || ::pread(fd.get(), back, 5, 0) != 5 ||
        std::memcmp(back, "hello", 5) != 0) {
      std::fprintf(stderr, "io: %s\n", std::strerror(errno));
      return 14;
    }
  }
  if (auto unmounted = session->unmount(); !unmounted) {
    std::fprintf(stderr, "unmount: %s\n", std::make_error_code(unmounted.error()).message().c_str());
    return 15;
  }
  if (!service.join()) return 16;
  return 0;
}

TEST(FusedevUnprivileged, MountsServesAndUnmountsThroughFusermount3) {
  ASSERT_EQ(::geteuid(), 0u) << "needs root to drop privileges";
  ASSERT_EQ(::access("/usr/bin/fusermount3", X_OK), 0) << "fusermount3 (Debian package fuse3) is missing";
  TempDir dir("fuse_backend_unprivileged");
  ASSERT_EQ(::chmod(dir.str().c_str(), 0755), 0);
  ASSERT_EQ(::chown(dir.str().c_str(), nobody, nobody), 0);
  MountGuard guard(dir.str());

  std::fflush(nullptr);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) ::_exit(mount_serve_unmount_as_nobody(dir.str()));
  ChildGuard child(pid);
  const auto status = child.wait_for(20'000);
  ASSERT_TRUE(status) << "the unprivileged child hung";
  ASSERT_TRUE(WIFEXITED(*status)) << "status " << *status;
  EXPECT_EQ(WEXITSTATUS(*status), 0) << "failed step (see the child's stderr)";
  EXPECT_FALSE(fuse_backend::testing::is_mounted(dir.str()));
}

}  // namespace
