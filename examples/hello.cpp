// hello: the smallest useful filesystem, a read-only directory holding two files.
//
//   hello MOUNTPOINT    mounts, then serves until unmounted (umount MOUNTPOINT) or SIGINT/SIGTERM
//
// The model for writing your own: a filesystem is a plain class with the ops it supports
// (here lookup, getattr, open, read, readdir; every other op answers ENOSYS by itself), a
// Session mounts it, a Service's worker threads serve it, and a SignalWatcher stops them.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/api/filesystem.hpp>
#include <fuse_backend/transport/fusedev/service.hpp>
#include <fuse_backend/transport/fusedev/session.hpp>
#include <fuse_backend/transport/fusedev/signals.hpp>

namespace {

namespace api = fuse_backend::api;
namespace fusedev = fuse_backend::transport::fusedev;
using fuse_backend::fail;
using fuse_backend::Result;

struct File {
  std::string_view name;
  std::string_view text;
};
// Inode 1 is the root directory; files[i] is inode i + 2.
constexpr std::array<File, 2> files{{
    {"hello.txt", "Hello, world!\n"},
    {"README", "Served from memory by examples/hello.cpp (fuse_backend).\n"},
}};
constexpr auto ttl = std::chrono::seconds(60);  // nothing ever changes: let the kernel cache

class HelloFs {
 public:
  HelloFs() { std::timespec_get(&started_, TIME_UTC); }

  Result<api::Entry> lookup(const api::Context&, api::InodeId parent, std::string_view name) {
    if (parent != api::root_inode) return fail(std::errc::not_a_directory);
    for (std::size_t i = 0; i < files.size(); ++i) {
      if (files[i].name == name) {
        // Inodes never go away here, so lookups need no counting (and there is no forget op).
        api::Entry entry;
        entry.inode = api::InodeId{i + 2};
        entry.attr = attributes(i + 2);
        entry.attr_timeout = entry.entry_timeout = ttl;
        return entry;
      }
    }
    return fail(std::errc::no_such_file_or_directory);
  }

  Result<api::AttrReply> getattr(const api::Context&, api::InodeId inode, std::optional<api::HandleId>) {
    const auto ino = static_cast<std::uint64_t>(inode);
    if (ino == 0 || ino > files.size() + 1) return fail(std::errc::no_such_file_or_directory);
    api::AttrReply reply;
    reply.attr = attributes(ino);
    reply.timeout = ttl;
    return reply;
  }

  Result<api::OpenReply> open(const api::Context&, api::InodeId, std::uint32_t flags, std::uint32_t) {
    if ((flags & O_ACCMODE) != O_RDONLY) return fail(std::errc::read_only_file_system);
    api::OpenReply reply;
    reply.open_flags = fuse_backend::abi::fopen::keep_cache;  // the page cache stays valid
    return reply;
  }

  Result<std::size_t> read(const api::Context&, api::InodeId inode, api::HandleId, api::ZeroCopyWriter& out,
                           std::uint32_t size, std::uint64_t offset, std::uint32_t) {
    const std::string_view text = files.at(static_cast<std::uint64_t>(inode) - 2).text;
    if (offset >= text.size()) return std::size_t{0};
    return out.write(std::as_bytes(std::span(text.substr(offset, size))));
  }

  // Entry k of the listing carries cookie k + 1: the kernel passes it back to resume after it.
  Result<void> readdir(const api::Context&, api::InodeId inode, api::HandleId, std::uint64_t offset,
                       api::DirSink& sink) {
    if (inode != api::root_inode) return fail(std::errc::not_a_directory);
    for (std::uint64_t k = offset; k < files.size() + 2; ++k) {
      const api::DirEntry entry = k < 2 ? api::DirEntry{1, k + 1, DT_DIR, k == 0 ? "." : ".."}
                                        : api::DirEntry{k, k + 1, DT_REG, files[k - 2].name};
      if (!sink.add(entry)) break;  // reply full: the kernel asks again from entry.offset
    }
    return {};
  }

 private:
  struct stat attributes(std::uint64_t ino) const {
    struct stat st {};
    st.st_ino = ino;
    st.st_mode = ino == 1 ? S_IFDIR | 0555 : S_IFREG | 0444;
    st.st_nlink = ino == 1 ? 2 : 1;
    st.st_size = ino == 1 ? 0 : static_cast<off_t>(files[ino - 2].text.size());
    st.st_uid = ::getuid();
    st.st_gid = ::getgid();
    st.st_atim = st.st_mtim = st.st_ctim = started_;
    return st;
  }

  std::timespec started_{};
};

int usage_error(const char* message) {
  std::fprintf(stderr, "hello: %s (usage: hello MOUNTPOINT, or hello --help)\n", message);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::puts("usage: hello MOUNTPOINT\n"
              "Mounts a read-only filesystem with hello.txt and README on MOUNTPOINT and serves it\n"
              "until it is unmounted or the process gets SIGINT/SIGTERM.");
    return 0;
  }
  if (argc != 2 || argv[1][0] == '-') return usage_error("expected exactly one MOUNTPOINT");

  fusedev::SignalWatcher signals;  // first: the worker threads inherit the blocked SIGINT/SIGTERM
  fusedev::MountOptions options;
  options.fsname = options.subtype = "hello";
  options.read_only = true;
  auto session = fusedev::Session::mount(argv[1], options);
  if (!session) {
    std::fprintf(stderr, "hello: cannot mount %s: %s\n", argv[1],
                 std::make_error_code(session.error()).message().c_str());
    return 1;
  }

  HelloFs fs;
  fusedev::Service service(*session, fs);
  if (auto watching = signals.start([&](int) { service.stop(); }); !watching) {
    std::fprintf(stderr, "hello: %s\n", std::make_error_code(watching.error()).message().c_str());
    return 1;
  }
  const auto served = service.run();  // until stop(), an unmount from outside, or DESTROY
  (void)session->unmount(/*lazy=*/true);  // a no-op when it was unmounted from outside
  if (!served) {
    std::fprintf(stderr, "hello: %s\n", std::make_error_code(served.error()).message().c_str());
    return 1;
  }
  return 0;
}
