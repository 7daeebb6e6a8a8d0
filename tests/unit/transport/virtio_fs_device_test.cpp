// The virtio-fs device: every FUSE opcode through FsDevice (a simulated guest posting chains on
// the hiprio and a request queue) gives exactly the reply and the filesystem call that the
// in-memory transport gives; a stateful MemoryFs session; no-reply and malformed chains still
// returned on the used ring; notifications; configuration; concurrent request queues.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/api/server.hpp>
#include <fuse_backend/transport/virtio/device.hpp>
#include <fuse_backend/transport/virtio/fs_device.hpp>
#include <support/memory_fs.hpp>
#include <support/memory_transport.hpp>
#include <support/message_builder.hpp>
#include <support/recording_fs.hpp>
#include <support/virtio_driver.hpp>

namespace fuse_backend::transport::virtio {
namespace {

using abi::opcode;
using testing::kernel_offer;
using testing::MessageBuilder;
using testing::VirtioDriver;

VirtioDriver::Options queue_options(std::uint64_t features, std::uint16_t start = 0) {
  VirtioDriver::Options options;
  options.queue_size = 128;
  options.features = features;
  options.start_index = start;
  options.region_sizes = {std::uint64_t{4} << 20};
  return options;
}

VringConfig vring(const VirtioDriver& driver) {
  const auto& o = driver.options();
  return {o.queue_size,           driver.descriptor_table_gpa(),
          driver.avail_gpa(),     driver.used_gpa(),
          o.start_index,          (o.features & features::event_idx) != 0,
          (o.features & features::indirect_desc) != 0};
}

// What came back on the used ring for one chain.
struct Completion {
  bool returned = false;
  std::uint32_t len = 0;
  std::vector<std::byte> reply;  // the first `len` writable bytes
};

// A guest with a hiprio queue and `request_queues` request queues on one FsDevice.
template <class Fs>
class Guest {
 public:
  Guest(Fs& fs, std::uint64_t features = features::indirect_desc | features::event_idx,
        std::uint32_t request_queues = 1, std::uint16_t start = 0, std::size_t pool = 0)
      : server_(fs),
        pool_(pool),
        device_(server_, *FsConfig::make("myfs", request_queues),
                FsDeviceOptions{[this](std::string_view line) { log.emplace_back(line); }, pool}) {
    for (std::uint32_t i = 0; i <= request_queues; ++i) {
      drivers_.push_back(std::make_unique<VirtioDriver>(queue_options(features, start)));
      EXPECT_TRUE(device_.start_queue(i, vring(*drivers_.back()), drivers_.back()->memory(), signals));
    }
  }

  VirtioDriver& driver(std::size_t queue) { return *drivers_[queue]; }
  FsDevice<Fs>& device() { return device_; }
  api::Server<Transport, Fs>& server() { return server_; }

  // Posts `request` on `queue`, split into descriptors at `request_cuts`, with `reply_capacity`
  // writable bytes split at `reply_cuts`; runs the queue; returns what came back.
  Completion send(std::size_t queue, const std::vector<std::byte>& request,
                  std::vector<std::size_t> request_cuts = {}, std::size_t reply_capacity = 8192,
                  std::vector<std::size_t> reply_cuts = {}, bool indirect = false) {
    VirtioDriver& d = driver(queue);
    const auto mark = d.mark();
    std::vector<VirtioDriver::Buffer> buffers;
    auto add = [&](std::span<const std::byte> bytes, std::vector<std::size_t> cuts, bool writable) {
      cuts.push_back(bytes.size());
      std::sort(cuts.begin(), cuts.end());
      std::size_t from = 0;
      for (std::size_t cut : cuts) {
        cut = std::min(cut, bytes.size());
        if (cut < from) continue;
        const std::uint64_t gpa = d.alloc(std::max<std::size_t>(cut - from, 1));
        d.write(gpa, bytes.subspan(from, cut - from));
        buffers.push_back({gpa, static_cast<std::uint32_t>(cut - from), writable});
        from = cut;
      }
    };
    add(request, std::move(request_cuts), false);
    if (reply_capacity > 0) add(std::vector<std::byte>(reply_capacity, std::byte{0xee}), std::move(reply_cuts), true);
    d.post(buffers, indirect);
    const std::uint64_t pooled_before = signals.chains(queue);
    const QueueRun run = device_.process_queue(queue, d.memory());
    EXPECT_FALSE(run.failed);
    if (pool_ > 0 && queue != hiprio_queue)
      EXPECT_TRUE(signals.wait_for_chains(queue, pooled_before + 1)) << "served by the pool";
    else
      EXPECT_EQ(run.chains, 1u);
    last_notify = run.notify;
    Completion completion;
    if (auto used = d.next_used()) {
      completion.returned = true;
      completion.len = used->len;
      for (const auto& buffer : buffers) {
        if (!buffer.writable || completion.reply.size() >= used->len) continue;
        auto bytes = d.read(buffer.gpa, std::min<std::size_t>(buffer.len, used->len - completion.reply.size()));
        completion.reply.insert(completion.reply.end(), bytes.begin(), bytes.end());
      }
    }
    EXPECT_FALSE(d.next_used()) << "one chain, one used entry";
    d.release(mark);
    return completion;
  }

  std::vector<std::string> log;
  std::atomic<bool> last_notify{false};
  testing::SignalCounter signals;

 private:
  api::Server<Transport, Fs> server_;
  std::size_t pool_;
  FsDevice<Fs> device_;
  std::vector<std::unique_ptr<VirtioDriver>> drivers_;
};

// The same request through the in-memory transport.
template <class Fs>
Completion send_in_memory(api::Server<testing::MemoryTransport, Fs>& server, const std::vector<std::byte>& request) {
  testing::MemoryReader reader(request);
  testing::MemoryWriter writer;
  (void)server.handle(reader, writer);
  Completion completion;
  completion.returned = true;
  completion.len = static_cast<std::uint32_t>(writer.reply().size());
  completion.reply.assign(writer.reply().begin(), writer.reply().end());
  return completion;
}

testing::ParsedReply parse(const Completion& completion) { return testing::ParsedReply::parse(completion.reply); }

// --- every opcode, compared with the memory transport ----------------------------------------

struct Step {
  std::vector<std::byte> request;
  std::size_t queue = 1;
  bool fail = false;  // RecordingFs fails the op with EACCES
};

std::vector<Step> every_opcode() {
  std::vector<Step> steps;
  auto add = [&](MessageBuilder builder, std::size_t queue = 1) { steps.push_back({builder.build(), queue, false}); };
  std::uint64_t unique = 100;
  auto msg = [&](opcode op, std::uint64_t nodeid) { return MessageBuilder(op, nodeid, ++unique); };

  add(msg(opcode::lookup, 1).caller(1, 2, 3).name("hello"));
  add(msg(opcode::getattr, 42).add(abi::getattr_in{abi::getattr_flags::fh, 0, 8}));
  abi::setattr_in setattr{};
  setattr.valid = abi::fattr::mode | abi::fattr::size | abi::fattr::mtime;
  setattr.mode = 0600;
  setattr.size = 12345;
  setattr.mtime = 99;
  add(msg(opcode::setattr, 42).add(setattr));
  add(msg(opcode::readlink, 4));
  add(msg(opcode::symlink, 2).name("link").name("/some/target"));
  add(msg(opcode::mknod, 2).add(abi::mknod_in{S_IFIFO | 0644, 77, 022, 0}).name("fifo"));
  add(msg(opcode::mkdir, 2).add(abi::mkdir_in{0755, 077}).name("dir"));
  add(msg(opcode::create, 2).add(abi::create_in{O_RDWR | O_CREAT, 0640, 002, 0}).name("file"));
  add(msg(opcode::tmpfile, 2).add(abi::create_in{O_RDWR, 0600, 022, 0}));
  add(msg(opcode::unlink, 2).name("f"));
  add(msg(opcode::rmdir, 2).name("d"));
  add(msg(opcode::rename, 2).add(abi::rename_in{3}).name("old").name("new"));
  add(msg(opcode::rename2, 2).add(abi::rename2_in{4, 2, 0}).name("a").name("b"));
  add(msg(opcode::link, 6).add(abi::link_in{9}).name("hard"));
  add(msg(opcode::open, 42).add(abi::open_in{O_RDONLY, 0}));
  abi::read_in read{};
  read.fh = 99;
  read.offset = 4;
  read.size = 6;
  add(msg(opcode::read, 42).add(read));
  abi::write_in write{};
  write.fh = 99;
  write.offset = 1000;
  const std::string data(3000, 'w');
  write.size = static_cast<std::uint32_t>(data.size());
  add(msg(opcode::write, 42).add(write).bytes(std::as_bytes(std::span(data.data(), data.size()))));
  add(msg(opcode::flush, 42).add(abi::flush_in{99, 0, 0, 1234}));
  add(msg(opcode::fsync, 42).add(abi::fsync_in{99, abi::fsync_flags::fdatasync, 0}));
  add(msg(opcode::release, 42).add(abi::release_in{99, O_RDONLY, abi::release_flags::flush, 5}));
  add(msg(opcode::statfs, 1));
  const std::string value = "some\0value";
  add(msg(opcode::setxattr, 3)
          .add(abi::setxattr_in{static_cast<std::uint32_t>(value.size()), XATTR_CREATE, 0, 0})
          .name("user.k")
          .bytes(std::as_bytes(std::span(value.data(), value.size()))));
  // The largest non-data request: a 64 KiB xattr value (through the bounce buffer).
  add(msg(opcode::setxattr, 3).add(abi::setxattr_in{65536, 0, 0, 0}).name("user.big").bytes(65536, std::byte{'v'}));
  add(msg(opcode::getxattr, 3).add(abi::getxattr_in{0, 0}).name("user.k"));
  add(msg(opcode::getxattr, 3).add(abi::getxattr_in{100, 0}).name("user.k"));
  add(msg(opcode::getxattr, 3).add(abi::getxattr_in{3, 0}).name("user.k"));
  add(msg(opcode::listxattr, 3).add(abi::getxattr_in{0, 0}));
  add(msg(opcode::listxattr, 3).add(abi::getxattr_in{64, 0}));
  add(msg(opcode::removexattr, 3).name("user.k"));
  abi::lk_in lk{};
  lk.fh = 7;
  lk.owner = 0xabc;
  lk.lk = abi::file_lock{10, 20, F_WRLCK, 321};
  add(msg(opcode::getlk, 5).add(lk));
  add(msg(opcode::setlk, 5).add(lk));
  add(msg(opcode::setlkw, 5).add(lk));
  add(msg(opcode::access, 5).add(abi::access_in{R_OK | W_OK, 0}));
  add(msg(opcode::bmap, 5).add(abi::bmap_in{21, 512, 0}));
  add(msg(opcode::poll, 5).add(abi::poll_in{7, 8, 0, 5}));
  add(msg(opcode::lseek, 5).add(abi::lseek_in{7, 1000, SEEK_DATA, 0}));
  add(msg(opcode::fallocate, 5).add(abi::fallocate_in{7, 4096, 8192, 1, 0}));
  add(msg(opcode::copy_file_range, 9).add(abi::copy_file_range_in{1, 2, 3, 4, 5, (1ull << 33) + 7, 0}));
  add(msg(opcode::copy_file_range_64, 9).add(abi::copy_file_range_in{1, 2, 3, 4, 5, 6, 0}));
  add(msg(opcode::opendir, 1).add(abi::open_in{O_RDONLY, 0}));
  abi::read_in dir{};
  dir.fh = 77;
  dir.size = 4096;
  add(msg(opcode::readdir, 1).add(dir));
  add(msg(opcode::readdirplus, 1).add(dir));
  dir.size = static_cast<std::uint32_t>(abi::dirent_size(1) + abi::dirent_size(2) - 1);
  add(msg(opcode::readdir, 1).add(dir));
  add(msg(opcode::fsyncdir, 1).add(abi::fsync_in{77, 0, 0}));
  add(msg(opcode::releasedir, 1).add(abi::release_in{77, 0, 0, 0}));
  abi::ioctl_in ioctl{};
  ioctl.fh = 7;
  ioctl.cmd = 0x1234;
  ioctl.in_size = 3;
  ioctl.out_size = 4;
  add(msg(opcode::ioctl, 5).add(ioctl).bytes(std::as_bytes(std::span("abc", 3))));
  abi::statx_in statx{};
  statx.sx_mask = 0x7ff;
  add(msg(opcode::statx, 42).add(statx));
  add(msg(opcode::syncfs, 1).add(abi::syncfs_in{0}));
  add(msg(opcode::setupmapping, 5).add(abi::setupmapping_in{1, 0, 4096, abi::setupmapping_flags::read, 0}));
  add(msg(opcode::removemapping, 5).add(abi::removemapping_in{1}).add(abi::removemapping_one{0, 4096}));
  add(msg(opcode::cuse_init, 1).add(abi::cuse_init_in{7, 45, 0, 0}));
  add(msg(static_cast<opcode>(9999), 1).bytes(100, std::byte{1}));
  const std::array<std::uint32_t, 2> groups{50, 60};
  add(msg(opcode::mkdir, 1).add(abi::mkdir_in{0755, 0}).name("d").groups(groups));
  abi::notify_retrieve_in retrieve{};
  retrieve.offset = 4096;
  retrieve.size = 5;
  add(msg(opcode::notify_reply, 8).add(retrieve).name("abcd"));
  // The hiprio queue's traffic.
  add(msg(opcode::forget, 9).add(abi::forget_in{3}), hiprio_queue);
  MessageBuilder batch = msg(opcode::batch_forget, 0);
  batch.add(abi::batch_forget_in{3, 0});
  for (std::uint64_t i = 0; i < 3; ++i) batch.add(abi::forget_one{10 + i, i + 1});
  steps.push_back({batch.build(), hiprio_queue, false});
  add(msg(opcode::interrupt, 0).add(abi::interrupt_in{12345}), hiprio_queue);
  // Errors from the filesystem.
  steps.push_back({msg(opcode::lookup, 1).name("x").build(), 1, true});
  steps.push_back({msg(opcode::read, 42).add(read).build(), 1, true});
  // Malformed: len larger than the request; unterminated name.
  steps.push_back({msg(opcode::lookup, 1).name("y").build(200), 1, false});
  steps.push_back({msg(opcode::lookup, 1).bytes(5, std::byte{'z'}).build(), 1, false});
  add(msg(opcode::destroy, 1));
  return steps;
}

void expect_same_call(const testing::RecordedCall& a, const testing::RecordedCall& b) {
  EXPECT_EQ(a.op, b.op);
  EXPECT_EQ(a.inode, b.inode);
  EXPECT_EQ(a.handle, b.handle);
  EXPECT_EQ(a.numbers, b.numbers);
  EXPECT_EQ(a.names, b.names);
  EXPECT_EQ(a.uid, b.uid);
  EXPECT_EQ(a.gid, b.gid);
  EXPECT_EQ(a.pid, b.pid);
  EXPECT_EQ(a.umask, b.umask);
  EXPECT_EQ(a.unique, b.unique);
  EXPECT_EQ(a.groups, b.groups);
}

// Runs every opcode through both transports; `split` picks the descriptor layout of step i.
void compare_every_opcode(std::uint64_t features, std::uint16_t start,
                          const std::function<void(std::size_t, const std::vector<std::byte>&, std::vector<std::size_t>&,
                                                   std::vector<std::size_t>&, bool&)>& split) {
  testing::RecordingFs memory_fs;
  api::Server<testing::MemoryTransport, testing::RecordingFs> memory_server(memory_fs);
  testing::RecordingFs virtio_fs;
  Guest<testing::RecordingFs> guest(virtio_fs, features, 1, start);

  const auto init = testing::init_request(7, 45, kernel_offer);
  EXPECT_EQ(send_in_memory(memory_server, init).reply, guest.send(1, init).reply);

  const auto steps = every_opcode();
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const Step& step = steps[i];
    SCOPED_TRACE(::testing::Message() << "step " << i);
    abi::in_header header;
    std::memcpy(&header, step.request.data(), sizeof(header));
    SCOPED_TRACE(abi::find_opcode(header.opcode) ? abi::find_opcode(header.opcode)->name : "unknown opcode");
    memory_fs.fail_with = virtio_fs.fail_with =
        step.fail ? std::optional(std::errc::permission_denied) : std::nullopt;
    const std::size_t memory_calls = memory_fs.calls.size();
    const std::size_t virtio_calls = virtio_fs.calls.size();
    const Completion expected = send_in_memory(memory_server, step.request);
    std::vector<std::size_t> request_cuts;
    std::vector<std::size_t> reply_cuts;
    bool indirect = false;
    split(i, step.request, request_cuts, reply_cuts, indirect);
    const Completion got = guest.send(step.queue, step.request, request_cuts, 70000, reply_cuts, indirect);
    ASSERT_TRUE(got.returned) << "every chain comes back, replied or not";
    EXPECT_EQ(got.len, expected.len);
    EXPECT_EQ(got.reply, expected.reply);
    ASSERT_EQ(virtio_fs.calls.size() - virtio_calls, memory_fs.calls.size() - memory_calls);
    if (memory_fs.calls.size() > memory_calls) expect_same_call(virtio_fs.last(), memory_fs.last());
  }
  EXPECT_EQ(virtio_fs.destroyed, 1);
  EXPECT_EQ(guest.device().stats(1).malformed, 0u) << "malformed FUSE requests are answered, not dropped";
  EXPECT_EQ(guest.device().stats(0).chains, 3u);
}

TEST(FsDeviceEveryOpcode, OneDescriptorEach) {
  compare_every_opcode(0, 0, [](std::size_t, const auto&, auto&, auto&, bool&) {});
}

TEST(FsDeviceEveryOpcode, SplitInsideHeadersAndPayloads) {
  compare_every_opcode(features::event_idx, 65530, [](std::size_t i, const std::vector<std::byte>& request,
                                                      std::vector<std::size_t>& request_cuts,
                                                      std::vector<std::size_t>& reply_cuts, bool&) {
    // Cut inside the in_header, somewhere in the body, and inside the out_header and payload.
    request_cuts = {1 + i % 39, 40 + (i * 7) % std::max<std::size_t>(request.size() - 40, 1)};
    reply_cuts = {i % 16, 16 + (i * 13) % 64, 4096 + i};
  });
}

TEST(FsDeviceEveryOpcode, IndirectTablesWithOneByteDescriptorsUpFront) {
  compare_every_opcode(features::indirect_desc | features::event_idx, 0,
                       [](std::size_t i, const std::vector<std::byte>&, std::vector<std::size_t>& request_cuts,
                          std::vector<std::size_t>& reply_cuts, bool& indirect) {
                         indirect = true;
                         for (std::size_t k = 1; k <= 48; ++k) request_cuts.push_back(k);
                         for (std::size_t k = 1; k <= 20; ++k) reply_cuts.push_back(k * (1 + i % 3));
                       });
}

// --- a stateful session on MemoryFs ----------------------------------------------------------

TEST(FsDeviceMemoryFs, CreateWriteReadBackRenameUnlink) {
  testing::MemoryFs fs;
  Guest<testing::MemoryFs> guest(fs);
  ASSERT_EQ(parse(guest.send(1, testing::init_request(7, 45, kernel_offer))).error(), 0);

  auto created = parse(guest.send(1, MessageBuilder(opcode::create, 1, 2).add(abi::create_in{O_RDWR, 0644, 022, 0})
                                         .name("file").build()));
  ASSERT_EQ(created.error(), 0);
  const auto entry = created.as<abi::entry_out>();
  const auto open = created.as<abi::open_out>(sizeof(abi::entry_out));

  // 200 KiB written in page-sized descriptors after a header split in two.
  std::vector<std::byte> data(200 * 1024);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i * 7 + i / 4096);
  abi::write_in write{};
  write.fh = open.fh;
  write.size = static_cast<std::uint32_t>(data.size());
  const auto request = MessageBuilder(opcode::write, entry.nodeid, 3).add(write).bytes(data).build();
  std::vector<std::size_t> cuts{20, 80};
  for (std::size_t at = 80 + 4096; at < request.size(); at += 4096) cuts.push_back(at);
  auto written = parse(guest.send(1, request, cuts, 64));
  ASSERT_EQ(written.error(), 0);
  EXPECT_EQ(written.as<abi::write_out>().size, data.size());

  abi::read_in read{};
  read.fh = open.fh;
  read.size = 128 * 1024;
  read.offset = 50000;
  std::vector<std::size_t> reply_cuts{16};
  for (std::size_t at = 16 + 4096; at < 16 + read.size; at += 4096) reply_cuts.push_back(at);
  const Completion back = guest.send(1, MessageBuilder(opcode::read, entry.nodeid, 4).add(read).build(), {},
                                     16 + read.size, reply_cuts);
  const auto reply = parse(back);
  ASSERT_EQ(reply.error(), 0);
  EXPECT_EQ(back.len, 16 + read.size);
  EXPECT_TRUE(std::equal(reply.payload.begin(), reply.payload.end(), data.begin() + 50000));

  ASSERT_EQ(parse(guest.send(1, MessageBuilder(opcode::mkdir, 1, 5).add(abi::mkdir_in{0755, 0}).name("dir").build())).error(), 0);
  ASSERT_EQ(parse(guest.send(1, MessageBuilder(opcode::rename, 1, 6).add(abi::rename_in{1}).name("file").name("moved").build())).error(), 0);
  EXPECT_EQ(parse(guest.send(1, MessageBuilder(opcode::lookup, 1, 7).name("file").build())).error(), ENOENT);
  auto moved = parse(guest.send(1, MessageBuilder(opcode::lookup, 1, 8).name("moved").build()));
  ASSERT_EQ(moved.error(), 0);
  EXPECT_EQ(moved.as<abi::entry_out>().attr.size, data.size());
  ASSERT_EQ(parse(guest.send(1, MessageBuilder(opcode::release, entry.nodeid, 9).add(abi::release_in{open.fh, O_RDWR, 0, 0}).build())).error(), 0);
  ASSERT_EQ(parse(guest.send(1, MessageBuilder(opcode::unlink, 1, 10).name("moved").build())).error(), 0);
  // FORGET on hiprio: no reply, chain back with 0 bytes, the inode goes away.
  const std::size_t before = fs.inode_count();
  const Completion forget = guest.send(hiprio_queue, MessageBuilder(opcode::forget, entry.nodeid, 11).add(abi::forget_in{2}).build(), {}, 0);
  EXPECT_TRUE(forget.returned);
  EXPECT_EQ(forget.len, 0u);
  EXPECT_EQ(fs.inode_count(), before - 1);
}

// --- chains that cannot be served ------------------------------------------------------------

class FsDeviceTest : public ::testing::Test {
 protected:
  testing::RecordingFs fs_;
  Guest<testing::RecordingFs> guest_{fs_};

  void SetUp() override { ASSERT_EQ(parse(guest_.send(1, testing::init_request(7, 45, kernel_offer))).error(), 0); }
};

TEST_F(FsDeviceTest, ForgetWithoutWritableBuffersIsReturned) {
  const Completion completion = guest_.send(hiprio_queue, MessageBuilder(opcode::forget, 9).add(abi::forget_in{3}).build(), {}, 0);
  EXPECT_TRUE(completion.returned);
  EXPECT_EQ(completion.len, 0u);
  EXPECT_EQ(fs_.last().op, "forget");
  EXPECT_TRUE(guest_.log.empty()) << "a FORGET is not an error";
}

TEST_F(FsDeviceTest, WriteOnlyChainIsReturnedEmptyAndCounted) {
  VirtioDriver& d = guest_.driver(1);
  const VirtioDriver::Buffer buffer{d.alloc(64), 64, true};
  d.post(std::span(&buffer, 1));
  const QueueRun run = guest_.device().process_queue(1, d.memory());
  EXPECT_EQ(run.chains, 1u);
  EXPECT_FALSE(run.failed);
  EXPECT_EQ(d.next_used()->len, 0u);
  EXPECT_EQ(guest_.device().stats(1).malformed, 1u);
  ASSERT_EQ(guest_.log.size(), 1u);
  EXPECT_NE(guest_.log[0].find("header"), std::string::npos) << guest_.log[0];
}

// A pass ends after a ring's worth of chains, so that a driver refilling the ring as fast as it
// is served (malformed chains cost the device least) cannot keep its caller from returning; the
// next pass serves on.
TEST_F(FsDeviceTest, PassEndsAfterARingsWorthOfChains) {
  VirtioDriver& d = guest_.driver(1);
  const std::uint16_t ring = d.options().queue_size;
  const VirtioDriver::Buffer write_only{d.alloc(64), 64, true};
  const std::uint16_t head = d.post(std::span(&write_only, 1));
  for (std::uint16_t i = 1; i < ring; ++i) d.publish(head);  // the same chain, a ring's worth
  QueueRun run = guest_.device().process_queue(1, d.memory());
  EXPECT_EQ(run.chains, ring);
  EXPECT_TRUE(run.more);
  EXPECT_FALSE(run.failed);
  d.publish(head);
  run = guest_.device().process_queue(1, d.memory());
  EXPECT_EQ(run.chains, 1u);
  EXPECT_FALSE(run.more);
  EXPECT_EQ(guest_.device().stats(1).malformed, ring + 1u);
}

TEST_F(FsDeviceTest, ShortHeaderIsReturnedEmpty) {
  const auto request = MessageBuilder(opcode::getattr, 1).build();
  const Completion completion = guest_.send(1, std::vector(request.begin(), request.begin() + 39));
  EXPECT_TRUE(completion.returned);
  EXPECT_EQ(completion.len, 0u);
  EXPECT_EQ(guest_.device().stats(1).malformed, 1u);
}

TEST_F(FsDeviceTest, ReplyAreaTooSmallIsReturnedEmpty) {
  const Completion small = guest_.send(1, MessageBuilder(opcode::statfs, 1).build(), {}, 15);
  EXPECT_TRUE(small.returned);
  EXPECT_EQ(small.len, 0u);
  EXPECT_EQ(guest_.device().stats(1).send_errors, 1u);
  // Room for the header but not the statfs payload: an error reply fits.
  const Completion header_only = guest_.send(1, MessageBuilder(opcode::statfs, 1).build(), {}, 16);
  EXPECT_EQ(header_only.len, 16u);
  EXPECT_EQ(parse(header_only).error(), ENOBUFS);
}

TEST_F(FsDeviceTest, HostileChainsAreReturnedAndTheQueueGoesOn) {
  VirtioDriver& d = guest_.driver(1);
  // A loop, a readable-after-writable chain, then a good request.
  d.write_descriptor(10, {d.alloc(64), 64, descriptor_flags::next, 11});
  d.write_descriptor(11, {d.alloc(64), 64, descriptor_flags::next, 10});
  d.publish(10);
  d.write_descriptor(20, {d.alloc(64), 64, descriptor_flags::write | descriptor_flags::next, 21});
  d.write_descriptor(21, {d.alloc(64), 64, 0, 0});
  d.publish(20);
  const QueueRun run = guest_.device().process_queue(1, d.memory());
  EXPECT_EQ(run.chains, 2u);
  EXPECT_FALSE(run.failed);
  for (const std::uint32_t head : {10u, 20u}) {
    const auto used = d.next_used();
    ASSERT_TRUE(used);
    EXPECT_EQ(used->id, head);
    EXPECT_EQ(used->len, 0u);
  }
  EXPECT_EQ(parse(guest_.send(1, MessageBuilder(opcode::statfs, 1).build())).error(), 0);
  EXPECT_EQ(guest_.device().stats(1).malformed, 2u);
  ASSERT_EQ(guest_.log.size(), 2u);
  EXPECT_NE(guest_.log[0].find("loop"), std::string::npos) << guest_.log[0];
  EXPECT_NE(guest_.log[1].find("readable"), std::string::npos) << guest_.log[1];
}

TEST_F(FsDeviceTest, BrokenRingsFailTheRun) {
  VirtioDriver& d = guest_.driver(1);
  d.publish(500);  // head beyond the 128-entry table: nothing can be returned
  QueueRun run = guest_.device().process_queue(1, d.memory());
  EXPECT_TRUE(run.failed);
  EXPECT_EQ(run.chains, 0u);

  VirtioDriver& h = guest_.driver(0);
  h.set_avail_idx(static_cast<std::uint16_t>(h.avail_idx() + 200));
  run = guest_.device().process_queue(0, h.memory());
  EXPECT_TRUE(run.failed);
  EXPECT_FALSE(guest_.device().process_queue(7, h.memory()).chains) << "no such queue";
}

TEST_F(FsDeviceTest, NotifiesPerEventIdx) {
  VirtioDriver& d = guest_.driver(1);
  d.set_used_event(static_cast<std::uint16_t>(d.used_idx() + 2));
  guest_.send(1, MessageBuilder(opcode::statfs, 1).build());
  EXPECT_FALSE(guest_.last_notify);
  guest_.send(1, MessageBuilder(opcode::statfs, 1).build());
  EXPECT_FALSE(guest_.last_notify);
  guest_.send(1, MessageBuilder(opcode::statfs, 1).build());
  EXPECT_TRUE(guest_.last_notify);
  EXPECT_FALSE(guest_.device().process_queue(1, d.memory()).notify) << "nothing new";
}

TEST_F(FsDeviceTest, StopReportsTheBaseAndRestartResumes) {
  guest_.send(1, MessageBuilder(opcode::statfs, 1).build());
  VirtioDriver& d = guest_.driver(1);
  const std::uint16_t base = guest_.device().stop_queue(1);
  EXPECT_EQ(base, d.avail_idx());
  EXPECT_EQ(guest_.device().process_queue(1, d.memory()).chains, 0u) << "stopped";
  VringConfig config = vring(d);
  config.next_available = base;
  ASSERT_TRUE(guest_.device().start_queue(1, config, d.memory(), guest_.signals));
  EXPECT_EQ(parse(guest_.send(1, MessageBuilder(opcode::statfs, 1).build())).error(), 0);
  config.size = 100;
  EXPECT_FALSE(guest_.device().start_queue(1, config, d.memory(), guest_.signals));
  EXPECT_FALSE(guest_.device().start_queue(9, vring(d), d.memory(), guest_.signals));
}

TEST(FsConfig, WireLayoutAndChecks) {
  auto config = FsConfig::make("shared-dir", 3);
  ASSERT_TRUE(config);
  const auto bytes = config->bytes();
  EXPECT_EQ(bytes.size(), 40u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(bytes.data())), "shared-dir");
  EXPECT_EQ(bytes[36], std::byte{3});
  EXPECT_EQ(bytes[39], std::byte{0});
  EXPECT_TRUE(FsConfig::make(std::string(36, 't'), 1)) << "36 bytes need no NUL";
  EXPECT_FALSE(FsConfig::make(std::string(37, 't'), 1));
  EXPECT_FALSE(FsConfig::make("", 1));
  EXPECT_FALSE(FsConfig::make(std::string_view("a\0b", 3), 1));
  EXPECT_FALSE(FsConfig::make("tag", 0));
}

TEST(FsDevice, QueuesAndFeatures) {
  testing::RecordingFs fs;
  api::Server<Transport, testing::RecordingFs> server(fs);
  FsDevice<testing::RecordingFs> device(server, *FsConfig::make("t", 4));
  EXPECT_EQ(device.queue_count(), 5u);
  EXPECT_EQ(device.config().num_request_queues, 4u);
  EXPECT_EQ(device.device_features(), features::version_1 | features::indirect_desc | features::event_idx);
}

// Makes `count` directories through each of request queues 1 and 2 at the same time, one thread
// per queue; every reply must answer its own request.
template <class G>
void mkdirs_on_two_queues(G& guest, int count) {
  auto worker = [&](std::size_t queue) {
    for (int i = 0; i < count; ++i) {
      const std::string name = "q" + std::to_string(queue) + "-" + std::to_string(i);
      const std::uint64_t unique = queue * 1000 + static_cast<std::uint64_t>(i) + 10;
      auto made = parse(guest.send(queue, MessageBuilder(opcode::mkdir, 1, unique).add(abi::mkdir_in{0755, 0}).name(name).build(),
                                   {7, 45}, 256, {3, 20}));
      EXPECT_EQ(made.error(), 0);
      EXPECT_EQ(made.header.unique, unique);
    }
  };
  std::thread second(worker, 2);
  worker(1);
  second.join();
}

// Two request queues served from two threads, as the vhost-user back-end runs them.
TEST(FsDeviceThreads, RequestQueuesRunConcurrently) {
  testing::MemoryFs fs;
  Guest<testing::MemoryFs> guest(fs, features::event_idx | features::indirect_desc, 2);
  ASSERT_EQ(parse(guest.send(1, testing::init_request(7, 45, kernel_offer))).error(), 0);
  mkdirs_on_two_queues(guest, 200);
  EXPECT_EQ(guest.device().stats(1).chains, 201u);
  EXPECT_EQ(guest.device().stats(2).chains, 200u);
  EXPECT_EQ(parse(guest.send(1, MessageBuilder(opcode::lookup, 1, 5).name("q2-199").build())).error(), 0);
}

// --- thread pool -------------------------------------------------------------------------------

// A filesystem whose GETATTR of an inode blocks until the test lets it through.
class GateFs {
 public:
  Result<api::Entry> lookup(const api::Context&, api::InodeId, std::string_view) {
    return fail(std::errc::no_such_file_or_directory);
  }
  Result<api::AttrReply> getattr(const api::Context&, api::InodeId inode, std::optional<api::HandleId>) {
    std::unique_lock lock(mutex_);
    ++inside_;
    changed_.notify_all();
    changed_.wait(lock, [&] { return std::find(open_.begin(), open_.end(), inode) != open_.end(); });
    --inside_;
    api::AttrReply reply;
    reply.attr.st_ino = static_cast<ino_t>(inode);
    return reply;
  }
  // Waits (up to 10 s) until `count` GETATTRs are blocked at once.
  bool wait_inside(int count) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(10), [&] { return inside_ >= count; });
  }
  void let_through(std::uint64_t inode) {
    std::lock_guard guard(mutex_);
    open_.push_back(api::InodeId{inode});
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int inside_ = 0;
  std::vector<api::InodeId> open_;
};

// Posts GETATTR(inode) with room for the reply; returns the chain's head.
std::uint16_t post_getattr(VirtioDriver& d, std::uint64_t inode, std::uint64_t unique) {
  const auto request = MessageBuilder(opcode::getattr, inode, unique).add(abi::getattr_in{}).build();
  const VirtioDriver::Buffer buffers[] = {
      {d.place(request), static_cast<std::uint32_t>(request.size()), false},
      {d.alloc(512), 512, true}};
  return d.post(buffers);
}

TEST(FsDevicePool, RequestsOfOneQueueRunConcurrentlyAndCompleteOutOfOrder) {
  GateFs fs;
  Guest<GateFs> guest(fs, features::event_idx | features::indirect_desc, 1, 0, 2);
  fs.let_through(1);
  ASSERT_EQ(parse(guest.send(1, testing::init_request(7, 45, kernel_offer))).error(), 0);
  EXPECT_EQ(parse(guest.send(1, MessageBuilder(opcode::getattr, 1, 3).add(abi::getattr_in{}).build())).error(), 0);
  const std::uint64_t served = guest.signals.chains(1);
  ASSERT_EQ(served, 2u);

  VirtioDriver& d = guest.driver(1);
  const std::uint16_t first = post_getattr(d, 10, 100);
  const std::uint16_t second = post_getattr(d, 11, 101);
  const QueueRun run = guest.device().process_queue(1, d.memory());
  EXPECT_FALSE(run.failed);
  EXPECT_EQ(run.chains, 0u) << "both handed to the pool";
  ASSERT_TRUE(fs.wait_inside(2)) << "two requests of one queue in flight at once";
  EXPECT_FALSE(d.next_used());

  fs.let_through(11);  // the second finishes first
  ASSERT_TRUE(guest.signals.wait_for_chains(1, served + 1));
  auto used = d.next_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, second);
  EXPECT_EQ(used->len, sizeof(abi::out_header) + sizeof(abi::attr_out));
  EXPECT_FALSE(d.next_used()) << "the first is still in flight";

  // GET_VRING_BASE must not return while the first chain is being served.
  std::atomic<bool> stopped{false};
  std::uint16_t base = 0;
  std::thread stopper([&] {
    base = guest.device().stop_queue(1);
    stopped = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(stopped) << "stop_queue returned with a chain in flight";
  fs.let_through(10);
  stopper.join();
  EXPECT_EQ(base, d.avail_idx());
  used = d.next_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, first);
  EXPECT_EQ(used->len, sizeof(abi::out_header) + sizeof(abi::attr_out));
  EXPECT_EQ(guest.signals.chains(1), served + 2);
  EXPECT_GE(guest.signals.notifications(1), 1u);
  EXPECT_EQ(guest.device().stats(1).chains, served + 2);

  // Restarted at the base, the pool serves on.
  VringConfig config = vring(d);
  config.next_available = base;
  ASSERT_TRUE(guest.device().start_queue(1, config, d.memory(), guest.signals));
  EXPECT_EQ(parse(guest.send(1, MessageBuilder(opcode::getattr, 1, 4).add(abi::getattr_in{}).build())).error(), 0);
}

// Chains handed to the pool keep the memory snapshot they were popped under: a newer one may
// replace it at the queue's next pass (SET_LOG_BASE switches one in without stopping the rings)
// while they still wait for a pool thread, which then walks and answers them in the old one.
TEST(FsDevicePool, ChainsKeepTheSnapshotTheyWerePoppedUnder) {
  GateFs fs;
  Guest<GateFs> guest(fs, features::event_idx | features::indirect_desc, 1, 0, 1);
  ASSERT_EQ(parse(guest.send(1, testing::init_request(7, 45, kernel_offer))).error(), 0);
  const std::uint64_t served = guest.signals.chains(1);
  VirtioDriver& d = guest.driver(1);
  post_getattr(d, 10, 100);
  post_getattr(d, 11, 101);  // waits behind the first: one pool thread
  auto popped_under = std::make_shared<const GuestMemory>(*d.memory());
  const std::weak_ptr<const GuestMemory> watched = popped_under;
  EXPECT_EQ(guest.device().process_queue(1, std::move(popped_under)).chains, 0u);
  ASSERT_TRUE(fs.wait_inside(1));
  EXPECT_FALSE(guest.device().process_queue(1, d.memory()).failed);  // a newer snapshot
  EXPECT_FALSE(watched.expired()) << "the chains in the pool do not hold their snapshot";
  fs.let_through(10);
  fs.let_through(11);
  ASSERT_TRUE(guest.signals.wait_for_chains(1, served + 2));
  for (int i = 0; i < 2; ++i) {
    const auto used = d.next_used();
    ASSERT_TRUE(used);
    EXPECT_EQ(used->len, sizeof(abi::out_header) + sizeof(abi::attr_out));
  }
}

// Many requests through a pool of 4 on two queues: every reply matches its request.
TEST(FsDevicePool, ManyRequestsOnTwoQueues) {
  testing::MemoryFs fs;
  Guest<testing::MemoryFs> guest(fs, features::event_idx | features::indirect_desc, 2, 0, 4);
  ASSERT_EQ(parse(guest.send(1, testing::init_request(7, 45, kernel_offer))).error(), 0);
  mkdirs_on_two_queues(guest, 100);
  EXPECT_EQ(guest.device().stats(1).chains, 101u);
  EXPECT_EQ(guest.device().stats(2).chains, 100u);
  for (std::size_t q = 1; q <= 2; ++q) EXPECT_EQ(guest.device().stop_queue(q), guest.driver(q).avail_idx());
}

}  // namespace
}  // namespace fuse_backend::transport::virtio
