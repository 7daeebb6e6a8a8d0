// Unit tests of the /dev/fuse channel pieces that need no mount: Reader/Writer semantics, the
// one-writev reply format (observed through a pipe), zero-copy moves through real fds, receive()
// error paths, notifications, backing-file and clone ioctls refused on an unmounted device, and
// the Poller's stop event.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/detail/unique_fd.hpp>
#include <fuse_backend/transport/fusedev/channel.hpp>
#include <fuse_backend/transport/fusedev/service.hpp>
#include <support/temp_dir.hpp>

namespace {

using fuse_backend::detail::UniqueFd;
namespace abi = fuse_backend::abi;
namespace fusedev = fuse_backend::transport::fusedev;

std::span<const std::byte> bytes_of(std::string_view text) { return std::as_bytes(std::span(text)); }

std::string as_string(std::span<const std::byte> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

struct Pipe {
  UniqueFd read_end;
  UniqueFd write_end;
  Pipe() {
    std::array<int, 2> fds{};
    EXPECT_EQ(::pipe2(fds.data(), O_CLOEXEC | O_NONBLOCK), 0);
    read_end.reset(fds[0]);
    write_end.reset(fds[1]);
  }
  std::string drain() const {
    std::string out(65536, '\0');
    const ssize_t n = ::read(read_end.get(), out.data(), out.size());
    out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return out;
  }
};

UniqueFd temp_file(const fuse_backend::testing::TempDir& dir, std::string_view contents) {
  UniqueFd fd(::open((dir / "data").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  EXPECT_TRUE(fd.valid());
  EXPECT_EQ(::pwrite(fd.get(), contents.data(), contents.size(), 0), static_cast<ssize_t>(contents.size()));
  return fd;
}

TEST(FusedevReader, ReadsFrontToBackWithinLimit) {
  const std::string_view request = "0123456789";
  fusedev::Reader reader(bytes_of(request), nullptr);
  EXPECT_EQ(reader.remaining(), 10u);
  EXPECT_EQ(as_string(reader.read_bytes(3)), "012");
  EXPECT_TRUE(reader.skip(2));
  reader.limit(4);
  EXPECT_EQ(reader.remaining(), 4u);
  EXPECT_TRUE(reader.read_bytes(5).empty()) << "more than remains: nothing";
  EXPECT_EQ(reader.remaining(), 4u) << "a refused read consumes nothing";
  EXPECT_FALSE(reader.skip(5));
  std::array<std::byte, 8> out{};
  EXPECT_EQ(reader.read(out), 4u);
  EXPECT_EQ(as_string(std::span(out).first(4)), "5678");
  EXPECT_EQ(reader.remaining(), 0u);
  EXPECT_EQ(reader.backing_files(), nullptr);
}

TEST(FusedevReader, ReadToWritesRequestDataIntoAnFd) {
  fuse_backend::testing::TempDir dir("fusedev_reader");
  UniqueFd fd = temp_file(dir, "..........");
  fusedev::Reader reader(bytes_of("abcdef"), nullptr);
  auto written = reader.read_to(fd.get(), 4, 3);
  ASSERT_TRUE(written);
  EXPECT_EQ(*written, 4u);
  EXPECT_EQ(reader.remaining(), 2u);
  written = reader.read_to(fd.get(), 100, 8);  // only what remains
  ASSERT_TRUE(written);
  EXPECT_EQ(*written, 2u);
  std::array<char, 11> back{};
  ASSERT_EQ(::pread(fd.get(), back.data(), 10, 0), 10);
  EXPECT_STREQ(back.data(), "...abcd.ef");
  EXPECT_EQ(*reader.read_to(fd.get(), 4, 0), 0u) << "nothing left";
}

TEST(FusedevReader, ReadToReportsTheFdsError) {
  fusedev::Reader reader(bytes_of("abc"), nullptr);
  auto written = reader.read_to(-1, 3, 0);
  ASSERT_FALSE(written);
  EXPECT_EQ(written.error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(reader.remaining(), 3u) << "a failed write consumes nothing";
}

TEST(FusedevWriter, CommitSendsHeaderAndPayloadAsOneMessage) {
  Pipe pipe;
  std::vector<std::byte> buffer(64);
  fusedev::Writer writer(pipe.write_end.get(), buffer);
  EXPECT_TRUE(writer.append(bytes_of("hello ")));
  EXPECT_EQ(writer.write(bytes_of("world")), 5u);
  EXPECT_EQ(writer.written(), 11u);
  const abi::out_header header{static_cast<std::uint32_t>(sizeof(abi::out_header) + 11), 0, 42};
  ASSERT_TRUE(writer.commit(header));
  const std::string sent = pipe.drain();
  ASSERT_EQ(sent.size(), sizeof(abi::out_header) + 11);
  abi::out_header got{};
  std::memcpy(&got, sent.data(), sizeof(got));
  EXPECT_EQ(got.len, sent.size());
  EXPECT_EQ(got.unique, 42u);
  EXPECT_EQ(sent.substr(sizeof(got)), "hello world");
}

TEST(FusedevWriter, ErrorReplyAfterDiscardIsHeaderOnly) {
  Pipe pipe;
  std::vector<std::byte> buffer(64);
  fusedev::Writer writer(pipe.write_end.get(), buffer);
  ASSERT_TRUE(writer.append(bytes_of("partial")));
  writer.discard();
  EXPECT_EQ(writer.written(), 0u);
  ASSERT_TRUE(writer.commit(abi::out_header{sizeof(abi::out_header), -ENOENT, 7}));
  EXPECT_EQ(pipe.drain().size(), sizeof(abi::out_header));
}

TEST(FusedevWriter, AppendRefusesWhatDoesNotFit) {
  std::vector<std::byte> buffer(8);
  fusedev::Writer writer(-1, buffer);
  EXPECT_TRUE(writer.append(bytes_of("12345")));
  EXPECT_FALSE(writer.append(bytes_of("6789")));
  EXPECT_EQ(writer.written(), 5u) << "all or nothing";
  EXPECT_EQ(writer.available(), 3u);
  EXPECT_EQ(writer.write(bytes_of("6789")), 3u) << "write() takes what fits";
  EXPECT_EQ(writer.available(), 0u);
}

TEST(FusedevWriter, WriteFromReadsFileDataIntoTheReply) {
  fuse_backend::testing::TempDir dir("fusedev_writer");
  UniqueFd fd = temp_file(dir, "0123456789");
  std::vector<std::byte> buffer(6);
  fusedev::Writer writer(-1, buffer);
  ASSERT_TRUE(writer.append(bytes_of("<")));
  auto got = writer.write_from(fd.get(), 100, 2);  // capped by the room left
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, 5u);
  EXPECT_EQ(as_string(std::span(buffer).first(writer.written())), "<23456");
  EXPECT_EQ(*writer.write_from(fd.get(), 4, 0), 0u) << "full";
  writer.discard();
  got = writer.write_from(fd.get(), 4, 9);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, 1u) << "short at end of file";
}

TEST(FusedevChannel, ReceivesOneMessagePerRead) {
  Pipe pipe;
  fusedev::Channel channel(pipe.read_end.get(), 0);
  ASSERT_EQ(::write(pipe.write_end.get(), "first", 5), 5);
  auto reader = channel.receive(nullptr);
  ASSERT_TRUE(reader);
  EXPECT_EQ(as_string(reader->read_bytes(reader->remaining())), "first");
}

TEST(FusedevChannel, NothingQueuedIsEagainForThePoller) {
  Pipe pipe;
  fusedev::Channel channel(pipe.read_end.get(), 0);
  auto reader = channel.receive(nullptr);
  ASSERT_FALSE(reader);
  EXPECT_EQ(reader.error(), std::errc::resource_unavailable_try_again);
}

TEST(FusedevChannel, ReadErrorsAreReturned) {
  fusedev::Channel channel(-1, 0);
  auto reader = channel.receive(nullptr);
  ASSERT_FALSE(reader);
  EXPECT_EQ(reader.error(), std::errc::bad_file_descriptor);
}

TEST(FusedevChannel, UnmountedDeviceRefusesReads) {
  UniqueFd device(::open("/dev/fuse", O_RDWR | O_CLOEXEC));
  if (!device.valid()) GTEST_FAIL() << "/dev/fuse: " << std::strerror(errno);
  fusedev::Channel channel(device.get(), 0);
  auto reader = channel.receive(nullptr);
  ASSERT_FALSE(reader);
  EXPECT_EQ(reader.error(), std::errc::operation_not_permitted) << "no connection behind the fd yet";
}

TEST(FusedevChannel, CloneOfANonFuseFdFails) {
  Pipe pipe;
  auto channel = fusedev::Channel::clone(pipe.read_end.get(), 0);
  ASSERT_FALSE(channel);
  EXPECT_EQ(channel.error(), std::errc::invalid_argument);
}

TEST(FusedevChannel, ReaderCarriesTheBackingFiles) {
  Pipe pipe;
  fusedev::DeviceBackingFiles backing(-1);
  fusedev::Channel channel(pipe.read_end.get(), 0);
  ASSERT_EQ(::write(pipe.write_end.get(), "x", 1), 1);
  auto reader = channel.receive(&backing);
  ASSERT_TRUE(reader);
  EXPECT_EQ(reader->backing_files(), &backing);
}

TEST(FusedevDeviceBackingFiles, RefusedWithoutAMountedConnection) {
  UniqueFd device(::open("/dev/fuse", O_RDWR | O_CLOEXEC));
  ASSERT_TRUE(device.valid());
  fusedev::DeviceBackingFiles backing(device.get());
  auto id = backing.open(STDIN_FILENO);
  EXPECT_FALSE(id);
  EXPECT_FALSE(backing.close(1));
}

TEST(FusedevDeviceNotifier, SendsOneWholeMessage) {
  Pipe pipe;
  fusedev::DeviceNotifier notifier(pipe.write_end.get());
  abi::out_header header{sizeof(abi::out_header) + 3, 1, 0};
  char payload[] = "abc";
  const std::array<iovec, 2> message{{{&header, sizeof(header)}, {payload, 3}}};
  ASSERT_TRUE(notifier.send(message));
  EXPECT_EQ(pipe.drain().size(), sizeof(header) + 3);
  EXPECT_EQ(notifier.send({}).error(), std::errc::invalid_argument);
}

TEST(FusedevPoller, StopEventWinsOverAReadableDevice) {
  Pipe pipe;
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  auto poller = fusedev::impl::Poller::create(pipe.read_end.get(), stop.get());
  ASSERT_TRUE(poller);
  ASSERT_EQ(::write(pipe.write_end.get(), "x", 1), 1);
  auto event = poller->wait();
  ASSERT_TRUE(event);
  EXPECT_EQ(*event, fusedev::impl::Poller::Event::device);
  const std::uint64_t one = 1;
  ASSERT_EQ(::write(stop.get(), &one, sizeof(one)), 8);
  for (int i = 0; i < 3; ++i) {  // level-triggered: every waiter keeps seeing it
    event = poller->wait();
    ASSERT_TRUE(event);
    EXPECT_EQ(*event, fusedev::impl::Poller::Event::stop);
  }
}

TEST(FusedevPoller, MakesTheDeviceNonBlocking) {
  Pipe pipe;
  ASSERT_EQ(::fcntl(pipe.read_end.get(), F_SETFL, 0), 0);
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC));
  ASSERT_TRUE(fusedev::impl::Poller::create(pipe.read_end.get(), stop.get()));
  EXPECT_NE(::fcntl(pipe.read_end.get(), F_GETFL) & O_NONBLOCK, 0);
}

TEST(FusedevPoller, BadFdIsAnError) {
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC));
  EXPECT_FALSE(fusedev::impl::Poller::create(-1, stop.get()));
}

}  // namespace
