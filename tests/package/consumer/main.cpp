// A downstream program built against the installed fuse_backend package, the way a user writes
// one: a tiny filesystem (an empty read-only root directory) served over /dev/fuse by
// Server<fusedev::Transport, EmptyFs> on one thread.
//
//   fuse_backend_consumer              checks the pieces without mounting (what ctest runs)
//   fuse_backend_consumer MOUNTPOINT   mounts and serves until unmounted
//
// Building it proves the installed headers compile with only the package's usage requirements,
// the Server template instantiates, and the archive links with its dependencies.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <sys/stat.h>

#include <cstdio>
#include <optional>
#include <string_view>
#include <system_error>

#include <fuse_backend/api/filesystem.hpp>
#include <fuse_backend/api/server.hpp>
#include <fuse_backend/result.hpp>
#include <fuse_backend/transport/fusedev/channel.hpp>
#include <fuse_backend/transport/fusedev/session.hpp>

namespace {

namespace api = fuse_backend::api;
namespace fusedev = fuse_backend::transport::fusedev;
using fuse_backend::Result;

class EmptyFs {
 public:
  Result<api::Entry> lookup(const api::Context&, api::InodeId, std::string_view) {
    return fuse_backend::fail(std::errc::no_such_file_or_directory);
  }
  Result<api::AttrReply> getattr(const api::Context&, api::InodeId inode,
                                 std::optional<api::HandleId>) {
    if (inode != api::root_inode) return fuse_backend::fail(std::errc::no_such_file_or_directory);
    api::AttrReply reply;
    reply.attr.st_ino = 1;
    reply.attr.st_mode = S_IFDIR | 0555;
    reply.attr.st_nlink = 2;
    return reply;
  }
};

using EmptyServer = api::Server<fusedev::Transport, EmptyFs>;

// One request after another until the kernel says the filesystem is gone (ENODEV).
Result<void> serve(fusedev::Session& session, EmptyServer& server) {
  fusedev::Channel channel(session.fd(), server.buffer_size());
  while (!server.destroyed()) {
    auto reader = channel.receive(nullptr);
    if (!reader) {
      if (reader.error() == std::errc::no_such_device) break;
      return fuse_backend::fail(reader.error());
    }
    auto writer = channel.writer();
    if (auto handled = server.handle(*reader, writer); !handled) {
      return fuse_backend::fail(handled.error());
    }
  }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  EmptyFs fs;
  EmptyServer server(fs);
  if (argc == 2) {
    auto session = fusedev::Session::mount(argv[1]);
    if (!session) {
      std::fprintf(stderr, "mount %s: %s\n", argv[1],
                   std::make_error_code(session.error()).message().c_str());
      return 1;
    }
    return serve(*session, server) ? 0 : 1;
  }
  const auto data = fusedev::mount_data({}, 3, S_IFDIR, 0, 0);
  if (!fs.getattr(api::Context{}, api::root_inode, std::nullopt) || data.empty()) return 1;
  std::printf("fuse_backend consumer: buffer %zu bytes, mount data \"%s\"\n", server.buffer_size(),
              data.c_str());
  return 0;
}
