// VhostUserBackend driven over a real socketpair by a test master that speaks like QEMU 7.2
// (messages with memfd / eventfd fds, the start sequence of vhost-user-qemu.md), with a test
// driver placing chains in the rings and a small echo device behind them. Also every kind of
// malformed or out-of-order message, each of which must end in a clean disconnect after which
// the same back-end serves a new connection from scratch.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <fuse_backend/transport/virtio/descriptor_chain.hpp>
#include <fuse_backend/transport/virtio/device.hpp>
#include <fuse_backend/transport/virtio/fs_device.hpp>
#include <fuse_backend/transport/virtio/vhost_user_backend.hpp>
#include <fuse_backend/transport/virtio/vhost_user_channel.hpp>
#include <fuse_backend/transport/virtio/virtqueue.hpp>
#include <support/memory_fs.hpp>
#include <support/message_builder.hpp>
#include <support/temp_dir.hpp>

namespace fb = fuse_backend;
namespace virtio = fuse_backend::transport::virtio;
namespace vu = fuse_backend::transport::virtio::vhost_user;
using fb::detail::UniqueFd;

namespace {

constexpr std::uint64_t version_1 = vu::bit(vu::feature::version_1);
constexpr std::uint64_t protocol_features = vu::bit(vu::feature::protocol_features);
constexpr std::uint64_t event_idx = vu::bit(vu::feature::event_idx);
constexpr std::uint64_t indirect_desc = vu::bit(vu::feature::indirect_desc);

// -------------------------------------------------------------------------------------------
// The device behind the rings: answers each chain with its readable bytes reversed (logging its
// writes for migration, as a device must).

class EchoDevice final : public virtio::VirtioDevice {
 public:
  explicit EchoDevice(std::size_t queues) : queues_(queues) {}

  std::size_t queue_count() const noexcept override { return queues_.size(); }
  std::uint64_t device_features() const noexcept override {
    return version_1 | event_idx | indirect_desc;
  }
  fb::Result<void> start_queue(std::size_t index, const virtio::VringConfig& config,
                               std::shared_ptr<const virtio::GuestMemory> memory,
                               virtio::QueueSignal&) noexcept override {
    auto& q = queues_[index];
    if (auto sized = q.queue.set_size(config.size); !sized) return sized;
    q.queue.set_addresses({config.descriptor_table, config.available_ring, config.used_ring,
                           virtio::AddressKind::guest_physical, std::nullopt});
    q.queue.set_features((config.event_idx ? virtio::features::event_idx : 0) |
                         (config.indirect ? virtio::features::indirect_desc : 0));
    q.queue.set_base(config.next_available);
    starts_.fetch_add(1);
    return q.queue.start(std::move(memory));
  }
  virtio::QueueRun process_queue(std::size_t index,
                                 std::shared_ptr<const virtio::GuestMemory> memory) noexcept override {
    auto& q = queues_[index];
    virtio::QueueRun run;
    if (!q.queue.set_memory(std::move(memory))) return {0, false, true};
    for (;;) {
      auto head = q.queue.pop();
      if (!head) {
        run.failed = true;
        break;
      }
      if (!*head) break;
      std::uint32_t written = 0;
      if (q.chain.walk(q.queue.descriptor_table(), **head) == virtio::ChainError::none) {
        std::vector<std::byte> in;
        for (const auto& s : q.chain.readable()) in.insert(in.end(), s.host, s.host + s.len);
        std::reverse(in.begin(), in.end());
        for (const auto& s : q.chain.writable()) {
          const std::size_t n = std::min<std::size_t>(s.len, in.size() - written);
          std::memcpy(s.host, in.data() + written, n);
          q.queue.memory().log_write(s.gpa, n);  // migration: mark what the device wrote
          written += static_cast<std::uint32_t>(n);
        }
      }
      if (!q.queue.push_used(**head, written)) {
        run.failed = true;
        break;
      }
      ++run.chains;
    }
    run.notify = q.queue.needs_notification() || run.notify;
    return run;
  }
  std::uint16_t stop_queue(std::size_t index) noexcept override {
    auto& q = queues_[index];
    q.queue.stop();
    return q.queue.base();
  }

  int starts() const { return starts_.load(); }

 private:
  struct Queue {
    virtio::Virtqueue queue;
    virtio::DescriptorChain chain;
  };
  std::vector<Queue> queues_;
  std::atomic<int> starts_{0};
};

// -------------------------------------------------------------------------------------------
// Guest memory as QEMU lays it out: one memfd, two regions (gpa 0 and gpa 4 GiB, the second at
// mmap_offset 2 MiB), with QEMU virtual addresses that are NOT this process's mapping, so a
// back-end that confuses user addresses with its own pointers fails.

constexpr std::uint64_t region_size = 2 << 20;
constexpr std::uint64_t high_gpa = 4ULL << 30;
constexpr std::uint64_t qemu_va = 0x7f12'3400'0000ULL;
constexpr std::uint16_t ring_size = 16;

struct GuestRam {
  UniqueFd memfd;
  std::byte* host = nullptr;

  GuestRam() {
    memfd.reset(::memfd_create("vhost-user-test-ram", MFD_CLOEXEC));
    EXPECT_TRUE(memfd.valid());
    EXPECT_EQ(::ftruncate(memfd.get(), 2 * region_size), 0);
    void* p = ::mmap(nullptr, 2 * region_size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd.get(), 0);
    EXPECT_NE(p, MAP_FAILED);
    host = static_cast<std::byte*>(p);
  }
  ~GuestRam() { ::munmap(host, 2 * region_size); }

  static vu::MemoryRegion low() { return {0, region_size, qemu_va, 0}; }
  static vu::MemoryRegion high() {
    return {high_gpa, region_size, qemu_va + region_size, region_size};
  }
  std::byte* at(std::uint64_t gpa) {
    if (gpa >= high_gpa) return host + region_size + (gpa - high_gpa);
    return host + gpa;
  }
  static std::uint64_t uva(std::uint64_t gpa) {
    return gpa >= high_gpa ? qemu_va + region_size + (gpa - high_gpa) : qemu_va + gpa;
  }
};

// Per-queue ring placement: rings in the low region, buffers in the high one.
struct RingPlace {
  std::uint64_t desc, avail, used, buffers;
};
RingPlace place(std::size_t q) {
  const std::uint64_t base = 0x10000 * (q + 1);
  return {base, base + 0x1000, base + 0x2000, high_gpa + 0x10000 * q};
}

// -------------------------------------------------------------------------------------------
// The test master: plays QEMU on one end of a socketpair while the back-end serves the other,
// and the guest driver of every ring.

class Master {
 public:
  Master(virtio::VhostUserBackend& backend, std::size_t queues) : queues_(queues) {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    channel_ = vu::Channel(UniqueFd(sv[0]));
    server_ = std::async(std::launch::async,
                         [&backend, fd = sv[1]] { return backend.serve(UniqueFd(fd)); });
    for (std::size_t i = 0; i < queues; ++i) {
      kick_.emplace_back(::eventfd(0, EFD_CLOEXEC));
      call_.emplace_back(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      err_.emplace_back(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      avail_idx_.push_back(0);
      used_seen_.push_back(0);
    }
  }
  ~Master() {
    channel_.close();
    if (server_.valid()) (void)server_.get();
  }

  // Sends one request; `fds` ride on it.
  void send(vu::Request request, std::span<const std::byte> payload = {},
            std::span<const int> fds = {}, std::uint32_t flags = 0) {
    ASSERT_TRUE(channel_.send(static_cast<std::uint32_t>(request), flags, payload, fds));
  }
  template <class T>
  void send_value(vu::Request request, const T& value, std::span<const int> fds = {},
                  std::uint32_t flags = 0) {
    send(request, vu::as_bytes_of(value), fds, flags);
  }
  // Reads the reply to `request`; nullopt when the back-end closed the connection instead.
  std::optional<vu::Message> reply(vu::Request request) {
    auto m = std::make_optional<vu::Message>();
    auto got = channel_.receive(*m);
    if (!got || !*got) return std::nullopt;
    EXPECT_EQ(m->request(), request);
    EXPECT_EQ(m->header.flags, vu::flags::version | vu::flags::reply);
    return m;
  }
  std::uint64_t get_u64(vu::Request request) {
    send(request);
    auto m = reply(request);
    EXPECT_TRUE(m.has_value());
    if (!m) return 0;
    EXPECT_EQ(m->header.size, 8u);
    return m->payload_as<std::uint64_t>();
  }
  // A request with NEED_REPLY; returns the ack value (0 = success).
  template <class T>
  std::uint64_t acked(vu::Request request, const T& value, std::span<const int> fds = {}) {
    send_value(request, value, fds, vu::flags::need_reply);
    auto m = reply(request);
    EXPECT_TRUE(m.has_value()) << "no ack for " << vu::request_name(request);
    return m ? m->payload_as<std::uint64_t>() : ~0ULL;
  }

  // The realize-time handshake of vhost-user-qemu.md.
  void handshake() {
    const auto features = get_u64(vu::Request::get_features);
    EXPECT_NE(features & version_1, 0u);
    EXPECT_NE(features & protocol_features, 0u);
    const auto protocol = get_u64(vu::Request::get_protocol_features);
    for (unsigned bit : {vu::protocol_feature::mq, vu::protocol_feature::reply_ack,
                         vu::protocol_feature::configure_mem_slots})
      EXPECT_NE(protocol & vu::bit(bit), 0u) << "protocol feature bit " << bit;
    send_value(vu::Request::set_protocol_features, protocol);
    EXPECT_EQ(get_u64(vu::Request::get_queue_num), queues_);
    EXPECT_EQ(get_u64(vu::Request::get_max_mem_slots), vu::max_mem_slots);
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    backend_channel_ = UniqueFd(sv[0]);
    UniqueFd theirs(sv[1]);
    const int fd[] = {theirs.get()};
    send(vu::Request::set_backend_req_fd, {}, fd, vu::flags::need_reply);
    auto ack = reply(vu::Request::set_backend_req_fd);
    ASSERT_TRUE(ack);
    EXPECT_EQ(ack->payload_as<std::uint64_t>(), 0u);
    send(vu::Request::set_owner);
    EXPECT_EQ(get_u64(vu::Request::get_features), features);
    for (std::size_t q = 0; q < queues_; ++q) {
      set_fd(vu::Request::set_vring_call, q, call_[q].get());
      set_fd(vu::Request::set_vring_err, q, err_[q].get());
    }
  }

  void set_fd(vu::Request request, std::size_t q, int fd) {
    const std::uint64_t payload = q;
    const int fds[] = {fd};
    send_value(request, payload, fds);
  }
  // The same, waiting until the back-end has applied it (REPLY_ACK).
  void set_fd_acked(vu::Request request, std::size_t q, int fd) {
    const std::uint64_t payload = q;
    const int fds[] = {fd};
    EXPECT_EQ(acked(request, payload, fds), 0u);
  }

  // The DRIVER_OK part: features, memory (ADD_MEM_REG), rings, enable.
  void start(std::uint64_t features = version_1 | protocol_features | event_idx | indirect_desc) {
    send_value(vu::Request::set_features, features);
    const int fd[] = {ram.memfd.get()};
    EXPECT_EQ(acked(vu::Request::add_mem_reg, vu::SingleMemoryRegion{0, GuestRam::low()}, fd), 0u);
    EXPECT_EQ(acked(vu::Request::add_mem_reg, vu::SingleMemoryRegion{0, GuestRam::high()}, fd), 0u);
    for (std::size_t q = 0; q < queues_; ++q) start_ring(q);
    for (std::size_t q = 0; q < queues_; ++q)
      EXPECT_EQ(acked(vu::Request::set_vring_enable, vu::VringState{static_cast<std::uint32_t>(q), 1}),
                0u);
  }

  void start_ring(std::size_t q, std::uint16_t base = 0) {
    const auto index = static_cast<std::uint32_t>(q);
    const RingPlace p = place(q);
    std::memset(ram.at(p.desc), 0, 0x3000);
    avail_idx_[q] = base;
    used_seen_[q] = base;
    store16(p.avail + 2, base);
    store16(p.used + 2, base);
    send_value(vu::Request::set_vring_num, vu::VringState{index, ring_size});
    send_value(vu::Request::set_vring_base, vu::VringState{index, base});
    send_value(vu::Request::set_vring_addr,
               vu::VringAddress{index, 0, GuestRam::uva(p.desc), GuestRam::uva(p.used),
                                GuestRam::uva(p.avail), 0});
    set_fd(vu::Request::set_vring_kick, q, kick_[q].get());
  }

  // Driver side: one chain (readable `data`, then `reply_len` writable bytes) made available
  // and kicked. Uses descriptors 2*slot, 2*slot+1.
  void post(std::size_t q, std::string_view data, std::uint32_t reply_len) {
    const RingPlace p = place(q);
    const std::uint16_t slot = static_cast<std::uint16_t>(avail_idx_[q] % (ring_size / 2));
    const std::uint16_t d0 = static_cast<std::uint16_t>(2 * slot);
    const std::uint64_t in = p.buffers + 0x1000 * slot;
    const std::uint64_t out = in + 0x800;
    std::memcpy(ram.at(in), data.data(), data.size());
    write_desc(p.desc, d0,
               {in, static_cast<std::uint32_t>(data.size()), virtio::descriptor_flags::next,
                static_cast<std::uint16_t>(d0 + 1)});
    write_desc(p.desc, d0 + 1, {out, reply_len, virtio::descriptor_flags::write, 0});
    store16(p.avail + 4 + 2 * (avail_idx_[q] % ring_size), d0);
    // EVENT_IDX: interrupt me once you have used the entry after the last one I saw.
    store16(p.avail + virtio::ring_layout::used_event_offset(ring_size), used_seen_[q]);
    ++avail_idx_[q];
    std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(ram.at(p.avail + 2)))
        .store(avail_idx_[q], std::memory_order_release);
    kick(q);
  }
  void post(std::size_t q, const std::vector<std::byte>& request, std::uint32_t reply_len) {
    post(q, std::string_view(reinterpret_cast<const char*>(request.data()), request.size()),
         reply_len);
  }
  void kick(std::size_t q) { ASSERT_EQ(::eventfd_write(kick_[q].get(), 1), 0); }
  void set_avail_idx(std::size_t q, std::uint16_t idx) {
    avail_idx_[q] = idx;
    store16(place(q).avail + 2, idx);
  }

  // The reply bytes of the next used element of queue q, if the back-end returned one.
  std::optional<std::string> take_reply(std::size_t q) {
    const RingPlace p = place(q);
    const auto used_idx =
        std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(ram.at(p.used + 2)))
            .load(std::memory_order_acquire);
    if (used_idx == used_seen_[q]) return std::nullopt;
    const std::uint64_t elem = p.used + 4 + 8 * (used_seen_[q] % ring_size);
    std::uint32_t id, len;
    std::memcpy(&id, ram.at(elem), 4);
    std::memcpy(&len, ram.at(elem + 4), 4);
    ++used_seen_[q];
    const std::uint64_t out = p.buffers + 0x1000 * (id / 2) + 0x800;
    return std::string(reinterpret_cast<const char*>(ram.at(out)), len);
  }
  // Waits for the call eventfd of queue q, then returns the next used element's reply bytes.
  std::optional<std::string> wait_reply(std::size_t q, int timeout_ms = 5000) {
    const RingPlace p = place(q);
    for (;;) {
      if (auto reply = take_reply(q)) return reply;
      // Going to sleep, a driver asks for an interrupt at the next entry and looks again
      // (virtqueue_enable_cb): completions from a pool come one by one, after the posts.
      store16(p.avail + virtio::ring_layout::used_event_offset(ring_size), used_seen_[q]);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(ram.at(p.used + 2)))
              .load(std::memory_order_acquire) != used_seen_[q])
        continue;
      if (!wait_fd(call_[q].get(), timeout_ms)) return std::nullopt;
    }
  }
  // Whether `fd` (an eventfd) fires within the timeout; consumes it.
  static bool wait_fd(int fd, int timeout_ms) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, timeout_ms) != 1) return false;
    eventfd_t value;
    return ::eventfd_read(fd, &value) == 0;
  }
  bool call_fired(std::size_t q, int timeout_ms) { return wait_fd(call_[q].get(), timeout_ms); }
  int call_fd(std::size_t q) const { return call_[q].get(); }
  // Forgets interrupts already signalled (wait_reply does not consume one when the used ring
  // was already updated).
  void drain_call(std::size_t q) { (void)wait_fd(call_[q].get(), 0); }
  bool err_fired(std::size_t q, int timeout_ms) { return wait_fd(err_[q].get(), timeout_ms); }

  std::uint32_t get_vring_base(std::size_t q) {
    send_value(vu::Request::get_vring_base, vu::VringState{static_cast<std::uint32_t>(q), 0});
    auto m = reply(vu::Request::get_vring_base);
    EXPECT_TRUE(m);
    if (!m) return ~0u;
    EXPECT_EQ(m->header.size, sizeof(vu::VringState));
    const auto state = m->payload_as<vu::VringState>();
    EXPECT_EQ(state.index, q);
    return state.num;
  }

  // Whether the back-end closed the connection (after a rejected message), and what serve()
  // returned.
  fb::Result<void> expect_disconnect() {
    vu::Message m;
    for (;;) {
      auto got = channel_.receive(m);
      if (!got || !*got) break;  // replies (acks) may come first
    }
    return server_.get();
  }
  fb::Result<void> close() {
    channel_.close();
    return server_.get();
  }

  vu::Channel& channel() { return channel_; }
  GuestRam ram;

 private:
  void store16(std::uint64_t gpa, std::uint16_t v) { std::memcpy(ram.at(gpa), &v, 2); }
  void write_desc(std::uint64_t table, std::uint16_t i, virtio::Descriptor d) {
    std::memcpy(ram.at(table + 16ULL * i), &d, sizeof d);
  }

  std::size_t queues_;
  vu::Channel channel_;
  std::future<fb::Result<void>> server_;
  UniqueFd backend_channel_;
  std::vector<UniqueFd> kick_, call_, err_;
  std::vector<std::uint16_t> avail_idx_, used_seen_;
};

// Collects the back-end's log lines (it must say why it disconnected).
struct LogCapture {
  std::mutex mutex;
  std::vector<std::string> lines;
  virtio::VhostUserBackendOptions options() {
    virtio::VhostUserBackendOptions o;
    o.log = [this](std::string_view line) {
      std::lock_guard lock(mutex);
      lines.emplace_back(line);
    };
    return o;
  }
  bool contains(std::string_view text) {
    std::lock_guard lock(mutex);
    return std::any_of(lines.begin(), lines.end(),
                       [&](const std::string& l) { return l.find(text) != std::string::npos; });
  }
  std::string all() {
    std::lock_guard lock(mutex);
    std::string s;
    for (const auto& l : lines) s += l + "\n";
    return s;
  }
};

class VhostUserBackendTest : public ::testing::Test {
 protected:
  static constexpr std::size_t queues = 3;  // hiprio + 2 request queues
  EchoDevice device{queues};
  LogCapture log;
  virtio::VhostUserBackend backend{device, log.options()};

  // After a rejected connection, a new one must work from scratch.
  void expect_fresh_connection_works() {
    Master m(backend, queues);
    m.handshake();
    m.start();
    m.post(1, "again", 16);
    EXPECT_EQ(m.wait_reply(1), "niaga");
    EXPECT_TRUE(m.close());
  }
  // The malformed-message pattern: the connection ends with an error, the log says why.
  void expect_rejected(Master& m, std::string_view why) {
    auto result = m.expect_disconnect();
    EXPECT_FALSE(result);
    EXPECT_TRUE(log.contains(why)) << "log was:\n" << log.all();
  }
};

}  // namespace

// --- the QEMU sequence end to end --------------------------------------------------------------

TEST_F(VhostUserBackendTest, QemuStartSequenceThenRequestsOnEveryQueue) {
  Master m(backend, queues);
  m.handshake();
  m.start();
  for (std::size_t q = 0; q < queues; ++q) {
    std::string text = "hello queue " + std::to_string(q);
    m.post(q, text, 64);
    std::reverse(text.begin(), text.end());
    EXPECT_EQ(m.wait_reply(q), text);
  }
  EXPECT_TRUE(m.close());
  for (std::size_t q = 0; q < queues; ++q) {
    EXPECT_EQ(backend.queue_stats(q).chains, 1u);
    EXPECT_EQ(backend.queue_stats(q).starts, 1u);
  }
}

TEST_F(VhostUserBackendTest, ManyRequestsWrapTheRing) {
  Master m(backend, queues);
  m.handshake();
  m.start();
  for (int i = 0; i < 3 * ring_size; ++i) {
    m.post(1, "x" + std::to_string(i), 16);
    std::string expected = "x" + std::to_string(i);
    std::reverse(expected.begin(), expected.end());
    ASSERT_EQ(m.wait_reply(1), expected) << i;
  }
  EXPECT_EQ(m.get_vring_base(1), 3u * ring_size);
  EXPECT_TRUE(m.close());
}

TEST_F(VhostUserBackendTest, RestartAfterGetVringBaseResumesWherePaused) {
  Master m(backend, queues);
  m.handshake();
  m.start();
  m.post(1, "ab", 8);
  ASSERT_EQ(m.wait_reply(1), "ba");
  EXPECT_EQ(m.get_vring_base(1), 1u);
  m.drain_call(1);
  m.post(1, "cd", 8);  // made available while stopped
  EXPECT_FALSE(m.call_fired(1, 100));
  m.send_value(vu::Request::set_vring_base, vu::VringState{1, 1});
  UniqueFd new_kick(::eventfd(0, EFD_CLOEXEC));
  m.set_fd(vu::Request::set_vring_kick, 1, new_kick.get());
  EXPECT_EQ(m.wait_reply(1), "dc");
  EXPECT_EQ(m.get_vring_base(1), 2u);
  EXPECT_TRUE(m.close());
}

TEST_F(VhostUserBackendTest, CallFdSwapWhileRunning) {
  Master m(backend, queues);
  m.handshake();
  m.start();
  UniqueFd fresh_call(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  m.set_fd_acked(vu::Request::set_vring_call, 1, fresh_call.get());
  m.post(1, "swap", 8);
  EXPECT_TRUE(Master::wait_fd(fresh_call.get(), 5000));
  EXPECT_EQ(m.wait_reply(1, 0), "paws");
  EXPECT_TRUE(m.close());
}

TEST_F(VhostUserBackendTest, SetMemTableWithoutMemSlots) {
  Master m(backend, queues);
  m.handshake();
  m.send_value(vu::Request::set_features, version_1 | protocol_features);
  struct {
    vu::MemoryTableHeader header{2, 0};
    vu::MemoryRegion regions[2] = {GuestRam::low(), GuestRam::high()};
  } table;
  const int fds[] = {m.ram.memfd.get(), m.ram.memfd.get()};
  EXPECT_EQ(m.acked(vu::Request::set_mem_table, table, fds), 0u);
  m.start_ring(1);
  m.send_value(vu::Request::set_vring_enable, vu::VringState{1, 1});
  m.post(1, "table", 8);
  EXPECT_EQ(m.wait_reply(1), "elbat");
  EXPECT_TRUE(m.close());
}

TEST_F(VhostUserBackendTest, RingsStartEnabledWithoutProtocolFeatures) {
  Master m(backend, queues);
  EXPECT_NE(m.get_u64(vu::Request::get_features) & protocol_features, 0u);
  m.send(vu::Request::set_owner);
  m.send_value(vu::Request::set_features, version_1);  // PROTOCOL_FEATURES not acked
  struct {
    vu::MemoryTableHeader header{1, 0};
    vu::MemoryRegion regions[1] = {GuestRam::low()};
  } table;
  const int fds[] = {m.ram.memfd.get()};
  m.send_value(vu::Request::set_mem_table, table, fds);
  // Rings with buffers in the low region only.
  m.start_ring(0);
  EXPECT_EQ(m.get_vring_base(0), 0u);  // round trip: the back-end handled everything before
  EXPECT_TRUE(m.close());
}

TEST_F(VhostUserBackendTest, RemovingAndReaddingMemoryKeepsRingsWorking) {
  Master m(backend, queues);
  m.handshake();
  m.start();
  m.post(1, "before", 8);
  ASSERT_EQ(m.wait_reply(1), "erofeb");
  EXPECT_EQ(m.acked(vu::Request::rem_mem_reg, vu::SingleMemoryRegion{0, GuestRam::high()}), 0u);
  const int fd[] = {m.ram.memfd.get()};
  EXPECT_EQ(m.acked(vu::Request::add_mem_reg, vu::SingleMemoryRegion{0, GuestRam::high()}, fd), 0u);
  m.post(1, "after", 8);
  EXPECT_EQ(m.wait_reply(1), "retfa");
  EXPECT_TRUE(m.close());
}

TEST_F(VhostUserBackendTest, DirtyLogMarksRepliesAndUsedRingWhileLogAllIsOn) {
  Master m(backend, queues);
  m.handshake();
  const std::uint64_t features = version_1 | protocol_features | event_idx | indirect_desc;
  EXPECT_NE(m.get_u64(vu::Request::get_features) & vu::bit(vu::feature::log_all), 0u);
  m.start(features);
  // One bit per 4 KiB page up to the end of the high region, as QEMU sizes it.
  const std::uint64_t log_size = (high_gpa + region_size) / 4096 / 8;
  UniqueFd log_fd(::memfd_create("vhost-user-test-log", MFD_CLOEXEC));
  ASSERT_EQ(::ftruncate(log_fd.get(), static_cast<off_t>(log_size)), 0);
  auto* bitmap = static_cast<unsigned char*>(
      ::mmap(nullptr, log_size, PROT_READ | PROT_WRITE, MAP_SHARED, log_fd.get(), 0));
  ASSERT_NE(bitmap, MAP_FAILED);
  auto dirty = [&](std::uint64_t gpa) { return (bitmap[gpa / 4096 / 8] >> (gpa / 4096 % 8) & 1) != 0; };
  UniqueFd log_kick(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  const int kick_fd[] = {log_kick.get()};
  m.send(vu::Request::set_log_fd, {}, kick_fd);

  // QEMU's migration start: SET_LOG_BASE (answered), then features with LOG_ALL.
  const int fd[] = {log_fd.get()};
  m.send_value(vu::Request::set_log_base, vu::LogArea{log_size, 0}, fd);
  auto reply = m.reply(vu::Request::set_log_base);
  ASSERT_TRUE(reply);
  // QEMU waits for this one to be applied (REPLY_ACK) before migrating anything.
  EXPECT_EQ(m.acked(vu::Request::set_features, features | vu::bit(vu::feature::log_all)), 0u);
  m.post(1, "logged", 16);
  ASSERT_EQ(m.wait_reply(1), "deggol");
  const std::uint64_t reply_page = place(1).buffers + 0x800;
  EXPECT_TRUE(dirty(reply_page));
  EXPECT_TRUE(dirty(place(1).used));
  EXPECT_FALSE(dirty(place(2).buffers));  // nothing was written there
  EXPECT_TRUE(Master::wait_fd(log_kick.get(), 5000));

  // Logging off again (acked: the rings were restarted without the log): nothing is marked.
  EXPECT_EQ(m.acked(vu::Request::set_features, features), 0u);
  std::memset(bitmap, 0, log_size);
  m.post(1, "quiet", 16);
  ASSERT_EQ(m.wait_reply(1), "teiuq");
  EXPECT_FALSE(dirty(reply_page));
  EXPECT_FALSE(dirty(place(1).used));
  ::munmap(bitmap, log_size);
  EXPECT_TRUE(m.close());
}

// The back-end signals and waits on eventfds only: a socket as the kick fd (at EOF it would be
// readable forever and read 0 bytes) or a pipe whose reader is gone as the call fd (a write
// raises SIGPIPE) is refused, and the connection ends.
TEST_F(VhostUserBackendTest, FdsThatAreNotEventfdsAreRefused) {
  for (const vu::Request request : {vu::Request::set_vring_kick, vu::Request::set_vring_call}) {
    {
      Master m(backend, queues);
      m.handshake();
      m.start();
      EXPECT_EQ(m.get_vring_base(1), 0u);
      int sv[2];
      if (request == vu::Request::set_vring_kick) {
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
      } else {
        ASSERT_EQ(::pipe2(sv, O_CLOEXEC), 0);
        std::swap(sv[0], sv[1]);  // the write end is sent, the read end closed
      }
      UniqueFd sent(sv[0]);
      ::close(sv[1]);
      m.set_fd(request, 1, sent.get());
      expect_rejected(m, request == vu::Request::set_vring_kick ? "the kick fd is not an eventfd"
                                                                : "the call fd is not an eventfd");
    }
    expect_fresh_connection_works();
  }
}

// A call eventfd that the front-end left at its maximum count (a write there would block until
// someone reads it) does not stop the ring: the interrupt is pending anyway, and requests are
// still served. (The replies are taken off the used ring; the call fd is read only at the end.)
TEST_F(VhostUserBackendTest, CallFdAtItsMaximumCountDoesNotBlockTheRing) {
  Master m(backend, queues);
  m.handshake();
  m.start();
  ASSERT_EQ(::eventfd_write(m.call_fd(1), 0xfffffffffffffffe), 0);
  for (const std::string word : {"first", "second"}) {
    m.post(1, word, 8);
    std::optional<std::string> reply;
    for (int i = 0; i < 500 && !reply; ++i) {
      reply = m.take_reply(1);
      if (!reply) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(reply, std::string(word.rbegin(), word.rend()));
  }
  m.drain_call(1);  // would also free a worker blocked in the write, so that a failure ends
  EXPECT_TRUE(m.close());
}

TEST_F(VhostUserBackendTest, DisconnectAndReconnect) {
  {
    Master m(backend, queues);
    m.handshake();
    m.start();
    m.post(1, "first", 8);
    ASSERT_EQ(m.wait_reply(1), "tsrif");
    // QEMU's shutdown: disable, GET_VRING_BASE, then EOF.
    for (std::uint32_t q = 0; q < queues; ++q)
      m.send_value(vu::Request::set_vring_enable, vu::VringState{q, 0});
    EXPECT_EQ(m.get_vring_base(0), 0u);
    EXPECT_EQ(m.get_vring_base(1), 1u);
    EXPECT_EQ(m.get_vring_base(2), 0u);
    EXPECT_TRUE(m.close());
  }
  expect_fresh_connection_works();
}

TEST_F(VhostUserBackendTest, DisconnectWhileRunningStopsWorkers) {
  {
    Master m(backend, queues);
    m.handshake();
    m.start();
    m.post(2, "x", 4);
    ASSERT_TRUE(m.wait_reply(2));
    EXPECT_TRUE(m.close());  // serve() returns: workers joined, memory unmapped
  }
  expect_fresh_connection_works();
}

TEST_F(VhostUserBackendTest, BrokenRingSignalsErrFdWithoutCrashing) {
  Master m(backend, queues);
  m.handshake();
  m.start();
  m.set_avail_idx(1, 1000);  // more than ring_size ahead: the driver broke the protocol
  m.kick(1);
  EXPECT_TRUE(m.err_fired(1, 5000));
  EXPECT_TRUE(log.contains("queue 1: the driver's ring is invalid"));
  // Other queues keep working.
  m.post(2, "ok", 4);
  EXPECT_EQ(m.wait_reply(2), "ko");
  EXPECT_TRUE(m.close());
}

TEST_F(VhostUserBackendTest, ListenerAcceptsAFrontEnd) {
  fuse_backend::testing::TempDir dir("vhost-user-listener");
  const std::string path = (dir / "vhost.sock").string();
  auto listener = virtio::VhostUserListener::bind(path);
  ASSERT_TRUE(listener);
  // A stale socket file from an earlier run is replaced.
  auto again = virtio::VhostUserListener::bind(path);
  ASSERT_TRUE(again);
  int client = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  path.copy(address.sun_path, path.size());
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  auto connection = again->accept();
  ASSERT_TRUE(connection);
  vu::Channel front(UniqueFd{client});
  auto served = std::async(std::launch::async,
                           [&] { return backend.serve(std::move(*connection)); });
  ASSERT_TRUE(front.send(static_cast<std::uint32_t>(vu::Request::get_queue_num), 0, {}));
  vu::Message reply;
  ASSERT_TRUE(front.receive(reply));
  EXPECT_EQ(reply.payload_as<std::uint64_t>(), queues);
  front.close();
  EXPECT_TRUE(served.get());
  // Not a socket: refused rather than deleted.
  const std::string regular = (dir / "file").string();
  ::close(::open(regular.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  auto refused = virtio::VhostUserListener::bind(regular);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), std::errc::file_exists);
}

// --- malformed and out-of-order messages: a clean disconnect, then a working reconnect --------

TEST_F(VhostUserBackendTest, ShortHeader) {
  {
    Master m(backend, queues);
    const vu::Header h{1, vu::flags::version, 0};
    ASSERT_TRUE(m.channel().send_raw({reinterpret_cast<const std::byte*>(&h), 7}));
    ::shutdown(m.channel().fd(), SHUT_WR);
    expect_rejected(m, "malformed message");
  }
  expect_fresh_connection_works();
}

TEST_F(VhostUserBackendTest, WrongPayloadSize) {
  {
    Master m(backend, queues);
    const std::uint32_t four = 0;
    m.send_value(vu::Request::set_features, four);
    expect_rejected(m, "SET_FEATURES rejected: payload of 4 bytes, expected 8");
  }
  expect_fresh_connection_works();
}

TEST_F(VhostUserBackendTest, UnknownRequestIsAckedWithAnErrorThenDisconnected) {
  {
    Master m(backend, queues);
    ASSERT_TRUE(m.channel().send(99, vu::flags::need_reply, {}));
    vu::Message ack;
    auto got = m.channel().receive(ack);
    ASSERT_TRUE(got && *got);
    EXPECT_NE(ack.payload_as<std::uint64_t>(), 0u);
    expect_rejected(m, "unsupported request 99");
  }
  expect_fresh_connection_works();
}

TEST_F(VhostUserBackendTest, UnofferedRequest) {
  {
    Master m(backend, queues);
    m.send(vu::Request::get_status);  // STATUS was not offered
    expect_rejected(m, "GET_STATUS rejected");
  }
  expect_fresh_connection_works();
}

TEST_F(VhostUserBackendTest, QueueIndexOutOfRange) {
  {
    Master m(backend, queues);
    m.handshake();
    m.send_value(vu::Request::set_vring_num, vu::VringState{queues, 16});
    expect_rejected(m, "queue index 3 out of range");
  }
  expect_fresh_connection_works();
}

TEST_F(VhostUserBackendTest, RingFdIndexOutOfRange) {
  {
    Master m(backend, queues);
    UniqueFd call(::eventfd(0, EFD_CLOEXEC));
    m.set_fd(vu::Request::set_vring_call, 200, call.get());
    expect_rejected(m, "queue index 200 out of range");
  }
  expect_fresh_connection_works();
}

TEST_F(VhostUserBackendTest, MissingKickFd) {
  {
    Master m(backend, queues);
    m.handshake();
    const std::uint64_t index = 1;
    m.send_value(vu::Request::set_vring_kick, index);  // neither an fd nor the no-fd bit
    expect_rejected(m, "SET_VRING_KICK rejected: no fd attached");
  }
  expect_fresh_connection_works();
}

TEST_F(VhostUserBackendTest, MissingMemoryFd) {
  {
    Master m(backend, queues);
    m.handshake();
    m.send_value(vu::Request::add_mem_reg, vu::SingleMemoryRegion{0, GuestRam::low()}, {},
                 vu::flags::need_reply);
    expect_rejected(m, "ADD_MEM_REG rejected: 0 fds attached");
  }
  expect_fresh_connection_works();
}

TEST_F(VhostUserBackendTest, FdOnAMessageThatTakesNone) {
  {
    Master m(backend, queues);
    const int fd[] = {m.ram.memfd.get()};
    m.send_value(vu::Request::set_features, version_1, fd);
    expect_rejected(m, "1 fds attached, expected 0..0");
  }
  expect_fresh_connection_works();
}

TEST_F(VhostUserBackendTest, MemTableRegionCountDisagreesWithSize) {
  {
    Master m(backend, queues);
    struct {
      vu::MemoryTableHeader header{3, 0};
      vu::MemoryRegion regions[1] = {GuestRam::low()};
    } table;
    const int fds[] = {m.ram.memfd.get()};
    m.send_value(vu::Request::set_mem_table, table, fds);
    expect_rejected(m, "3 regions in a 40-byte payload");
  }
  expect_fresh_connection_works();
}

TEST_F(VhostUserBackendTest, RegionBeyondTheFileCannotBeMapped) {
  {
    Master m(backend, queues);
    m.handshake();
    const int fd[] = {m.ram.memfd.get()};
    vu::MemoryRegion huge = GuestRam::low();
    huge.mmap_offset = ~0ULL - 4095;  // offset + size wraps
    EXPECT_NE(m.acked(vu::Request::add_mem_reg, vu::SingleMemoryRegion{0, huge}, fd), 0u);
    expect_rejected(m, "cannot map the region");
  }
  expect_fresh_connection_works();
}

TEST_F(VhostUserBackendTest, VringAddrBeforeMemTable) {
  {
    Master m(backend, queues);
    m.handshake();
    m.send_value(vu::Request::set_vring_addr,
                 vu::VringAddress{1, 0, qemu_va, qemu_va + 0x2000, qemu_va + 0x1000, 0});
    expect_rejected(m, "no guest memory table yet");
  }
  expect_fresh_connection_works();
}

TEST_F(VhostUserBackendTest, VringAddrOutsideMemory) {
  {
    Master m(backend, queues);
    m.handshake();
    m.start();
    m.send_value(vu::Request::set_vring_addr,
                 vu::VringAddress{1, 0, 0x1000, 0x2000, 0x3000, 0});  // guest, not QEMU, addresses
    expect_rejected(m, "ring address 0x1000 is outside guest memory");
  }
  expect_fresh_connection_works();
}

TEST_F(VhostUserBackendTest, RingRunningOffTheEndOfARegion) {
  {
    Master m(backend, queues);
    m.handshake();
    m.start();
    EXPECT_EQ(m.get_vring_base(1), 0u);
    // Used ring in the last 8 bytes of the low region: its 16 elements do not fit.
    const std::uint64_t last = qemu_va + region_size - 8;
    m.send_value(vu::Request::set_vring_addr,
                 vu::VringAddress{1, 0, GuestRam::uva(place(1).desc), last,
                                  GuestRam::uva(place(1).avail), 0});
    UniqueFd kick(::eventfd(0, EFD_CLOEXEC));
    m.set_fd(vu::Request::set_vring_kick, 1, kick.get());
    expect_rejected(m, "queue 1: rings do not fit in guest memory");
  }
  expect_fresh_connection_works();
}

TEST_F(VhostUserBackendTest, RingSizeNotAPowerOfTwo) {
  {
    Master m(backend, queues);
    m.send_value(vu::Request::set_vring_num, vu::VringState{1, 100});
    expect_rejected(m, "ring size 100 is not a power of two");
  }
  expect_fresh_connection_works();
}

TEST_F(VhostUserBackendTest, UnofferedFeatureBits) {
  {
    Master m(backend, queues);
    m.send_value(vu::Request::set_features, version_1 | vu::bit(vu::feature::notify_on_empty));
    expect_rejected(m, "include bits not offered");
  }
  expect_fresh_connection_works();
}

TEST_F(VhostUserBackendTest, KickFdThatCannotBeWaitedOn) {
  {
    Master m(backend, queues);
    m.handshake();
    m.start();
    EXPECT_EQ(m.get_vring_base(1), 0u);
    m.set_fd(vu::Request::set_vring_kick, 1, m.ram.memfd.get());  // a memfd, not an eventfd
    expect_rejected(m, "the kick fd is not an eventfd");
  }
  expect_fresh_connection_works();
}

TEST_F(VhostUserBackendTest, BadVersionFlags) {
  {
    Master m(backend, queues);
    const vu::Header h{1, 0 /* version 0 */, 0};
    ASSERT_TRUE(m.channel().send_raw(vu::as_bytes_of(h)));
    expect_rejected(m, "malformed message");
  }
  expect_fresh_connection_works();
}

// --- FUSE over vhost-user: FsDevice + Server + an in-memory filesystem ------------------------

namespace {

namespace wire = fuse_backend::abi;
using fuse_backend::testing::MessageBuilder;
using fuse_backend::testing::ParsedReply;
using Device = virtio::FsDevice<fuse_backend::testing::MemoryFs>;

ParsedReply parse(const std::optional<std::string>& bytes) {
  if (!bytes) return {};
  return ParsedReply::parse(std::as_bytes(std::span(bytes->data(), bytes->size())));
}

}  // namespace

TEST(VhostUserFs, FuseRequestsOnHiprioAndBothRequestQueues) {
  fuse_backend::testing::MemoryFs fs;
  Device::Server server(fs);
  Device device(server, *virtio::FsConfig::make("myfs", 2));
  LogCapture log;
  virtio::VhostUserBackend backend(device, log.options());
  ASSERT_EQ(device.queue_count(), 3u);
  Master m(backend, 3);
  m.handshake();
  m.start();

  m.post(1, fuse_backend::testing::init_request(7, 38, 0), 256);
  const auto init = parse(m.wait_reply(1));
  ASSERT_EQ(init.error(), 0) << log.all();
  EXPECT_EQ(init.header.unique, 1u);
  EXPECT_EQ(init.as<wire::init_out>().major, 7u);

  // A request on the second request queue is answered there.
  m.post(2, MessageBuilder(wire::opcode::mkdir, 1, 2).add(wire::mkdir_in{0755, 0}).name("dir").build(),
         256);
  const auto made = parse(m.wait_reply(2));
  ASSERT_EQ(made.error(), 0);
  EXPECT_EQ(made.header.unique, 2u);
  const auto dir = made.as<wire::entry_out>().nodeid;
  EXPECT_NE(dir, 0u);

  m.post(1, MessageBuilder(wire::opcode::lookup, 1, 3).name("dir").build(), 256);
  const auto found = parse(m.wait_reply(1));
  ASSERT_EQ(found.error(), 0);
  EXPECT_EQ(found.as<wire::entry_out>().nodeid, dir);

  // FORGET on the hiprio queue has no reply, but its chain still comes back, with 0 bytes.
  m.post(0, MessageBuilder(wire::opcode::forget, dir, 4).add(wire::forget_in{2}).build(), 0);
  EXPECT_EQ(m.wait_reply(0), std::string());

  // A request whose chain cannot hold a reply header is returned with 0 bytes, not dropped.
  m.post(1, MessageBuilder(wire::opcode::getattr, 1, 5).add(wire::getattr_in{}).build(), 8);
  EXPECT_EQ(m.wait_reply(1), std::string());

  EXPECT_EQ(m.get_vring_base(0), 1u);
  EXPECT_EQ(m.get_vring_base(1), 3u);
  EXPECT_EQ(m.get_vring_base(2), 1u);
  EXPECT_TRUE(m.close());
  EXPECT_EQ(backend.queue_stats(2).chains, 1u);
}

// With a thread pool, requests posted together on one queue are served concurrently; every one
// comes back (in any order) with its own reply, signalled from the pool threads, and
// GET_VRING_BASE returns only once all are back.
TEST(VhostUserFs, ThreadPoolServesAQueueConcurrently) {
  fuse_backend::testing::MemoryFs fs;
  Device::Server server(fs);
  Device device(server, *virtio::FsConfig::make("myfs", 2), {.log = {}, .thread_pool_size = 3});
  LogCapture log;
  virtio::VhostUserBackend backend(device, log.options());
  Master m(backend, 3);
  m.handshake();
  m.start();
  m.post(1, fuse_backend::testing::init_request(7, 38, 0), 256);
  ASSERT_EQ(parse(m.wait_reply(1)).error(), 0) << log.all();

  constexpr std::uint64_t count = ring_size / 2;  // every descriptor pair of the ring in use
  for (std::uint64_t unique = 10; unique < 10 + count; ++unique)
    m.post(1, MessageBuilder(wire::opcode::mkdir, 1, unique).add(wire::mkdir_in{0755, 0})
                  .name("d" + std::to_string(unique)).build(), 256);
  std::vector<std::uint64_t> uniques;
  for (std::uint64_t i = 0; i < count; ++i) {
    const auto reply = m.wait_reply(1);
    ASSERT_TRUE(reply && reply->size() > sizeof(wire::out_header)) << i << log.all();
    const auto made = parse(reply);
    ASSERT_EQ(made.error(), 0) << i << log.all();
    uniques.push_back(made.header.unique);
  }
  std::sort(uniques.begin(), uniques.end());
  for (std::uint64_t i = 0; i < count; ++i) EXPECT_EQ(uniques[i], 10 + i);
  EXPECT_EQ(m.get_vring_base(1), 1u + count);
  EXPECT_TRUE(m.close());
  EXPECT_EQ(backend.queue_stats(1).chains, 1u + count);
}
