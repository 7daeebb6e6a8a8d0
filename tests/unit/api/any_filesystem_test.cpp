// AnyFilesystem: concept conformance both ways, ENOSYS for missing ops through a real Server,
// run-time op reporting, INIT flags identical to serving the wrapped type directly, ownership.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include <fuse_backend/api/any_filesystem.hpp>
#include <fuse_backend/api/server.hpp>
#include <support/memory_fs.hpp>
#include <support/memory_transport.hpp>
#include <support/message_builder.hpp>
#include <support/recording_fs.hpp>

namespace fuse_backend::testing {
namespace {

using api::AnyFilesystem;
using abi::opcode;
namespace flags = abi::init_flags;

// The core only: every other op must come out as ENOSYS.
struct CoreFs {
  int lookups = 0;
  Result<api::Entry> lookup(const api::Context&, api::InodeId, std::string_view name) {
    ++lookups;
    if (name == "boom") throw std::runtime_error("boom");
    api::Entry entry;
    entry.inode = api::InodeId{7};
    entry.attr.st_ino = 7;
    entry.attr.st_mode = S_IFREG | 0644;
    return entry;
  }
  Result<api::AttrReply> getattr(const api::Context&, api::InodeId, std::optional<api::HandleId>) {
    return api::AttrReply{};
  }
};

// Not a filesystem: getattr is missing.
struct LookupOnly {
  Result<api::Entry> lookup(const api::Context&, api::InodeId, std::string_view) { return api::Entry{}; }
};

// Forget without batch_forget, and setlk without getlk (flock but no POSIX locks).
struct ForgetAndFlockFs : CoreFs {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> forgotten;
  void forget(const api::Context&, api::InodeId inode, std::uint64_t nlookup) {
    forgotten.emplace_back(static_cast<std::uint64_t>(inode), nlookup);
  }
  Result<void> setlk(const api::Context&, api::InodeId, api::HandleId, std::uint64_t, const api::FileLock&,
                     std::uint32_t, bool) {
    return {};
  }
};

// Counts its destructions, to observe ownership.
struct CountedFs : CoreFs {
  explicit CountedFs(int& destroyed) : destroyed_(destroyed) {}
  ~CountedFs() { ++destroyed_; }
  int& destroyed_;
};

template <class Fs>
concept ErasableAsFilesystem = requires(Fs& fs) { AnyFilesystem::borrow(fs); };

// --- concepts, both ways -----------------------------------------------------------------------

static_assert(api::Filesystem<AnyFilesystem>);
static_assert(api::SupportsInit<AnyFilesystem> && api::SupportsDestroy<AnyFilesystem> &&
              api::SupportsForget<AnyFilesystem> && api::SupportsBatchForget<AnyFilesystem> &&
              api::SupportsRead<AnyFilesystem> && api::SupportsWrite<AnyFilesystem> &&
              api::SupportsReaddirplus<AnyFilesystem> && api::SupportsGetlk<AnyFilesystem> &&
              api::SupportsSetlk<AnyFilesystem> && api::SupportsIoctl<AnyFilesystem> &&
              api::SupportsStatx<AnyFilesystem> && api::SupportsRetrieveReply<AnyFilesystem> &&
              api::SupportsSetupmapping<AnyFilesystem> && api::SupportsRemovemapping<AnyFilesystem>);
static_assert(api::check_signatures<AnyFilesystem>());
static_assert(!std::is_copy_constructible_v<AnyFilesystem> && std::is_nothrow_move_constructible_v<AnyFilesystem>);

static_assert(ErasableAsFilesystem<CoreFs> && ErasableAsFilesystem<MemoryFs> && ErasableAsFilesystem<RecordingFs>);
static_assert(!api::Filesystem<LookupOnly>);
static_assert(!ErasableAsFilesystem<LookupOnly>);
static_assert(!std::is_constructible_v<AnyFilesystem, std::unique_ptr<LookupOnly>>);
static_assert(!std::is_constructible_v<AnyFilesystem, std::shared_ptr<int>>);

// --- run-time op reporting ---------------------------------------------------------------------

TEST(AnyFilesystemOps, CoreFilesystemReportsOnlyLookupAndGetattr) {
  CoreFs fs;
  const auto any = AnyFilesystem::borrow(fs);
  EXPECT_EQ(any.opcodes(), api::opcode_bit(opcode::lookup) | api::opcode_bit(opcode::getattr));
  EXPECT_TRUE(any.supports(opcode::lookup));
  EXPECT_FALSE(any.supports(opcode::read));
  EXPECT_FALSE(any.supports(opcode::init));
  EXPECT_FALSE(any.supports(opcode::cuse_init));
}

TEST(AnyFilesystemOps, MemoryFsReportsWhatItImplements) {
  const auto any = AnyFilesystem::make<MemoryFs>();
  for (auto op : {opcode::lookup, opcode::forget, opcode::batch_forget, opcode::mkdir, opcode::rename,
                  opcode::rename2, opcode::read, opcode::write, opcode::readdirplus, opcode::setxattr}) {
    EXPECT_TRUE(any.supports(op)) << static_cast<int>(op);
  }
  for (auto op : {opcode::init, opcode::destroy, opcode::getlk, opcode::setlk, opcode::setlkw, opcode::ioctl,
                  opcode::tmpfile, opcode::statx, opcode::copy_file_range, opcode::copy_file_range_64,
                  opcode::setupmapping}) {
    EXPECT_FALSE(any.supports(op)) << static_cast<int>(op);
  }
}

TEST(AnyFilesystemOps, RecordingFsReportsEveryFilesystemOpcode) {
  RecordingFs fs;
  const auto any = AnyFilesystem::borrow(fs);
  for (std::uint32_t value = 1; value <= 53; ++value) {
    const auto op = static_cast<opcode>(value);
    if (abi::find_opcode(value) == nullptr || op == opcode::interrupt) continue;
    EXPECT_TRUE(any.supports(op)) << value;
  }
}

// --- through a real Server ---------------------------------------------------------------------

class AnyServer {
 public:
  explicit AnyServer(AnyFilesystem fs) : fs_(std::move(fs)) {
    EXPECT_EQ(exchange(init_request(7, 45, kernel_offer)).error(), 0);
  }
  ParsedReply exchange(const std::vector<std::byte>& message) {
    writer_.reset();
    MemoryReader reader(message);
    EXPECT_TRUE(server_.handle(reader, writer_));
    return ParsedReply::parse(writer_.reply());
  }
  std::size_t commits() const { return writer_.commits(); }
  std::uint64_t negotiated() const { return server_.negotiated_flags(); }

 private:
  AnyFilesystem fs_;
  api::Server<MemoryTransport, AnyFilesystem> server_{fs_};
  MemoryWriter writer_;
};

TEST(AnyFilesystemServer, MissingOpsAnswerEnosysPresentOnesAreForwarded) {
  CoreFs fs;
  AnyServer server(AnyFilesystem::borrow(fs));
  const auto found = server.exchange(MessageBuilder(opcode::lookup, 1, 5).name("x").build());
  EXPECT_EQ(found.error(), 0);
  EXPECT_EQ(found.as<abi::entry_out>().nodeid, 7u);
  EXPECT_EQ(fs.lookups, 1);

  EXPECT_EQ(server.exchange(MessageBuilder(opcode::mkdir).add(abi::mkdir_in{0755, 022}).name("d").build()).error(),
            ENOSYS);
  EXPECT_EQ(server.exchange(MessageBuilder(opcode::open, 7).add(abi::open_in{}).build()).error(), ENOSYS);
  abi::read_in read{};
  read.size = 16;
  EXPECT_EQ(server.exchange(MessageBuilder(opcode::read, 7).add(read).build()).error(), ENOSYS);
  EXPECT_EQ(server.exchange(MessageBuilder(opcode::readdirplus, 1).add(read).build()).error(), ENOSYS);
  EXPECT_EQ(server.exchange(MessageBuilder(opcode::statfs).build()).error(), ENOSYS);
  // No reply ops the filesystem lacks: silently dropped, as the Server does for CoreFs itself.
  server.exchange(MessageBuilder(opcode::forget, 7).add(abi::forget_in{1}).build());
  EXPECT_EQ(server.commits(), 0u);
}

TEST(AnyFilesystemServer, MemoryFsWorksThroughTheErasure) {
  AnyServer server(AnyFilesystem::make<MemoryFs>());
  const auto made = server.exchange(MessageBuilder(opcode::mkdir).add(abi::mkdir_in{0755, 022}).name("d").build());
  ASSERT_EQ(made.error(), 0);
  const auto ino = made.as<abi::entry_out>().nodeid;
  EXPECT_EQ(made.as<abi::entry_out>().attr.mode, S_IFDIR | 0755u);
  const auto looked = server.exchange(MessageBuilder(opcode::lookup).name("d").build());
  EXPECT_EQ(looked.as<abi::entry_out>().nodeid, ino);
  abi::lk_in lock{};
  EXPECT_EQ(server.exchange(MessageBuilder(opcode::getlk, ino).add(lock).build()).error(), ENOSYS);
  EXPECT_EQ(server.exchange(MessageBuilder(opcode::syncfs).add(abi::syncfs_in{}).build()).error(), ENOSYS);
}

TEST(AnyFilesystemServer, ExceptionsReachTheServersGuard) {
  CoreFs fs;
  AnyServer server(AnyFilesystem::borrow(fs));
  EXPECT_EQ(server.exchange(MessageBuilder(opcode::lookup).name("boom").build()).error(), EIO);
}

TEST(AnyFilesystemServer, BatchForgetFallsBackToForget) {
  ForgetAndFlockFs fs;
  AnyServer server(AnyFilesystem::borrow(fs));
  MessageBuilder batch(opcode::batch_forget, 0);
  batch.add(abi::batch_forget_in{2, 0}).add(abi::forget_one{10, 3}).add(abi::forget_one{11, 4});
  server.exchange(batch.build());
  EXPECT_EQ(server.commits(), 0u);
  const std::vector<std::pair<std::uint64_t, std::uint64_t>> expected = {{10, 3}, {11, 4}};
  EXPECT_EQ(fs.forgotten, expected);
}

// --- INIT ----------------------------------------------------------------------------------------

// The flags a Server negotiates for `fs` itself and for `fs` behind an AnyFilesystem.
template <class Fs>
std::pair<std::uint64_t, std::uint64_t> negotiate_both_ways(Fs& fs, std::uint64_t offer) {
  api::Server<MemoryTransport, Fs> direct(fs);
  MemoryWriter writer;
  const auto message = init_request(7, 45, offer);
  MemoryReader reader(message);
  EXPECT_TRUE(direct.handle(reader, writer));
  AnyServer erased(AnyFilesystem::borrow(fs));
  return {direct.negotiated_flags(), erased.negotiated()};
}

TEST(AnyFilesystemInit, WithoutInitTheFlagsAreWhatTheServerWouldEnable) {
  CoreFs core;
  const auto [core_direct, core_erased] = negotiate_both_ways(core, kernel_offer);
  EXPECT_EQ(core_erased, core_direct);
  EXPECT_EQ(core_erased & (flags::do_readdirplus | flags::readdirplus_auto | flags::posix_locks |
                           flags::flock_locks | flags::has_ioctl_dir | flags::setxattr_ext),
            0u);
  EXPECT_EQ(core_erased & api::opt_in_init_flags, 0u);
  EXPECT_EQ(core_erased, kernel_offer & api::always_on_init_flags);

  MemoryFs memory;
  const auto [memory_direct, memory_erased] = negotiate_both_ways(memory, kernel_offer);
  EXPECT_EQ(memory_erased, memory_direct);
  EXPECT_NE(memory_erased & flags::do_readdirplus, 0u);
  EXPECT_NE(memory_erased & flags::setxattr_ext, 0u);
  EXPECT_EQ(memory_erased & (flags::posix_locks | flags::has_ioctl_dir), 0u);

  ForgetAndFlockFs flock;
  const auto [flock_direct, flock_erased] = negotiate_both_ways(flock, kernel_offer);
  EXPECT_EQ(flock_erased, flock_direct);
  EXPECT_NE(flock_erased & flags::flock_locks, 0u);
  EXPECT_EQ(flock_erased & flags::posix_locks, 0u);
}

TEST(AnyFilesystemInit, WrappedInitSeesTheSameOfferAndDecides) {
  RecordingFs direct_fs;
  RecordingFs erased_fs;
  for (auto* fs : {&direct_fs, &erased_fs}) {
    fs->init_wants = flags::writeback_cache | flags::async_read | flags::do_readdirplus | flags::over_io_uring;
  }
  api::Server<MemoryTransport, RecordingFs> direct(direct_fs);
  MemoryWriter writer;
  const auto message = init_request(7, 45, kernel_offer);
  MemoryReader reader(message);
  ASSERT_TRUE(direct.handle(reader, writer));
  AnyServer erased(AnyFilesystem::borrow(erased_fs));
  EXPECT_EQ(erased_fs.init_offered, direct_fs.init_offered);
  EXPECT_EQ(erased.negotiated(), direct.negotiated_flags());
  EXPECT_EQ(erased.negotiated(), flags::writeback_cache | flags::async_read | flags::do_readdirplus);
}

TEST(AnyFilesystemInit, InitFailureIsPassedOn) {
  struct FailingInit : CoreFs {
    Result<std::uint64_t> init(std::uint64_t) { return fail(std::errc::operation_not_permitted); }
  } failing;
  auto any = AnyFilesystem::borrow(failing);
  const auto chosen = any.init(kernel_offer);
  ASSERT_FALSE(chosen);
  EXPECT_EQ(chosen.error(), std::errc::operation_not_permitted);
}

// The op-backed flags from AnyFilesystem's run-time op set agree with the compile-time ones.
template <class Fs>
void expect_same_possible_flags() {
  const std::uint64_t opcodes = AnyFilesystem::make<Fs>().opcodes();
  EXPECT_EQ(api::op_backed_init_flags<Fs>(), api::op_backed_init_flags(opcodes));
}

TEST(AnyFilesystemInit, OpBackedFlagsMirrorTheServer) {
  expect_same_possible_flags<CoreFs>();
  expect_same_possible_flags<MemoryFs>();
  expect_same_possible_flags<RecordingFs>();
  expect_same_possible_flags<ForgetAndFlockFs>();
}

// --- ownership -----------------------------------------------------------------------------------

TEST(AnyFilesystemOwnership, UniquePtrOwnsBorrowDoesNotSharedPtrShares) {
  int destroyed = 0;
  {
    AnyFilesystem owned(std::make_unique<CountedFs>(destroyed));
    AnyFilesystem moved = std::move(owned);
    EXPECT_EQ(destroyed, 0);
  }
  EXPECT_EQ(destroyed, 1);

  {
    CountedFs local(destroyed);
    { auto borrowed = AnyFilesystem::borrow(local); }
    EXPECT_EQ(destroyed, 1);
  }
  EXPECT_EQ(destroyed, 2);

  auto shared = std::make_shared<CountedFs>(destroyed);
  {
    AnyFilesystem sharing(shared);
    EXPECT_EQ(shared.use_count(), 2);
  }
  EXPECT_EQ(shared.use_count(), 1);
  shared.reset();
  EXPECT_EQ(destroyed, 3);
}

}  // namespace
}  // namespace fuse_backend::testing
