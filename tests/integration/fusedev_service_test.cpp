// Real-mount tests of fusedev::Service's life cycle: unmounted from outside while serving (lazy
// and plain umount), stop() while idle (1 and 4 workers, with and without busy polling), an idle
// busy-polling worker going to sleep, and not polling while another worker answers, stop() from
// another thread under load and from a signal handler, SIGTERM through a SignalWatcher, several
// workers under concurrent readers, and a notification sent through the device; with
// FUSE-over-io_uring: stop() and an unmount end the queue threads, and a kernel reply without
// the io_uring flag falls back to /dev/fuse. Needs root and /dev/fuse.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <fuse_backend/api/notify.hpp>
#include <fuse_backend/api/observer.hpp>
#include <fuse_backend/detail/unique_fd.hpp>
#include <fuse_backend/transport/fusedev/signals.hpp>
#include <support/cpu_pin.hpp>
#include <support/eventually.hpp>
#include <support/files.hpp>
#include <support/fuse_io_uring.hpp>
#include <support/memory_fs.hpp>
#include <support/mount_guard.hpp>
#include <support/served_mount.hpp>
#include <support/thread_names.hpp>
#include <support/wait_channel.hpp>

namespace {

namespace api = fuse_backend::api;
namespace fusedev = fuse_backend::transport::fusedev;
using fuse_backend::detail::UniqueFd;
using fuse_backend::testing::eventually;
using fuse_backend::testing::is_mounted;
using fuse_backend::testing::MemoryFs;
using fuse_backend::testing::thread_name;
using fuse_backend::testing::write_file;
using fuse_backend::testing::ServedMount;
using namespace std::chrono_literals;

using Mount = ServedMount<MemoryFs>;

// Joins the service on another thread; the outcome if it finished within `timeout`. On a
// timeout the service is stopped so the test can end, and the error is ETIMEDOUT.
// "Promptly" in these tests: within `timeout`, far longer than a stop takes (a few ms) so that a
// loaded machine does not fail them, far shorter than a worker left blocked would take (forever).
template <class Service>
fuse_backend::Result<void> join_within(Service& service, std::chrono::milliseconds timeout) {
  auto joined = std::async(std::launch::async, [&service] { return service.join(); });
  if (joined.wait_for(timeout) == std::future_status::ready) return joined.get();
  service.stop();
  (void)joined.get();
  return fuse_backend::fail(std::errc::timed_out);
}

TEST(FusedevService, LazyUnmountFromOutsideEndsTheService) {
  MemoryFs fs;
  Mount mount(fs);
  ASSERT_TRUE(mount.ok()) << mount.error();
  ASSERT_NO_FATAL_FAILURE(write_file(mount.path("f"), "data"));
  ASSERT_EQ(::umount2(mount.path().c_str(), MNT_DETACH), 0) << std::strerror(errno);
  const auto joined = join_within(mount.service(), 5s);
  EXPECT_TRUE(joined) << "join: " << std::make_error_code(joined.error()).message();
  EXPECT_FALSE(is_mounted(mount.path()));
  EXPECT_TRUE(mount.session().unmount()) << "already unmounted counts as success";
}

TEST(FusedevService, PlainUmountFromOutsideEndsTheService) {
  MemoryFs fs;
  Mount mount(fs);
  ASSERT_TRUE(mount.ok()) << mount.error();
  struct stat st {};
  ASSERT_EQ(::stat(mount.path().c_str(), &st), 0);
  ASSERT_EQ(::umount2(mount.path().c_str(), 0), 0) << std::strerror(errno);
  const auto joined = join_within(mount.service(), 5s);
  EXPECT_TRUE(joined) << "join: " << std::make_error_code(joined.error()).message();
}

// An administrator's abort (/sys/fs/fuse/connections/N/abort) ends the service cleanly too: the
// kernel answers reads with ECONNABORTED then (abort_error is negotiated), not ENODEV. The dead
// mount is the session's, so it still unmounts it.
TEST(FusedevService, AbortFromOutsideEndsTheService) {
  MemoryFs fs;
  Mount mount(fs);
  ASSERT_TRUE(mount.ok()) << mount.error();
  ASSERT_NO_FATAL_FAILURE(write_file(mount.path("f"), "data"));
  struct stat st {};
  ASSERT_EQ(::stat(mount.path().c_str(), &st), 0);
  const std::string connections = "/sys/fs/fuse/connections";
  std::optional<fuse_backend::testing::MountGuard> fusectl;
  if (!std::filesystem::exists(connections + "/" + std::to_string(minor(st.st_dev)))) {
    ASSERT_EQ(::mount("fusectl", connections.c_str(), "fusectl", 0, nullptr), 0) << std::strerror(errno);
    fusectl.emplace(connections);
  }
  std::ofstream(connections + "/" + std::to_string(minor(st.st_dev)) + "/abort") << "1" << std::endl;
  const auto joined = join_within(mount.service(), 5s);
  EXPECT_TRUE(joined) << "join: " << std::make_error_code(joined.error()).message();
  EXPECT_TRUE(mount.session().unmount());
  EXPECT_FALSE(is_mounted(mount.path()));
}

// Unmounted from outside, and something else mounted there since: the session's unmount must
// leave that alone (it is someone else's).
TEST(FusedevService, SessionLeavesWhatWasMountedInItsPlaceAlone) {
  MemoryFs fs;
  Mount mount(fs);
  ASSERT_TRUE(mount.ok()) << mount.error();
  ASSERT_EQ(::umount2(mount.path().c_str(), MNT_DETACH), 0) << std::strerror(errno);
  ASSERT_TRUE(join_within(mount.service(), 5s));
  ASSERT_EQ(::mount("replacement", mount.path().c_str(), "tmpfs", 0, "size=1m"), 0) << std::strerror(errno);
  fuse_backend::testing::MountGuard replacement(mount.path());
  EXPECT_TRUE(mount.session().unmount());
  EXPECT_FALSE(mount.session().mounted());
  EXPECT_TRUE(is_mounted(mount.path())) << "the session unmounted a mount that is not its own";
}

TEST(FusedevService, SessionUnmountWhileServingEndsTheService) {
  MemoryFs fs;
  Mount mount(fs);
  ASSERT_TRUE(mount.ok()) << mount.error();
  ASSERT_NO_FATAL_FAILURE(write_file(mount.path("f"), "data"));
  ASSERT_TRUE(mount.session().unmount());
  EXPECT_FALSE(mount.session().mounted());
  EXPECT_TRUE(join_within(mount.service(), 5s));
  EXPECT_FALSE(is_mounted(mount.path()));
}

// Workers block in read(2) (worker 0 in poll(2) when it busy-polls); stop() must still end
// every one of them at once.
void stop_while_idle_returns_promptly(unsigned threads, std::chrono::microseconds busy_poll) {
  MemoryFs fs;
  fusedev::ServiceOptions options;
  options.threads = threads;
  options.busy_poll = busy_poll;
  Mount mount(fs, options);
  ASSERT_TRUE(mount.ok()) << mount.error();
  ASSERT_NO_FATAL_FAILURE(write_file(mount.path("f"), "data"));
  std::this_thread::sleep_for(50ms);  // every worker back in read(2)
  mount.service().stop();
  EXPECT_TRUE(join_within(mount.service(), 2s));
  EXPECT_TRUE(is_mounted(mount.path())) << "stop() does not unmount";
  ASSERT_TRUE(mount.session().unmount());
  EXPECT_FALSE(is_mounted(mount.path()));
}

// MemoryFs whose GETATTR of a gated inode waits until the test opens that gate (once: later
// GETATTRs of the inode pass).
class GatedFs : public MemoryFs {
 public:
  struct Gate {
    std::atomic<api::InodeId> inode{api::InodeId{0}};
    std::promise<pid_t> entered;  // by the thread that waits at the gate
    void open() {
      if (!was_opened.exchange(true)) opened.set_value();
    }
    std::promise<void> opened;
    std::atomic<bool> was_opened{false};
  };
  // Opens every gate still closed when it goes. Declared after the futures of the requests that
  // wait at the gates, it lets a test that fails while a worker waits there end, not hang.
  struct OpenGatesAtExit {
    GatedFs& fs;
    ~OpenGatesAtExit() {
      for (auto& gate : fs.gates) gate.open();
    }
  };
  GatedFs() : MemoryFs(0s) {}  // nothing cached: every stat(2) is a GETATTR
  fuse_backend::Result<api::AttrReply> getattr(const api::Context& ctx, api::InodeId inode,
                                               std::optional<api::HandleId> handle) {
    for (auto& gate : gates) {
      api::InodeId expected = inode;
      if (inode != api::InodeId{0} &&
          gate.inode.compare_exchange_strong(expected, api::InodeId{0})) {
        gate.entered.set_value(::gettid());
        gate.opened.get_future().wait();
      }
    }
    return MemoryFs::getattr(ctx, inode, handle);
  }
  std::array<Gate, 2> gates;
};

// drain_and_stop(): a request queued in the kernel while the only worker (or, over io_uring,
// the queue thread of the callers' CPU) is busy is still answered before it ends (a plain
// stop() leaves it waiting until the unmount).
void drain_and_stop_answers_what_is_queued(bool io_uring) {
  GatedFs fs;
  // Before the mount: should a request stay unanswered, the mount goes first (its connection
  // ends, failing the request) and only then do these wait for their threads; the file is
  // closed after it too (its FLUSH would wait for the stopped service).
  UniqueFd queued_fd;
  std::future<int> held, queued;
  fusedev::ServiceOptions options;
  options.threads = 1;
  options.busy_poll = {};
  options.io_uring = io_uring;
  // Both callers on one CPU: over io_uring their requests then go to the same queue.
  const int cpu = fuse_backend::testing::first_allowed_cpu();
  ServedMount<GatedFs> mount(fs, options);
  GatedFs::OpenGatesAtExit open_at_exit{fs};
  ASSERT_TRUE(mount.ok()) << mount.error();
  ASSERT_NO_FATAL_FAILURE(write_file(mount.path("gate"), ""));
  ASSERT_NO_FATAL_FAILURE(write_file(mount.path("queued"), ""));
  struct stat st {};
  ASSERT_EQ(::stat(mount.path("gate").c_str(), &st), 0);
  fs.gates[0].inode = api::InodeId{st.st_ino};

  // fstat of an open file: one GETATTR (a path would add a LOOKUP, sent only once the first
  // is answered, and a drain ends when nothing is queued).
  queued_fd = UniqueFd(::open(mount.path("queued").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(queued_fd.valid()) << std::strerror(errno);
  held = std::async(std::launch::async, [&mount, cpu] {
    fuse_backend::testing::OnOneCpu only(cpu);
    struct stat out {};
    return ::stat(mount.path("gate").c_str(), &out) == 0 ? 0 : errno;
  });
  fs.gates[0].entered.get_future().wait();  // the worker is busy with it
  std::atomic<pid_t> queued_tid{0};
  queued = std::async(std::launch::async, [&] {
    fuse_backend::testing::OnOneCpu only(cpu);
    queued_tid = ::gettid();
    struct stat out {};
    return ::fstat(queued_fd.get(), &out) == 0 ? 0 : errno;
  });
  const auto give_up = std::chrono::steady_clock::now() + 5s;
  while (queued_tid.load() == 0 ||
         fuse_backend::testing::wait_channel(queued_tid.load()) != "request_wait_answer") {
    ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "the second stat never reached the kernel's queue";
    std::this_thread::sleep_for(1ms);
  }

  mount.service().drain_and_stop(5s);
  fs.gates[0].open();
  EXPECT_EQ(held.get(), 0);
  ASSERT_EQ(queued.wait_for(5s), std::future_status::ready) << "the queued request was not answered";
  EXPECT_EQ(queued.get(), 0);
  EXPECT_TRUE(join_within(mount.service(), 5s));
  if (io_uring) {
    EXPECT_GE(mount.service().io_uring_requests(), 2u);
  }
}

TEST(FusedevService, DrainAndStopAnswersWhatIsQueued) { drain_and_stop_answers_what_is_queued(false); }

TEST(FusedevService, DrainAndStopAnswersWhatIsQueuedOverIoUring) {
  ASSERT_EQ(fuse_backend::testing::enable_fuse_io_uring(), "");
  drain_and_stop_answers_what_is_queued(true);
}

TEST(FusedevService, StopWhileIdleReturnsPromptlyWithOneWorker) { stop_while_idle_returns_promptly(1, 50us); }
TEST(FusedevService, StopWhileIdleReturnsPromptlyWithFourWorkers) { stop_while_idle_returns_promptly(4, 50us); }
TEST(FusedevService, StopWhileIdleReturnsPromptlyWithoutBusyPolling) { stop_while_idle_returns_promptly(2, 0us); }

double process_cpu_seconds() {
  timespec now{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

// Busy polling ends once the window has passed without a request: an idle service sleeps. (A
// worker or queue thread that kept polling would burn the whole second of CPU.)
void busy_polling_ends_when_idle(fusedev::ServiceOptions options) {
  MemoryFs fs;
  options.threads = 1;
  options.busy_poll = 2ms;
  Mount mount(fs, options);
  ASSERT_TRUE(mount.ok()) << mount.error();
  ASSERT_NO_FATAL_FAILURE(write_file(mount.path("f"), "data"));
  EXPECT_EQ(fuse_backend::testing::read_file(mount.path("f")), "data");
  if (options.io_uring) {
    EXPECT_GT(mount.service().io_uring_requests(), 0u);
  }
  std::this_thread::sleep_for(20ms);  // past the window
  const double before = process_cpu_seconds();
  std::this_thread::sleep_for(1s);
  EXPECT_LT(process_cpu_seconds() - before, 0.1) << "the service kept polling while idle";
  EXPECT_EQ(fuse_backend::testing::read_file(mount.path("f")), "data") << "and a request still wakes it";
  mount.service().stop();
  EXPECT_TRUE(join_within(mount.service(), 2s));
  ASSERT_TRUE(mount.session().unmount());
}

fusedev::ServiceOptions over_io_uring() {
  fusedev::ServiceOptions options;
  options.threads = 1;
  options.io_uring = true;
  return options;
}

TEST(FusedevService, BusyPollingWorkerSleepsWhenIdle) { busy_polling_ends_when_idle({}); }

// Voluntary context switches (sleeps) of this process's threads other than the caller's.
long other_threads_sleeps() {
  long total = 0;
  const std::string mine = std::to_string(::gettid());
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    if (task.path().filename() == mine) continue;
    std::ifstream status(task.path() / "status");
    for (std::string line; std::getline(status, line);) {
      if (line.starts_with("voluntary_ctxt_switches:")) total += std::stol(line.substr(line.find(':') + 1));
    }
  }
  return total;
}

// Requests further apart than the busy-poll window find every worker asleep, the polling one
// too: the kernel must wake one of them per request, not each (poll(2) would wake the polling
// worker for every request besides the one blocked in read(2) that takes it: 2 sleeps per
// request instead of 1).
TEST(FusedevService, OneWorkerWakesPerRequestWhenAllSleep) {
  MemoryFs fs(0s);  // nothing cached: every fstat is a GETATTR
  fusedev::ServiceOptions options;
  options.threads = 2;
  options.busy_poll = 50us;
  Mount mount(fs, options);
  ASSERT_TRUE(mount.ok()) << mount.error();
  ASSERT_NO_FATAL_FAILURE(write_file(mount.path("f"), "data"));
  UniqueFd fd(::open(mount.path("f").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid()) << std::strerror(errno);
  constexpr int requests = 300;
  const long before = other_threads_sleeps();
  for (int i = 0; i < requests; ++i) {
    std::this_thread::sleep_for(300us);  // past the window
    struct stat st {};
    ASSERT_EQ(::fstat(fd.get(), &st), 0) << std::strerror(errno);
  }
  const double per_request = static_cast<double>(other_threads_sleeps() - before) / requests;
  EXPECT_GT(per_request, 0.8) << "the workers did not sleep between requests";
  EXPECT_LT(per_request, 1.4);
}

// Worker 0 does not busy-poll while the other worker answers a request (requests then come in
// parallel and want the CPUs): with both workers held at gates, worker 0 released sleeps at once
// instead of spinning through its window (300 ms here, so that spinning shows in the CPU time).
TEST(FusedevService, BusyPollingWorkerSleepsWhileAnotherAnswers) {
  GatedFs fs;
  fusedev::ServiceOptions options;
  options.threads = 2;
  options.busy_poll = 300ms;
  ServedMount<GatedFs> mount(fs, options);
  ASSERT_TRUE(mount.ok()) << mount.error();
  std::array<std::future<int>, 2> stats;
  GatedFs::OpenGatesAtExit open_at_exit{fs};
  std::array<pid_t, 2> workers{};
  for (std::size_t i = 0; i < 2; ++i) {
    const auto path = mount.path(i == 0 ? "a" : "b");
    ASSERT_NO_FATAL_FAILURE(write_file(path, ""));
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0) << std::strerror(errno);
    fs.gates[i].inode = api::InodeId{st.st_ino};
    auto entered = fs.gates[i].entered.get_future();
    stats[i] = std::async(std::launch::async, [path] {
      struct stat out {};
      return ::stat(path.c_str(), &out) == 0 ? 0 : errno;
    });
    ASSERT_EQ(entered.wait_for(5s), std::future_status::ready) << "no worker took stat " << i;
    workers[i] = entered.get();
  }
  // Each worker holds one of the requests: release worker 0's.
  const std::size_t first = thread_name(workers[0]) == "fuse-dev-0" ? 0 : 1;
  ASSERT_EQ(thread_name(workers[first]), "fuse-dev-0");
  ASSERT_EQ(thread_name(workers[1 - first]), "fuse-dev-1");
  const double before = process_cpu_seconds();
  fs.gates[first].open();
  EXPECT_EQ(stats[first].get(), 0);
  std::this_thread::sleep_for(200ms);
  EXPECT_LT(process_cpu_seconds() - before, 0.05) << "worker 0 polled while worker 1 answered";
  fs.gates[1 - first].open();
  EXPECT_EQ(stats[1 - first].get(), 0);
}

TEST(FusedevService, BusyPollingIoUringQueueSleepsWhenIdle) {
  ASSERT_EQ(fuse_backend::testing::enable_fuse_io_uring(), "");
  busy_polling_ends_when_idle(over_io_uring());
}

// The CPUs /proc lists for the thread of this process named `name` ("0", "0-1"; the status
// line of /proc/self/status when `name` is empty), or "" when there is none.
std::string cpus_allowed(const std::string& name) {
  const auto allowed_list = [](const std::filesystem::path& status_path) {
    std::ifstream status(status_path);
    constexpr std::string_view key = "Cpus_allowed_list:";
    for (std::string line; std::getline(status, line);) {
      if (line.starts_with(key)) return line.substr(line.find_first_not_of(" \t", key.size()));
    }
    return std::string();
  };
  if (name.empty()) return allowed_list("/proc/self/status");
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    if (thread_name(task.path()) == name) return allowed_list(task.path() / "status");
  }
  return {};
}

// A thread on CPU `cpu` only (whose callers' requests the kernel hands to io_uring queue `cpu`)
// running `body` until `done`.
std::thread on_cpu_until(int cpu, const std::atomic<bool>& done, const std::function<void()>& body) {
  return std::thread([cpu, &done, body] {
    fuse_backend::testing::OnOneCpu only(cpu);
    if (!only.pinned()) return;
    while (!done.load()) body();
  });
}

// Queue c's thread starts on CPU c alone (c: the first CPU this test may use); callers there
// keeping several requests in flight make it take any allowed CPU, and one caller at a time
// brings it back (queue_affinity.hpp).
TEST(FusedevService, IoUringQueueThreadLeavesItsCpuUnderLoadAndComesBack) {
  ASSERT_EQ(fuse_backend::testing::enable_fuse_io_uring(), "");
  cpu_set_t mine;
  ASSERT_EQ(::sched_getaffinity(0, sizeof(mine), &mine), 0);
  ASSERT_GE(CPU_COUNT(&mine), 2) << "needs two CPUs";
  const int home = fuse_backend::testing::first_allowed_cpu();
  const std::string queue_thread = "fuse-uring-" + std::to_string(home);
  const std::string every_cpu = cpus_allowed("");
  MemoryFs fs(0s);  // nothing cached: every stat is a request
  Mount mount(fs, over_io_uring());
  ASSERT_TRUE(mount.ok()) << mount.error();
  ASSERT_NO_FATAL_FAILURE(write_file(mount.path("f"), "data"));
  EXPECT_GT(mount.service().io_uring_requests(), 0u);
  EXPECT_EQ(cpus_allowed(queue_thread), std::to_string(home));
  const auto stat_f = [path = mount.path("f")] {
    struct stat st {};
    (void)::stat(path.c_str(), &st);
  };

  std::atomic<bool> done{false};
  std::vector<std::thread> callers;
  for (int i = 0; i < 4; ++i) callers.push_back(on_cpu_until(home, done, stat_f));
  EXPECT_TRUE(eventually([&] { return cpus_allowed(queue_thread) == every_cpu; }))
      << "under four callers on its CPU the queue thread stays on " << cpus_allowed(queue_thread);
  done = true;
  for (auto& caller : callers) caller.join();

  done = false;
  std::thread caller = on_cpu_until(home, done, stat_f);
  EXPECT_TRUE(eventually([&] { return cpus_allowed(queue_thread) == std::to_string(home); }))
      << "with one caller the queue thread stays on " << cpus_allowed(queue_thread);
  done = true;
  caller.join();

  mount.service().stop();
  EXPECT_TRUE(join_within(mount.service(), 2s));
  ASSERT_TRUE(mount.session().unmount());
}

// Queue threads sleep in io_uring_enter: stop() must wake and end them as it does readers.
TEST(FusedevService, StopWhileIdleEndsTheIoUringQueues) {
  ASSERT_EQ(fuse_backend::testing::enable_fuse_io_uring(), "");
  MemoryFs fs;
  Mount mount(fs, over_io_uring());
  ASSERT_TRUE(mount.ok()) << mount.error();
  ASSERT_NO_FATAL_FAILURE(write_file(mount.path("f"), "data"));
  EXPECT_EQ(fuse_backend::testing::read_file(mount.path("f")), "data");
  EXPECT_GT(mount.service().io_uring_requests(), 0u);
  std::this_thread::sleep_for(50ms);
  mount.service().stop();
  EXPECT_TRUE(join_within(mount.service(), 2s));
  ASSERT_TRUE(mount.session().unmount());
}

// An unmount completes the pending ring entries (ENOTCONN): a clean end, not an error.
TEST(FusedevService, UnmountFromOutsideEndsTheIoUringQueues) {
  ASSERT_EQ(fuse_backend::testing::enable_fuse_io_uring(), "");
  MemoryFs fs;
  Mount mount(fs, over_io_uring());
  ASSERT_TRUE(mount.ok()) << mount.error();
  ASSERT_NO_FATAL_FAILURE(write_file(mount.path("f"), "data"));
  EXPECT_GT(mount.service().io_uring_requests(), 0u);
  ASSERT_EQ(::umount2(mount.path().c_str(), MNT_DETACH), 0) << std::strerror(errno);
  const auto joined = join_within(mount.service(), 5s);
  EXPECT_TRUE(joined) << "join: " << std::make_error_code(joined.error()).message();
}

// INIT answered without FUSE_OVER_IO_URING (here: masked out, as when the kernel does not
// offer it): the queue threads end and /dev/fuse serves everything.
TEST(FusedevService, WithoutTheIoUringFlagDevFuseServesEverything) {
  ASSERT_EQ(fuse_backend::testing::enable_fuse_io_uring(), "");
  MemoryFs fs;
  auto options = over_io_uring();
  options.server.enabled_init_flags &= ~fuse_backend::abi::init_flags::over_io_uring;
  Mount mount(fs, options);
  ASSERT_TRUE(mount.ok()) << mount.error();
  ASSERT_NO_FATAL_FAILURE(write_file(mount.path("f"), "data"));
  EXPECT_EQ(fuse_backend::testing::read_file(mount.path("f")), "data");
  EXPECT_EQ(mount.service().io_uring_requests(), 0u);
  EXPECT_EQ(mount.service().server().negotiated_flags() & fuse_backend::abi::init_flags::over_io_uring, 0u);
  mount.service().stop();
  EXPECT_TRUE(join_within(mount.service(), 2s));
  ASSERT_TRUE(mount.session().unmount());
}

// Counts the requests the workers take.
class CountingObserver final : public api::RequestObserver {
 public:
  void on_request(const fuse_backend::abi::in_header&) noexcept override { ++count_; }
  void on_reply(const fuse_backend::abi::in_header&, int, std::size_t) noexcept override {}
  long count() const noexcept { return count_.load(); }

 private:
  std::atomic<long> count_{0};
};

TEST(FusedevService, StopFromAnotherThreadUnderLoad) {
  MemoryFs fs;
  CountingObserver requests;
  std::atomic<long> served{0};
  std::vector<std::thread> clients;
  {
    fusedev::ServiceOptions options;
    options.threads = 4;
    options.server.observer = &requests;
    Mount mount(fs, options);
    ASSERT_TRUE(mount.ok()) << mount.error();
    ASSERT_NO_FATAL_FAILURE(write_file(mount.path("f"), std::string(8192, 'x')));
    // Open/read/close until something fails: requests stay queued or in flight while stop()
    // runs; after it, the last ones fail once the connection is closed below.
    for (int i = 0; i < 4; ++i) {
      clients.emplace_back([&, path = mount.path("f")] {
        std::array<char, 4096> buffer{};
        for (;;) {
          UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
          if (!fd || ::pread(fd.get(), buffer.data(), buffer.size(), 0) != 4096) return;
          ++served;
        }
      });
    }
    EXPECT_TRUE(eventually([&] { return served.load() > 0; }));
    std::thread stopper([&mount] { mount.service().stop(); });
    stopper.join();
    EXPECT_TRUE(join_within(mount.service(), 2s));
    const long after_join = requests.count();
    std::this_thread::sleep_for(50ms);  // the clients keep asking
    EXPECT_EQ(requests.count(), after_join) << "no worker takes a request after join()";
  }  // unmounted and the device closed: the clients' pending requests fail
  for (auto& client : clients) client.join();
}

Mount::Service* signalled_service = nullptr;
std::atomic<bool> handler_kept_errno{false};

TEST(FusedevService, StopFromASignalHandler) {
  MemoryFs fs;
  fusedev::ServiceOptions options;
  options.threads = 4;
  Mount mount(fs, options);
  ASSERT_TRUE(mount.ok()) << mount.error();
  ASSERT_NO_FATAL_FAILURE(write_file(mount.path("f"), "data"));
  signalled_service = &mount.service();
  struct sigaction action {};
  struct sigaction previous {};
  action.sa_handler = [](int) {
    const int saved = errno;
    errno = EILSEQ;
    signalled_service->stop();
    handler_kept_errno = errno == EILSEQ;
    errno = saved;
  };
  sigemptyset(&action.sa_mask);
  ASSERT_EQ(::sigaction(SIGUSR1, &action, &previous), 0);
  ASSERT_EQ(::pthread_kill(::pthread_self(), SIGUSR1), 0);
  ::sigaction(SIGUSR1, &previous, nullptr);
  EXPECT_TRUE(handler_kept_errno);
  EXPECT_TRUE(join_within(mount.service(), 2s));
  EXPECT_TRUE(is_mounted(mount.path()));
}

TEST(FusedevService, SecondStartIsRefused) {
  MemoryFs fs;
  Mount mount(fs);
  ASSERT_TRUE(mount.ok()) << mount.error();
  const auto again = mount.service().start();
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), std::errc::operation_in_progress);
}

TEST(FusedevService, SigtermThroughSignalWatcherStopsTheService) {
  // The watcher blocks SIGTERM before the workers exist, so they inherit the mask and the
  // signal can only be taken by its signalfd.
  fusedev::SignalWatcher signals;
  MemoryFs fs;
  Mount mount(fs);
  ASSERT_TRUE(mount.ok()) << mount.error();
  std::atomic<int> seen{0};
  ASSERT_TRUE(signals.start([&](int signo) {
    seen = signo;
    mount.service().stop();
  }));
  ASSERT_EQ(::kill(::getpid(), SIGTERM), 0);
  EXPECT_TRUE(join_within(mount.service(), 5s));
  EXPECT_EQ(seen.load(), SIGTERM);
  EXPECT_EQ(signals.received(), SIGTERM);
}

// Records which threads served requests.
class ThreadObserver final : public api::RequestObserver {
 public:
  void on_request(const fuse_backend::abi::in_header&) noexcept override {
    std::lock_guard lock(mutex_);
    threads_.insert(std::this_thread::get_id());
  }
  void on_reply(const fuse_backend::abi::in_header&, int, std::size_t) noexcept override {}
  std::size_t distinct() {
    std::lock_guard lock(mutex_);
    return threads_.size();
  }

 private:
  std::mutex mutex_;
  std::set<std::thread::id> threads_;
};

TEST(FusedevService, SeveralWorkersServeConcurrentReaders) {
  constexpr int files = 6;
  constexpr std::size_t file_size = 512 * 1024;
  constexpr std::size_t chunk = 64 * 1024;
  MemoryFs fs;
  ThreadObserver observer;
  fusedev::ServiceOptions options;
  options.threads = 3;
  options.server.observer = &observer;
  Mount mount(fs, options);
  ASSERT_TRUE(mount.ok()) << mount.error();

  const auto contents = [](int file) {
    std::string data(file_size, '\0');
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i / 8 + i * 131 + file * 7919) % 251);
    return data;
  };
  for (int f = 0; f < files; ++f) ASSERT_NO_FATAL_FAILURE(write_file(mount.path("f" + std::to_string(f)), contents(f)));

  std::atomic<int> mismatches{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> readers;
  for (int f = 0; f < files; ++f) {
    readers.emplace_back([&, f] {
      const std::string expected = contents(f);
      // O_DIRECT: every read reaches the filesystem instead of the page cache.
      std::unique_ptr<char, decltype(&std::free)> buffer(static_cast<char*>(std::aligned_alloc(4096, chunk)), &std::free);
      for (int pass = 0; pass < 4; ++pass) {
        UniqueFd fd(::open(mount.path("f" + std::to_string(f)).c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
        if (!fd) {
          ++failures;
          return;
        }
        for (std::size_t off = 0; off < file_size; off += chunk) {
          const std::size_t at = (off + static_cast<std::size_t>(pass) * 3 * chunk) % file_size;  // vary the order
          if (::pread(fd.get(), buffer.get(), chunk, static_cast<off_t>(at)) != static_cast<ssize_t>(chunk)) {
            ++failures;
          } else if (std::memcmp(buffer.get(), expected.data() + at, chunk) != 0) {
            ++mismatches;
          }
        }
      }
    });
  }
  for (auto& reader : readers) reader.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_GE(observer.distinct(), 2u) << "requests were spread over the cloned fds' workers";
}

TEST(FusedevService, InvalEntryNotificationReachesTheKernel) {
  MemoryFs fs(std::chrono::seconds(600));  // the kernel may cache entries for a long time
  Mount mount(fs);
  ASSERT_TRUE(mount.ok()) << mount.error();
  ASSERT_NO_FATAL_FAILURE(write_file(mount.path("cached"), "x"));
  struct stat st {};
  ASSERT_EQ(::stat(mount.path("cached").c_str(), &st), 0);
  // In use, the dentry survives a drop_caches elsewhere (another test); invalidation still
  // unhashes it.
  UniqueFd pinned(::open(mount.path("cached").c_str(), O_PATH | O_CLOEXEC));
  ASSERT_TRUE(pinned.valid());

  // Remove it behind the kernel's back: the cached dentry still answers.
  ASSERT_TRUE(fs.unlink(api::Context{}, api::root_inode, "cached"));
  EXPECT_EQ(::stat(mount.path("cached").c_str(), &st), 0) << "served from the dentry cache";

  ASSERT_TRUE(api::notify_inval_entry(mount.service().notifier(), api::root_inode, "cached"));
  EXPECT_EQ(::stat(mount.path("cached").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
}

}  // namespace
