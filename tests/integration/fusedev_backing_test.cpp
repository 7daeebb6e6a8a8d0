// Real-mount test of FUSE passthrough through the /dev/fuse transport: a filesystem that opts in
// to abi::init_flags::passthrough registers a host file with Context::backing_files() (our
// DeviceBackingFiles: FUSE_DEV_IOC_BACKING_OPEN on the device fd) and answers OPEN with
// FOPEN_PASSTHROUGH, after which the kernel reads the host file directly: what the test reads is
// the host file's content, not the in-memory one. Needs root, /dev/fuse and Linux >= 6.9.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/api/server.hpp>
#include <fuse_backend/detail/unique_fd.hpp>
#include <support/memory_fs.hpp>
#include <support/served_mount.hpp>
#include <support/temp_dir.hpp>

namespace {

namespace abi = fuse_backend::abi;
namespace api = fuse_backend::api;
using fuse_backend::Result;
using fuse_backend::detail::UniqueFd;
using fuse_backend::testing::MemoryFs;
using fuse_backend::testing::ServedMount;
using fuse_backend::testing::TempDir;

// MemoryFs whose regular files, once opened, are served by the kernel from one host file.
class BackedFs : public MemoryFs {
 public:
  explicit BackedFs(int host_fd) : host_fd_(host_fd) {}

  Result<std::uint64_t> init(std::uint64_t offered) {
    return offered & (api::default_init_flags<BackedFs>() | abi::init_flags::passthrough);
  }
  Result<api::OpenReply> open(const api::Context& ctx, api::InodeId inode, std::uint32_t flags,
                              std::uint32_t open_flags) {
    auto reply = MemoryFs::open(ctx, inode, flags, open_flags);
    if (!reply) return reply;
    auto id = ctx.backing_files().open(host_fd_);
    if (!id) {
      last_error_ = static_cast<int>(id.error());
      return fuse_backend::fail(id.error());
    }
    reply->open_flags |= abi::fopen::passthrough;
    reply->backing_id = *id;
    backing_id_ = *id;
    backed_handle_ = static_cast<std::uint64_t>(reply->handle);
    return reply;
  }
  // The kernel holds its own reference to the backing file once the open reply is in; the id
  // can be dropped right after, but this test keeps it until the RELEASE of the handle that got
  // it (not that of an earlier handle, whose RELEASE may arrive late) to exercise close().
  Result<void> release(const api::Context& ctx, api::InodeId inode, api::HandleId handle, std::uint32_t flags,
                       std::uint32_t release_flags, std::uint64_t lock_owner) {
    if (backing_id_ != 0 && static_cast<std::uint64_t>(handle) == backed_handle_) {
      closed_ = ctx.backing_files().close(backing_id_).has_value();
    }
    return MemoryFs::release(ctx, inode, handle, flags, release_flags, lock_owner);
  }

  int last_error() const { return last_error_; }
  bool closed() const { return closed_; }

 private:
  int host_fd_;
  std::atomic<int> last_error_{0};
  std::atomic<std::int32_t> backing_id_{0};
  std::atomic<std::uint64_t> backed_handle_{0};
  std::atomic<bool> closed_{false};
};

TEST(FusedevBackingFiles, PassthroughReadsComeFromTheHostFile) {
  TempDir host("fuse_backend_backing");
  const std::string host_file = (host / "host").string();
  {
    UniqueFd fd(::open(host_file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    ASSERT_EQ(::write(fd.get(), "from the host file", 18), 18);
  }
  UniqueFd host_fd(::open(host_file.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(host_fd.valid());

  BackedFs fs(host_fd.get());
  ServedMount<BackedFs> mount(fs);
  ASSERT_TRUE(mount.ok()) << mount.error();
  {
    // Created empty in memory (create takes no backing file here).
    UniqueFd created(::open(mount.path("f").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    ASSERT_TRUE(created.valid()) << std::strerror(errno);
  }
  // INIT has been answered by now (the kernel holds every request until it is).
  ASSERT_NE(mount.service().server().negotiated_flags() & abi::init_flags::passthrough, 0u)
      << "the kernel did not offer FUSE_PASSTHROUGH";
  UniqueFd fd(::open(mount.path("f").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid()) << std::strerror(errno) << " (backing open errno " << fs.last_error() << ")";
  std::array<char, 64> buffer{};
  const ssize_t n = ::pread(fd.get(), buffer.data(), buffer.size(), 0);
  ASSERT_EQ(n, 18) << std::strerror(errno);
  EXPECT_EQ(std::string(buffer.data(), 18), "from the host file");
  fd.reset();
  for (int i = 0; i < 200 && !fs.closed(); ++i) ::usleep(10'000);  // RELEASE is asynchronous
  EXPECT_TRUE(fs.closed()) << "FUSE_DEV_IOC_BACKING_CLOSE failed";
}

}  // namespace
