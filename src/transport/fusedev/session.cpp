// Mounting and unmounting /dev/fuse filesystems: mount(2) when privileged, fusermount3 otherwise.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/transport/fusedev/session.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <fuse_backend/detail/syscall.hpp>

extern char** environ;

namespace fuse_backend::transport::fusedev {
namespace {

constexpr const char* fusermount = "fusermount3";

// Options both mount paths understand, comma-separated (no leading comma).
std::string common_options(const MountOptions& options) {
  std::string out;
  const auto add = [&out](std::string_view option) {
    if (!out.empty()) out += ',';
    out += option;
  };
  if (options.allow_other) add("allow_other");
  if (options.default_permissions) add("default_permissions");
  if (options.max_read != 0) add("max_read=" + std::to_string(options.max_read));
  for (const auto& extra : options.extra) add(extra);
  return out;
}

unsigned long mount_flags(const MountOptions& options) {
  unsigned long flags = 0;
  if (options.read_only) flags |= MS_RDONLY;
  if (options.nosuid) flags |= MS_NOSUID;
  if (options.nodev) flags |= MS_NODEV;
  if (options.noexec) flags |= MS_NOEXEC;
  return flags;
}

// fusermount3 splits -o on commas and takes a backslash as an escape: a name must have both
// escaped, or a comma in it (a source path, say) would inject options.
std::string escaped_option_value(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == ',' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// fusermount3 takes the flags and names as -o options too.
std::string fusermount_options(const MountOptions& options) {
  std::string out = "fsname=" + escaped_option_value(options.fsname);
  if (!options.subtype.empty()) out += ",subtype=" + escaped_option_value(options.subtype);
  out += options.read_only ? ",ro" : ",rw";
  out += options.nosuid ? ",nosuid" : ",suid";
  out += options.nodev ? ",nodev" : ",dev";
  out += options.noexec ? ",noexec" : ",exec";
  if (auto common = common_options(options); !common.empty()) out += "," + common;
  return out;
}

// Runs fusermount3 with `args` (after argv[0]); when `comm_fd` >= 0 it is passed to the child
// under the same number, named by _FUSE_COMMFD. Returns the child's pid.
Result<pid_t> spawn_fusermount(std::vector<std::string> args, int comm_fd) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(fusermount));
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  std::string comm_env = "_FUSE_COMMFD=" + std::to_string(comm_fd);
  std::vector<char*> envp;
  for (char** env = environ; *env != nullptr; ++env) {
    if (std::strncmp(*env, "_FUSE_COMMFD=", 13) != 0) envp.push_back(*env);
  }
  if (comm_fd >= 0) envp.push_back(comm_env.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  if (int rc = posix_spawn_file_actions_init(&actions); rc != 0) return fail(std::errc{rc});
  // dup2 onto itself clears FD_CLOEXEC in the child only (glibc >= 2.29, POSIX 2024).
  int rc = comm_fd >= 0 ? posix_spawn_file_actions_adddup2(&actions, comm_fd, comm_fd) : 0;
  pid_t pid = -1;
  if (rc == 0) rc = posix_spawnp(&pid, fusermount, &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return fail(std::errc{rc});
  return pid;
}

// Waits for `pid`; success when it exited with status 0.
Result<void> wait_success(pid_t pid) noexcept {
  int status = 0;
  auto waited = detail::syscall_result([&] { return ::waitpid(pid, &status, 0); });
  if (!waited) return fail(waited.error());
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    // fusermount3 has said why on stderr; all we can tell our caller is that it refused.
    return fail(std::errc::operation_not_permitted);
  }
  return {};
}

// Receives the device fd fusermount3 sends over `sock` (one data byte + SCM_RIGHTS).
Result<detail::UniqueFd> receive_fd(int sock) noexcept {
  char byte = 0;
  iovec iov{&byte, 1};
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int))> control{};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  auto received = detail::syscall_result([&] { return ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); });
  if (!received) return fail(received.error());
  const cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  if (*received == 0 || cmsg == nullptr || cmsg->cmsg_level != SOL_SOCKET ||
      cmsg->cmsg_type != SCM_RIGHTS || cmsg->cmsg_len != CMSG_LEN(sizeof(int))) {
    return fail(std::errc::operation_not_permitted);  // the helper refused and closed the socket
  }
  int fd = -1;
  std::memcpy(&fd, CMSG_DATA(cmsg), sizeof(fd));
  return detail::UniqueFd(fd);
}

Result<detail::UniqueFd> mount_with_fusermount(const std::string& mountpoint,
                                               const MountOptions& options) {
  std::array<int, 2> socks{};
  if (auto made = detail::syscall_void(
          [&] { return ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socks.data()); });
      !made) {
    return fail(made.error());
  }
  detail::UniqueFd ours(socks[0]);
  detail::UniqueFd theirs(socks[1]);
  auto pid = spawn_fusermount({"-o", fusermount_options(options), "--", mountpoint}, theirs.get());
  if (!pid) return fail(pid.error());
  theirs.reset();  // so recvmsg sees EOF if the helper exits without sending
  auto fd = receive_fd(ours.get());
  auto waited = wait_success(*pid);
  if (!fd) return fd;
  // An fd arrives only from a mount made: ours now, whatever the wait says (ECHILD when the
  // embedding program ignores SIGCHLD or reaps every child), as libfuse has it.
  (void)waited;
  return fd;
}

// The unique id (Linux >= 6.8: never reused, unlike device numbers and plain mount ids) of the
// mount at `mountpoint`, without a request to a FUSE server (AT_STATX_DONT_SYNC, no attributes
// asked), so that it works before our workers serve and on a connection that no longer does.
Result<std::uint64_t> mount_id(const std::string& mountpoint) noexcept {
  constexpr unsigned unique_mount_id = 0x4000;  // STATX_MNT_ID_UNIQUE, newer than glibc 2.36
  struct statx stx {};
  if (auto done = detail::syscall_void([&] {
        return ::statx(AT_FDCWD, mountpoint.c_str(), AT_STATX_DONT_SYNC | AT_SYMLINK_NOFOLLOW,
                       unique_mount_id, &stx);
      });
      !done)
    return fail(done.error());
  if ((stx.stx_mask & unique_mount_id) == 0) return fail(std::errc::not_supported);
  return stx.stx_mnt_id;
}

Result<std::string> absolute_path(const std::string& path) {
  std::unique_ptr<char, decltype(&std::free)> resolved(::realpath(path.c_str(), nullptr),
                                                       &std::free);
  if (!resolved) return fail_errno();
  return std::string(resolved.get());
}

}  // namespace

std::string mount_data(const MountOptions& options, int fd, std::uint32_t root_mode,
                       std::uint32_t uid, std::uint32_t gid) {
  char mode[16];
  std::snprintf(mode, sizeof(mode), "%o", root_mode);
  std::string data = "fd=" + std::to_string(fd) + ",rootmode=" + mode +
                     ",user_id=" + std::to_string(uid) + ",group_id=" + std::to_string(gid);
  if (auto common = common_options(options); !common.empty()) data += "," + common;
  return data;
}

Result<Session> Session::mount(const std::string& mountpoint, const MountOptions& options) {
  struct stat st {};
  if (auto ok = detail::syscall_void([&] { return ::stat(mountpoint.c_str(), &st); }); !ok) {
    return fail(ok.error());
  }
  if (!S_ISDIR(st.st_mode)) return fail(std::errc::not_a_directory);
  auto path = absolute_path(mountpoint);
  if (!path) return fail(path.error());

  auto opened = detail::syscall_result<int>([] { return ::open("/dev/fuse", O_RDWR | O_CLOEXEC); });
  if (!opened) return fail(opened.error());
  detail::UniqueFd fd(*opened);

  const std::string type = options.subtype.empty() ? "fuse" : "fuse." + options.subtype;
  const std::string data =
      mount_data(options, fd.get(), st.st_mode & S_IFMT, ::getuid(), ::getgid());
  auto mounted = detail::syscall_void([&] {
    return ::mount(options.fsname.c_str(), path->c_str(), type.c_str(), mount_flags(options),
                   data.c_str());
  });
  if (mounted) return Session(std::move(fd), std::move(*path), false);
  if (mounted.error() != std::errc::operation_not_permitted) return fail(mounted.error());

  // Not privileged: the set-uid helper mounts for us and hands back its own device fd.
  auto helper_fd = mount_with_fusermount(*path, options);
  if (!helper_fd) return fail(helper_fd.error());
  return Session(std::move(*helper_fd), std::move(*path), true);
}

Session::Session(detail::UniqueFd fd, std::string mountpoint, bool via_fusermount) noexcept
    : fd_(std::move(fd)),
      mountpoint_(std::move(mountpoint)),
      mount_id_(mount_id(mountpoint_).value_or(0)),
      mounted_(true),
      via_fusermount_(via_fusermount) {}

Session::Session(Session&& other) noexcept
    : fd_(std::move(other.fd_)),
      mountpoint_(std::move(other.mountpoint_)),
      mount_id_(other.mount_id_),
      mounted_(std::exchange(other.mounted_, false)),
      via_fusermount_(other.via_fusermount_) {}

Session& Session::operator=(Session&& other) noexcept {
  if (this != &other) {
    if (mounted_) (void)unmount(true);
    fd_ = std::move(other.fd_);
    mountpoint_ = std::move(other.mountpoint_);
    mount_id_ = other.mount_id_;
    mounted_ = std::exchange(other.mounted_, false);
    via_fusermount_ = other.via_fusermount_;
  }
  return *this;
}

Session::~Session() {
  if (mounted_) (void)unmount(true);
}

Result<void> Session::sync() const noexcept {
  if (!mounted_) return {};
  auto root = detail::syscall_result<int>(
      [&] { return ::open(mountpoint_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
  if (!root) return fail(root.error());
  const detail::UniqueFd fd(*root);
  // Unmounted from outside: the path is some other file system now, with nothing of ours.
  constexpr decltype(statfs::f_type) fuse_super_magic = 0x65735546;
  struct statfs fs {};
  if (auto found = detail::syscall_void([&] { return ::fstatfs(fd.get(), &fs); }); !found) return found;
  if (fs.f_type != fuse_super_magic) return {};
  return detail::syscall_void([&] { return ::syncfs(fd.get()); });
}

Result<void> Session::unmount(bool lazy) noexcept {
  if (!mounted_) return {};
  // Unmounted from outside, the mount point may hold someone else's mount by now (a restarted
  // daemon's, an automounter's): only ours is unmounted, told apart by its unique mount id.
  if (const auto now = mount_id(mountpoint_); mount_id_ != 0 && now && *now != mount_id_) {
    mounted_ = false;
    return {};
  }
  if (via_fusermount_) {
    try {
      std::vector<std::string> args{"-u", "-q"};
      if (lazy) args.emplace_back("-z");
      args.emplace_back("--");
      args.push_back(mountpoint_);
      auto pid = spawn_fusermount(std::move(args), -1);
      if (!pid) return fail(pid.error());
      // ECHILD: the embedding program reaps children itself; the unmount's outcome is unknown
      // then, and nothing can be done about it.
      auto waited = wait_success(*pid);
      if (!waited && waited.error() != std::errc::no_child_process) return waited;
    } catch (...) {  // std::bad_alloc building the arguments
      return fail(std::errc::not_enough_memory);
    }
  } else {
    auto done = detail::syscall_void(
        [&] { return ::umount2(mountpoint_.c_str(), UMOUNT_NOFOLLOW | (lazy ? MNT_DETACH : 0)); });
    // EINVAL: not a mount point any more, i.e. it was unmounted from outside.
    if (!done && done.error() != std::errc::invalid_argument) return done;
  }
  mounted_ = false;
  return {};
}

}  // namespace fuse_backend::transport::fusedev
