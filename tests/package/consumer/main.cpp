// A downstream program built against the installed fuse_backend package: a tiny read-only
// filesystem (just a root directory) checked against the Filesystem concept, plus a call into
// the compiled library, so headers, include paths, the archive and its dependencies are all
// exercised as a user gets them.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <sys/stat.h>

#include <cstdio>
#include <optional>
#include <string_view>
#include <system_error>

#include <fuse_backend/api/filesystem.hpp>
#include <fuse_backend/result.hpp>
#include <fuse_backend/transport/fusedev/session.hpp>

namespace {

namespace api = fuse_backend::api;

class EmptyFs {
 public:
  fuse_backend::Result<api::Entry> lookup(const api::Context&, api::InodeId, std::string_view) {
    return fuse_backend::fail(std::errc::no_such_file_or_directory);
  }
  fuse_backend::Result<api::AttrReply> getattr(const api::Context&, api::InodeId inode,
                                               std::optional<api::HandleId>) {
    if (inode != api::root_inode) return fuse_backend::fail(std::errc::no_such_file_or_directory);
    api::AttrReply reply;
    reply.attr.st_ino = 1;
    reply.attr.st_mode = S_IFDIR | 0555;
    reply.attr.st_nlink = 2;
    return reply;
  }
};
static_assert(api::Filesystem<EmptyFs>);

}  // namespace

int main() {
  EmptyFs fs;
  auto attr = fs.getattr(api::Context{}, api::root_inode, std::nullopt);
  const auto data = fuse_backend::transport::fusedev::mount_data({}, 3, S_IFDIR, 0, 0);
  if (!attr || data.empty()) return 1;
  std::printf("fuse_backend consumer: mount data \"%s\"\n", data.c_str());
  return 0;
}
