// virtiofsd: a vhost-user-fs daemon serving a host directory to a virtual machine.
//
//   virtiofsd --socket-path PATH --shared-dir DIR [--cache never|metadata|auto|always]
//             [--thread-pool-size N] [--tag TAG] [--request-queues N] [--xattr] [--trace]
//
// QEMU connects to the unix socket at PATH (-chardev socket,path=PATH -device
// vhost-user-fs-pci,chardev=...,tag=TAG[,num-request-queues=N]); the guest then mounts the share
// with `mount -t virtiofs TAG /mnt`. The daemon serves that one QEMU connection and exits 0 when
// QEMU disconnects (1 if QEMU broke the protocol), printing per-queue request counts to stderr.
// Bad options give one line on stderr and exit status 1.
//
// The pieces: PassthroughFs (the filesystem), Server<virtio::Transport, PassthroughFs> (FUSE
// decoding), virtio::FsDevice (the virtio-fs queues), VhostUserBackend (the vhost-user
// protocol and one thread per queue; with --thread-pool-size, FsDevice's pool threads per request
// queue) and VhostUserListener (the socket).
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <sys/stat.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include <fuse_backend/passthrough/open_file_limit.hpp>
#include <fuse_backend/passthrough/passthrough_fs.hpp>
#include <fuse_backend/transport/virtio/fs_device.hpp>
#include <fuse_backend/transport/virtio/vhost_user_backend.hpp>

namespace {

namespace api = fuse_backend::api;
namespace passthrough = fuse_backend::passthrough;
namespace virtio = fuse_backend::transport::virtio;

constexpr std::string_view usage =
    "usage: virtiofsd --socket-path PATH --shared-dir DIR [options]\n"
    "\n"
    "Serves DIR to a QEMU vhost-user-fs-pci device connecting to the unix socket PATH; exits\n"
    "when QEMU disconnects.\n"
    "\n"
    "  --socket-path PATH       vhost-user socket to listen on (a stale socket is replaced)\n"
    "  --shared-dir DIR         host directory to share\n"
    "  --cache MODE             never: no caching (direct I/O); metadata: attributes and\n"
    "                           entries only; auto: close-to-open (default); always: keep\n"
    "                           everything (only if nothing else changes DIR)\n"
    "  --thread-pool-size N     worker threads per request queue serving its requests\n"
    "                           concurrently (1..256); 0 (default): each queue's own thread\n"
    "                           serves them one at a time, as C virtiofsd's\n"
    "                           --thread-pool-size=0. Helps when the guest sends several\n"
    "                           requests at once (readahead, parallel jobs)\n"
    "  --tag TAG                the virtio-fs tag (1..36 bytes; default myfs). QEMU's\n"
    "                           vhost-user-fs device announces its own tag= to the guest\n"
    "  --request-queues N       request queues to serve besides the hiprio queue (default 1;\n"
    "                           must be at least QEMU's num-request-queues)\n"
    "  --xattr                  serve extended attributes (default: ENOSYS, as C virtiofsd)\n"
    "  --trace                  log every vhost-user message\n"
    "  --help                   this text\n";

struct Options {
  std::string socket_path;
  std::string shared_dir;
  passthrough::CachePolicy cache = passthrough::CachePolicy::automatic;
  std::string tag = "myfs";
  unsigned request_queues = 1;
  unsigned thread_pool_size = 0;
  bool xattr = false;
  bool trace = false;
};

// One line on stderr; the caller exits 1.
int bad(const std::string& message) {
  std::fprintf(stderr, "virtiofsd: %s (see --help)\n", message.c_str());
  return 1;
}

std::optional<unsigned> parse_count(std::string_view text, unsigned min, unsigned max) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < min || value > max)
    return std::nullopt;
  return value;
}

// Parses argv into `options`; returns an exit status when the program should stop (0 after
// --help, 1 after an error already printed).
std::optional<int> parse(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::optional<std::string_view> inline_value;
    if (const auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string_view::npos) {
      inline_value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto value = [&]() -> std::optional<std::string_view> {
      if (inline_value) return inline_value;
      if (i + 1 < argc) return std::string_view(argv[++i]);
      return std::nullopt;
    };
    auto flag = [&]() { return !inline_value; };

    if (arg == "--help" || arg == "-h") {
      std::fputs(usage.data(), stdout);
      return 0;
    } else if (arg == "--xattr" && flag()) {
      options.xattr = true;
    } else if (arg == "--trace" && flag()) {
      options.trace = true;
    } else if (arg == "--socket-path" || arg == "--shared-dir" || arg == "--cache" ||
               arg == "--thread-pool-size" || arg == "--tag" || arg == "--request-queues") {
      const auto v = value();
      if (!v) return bad(std::string(arg) + " needs a value");
      if (arg == "--socket-path") {
        options.socket_path = *v;
      } else if (arg == "--shared-dir") {
        options.shared_dir = *v;
      } else if (arg == "--cache") {
        if (*v == "never" || *v == "none")
          options.cache = passthrough::CachePolicy::never;
        else if (*v == "metadata")
          options.cache = passthrough::CachePolicy::metadata;
        else if (*v == "auto")
          options.cache = passthrough::CachePolicy::automatic;
        else if (*v == "always")
          options.cache = passthrough::CachePolicy::always;
        else
          return bad("--cache must be never, metadata, auto or always, not '" + std::string(*v) + "'");
      } else if (arg == "--tag") {
        if (!virtio::FsConfig::make(*v, 1)) return bad("--tag must be 1 to 36 bytes without NUL");
        options.tag = *v;
      } else {
        const bool pool = arg == "--thread-pool-size";
        const auto n = pool ? parse_count(*v, 0, 256) : parse_count(*v, 1, 254);
        if (!n)
          return bad(std::string(arg) + " must be a number in " + (pool ? "0..256" : "1..254") +
                     ", not '" + std::string(*v) + "'");
        (pool ? options.thread_pool_size : options.request_queues) = *n;
      }
    } else {
      return bad("unknown option '" + std::string(argv[i]) + "'");
    }
  }
  if (options.socket_path.empty()) return bad("--socket-path is required");
  if (options.shared_dir.empty()) return bad("--shared-dir is required");
  struct stat st {};
  if (::stat(options.shared_dir.c_str(), &st) != 0)
    return bad("--shared-dir " + options.shared_dir + ": " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) return bad("--shared-dir " + options.shared_dir + " is not a directory");
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (const auto stop = parse(argc, argv, options)) return *stop;

  passthrough::Config config;
  config.source = options.shared_dir;
  config.cache_policy = options.cache;
  config.xattr = options.xattr;
  // An fd per inode the guest holds: the usual soft limit of 1024 would cap the guest's caches.
  if (auto limit = passthrough::raise_open_file_limit(); !limit) {
    std::fprintf(stderr, "virtiofsd: warning: cannot raise the open file limit: %s\n",
                 std::make_error_code(limit.error()).message().c_str());
  }
  auto fs = passthrough::PassthroughFs::create(config);
  if (!fs) {
    std::fprintf(stderr, "virtiofsd: cannot share %s: %s\n", options.shared_dir.c_str(),
                 std::make_error_code(fs.error()).message().c_str());
    return 1;
  }

  using Device = virtio::FsDevice<passthrough::PassthroughFs>;
  Device::Server server(**fs);
  Device device(server, *virtio::FsConfig::make(options.tag, options.request_queues),
                {.log = [](std::string_view line) {
                  std::fprintf(stderr, "virtiofsd: %.*s\n", static_cast<int>(line.size()),
                               line.data());
                },
                 .thread_pool_size = options.thread_pool_size});
  virtio::VhostUserBackend backend(device, {.trace = options.trace, .log = {}});

  auto listener = virtio::VhostUserListener::bind(options.socket_path);
  if (!listener) {
    std::fprintf(stderr, "virtiofsd: cannot listen on %s: %s\n", options.socket_path.c_str(),
                 std::make_error_code(listener.error()).message().c_str());
    return 1;
  }
  std::fprintf(stderr,
               "virtiofsd: sharing %s as '%s' on %s (%u request queue(s), thread pool %u)\n",
               options.shared_dir.c_str(), options.tag.c_str(), options.socket_path.c_str(),
               options.request_queues, options.thread_pool_size);
  auto connection = listener->accept();
  if (!connection) {
    std::fprintf(stderr, "virtiofsd: accept failed: %s\n",
                 std::make_error_code(connection.error()).message().c_str());
    return 1;
  }
  const auto served = backend.serve(std::move(*connection));

  for (std::size_t q = 0; q < device.queue_count(); ++q) {
    const auto ring = backend.queue_stats(q);
    const auto chains = device.stats(q);
    std::fprintf(stderr, "virtiofsd: queue %zu%s: %llu requests, started %llu times, %llu malformed\n",
                 q, q == 0 ? " (hiprio)" : "", static_cast<unsigned long long>(ring.chains),
                 static_cast<unsigned long long>(ring.starts),
                 static_cast<unsigned long long>(chains.malformed));
  }
  if (!served) {
    std::fprintf(stderr, "virtiofsd: connection ended by a protocol error: %s\n",
                 std::make_error_code(served.error()).message().c_str());
    return 1;
  }
  return 0;
}
