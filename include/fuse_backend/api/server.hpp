// Server<Transport, Fs>: decodes one FUSE request, calls the filesystem, encodes the reply.
//
// Layer: api. The only place where a transport meets a filesystem; instantiated once per
// transport (/dev/fuse channel, virtio descriptor chains, the tests' memory transport).
//
// Contract:
// - Every request is untrusted. Nothing is read past in_header.len nor past what the transport
//   holds; a name is a string only once its NUL was found inside the request; a length field
//   that disagrees with the bytes present gets EINVAL. A message too short to carry a header is
//   dropped (there is no request id to answer). Ops without a reply (FORGET, BATCH_FORGET,
//   INTERRUPT, NOTIFY_REPLY) are never answered, malformed or not.
// - Unknown opcodes and ops the filesystem lacks get ENOSYS; errno values outside 1..511 go out
//   as EIO (the kernel rejects replies with error <= -512). An exception escaping the filesystem
//   is answered EIO.
// - INIT negotiates flags = offered by the kernel ∩ possible for this filesystem (its SupportsX
//   ops, or its init()) ∩ enabled in ServerOptions. Kernels older than 7.27 are refused (EPROTO);
//   a major above 7 gets our version so the kernel retries with 7. A second INIT (a virtio-fs
//   guest that rebooted or remounted) destroys the previous session's state first.
// - Thread-safe: one Server serves all worker threads; handle() allocates nothing.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/abi/opcode_table.hpp>
#include <fuse_backend/api/context.hpp>
#include <fuse_backend/api/detail/byte_cursor.hpp>
#include <fuse_backend/api/detail/dir_packer.hpp>
#include <fuse_backend/api/detail/inflight_requests.hpp>
#include <fuse_backend/api/detail/wire_encoding.hpp>
#include <fuse_backend/api/filesystem.hpp>
#include <fuse_backend/api/init_flags.hpp>
#include <fuse_backend/api/observer.hpp>
#include <fuse_backend/api/transport.hpp>
#include <fuse_backend/result.hpp>

namespace fuse_backend::api {

struct ServerOptions {
  // Largest WRITE (and READ) payload, rounded down to whole 4 KiB pages; transports size their
  // buffers with Server::buffer_size().
  std::uint32_t max_write = 1u << 20;
  std::uint32_t max_readahead = 1u << 20;
  std::uint16_t max_background = 64;
  std::uint16_t congestion_threshold = 48;
  // Mask of abi::init_flags the user allows; the default allows everything possible.
  std::uint64_t enabled_init_flags = ~std::uint64_t{0};
  // Flags the transport itself implements, taken whenever the kernel offers them, whatever the
  // filesystem says (fusedev's io_uring service sets FUSE_OVER_IO_URING).
  std::uint64_t transport_init_flags = 0;
  // Reported with FUSE_PASSTHROUGH: how deep stacked filesystems may be below backing files.
  std::uint32_t max_stack_depth = 1;
  RequestObserver* observer = nullptr;
  // SETUPMAPPING / REMOVEMAPPING go here (virtio-fs DAX); none means ENOSYS.
  DaxMapper* dax_mapper = nullptr;
};

enum class Disposition {
  replied,   // a reply was committed
  no_reply,  // the op takes no reply (the transport still completes the request, e.g. virtio)
  dropped,   // too malformed to answer (no complete header)
};

namespace detail {

// Wire limits the kernel itself never exceeds.
inline constexpr std::size_t max_symlink_target = 4096;  // PATH_MAX, with its NUL
inline constexpr std::size_t max_xattr_name = 255;       // XATTR_NAME_MAX
inline constexpr std::size_t max_xattr_size = 65536;     // XATTR_SIZE_MAX
inline constexpr std::uint32_t min_kernel_minor = 27;    // oldest protocol served (Linux 4.20)
inline constexpr std::size_t max_supplementary_groups = 32;

constexpr int wire_errno(std::errc error) noexcept {
  const int value = static_cast<int>(error);
  return value >= 1 && value <= 511 ? value : EIO;
}

// Thread-local scratch for replies that need contiguous bytes before they are sent (readlink,
// getxattr, listxattr, ioctl output). Allocated once per thread, never per request.
inline std::span<std::byte> scratch_buffer() noexcept {
  alignas(8) thread_local std::array<std::byte, max_xattr_size> buffer;
  return buffer;
}

// Caps what a filesystem may put into a READ reply at the size the kernel asked for.
class BoundedWriter final : public ZeroCopyWriter {
 public:
  BoundedWriter(ZeroCopyWriter& inner, std::size_t limit) noexcept : inner_(inner), limit_(limit) {}
  std::size_t available() const noexcept override { return std::min(limit_ - used_, inner_.available()); }
  Result<std::size_t> write_from(int fd, std::size_t count, std::uint64_t offset) noexcept override {
    auto done = inner_.write_from(fd, std::min(count, available()), offset);
    if (done) used_ += *done;
    return done;
  }
  std::size_t write(std::span<const std::byte> in) noexcept override {
    const std::size_t done = inner_.write(in.first(std::min(in.size(), available())));
    used_ += done;
    return done;
  }

 private:
  ZeroCopyWriter& inner_;
  std::size_t limit_;
  std::size_t used_ = 0;
};

// Calls into the filesystem: the single place where its exceptions stop.
template <class Call>
auto guarded(Call&& call) noexcept -> decltype(call()) {
#if defined(__cpp_exceptions)
  try {
    return call();
  } catch (...) {
    if constexpr (std::is_void_v<decltype(call())>) {
      return;
    } else {
      return fail(std::errc::io_error);
    }
  }
#else
  return call();
#endif
}

}  // namespace detail

template <Transport T, Filesystem Fs>
class Server {
 public:
  using Reader = typename T::Reader;
  using Writer = typename T::Writer;
  static_assert(check_signatures<Fs>());

  explicit Server(Fs& fs, ServerOptions options = {}) noexcept
      : fs_(fs), options_(options) {
    // Whole pages: INIT announces max_pages = max_write / 4096, and the kernel sizes READs by
    // pages, so any remainder would make full-size READs look larger than max_write.
    options_.max_write = std::clamp<std::uint32_t>(options_.max_write, 4096, max_pages_limit * 4096) & ~4095u;
  }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Serves one request: reads it from `reader`, answers through `writer`. An error means the
  // reply could not be sent (the transport's error, e.g. ENODEV once unmounted).
  Result<Disposition> handle(Reader& reader, Writer& writer) noexcept;

  // Marks every running request and every later one interrupted (Context::interrupted), so
  // that handlers waiting for something give up: for a transport that is stopping.
  // Async-signal-safe.
  void interrupt_all() noexcept { inflight_.interrupt_all(); }

  bool initialized() const noexcept { return initialized_.load(std::memory_order_acquire); }
  // True after DESTROY until the next INIT.
  bool destroyed() const noexcept { return destroyed_.load(std::memory_order_acquire); }
  std::uint64_t negotiated_flags() const noexcept { return flags_.load(std::memory_order_acquire); }
  // Replaces ServerOptions::transport_init_flags, for a transport that learns what it can do
  // only when it starts. Before the first request only.
  void set_transport_init_flags(std::uint64_t flags) noexcept { options_.transport_init_flags = flags; }
  std::uint32_t protocol_minor() const noexcept { return minor_.load(std::memory_order_acquire); }
  std::uint32_t max_write() const noexcept { return options_.max_write; }
  // The request buffer a /dev/fuse reader needs: max_write plus room for every header.
  std::size_t buffer_size() const noexcept { return std::size_t{options_.max_write} + 4096; }

 private:
  static constexpr std::uint32_t max_pages_limit = 4096;  // 16 MiB: far above the kernel's cap

  struct Request {
    abi::in_header header;
    Context ctx;
    Reader& reader;
    Writer& writer;
    InodeId inode() const noexcept { return InodeId{header.nodeid}; }
  };

  Result<Disposition> dispatch(Request& request, const abi::opcode_info& info) noexcept;
  Result<Disposition> dispatch_body(Request& request, detail::ByteCursor& body) noexcept;
  Result<Disposition> handle_init(Request& request, detail::ByteCursor& body) noexcept;
  Result<Disposition> handle_read(Request& request, detail::ByteCursor& body) noexcept;
  Result<Disposition> handle_write(Request& request) noexcept;
  Result<Disposition> handle_retrieve_reply(Request& request) noexcept;
  Result<Disposition> handle_batch_forget(Request& request, detail::ByteCursor& body) noexcept;
  Result<Disposition> handle_readdir(Request& request, detail::ByteCursor& body, bool plus) noexcept;
  Result<Disposition> handle_xattr_read(Request& request, detail::ByteCursor& body, bool list) noexcept;
  Result<Disposition> handle_ioctl(Request& request, detail::ByteCursor& body) noexcept;
  Result<Disposition> handle_removemapping(Request& request, detail::ByteCursor& body) noexcept;
  bool parse_extensions(std::span<const std::byte> extensions,
                        std::array<std::uint32_t, detail::max_supplementary_groups>& groups,
                        Context& ctx) noexcept;

  Result<Disposition> reply_error(Request& request, std::errc error) noexcept {
    request.writer.discard();
    return send(request, detail::wire_errno(error));
  }
  Result<Disposition> reply_ok(Request& request) noexcept { return send(request, 0); }
  template <class Wire>
  Result<Disposition> reply_struct(Request& request, const Wire& wire) noexcept {
    if (!append(request, wire)) return reply_error(request, std::errc::no_buffer_space);
    return send(request, 0);
  }
  // A Result<V> from the filesystem: its error, or `encode(value)` as the reply struct.
  template <class V, class Encode>
  Result<Disposition> reply(Request& request, const Result<V>& result, Encode&& encode) noexcept {
    if (!result) return reply_error(request, result.error());
    return reply_struct(request, encode(*result));
  }
  Result<Disposition> reply(Request& request, const Result<void>& result) noexcept {
    if (!result) return reply_error(request, result.error());
    return reply_ok(request);
  }
  template <class Wire>
  static bool append(Request& request, const Wire& wire) noexcept {
    return request.writer.append(std::as_bytes(std::span<const Wire, 1>(&wire, 1)));
  }
  Result<Disposition> send(Request& request, int error) noexcept {
    const std::size_t size = sizeof(abi::out_header) + request.writer.written();
    const abi::out_header out{static_cast<std::uint32_t>(size), -error, request.header.unique};
    if (options_.observer != nullptr) options_.observer->on_reply(request.header, error, size);
    auto sent = request.writer.commit(out);
    if (!sent) return fail(sent.error());
    return Disposition::replied;
  }
  Disposition no_reply(Request& request) noexcept {
    if (options_.observer != nullptr) options_.observer->on_reply(request.header, -1, 0);
    return Disposition::no_reply;
  }
  void reset_session() noexcept;

  Fs& fs_;
  ServerOptions options_;
  std::atomic<bool> initialized_{false};
  std::atomic<bool> destroyed_{false};
  std::mutex session_mutex_;  // INIT and DESTROY, which set up and tear down the filesystem
  std::atomic<std::uint64_t> flags_{0};
  std::atomic<std::uint32_t> minor_{0};
  detail::InflightRequests inflight_;
};


template <Transport T, Filesystem Fs>
Result<Disposition> Server<T, Fs>::handle(Reader& reader, Writer& writer) noexcept {
  const auto header_bytes = reader.read_bytes(sizeof(abi::in_header));
  if (header_bytes.size() != sizeof(abi::in_header)) return Disposition::dropped;
  Request request{{}, {}, reader, writer};
  std::memcpy(&request.header, header_bytes.data(), sizeof(abi::in_header));
  writer.discard();
  if (options_.observer != nullptr) options_.observer->on_request(request.header);
  const abi::in_header& header = request.header;
  request.ctx.uid = header.uid;
  request.ctx.gid = header.gid;
  request.ctx.pid = header.pid;
  request.ctx.unique = header.unique;
  request.ctx.backing_ = reader.backing_files();
  request.ctx.may_block_ = reader.may_block();

  const abi::opcode_info* info = abi::find_opcode(header.opcode);
  const bool replies = info == nullptr || info->replies;
  const auto refuse = [&](std::errc error) noexcept -> Result<Disposition> {
    return replies ? reply_error(request, error) : no_reply(request);
  };
  // The request's own length must fit in what the transport holds; extra bytes are ignored.
  if (header.len < sizeof(abi::in_header) ||
      header.len - sizeof(abi::in_header) > reader.remaining()) {
    return refuse(std::errc::invalid_argument);
  }
  reader.limit(header.len - sizeof(abi::in_header));
  if (info == nullptr) return reply_error(request, std::errc::function_not_supported);
  if (!initialized() && header.opcode != static_cast<std::uint32_t>(abi::opcode::init)) {
    return refuse(std::errc::io_error);
  }
  detail::InflightRequests::Claim claim(inflight_, header.unique);
  request.ctx.interrupted_ = claim.flag();
  return dispatch(request, *info);
}

template <Transport T, Filesystem Fs>
Result<Disposition> Server<T, Fs>::dispatch(Request& request, const abi::opcode_info& info) noexcept {
  const abi::in_header& header = request.header;
  Reader& reader = request.reader;
  const std::size_t extension_bytes = std::size_t{header.total_extlen} * 8;
  if (extension_bytes > reader.remaining()) {
    return info.replies ? reply_error(request, std::errc::invalid_argument) : no_reply(request);
  }
  // Data-carrying ops keep their payload in the transport (zero copy); extensions never come
  // with them, so they are simply cut off.
  switch (static_cast<abi::opcode>(header.opcode)) {
    case abi::opcode::write:
      reader.limit(reader.remaining() - extension_bytes);
      return handle_write(request);
    case abi::opcode::notify_reply:
      reader.limit(reader.remaining() - extension_bytes);
      return handle_retrieve_reply(request);
    default:
      break;
  }
  const std::size_t size = reader.remaining();
  const auto bytes = reader.read_bytes(size);
  std::array<std::uint32_t, detail::max_supplementary_groups> groups{};
  if (bytes.size() != size || !parse_extensions(bytes.last(extension_bytes), groups, request.ctx)) {
    return info.replies ? reply_error(request, std::errc::invalid_argument) : no_reply(request);
  }
  detail::ByteCursor body(bytes.first(size - extension_bytes));
  return dispatch_body(request, body);
}

template <Transport T, Filesystem Fs>
bool Server<T, Fs>::parse_extensions(std::span<const std::byte> extensions,
                                     std::array<std::uint32_t, detail::max_supplementary_groups>& groups,
                                     Context& ctx) noexcept {
  detail::ByteCursor cursor(extensions);
  while (cursor.remaining() > 0) {
    const auto ext = cursor.take<abi::ext_header>();
    if (!ext || ext->size < sizeof(abi::ext_header) || ext->size % 8 != 0 ||
        ext->size - sizeof(abi::ext_header) > cursor.remaining()) {
      return false;
    }
    auto payload = *cursor.take_bytes(ext->size - sizeof(abi::ext_header));
    if (ext->type != static_cast<std::uint32_t>(abi::ext_type::groups)) continue;  // security ctx
    detail::ByteCursor group_cursor(payload);
    const auto list = group_cursor.take<abi::supp_groups>();
    if (!list || list->nr_groups > groups.size() ||
        std::size_t{list->nr_groups} * sizeof(std::uint32_t) > group_cursor.remaining()) {
      return false;
    }
    for (std::uint32_t i = 0; i < list->nr_groups; ++i) groups[i] = *group_cursor.take<std::uint32_t>();
    ctx.supplementary_groups = std::span<const std::uint32_t>(groups.data(), list->nr_groups);
  }
  return true;
}

template <Transport T, Filesystem Fs>
Result<Disposition> Server<T, Fs>::dispatch_body(Request& request, detail::ByteCursor& body) noexcept {
  using detail::guarded;
  using detail::max_name_length;
  using detail::to_wire;
  constexpr auto invalid = std::errc::invalid_argument;
  constexpr auto not_supported = std::errc::function_not_supported;
  const auto entry = [](const Entry& e) noexcept { return to_wire(e); };
  const auto attr = [](const AttrReply& a) noexcept { return to_wire(a); };
  const auto open = [](const OpenReply& o) noexcept { return to_wire(o); };
  const auto created = [](const CreateReply& c) noexcept {
    struct {
      abi::entry_out entry;
      abi::open_out open;
    } wire{to_wire(c.entry), to_wire(c.open)};
    return wire;
  };
  Context& ctx = request.ctx;
  const InodeId inode = request.inode();

  switch (static_cast<abi::opcode>(request.header.opcode)) {
    case abi::opcode::init:
      return handle_init(request, body);

    case abi::opcode::destroy: {
      // One at a time with INIT: virtio-fs queues run concurrently, and a hostile guest may send
      // two DESTROYs (or an INIT) at once; the filesystem is destroyed once.
      std::lock_guard lock(session_mutex_);
      if (initialized()) {
        if constexpr (SupportsDestroy<Fs>) guarded([&] { fs_.destroy(); });
      }
      initialized_.store(false, std::memory_order_release);
      destroyed_.store(true, std::memory_order_release);
      return reply_ok(request);
    }

    case abi::opcode::interrupt: {
      const auto in = body.take<abi::interrupt_in>();
      // Not found: the request finished already (or is not read yet); interrupts are advisory.
      if (in) inflight_.interrupt(in->unique);
      return no_reply(request);
    }

    case abi::opcode::lookup: {
      const auto name = body.take_name(max_name_length);
      if (!name) return reply_error(request, invalid);
      return reply(request, guarded([&] { return fs_.lookup(ctx, inode, *name); }), entry);
    }

    case abi::opcode::forget: {
      const auto in = body.take<abi::forget_in>();
      if constexpr (SupportsForget<Fs>) {
        if (in) guarded([&] { fs_.forget(ctx, inode, in->nlookup); });
      }
      return no_reply(request);
    }

    case abi::opcode::batch_forget:
      return handle_batch_forget(request, body);

    case abi::opcode::getattr: {
      const auto in = body.take<abi::getattr_in>();
      if (!in) return reply_error(request, invalid);
      std::optional<HandleId> handle;
      if ((in->getattr_flags & abi::getattr_flags::fh) != 0) handle = HandleId{in->fh};
      return reply(request, guarded([&] { return fs_.getattr(ctx, inode, handle); }), attr);
    }

    case abi::opcode::setattr: {
      const auto in = body.take<abi::setattr_in>();
      if (!in) return reply_error(request, invalid);
      if constexpr (SupportsSetattr<Fs>) {
        std::optional<HandleId> handle;
        if ((in->valid & abi::fattr::fh) != 0) handle = HandleId{in->fh};
        const SetattrIn values = detail::from_wire(*in);
        return reply(request, guarded([&] { return fs_.setattr(ctx, inode, values, handle); }), attr);
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::readlink:
      if constexpr (SupportsReadlink<Fs>) {
        const auto scratch = detail::scratch_buffer();
        std::span<char> target(reinterpret_cast<char*>(scratch.data()), detail::max_symlink_target);
        const auto length = guarded([&] { return fs_.readlink(ctx, inode, target); });
        if (!length) return reply_error(request, length.error());
        if (*length > target.size()) return reply_error(request, std::errc::io_error);
        if (!request.writer.append(scratch.first(*length))) return reply_error(request, std::errc::no_buffer_space);
        return reply_ok(request);
      }
      return reply_error(request, not_supported);

    case abi::opcode::symlink: {
      const auto name = body.take_name(max_name_length);
      const auto target = body.take_name(detail::max_symlink_target - 1);
      if (!name || !target) return reply_error(request, invalid);
      if constexpr (SupportsSymlink<Fs>) {
        return reply(request, guarded([&] { return fs_.symlink(ctx, *target, inode, *name); }), entry);
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::mknod: {
      const auto in = body.take<abi::mknod_in>();
      const auto name = body.take_name(max_name_length);
      if (!in || !name) return reply_error(request, invalid);
      if constexpr (SupportsMknod<Fs>) {
        ctx.umask = in->umask;
        return reply(request, guarded([&] { return fs_.mknod(ctx, inode, *name, in->mode, in->rdev); }), entry);
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::mkdir: {
      const auto in = body.take<abi::mkdir_in>();
      const auto name = body.take_name(max_name_length);
      if (!in || !name) return reply_error(request, invalid);
      if constexpr (SupportsMkdir<Fs>) {
        ctx.umask = in->umask;
        return reply(request, guarded([&] { return fs_.mkdir(ctx, inode, *name, in->mode); }), entry);
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::unlink:
    case abi::opcode::rmdir: {
      const auto name = body.take_name(max_name_length);
      if (!name) return reply_error(request, invalid);
      if (request.header.opcode == static_cast<std::uint32_t>(abi::opcode::unlink)) {
        if constexpr (SupportsUnlink<Fs>) return reply(request, guarded([&] { return fs_.unlink(ctx, inode, *name); }));
      } else {
        if constexpr (SupportsRmdir<Fs>) return reply(request, guarded([&] { return fs_.rmdir(ctx, inode, *name); }));
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::rename:
    case abi::opcode::rename2: {
      const bool with_flags = request.header.opcode == static_cast<std::uint32_t>(abi::opcode::rename2);
      std::optional<abi::rename2_in> in;
      if (with_flags) {
        in = body.take<abi::rename2_in>();
      } else if (const auto plain = body.take<abi::rename_in>()) {
        in = abi::rename2_in{plain->newdir, 0, 0};
      }
      const auto old_name = body.take_name(max_name_length);
      const auto new_name = body.take_name(max_name_length);
      if (!in || !old_name || !new_name) return reply_error(request, invalid);
      if constexpr (SupportsRename<Fs>) {
        return reply(request, guarded([&] {
          return fs_.rename(ctx, inode, *old_name, InodeId{in->newdir}, *new_name, in->flags);
        }));
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::link: {
      const auto in = body.take<abi::link_in>();
      const auto name = body.take_name(max_name_length);
      if (!in || !name) return reply_error(request, invalid);
      if constexpr (SupportsLink<Fs>) {
        return reply(request, guarded([&] { return fs_.link(ctx, InodeId{in->oldnodeid}, inode, *name); }), entry);
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::open:
    case abi::opcode::opendir: {
      const auto in = body.take<abi::open_in>();
      if (!in) return reply_error(request, invalid);
      if (request.header.opcode == static_cast<std::uint32_t>(abi::opcode::open)) {
        if constexpr (SupportsOpen<Fs>) {
          return reply(request, guarded([&] { return fs_.open(ctx, inode, in->flags, in->open_flags); }), open);
        }
      } else {
        if constexpr (SupportsOpendir<Fs>) {
          return reply(request, guarded([&] { return fs_.opendir(ctx, inode, in->flags); }), open);
        }
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::create: {
      const auto in = body.take<abi::create_in>();
      const auto name = body.take_name(max_name_length);
      if (!in || !name) return reply_error(request, invalid);
      if constexpr (SupportsCreate<Fs>) {
        ctx.umask = in->umask;
        return reply(request, guarded([&] { return fs_.create(ctx, inode, *name, in->mode, in->flags); }), created);
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::tmpfile: {
      const auto in = body.take<abi::create_in>();
      if (!in) return reply_error(request, invalid);
      if constexpr (SupportsTmpfile<Fs>) {
        ctx.umask = in->umask;
        return reply(request, guarded([&] { return fs_.tmpfile(ctx, inode, in->mode, in->flags); }), created);
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::read:
      return handle_read(request, body);
    case abi::opcode::write:
    case abi::opcode::notify_reply:
      return reply_error(request, invalid);  // handled before the body is read

    case abi::opcode::statfs:
      if constexpr (SupportsStatfs<Fs>) {
        return reply(request, guarded([&] { return fs_.statfs(ctx, inode); }),
                     [](const struct statvfs& st) noexcept { return abi::statfs_out{to_wire(st)}; });
      }
      return reply_error(request, not_supported);

    case abi::opcode::release:
    case abi::opcode::releasedir: {
      const auto in = body.take<abi::release_in>();
      if (!in) return reply_error(request, invalid);
      if (request.header.opcode == static_cast<std::uint32_t>(abi::opcode::release)) {
        if constexpr (SupportsRelease<Fs>) {
          return reply(request, guarded([&] {
            return fs_.release(ctx, inode, HandleId{in->fh}, in->flags, in->release_flags, in->lock_owner);
          }));
        }
      } else {
        if constexpr (SupportsReleasedir<Fs>) {
          return reply(request, guarded([&] { return fs_.releasedir(ctx, inode, HandleId{in->fh}, in->flags); }));
        }
      }
      // Nothing to release in a filesystem without handles.
      return reply_ok(request);
    }

    case abi::opcode::fsync:
    case abi::opcode::fsyncdir: {
      const auto in = body.take<abi::fsync_in>();
      if (!in) return reply_error(request, invalid);
      const bool datasync = (in->fsync_flags & abi::fsync_flags::fdatasync) != 0;
      if (request.header.opcode == static_cast<std::uint32_t>(abi::opcode::fsync)) {
        if constexpr (SupportsFsync<Fs>) {
          return reply(request, guarded([&] { return fs_.fsync(ctx, inode, HandleId{in->fh}, datasync); }));
        }
      } else {
        if constexpr (SupportsFsyncdir<Fs>) {
          return reply(request, guarded([&] { return fs_.fsyncdir(ctx, inode, HandleId{in->fh}, datasync); }));
        }
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::setxattr: {
      // The 16-byte setxattr_in only when SETXATTR_EXT was negotiated; 8 bytes before.
      const bool extended = (negotiated_flags() & abi::init_flags::setxattr_ext) != 0;
      const auto in = body.take_prefix<abi::setxattr_in>(extended ? sizeof(abi::setxattr_in)
                                                                  : abi::compat_setxattr_in_size);
      const auto name = body.take_name(detail::max_xattr_name);
      if (!in || !name || in->size > detail::max_xattr_size) return reply_error(request, invalid);
      const auto value = body.take_bytes(in->size);
      if (!value) return reply_error(request, invalid);
      if constexpr (SupportsSetxattr<Fs>) {
        return reply(request, guarded([&] {
          return fs_.setxattr(ctx, inode, *name, *value, in->flags, in->setxattr_flags);
        }));
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::getxattr:
      return handle_xattr_read(request, body, false);
    case abi::opcode::listxattr:
      return handle_xattr_read(request, body, true);

    case abi::opcode::removexattr: {
      const auto name = body.take_name(detail::max_xattr_name);
      if (!name) return reply_error(request, invalid);
      if constexpr (SupportsRemovexattr<Fs>) {
        return reply(request, guarded([&] { return fs_.removexattr(ctx, inode, *name); }));
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::flush: {
      const auto in = body.take<abi::flush_in>();
      if (!in) return reply_error(request, invalid);
      if constexpr (SupportsFlush<Fs>) {
        return reply(request, guarded([&] { return fs_.flush(ctx, inode, HandleId{in->fh}, in->lock_owner); }));
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::readdir:
      return handle_readdir(request, body, false);
    case abi::opcode::readdirplus:
      return handle_readdir(request, body, true);

    case abi::opcode::getlk: {
      const auto in = body.take<abi::lk_in>();
      if (!in) return reply_error(request, invalid);
      if constexpr (SupportsGetlk<Fs>) {
        const FileLock lock = detail::from_wire(in->lk);
        return reply(request, guarded([&] {
          return fs_.getlk(ctx, inode, HandleId{in->fh}, in->owner, lock, in->lk_flags);
        }), [](const FileLock& found) noexcept { return abi::lk_out{to_wire(found)}; });
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::setlk:
    case abi::opcode::setlkw: {
      const auto in = body.take<abi::lk_in>();
      if (!in) return reply_error(request, invalid);
      if constexpr (SupportsSetlk<Fs>) {
        const bool wait = request.header.opcode == static_cast<std::uint32_t>(abi::opcode::setlkw);
        const FileLock lock = detail::from_wire(in->lk);
        return reply(request, guarded([&] {
          return fs_.setlk(ctx, inode, HandleId{in->fh}, in->owner, lock, in->lk_flags, wait);
        }));
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::access: {
      const auto in = body.take<abi::access_in>();
      if (!in) return reply_error(request, invalid);
      if constexpr (SupportsAccess<Fs>) {
        return reply(request, guarded([&] { return fs_.access(ctx, inode, in->mask); }));
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::bmap: {
      const auto in = body.take<abi::bmap_in>();
      if (!in) return reply_error(request, invalid);
      if constexpr (SupportsBmap<Fs>) {
        return reply(request, guarded([&] { return fs_.bmap(ctx, inode, in->block, in->blocksize); }),
                     [](std::uint64_t block) noexcept { return abi::bmap_out{block}; });
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::ioctl:
      return handle_ioctl(request, body);

    case abi::opcode::poll: {
      const auto in = body.take<abi::poll_in>();
      if (!in) return reply_error(request, invalid);
      if constexpr (SupportsPoll<Fs>) {
        return reply(request, guarded([&] {
          return fs_.poll(ctx, inode, HandleId{in->fh}, in->kh, in->flags, in->events);
        }), [](std::uint32_t revents) noexcept { return abi::poll_out{revents, 0}; });
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::fallocate: {
      const auto in = body.take<abi::fallocate_in>();
      if (!in) return reply_error(request, invalid);
      if constexpr (SupportsFallocate<Fs>) {
        return reply(request, guarded([&] {
          return fs_.fallocate(ctx, inode, HandleId{in->fh}, in->mode, in->offset, in->length);
        }));
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::lseek: {
      const auto in = body.take<abi::lseek_in>();
      if (!in) return reply_error(request, invalid);
      if constexpr (SupportsLseek<Fs>) {
        return reply(request, guarded([&] { return fs_.lseek(ctx, inode, HandleId{in->fh}, in->offset, in->whence); }),
                     [](std::uint64_t offset) noexcept { return abi::lseek_out{offset}; });
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::copy_file_range:
    case abi::opcode::copy_file_range_64: {
      const auto in = body.take<abi::copy_file_range_in>();
      if (!in) return reply_error(request, invalid);
      if constexpr (SupportsCopyFileRange<Fs>) {
        const auto copied = guarded([&] {
          return fs_.copy_file_range(ctx, inode, HandleId{in->fh_in}, in->off_in, InodeId{in->nodeid_out},
                                     HandleId{in->fh_out}, in->off_out, in->len, in->flags);
        });
        if (request.header.opcode == static_cast<std::uint32_t>(abi::opcode::copy_file_range_64)) {
          return reply(request, copied, [](std::uint64_t n) noexcept { return abi::copy_file_range_out{n}; });
        }
        // The old reply has 32 bits: report at most that much, the caller continues from there.
        return reply(request, copied, [](std::uint64_t n) noexcept {
          return abi::write_out{static_cast<std::uint32_t>(std::min<std::uint64_t>(n, UINT32_MAX)), 0};
        });
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::setupmapping: {
      const auto in = body.take<abi::setupmapping_in>();
      if (!in) return reply_error(request, invalid);
      if constexpr (SupportsSetupmapping<Fs>) {
        if (options_.dax_mapper == nullptr) return reply_error(request, not_supported);
        return reply(request, guarded([&] {
          return fs_.setupmapping(ctx, inode, HandleId{in->fh}, in->foffset, in->len, in->flags, in->moffset,
                                  *options_.dax_mapper);
        }));
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::removemapping:
      return handle_removemapping(request, body);

    case abi::opcode::syncfs: {
      if (!body.take<abi::syncfs_in>()) return reply_error(request, invalid);
      if constexpr (SupportsSyncfs<Fs>) return reply(request, guarded([&] { return fs_.syncfs(ctx, inode); }));
      return reply_error(request, not_supported);
    }

    case abi::opcode::statx: {
      const auto in = body.take<abi::statx_in>();
      if (!in) return reply_error(request, invalid);
      if constexpr (SupportsStatx<Fs>) {
        std::optional<HandleId> handle;
        if ((in->getattr_flags & abi::getattr_flags::fh) != 0) handle = HandleId{in->fh};
        return reply(request, guarded([&] { return fs_.statx(ctx, inode, handle, in->sx_flags, in->sx_mask); }),
                     [](const StatxReply& r) noexcept { return to_wire(r); });
      }
      return reply_error(request, not_supported);
    }

    case abi::opcode::cuse_init:
      // Only /dev/cuse sends it; this library serves filesystems.
      return reply_error(request, not_supported);
  }
  return reply_error(request, not_supported);
}

template <Transport T, Filesystem Fs>
void Server<T, Fs>::reset_session() noexcept {
  if (initialized() && !destroyed()) {
    if constexpr (SupportsDestroy<Fs>) detail::guarded([&] { fs_.destroy(); });
  }
  initialized_.store(false, std::memory_order_release);
}

template <Transport T, Filesystem Fs>
Result<Disposition> Server<T, Fs>::handle_init(Request& request, detail::ByteCursor& body) noexcept {
  // Before 7.36 init_in is 16 bytes; the rest reads as zero.
  const auto in = body.take_prefix<abi::init_in>(std::min(body.remaining(), sizeof(abi::init_in)));
  if (!in || body.remaining() > 0 || in->major == 0 ||
      sizeof(abi::in_header) + abi::compat_init_in_size > request.header.len) {
    return reply_error(request, std::errc::invalid_argument);
  }
  abi::init_out out{};
  out.major = abi::kernel_version;
  out.minor = abi::kernel_minor_version;
  if (in->major > abi::kernel_version) return reply_struct(request, out);  // kernel retries with 7
  if (in->major < abi::kernel_version || in->minor < detail::min_kernel_minor) {
    return reply_error(request, std::errc::protocol_error);
  }
  std::lock_guard lock(session_mutex_);  // see DESTROY
  reset_session();

  std::uint64_t kernel = in->flags;
  if ((in->flags & abi::init_flags::init_ext) != 0) kernel = abi::init_flags_from(in->flags, in->flags2);
  const std::uint64_t offered = kernel & possible_init_flags<Fs>() & options_.enabled_init_flags;
  std::uint64_t wanted = offered & default_init_flags<Fs>();
  if constexpr (SupportsInit<Fs>) {
    const auto chosen = detail::guarded([&] { return fs_.init(offered); });
    if (!chosen) return reply_error(request, chosen.error());
    wanted = *chosen & offered;
  }
  // Transport flags may live in flags2, which the kernel reads only with INIT_EXT.
  if (const auto transport = kernel & options_.transport_init_flags & options_.enabled_init_flags; transport != 0)
    wanted |= transport | (kernel & abi::init_flags::init_ext);
  if (in->minor < 36) wanted &= 0xffff'ffffu & ~abi::init_flags::init_ext;

  const auto words = abi::split_init_flags(wanted);
  out.flags = words.flags;
  out.flags2 = words.flags2;
  out.max_readahead = std::min(in->max_readahead, options_.max_readahead);
  out.max_background = options_.max_background;
  out.congestion_threshold = options_.congestion_threshold;
  out.max_write = options_.max_write;
  out.time_gran = 1;
  out.max_pages = static_cast<std::uint16_t>((options_.max_write + 4095) / 4096);
  if ((wanted & abi::init_flags::passthrough) != 0) out.max_stack_depth = options_.max_stack_depth;

  flags_.store(wanted, std::memory_order_release);
  minor_.store(std::min(in->minor, abi::kernel_minor_version), std::memory_order_release);
  destroyed_.store(false, std::memory_order_release);
  initialized_.store(true, std::memory_order_release);
  return reply_struct(request, out);
}

template <Transport T, Filesystem Fs>
Result<Disposition> Server<T, Fs>::handle_read(Request& request, detail::ByteCursor& body) noexcept {
  const auto in = body.take<abi::read_in>();
  if (!in || in->size > options_.max_write) return reply_error(request, std::errc::invalid_argument);
  if constexpr (SupportsRead<Fs>) {
    detail::BoundedWriter out(request.writer, in->size);
    const auto read = detail::guarded([&] {
      return fs_.read(request.ctx, request.inode(), HandleId{in->fh}, out, in->size, in->offset, in->flags);
    });
    if (!read) return reply_error(request, read.error());
    return reply_ok(request);
  }
  return reply_error(request, std::errc::function_not_supported);
}

template <Transport T, Filesystem Fs>
Result<Disposition> Server<T, Fs>::handle_write(Request& request) noexcept {
  const auto fixed = request.reader.read_bytes(sizeof(abi::write_in));
  if (fixed.size() != sizeof(abi::write_in)) return reply_error(request, std::errc::invalid_argument);
  abi::write_in in;
  std::memcpy(&in, fixed.data(), sizeof(in));
  // The payload must be exactly what write_in announces.
  if (in.size != request.reader.remaining() || in.size > options_.max_write) {
    return reply_error(request, std::errc::invalid_argument);
  }
  if constexpr (SupportsWrite<Fs>) {
    const auto written = detail::guarded([&] {
      return fs_.write(request.ctx, request.inode(), HandleId{in.fh}, request.reader, in.size, in.offset,
                       in.write_flags, in.flags);
    });
    return reply(request, written, [](std::size_t n) noexcept {
      return abi::write_out{static_cast<std::uint32_t>(n), 0};
    });
  }
  return reply_error(request, std::errc::function_not_supported);
}

template <Transport T, Filesystem Fs>
Result<Disposition> Server<T, Fs>::handle_retrieve_reply(Request& request) noexcept {
  const auto fixed = request.reader.read_bytes(sizeof(abi::notify_retrieve_in));
  if constexpr (SupportsRetrieveReply<Fs>) {
    abi::notify_retrieve_in in;
    if (fixed.size() == sizeof(in)) {
      std::memcpy(&in, fixed.data(), sizeof(in));
      request.reader.limit(in.size);
      detail::guarded([&] {
        fs_.retrieve_reply(request.ctx, request.header.unique, request.inode(), in.offset, request.reader);
      });
    }
  }
  return no_reply(request);
}

template <Transport T, Filesystem Fs>
Result<Disposition> Server<T, Fs>::handle_batch_forget(Request& request, detail::ByteCursor& body) noexcept {
  const auto in = body.take<abi::batch_forget_in>();
  // A count larger than the message is hostile: forget nothing rather than a prefix.
  if (!in || std::uint64_t{in->count} * sizeof(abi::forget_one) > body.remaining()) return no_reply(request);
  std::array<ForgetOne, 64> chunk;
  std::size_t filled = 0;
  const auto flush = [&] {
    if constexpr (SupportsBatchForget<Fs>) {
      detail::guarded([&] { fs_.batch_forget(request.ctx, std::span<const ForgetOne>(chunk.data(), filled)); });
    } else if constexpr (SupportsForget<Fs>) {
      for (std::size_t i = 0; i < filled; ++i) {
        detail::guarded([&] { fs_.forget(request.ctx, chunk[i].inode, chunk[i].nlookup); });
      }
    }
    filled = 0;
  };
  for (std::uint32_t i = 0; i < in->count; ++i) {
    const auto one = *body.take<abi::forget_one>();
    chunk[filled++] = ForgetOne{InodeId{one.nodeid}, one.nlookup};
    if (filled == chunk.size()) flush();
  }
  if (filled > 0) flush();
  return no_reply(request);
}

template <Transport T, Filesystem Fs>
Result<Disposition> Server<T, Fs>::handle_readdir(Request& request, detail::ByteCursor& body, bool plus) noexcept {
  const auto in = body.take<abi::read_in>();
  if (!in) return reply_error(request, std::errc::invalid_argument);
  const std::size_t limit = std::min<std::size_t>(in->size, options_.max_write);
  detail::DirPacker<Writer> sink(request.writer, limit, plus);
  Result<void> done = fail(std::errc::function_not_supported);
  if (plus) {
    if constexpr (SupportsReaddirplus<Fs>) {
      done = detail::guarded([&] { return fs_.readdirplus(request.ctx, request.inode(), HandleId{in->fh}, in->offset, sink); });
    }
  } else {
    if constexpr (SupportsReaddir<Fs>) {
      done = detail::guarded([&] { return fs_.readdir(request.ctx, request.inode(), HandleId{in->fh}, in->offset, sink); });
    }
  }
  // Entries already packed count: the kernel takes references for them, so they must be sent.
  if (!done && sink.size() == 0) return reply_error(request, done.error());
  return reply_ok(request);
}

template <Transport T, Filesystem Fs>
Result<Disposition> Server<T, Fs>::handle_xattr_read(Request& request, detail::ByteCursor& body, bool list) noexcept {
  const auto in = body.take<abi::getxattr_in>();
  std::optional<std::string_view> name;
  if (!list) name = body.take_name(detail::max_xattr_name);
  if (!in || (!list && !name)) return reply_error(request, std::errc::invalid_argument);
  const auto scratch = detail::scratch_buffer().first(std::min<std::size_t>(in->size, detail::max_xattr_size));
  Result<std::size_t> size = fail(std::errc::function_not_supported);
  if (list) {
    if constexpr (SupportsListxattr<Fs>) {
      const std::span<char> names(reinterpret_cast<char*>(scratch.data()), scratch.size());
      size = detail::guarded([&] { return fs_.listxattr(request.ctx, request.inode(), names); });
    }
  } else {
    if constexpr (SupportsGetxattr<Fs>) {
      size = detail::guarded([&] { return fs_.getxattr(request.ctx, request.inode(), *name, scratch); });
    }
  }
  if (!size) return reply_error(request, size.error());
  if (in->size == 0) return reply_struct(request, abi::getxattr_out{static_cast<std::uint32_t>(*size), 0});
  if (*size > scratch.size()) return reply_error(request, std::errc::result_out_of_range);
  if (!request.writer.append(scratch.first(*size))) return reply_error(request, std::errc::no_buffer_space);
  return reply_ok(request);
}

template <Transport T, Filesystem Fs>
Result<Disposition> Server<T, Fs>::handle_ioctl(Request& request, detail::ByteCursor& body) noexcept {
  const auto in = body.take<abi::ioctl_in>();
  if (!in) return reply_error(request, std::errc::invalid_argument);
  const auto input = body.take_bytes(in->in_size);
  if (!input) return reply_error(request, std::errc::invalid_argument);
  if constexpr (SupportsIoctl<Fs>) {
    // Unrestricted ioctls need the retry protocol with client addresses: not offered.
    if ((in->flags & abi::ioctl_flags::unrestricted) != 0) return reply_error(request, std::errc::function_not_supported);
    if (in->out_size > detail::max_xattr_size) return reply_error(request, std::errc::invalid_argument);
    const auto output = detail::scratch_buffer().first(in->out_size);
    const auto result = detail::guarded([&] {
      return fs_.ioctl(request.ctx, request.inode(), HandleId{in->fh}, in->flags, in->cmd, in->arg, *input, output);
    });
    if (!result) return reply_error(request, result.error());
    if (result->out_size > output.size()) return reply_error(request, std::errc::io_error);
    const abi::ioctl_out out{result->result, 0, 0, 0};
    if (!append(request, out) || !request.writer.append(output.first(result->out_size))) {
      return reply_error(request, std::errc::no_buffer_space);
    }
    return reply_ok(request);
  }
  return reply_error(request, std::errc::function_not_supported);
}

template <Transport T, Filesystem Fs>
Result<Disposition> Server<T, Fs>::handle_removemapping(Request& request, detail::ByteCursor& body) noexcept {
  const auto in = body.take<abi::removemapping_in>();
  if (!in || std::uint64_t{in->count} * sizeof(abi::removemapping_one) > body.remaining()) {
    return reply_error(request, std::errc::invalid_argument);
  }
  if constexpr (SupportsRemovemapping<Fs>) {
    if (options_.dax_mapper == nullptr) return reply_error(request, std::errc::function_not_supported);
    for (std::uint32_t i = 0; i < in->count; ++i) {
      const auto one = *body.take<abi::removemapping_one>();
      const auto removed = detail::guarded([&] {
        return fs_.removemapping(request.ctx, one.moffset, one.len, *options_.dax_mapper);
      });
      if (!removed) return reply_error(request, removed.error());
    }
    return reply_ok(request);
  }
  return reply_error(request, std::errc::function_not_supported);
}

}  // namespace fuse_backend::api
