// PassthroughFs under hostile or unusual conditions found by the security review: lock
// requests that must not hold a worker or an fd per kernel-chosen owner, seal_size against
// O_APPEND and O_TRUNC, writeback with write-only permission, and short host reads.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <thread>

#include <fuse_backend/api/server.hpp>
#include <support/memory_transport.hpp>
#include <support/message_builder.hpp>

#include "passthrough_fixture.hpp"

namespace fuse_backend::passthrough::testing {
namespace {

using api::root_inode;

std::size_t open_fd_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

TEST_F(PassthroughTest, SealSizeHoldsAgainstAppendAndTruncate) {
  write_file(source_ / "f", "fixed");
  write_file(source_ / "empty", "");
  Config config;
  config.seal_size = true;
  auto& fs = make(config);
  const auto f = lookup(root_inode, "f");
  // O_APPEND on the host would put this write at the end, past the seal; the kernel's offset
  // is used instead.
  auto appending = fs.open(ctx_, f, O_RDWR | O_APPEND, 0);
  ASSERT_TRUE(appending);
  MemoryReader more("more");
  auto written = fs.write(ctx_, f, appending->handle, more, 4, 0, 0, O_RDWR | O_APPEND);
  ASSERT_TRUE(written);
  EXPECT_EQ(*written, 4u);
  EXPECT_EQ(read_file(source_ / "f"), "mored");
  MemoryReader past("!");
  auto beyond = fs.write(ctx_, f, appending->handle, past, 1, 5, 0, O_RDWR | O_APPEND);
  ASSERT_FALSE(beyond);
  EXPECT_EQ(beyond.error(), std::errc::operation_not_permitted);

  auto truncating = fs.open(ctx_, f, O_RDWR | O_TRUNC, 0);
  ASSERT_FALSE(truncating);
  EXPECT_EQ(truncating.error(), std::errc::operation_not_permitted);
  EXPECT_EQ(read_file(source_ / "f"), "mored");
  auto existing = fs.create(ctx_, root_inode, "f", S_IFREG | 0644, O_RDWR | O_CREAT | O_TRUNC);
  ASSERT_FALSE(existing);
  EXPECT_EQ(existing.error(), std::errc::operation_not_permitted);
  EXPECT_EQ(read_file(source_ / "f"), "mored");
  // SETATTR to a smaller size is a truncate too (the kernel's O_TRUNC without atomic_o_trunc).
  api::SetattrIn shrink{};
  shrink.valid = abi::fattr::size;
  shrink.attr.st_size = 0;
  auto shrunk = fs.setattr(ctx_, f, shrink, std::nullopt);
  ASSERT_FALSE(shrunk);
  EXPECT_EQ(shrunk.error(), std::errc::operation_not_permitted);
  EXPECT_EQ(read_file(source_ / "f"), "mored");

  // Truncating an empty file changes nothing: allowed.
  const auto empty = lookup(root_inode, "empty");
  auto opened = fs.open(ctx_, empty, O_RDWR | O_TRUNC, 0);
  ASSERT_TRUE(opened) << std::make_error_code(opened.error()).message();
  EXPECT_TRUE(fs.release(ctx_, empty, opened->handle, 0, 0, 0));
  EXPECT_TRUE(fs.release(ctx_, f, appending->handle, 0, 0, 0));
}

TEST_F(PassthroughTest, WritebackOpensWriteOnlyFilesForWriteOnlyCallers) {
  if (::geteuid() != 0) GTEST_FAIL() << "needs root: the daemon switches to the caller's ids";
  write_file(source_ / "drop", "");
  ASSERT_EQ(::chown((source_ / "drop").c_str(), 1000, 1000), 0);
  ASSERT_EQ(::chmod((source_ / "drop").c_str(), 0200), 0);
  Config config;
  config.writeback = true;
  auto& fs = make(config);
  const auto drop = lookup(root_inode, "drop");
  const auto user = caller(1000, 1000);
  auto opened = fs.open(user, drop, O_WRONLY, 0);
  ASSERT_TRUE(opened) << std::make_error_code(opened.error()).message();
  MemoryReader data("secret");
  auto written = fs.write(user, drop, opened->handle, data, 6, 0, 0, 0);
  ASSERT_TRUE(written);
  EXPECT_EQ(read_file(source_ / "drop"), "secret");
  EXPECT_TRUE(fs.release(user, drop, opened->handle, 0, 0, 0));
  // Still no read access for that caller.
  auto reading = fs.open(user, drop, O_RDONLY, 0);
  ASSERT_FALSE(reading);
  EXPECT_EQ(reading.error(), std::errc::permission_denied);
}

// A host that returns at most `chunk` bytes per read, like NFS or a FUSE submount may.
class ChunkedWriter final : public api::ZeroCopyWriter {
 public:
  ChunkedWriter(std::size_t capacity, std::size_t chunk) : inner_(capacity), chunk_(chunk) {}
  std::size_t available() const noexcept override { return inner_.available(); }
  Result<std::size_t> write_from(int fd, std::size_t count, std::uint64_t offset) noexcept override {
    return inner_.write_from(fd, std::min(count, chunk_), offset);
  }
  std::size_t write(std::span<const std::byte> in) noexcept override { return inner_.write(in); }
  const std::string& data() const { return inner_.data(); }

 private:
  MemoryWriter inner_;
  std::size_t chunk_;
};

TEST_F(PassthroughTest, ReadContinuesAfterShortHostReads) {
  write_file(source_ / "f", "0123456789");
  auto& fs = make();
  const auto f = lookup(root_inode, "f");
  auto opened = fs.open(ctx_, f, O_RDONLY, 0);
  ASSERT_TRUE(opened);
  ChunkedWriter out(4096, 3);
  auto n = fs.read(ctx_, f, opened->handle, out, 100, 1, 0);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 9u);
  EXPECT_EQ(out.data(), "123456789");
  EXPECT_TRUE(fs.release(ctx_, f, opened->handle, 0, 0, 0));
}

TEST_F(PassthroughTest, LockOwnersCostNoFdUntilTheyLockAndAreCapped) {
  write_file(source_ / "f", "0123456789");
  auto& fs = make();
  const auto f = lookup(root_inode, "f");
  auto opened = fs.open(ctx_, f, O_RDWR, 0);
  ASSERT_TRUE(opened);
  const api::HandleId h = opened->handle;
  const api::FileLock whole{0, ~0ULL >> 1, F_WRLCK, 0};
  ASSERT_TRUE(fs.setlk(ctx_, f, h, 1, whole, 0, false));
  const std::size_t before = open_fd_count();
  // GETLK and unlocks with owners the kernel invents keep no fd...
  for (std::uint64_t owner = 2; owner < 500; ++owner) {
    auto probe = fs.getlk(ctx_, f, h, owner, whole, 0);
    ASSERT_TRUE(probe);
    EXPECT_EQ(probe->type, static_cast<std::uint32_t>(F_WRLCK));  // owner 1's lock conflicts
    ASSERT_TRUE(fs.setlk(ctx_, f, h, owner, api::FileLock{0, 0, F_UNLCK, 0}, 0, false));
  }
  EXPECT_EQ(open_fd_count(), before);
  auto own = fs.getlk(ctx_, f, h, 1, whole, 0);
  ASSERT_TRUE(own);
  EXPECT_EQ(own->type, static_cast<std::uint32_t>(F_UNLCK));  // its own lock does not conflict
  ASSERT_TRUE(fs.setlk(ctx_, f, h, 1, api::FileLock{0, ~0ULL >> 1, F_UNLCK, 0}, 0, false));

  // ...and lock requests keep at most max_lock_owners per handle.
  std::uint64_t owner = 1000;
  for (std::size_t i = 1; i < OpenFile::max_lock_owners; ++i, ++owner) {
    ASSERT_TRUE(fs.setlk(ctx_, f, h, owner, api::FileLock{i, i, F_RDLCK, 0}, 0, false)) << i;
  }
  auto refused = fs.setlk(ctx_, f, h, owner, api::FileLock{0, 0, F_RDLCK, 0}, 0, false);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), std::errc::no_lock_available);
  // FLUSH of an owner closes its description and frees its place.
  ASSERT_TRUE(fs.flush(ctx_, f, h, 1000));
  EXPECT_TRUE(fs.setlk(ctx_, f, h, owner, api::FileLock{0, 0, F_RDLCK, 0}, 0, false));
  EXPECT_TRUE(fs.release(ctx_, f, h, 0, 0, 0));
}

using fuse_backend::testing::init_request;
using fuse_backend::testing::MessageBuilder;
using fuse_backend::testing::ParsedReply;

// SETLKW of a held lock through the Server, as a virtio-fs queue would carry it: with the
// default Config it must answer at once (a waiting request would hold the queue forever: the
// guest never sends INTERRUPT).
class PassthroughLockWait : public PassthroughTest {
 protected:
  ParsedReply exchange(const std::vector<std::byte>& message) {
    fuse_backend::testing::MemoryWriter writer;
    fuse_backend::testing::MemoryReader reader(message);
    reader.set_may_block(may_block_);
    (void)server_->handle(reader, writer);
    return ParsedReply::parse(writer.reply());
  }
  // Which interrupt comes, and when, if any.
  enum class Interrupt { none, all_before_the_request, all_while_it_waits, its_own_before_it };
  // Sends SETLKW for `owner` while owner 0xA holds the whole file; returns its errno, or -1
  // when it did not answer within 5 s (then the holder's lock is dropped so the test ends).
  int contended_setlkw(Config config, std::uint32_t lock_flags,
                       Interrupt interrupt = Interrupt::none) {
    write_file(source_ / "f", "data");
    auto& fs = make(config);
    server_.emplace(fs);
    EXPECT_EQ(exchange(init_request(7, 45, ~std::uint64_t{0} >> 1)).error(), 0);
    const auto f = lookup(root_inode, "f");
    auto opened = fs.open(ctx_, f, O_RDWR, 0);
    EXPECT_TRUE(opened);
    auto held = fs.open(ctx_, f, O_RDWR, 0);  // flock conflicts between handles
    EXPECT_TRUE(held);
    EXPECT_TRUE(fs.setlk(ctx_, f, held->handle, 0xA, api::FileLock{0, ~0ULL >> 1, F_WRLCK, 0},
                         lock_flags, false));
    abi::lk_in wait{};
    wait.fh = static_cast<std::uint64_t>(opened->handle);
    wait.owner = 0xB;
    wait.lk = {0, ~0ULL >> 1, F_WRLCK, 1};
    wait.lk_flags = lock_flags;
    const auto id = static_cast<std::uint64_t>(f);
    if (interrupt == Interrupt::all_before_the_request) server_->interrupt_all();
    // Over /dev/fuse an INTERRUPT may overtake its request on the way to a handler.
    if (interrupt == Interrupt::its_own_before_it) {
      (void)exchange(MessageBuilder(abi::opcode::interrupt, 0, 11).add(abi::interrupt_in{9}).build());
    }
    auto reply = std::async(std::launch::async, [&, id] {
      return exchange(MessageBuilder(abi::opcode::setlkw, id, 9).add(wait).build());
    });
    if (interrupt == Interrupt::all_while_it_waits) {
      EXPECT_EQ(reply.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
      server_->interrupt_all();
    }
    if (reply.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
      (void)fs.release(ctx_, f, held->handle, 0, abi::release_flags::flock_unlock, 0);
      (void)fs.flush(ctx_, f, held->handle, 0xA);
      reply.wait();
      return -1;
    }
    return reply.get().error();
  }

  std::optional<api::Server<fuse_backend::testing::MemoryTransport, PassthroughFs>> server_;
  bool may_block_ = true;  // what the transport says of the request's thread
};

// A thread that may not wait (an io_uring queue's, a virtio queue's) gets ENOLCK at once even
// where waiting is allowed.
TEST_F(PassthroughLockWait, AThreadThatMayNotBlockAnswersEnolck) {
  Config config;
  config.max_lock_waiters = 1;
  may_block_ = false;
  EXPECT_EQ(contended_setlkw(config, 0), ENOLCK);
  EXPECT_EQ(contended_setlkw(config, abi::lk_flags::flock), ENOLCK);
}

// A stopping transport interrupts every request: a waiting lock gives up (EINTR), and so does
// one that arrives afterwards.
TEST_F(PassthroughLockWait, InterruptAllEndsAWait) {
  Config config;
  config.max_lock_waiters = 1;
  EXPECT_EQ(contended_setlkw(config, 0, Interrupt::all_while_it_waits), EINTR);
}

TEST_F(PassthroughLockWait, InterruptAllAlsoEndsALaterWait) {
  Config config;
  config.max_lock_waiters = 1;
  EXPECT_EQ(contended_setlkw(config, 0, Interrupt::all_before_the_request), EINTR);
}

TEST_F(PassthroughLockWait, AnInterruptThatOvertookItsRequestStillEndsTheWait) {
  Config config;
  config.max_lock_waiters = 1;
  EXPECT_EQ(contended_setlkw(config, 0, Interrupt::its_own_before_it), EINTR);
}

TEST_F(PassthroughLockWait, ContendedPosixSetlkwAnswersAtOnce) {
  EXPECT_EQ(contended_setlkw({}, 0), EOPNOTSUPP);
}

TEST_F(PassthroughLockWait, ContendedFlockAnswersAtOnce) {
  EXPECT_EQ(contended_setlkw({}, abi::lk_flags::flock), EOPNOTSUPP);
}

TEST_F(PassthroughLockWait, WaitersBeyondTheLimitAnswerEnolck) {
  Config config;
  config.max_lock_waiters = 1;
  write_file(source_ / "f", "data");
  auto& fs = make(config);
  const auto f = lookup(root_inode, "f");
  auto opened = fs.open(ctx_, f, O_RDWR, 0);
  ASSERT_TRUE(opened);
  const api::HandleId h = opened->handle;
  const api::FileLock whole{0, ~0ULL >> 1, F_WRLCK, 0};
  ASSERT_TRUE(fs.setlk(ctx_, f, h, 1, whole, 0, false));
  // Owner 2 waits (the one allowed waiter) until owner 1 unlocks; owner 3 may not wait.
  auto waiter = std::async(std::launch::async, [&] { return fs.setlk(ctx_, f, h, 2, whole, 0, true); });
  // Owner 3 asks with an already interrupted request, so it can never wait itself: EINTR while
  // the waiter thread has not taken the slot yet (a loaded machine may start it late), ENOLCK
  // once it has.
  std::atomic<std::uint64_t> interrupted{1};  // the interrupt mark
  api::Context impatient = ctx_;
  impatient.interrupted_ = &interrupted;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  auto third = fs.setlk(impatient, f, h, 3, whole, 0, true);
  while (!third && third.error() == std::errc::interrupted && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    third = fs.setlk(impatient, f, h, 3, whole, 0, true);
  }
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error(), std::errc::no_lock_available);
  EXPECT_EQ(waiter.wait_for(std::chrono::seconds(0)), std::future_status::timeout) << "owner 1 still holds it";
  ASSERT_TRUE(fs.setlk(ctx_, f, h, 1, api::FileLock{0, ~0ULL >> 1, F_UNLCK, 0}, 0, false));
  ASSERT_EQ(waiter.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_TRUE(waiter.get());
  EXPECT_TRUE(fs.release(ctx_, f, h, 0, 0, 0));
}

}  // namespace
}  // namespace fuse_backend::passthrough::testing
