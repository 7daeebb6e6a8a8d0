// Unit tests of the /dev/fuse channel pieces that need no mount: Reader/Writer semantics, the
// one-writev reply format (observed through a pipe), zero-copy moves through real fds, receive()
// error paths and its stop flag, busy polling, spliced writes, notifications, backing-file and clone ioctls refused on an
// unmounted device, and ServiceCore's stop mechanism (wake signal, re-wake, signal masks) with
// one worker on a pipe.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <future>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/detail/unique_fd.hpp>
#include <fuse_backend/transport/fusedev/channel.hpp>
#include <fuse_backend/transport/fusedev/service.hpp>
#include <support/message_builder.hpp>
#include <support/temp_dir.hpp>
#include <support/wait_channel.hpp>

namespace {

using fuse_backend::detail::UniqueFd;
namespace abi = fuse_backend::abi;
namespace api = fuse_backend::api;
namespace fusedev = fuse_backend::transport::fusedev;

std::span<const std::byte> bytes_of(std::string_view text) { return std::as_bytes(std::span(text)); }

std::string as_string(std::span<const std::byte> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// The next message channel.receive() returns, as text ("error" when it fails).
std::string receive_text(fusedev::Channel& channel, const std::atomic<bool>* stop = nullptr) {
  auto reader = channel.receive(nullptr, stop);
  return reader ? as_string(reader->read_bytes(reader->remaining())) : std::string("error");
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
  auto written = reader.read_to(fd.get(), 4, 3, api::WriteAt::offset);
  ASSERT_TRUE(written);
  EXPECT_EQ(*written, 4u);
  EXPECT_EQ(reader.remaining(), 2u);
  written = reader.read_to(fd.get(), 100, 8, api::WriteAt::offset);  // only what remains
  ASSERT_TRUE(written);
  EXPECT_EQ(*written, 2u);
  std::array<char, 11> back{};
  ASSERT_EQ(::pread(fd.get(), back.data(), 10, 0), 10);
  EXPECT_STREQ(back.data(), "...abcd.ef");
  EXPECT_EQ(*reader.read_to(fd.get(), 4, 0, api::WriteAt::offset), 0u) << "nothing left";
}

// WriteAt::end appends whatever the offset, as O_APPEND would, on an fd that has no O_APPEND.
TEST(FusedevReader, ReadToAtTheEndAppends) {
  fuse_backend::testing::TempDir dir("fusedev_reader");
  UniqueFd fd = temp_file(dir, "0123");
  fusedev::Reader reader(bytes_of("abcdef"), nullptr);
  ASSERT_EQ(*reader.read_to(fd.get(), 2, 0, api::WriteAt::end), 2u);
  ASSERT_EQ(*reader.read_to(fd.get(), 2, 1, api::WriteAt::offset), 2u);
  ASSERT_EQ(*reader.read_to(fd.get(), 2, 0, api::WriteAt::end), 2u);
  std::array<char, 11> back{};
  ASSERT_EQ(::pread(fd.get(), back.data(), 10, 0), 8);
  EXPECT_STREQ(back.data(), "0cd3abef");
}

TEST(FusedevReader, ReadToReportsTheFdsError) {
  fusedev::Reader reader(bytes_of("abc"), nullptr);
  auto written = reader.read_to(-1, 3, 0, api::WriteAt::offset);
  ASSERT_FALSE(written);
  EXPECT_EQ(written.error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(reader.remaining(), 3u) << "a failed write consumes nothing";
}

TEST(FusedevWriter, CommitSendsHeaderAndPayloadAsOneMessage) {
  Pipe pipe;
  std::vector<std::byte> buffer(64);
  fusedev::Channel sink(pipe.write_end.get(), 0);
  fusedev::Writer writer(sink, buffer);
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

// The channel's own writer leaves the header's room in front of the payload, so the reply goes
// out as one contiguous write (see Channel::send), and the whole buffer size is still there for
// the payload (a READ of the largest size fits).
TEST(FusedevWriter, ChannelWriterKeepsTheWholeBufferForThePayload) {
  Pipe pipe;
  fusedev::Channel channel(pipe.write_end.get(), 8192);
  fusedev::Writer writer = channel.writer();
  EXPECT_EQ(writer.available(), 8192u);
  std::string payload(8192, 'x');
  payload.front() = 'a';
  payload.back() = 'z';
  ASSERT_TRUE(writer.append(bytes_of(payload)));
  const abi::out_header header{static_cast<std::uint32_t>(sizeof(abi::out_header) + payload.size()), 0, 9};
  ASSERT_TRUE(writer.commit(header));
  const std::string sent = pipe.drain();
  ASSERT_EQ(sent.size(), sizeof(abi::out_header) + payload.size());
  abi::out_header got{};
  std::memcpy(&got, sent.data(), sizeof(got));
  EXPECT_EQ(got.len, sent.size());
  EXPECT_EQ(got.unique, 9u);
  EXPECT_TRUE(sent.substr(sizeof(got)) == payload);
}

TEST(FusedevWriter, ErrorReplyAfterDiscardIsHeaderOnly) {
  Pipe pipe;
  std::vector<std::byte> buffer(64);
  fusedev::Channel sink(pipe.write_end.get(), 0);
  fusedev::Writer writer(sink, buffer);
  ASSERT_TRUE(writer.append(bytes_of("partial")));
  writer.discard();
  EXPECT_EQ(writer.written(), 0u);
  ASSERT_TRUE(writer.commit(abi::out_header{sizeof(abi::out_header), -ENOENT, 7}));
  EXPECT_EQ(pipe.drain().size(), sizeof(abi::out_header));
}

TEST(FusedevWriter, AppendRefusesWhatDoesNotFit) {
  std::vector<std::byte> buffer(8);
  fusedev::Channel sink(-1, 0);  // never sent to
  fusedev::Writer writer(sink, buffer);
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
  fusedev::Channel sink(-1, 0);  // never sent to
  fusedev::Writer writer(sink, buffer);
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

TEST(FusedevChannel, NothingQueuedOnANonBlockingFdIsEagain) {
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

// --- spliced writes: a pipe stands in for the device (splice moves one message per call as long
// as one is written at a time) ---------------------------------------------------------------

constexpr std::size_t large_payload = fusedev::splice_write_threshold;  // makes a large WRITE
constexpr std::size_t splice_buffer = 4 * large_payload;

std::string payload_of(std::size_t size, char seed) {
  std::string text(size, '\0');
  for (std::size_t i = 0; i < size; ++i) text[i] = static_cast<char>(seed + i % 61);
  return text;
}

std::vector<std::byte> write_request(std::string_view payload, std::uint64_t unique, std::uint64_t offset = 0) {
  abi::write_in in{};
  in.offset = offset;
  in.size = static_cast<std::uint32_t>(payload.size());
  return fuse_backend::testing::MessageBuilder(abi::opcode::write, 5, unique).add(in).bytes(bytes_of(payload)).build();
}

std::vector<std::byte> getattr_request(std::uint64_t unique) {
  return fuse_backend::testing::MessageBuilder(abi::opcode::getattr, 5, unique).add(abi::getattr_in{}).build();
}

struct SplicingChannel : ::testing::Test {
  void SetUp() override {
    // Room for the largest message in the stand-in device.
    ASSERT_GE(::fcntl(device.write_end.get(), F_SETPIPE_SZ, static_cast<int>(2 * splice_buffer)), 0);
    ASSERT_TRUE(channel.splices());
  }
  void queue(const std::vector<std::byte>& message) {
    ASSERT_EQ(::write(device.write_end.get(), message.data(), message.size()), static_cast<ssize_t>(message.size()));
    std::memcpy(&queued, message.data(), sizeof(queued));
  }
  // Takes the message queued last; checks its header (so a leftover of an earlier message
  // cannot pass for it) and consumes it and, for a WRITE, its write_in.
  fusedev::Reader next() {
    auto reader = channel.receive(nullptr);
    EXPECT_TRUE(reader) << std::make_error_code(reader.error()).message();
    if (!reader) return {};
    const auto header = reader->read_bytes(sizeof(abi::in_header));
    EXPECT_EQ(header.size(), sizeof(abi::in_header));
    if (header.size() == sizeof(abi::in_header)) {
      EXPECT_EQ(std::memcmp(header.data(), &queued, sizeof(queued)), 0) << "not the message queued last";
    }
    if (queued.opcode == static_cast<std::uint32_t>(abi::opcode::write)) {
      EXPECT_EQ(reader->read_bytes(sizeof(abi::write_in)).size(), sizeof(abi::write_in));
    }
    return *reader;
  }
  // Queues two large WRITEs of `payload` (unique 1 and 2) and takes both: the second is spliced.
  fusedev::Reader spliced_write(const std::string& payload) {
    queue(write_request(payload, 1));
    (void)next();
    queue(write_request(payload, 2));
    fusedev::Reader reader = next();
    EXPECT_EQ(channel.spliced_requests(), 1u);
    return reader;
  }
  std::string file_contents() const {
    std::string text(splice_buffer, '\0');
    const ssize_t n = ::pread(file.get(), text.data(), text.size(), 0);
    text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return text;
  }

  Pipe device;
  abi::in_header queued{};
  fusedev::Channel channel{device.read_end.get(), splice_buffer, {.splice_writes = true}};
  fuse_backend::testing::TempDir dir{"fusedev_splice"};
  UniqueFd file = temp_file(dir, "");
};

// The request after a large WRITE is spliced: its payload stays in the channel's pipe (the buffer
// holds the header and write_in only) and reaches the file through read_to; a small WRITE or
// other request after it comes whole, and sends the channel back to read(2).
TEST_F(SplicingChannel, StreamOfLargeWritesIsSplicedAndOtherRequestsComeWhole) {
  const std::string first = payload_of(large_payload, 'a'), second = payload_of(large_payload + 4093, 'b');
  queue(write_request(first, 1));
  fusedev::Reader reader = next();
  EXPECT_EQ(as_string(reader.read_bytes(first.size())), first) << "read(2): all in the buffer";
  EXPECT_EQ(channel.spliced_requests(), 0u);

  queue(write_request(second, 2, 3));
  reader = next();
  EXPECT_EQ(channel.spliced_requests(), 1u);
  EXPECT_EQ(reader.remaining(), second.size());
  EXPECT_TRUE(reader.read_bytes(1).empty()) << "the payload is in the pipe, not the buffer";
  std::size_t at = 0;
  while (reader.remaining() != 0) {  // several calls, each up to `count`
    auto moved = reader.read_to(file.get(), 10000 + at, 3 + at, api::WriteAt::offset);
    ASSERT_TRUE(moved) << std::make_error_code(moved.error()).message();
    ASSERT_GT(*moved, 0u);
    at += *moved;
  }
  EXPECT_EQ(file_contents(), std::string(3, '\0') + second);

  queue(write_request(second, 3));
  (void)next();  // spliced again; its payload is left to the drain
  const std::string small = payload_of(4096, 'e');
  queue(write_request(small, 4));
  reader = next();
  EXPECT_EQ(channel.spliced_requests(), 3u) << "spliced, since the request before was a large WRITE";
  EXPECT_EQ(as_string(reader.read_bytes(small.size())), small) << "a small WRITE comes whole";

  queue(getattr_request(5));
  reader = next();
  EXPECT_EQ(channel.spliced_requests(), 3u) << "read(2) again after a small request";
  EXPECT_EQ(reader.read_bytes(sizeof(abi::getattr_in)).size(), sizeof(abi::getattr_in));
  EXPECT_EQ(reader.remaining(), 0u);
}

// A spliced payload the filesystem left (an error reply, or a limit() that cut it) is drained
// before the next request, which then arrives intact.
TEST_F(SplicingChannel, UnconsumedPayloadIsDrained) {
  const std::string payload = payload_of(large_payload, 'c');
  fusedev::Reader reader = spliced_write(payload);
  reader.limit(100);
  EXPECT_EQ(reader.remaining(), 100u);
  std::array<std::byte, 200> head{};
  EXPECT_EQ(reader.read(head), 100u) << "read() takes piped bytes too, up to the limit";
  EXPECT_EQ(as_string(std::span(head).first(100)), payload.substr(0, 100));
  queue(getattr_request(3));
  reader = next();  // its header, not the rest of the last payload
  EXPECT_EQ(reader.remaining(), sizeof(abi::getattr_in));
  queue(write_request(payload, 4));
  reader = next();
  EXPECT_EQ(as_string(reader.read_bytes(payload.size())), payload);
}

// O_APPEND (or a filesystem without splice support) makes splice(2) fail with EINVAL: the bytes
// are then copied through the request buffer, nothing is lost.
TEST_F(SplicingChannel, TargetThatRefusesSpliceGetsACopy) {
  const std::string payload = payload_of(large_payload, 'd');
  fusedev::Reader reader = spliced_write(payload);
  UniqueFd appending(::open((dir / "data").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
  ASSERT_TRUE(appending.valid());
  std::size_t done = 0;
  while (reader.remaining() != 0) {
    auto moved = reader.read_to(appending.get(), reader.remaining(), done, api::WriteAt::offset);
    ASSERT_TRUE(moved) << std::make_error_code(moved.error()).message();
    ASSERT_GT(*moved, 0u);
    done += *moved;
  }
  EXPECT_EQ(file_contents(), payload);
}

// A spliced payload that must be appended is copied, since splice(2) would put it at the offset:
// it lands at the end of the file, whatever the offset given.
TEST_F(SplicingChannel, AppendedPayloadIsCopiedToTheEnd) {
  ASSERT_EQ(::pwrite(file.get(), "head", 4, 0), 4);
  const std::string payload = payload_of(large_payload, 'g');
  fusedev::Reader reader = spliced_write(payload);
  std::size_t done = 0;
  while (reader.remaining() != 0) {
    auto moved = reader.read_to(file.get(), reader.remaining(), 0, api::WriteAt::end);
    ASSERT_TRUE(moved) << std::make_error_code(moved.error()).message();
    ASSERT_GT(*moved, 0u);
    done += *moved;
  }
  EXPECT_EQ(done, payload.size());
  EXPECT_EQ(file_contents(), "head" + payload);
}

// A busy-polling channel (non-blocking fd: EAGAIN from splice too) splices as well, and a message
// that comes long after a large WRITE (the channel sleeps in poll(2) meanwhile) still arrives.
TEST_F(SplicingChannel, BusyPollingChannelSplicesAndSleepsAfterALargeWrite) {
  fusedev::Channel polling(device.read_end.get(), splice_buffer,
                           {.busy_poll = std::chrono::milliseconds(5), .splice_writes = true});
  const std::string payload = payload_of(large_payload, 'f');
  queue(write_request(payload, 1));
  ASSERT_TRUE(polling.receive(nullptr));
  auto received = std::async(std::launch::async, [&] {
    auto reader = polling.receive(nullptr);
    return reader ? reader->remaining() : 0;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  queue(write_request(payload, 2));
  EXPECT_EQ(received.get(), sizeof(abi::in_header) + sizeof(abi::write_in) + payload.size());
  EXPECT_EQ(polling.spliced_requests(), 1u);
}

// Without room for the largest request in a pipe the channel reads only: here an unprivileged
// process (no CAP_SYS_RESOURCE), for which a 1 MiB request needs more than fs.pipe-max-size
// (1 MiB by default). The fixture above shows a pipe within the limit splicing.
TEST(FusedevChannel, ChannelWhosePipeCannotHoldARequestReadsOnly) {
  std::string limit = "?";
  std::ifstream("/proc/sys/fs/pipe-max-size") >> limit;
  ASSERT_EQ(limit, "1048576") << "this test needs the default fs.pipe-max-size";
  Pipe device;
  const pid_t child = ::fork();
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);  // drops CAP_SYS_RESOURCE
    fusedev::Channel channel(device.read_end.get(), (1 << 20) + 4096, {.splice_writes = true});
    ::_exit(channel.splices() ? 1 : 0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: it splices anyway; 2: could not drop privileges";
  fusedev::Channel not_asked(device.read_end.get(), 0);
  EXPECT_FALSE(not_asked.splices());
}

// A no-op handler without SA_RESTART for SIGUSR2, so a signal interrupts a blocked read(2).
struct InterruptingSignal {
  struct sigaction previous {};
  InterruptingSignal() {
    struct sigaction action {};
    action.sa_handler = [](int) {};
    sigemptyset(&action.sa_mask);
    EXPECT_EQ(::sigaction(SIGUSR2, &action, &previous), 0);
  }
  ~InterruptingSignal() { ::sigaction(SIGUSR2, &previous, nullptr); }
};

TEST(FusedevChannel, StopFlagCancelsWithoutReading) {
  Pipe pipe;
  fusedev::Channel channel(pipe.read_end.get(), 0);
  ASSERT_EQ(::write(pipe.write_end.get(), "queued", 6), 6);
  const std::atomic<bool> stop{true};
  auto reader = channel.receive(nullptr, &stop);
  ASSERT_FALSE(reader);
  EXPECT_EQ(reader.error(), std::errc::operation_canceled);
  EXPECT_EQ(pipe.drain(), "queued") << "the request was left for another reader";
}

// Runs channel.receive(&stop) on another thread, lets it sleep for `settle`, then sets `stop` and
// signals that thread (SIGUSR2, see InterruptingSignal) until receive() returns; `outcome` is its
// error (errc{} for a message). A receive() that never returns is unstuck with a write.
void receive_until_stopped(fusedev::Channel& channel, const Pipe& pipe, std::atomic<bool>& stop,
                           std::chrono::milliseconds settle, std::errc& outcome) {
  std::atomic<bool> ready{false};
  std::atomic<pthread_t> reader_thread{};
  auto received = std::async(std::launch::async, [&] {
    reader_thread = ::pthread_self();
    ready = true;
    auto reader = channel.receive(nullptr, &stop);
    return reader ? std::errc{} : reader.error();
  });
  while (!ready) std::this_thread::yield();
  std::this_thread::sleep_for(settle);
  stop = true;
  std::future_status status{};
  for (int i = 0; i < 2000 && (status = received.wait_for(std::chrono::milliseconds(5))) != std::future_status::ready; ++i) {
    ASSERT_EQ(::pthread_kill(reader_thread, SIGUSR2), 0);
  }
  if (status != std::future_status::ready) {
    ASSERT_EQ(::write(pipe.write_end.get(), "x", 1), 1);  // unstick
  }
  outcome = received.get();
}

TEST(FusedevChannel, InterruptedReadIsRetriedUntilTheStopFlagIsSet) {
  InterruptingSignal interrupting;
  Pipe pipe;
  ASSERT_EQ(::fcntl(pipe.read_end.get(), F_SETFL, 0), 0);  // blocking, like a worker's device fd
  fusedev::Channel channel(pipe.read_end.get(), 0);
  std::atomic<bool> stop{false};
  std::atomic<pthread_t> reader_thread{};
  std::atomic<bool> ready{false};
  auto first = std::async(std::launch::async, [&] {
    reader_thread = ::pthread_self();
    ready = true;
    return receive_text(channel, &stop);
  });
  while (!ready) std::this_thread::yield();
  for (int i = 0; i < 5; ++i) {  // EINTR without stop: read again
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_EQ(::pthread_kill(reader_thread, SIGUSR2), 0);
  }
  ASSERT_EQ(first.wait_for(std::chrono::milliseconds(20)), std::future_status::timeout);
  ASSERT_EQ(::write(pipe.write_end.get(), "late", 4), 4);
  EXPECT_EQ(first.get(), "late");

  std::errc outcome{};
  ASSERT_NO_FATAL_FAILURE(receive_until_stopped(channel, pipe, stop, std::chrono::milliseconds(10), outcome));
  EXPECT_EQ(outcome, std::errc::operation_canceled);
}

// Busy polling on a non-blocking fd: a message that comes during the window or long after it
// (then poll(2) wakes the channel) is received, never EAGAIN.
TEST(FusedevChannel, BusyPollingWaitsForTheNextMessage) {
  Pipe pipe;
  fusedev::Channel channel(pipe.read_end.get(), 0, {.busy_poll = std::chrono::milliseconds(5)});
  for (const auto delay : {std::chrono::milliseconds(1), std::chrono::milliseconds(50)}) {
    auto received = std::async(std::launch::async, [&] { return receive_text(channel); });
    std::this_thread::sleep_for(delay);
    ASSERT_EQ(::write(pipe.write_end.get(), "next", 4), 4);
    EXPECT_EQ(received.get(), "next") << "after " << delay.count() << " ms";
  }
}

// How long a busy-polling channel's receive() stayed awake before its thread first slept (at
// most three windows), and what it then received: "next", written to `send_fd` after that.
// Judged on the wall clock: the window ends by the clock, so a loaded machine only makes the
// sleep come later.
struct AwakeThenReceived {
  std::chrono::steady_clock::duration awake;
  std::string received;
};
AwakeThenReceived awake_before_sleeping(fusedev::Channel& channel, int send_fd,
                                        std::chrono::milliseconds window) {
  std::promise<std::pair<pid_t, std::chrono::steady_clock::time_point>> receiving;
  auto received = std::async(std::launch::async, [&] {
    receiving.set_value({::gettid(), std::chrono::steady_clock::now()});
    return receive_text(channel);
  });
  const auto [tid, since] = receiving.get_future().get();
  while (!fuse_backend::testing::sleeps(tid) &&
         std::chrono::steady_clock::now() - since < 3 * window) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const auto awake = std::chrono::steady_clock::now() - since;
  EXPECT_EQ(::write(send_fd, "next", 4), 4);
  return {awake, received.get()};
}

// A channel counts itself among the answering ones from the request receive() returns until its
// next receive(), and a busy-polling channel polls only while no other one is answering: with
// the count at 0 it stays awake for its whole window before it sleeps, with another channel
// answering it sleeps at once.
TEST(FusedevChannel, BusyPollingChannelSleepsAtOnceWhileAnotherAnswers) {
  constexpr auto window = std::chrono::milliseconds(200);
  for (const unsigned others : {0u, 1u}) {
    Pipe pipe;
    std::atomic<unsigned> answering{others};
    fusedev::Channel channel(pipe.read_end.get(), 0,
                             {.busy_poll = window, .answering = &answering});
    const auto [awake, received] = awake_before_sleeping(channel, pipe.write_end.get(), window);
    EXPECT_EQ(received, "next");
    if (others == 0) {
      EXPECT_GE(awake, window) << "the channel slept before its window ended";
    } else {
      EXPECT_LT(awake, window) << "the channel polled while another one answered";
    }
    EXPECT_EQ(answering.load(), others + 1) << "a channel holding a request counts itself";
    ASSERT_EQ(::write(pipe.write_end.get(), "more", 4), 4);
    ASSERT_TRUE(channel.receive(nullptr));
    EXPECT_EQ(answering.load(), others + 1) << "and stops counting at its next receive()";
    const std::atomic<bool> stop{true};
    ASSERT_FALSE(channel.receive(nullptr, &stop));
    EXPECT_EQ(answering.load(), others) << "a receive() that fails leaves it uncounted";
  }
}

// Requests already queued when a busy-polling channel asks for them, two in a row, pause its
// polling for its next poll_pause_requests requests: it sleeps at once while paused and polls its
// whole window again afterwards. One queued request alone (the kernel queues a RELEASE behind
// the FLUSH its caller waits for) pauses nothing. The messages go over a SOCK_SEQPACKET socket,
// which keeps them apart as the device does (one read, one request).
TEST(FusedevChannel, BusyPollingPausesWhileRequestsQueueUp) {
  constexpr auto window = std::chrono::milliseconds(200);
  std::array<int, 2> ends{};
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, ends.data()), 0);
  const UniqueFd device(ends[0]), kernel(ends[1]);
  fusedev::Channel channel(device.get(), 0, {.busy_poll = window});
  const auto queue = [&](std::string_view message) {
    EXPECT_EQ(::write(kernel.get(), message.data(), message.size()), static_cast<ssize_t>(message.size()));
  };

  queue("alone");
  EXPECT_EQ(receive_text(channel), "alone");
  auto next = awake_before_sleeping(channel, kernel.get(), window);
  EXPECT_EQ(next.received, "next");
  EXPECT_GE(next.awake, window) << "one queued request paused the polling";

  queue("first");
  queue("second");
  EXPECT_EQ(receive_text(channel), "first");
  EXPECT_EQ(receive_text(channel), "second");
  for (unsigned taken = 0; taken < fusedev::poll_pause_requests; ++taken) {
    next = awake_before_sleeping(channel, kernel.get(), window);
    EXPECT_EQ(next.received, "next");
    EXPECT_LT(next.awake, window) << "polled " << taken << " requests into the pause";
  }
  next = awake_before_sleeping(channel, kernel.get(), window);
  EXPECT_GE(next.awake, window) << "still paused after " << fusedev::poll_pause_requests << " requests";
}

// Sleeping in poll(2) after the window, a busy-polling channel still ends on the stop flag and a
// signal, as a blocked read does.
TEST(FusedevChannel, BusyPollingSleeperEndsOnTheStopFlag) {
  InterruptingSignal interrupting;
  Pipe pipe;
  fusedev::Channel channel(pipe.read_end.get(), 0, {.busy_poll = std::chrono::microseconds(100)});
  std::atomic<bool> stop{false};
  std::errc outcome{};
  // 20 ms: long past the window, asleep in poll(2).
  ASSERT_NO_FATAL_FAILURE(receive_until_stopped(channel, pipe, stop, std::chrono::milliseconds(20), outcome));
  EXPECT_EQ(outcome, std::errc::operation_canceled);
}

// ServiceCore with one worker on a blocking pipe (one worker needs no FUSE_DEV_IOC_CLONE): the
// stop mechanism without a mount. Multi-worker stops are in tests/integration/fusedev_service_test.
struct PipeService {
  Pipe pipe;
  fusedev::impl::ServiceCore core;
  std::atomic<int> requests{0};
  std::atomic<bool> canceled{false};
  // Set by a serve function that simulates the lost wake-up (see below).
  std::atomic<bool> late_stop{false};

  explicit PipeService(int wake_signal = SIGURG) : core(pipe.read_end.get(), 1, {}, {}, wake_signal) {}

  // Hooks for one /dev/fuse-style worker calling `serve_with(context, ...)` (no io_uring queues).
  static fusedev::impl::ServiceCore::Hooks hooks(fusedev::impl::ServiceCore::Serve serve_with, void* context) {
    return {context, 0, serve_with, nullptr, nullptr, nullptr, nullptr};
  }
  fusedev::impl::ServiceCore::Hooks hooks(fusedev::impl::ServiceCore::Serve serve_with) {
    return hooks(serve_with, this);
  }

  static void serve(void* self, fusedev::Channel& channel, const std::atomic<bool>& stopping) {
    auto& s = *static_cast<PipeService*>(self);
    for (;;) {
      auto reader = channel.receive(nullptr, &stopping);
      if (!reader) {
        s.canceled = reader.error() == std::errc::operation_canceled;
        return;
      }
      ++s.requests;
    }
  }

  // Joins on another thread; false (and the worker unstuck by a write) if it took over `limit`.
  bool join_within(std::chrono::milliseconds limit) {
    auto joined = std::async(std::launch::async, [this] { return core.join(); });
    if (joined.wait_for(limit) == std::future_status::ready) return static_cast<bool>(joined.get());
    for (int i = 0; i < 10 && joined.wait_for(std::chrono::milliseconds(50)) != std::future_status::ready; ++i) {
      (void)::write(pipe.write_end.get(), "x", 1);
    }
    (void)joined.get();
    return false;
  }
};

TEST(FusedevServiceCore, StopWhileIdleEndsTheBlockedWorkerPromptly) {
  PipeService service;
  ASSERT_TRUE(service.core.start(service.hooks(&PipeService::serve)));
  EXPECT_NE(::fcntl(service.pipe.read_end.get(), F_GETFL) & O_NONBLOCK, O_NONBLOCK) << "the worker blocks in read";
  ASSERT_EQ(::write(service.pipe.write_end.get(), "one", 3), 3);
  for (int i = 0; i < 5000 && service.requests == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(service.requests.load(), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let it block in read(2) again
  service.core.stop();
  EXPECT_TRUE(service.join_within(std::chrono::seconds(2)));
  EXPECT_TRUE(service.canceled);
}

TEST(FusedevServiceCore, StopBeforeStartEndsTheWorkerAtOnce) {
  PipeService service;
  service.core.stop();
  ASSERT_TRUE(service.core.start(service.hooks(&PipeService::serve)));
  EXPECT_TRUE(service.join_within(std::chrono::seconds(2)));
  EXPECT_TRUE(service.canceled);
}

PipeService* signalled_service = nullptr;
std::atomic<bool> handler_kept_errno{false};

TEST(FusedevServiceCore, StopFromASignalHandlerKeepsErrno) {
  PipeService service;
  ASSERT_TRUE(service.core.start(service.hooks(&PipeService::serve)));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  signalled_service = &service;
  struct sigaction action {};
  struct sigaction previous {};
  action.sa_handler = [](int) {
    const int saved = errno;
    errno = EILSEQ;
    signalled_service->core.stop();
    handler_kept_errno = errno == EILSEQ;
    errno = saved;
  };
  sigemptyset(&action.sa_mask);
  ASSERT_EQ(::sigaction(SIGUSR1, &action, &previous), 0);
  ASSERT_EQ(::pthread_kill(::pthread_self(), SIGUSR1), 0);
  ::sigaction(SIGUSR1, &previous, nullptr);
  EXPECT_TRUE(handler_kept_errno);
  EXPECT_TRUE(service.join_within(std::chrono::seconds(2)));
  EXPECT_TRUE(service.canceled);
}

// The lost wake-up: the worker checked the flag (here: a flag that is still false), then the
// signal came, then it blocked in read(2). Only join()'s re-sent signal can end that read.
TEST(FusedevServiceCore, JoinRewakesAWorkerThatMissedTheSignal) {
  PipeService service;
  const auto serve = [](void* self, fusedev::Channel& channel, const std::atomic<bool>& stopping) {
    auto& s = *static_cast<PipeService*>(self);
    while (!stopping) std::this_thread::sleep_for(std::chrono::milliseconds(1));  // stop()'s signal lands here
    std::thread later([&s] {
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      s.late_stop = true;
    });
    auto reader = channel.receive(nullptr, &s.late_stop);  // passes the check, then blocks
    s.canceled = !reader && reader.error() == std::errc::operation_canceled;
    later.join();
  };
  ASSERT_TRUE(service.core.start(service.hooks(serve)));
  service.core.stop();
  EXPECT_TRUE(service.join_within(std::chrono::seconds(2)));
  EXPECT_TRUE(service.canceled) << "ended by a signal, not by data";
}

TEST(FusedevServiceCore, WorkersKeepTheStartersBlockedSignalsBlocked) {
  sigset_t blocked;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGURG);  // the wake signal too: the worker must unblock it for itself
  sigset_t previous;
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &blocked, &previous), 0);
  PipeService service;
  std::atomic<int> term_blocked{-1};
  std::atomic<int> wake_blocked{-1};
  struct Probe {
    PipeService* service;
    std::atomic<int>* term;
    std::atomic<int>* wake;
  } probe{&service, &term_blocked, &wake_blocked};
  const auto serve = [](void* self, fusedev::Channel& channel, const std::atomic<bool>& stopping) {
    auto& p = *static_cast<Probe*>(self);
    sigset_t mask;
    ::pthread_sigmask(SIG_BLOCK, nullptr, &mask);
    *p.term = sigismember(&mask, SIGTERM);
    *p.wake = sigismember(&mask, SIGURG);
    PipeService::serve(p.service, channel, stopping);
  };
  const auto started = service.core.start(PipeService::hooks(serve, &probe));
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  ASSERT_TRUE(started);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  service.core.stop();
  EXPECT_TRUE(service.join_within(std::chrono::seconds(2)));
  EXPECT_EQ(term_blocked.load(), 1);
  EXPECT_EQ(wake_blocked.load(), 0);
}

TEST(FusedevServiceCore, RefusesAWakeSignalTheApplicationHandles) {
  struct sigaction action {};
  struct sigaction previous {};
  action.sa_handler = [](int) {};
  sigemptyset(&action.sa_mask);
  ASSERT_EQ(::sigaction(SIGUSR1, &action, &previous), 0);
  PipeService service(SIGUSR1);
  const auto started = service.core.start(service.hooks(&PipeService::serve));
  ::sigaction(SIGUSR1, &previous, nullptr);
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error(), std::errc::device_or_resource_busy);
}

TEST(FusedevServiceCore, InvalidWakeSignalIsAnError) {
  PipeService service(SIGKILL);
  const auto started = service.core.start(service.hooks(&PipeService::serve));
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error(), std::errc::invalid_argument);
}

}  // namespace
