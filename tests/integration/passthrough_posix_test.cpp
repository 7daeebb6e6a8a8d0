// POSIX behaviour of PassthroughFs through a real mount: every op via ordinary system calls on
// the mountpoint, checked against the source directory. Every test but the FORGET one runs
// twice: served over /dev/fuse, and over FUSE-over-io_uring (which must then have carried
// requests). Needs root and /dev/fuse.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <dirent.h>
#include <linux/fs.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <future>
#include <optional>
#include <set>
#include <utility>
#include <thread>
#include <vector>

#include <support/cpu_pin.hpp>
#include <support/eventually.hpp>
#include <support/fuse_io_uring.hpp>
#include <support/wait_channel.hpp>

#include "passthrough_mount_fixture.hpp"

namespace fuse_backend::passthrough::testing {
namespace {

namespace fs = std::filesystem;

// Takes a flock that another description held until it was closed. The kernel sends the RELEASE
// that drops it in the background after close(2) returns (libfuse daemons see the same), so a
// conflict is retried for a few seconds; a flock the daemon never drops still fails.
bool flock_once_released(int fd, int operation) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (::flock(fd, operation | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK || std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

enum class Transport { dev_fuse, io_uring };

class PassthroughPosix : public PassthroughMount, public ::testing::WithParamInterface<Transport> {
 protected:
  static void SetUpTestSuite() { ASSERT_EQ(fuse_backend::testing::enable_fuse_io_uring(), ""); }
  PassthroughPosix() { io_uring_ = GetParam() == Transport::io_uring; }
  // Serves with one lock waiter allowed, makes "f" and returns an fd of it, opened through the
  // mount or on the host, holding an exclusive flock; invalid on failure.
  enum class Holder { mount, host };
  UniqueFd start_holding_a_lock(Holder holder) {
    Config config = uncached();
    config.max_lock_waiters = 1;
    start(config);
    write_file(path("f"), "0123456789");
    UniqueFd fd = open_file(holder == Holder::host ? host("f") : path("f"), O_RDWR);
    if (fd.valid() && ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      ADD_FAILURE() << "flock: " << errno_text();
      fd.reset();
    }
    return fd;
  }
  void TearDown() override {
    // Still mounted: the ring must have served this test's requests, not /dev/fuse alone.
    if (io_uring_ && mount_) {
      EXPECT_GT(mount_->service().io_uring_requests(), 0u);
    }
  }
};

INSTANTIATE_TEST_SUITE_P(Transports, PassthroughPosix,
                         ::testing::Values(Transport::dev_fuse, Transport::io_uring),
                         [](const ::testing::TestParamInfo<Transport>& param) {
                           return param.param == Transport::io_uring ? "io_uring" : "dev_fuse";
                         });

TEST_P(PassthroughPosix, FilesReadWriteAppendTruncate) {
  start();
  write_file(path("f"), "hello");
  EXPECT_EQ(read_file(host("f")), "hello");
  {
    UniqueFd fd = open_file(path("f"), O_WRONLY | O_APPEND);
    ASSERT_TRUE(fd.valid()) << errno_text();
    ASSERT_EQ(::write(fd.get(), " world", 6), 6);
  }
  EXPECT_EQ(read_file(path("f")), "hello world");
  ASSERT_EQ(::truncate(path("f").c_str(), 5), 0) << errno_text();
  EXPECT_EQ(read_file(host("f")), "hello");
  {
    UniqueFd fd = open_file(path("f"), O_RDWR);
    ASSERT_EQ(::pwrite(fd.get(), "J", 1, 0), 1);
    ASSERT_EQ(::ftruncate(fd.get(), 3), 0);
    char buffer[8] = {};
    EXPECT_EQ(::pread(fd.get(), buffer, sizeof buffer, 0), 3);
    EXPECT_EQ(std::string(buffer), "Jel");
    EXPECT_EQ(::fsync(fd.get()), 0);
    EXPECT_EQ(::fdatasync(fd.get()), 0);
  }
  // O_TRUNC on open; O_EXCL on an existing name.
  UniqueFd trunc = open_file(path("f"), O_WRONLY | O_TRUNC);
  ASSERT_TRUE(trunc.valid());
  EXPECT_EQ(fs::file_size(host("f")), 0u);
  EXPECT_FALSE(open_file(path("f"), O_WRONLY | O_CREAT | O_EXCL).valid());
  EXPECT_EQ(errno, EEXIST);
}

TEST_P(PassthroughPosix, AttributesChmodChownUtimesStatfs) {
  start();
  write_file(path("f"), "12345");
  struct stat through {}, direct {};
  ASSERT_EQ(::stat(path("f").c_str(), &through), 0);
  ASSERT_EQ(::stat(host("f").c_str(), &direct), 0);
  EXPECT_EQ(through.st_ino, direct.st_ino);
  EXPECT_EQ(through.st_size, 5);
  ASSERT_EQ(::chmod(path("f").c_str(), 0640), 0);
  ASSERT_EQ(::chown(path("f").c_str(), 1234, 5678), 0) << errno_text();
  const struct timespec times[2] = {{1000, 0}, {2000, 500}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path("f").c_str(), times, 0), 0);
  ASSERT_EQ(::stat(host("f").c_str(), &direct), 0);
  EXPECT_EQ(direct.st_mode & 07777, 0640u);
  EXPECT_EQ(direct.st_uid, 1234u);
  EXPECT_EQ(direct.st_gid, 5678u);
  EXPECT_EQ(direct.st_mtim.tv_sec, 2000);
  EXPECT_EQ(direct.st_mtim.tv_nsec, 500);
  struct statx stx {};
  ASSERT_EQ(::statx(AT_FDCWD, path("f").c_str(), 0, STATX_BASIC_STATS | STATX_BTIME, &stx), 0);
  EXPECT_EQ(stx.stx_size, 5u);
  EXPECT_EQ(stx.stx_mtime.tv_sec, 2000);
  struct statvfs mounted {}, native {};
  ASSERT_EQ(::statvfs(path().c_str(), &mounted), 0);
  ASSERT_EQ(::statvfs(source_.str().c_str(), &native), 0);
  EXPECT_EQ(mounted.f_blocks * mounted.f_frsize, native.f_blocks * native.f_frsize);
  EXPECT_EQ(mounted.f_namemax, 255u);
  // Succeeds, but the kernel sends FUSE_SYNCFS only to virtio-fs, never over /dev/fuse: the
  // daemon's syncfs is checked by the unit tests and run by the guest's sync (virtiofs_guest_test).
  ::sync();
  EXPECT_EQ(::syncfs(UniqueFd(::open(path().c_str(), O_RDONLY)).get()), 0);
}

TEST_P(PassthroughPosix, DirectoriesListingAndRemoval) {
  start();
  ASSERT_EQ(::mkdir(path("d").c_str(), 0755), 0);
  std::set<std::string> expected = {".", ".."};
  for (int i = 0; i < 1500; ++i) {
    const std::string name = "entry-" + std::to_string(i);
    write_file(path("d/" + name), "");
    expected.insert(name);
  }
  const auto names = list_dir(path("d"), /*with_dots=*/true);
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()), expected);
  EXPECT_EQ(names.size(), expected.size());  // no duplicates across READDIRPLUS calls
  EXPECT_EQ(::rmdir(path("d").c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);
  for (int i = 0; i < 1500; ++i) ASSERT_EQ(::unlink(path("d/entry-" + std::to_string(i)).c_str()), 0);
  EXPECT_EQ(::rmdir(path("d").c_str()), 0) << errno_text();
  EXPECT_FALSE(fs::exists(host("d")));
  // Directory seeks: telldir/seekdir go back to the same entry.
  ASSERT_EQ(::mkdir(path("s").c_str(), 0755), 0);
  for (int i = 0; i < 100; ++i) write_file(path("s/" + std::to_string(i)), "");
  DIR* d = ::opendir(path("s").c_str());
  ASSERT_NE(d, nullptr);
  for (int i = 0; i < 40; ++i) ASSERT_NE(::readdir(d), nullptr);
  const long cookie = ::telldir(d);
  const std::string next = ::readdir(d)->d_name;
  for (int i = 0; i < 30; ++i) ::readdir(d);
  ::seekdir(d, cookie);
  EXPECT_EQ(std::string(::readdir(d)->d_name), next);
  ::closedir(d);
}

TEST_P(PassthroughPosix, RenameVariants) {
  start();
  write_file(path("a"), "A");
  write_file(path("b"), "B");
  ASSERT_EQ(::mkdir(path("d").c_str(), 0755), 0);
  EXPECT_EQ(::renameat2(AT_FDCWD, path("a").c_str(), AT_FDCWD, path("b").c_str(), RENAME_NOREPLACE), -1);
  EXPECT_EQ(errno, EEXIST);
  ASSERT_EQ(::renameat2(AT_FDCWD, path("a").c_str(), AT_FDCWD, path("b").c_str(), RENAME_EXCHANGE), 0)
      << errno_text();
  EXPECT_EQ(read_file(host("a")), "B");
  EXPECT_EQ(read_file(host("b")), "A");
  ASSERT_EQ(::rename(path("a").c_str(), path("d/moved").c_str()), 0);
  EXPECT_EQ(read_file(path("d/moved")), "B");
  ASSERT_EQ(::rename(path("b").c_str(), path("d/moved").c_str()), 0);  // replaces
  EXPECT_EQ(read_file(host("d/moved")), "A");
  EXPECT_FALSE(fs::exists(host("b")));
  ASSERT_EQ(::rename(path("d").c_str(), path("e").c_str()), 0);
  EXPECT_EQ(read_file(path("e/moved")), "A");
  ASSERT_EQ(::renameat2(AT_FDCWD, path("e/moved").c_str(), AT_FDCWD, path("w").c_str(), RENAME_WHITEOUT), 0)
      << errno_text();
  struct stat st {};
  ASSERT_EQ(::lstat(host("e/moved").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
}

TEST_P(PassthroughPosix, HardLinksAndInodeIdentity) {
  start();
  write_file(path("a"), "shared");
  ASSERT_EQ(::mkdir(path("d").c_str(), 0755), 0);
  ASSERT_EQ(::link(path("a").c_str(), path("d/b").c_str()), 0) << errno_text();
  struct stat a {}, b {};
  ASSERT_EQ(::stat(path("a").c_str(), &a), 0);
  ASSERT_EQ(::stat(path("d/b").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_nlink, 2u);
  EXPECT_EQ(b.st_nlink, 2u);
  write_file(path("d/b"), "changed");
  EXPECT_EQ(read_file(path("a")), "changed");
  ASSERT_EQ(::unlink(path("a").c_str()), 0);
  ASSERT_EQ(::stat(path("d/b").c_str(), &b), 0);
  EXPECT_EQ(b.st_nlink, 1u);
  EXPECT_EQ(read_file(path("d/b")), "changed");
  // A host-side link made behind the mount's back is the same inode too.
  ASSERT_EQ(::link(host("d/b").c_str(), host("c").c_str()), 0);
  struct stat c {};
  ASSERT_EQ(::stat(path("c").c_str(), &c), 0);
  EXPECT_EQ(c.st_ino, b.st_ino);
}

TEST_P(PassthroughPosix, SymlinksAndSpecialFiles) {
  start();
  ASSERT_EQ(::symlink("target/of/link", path("link").c_str()), 0);
  char buffer[64] = {};
  ASSERT_EQ(::readlink(path("link").c_str(), buffer, sizeof buffer), 14);
  EXPECT_EQ(std::string(buffer), "target/of/link");
  EXPECT_TRUE(fs::is_symlink(host("link")));
  struct stat st {};
  ASSERT_EQ(::lstat(path("link").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0600), 0) << errno_text();
  ASSERT_EQ(::lstat(host("fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  // The mount is nodev: the node is created, but opening it is the kernel's refusal.
  ASSERT_EQ(::mknod(path("null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0) << errno_text();
  ASSERT_EQ(::lstat(host("null").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_FALSE(open_file(path("null"), O_RDONLY).valid());
}

TEST_P(PassthroughPosix, PermissionsAreCheckedAsTheCaller) {
  ::chmod(source_.str().c_str(), 0755);  // mkdtemp made it 0700: nobody else could search it
  start();
  write_file(host("secret"), "root only");
  ::chmod(host("secret").c_str(), 0600);
  ::mkdir(host("rootdir").c_str(), 0755);
  ::mkdir(host("open").c_str(), 0777);
  const std::string secret = path("secret"), rootdir = path("rootdir"), open_dir = path("open");
  const int result = as_user(4242, 4242, [&] {
    if (::open(secret.c_str(), O_RDONLY) != -1 || errno != EACCES) return 1;
    if (::faccessat(AT_FDCWD, secret.c_str(), R_OK, AT_EACCESS) != -1 || errno != EACCES) return 2;
    if (::mkdir((rootdir + "/x").c_str(), 0755) != -1 || errno != EACCES) return 3;
    if (::unlink(secret.c_str()) != -1 || errno != EACCES) return 4;
    if (::chmod(secret.c_str(), 0666) != -1 || errno != EPERM) return 5;
    const int fd = ::open((open_dir + "/mine").c_str(), O_CREAT | O_WRONLY, 0640);
    if (fd < 0) return 6;
    ::close(fd);
    if (::mkdir((open_dir + "/mydir").c_str(), 0700) != 0) return 7;
    if (::chmod((open_dir + "/mine").c_str(), 0600) != 0) return 8;
    return 0;
  });
  EXPECT_EQ(result, 0);
  struct stat st {};
  ASSERT_EQ(::stat(host("open/mine").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 4242u);
  EXPECT_EQ(st.st_gid, 4242u);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat(host("open/mydir").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 4242u);
  EXPECT_EQ(read_file(host("secret")), "root only");
}

TEST_P(PassthroughPosix, ExtendedAttributes) {
  start();
  write_file(path("f"), "");
  ASSERT_EQ(::setxattr(path("f").c_str(), "user.color", "blue", 4, 0), 0) << errno_text();
  char value[16] = {};
  EXPECT_EQ(::getxattr(path("f").c_str(), "user.color", value, sizeof value), 4);
  EXPECT_EQ(std::string(value), "blue");
  EXPECT_EQ(::getxattr(host("f").c_str(), "user.color", value, sizeof value), 4);
  EXPECT_EQ(::setxattr(path("f").c_str(), "user.color", "red", 3, XATTR_CREATE), -1);
  EXPECT_EQ(errno, EEXIST);
  char names[64] = {};
  const ssize_t size = ::listxattr(path("f").c_str(), names, sizeof names);
  ASSERT_GT(size, 0);
  EXPECT_NE(std::string(names, static_cast<std::size_t>(size)).find("user.color"), std::string::npos);
  ASSERT_EQ(::removexattr(path("f").c_str(), "user.color"), 0);
  EXPECT_EQ(::getxattr(path("f").c_str(), "user.color", value, sizeof value), -1);
  EXPECT_EQ(errno, ENODATA);
}

// flock(1) blocked taking an exclusive flock of `file` that this process holds: a program of
// its own (exec), so that it does not keep copies of the service's fds (a forked copy of an
// io_uring fd keeps the ring, and with it the requests it holds, alive for as long as the child
// lives, which can be for ever when the child waits on this very mount).
class LockWaiter {
 public:
  explicit LockWaiter(const std::string& file) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::alarm(20);  // kept across exec: a wait nothing ends kills it (the test fails), not the run
      ::execl("/usr/bin/flock", "flock", "--exclusive", file.c_str(), "true", nullptr);
      ::_exit(127);
    }
    child_.emplace(pid);
  }
  // Whether it is waiting for the answer to a FUSE request (its flock(2)) within 10 s.
  bool waiting() {
    for (int i = 0; i < 1000; ++i) {
      if (fuse_backend::testing::wait_channel(pid()) == "request_wait_answer") return true;
      if (status()) return false;  // ended instead
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  pid_t pid() const { return child_->pid(); }
  // Its wait status, or nothing when it has not ended within `timeout_ms`.
  std::optional<int> status(int timeout_ms = 0) { return child_->wait_for(timeout_ms); }

 private:
  std::optional<ChildGuard> child_;
};

// Drops an flock held on `fd` at the latest when it goes (before a LockWaiter declared earlier:
// a killed waiter still waits for its answer, which needs the lock).
class LockHolder {
 public:
  explicit LockHolder(int fd) noexcept : fd_(fd) {}
  ~LockHolder() { (void)release(); }
  LockHolder(const LockHolder&) = delete;
  LockHolder& operator=(const LockHolder&) = delete;
  bool release() noexcept {
    const int fd = std::exchange(fd_, -1);
    return fd < 0 || ::flock(fd, LOCK_UN) == 0;
  }

 private:
  int fd_;
};

// A lock held on `held` (see start_holding_a_lock) and flock(1) waiting for it on the mount,
// both pinned to one CPU (over io_uring: one queue for the waiter and the unlock); the lock is
// dropped before the waiter is reaped.
struct WaitingForAHeldLock {
  WaitingForAHeldLock(UniqueFd held, const std::string& file, const OpcodeCounter& counter)
      : fd(std::move(held)), requests(counter), waits_before(counter[abi::opcode::setlkw]),
        waiter(file), holder(fd.get()) {}
  // Whether flock(1) waits for its answer and the daemon has its SETLKW, within 10 s. The kernel
  // sends FUSE_INTERRUPT for a request only once the daemon has it; over io_uring (Linux 6.18)
  // it does not catch up with a signal that came while the request was still on its way to the
  // ring (fuse_uring_prepare_send sets FR_SENT without looking at FR_INTERRUPTED, which
  // fuse_dev_do_read does), so a test that signalled before then would wait for ever.
  bool waiting() {
    const auto daemon_has_it = [this] { return requests[abi::opcode::setlkw] > waits_before; };
    return waiter.waiting() && fuse_backend::testing::eventually(daemon_has_it);
  }
  UniqueFd fd;
  const OpcodeCounter& requests;
  const std::uint64_t waits_before;
  fuse_backend::testing::OnOneCpu pinned{fuse_backend::testing::first_allowed_cpu()};
  LockWaiter waiter;
  LockHolder holder;
};

// A blocking lock waits without holding up other requests, the unlock among them, even from the
// waiter's own CPU (over io_uring: its queue), and is granted by that unlock.
TEST_P(PassthroughPosix, BlockingLockWaitsForTheUnlockFromItsOwnCpu) {
  UniqueFd fd = start_holding_a_lock(Holder::mount);
  ASSERT_TRUE(fd.valid());
  WaitingForAHeldLock lock(std::move(fd), path("f"), requests_);
  ASSERT_TRUE(lock.waiting()) << "a blocking flock of a held lock did not wait";
  struct stat st {};
  EXPECT_EQ(::stat(path("f").c_str(), &st), 0) << "other requests are served meanwhile";
  ASSERT_TRUE(lock.holder.release()) << errno_text();
  const auto status = lock.waiter.status(10000);
  ASSERT_TRUE(status) << "not granted after the unlock";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "status " << *status;
}

// A fatal signal to the waiting process makes the kernel send FUSE_INTERRUPT (over /dev/fuse also
// with io_uring) and wait for the answer; the wait must end with it while the lock is still held.
TEST_P(PassthroughPosix, BlockingLockWaitEndsOnInterrupt) {
  UniqueFd fd = start_holding_a_lock(Holder::mount);
  ASSERT_TRUE(fd.valid());
  WaitingForAHeldLock lock(std::move(fd), path("f"), requests_);
  ASSERT_TRUE(lock.waiting()) << "a blocking flock of a held lock did not wait";
  ASSERT_EQ(::kill(lock.waiter.pid(), SIGUSR1), 0);
  const auto status = lock.waiter.status(10000);
  ASSERT_TRUE(status) << "the interrupted wait went on";
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGUSR1) << "status " << *status;
  EXPECT_TRUE(lock.holder.release()) << errno_text();
}

// Unmounting while a lock waits: the service stops and its threads end (the waiting request is
// interrupted and answered), instead of waiting for a lock nobody will release.
TEST_P(PassthroughPosix, UnmountEndsALockWait) {
  // Held on the host, so that letting go of it needs no request to a stopping service.
  UniqueFd fd = start_holding_a_lock(Holder::host);
  ASSERT_TRUE(fd.valid());
  WaitingForAHeldLock lock(std::move(fd), path("f"), requests_);
  ASSERT_TRUE(lock.waiting()) << "a blocking flock of a held lock did not wait";
  if (io_uring_) {
    EXPECT_GT(mount_->service().io_uring_requests(), 0u);
  }
  auto stopped = std::async(std::launch::async, [&] { stop(); });
  const bool ended = stopped.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
  if (!ended) (void)lock.holder.release();  // so that it ends and the test can report
  stopped.wait();
  EXPECT_TRUE(ended) << "the service waited for the lock";
  // flock(1) fails: its request was answered EINTR while the service stopped, and the mount
  // is gone.
  const auto status = lock.waiter.status(10000);
  ASSERT_TRUE(status) << "the waiter was left waiting";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0) << "status " << *status;
}

TEST_P(PassthroughPosix, LocksBetweenTwoProcesses) {
  start();
  write_file(path("f"), "0123456789");
  UniqueFd fd = open_file(path("f"), O_RDWR);
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = 2;
  lock.l_len = 4;
  ASSERT_EQ(::fcntl(fd.get(), F_SETLK, &lock), 0) << errno_text();
  const std::string file = path("f");
  EXPECT_EQ(as_user(0, 0, [&] {
              const int other = ::open(file.c_str(), O_RDWR);
              struct flock mine {};
              mine.l_type = F_WRLCK;
              mine.l_whence = SEEK_SET;
              mine.l_start = 0;
              mine.l_len = 3;
              if (::fcntl(other, F_SETLK, &mine) != -1 || (errno != EAGAIN && errno != EACCES)) return 1;
              struct flock probe = mine;
              if (::fcntl(other, F_GETLK, &probe) != 0 || probe.l_type != F_WRLCK) return 2;
              if (probe.l_start != 2 || probe.l_len != 4) return 3;
              mine.l_start = 6;  // beyond the parent's range: free
              if (::fcntl(other, F_SETLK, &mine) != 0) return 4;
              if (::flock(other, LOCK_EX | LOCK_NB) != 0) return 5;
              return 0;
            }),
            0);
  // flock between processes. The child's flock went away with its exit, but only once its
  // RELEASE arrives, which the kernel sends in the background after close(2).
  EXPECT_TRUE(flock_once_released(fd.get(), LOCK_EX)) << errno_text();
  EXPECT_EQ(as_user(0, 0, [&] {
              const int other = ::open(file.c_str(), O_RDONLY);
              return ::flock(other, LOCK_SH | LOCK_NB) == -1 && errno == EWOULDBLOCK ? 0 : 1;
            }),
            0);
  // After close (FLUSH/RELEASE) the locks are gone.
  fd.reset();
  EXPECT_EQ(as_user(0, 0, [&] {
              const int other = ::open(file.c_str(), O_RDWR);
              struct flock all {};
              all.l_type = F_WRLCK;
              all.l_whence = SEEK_SET;
              if (::fcntl(other, F_SETLK, &all) != 0) return 1;  // FLUSH is synchronous
              return flock_once_released(other, LOCK_EX) ? 0 : 2;
            }),
            0);
}

TEST_P(PassthroughPosix, TmpfileCanBeLinkedIn) {
  start();
  UniqueFd fd(::open(path().c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  ASSERT_TRUE(fd.valid()) << errno_text();
  ASSERT_EQ(::write(fd.get(), "tmp", 3), 3);
  struct stat st {};
  ASSERT_EQ(::fstat(fd.get(), &st), 0);
  EXPECT_EQ(st.st_nlink, 0u);
  EXPECT_EQ(list_dir(source_.str(), /*with_dots=*/true), (std::vector<std::string>{".", ".."}));
  const std::string proc = "/proc/self/fd/" + std::to_string(fd.get());
  ASSERT_EQ(::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, path("named").c_str(), AT_SYMLINK_FOLLOW), 0)
      << errno_text();
  EXPECT_EQ(read_file(host("named")), "tmp");
}

TEST_P(PassthroughPosix, SparseFilesLargeOffsetsAndSeekDataHole) {
  start();
  UniqueFd fd = open_file(path("sparse"), O_RDWR | O_CREAT);
  ASSERT_TRUE(fd.valid());
  constexpr off_t far = 6ll << 30;  // 6 GiB: beyond 32-bit offsets
  ASSERT_EQ(::pwrite(fd.get(), "end", 3, far), 3);
  EXPECT_EQ(fs::file_size(host("sparse")), static_cast<std::uintmax_t>(far) + 3);
  char buffer[4] = {};
  ASSERT_EQ(::pread(fd.get(), buffer, 3, far), 3);
  EXPECT_EQ(std::string(buffer), "end");
  EXPECT_EQ(::lseek(fd.get(), 0, SEEK_HOLE), 0);
  const off_t data = ::lseek(fd.get(), 0, SEEK_DATA);
  EXPECT_GE(data, far - 4096);
  EXPECT_LE(data, far);
  EXPECT_EQ(::lseek(fd.get(), far + 10, SEEK_DATA), -1);
  EXPECT_EQ(errno, ENXIO);
  ASSERT_EQ(::fallocate(fd.get(), 0, 0, 1 << 20), 0) << errno_text();
  struct stat st {};
  ASSERT_EQ(::fstat(fd.get(), &st), 0);
  EXPECT_GE(st.st_blocks, (1 << 20) / 512);
  ASSERT_EQ(::fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 1 << 20), 0);
  ASSERT_EQ(::fstat(fd.get(), &st), 0);
  EXPECT_LT(st.st_blocks, (1 << 20) / 512);
}

TEST_P(PassthroughPosix, CopyFileRange) {
  start();
  std::string data(1 << 20, 'x');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 26);
  write_file(path("in"), data);
  UniqueFd in = open_file(path("in"), O_RDONLY);
  UniqueFd out = open_file(path("out"), O_WRONLY | O_CREAT);
  loff_t off_in = 100, off_out = 0;
  std::size_t copied = 0;
  while (copied < 500000) {
    const ssize_t n = ::copy_file_range(in.get(), &off_in, out.get(), &off_out, 500000 - copied, 0);
    ASSERT_GT(n, 0) << errno_text();
    copied += static_cast<std::size_t>(n);
  }
  out.reset();
  EXPECT_EQ(read_file(host("out")), data.substr(100, 500000));
}

TEST_P(PassthroughPosix, UnicodeLongNamesAndDeepTrees) {
  start();
  const std::string unicode = "Grüße-日本語-🙂-ñ";
  write_file(path(unicode), "u");
  EXPECT_EQ(read_file(host(unicode)), "u");
  const std::string longest(255, 'L');
  write_file(path(longest), "long");
  EXPECT_EQ(read_file(path(longest)), "long");
  EXPECT_FALSE(open_file(path(std::string(256, 'L')), O_WRONLY | O_CREAT).valid());
  EXPECT_EQ(errno, ENAMETOOLONG);
  std::string deep;
  for (int i = 0; i < 64; ++i) {
    deep += (deep.empty() ? "" : "/") + std::string("level-") + std::to_string(i) + "-" + std::string(40, 'd');
    ASSERT_EQ(::mkdir(path(deep).c_str(), 0755), 0) << i << ": " << errno_text();
  }
  write_file(path(deep + "/leaf"), "deep");
  EXPECT_EQ(read_file(host(deep + "/leaf")), "deep");
  std::size_t depth = 0;
  const std::string root = path();
  const auto base = static_cast<std::size_t>(std::count(root.begin(), root.end(), '/'));
  for (const auto& entry : fs::recursive_directory_iterator(path())) {
    const std::string walked = entry.path().string();
    depth = std::max(depth, static_cast<std::size_t>(std::count(walked.begin(), walked.end(), '/')) - base);
  }
  EXPECT_EQ(depth, 65u);  // 64 directories and the leaf
}

TEST_P(PassthroughPosix, InodeFlagsIoctl) {
  start();
  write_file(path("f"), "");
  UniqueFd fd = open_file(path("f"), O_RDONLY);
  int flags = 0;
  ASSERT_EQ(::ioctl(fd.get(), FS_IOC_GETFLAGS, &flags), 0) << errno_text();
  flags |= FS_NOATIME_FL;
  ASSERT_EQ(::ioctl(fd.get(), FS_IOC_SETFLAGS, &flags), 0) << errno_text();
  UniqueFd direct = open_file(host("f"), O_RDONLY);
  int host_flags = 0;
  ASSERT_EQ(::ioctl(direct.get(), FS_IOC_GETFLAGS, &host_flags), 0);
  EXPECT_NE(host_flags & FS_NOATIME_FL, 0);
}

// poll(2) reaches the daemon (FUSE_POLL), which polls the host file: a regular file is ready for
// what was asked. A daemon without poll would answer ENOSYS once, after which the kernel stops
// asking and reports every file ready itself, so the second poll shows the daemon answered.
TEST_P(PassthroughPosix, PollAsksTheDaemon) {
  start();
  write_file(path("f"), "data");
  UniqueFd fd = open_file(path("f"), O_RDWR);
  ASSERT_TRUE(fd.valid()) << errno_text();
  struct pollfd both {fd.get(), POLLIN | POLLOUT, 0};
  ASSERT_EQ(::poll(&both, 1, 1000), 1) << errno_text();
  EXPECT_EQ(both.revents, POLLIN | POLLOUT);
  struct pollfd in {fd.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&in, 1, 1000), 1) << errno_text();
  EXPECT_EQ(in.revents, POLLIN);
  EXPECT_EQ(requests_[abi::opcode::poll], 2u);
}

// Once, over /dev/fuse: the kernel sends FORGETs there also when serving over io_uring, and a
// second copy running in parallel would drop this one's inodes with its own drop_caches. (It
// reaches every mount: tests elsewhere that count on cached inodes pin them with an open fd.)
TEST_F(PassthroughMount, ForgetReleasesInodesAfterUse) {
  start();
  for (int i = 0; i < 20; ++i) write_file(path("f" + std::to_string(i)), "x");
  EXPECT_GT(fs_->inode_count(), 20u);
  // Dropping the kernel's caches makes it FORGET every inode it no longer uses.
  std::ofstream("/proc/sys/vm/drop_caches") << "2" << std::endl;
  for (int i = 0; i < 300 && fs_->inode_count() > 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(fs_->inode_count(), 1u);
  EXPECT_EQ(fs_->handle_count(), 0u);
  EXPECT_EQ(read_file(path("f3")), "x");
}

}  // namespace
}  // namespace fuse_backend::passthrough::testing
