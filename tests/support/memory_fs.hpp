// MemoryFs: an in-memory read-write filesystem modelling api::Filesystem, for tests.
//
// Layer: tests/support (a real implementation behind the concept, not a mock). It has
// directories, regular files, symlinks, special nodes, hard links, xattrs, rename with
// RENAME_NOREPLACE / RENAME_EXCHANGE, readdir and readdirplus with cookies that stay valid while
// the directory changes, and honest lookup counting: an inode whose last link is gone lives on
// until the kernel has forgotten every reference and every handle is released, so forget
// handling can be observed through lookup_count() / inode_count().
// Thread safety: every op takes one mutex, so any number of worker threads may share one
// MemoryFs. Inode numbers are never reused (generation stays 0). The public API is the
// Filesystem concept's ops plus the two observers.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <fuse_backend/api/context.hpp>
#include <fuse_backend/api/dir_sink.hpp>
#include <fuse_backend/api/types.hpp>
#include <fuse_backend/api/zero_copy.hpp>
#include <fuse_backend/result.hpp>

namespace fuse_backend::testing {

class MemoryFs {
 public:
  // `ttl`: entry and attribute timeout of every reply (0 makes the kernel ask for everything).
  explicit MemoryFs(api::Timeout ttl = std::chrono::seconds(1));

  Result<api::Entry> lookup(const api::Context& ctx, api::InodeId parent, std::string_view name);
  void forget(const api::Context& ctx, api::InodeId inode, std::uint64_t nlookup);
  void batch_forget(const api::Context& ctx, std::span<const api::ForgetOne> forgets);
  Result<api::AttrReply> getattr(const api::Context& ctx, api::InodeId inode,
                                 std::optional<api::HandleId> handle);
  Result<api::AttrReply> setattr(const api::Context& ctx, api::InodeId inode,
                                 const api::SetattrIn& in, std::optional<api::HandleId> handle);

  Result<std::size_t> readlink(const api::Context& ctx, api::InodeId inode, std::span<char> target);
  Result<api::Entry> symlink(const api::Context& ctx, std::string_view target, api::InodeId parent,
                             std::string_view name);
  Result<api::Entry> mknod(const api::Context& ctx, api::InodeId parent, std::string_view name,
                           std::uint32_t mode, std::uint32_t rdev);
  Result<api::Entry> mkdir(const api::Context& ctx, api::InodeId parent, std::string_view name,
                           std::uint32_t mode);
  Result<void> unlink(const api::Context& ctx, api::InodeId parent, std::string_view name);
  Result<void> rmdir(const api::Context& ctx, api::InodeId parent, std::string_view name);
  Result<void> rename(const api::Context& ctx, api::InodeId old_parent, std::string_view old_name,
                      api::InodeId new_parent, std::string_view new_name, std::uint32_t flags);
  Result<api::Entry> link(const api::Context& ctx, api::InodeId inode, api::InodeId new_parent,
                          std::string_view new_name);

  Result<api::OpenReply> open(const api::Context& ctx, api::InodeId inode, std::uint32_t flags,
                              std::uint32_t open_flags);
  Result<api::CreateReply> create(const api::Context& ctx, api::InodeId parent,
                                  std::string_view name, std::uint32_t mode, std::uint32_t flags);
  Result<std::size_t> read(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                           api::ZeroCopyWriter& out, std::uint32_t size, std::uint64_t offset,
                           std::uint32_t flags);
  Result<std::size_t> write(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                            api::ZeroCopyReader& in, std::uint32_t size, std::uint64_t offset,
                            std::uint32_t write_flags, std::uint32_t flags);
  Result<void> flush(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                     std::uint64_t lock_owner);
  Result<void> release(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                       std::uint32_t flags, std::uint32_t release_flags, std::uint64_t lock_owner);
  Result<void> fsync(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                     bool datasync);

  Result<api::OpenReply> opendir(const api::Context& ctx, api::InodeId inode, std::uint32_t flags);
  Result<void> readdir(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                       std::uint64_t offset, api::DirSink& sink);
  Result<void> readdirplus(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                           std::uint64_t offset, api::DirSink& sink);
  Result<void> releasedir(const api::Context& ctx, api::InodeId inode, api::HandleId handle,
                          std::uint32_t flags);

  Result<struct statvfs> statfs(const api::Context& ctx, api::InodeId inode);
  Result<void> setxattr(const api::Context& ctx, api::InodeId inode, std::string_view name,
                        std::span<const std::byte> value, std::uint32_t flags,
                        std::uint32_t setxattr_flags);
  Result<std::size_t> getxattr(const api::Context& ctx, api::InodeId inode, std::string_view name,
                               std::span<std::byte> value);
  Result<std::size_t> listxattr(const api::Context& ctx, api::InodeId inode, std::span<char> names);
  Result<void> removexattr(const api::Context& ctx, api::InodeId inode, std::string_view name);

  // Observers: references the kernel holds on `inode` (0 when it does not exist) and how many
  // inodes exist (the root included).
  std::uint64_t lookup_count(api::InodeId inode) const;
  std::size_t inode_count() const;

 private:
  struct Child {
    std::uint64_t ino = 0;
    std::uint64_t cookie = 0;
  };
  struct Node {
    struct stat attr {};
    std::vector<std::byte> data;  // regular files
    std::string target;           // symlinks
    // Directories: name -> child, and cookie -> name so readdir can resume after any entry.
    std::map<std::string, Child, std::less<>> children;
    std::map<std::uint64_t, std::string> order;
    std::uint64_t next_cookie = 3;  // 1 and 2 are "." and ".."
    std::uint64_t parent = 0;
    std::map<std::string, std::vector<std::byte>, std::less<>> xattrs;
    std::uint64_t lookups = 0;
    std::uint64_t opens = 0;
  };

  // Everything below runs with mutex_ held.
  Result<Node*> node(api::InodeId inode);
  Result<Node*> directory(api::InodeId inode);
  Result<Node*> child(Node& dir, std::string_view name);
  Node& make_node(const api::Context& ctx, std::uint32_t mode);
  void insert_child(Node& dir, std::string_view name, std::uint64_t ino);
  void erase_child(Node& dir, std::string_view name);
  // An Entry for `n` that hands the kernel one more reference.
  api::Entry entry_for(Node& n);
  api::AttrReply attr_reply(const Node& n) const;
  Result<api::Entry> add_node(const api::Context& ctx, api::InodeId parent, std::string_view name,
                              std::uint32_t mode, const std::function<void(Node&)>& fill);
  // Drops one link of `n` (all of a directory's), and the inode once nothing refers to it.
  void unlink_node(Node& n);
  void erase_if_unused(Node& n);
  bool is_ancestor(std::uint64_t ancestor, std::uint64_t ino) const;
  Result<void> rename_locked(Node& old_dir, std::string_view old_name, Node& new_dir,
                             std::string_view new_name, std::uint32_t flags);
  Result<void> list(api::InodeId inode, std::uint64_t offset, api::DirSink& sink, bool plus);

  mutable std::mutex mutex_;
  api::Timeout ttl_;
  std::unordered_map<std::uint64_t, Node> nodes_;  // element references stay valid on insert
  std::uint64_t next_ino_ = 2;
  std::uint64_t next_handle_ = 1;
};

}  // namespace fuse_backend::testing
