// VhostUserBackend: vhost-user message handling, ring lifecycle and ring worker threads.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/transport/virtio/vhost_user_backend.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <thread>

#include <fmt/format.h>

#include <fuse_backend/detail/status_flags.hpp>
#include <fuse_backend/detail/syscall.hpp>
#include <fuse_backend/transport/virtio/vhost_user_channel.hpp>

namespace fuse_backend::transport::virtio {

namespace vu = vhost_user;
using detail::UniqueFd;

namespace {

constexpr std::uint32_t max_ring_size = 32768;  // split virtqueue limit

constexpr std::uint64_t offered_protocol_features =
    vu::bit(vu::protocol_feature::mq) | vu::bit(vu::protocol_feature::log_shmfd) |
    vu::bit(vu::protocol_feature::reply_ack) |
    vu::bit(vu::protocol_feature::backend_req) |
    vu::bit(vu::protocol_feature::configure_mem_slots);

// Requests answered with their own reply message; every other NEED_REPLY gets a u64 ack.
constexpr bool has_own_reply(vu::Request request) noexcept {
  switch (request) {
    case vu::Request::get_features:
    case vu::Request::get_protocol_features:
    case vu::Request::get_vring_base:
    case vu::Request::get_queue_num:
    case vu::Request::get_max_mem_slots:
    case vu::Request::set_log_base:  // LOG_SHMFD: QEMU waits for a SET_LOG_BASE reply
      return true;
    default:
      return false;
  }
}

// How many fds a request may carry (min, max). The ring fd requests are checked against their
// no-fd bit separately.
struct FdRule {
  std::size_t min;
  std::size_t max;
};
constexpr FdRule fd_rule(vu::Request request) noexcept {
  switch (request) {
    case vu::Request::set_mem_table:
      return {1, vu::max_mem_table_regions};
    case vu::Request::add_mem_reg:
    case vu::Request::set_backend_req_fd:
    case vu::Request::set_log_base:
    case vu::Request::set_log_fd:
      return {1, 1};
    case vu::Request::set_vring_kick:
    case vu::Request::set_vring_call:
    case vu::Request::set_vring_err:
    case vu::Request::rem_mem_reg:  // some front-ends attach the region's fd; it is not needed
      return {0, 1};
    default:
      return {0, 0};
  }
}

void default_log(std::string_view line) {
  std::fprintf(stderr, "vhost-user: %.*s\n", static_cast<int>(line.size()), line.data());
}

// Every fd the back-end signals or waits on (kick, call, err, log) is a non-blocking eventfd
// (take_eventfd): at its maximum count, which a hostile front-end can leave it at, the write
// fails with EAGAIN instead of blocking, and the fd is readable anyway, so nothing is lost.
void signal_eventfd(int fd) noexcept { (void)::eventfd_write(fd, 1); }

// Whether `fd` is an eventfd: the kernel names its anonymous inode so.
bool is_eventfd(int fd) noexcept {
  char target[32];
  const std::string link = fmt::format("/proc/self/fd/{}", fd);
  const ssize_t n = ::readlink(link.c_str(), target, sizeof target);
  return n > 0 && std::string_view(target, static_cast<std::size_t>(n)) == "anon_inode:[eventfd]";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// One front-end connection: all protocol state lives here and dies with it.

struct VhostUserBackend::Connection final : QueueSignal {
  struct Ring {
    std::uint32_t size = 0;
    bool has_address = false;
    vu::VringAddress address{};
    std::uint16_t base = 0;
    UniqueFd kick;
    UniqueFd call;
    UniqueFd err;
    bool enabled = false;
    bool kicked = false;  // SET_VRING_KICK seen and no GET_VRING_BASE since: the ring is started
    bool running = false;  // device queue started and worker thread alive
    UniqueFd stop;         // eventfd telling the worker to return
    UniqueFd epoll;
    std::thread worker;
  };

  VhostUserBackend& backend;
  vu::Channel channel;
  vu::Message message;
  std::vector<Ring> rings;
  SharedGuestMemory memory;
  bool memory_set = false;
  std::uint64_t acked_features = 0;
  std::uint64_t acked_protocol_features = 0;
  UniqueFd backend_requests;  // SET_SLAVE_REQ_FD: kept for the device's future use
  // Migration: the dirty-page log (SET_LOG_BASE), applied to guest memory while LOG_ALL is
  // negotiated, and the eventfd kicked after logged writes (SET_LOG_FD).
  std::shared_ptr<const DirtyLog> dirty_log;
  UniqueFd log_kick;

  Connection(VhostUserBackend& owner, UniqueFd socket)
      : backend(owner), channel(std::move(socket)), rings(owner.device_.queue_count()) {}
  ~Connection() { teardown(); }

  // Completions from the device's own threads (a pool) between start_queue and stop_queue: the
  // ring's call fd and the log fd cannot change meanwhile (changing them stops the ring first).
  void completed(std::size_t index, std::size_t chains, bool notify) noexcept override {
    backend.counters_[index].chains.fetch_add(chains, std::memory_order_relaxed);
    const Ring& ring = rings[index];
    if (notify && ring.call) signal_eventfd(ring.call.get());
    if (chains > 0 && log_kick && memory.load()->logging()) signal_eventfd(log_kick.get());
  }

  template <class... Args>
  void log(fmt::format_string<Args...> format, Args&&... args) const {
    const std::string line = fmt::format(format, std::forward<Args>(args)...);
    if (backend.options_.log)
      backend.options_.log(line);
    else
      default_log(line);
  }

  // A protocol violation: logged with the request name, answered (if the front-end waits for an
  // ack) and turned into a disconnect by serve().
  Failure reject(std::errc code, std::string_view why) const {
    log("{} rejected: {}; disconnecting", vu::request_name(message.request()), why);
    return fail(code);
  }

  // The message's fd as a non-blocking eventfd (see signal_eventfd); anything else is refused:
  // a write to a hostile front-end's pipe or socket would raise SIGPIPE or block, a read of a
  // blocking fd the front-end drained first would block the ring's thread for good.
  Result<UniqueFd> take_eventfd(std::string_view role) {
    UniqueFd fd = message.take_fd();
    if (!is_eventfd(fd.get()))
      return reject(std::errc::invalid_argument, fmt::format("the {} fd is not an eventfd", role));
    if (auto made = detail::set_status_flag(fd.get(), O_NONBLOCK, true); !made)
      return reject(made.error(), fmt::format("cannot make the {} fd non-blocking", role));
    return fd;
  }

  bool ring_should_run(const Ring& ring) const noexcept {
    const bool enabled =
        ring.enabled || (acked_features & vu::bit(vu::feature::protocol_features)) == 0;
    return ring.kicked && enabled && ring.size != 0 && ring.has_address && memory_set;
  }

  // Stops ring `index`'s worker and the device queue, keeping its position in `base`.
  void pause(std::size_t index) noexcept {
    Ring& ring = rings[index];
    if (!ring.running) return;
    signal_eventfd(ring.stop.get());
    ring.worker.join();
    ring.stop.reset();
    ring.epoll.reset();
    ring.base = backend.device_.stop_queue(index);
    ring.running = false;
  }

  void pause_all() noexcept {
    for (std::size_t i = 0; i < rings.size(); ++i) pause(i);
  }

  // Starts ring `index` if everything it needs has arrived.
  Result<void> resume(std::size_t index) noexcept {
    Ring& ring = rings[index];
    if (ring.running || !ring_should_run(ring)) return {};
    const auto snapshot = memory.load();
    VringConfig config;
    config.size = static_cast<std::uint16_t>(ring.size);
    config.next_available = ring.base;
    config.event_idx = (acked_features & vu::bit(vu::feature::event_idx)) != 0;
    config.indirect = (acked_features & vu::bit(vu::feature::indirect_desc)) != 0;
    auto descriptors = snapshot->user_to_guest(ring.address.descriptor);
    auto available = snapshot->user_to_guest(ring.address.available);
    auto used = snapshot->user_to_guest(ring.address.used);
    if (!descriptors || !available || !used)
      return reject(std::errc::bad_address,
                    fmt::format("queue {}: ring address outside guest memory", index));
    config.descriptor_table = *descriptors;
    config.available_ring = *available;
    config.used_ring = *used;
    if (auto started = backend.device_.start_queue(index, config, snapshot, *this); !started)
      return reject(started.error(),
                    fmt::format("queue {}: rings do not fit in guest memory (size {})", index,
                                ring.size));

    // From here on a failure must also stop the device queue again.
    auto undo = [&](std::string_view what) {
      ring.stop.reset();
      ring.epoll.reset();
      ring.base = backend.device_.stop_queue(index);
      return reject(std::errc::invalid_argument, fmt::format("queue {}: {}", index, what));
    };
    auto stop = detail::syscall_result<int>([] { return ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); });
    auto epoll = detail::syscall_result<int>([] { return ::epoll_create1(EPOLL_CLOEXEC); });
    if (stop) ring.stop.reset(*stop);
    if (epoll) ring.epoll.reset(*epoll);
    if (!stop || !epoll) return undo("cannot create eventfd/epoll");
    if (!watch(ring.epoll.get(), ring.stop.get(), stop_token) ||
        !watch(ring.epoll.get(), ring.kick.get(), kick_token))
      return undo("kick fd cannot be waited on (not an eventfd?)");
    try {
      ring.worker = std::thread([this, index] { run_ring(index); });
    } catch (const std::exception&) {
      return undo("cannot start the worker thread");
    }
    ring.running = true;
    backend.counters_[index].starts.fetch_add(1, std::memory_order_relaxed);
    return {};
  }

  Result<void> resume_all() noexcept {
    for (std::size_t i = 0; i < rings.size(); ++i)
      if (auto r = resume(i); !r) return r;
    return {};
  }

  static constexpr std::uint32_t stop_token = 0;
  static constexpr std::uint32_t kick_token = 1;

  static Result<void> watch(int epoll, int fd, std::uint32_t token) noexcept {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u32 = token;
    return detail::syscall_void([&] { return ::epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event); });
  }

  // Waits for a kick (consumed) or the stop event; false on stop. The kick fd is a non-blocking
  // eventfd (take_eventfd), whose read fails only with EAGAIN; should it fail otherwise while
  // signalling, it is dropped from the wait set rather than spun on, after which only the stop
  // event ends the wait.
  bool wait_for_kick(std::size_t index, const Ring& ring) noexcept {
    for (;;) {
      epoll_event events[2];
      auto n = detail::syscall_result<int>(
          [&] { return ::epoll_wait(ring.epoll.get(), events, 2, -1); });
      if (!n) return false;
      for (int i = 0; i < *n; ++i)
        if (events[i].data.u32 == stop_token) return false;
      std::uint64_t count;
      auto got = detail::syscall_result<std::size_t>(
          [&] { return ::read(ring.kick.get(), &count, sizeof count); });
      if (got && *got == sizeof count) return true;
      // The front-end read the kick itself since the wait ended: nothing to do yet.
      if (!got && got.error() == std::errc::resource_unavailable_try_again) continue;
      log("queue {}: the kick fd cannot be read; the ring waits for reconfiguration", index);
      (void)detail::syscall_void(
          [&] { return ::epoll_ctl(ring.epoll.get(), EPOLL_CTL_DEL, ring.kick.get(), nullptr); });
    }
  }

  // Worker thread of one ring: process, notify, wait for a kick or the stop event (after a pass
  // cut short at a ring's worth of chains, only look for the stop event and go on). A ring the
  // device found broken is not served again until it is reconfigured (kicks are drained).
  void run_ring(std::size_t index) noexcept {
    Ring& ring = rings[index];
    bool broken = false;
    bool more = false;
    do {
      more = false;
      if (broken) continue;
      const auto snapshot = memory.load();
      const QueueRun run = backend.device_.process_queue(index, snapshot);
      more = run.more;
      backend.counters_[index].chains.fetch_add(run.chains, std::memory_order_relaxed);
      if (run.notify && ring.call) signal_eventfd(ring.call.get());
      if (run.chains > 0 && snapshot->logging() && log_kick)
        signal_eventfd(log_kick.get());
      if (run.failed) {
        broken = true;
        log("queue {}: the driver's ring is invalid; queue stopped until reconfigured", index);
        if (ring.err) signal_eventfd(ring.err.get());
      }
    } while (more ? !stop_requested(ring) : wait_for_kick(index, ring));
  }

  // Whether pause() asked the ring's worker to return (the stop event stays set).
  static bool stop_requested(const Ring& ring) noexcept {
    pollfd stop{ring.stop.get(), POLLIN, 0};
    return ::poll(&stop, 1, 0) > 0;
  }

  void teardown() noexcept {
    pause_all();
    for (Ring& ring : rings) ring = Ring{};
    memory.store(GuestMemory{});
    memory_set = false;
    dirty_log.reset();
    log_kick.reset();
    backend_requests.reset();
    channel.close();
  }

  // -------------------------------------------------------------------------------------------
  // Replies

  Result<void> reply(std::span<const std::byte> payload) noexcept {
    auto sent = channel.send(message.header.request, vu::flags::reply, payload);
    if (!sent) log("cannot send the {} reply: {}", vu::request_name(message.request()),
                   std::make_error_code(sent.error()).message());
    return sent;
  }
  Result<void> reply_u64(std::uint64_t value) noexcept { return reply(vu::as_bytes_of(value)); }

  // -------------------------------------------------------------------------------------------
  // Dispatch

  Result<void> check_shape() {
    const auto rule = vu::payload_size_rule(message.request());
    const std::uint32_t size = message.header.size;
    using K = vu::PayloadRule::Kind;
    switch (rule.kind) {
      case K::any:
        return reject(std::errc::function_not_supported,
                      fmt::format("unsupported request {}", message.header.request));
      case K::exact:
        if (size != rule.bytes)
          return reject(std::errc::protocol_error,
                        fmt::format("payload of {} bytes, expected {}", size, rule.bytes));
        break;
      case K::empty_or_exact:
        if (size != 0 && size != rule.bytes)
          return reject(std::errc::protocol_error,
                        fmt::format("payload of {} bytes, expected 0 or {}", size, rule.bytes));
        break;
      case K::at_least:
        if (size < rule.bytes)
          return reject(std::errc::protocol_error,
                        fmt::format("payload of {} bytes, expected at least {}", size, rule.bytes));
        break;
    }
    const auto fds = fd_rule(message.request());
    if (message.fd_count < fds.min || message.fd_count > fds.max)
      return reject(std::errc::protocol_error,
                    fmt::format("{} fds attached, expected {}..{}", message.fd_count, fds.min,
                                fds.max));
    return {};
  }

  Result<std::size_t> queue_index(std::uint64_t index) {
    if (index >= rings.size())
      return reject(std::errc::invalid_argument,
                    fmt::format("queue index {} out of range (device has {} queues)", index,
                                rings.size()));
    return static_cast<std::size_t>(index);
  }

  Result<void> handle() {
    if (auto shape = check_shape(); !shape) return shape;
    switch (message.request()) {
      case vu::Request::get_features:
        return reply_u64(offered_features());
      case vu::Request::set_features:
        return set_features(message.payload_as<std::uint64_t>());
      case vu::Request::get_protocol_features:
        return reply_u64(offered_protocol_features);
      case vu::Request::set_protocol_features: {
        const auto features = message.payload_as<std::uint64_t>();
        if ((features & ~offered_protocol_features) != 0)
          return reject(std::errc::invalid_argument,
                        fmt::format("protocol features {:#x} were not offered", features));
        acked_protocol_features = features;
        return {};
      }
      case vu::Request::set_owner:
        return {};
      case vu::Request::reset_owner:
        pause_all();
        for (Ring& ring : rings) ring = Ring{};
        acked_features = 0;
        return {};
      case vu::Request::get_queue_num:
        return reply_u64(rings.size());
      case vu::Request::get_max_mem_slots:
        return reply_u64(vu::max_mem_slots);
      case vu::Request::set_mem_table:
        return set_mem_table();
      case vu::Request::add_mem_reg:
        return add_mem_reg();
      case vu::Request::rem_mem_reg:
        return rem_mem_reg();
      case vu::Request::set_vring_num:
        return set_vring_num();
      case vu::Request::set_vring_addr:
        return set_vring_addr();
      case vu::Request::set_vring_base:
        return set_vring_base();
      case vu::Request::get_vring_base:
        return get_vring_base();
      case vu::Request::set_vring_kick:
      case vu::Request::set_vring_call:
      case vu::Request::set_vring_err:
        return set_vring_fd();
      case vu::Request::set_vring_enable:
        return set_vring_enable();
      case vu::Request::set_backend_req_fd:
        backend_requests = message.take_fd();
        return {};
      case vu::Request::set_log_base:
        return set_log_base();
      case vu::Request::set_log_fd: {
        auto fd = take_eventfd("log");
        if (!fd) return fail(fd.error());
        pause_all();  // workers use the fd: swap it while they are stopped
        log_kick = std::move(*fd);
        return resume_all();
      }
      default:
        return reject(std::errc::function_not_supported,
                      "request not offered by this back-end");
    }
  }

  std::uint64_t offered_features() const noexcept {
    return backend.device_.device_features() | vu::bit(vu::feature::protocol_features) |
           vu::bit(vu::feature::log_all);
  }

  bool logging() const noexcept {
    return (acked_features & vu::bit(vu::feature::log_all)) != 0 && dirty_log != nullptr;
  }
  // `next` with the dirty log attached while logging is on (and detached otherwise).
  GuestMemory with_logging(const GuestMemory& next) const noexcept {
    return next.with_dirty_log(logging() ? dirty_log : nullptr);
  }

  Result<void> set_log_base() {
    const auto area = message.payload_as<vu::LogArea>();
    auto log = DirtyLog::map(message.take_fd().release(), area.mmap_size, area.mmap_offset);
    if (!log)
      return reject(log.error(), fmt::format("cannot map the dirty log ({} bytes at offset {:#x})",
                                             area.mmap_size, area.mmap_offset));
    // Queue threads switch to the new snapshot (and log) at their next pass; the old log stays
    // mapped while a running pass still holds the old snapshot.
    dirty_log = std::move(*log);
    memory.store(with_logging(*memory.load()));
    return reply_u64(0);
  }

  Result<void> set_features(std::uint64_t features) {
    if ((features & ~offered_features()) != 0)
      return reject(std::errc::invalid_argument,
                    fmt::format("features {:#x} include bits not offered ({:#x})", features,
                                offered_features()));
    // Ring layout options (EVENT_IDX) change how running rings are served: restart them.
    // LOG_ALL switches dirty logging on or off.
    pause_all();
    acked_features = features;
    memory.store(with_logging(*memory.load()));
    return resume_all();
  }

  Result<void> replace_memory(Result<GuestMemory> next) {
    if (!next)
      return reject(next.error(), "invalid memory region (empty, overlapping or unmappable)");
    pause_all();
    memory.store(with_logging(*next));
    memory_set = !memory.load()->regions().empty();
    return resume_all();
  }

  Result<void> set_mem_table() {
    const auto table = message.payload_as<vu::MemoryTableHeader>();
    if (table.region_count == 0 || table.region_count > vu::max_mem_table_regions ||
        message.header.size != sizeof(vu::MemoryTableHeader) +
                                   table.region_count * sizeof(vu::MemoryRegion))
      return reject(std::errc::protocol_error,
                    fmt::format("{} regions in a {}-byte payload", table.region_count,
                                message.header.size));
    if (message.fd_count != table.region_count)
      return reject(std::errc::protocol_error,
                    fmt::format("{} fds for {} regions", message.fd_count, table.region_count));
    std::vector<GuestRegion> regions;
    for (std::size_t i = 0; i < table.region_count; ++i) {
      const auto r = message.payload_as<vu::MemoryRegion>(sizeof(vu::MemoryTableHeader) +
                                                         i * sizeof(vu::MemoryRegion));
      auto region = map_region(message.take_fd(i).release(), r.guest_phys_addr, r.memory_size,
                               r.userspace_addr, r.mmap_offset);
      if (!region)
        return reject(region.error(),
                      fmt::format("cannot map region {} (gpa {:#x}, {} bytes, offset {:#x})", i,
                                  r.guest_phys_addr, r.memory_size, r.mmap_offset));
      regions.push_back(std::move(*region));
    }
    return replace_memory(GuestMemory::create(std::move(regions)));
  }

  Result<void> add_mem_reg() {
    const auto r = message.payload_as<vu::SingleMemoryRegion>().region;
    const auto current = memory.load();
    if (current->regions().size() >= vu::max_mem_slots)
      return reject(std::errc::no_space_on_device, "all memory slots are in use");
    auto region = map_region(message.take_fd().release(), r.guest_phys_addr, r.memory_size,
                             r.userspace_addr, r.mmap_offset);
    if (!region)
      return reject(region.error(),
                    fmt::format("cannot map the region (gpa {:#x}, {} bytes, offset {:#x})",
                                r.guest_phys_addr, r.memory_size, r.mmap_offset));
    return replace_memory(current->with_region(std::move(*region)));
  }

  Result<void> rem_mem_reg() {
    const auto r = message.payload_as<vu::SingleMemoryRegion>().region;
    return replace_memory(memory.load()->without_region(r.guest_phys_addr, r.memory_size));
  }

  Result<void> set_vring_num() {
    const auto state = message.payload_as<vu::VringState>();
    auto index = queue_index(state.index);
    if (!index) return fail(index.error());
    if (state.num == 0 || state.num > max_ring_size || (state.num & (state.num - 1)) != 0)
      return reject(std::errc::invalid_argument,
                    fmt::format("ring size {} is not a power of two in 1..{}", state.num,
                                max_ring_size));
    Ring& ring = rings[*index];
    if (ring.running)
      return reject(std::errc::device_or_resource_busy, "the ring is running");
    ring.size = state.num;
    return resume(*index);
  }

  Result<void> set_vring_addr() {
    const auto address = message.payload_as<vu::VringAddress>();
    auto index = queue_index(address.index);
    if (!index) return fail(index.error());
    if (!memory_set) return reject(std::errc::protocol_error, "no guest memory table yet");
    const auto snapshot = memory.load();
    for (const std::uint64_t uva : {address.descriptor, address.available, address.used})
      if (!snapshot->user_to_guest(uva))
        return reject(std::errc::bad_address,
                      fmt::format("ring address {:#x} is outside guest memory", uva));
    pause(*index);
    rings[*index].address = address;
    rings[*index].has_address = true;
    return resume(*index);
  }

  Result<void> set_vring_base() {
    const auto state = message.payload_as<vu::VringState>();
    auto index = queue_index(state.index);
    if (!index) return fail(index.error());
    if (state.num > 0xffff)
      return reject(std::errc::invalid_argument,
                    fmt::format("ring base {} does not fit a 16-bit index", state.num));
    Ring& ring = rings[*index];
    if (ring.running) return reject(std::errc::device_or_resource_busy, "the ring is running");
    ring.base = static_cast<std::uint16_t>(state.num);
    return resume(*index);
  }

  Result<void> get_vring_base() {
    const auto state = message.payload_as<vu::VringState>();
    auto index = queue_index(state.index);
    if (!index) return fail(index.error());
    Ring& ring = rings[*index];
    // The spec: GET_VRING_BASE stops the ring; it restarts on the next SET_VRING_KICK.
    pause(*index);
    ring.kicked = false;
    ring.kick.reset();
    const vu::VringState reply_state{state.index, ring.base};
    return reply(vu::as_bytes_of(reply_state));
  }

  Result<void> set_vring_fd() {
    const auto payload = message.payload_as<std::uint64_t>();
    auto index = queue_index(payload & vu::vring_index_mask);
    if (!index) return fail(index.error());
    if ((payload & ~(vu::vring_index_mask | vu::vring_nofd_mask)) != 0)
      return reject(std::errc::invalid_argument,
                    fmt::format("unknown bits in payload {:#x}", payload));
    const bool no_fd = (payload & vu::vring_nofd_mask) != 0;
    if (no_fd != (message.fd_count == 0))
      return reject(std::errc::protocol_error,
                    no_fd ? "an fd attached despite the no-fd bit" : "no fd attached");
    const vu::Request request = message.request();
    // Polling rings (no kick fd) are not supported: this back-end sleeps on the kick.
    if (request == vu::Request::set_vring_kick && no_fd)
      return reject(std::errc::function_not_supported, "polling mode (no kick fd)");
    UniqueFd fd;
    if (!no_fd) {
      auto taken = take_eventfd(request == vu::Request::set_vring_kick   ? "kick"
                                : request == vu::Request::set_vring_call ? "call"
                                                                         : "err");
      if (!taken) return fail(taken.error());
      fd = std::move(*taken);
    }
    Ring& ring = rings[*index];
    pause(*index);
    switch (request) {
      case vu::Request::set_vring_kick:
        ring.kick = std::move(fd);
        ring.kicked = true;
        break;
      case vu::Request::set_vring_call:
        ring.call = std::move(fd);
        break;
      default:
        ring.err = std::move(fd);
        break;
    }
    return resume(*index);
  }

  Result<void> set_vring_enable() {
    const auto state = message.payload_as<vu::VringState>();
    auto index = queue_index(state.index);
    if (!index) return fail(index.error());
    if (state.num > 1)
      return reject(std::errc::invalid_argument, fmt::format("enable value {}", state.num));
    pause(*index);
    rings[*index].enabled = state.num == 1;
    return resume(*index);
  }

  // Runs the connection; see VhostUserBackend::serve.
  Result<void> run() {
    for (;;) {
      auto received = channel.receive(message);
      if (!received) {
        log("malformed message ({}); disconnecting",
            std::make_error_code(received.error()).message());
        return fail(received.error());
      }
      if (!*received) return {};  // the front-end closed the connection
      if (backend.options_.trace)
        log("<- {} flags {:#x} size {} fds {}", vu::request_name(message.request()),
            message.header.flags, message.header.size, message.fd_count);
      const bool wants_ack = (message.header.flags & vu::flags::need_reply) != 0 &&
                             !has_own_reply(message.request());
      auto handled = handle();
      if (wants_ack) {
        const std::uint64_t status = handled ? 0 : static_cast<std::uint64_t>(handled.error());
        if (auto acked = reply_u64(status); !acked && handled) handled = acked;
      }
      if (!handled) return handled;
    }
  }
};

// ---------------------------------------------------------------------------------------------

VhostUserBackend::VhostUserBackend(VirtioDevice& device, VhostUserBackendOptions options)
    : device_(device),
      options_(std::move(options)),
      counters_(std::make_unique<Counters[]>(device.queue_count())) {}

VhostUserBackend::~VhostUserBackend() = default;

Result<void> VhostUserBackend::serve(UniqueFd connection) noexcept {
  try {
    Connection state(*this, std::move(connection));
    return state.run();
  } catch (const std::exception& e) {  // allocation failure in logging or setup
    default_log(e.what());
    return fail(std::errc::not_enough_memory);
  }
}

VhostUserBackend::QueueStats VhostUserBackend::queue_stats(std::size_t index) const noexcept {
  if (index >= device_.queue_count()) return {};
  return {counters_[index].chains.load(std::memory_order_relaxed),
          counters_[index].starts.load(std::memory_order_relaxed)};
}

// ---------------------------------------------------------------------------------------------

Result<VhostUserListener> VhostUserListener::bind(std::string path) noexcept {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path))
    return fail(std::errc::filename_too_long);
  path.copy(address.sun_path, path.size());
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return fail(std::errc::file_exists);
    if (auto removed = detail::syscall_void([&] { return ::unlink(path.c_str()); }); !removed)
      return fail(removed.error());
  }
  auto fd = detail::syscall_result<int>(
      [] { return ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0); });
  if (!fd) return fail(fd.error());
  UniqueFd socket(*fd);
  if (auto bound = detail::syscall_void([&] {
        return ::bind(socket.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);
      });
      !bound)
    return fail(bound.error());
  if (auto listening = detail::syscall_void([&] { return ::listen(socket.get(), 1); });
      !listening) {
    ::unlink(path.c_str());
    return fail(listening.error());
  }
  return VhostUserListener(std::move(socket), std::move(path));
}

VhostUserListener::~VhostUserListener() {
  if (fd_) ::unlink(path_.c_str());
}

Result<UniqueFd> VhostUserListener::accept() noexcept {
  auto fd = detail::syscall_result<int>(
      [&] { return ::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC); });
  if (!fd) return fail(fd.error());
  return UniqueFd(*fd);
}

}  // namespace fuse_backend::transport::virtio
