// Integration tests of the examples/passthrough command line: every bad input is exactly one line
// on stderr naming the problem and exit status 1; a good run serves a temp source directory
// (writes land in the source, source files read back, listings match) until SIGTERM / SIGINT /
// an unmount from outside, and then exits 0 with nothing left mounted. Needs root and /dev/fuse.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <support/files.hpp>
#include <support/fuse_io_uring.hpp>
#include <support/mount_guard.hpp>
#include <support/program.hpp>
#include <support/temp_dir.hpp>

#include "passthrough_daemon_fixture.hpp"

namespace {

using fuse_backend::testing::exited_with;
using fuse_backend::testing::list_dir;
using fuse_backend::testing::read_file;
using fuse_backend::testing::write_file;
using fuse_backend::testing::ProgramRun;
using fuse_backend::testing::run_program;
using fuse_backend::testing::is_mounted;
using fuse_backend::testing::MountGuard;
using fuse_backend::testing::passthrough_binary;
using fuse_backend::testing::PassthroughDaemonFixture;
using fuse_backend::testing::TempDir;

ProgramRun run(const std::vector<std::string>& args) { return run_program(passthrough_binary, args); }

// --- bad input: one line on stderr, exit 1 --------------------------------------------------

// Fixture-free directories each bad-input case can point at.
class Paths {
 public:
  Paths() { write_file(file(), "not a directory\n"); }
  std::string dir() const { return dir_.str(); }
  std::string mnt() const { return mnt_.str(); }
  std::string file() const { return dir_.str() + "/regular_file"; }
  std::string missing() const { return dir_.str() + "/does_not_exist"; }

 private:
  TempDir dir_{"fuse_backend_cli_src"};
  TempDir mnt_{"fuse_backend_cli_mnt"};
};

struct BadInput {
  const char* name;
  // Arguments; "{src}", "{mnt}", "{file}" and "{missing}" are replaced by paths from Paths.
  std::vector<std::string> args;
  // Every fragment must appear in the one error line.
  std::vector<std::string> fragments;
};
// Test names show the case, not the parameter's bytes.
void PrintTo(const BadInput& input, std::ostream* os) { *os << input.name; }

std::string expand(std::string arg, const Paths& paths) {
  const std::pair<const char*, std::string> names[] = {
      {"{src}", paths.dir()}, {"{mnt}", paths.mnt()}, {"{file}", paths.file()}, {"{missing}", paths.missing()}};
  for (const auto& [key, value] : names) {
    for (std::size_t at; (at = arg.find(key)) != std::string::npos;) arg.replace(at, std::strlen(key), value);
  }
  return arg;
}

// Exit status 1, nothing on stdout, and one line on stderr holding every fragment.
void expect_one_line_error(const ProgramRun& outcome, const std::vector<std::string>& fragments) {
  EXPECT_TRUE(exited_with(outcome.status, 1)) << "wait status " << outcome.status;
  EXPECT_EQ(std::count(outcome.err.begin(), outcome.err.end(), '\n'), 1) << outcome.err;
  EXPECT_EQ(outcome.err.rfind("passthrough: ", 0), 0u) << outcome.err;
  for (const auto& fragment : fragments) {
    EXPECT_NE(outcome.err.find(fragment), std::string::npos)
        << "expected '" << fragment << "' in: " << outcome.err;
  }
  EXPECT_TRUE(outcome.out.empty()) << outcome.out;
}

class PassthroughCliBadInput : public ::testing::TestWithParam<BadInput> {};

TEST_P(PassthroughCliBadInput, IsOneLineOnStderrAndExitOne) {
  Paths paths;
  std::vector<std::string> args;
  for (const auto& arg : GetParam().args) args.push_back(expand(arg, paths));
  std::vector<std::string> fragments;
  for (const auto& fragment : GetParam().fragments) fragments.push_back(expand(fragment, paths));
  expect_one_line_error(run(args), fragments);
  EXPECT_FALSE(is_mounted(paths.mnt()));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, PassthroughCliBadInput,
    ::testing::Values(
        BadInput{"NoArguments", {}, {"missing SOURCE and MOUNTPOINT"}},
        BadInput{"OnlySource", {"{src}"}, {"missing MOUNTPOINT"}},
        BadInput{"ThreePositionals", {"{src}", "{mnt}", "extra"}, {"unexpected argument 'extra'"}},
        BadInput{"MissingSource", {"{missing}", "{mnt}"}, {"source '{missing}' does not exist"}},
        BadInput{"SourceIsAFile", {"{file}", "{mnt}"}, {"source '{file}' is not a directory"}},
        BadInput{"MissingMountpoint", {"{src}", "{missing}"}, {"mountpoint '{missing}' does not exist"}},
        BadInput{"MountpointIsAFile", {"{src}", "{file}"}, {"mountpoint '{file}' is not a directory"}},
        BadInput{"UnknownLongOption", {"--bogus", "{src}", "{mnt}"}, {"unknown option '--bogus'"}},
        BadInput{"UnknownShortOption", {"-x", "{src}", "{mnt}"}, {"unknown option '-x'"}},
        BadInput{"UnknownMountOption", {"-o", "ro,bogus=1", "{src}", "{mnt}"}, {"unknown option '-o bogus'"}},
        BadInput{"ZeroThreads", {"--threads", "0", "{src}", "{mnt}"}, {"bad value '0' for --threads"}},
        BadInput{"NonNumericThreads", {"--threads", "abc", "{src}", "{mnt}"}, {"bad value 'abc' for --threads"}},
        BadInput{"ThreadsWithTrailingJunk", {"--threads=4x", "{src}", "{mnt}"}, {"bad value '4x' for --threads"}},
        BadInput{"ThreadsWithoutValue", {"{src}", "{mnt}", "--threads"}, {"--threads needs a value"}},
        BadInput{"BogusCache", {"--cache", "bogus", "{src}", "{mnt}"}, {"bad value 'bogus' for --cache", "never"}},
        BadInput{"BogusCacheInMountOptions", {"-o", "cache=bogus", "{src}", "{mnt}"}, {"bad value 'bogus' for -o cache"}},
        BadInput{"ZeroInodeFdBudget", {"-o", "inode_fd_budget=0", "{src}", "{mnt}"},
                 {"bad value '0' for -o inode_fd_budget", "from 1 to"}},
        BadInput{"BogusInodeFileHandles", {"-o", "inode_file_handles=sometimes", "{src}", "{mnt}"},
                 {"bad value 'sometimes' for -o inode_file_handles", "auto, never, prefer or mandatory"}},
        BadInput{"BusyPollTooLong", {"-o", "busy_poll=10001", "{src}", "{mnt}"},
                 {"bad value '10001' for -o busy_poll", "microseconds from 0 to 10000"}},
        BadInput{"TinyMaxWrite", {"-o", "max_write=1", "{src}", "{mnt}"}, {"bad value '1' for -o max_write"}},
        BadInput{"NegativeTimeout", {"-otimeout=-1", "{src}", "{mnt}"}, {"bad value '-1' for -o timeout"}},
        BadInput{"TextEntryTimeout", {"-o", "entry_timeout=soon", "{src}", "{mnt}"},
                 {"bad value 'soon' for -o entry_timeout"}},
        BadInput{"AttrTimeoutOverAYear", {"--attr-timeout", "1e9", "{src}", "{mnt}"},
                 {"bad value '1e9' for --attr-timeout"}},
        BadInput{"TinyMaxRead", {"-o", "max_read=100", "{src}", "{mnt}"}, {"bad value '100' for -o max_read"}},
        BadInput{"FsnameWithComma", {"--fsname=a,b", "{src}", "{mnt}"}, {"bad value 'a,b' for --fsname"}},
        BadInput{"SubtypeWithDot", {"-o", "subtype=a.b", "{src}", "{mnt}"}, {"bad value 'a.b' for -o subtype"}},
        BadInput{"FlagWithValue", {"-o", "writeback=yes", "{src}", "{mnt}"}, {"-o writeback takes no value"}},
        BadInput{"SettingWithoutValue", {"-o", "fsname", "{src}", "{mnt}"}, {"-o fsname needs a value"}},
        BadInput{"DanglingDashO", {"{src}", "{mnt}", "-o"}, {"-o needs a value"}},
        BadInput{"WritebackWithBacking", {"--writeback", "--passthrough-backing", "{src}", "{mnt}"},
                 {"writeback and passthrough_backing cannot be combined"}},
        BadInput{"SealedSizeWithBacking", {"-o", "seal_size,passthrough_backing", "{src}", "{mnt}"},
                 {"seal_size and passthrough_backing cannot be combined"}}),
    [](const ::testing::TestParamInfo<BadInput>& param) { return std::string(param.param.name); });

// A FUSE mount whose server is gone answers ENOTCONN to the daemon's statx: named as such (the
// mount is made here with a /dev/fuse fd closed at once, which aborts the connection).
TEST(PassthroughCliDeadMount, IsNamedInOneLineAndExitOne) {
  Paths paths;
  MountGuard dead_mount(paths.mnt());
  const int fd = ::open("/dev/fuse", O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  const std::string data = "fd=" + std::to_string(fd) + ",rootmode=40000,user_id=0,group_id=0";
  const int mounted = ::mount("dead", paths.mnt().c_str(), "fuse.dead", MS_NOSUID | MS_NODEV, data.c_str());
  const int mount_errno = errno;
  ::close(fd);
  ASSERT_EQ(mounted, 0) << std::strerror(mount_errno);

  expect_one_line_error(run({paths.dir(), paths.mnt()}),
                        {"mountpoint '" + paths.mnt() + "' is a dead FUSE mount"});
}

TEST(PassthroughCli, BusyMountpointIsOneLineAndExitOne) {
  Paths paths;
  // Something already mounted on the mountpoint (a tiny tmpfs): mount(2) would stack on top of
  // it, so the daemon must refuse instead.
  MountGuard busy(paths.mnt());
  ASSERT_EQ(::mount("fuse_backend_busy", paths.mnt().c_str(), "tmpfs", 0, "size=64k"), 0)
      << std::strerror(errno);
  expect_one_line_error(run({paths.dir(), paths.mnt()}), {"mountpoint '" + paths.mnt() + "' is busy"});
}

TEST(PassthroughCli, HelpAndVersionPrintToStdoutAndExitZero) {
  const ProgramRun help = run({"--help"});
  EXPECT_TRUE(exited_with(help.status, 0)) << "wait status " << help.status;
  EXPECT_EQ(help.out.rfind("usage: passthrough [options] SOURCE MOUNTPOINT", 0), 0u) << help.out;
  for (const char* option : {"--cache", "--writeback", "--threads", "--passthrough-backing",
                             "--allow-other", "--foreground", "--debug", "-o OPT"}) {
    EXPECT_NE(help.out.find(option), std::string::npos) << option << " missing from --help";
  }
  EXPECT_TRUE(help.err.empty()) << help.err;

  const ProgramRun version = run({"-V"});
  EXPECT_TRUE(exited_with(version.status, 0)) << "wait status " << version.status;
  EXPECT_NE(version.out.find("passthrough"), std::string::npos) << version.out;
  EXPECT_TRUE(version.err.empty()) << version.err;
}

// --- good runs ------------------------------------------------------------------------------

class PassthroughCliServe : public PassthroughDaemonFixture<> {
 protected:
  // A round trip through the mount in both directions, and a listing.
  void exercise() {
    ASSERT_NO_FATAL_FAILURE(write_file(source_.str() + "/from_source.txt", "written on the host\n"));
    EXPECT_EQ(read_file(mnt_.str() + "/from_source.txt"), "written on the host\n");

    ASSERT_NO_FATAL_FAILURE(write_file(mnt_.str() + "/from_mount.txt", "written through FUSE\n"));
    EXPECT_EQ(read_file(source_.str() + "/from_mount.txt"), "written through FUSE\n");

    ASSERT_EQ(::mkdir((mnt_.str() + "/subdir").c_str(), 0755), 0) << std::strerror(errno);
    struct stat st {};
    ASSERT_EQ(::stat((source_.str() + "/subdir").c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));

    EXPECT_EQ(list_dir(mnt_.str()),
              (std::vector<std::string>{"from_mount.txt", "from_source.txt", "subdir"}));
  }
};

TEST_F(PassthroughCliServe, ServesTheSourceUntilSigterm) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_NO_FATAL_FAILURE(exercise());
  ASSERT_EQ(::kill(child_->pid(), SIGTERM), 0);
  expect_clean_exit();
  // Nothing was lost on the way out.
  EXPECT_EQ(read_file(source_.str() + "/from_mount.txt"), "written through FUSE\n");
  EXPECT_TRUE(stderr_text().empty()) << stderr_text();
}

TEST_F(PassthroughCliServe, SigintStopsAndUnmountsToo) {
  ASSERT_NO_FATAL_FAILURE(start({"-f", "--threads", "1"}));
  ASSERT_NO_FATAL_FAILURE(exercise());
  ASSERT_EQ(::kill(child_->pid(), SIGINT), 0);
  expect_clean_exit();
}

TEST_F(PassthroughCliServe, ExitsCleanlyWhenUnmountedFromOutside) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_NO_FATAL_FAILURE(exercise());
  ASSERT_EQ(::umount2(mnt_.str().c_str(), 0), 0) << std::strerror(errno);
  expect_clean_exit();
}

TEST_F(PassthroughCliServe, ReadOnlyMountRefusesWrites) {
  ASSERT_NO_FATAL_FAILURE(start({"-o", "ro,cache=never,timeout=0"}));
  ASSERT_NO_FATAL_FAILURE(write_file(source_.str() + "/host.txt", "host\n"));
  EXPECT_EQ(read_file(mnt_.str() + "/host.txt"), "host\n");
  EXPECT_EQ(::open((mnt_.str() + "/new.txt").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644), -1);
  EXPECT_EQ(errno, EROFS);
  ASSERT_EQ(::kill(child_->pid(), SIGTERM), 0);
  expect_clean_exit();
}

TEST_F(PassthroughCliServe, OptionsOfEveryKindAreAccepted) {
  ASSERT_NO_FATAL_FAILURE(start({"--cache=always", "--writeback", "--threads=3", "--allow-other",
                                 "--foreground", "-o", "default_permissions,xattr,no_readdirplus",
                                 "-o", "max_write=131072,timeout=0.5,fsname=cli_test_fs,busy_poll=0"}));
  ASSERT_NO_FATAL_FAILURE(exercise());
  std::ifstream mounts("/proc/self/mounts");
  std::string line;
  bool found = false;
  while (std::getline(mounts, line)) {
    if (line.find(" " + mnt_.str() + " ") == std::string::npos) continue;
    found = true;
    EXPECT_EQ(line.rfind("cli_test_fs " + mnt_.str() + " fuse.passthrough ", 0), 0u) << line;
    EXPECT_NE(line.find("allow_other"), std::string::npos) << line;
    EXPECT_NE(line.find("default_permissions"), std::string::npos) << line;
  }
  EXPECT_TRUE(found) << "no /proc/self/mounts line for " << mnt_.str();
  ASSERT_EQ(::kill(child_->pid(), SIGTERM), 0);
  expect_clean_exit();
}

// st_ino is the host's by default and the FUSE node id with no_host_ino (node ids count up from
// the root's 1, far below the inode numbers of a fresh host file).
TEST_F(PassthroughCliServe, InodeNumbersAreTheHostsUnlessNoHostIno) {
  for (const bool host_ino : {true, false}) {
    SCOPED_TRACE(host_ino ? "host_ino" : "no_host_ino");
    ASSERT_NO_FATAL_FAILURE(start({"-o", host_ino ? "host_ino" : "no_host_ino"}));
    ASSERT_NO_FATAL_FAILURE(write_file(source_.str() + "/numbered", ""));
    struct stat on_host {}, on_mount {};
    ASSERT_EQ(::stat((source_.str() + "/numbered").c_str(), &on_host), 0);
    ASSERT_EQ(::stat((mnt_.str() + "/numbered").c_str(), &on_mount), 0) << std::strerror(errno);
    if (host_ino)
      EXPECT_EQ(on_mount.st_ino, on_host.st_ino);
    else
      EXPECT_NE(on_mount.st_ino, on_host.st_ino);
    ASSERT_EQ(::kill(child_->pid(), SIGTERM), 0);
    expect_clean_exit();
  }
}

TEST_F(PassthroughCliServe, InodeFileHandlesServe) {
  ASSERT_NO_FATAL_FAILURE(start({"-o", "inode_file_handles=mandatory,timeout=0"}));
  ASSERT_NO_FATAL_FAILURE(exercise());
  ASSERT_EQ(::kill(child_->pid(), SIGTERM), 0);
  expect_clean_exit();
  EXPECT_TRUE(stderr_text().empty()) << stderr_text();
}

// With backing files the kernel reads and writes the host file itself: the data round trip
// works and the daemon never sees a READ or WRITE request (this kernel has FUSE passthrough).
TEST_F(PassthroughCliServe, PassthroughBackingMovesDataWithoutTheDaemon) {
  ASSERT_NO_FATAL_FAILURE(start({"--passthrough-backing", "--debug"}));
  ASSERT_NO_FATAL_FAILURE(exercise());
  ASSERT_EQ(::kill(child_->pid(), SIGTERM), 0);
  expect_clean_exit();
  const std::string log = stderr_text();
  EXPECT_NE(log.find(": CREATE nodeid"), std::string::npos) << log;
  EXPECT_NE(log.find(": OPEN nodeid"), std::string::npos) << log;
  EXPECT_EQ(log.find(": READ nodeid"), std::string::npos) << log;
  EXPECT_EQ(log.find(": WRITE nodeid"), std::string::npos) << log;
}

// SIGTERM while a client still has written data in the kernel only (the writeback cache keeps
// a write(2), a shared mapping keeps stores in any mode; neither was synced or closed): the
// daemon has the kernel write it back and answers those WRITEs before it stops, so the source
// has every byte. Without Session::sync the data is always lost; without the drain whenever
// the workers stop before reading the WRITEs the sync queued (often on a loaded machine;
// fusedev_service_test's DrainAndStopAnswersWhatIsQueued shows the drain deterministically).
// Over /dev/fuse and over FUSE-over-io_uring, whose queues drain too.
TEST_F(PassthroughCliServe, SigtermWritesBackWhatTheKernelStillHeld) {
  ASSERT_EQ(fuse_backend::testing::enable_fuse_io_uring(), "");
  std::string data(1 << 20, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 7) % 251 + 1);
  for (const bool io_uring : {false, true}) for (const bool mapped : {false, true}) {
    SCOPED_TRACE(std::string(mapped ? "shared mapping" : "write(2) under --writeback") +
                 (io_uring ? ", io_uring" : ""));
    std::vector<std::string> options;
    if (!mapped) options.push_back("--writeback");
    if (io_uring) options.insert(options.end(), {"-o", "io_uring"});
    ASSERT_NO_FATAL_FAILURE(start(options));
    const std::string name = std::string(mapped ? "/mapped" : "/written") + (io_uring ? "-uring" : "");
    const int fd = ::open((mnt_.str() + name).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    void* map = MAP_FAILED;
    if (mapped) {
      ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(data.size())), 0) << std::strerror(errno);
      map = ::mmap(nullptr, data.size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      ASSERT_NE(map, MAP_FAILED) << std::strerror(errno);
      std::memcpy(map, data.data(), data.size());
    } else {
      ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size())) << std::strerror(errno);
    }
    ASSERT_EQ(::kill(child_->pid(), SIGTERM), 0);
    expect_clean_exit();
    const std::string kept = read_file(source_.str() + name);
    EXPECT_TRUE(kept == data) << name << ": " << kept.size() << " bytes, not all of what was written; "
                              << "stderr: " << stderr_text();
    if (io_uring) {
      EXPECT_EQ(stderr_text().find("serving over /dev/fuse"), std::string::npos) << stderr_text();
    }
    // The connection is gone: these fail at once, nothing waits for the daemon.
    if (map != MAP_FAILED) ::munmap(map, data.size());
    ::close(fd);
  }
}

// inode_file_handles=auto (the default) beyond its fd budget: the inodes the kernel holds past
// the budget keep file handles, so the daemon's fds stay near the budget however many files the
// client caches, and every file still serves.
TEST_F(PassthroughCliServe, InodesBeyondTheFdBudgetKeepFileHandles) {
  constexpr int budget = 64, files = 500;
  ASSERT_NO_FATAL_FAILURE(start({"-o", "inode_fd_budget=" + std::to_string(budget)}));
  for (int i = 0; i < files; ++i) {
    ASSERT_NO_FATAL_FAILURE(write_file(mnt_.str() + "/f" + std::to_string(i), std::to_string(i)));
  }
  for (int i = 0; i < files; i += 37) EXPECT_EQ(read_file(mnt_.str() + "/f" + std::to_string(i)), std::to_string(i));
  // The budget, the transport's fds (/dev/fuse clones, eventfds, signalfd) and a few more.
  EXPECT_LT(list_dir("/proc/" + std::to_string(child_->pid()) + "/fd").size(), std::size_t{budget + 32});
  ASSERT_EQ(::kill(child_->pid(), SIGTERM), 0);
  expect_clean_exit();
  EXPECT_NE(stderr_text().find("64 inodes hold an fd each; further ones keep file handles"), std::string::npos)
      << stderr_text();
}

// The daemon holds an fd per inode the kernel holds (inode_file_handles=never here: the default
// would switch to handles instead). Started with a soft RLIMIT_NOFILE of 64 (a hard one far
// above), it raises its own limit: many more files than 64 stay looked up at once.
TEST_F(PassthroughCliServe, RaisesItsOpenFileLimitForTheInodesItHolds) {
  struct rlimit ours {};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &ours), 0);
  constexpr rlim_t low = 64, files = 400;
  if (ours.rlim_max < 2 * files) GTEST_FAIL() << "hard RLIMIT_NOFILE " << ours.rlim_max << " too low for this test";
  {
    // Lowered only while the daemon starts: it inherits the limit.
    const struct rlimit lowered{low, ours.rlim_max};
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0) << std::strerror(errno);
    start({"-o", "inode_file_handles=never"});
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &ours), 0) << std::strerror(errno);
    ASSERT_FALSE(HasFatalFailure());
  }
  // Each file created stays in the kernel's dentry cache, so its inode (and the daemon's fd for
  // it) is held until the unmount.
  for (rlim_t i = 0; i < files; ++i) {
    const std::string path = mnt_.str() + "/held_" + std::to_string(i);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << "file " << i << ": " << std::strerror(errno);
    ::close(fd);
  }
  struct stat st {};
  EXPECT_EQ(::stat((mnt_.str() + "/held_0").c_str(), &st), 0) << std::strerror(errno);
  ASSERT_EQ(::kill(child_->pid(), SIGTERM), 0);
  expect_clean_exit();
}

TEST_F(PassthroughCliServe, DebugLogsEveryRequestWithItsOpcode) {
  ASSERT_NO_FATAL_FAILURE(start({"--debug"}));
  ASSERT_NO_FATAL_FAILURE(exercise());
  ASSERT_EQ(::kill(child_->pid(), SIGTERM), 0);
  expect_clean_exit();
  const std::string log = stderr_text();
  for (const char* expected : {"INIT", "LOOKUP", "CREATE", "WRITE", "MKDIR", "READDIR", "unique ",
                               "nodeid 1", "-> ok", "-> ENOENT"}) {
    EXPECT_NE(log.find(expected), std::string::npos) << "'" << expected << "' not logged";
  }
}

}  // namespace
