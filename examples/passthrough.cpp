// passthrough: serves a host directory on a FUSE mount point (the main job of this library).
//
//   passthrough [options] SOURCE MOUNTPOINT
//
// Mounts SOURCE's contents on MOUNTPOINT with passthrough::PassthroughFs and serves it with a
// fusedev::Service (one worker thread per cloned /dev/fuse fd) until the filesystem is unmounted
// (umount / fusermount3 -u) or the daemon gets SIGINT or SIGTERM; on a signal it first has the
// kernel write back data it still holds (Session::sync), then unmounts and exits 0.
// Every problem found before serving (a bad option, a missing source, a busy mount point, ...)
// is ONE line on stderr and exit status 1. `passthrough --help` lists the options.
//
// The daemon never forks: -f/--foreground is accepted for libfuse compatibility and changes
// nothing. Run it under a service manager, or with `&` from a shell.
//
// main() reads top-down: parse the command line -> validate the paths -> mount -> serve.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/abi/opcode_table.hpp>
#include <fuse_backend/api/observer.hpp>
#include <fuse_backend/api/server.hpp>
#include <fuse_backend/detail/syscall.hpp>
#include <fuse_backend/passthrough/config.hpp>
#include <fuse_backend/passthrough/open_file_limit.hpp>
#include <fuse_backend/passthrough/passthrough_fs.hpp>
#include <fuse_backend/transport/fusedev/service.hpp>
#include <fuse_backend/transport/fusedev/session.hpp>
#include <fuse_backend/transport/fusedev/signals.hpp>

namespace {

namespace abi = fuse_backend::abi;
namespace api = fuse_backend::api;
namespace fusedev = fuse_backend::transport::fusedev;
namespace passthrough = fuse_backend::passthrough;
using fuse_backend::detail::syscall_void;

constexpr const char* usage_line = "usage: passthrough [options] SOURCE MOUNTPOINT";
constexpr const char* help_text = R"(usage: passthrough [options] SOURCE MOUNTPOINT

Serves the directory SOURCE on the FUSE mount point MOUNTPOINT until it is unmounted
(umount MOUNTPOINT, fusermount3 -u MOUNTPOINT) or the daemon gets SIGINT or SIGTERM, then
writes back what the kernel still holds dirty, unmounts and exits 0. Errors before serving are
one line on stderr and exit status 1.

Options:
  -o OPT[,OPT...]          mount and filesystem options, listed below (repeatable)
  --cache MODE             same as -o cache=MODE
  --writeback              same as -o writeback
  --threads N              same as -o threads=N
  --passthrough-backing    same as -o passthrough_backing
  --allow-other            same as -o allow_other
      (every -o option can also be written as a long option, '_' spelt '-':
       --default-permissions, --timeout=1.5, --max-write 131072, ...)
  -f, --foreground         accepted for libfuse compatibility: the daemon never forks
  -d, --debug              log every request and reply on stderr (also -o debug)
  -h, --help               print this help and exit
  -V, --version            print the version and exit

-o options:
  cache=MODE               what the kernel may cache (default auto):
                             never     nothing: direct I/O, no cached listings
                             metadata  names and attributes, not file data
                             auto      data too, dropped when a file changed (close-to-open);
                                       listings are read anew on every opendir
                             always    everything, across opens (SOURCE changes only here)
  timeout=SECS             entry and attribute timeout in seconds, fractions allowed (default 5)
  entry_timeout=SECS       name lookups only
  attr_timeout=SECS        attributes only
  writeback, no_writeback  kernel writeback cache (default off; not with passthrough_backing)
  passthrough_backing      let the kernel read and write host files directly (FUSE passthrough,
                           Linux >= 6.9, needs root; falls back to ordinary I/O, logged once)
  xattr, noxattr           extended attributes (default noxattr)
  readdirplus, no_readdirplus   listings carry attributes (default readdirplus)
  posix_locks, no_posix_locks   serve fcntl locks on the host (default posix_locks)
  write_behind, no_write_behind   start writing each whole MiB a client appends to a file
                           to the host's disk at once, not 30 s later or at its fsync
                           (default write_behind)
  no_open, no_opendir      tell the kernel it need not send OPEN / OPENDIR
  killpriv_v2              the daemon clears set-uid/set-gid bits on write/truncate/chown
  announce_submounts       host mount points inside SOURCE get their own st_dev
  seal_size                refuse every change of a file's size (not with passthrough_backing)
  host_ino, no_host_ino    st_ino is the host's inode number (default: stable across restarts,
                           what `ls -i` shows on the host) or the FUSE node id (unique even
                           across host mount points inside SOURCE, but new at every start)
  inode_file_handles=MODE  inodes keep host file handles instead of open fds, so a large kernel
                           cache cannot exhaust the fd limit (needs root: CAP_DAC_READ_SEARCH):
                             auto       open fds for the first inode_fd_budget inodes,
                                        then handles where possible (default)
                             never      open fds only
                             prefer     handles where the file system has them, else fds
                             mandatory  handles or fail (at start if SOURCE has none)
  inode_fd_budget=N        inode_file_handles=auto: how many inodes keep an fd (default: 3/4
                           of the open file limit, which the daemon raises at start)
  threads=N                worker threads, 1..256 (default: one per CPU, at most 16); at most
                           N-1 blocking locks (F_SETLKW, flock) wait at once, so one stays free
  busy_poll=USECS          after its last request, one worker (with io_uring: each queue
                           thread) keeps looking for the next this long before it sleeps,
                           which saves back-to-back requests a wake-up (a worker: not while
                           another one is busy or requests queue up; costs up to that much
                           CPU per burst),
                           0..10000 (default 50; 0: off)
  splice_writes, no_splice_writes   move the data of a stream of large writes with splice(2)
                           through a pipe: one copy less per write (default splice_writes;
                           needs CAP_SYS_RESOURCE or fs.pipe-max-size >= 2 MiB unless
                           max_write <= 1040384, else writes are copied)
  io_uring, no_io_uring    serve requests through FUSE-over-io_uring, one queue thread per CPU
                           (default off; Linux >= 6.14 with the fuse module's enable_uring=1,
                           else /dev/fuse, logged once); a blocking lock waits on a helper
                           thread, so that its CPU's queue serves on
  max_write=BYTES          largest read/write request, 4096..16777216 (default 1048576)
  max_read=BYTES           largest read the kernel sends (default: the kernel's)
  allow_other              users other than the mounter may access the mount
  default_permissions      the kernel checks permissions from the file modes
  ro, rw                   read-only / read-write mount (default rw)
  suid, nosuid, dev, nodev, exec, noexec   as for mount(8) (default nosuid,nodev,exec)
  fsname=NAME              source column of /proc/mounts (default: SOURCE)
  subtype=NAME             mount type fuse.NAME (default fuse.passthrough)
  debug                    same as --debug
)";

// --- options --------------------------------------------------------------------------------

struct Options {
  passthrough::Config fs;
  fusedev::MountOptions mount;
  fusedev::ServiceOptions service;
  bool debug = false;
  bool help = false;
  bool version = false;
  bool fsname_set = false;
  std::string source;      // as given; canonical in fs.source once validated
  std::string mountpoint;  // as given, then canonical
};

// What went wrong, worded for the user; empty = fine.
using Problem = std::optional<std::string>;

// One worker per CPU (at most 16). Every worker waits on the same kernel queue, so workers beyond
// the CPUs mostly add wake-ups: on 2 CPUs (bench/compare.sh, random 4 KiB aio depth 16, tmpfs
// source) 4 workers served 62k requests/s where 2 served 228k, at 4x the CPU per request.
unsigned default_threads() {
  return std::clamp(std::thread::hardware_concurrency(), 1u, 16u);
}

Problem bad_value(std::string_view shown, std::string_view value, std::string_view expected) {
  return "bad value '" + std::string(value) + "' for " + std::string(shown) + " (expected " +
         std::string(expected) + ")";
}

// A whole decimal number in [low, high], nothing else.
std::optional<std::uint64_t> parse_number(std::string_view text, std::uint64_t low,
                                          std::uint64_t high) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < low || value > high) {
    return std::nullopt;
  }
  return value;
}

// Non-negative seconds, fractions allowed (libfuse's timeout=1.5), at most a year.
std::optional<api::Timeout> parse_seconds(std::string_view text) {
  double seconds = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  if (ec != std::errc{} || end != text.data() + text.size() || !std::isfinite(seconds) ||
      seconds < 0 || seconds > 365.0 * 86400) {
    return std::nullopt;
  }
  return std::chrono::duration_cast<api::Timeout>(std::chrono::duration<double>(seconds));
}

std::optional<passthrough::CachePolicy> parse_cache(std::string_view text) {
  using passthrough::CachePolicy;
  if (text == "never") return CachePolicy::never;
  if (text == "metadata") return CachePolicy::metadata;
  if (text == "auto") return CachePolicy::automatic;
  if (text == "always") return CachePolicy::always;
  return std::nullopt;
}

std::optional<passthrough::InodeFileHandles> parse_inode_file_handles(std::string_view text) {
  using passthrough::InodeFileHandles;
  if (text == "auto") return InodeFileHandles::automatic;
  if (text == "never") return InodeFileHandles::never;
  if (text == "prefer") return InodeFileHandles::prefer;
  if (text == "mandatory") return InodeFileHandles::mandatory;
  return std::nullopt;
}

// Options without a value: -o NAME or --NAME.
struct Flag {
  std::string_view name;
  void (*apply)(Options&);
};
constexpr Flag flags[] = {
    {"allow_other", [](Options& o) { o.mount.allow_other = true; }},
    {"default_permissions", [](Options& o) { o.mount.default_permissions = true; }},
    {"ro", [](Options& o) { o.mount.read_only = true; }},
    {"rw", [](Options& o) { o.mount.read_only = false; }},
    {"suid", [](Options& o) { o.mount.nosuid = false; }},
    {"nosuid", [](Options& o) { o.mount.nosuid = true; }},
    {"dev", [](Options& o) { o.mount.nodev = false; }},
    {"nodev", [](Options& o) { o.mount.nodev = true; }},
    {"exec", [](Options& o) { o.mount.noexec = false; }},
    {"noexec", [](Options& o) { o.mount.noexec = true; }},
    {"writeback", [](Options& o) { o.fs.writeback = true; }},
    {"no_writeback", [](Options& o) { o.fs.writeback = false; }},
    {"passthrough_backing", [](Options& o) { o.fs.passthrough_backing = true; }},
    {"splice_writes", [](Options& o) { o.service.splice_writes = true; }},
    {"no_splice_writes", [](Options& o) { o.service.splice_writes = false; }},
    {"io_uring", [](Options& o) { o.service.io_uring = true; }},
    {"no_io_uring", [](Options& o) { o.service.io_uring = false; }},
    {"xattr", [](Options& o) { o.fs.xattr = true; }},
    {"noxattr", [](Options& o) { o.fs.xattr = false; }},
    {"no_xattr", [](Options& o) { o.fs.xattr = false; }},  // passthrough_ll's spelling
    {"readdirplus", [](Options& o) { o.fs.readdirplus = true; }},
    {"no_readdirplus", [](Options& o) { o.fs.readdirplus = false; }},
    {"posix_locks", [](Options& o) { o.fs.posix_locks = true; }},
    {"no_posix_locks", [](Options& o) { o.fs.posix_locks = false; }},
    {"write_behind", [](Options& o) { o.fs.write_behind = true; }},
    {"no_write_behind", [](Options& o) { o.fs.write_behind = false; }},
    {"no_open", [](Options& o) { o.fs.no_open = true; }},
    {"no_opendir", [](Options& o) { o.fs.no_opendir = true; }},
    {"killpriv_v2", [](Options& o) { o.fs.killpriv_v2 = true; }},
    {"announce_submounts", [](Options& o) { o.fs.announce_submounts = true; }},
    {"seal_size", [](Options& o) { o.fs.seal_size = true; }},
    {"host_ino", [](Options& o) { o.fs.use_host_ino = true; }},
    {"no_host_ino", [](Options& o) { o.fs.use_host_ino = false; }},
    {"debug", [](Options& o) { o.debug = true; }},
};

// timeout (both), entry_timeout, attr_timeout.
template <bool entry, bool attr>
Problem set_timeouts(Options& o, std::string_view shown, std::string_view value) {
  const auto timeout = parse_seconds(value);
  if (!timeout) return bad_value(shown, value, "seconds >= 0, e.g. 1 or 0.5");
  if (entry) o.fs.entry_timeout = *timeout;
  if (attr) o.fs.attr_timeout = *timeout;
  return std::nullopt;
}

// Options with a value: -o NAME=VALUE, --NAME=VALUE or --NAME VALUE.
struct Setting {
  std::string_view name;
  Problem (*apply)(Options&, std::string_view shown, std::string_view value);
};
constexpr Setting settings[] = {
    {"cache",
     [](Options& o, std::string_view shown, std::string_view value) -> Problem {
       const auto policy = parse_cache(value);
       if (!policy) return bad_value(shown, value, "never, metadata, auto or always");
       o.fs.cache_policy = *policy;
       return std::nullopt;
     }},
    {"inode_file_handles",
     [](Options& o, std::string_view shown, std::string_view value) -> Problem {
       const auto mode = parse_inode_file_handles(value);
       if (!mode) return bad_value(shown, value, "auto, never, prefer or mandatory");
       o.fs.inode_file_handles = *mode;
       return std::nullopt;
     }},
    {"timeout", set_timeouts<true, true>},
    {"entry_timeout", set_timeouts<true, false>},
    {"attr_timeout", set_timeouts<false, true>},
    {"fsname",
     [](Options& o, std::string_view shown, std::string_view value) -> Problem {
       // A comma would split the mount option string fusermount3 and the kernel parse.
       if (value.empty() || value.find(',') != std::string_view::npos) {
         return bad_value(shown, value, "a non-empty name without ','");
       }
       o.mount.fsname = value;
       o.fsname_set = true;
       return std::nullopt;
     }},
    {"subtype",
     [](Options& o, std::string_view shown, std::string_view value) -> Problem {
       if (value.empty() || value.find_first_of(",./ ") != std::string_view::npos) {
         return bad_value(shown, value, "a non-empty name without ',', '.', '/' or spaces");
       }
       o.mount.subtype = value;
       return std::nullopt;
     }},
};

// Whole-number options: -o NAME=N with N in [low, high], counted in `unit` (for the message).
struct NumberSetting {
  std::string_view name;
  std::string_view unit;
  std::uint64_t low, high;
  void (*store)(Options&, std::uint64_t);
};
constexpr NumberSetting number_settings[] = {
    {"inode_fd_budget", "a whole number", 1, 1u << 30,
     [](Options& o, std::uint64_t n) { o.fs.inode_fd_budget = static_cast<std::size_t>(n); }},
    {"threads", "a whole number", 1, 256,
     [](Options& o, std::uint64_t n) { o.service.threads = static_cast<unsigned>(n); }},
    {"busy_poll", "microseconds", 0, 10000,
     [](Options& o, std::uint64_t n) { o.service.busy_poll = std::chrono::microseconds(n); }},
    {"max_write", "bytes", 4096, 16u << 20,
     [](Options& o, std::uint64_t n) { o.service.server.max_write = static_cast<std::uint32_t>(n); }},
    {"max_read", "bytes", 4096, 16u << 20,
     [](Options& o, std::uint64_t n) { o.mount.max_read = static_cast<std::uint32_t>(n); }},
};

Problem apply_number(const NumberSetting& setting, Options& options, std::string_view shown,
                     std::string_view value) {
  const auto number = parse_number(value, setting.low, setting.high);
  if (!number) {
    return bad_value(shown, value,
                     std::string(setting.unit) + " from " + std::to_string(setting.low) + " to " +
                         std::to_string(setting.high));
  }
  setting.store(options, *number);
  return std::nullopt;
}

const Setting* find_setting(std::string_view name) {
  const auto found = std::ranges::find(settings, name, &Setting::name);
  return found == std::end(settings) ? nullptr : found;
}

const NumberSetting* find_number_setting(std::string_view name) {
  const auto found = std::ranges::find(number_settings, name, &NumberSetting::name);
  return found == std::end(number_settings) ? nullptr : found;
}

bool takes_value(std::string_view name) {
  return find_setting(name) != nullptr || find_number_setting(name) != nullptr;
}

// Applies option `name` (spelt with '_'), with `value` when one was attached. `shown` is how the
// user wrote it, for messages ("-o threads", "--threads").
Problem apply_option(Options& options, std::string_view name, std::optional<std::string_view> value,
                     std::string_view shown) {
  for (const Flag& flag : flags) {
    if (flag.name != name) continue;
    if (value) return std::string(shown) + " takes no value (got '" + std::string(*value) + "')";
    flag.apply(options);
    return std::nullopt;
  }
  if (!takes_value(name)) return "unknown option '" + std::string(shown) + "' (see --help)";
  if (!value) return std::string(shown) + " needs a value (" + std::string(shown) + "=VALUE)";
  if (const Setting* setting = find_setting(name)) return setting->apply(options, shown, *value);
  return apply_number(*find_number_setting(name), options, shown, *value);
}

// -o a,b=c,...: each item is NAME or NAME=VALUE.
Problem apply_mount_options(Options& options, std::string_view list) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    const std::string_view item = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    if (item.empty()) continue;
    const auto equals = item.find('=');
    const std::string_view name = item.substr(0, equals);
    const std::optional<std::string_view> value =
        equals == std::string_view::npos ? std::nullopt : std::optional(item.substr(equals + 1));
    if (auto problem = apply_option(options, name, value, "-o " + std::string(name))) return problem;
  }
  return std::nullopt;
}

// The whole command line. Positional arguments go to source / mountpoint; "--" ends options.
Problem parse_command_line(int argc, char** argv, Options& options) {
  std::optional<std::string> positional[2];
  std::size_t positionals = 0;
  const auto add_positional = [&](std::string_view arg) -> Problem {
    if (positionals == 2) return "unexpected argument '" + std::string(arg) + "' (" + usage_line + ")";
    positional[positionals++] = std::string(arg);
    return std::nullopt;
  };
  bool options_done = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    Problem problem;
    if (options_done || arg.size() < 2 || arg[0] != '-') {
      problem = add_positional(arg);
    } else if (arg == "--") {
      options_done = true;
    } else if (arg == "-h" || arg == "--help") {
      options.help = true;
    } else if (arg == "-V" || arg == "--version") {
      options.version = true;
    } else if (arg == "-f" || arg == "--foreground") {
      // Nothing to do: the daemon always stays in the foreground.
    } else if (arg == "-d" || arg == "--debug") {
      options.debug = true;
    } else if (arg == "-o") {
      if (i + 1 == argc) return "-o needs a value (-o OPT[,OPT...])";
      problem = apply_mount_options(options, argv[++i]);
    } else if (arg.starts_with("-o")) {
      problem = apply_mount_options(options, arg.substr(2));
    } else if (arg.starts_with("--")) {
      // --name, --name=value or --name value (the latter for options that take a value).
      const auto equals = arg.find('=');
      std::string name(arg.substr(2, equals == std::string_view::npos ? arg.npos : equals - 2));
      std::replace(name.begin(), name.end(), '-', '_');
      const std::string shown(arg.substr(0, equals));
      std::optional<std::string_view> value;
      if (equals != std::string_view::npos) {
        value = arg.substr(equals + 1);
      } else if (takes_value(name)) {
        if (i + 1 == argc) return shown + " needs a value";
        value = argv[++i];
      }
      problem = apply_option(options, name, value, shown);
    } else {
      return "unknown option '" + std::string(arg) + "' (see --help)";
    }
    if (problem) return problem;
  }
  if (options.help || options.version) return std::nullopt;
  if (positionals == 0) return std::string("missing SOURCE and MOUNTPOINT (") + usage_line + ")";
  if (positionals == 1) return std::string("missing MOUNTPOINT (") + usage_line + ")";
  options.source = *positional[0];
  options.mountpoint = *positional[1];
  if (options.fs.writeback && options.fs.passthrough_backing) {
    return "writeback and passthrough_backing cannot be combined (the kernel refuses a writeback "
           "cache over backing files)";
  }
  if (options.fs.seal_size && options.fs.passthrough_backing) {
    return "seal_size and passthrough_backing cannot be combined (the kernel writes backing files "
           "itself, past any seal)";
  }
  return std::nullopt;
}

// --- paths ----------------------------------------------------------------------------------

std::string errno_text(std::errc error) { return std::make_error_code(error).message(); }

// `path` made absolute and free of symlinks (the form /proc/mounts and fusermount3 use).
std::optional<std::string> canonical(const std::string& path) {
  std::unique_ptr<char, decltype(&::free)> resolved(::realpath(path.c_str(), nullptr), &::free);
  if (!resolved) return std::nullopt;
  return std::string(resolved.get());
}

Problem validate_source(Options& options) {
  const std::string& source = options.source;
  struct stat st {};
  if (auto found = syscall_void([&] { return ::stat(source.c_str(), &st); }); !found) {
    if (found.error() == std::errc::no_such_file_or_directory) {
      return "source '" + source + "' does not exist";
    }
    return "cannot access source '" + source + "': " + errno_text(found.error());
  }
  if (!S_ISDIR(st.st_mode)) return "source '" + source + "' is not a directory";
  const auto resolved = canonical(source);
  if (!resolved) return "cannot resolve source '" + source + "': " + errno_text(std::errc{errno});
  options.fs.source = *resolved;
  if (!options.fsname_set) {
    options.mount.fsname = resolved->find(',') == std::string::npos ? *resolved : "passthrough";
  }
  return std::nullopt;
}

Problem validate_mountpoint(Options& options) {
  const std::string& mountpoint = options.mountpoint;
  struct statx stx {};
  // statx, not stat: STATX_ATTR_MOUNT_ROOT says whether something is mounted here already
  // (mount(2) would happily stack a second filesystem on top of it).
  if (auto found = syscall_void([&] {
        return ::statx(AT_FDCWD, mountpoint.c_str(), 0, STATX_TYPE, &stx);
      });
      !found) {
    switch (found.error()) {
      case std::errc::no_such_file_or_directory:
        return "mountpoint '" + mountpoint + "' does not exist";
      case std::errc::not_connected:  // a FUSE mount whose daemon died
        return "mountpoint '" + mountpoint +
               "' is a dead FUSE mount (transport endpoint is not connected): unmount it first";
      default:
        return "cannot access mountpoint '" + mountpoint + "': " + errno_text(found.error());
    }
  }
  if (!S_ISDIR(stx.stx_mode)) return "mountpoint '" + mountpoint + "' is not a directory";
  if ((stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) != 0 &&
      (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0) {
    return "mountpoint '" + mountpoint + "' is busy: a filesystem is already mounted there";
  }
  const auto resolved = canonical(mountpoint);
  if (!resolved) {
    return "cannot resolve mountpoint '" + mountpoint + "': " + errno_text(std::errc{errno});
  }
  options.mountpoint = *resolved;
  return std::nullopt;
}

// --- serving --------------------------------------------------------------------------------

// --debug: one line per request and one per reply. fprintf locks stderr, so the lines of
// concurrent workers never interleave.
class DebugLog final : public api::RequestObserver {
 public:
  void on_request(const abi::in_header& header) noexcept override {
    const std::string_view op = abi::opcode_name(header.opcode);
    std::fprintf(stderr, "passthrough: unique %llu: %.*s nodeid %llu uid %u gid %u pid %u\n",
                 static_cast<unsigned long long>(header.unique), static_cast<int>(op.size()),
                 op.data(), static_cast<unsigned long long>(header.nodeid), header.uid, header.gid,
                 header.pid);
  }
  void on_reply(const abi::in_header& header, int error, std::size_t reply_size) noexcept override {
    const std::string_view op = abi::opcode_name(header.opcode);
    const char* outcome = error < 0 ? "no reply" : error == 0 ? "ok" : ::strerrorname_np(error);
    std::fprintf(stderr, "passthrough: unique %llu: %.*s nodeid %llu -> %s (%zu bytes)\n",
                 static_cast<unsigned long long>(header.unique), static_cast<int>(op.size()),
                 op.data(), static_cast<unsigned long long>(header.nodeid),
                 outcome != nullptr ? outcome : "error", reply_size);
  }
};

int fail_with(const std::string& message) {
  std::fprintf(stderr, "passthrough: %s\n", message.c_str());
  return 1;
}

// Mounts, serves until unmounted or signalled, unmounts. Returns the exit status.
int serve(Options& options) {
  // First, before any thread exists: every thread inherits SIGINT/SIGTERM blocked, and a signal
  // arriving while we mount waits for the watcher instead of killing us with the mount half made.
  std::optional<fusedev::SignalWatcher> signals(std::in_place);

  // Blocking locks (F_SETLKW, flock) may wait while one worker stays free for the unlock or the
  // INTERRUPT that ends the wait; with a single worker a contended one answers EOPNOTSUPP.
  // (With io_uring they wait on helper threads, which the queues bound themselves; the /dev/fuse
  // workers that INTERRUPTs come to are never held, but the same limit keeps both modes alike.)
  options.fs.max_lock_waiters = options.service.threads - 1;
  // An fd per inode the kernel holds: the usual soft limit of 1024 would cap the client's caches.
  if (auto limit = passthrough::raise_open_file_limit(); !limit) {
    std::fprintf(stderr, "passthrough: warning: cannot raise the open file limit: %s\n",
                 errno_text(limit.error()).c_str());
  } else if (options.debug) {
    std::fprintf(stderr, "passthrough: open file limit %llu (was %llu)\n",
                 static_cast<unsigned long long>(limit->after),
                 static_cast<unsigned long long>(limit->before));
  }
  auto fs = passthrough::PassthroughFs::create(options.fs);
  if (!fs) {
    const bool no_handles = options.fs.inode_file_handles == passthrough::InodeFileHandles::mandatory &&
                            (fs.error() == std::errc::operation_not_supported ||
                             fs.error() == std::errc::operation_not_permitted);
    return fail_with("cannot serve '" + options.fs.source + "': " + errno_text(fs.error()) +
                     (no_handles ? " (inode_file_handles=mandatory needs file handles on SOURCE "
                                   "and CAP_DAC_READ_SEARCH)"
                                 : ""));
  }
  auto session = fusedev::Session::mount(options.mountpoint, options.mount);
  if (!session) {
    return fail_with("cannot mount on '" + options.mountpoint + "': " + errno_text(session.error()));
  }

  DebugLog log;
  if (options.debug) options.service.server.observer = &log;
  fusedev::Service service(*session, **fs, options.service);
  // On a signal, first have the kernel write back what it holds dirty (writeback cache, shared
  // mappings) while the workers still serve, and answer those WRITEs before stopping: after the
  // workers end, that data would be lost.
  const auto stop = [&service, &session](int) {
    if (auto synced = session->sync(); !synced) {
      std::fprintf(stderr, "passthrough: warning: cannot write back before stopping: %s\n",
                   errno_text(synced.error()).c_str());
    }
    service.drain_and_stop(std::chrono::seconds(10));
  };
  if (auto watching = signals->start(stop); !watching) {
    return fail_with("cannot watch signals: " + errno_text(watching.error()));
  }
  const auto served = service.run();  // until a signal, an unmount from outside, or DESTROY
  const auto unmounted = session->unmount(/*lazy=*/true);  // a no-op when unmounted from outside
  signals.reset();  // its thread calls into `service`: it must end before `service` does
  if (!served) return fail_with("serving failed: " + errno_text(served.error()));
  if (!unmounted) {
    return fail_with("cannot unmount '" + options.mountpoint + "': " + errno_text(unmounted.error()));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  options.mount.subtype = "passthrough";
  options.service.threads = default_threads();

  if (auto problem = parse_command_line(argc, argv, options)) return fail_with(*problem);
  if (options.help) {
    std::fputs(help_text, stdout);
    return 0;
  }
  if (options.version) {
    std::printf("passthrough (fuse_backend example), FUSE protocol %u.%u\n", abi::kernel_version,
                abi::kernel_minor_version);
    return 0;
  }
  if (auto problem = validate_source(options)) return fail_with(*problem);
  if (auto problem = validate_mountpoint(options)) return fail_with(*problem);
  return serve(options);
}
