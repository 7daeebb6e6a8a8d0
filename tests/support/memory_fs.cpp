// MemoryFs: see memory_fs.hpp.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <support/memory_fs.hpp>

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/xattr.h>
#include <time.h>

#include <algorithm>
#include <cstring>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/api/filesystem.hpp>

namespace fuse_backend::testing {
namespace {

constexpr std::size_t name_max = 255;
constexpr std::size_t xattr_size_max = 65536;
constexpr std::uint64_t file_size_max = std::uint64_t{1} << 32;
constexpr std::uint64_t total_blocks = std::uint64_t{1} << 20;  // 4 GiB of 4 KiB blocks
constexpr std::uint64_t total_files = std::uint64_t{1} << 20;

timespec now() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return ts;
}

std::uint64_t id(api::InodeId inode) noexcept { return static_cast<std::uint64_t>(inode); }

std::uint32_t dirent_type(mode_t mode) noexcept { return (mode & S_IFMT) >> 12; }

Result<void> check_name(std::string_view name) noexcept {
  if (name.size() > name_max) return fail(std::errc::filename_too_long);
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos) {
    return fail(std::errc::invalid_argument);
  }
  return {};
}

}  // namespace

MemoryFs::MemoryFs(api::Timeout ttl) : ttl_(ttl) {
  Node& root = nodes_[id(api::root_inode)];
  root.attr.st_ino = id(api::root_inode);
  root.attr.st_mode = S_IFDIR | 0755;
  root.attr.st_nlink = 2;
  root.attr.st_blksize = 4096;
  root.attr.st_atim = root.attr.st_mtim = root.attr.st_ctim = now();
  root.parent = id(api::root_inode);
  root.lookups = 1;  // the kernel's own reference, never forgotten
}

// --- helpers (mutex_ held) -----------------------------------------------------------------------

Result<MemoryFs::Node*> MemoryFs::node(api::InodeId inode) {
  auto it = nodes_.find(id(inode));
  if (it == nodes_.end()) return fail(std::errc::no_such_file_or_directory);
  return &it->second;
}

Result<MemoryFs::Node*> MemoryFs::directory(api::InodeId inode) {
  auto n = node(inode);
  if (n && !S_ISDIR((*n)->attr.st_mode)) return fail(std::errc::not_a_directory);
  return n;
}

Result<MemoryFs::Node*> MemoryFs::child(Node& dir, std::string_view name) {
  auto it = dir.children.find(name);
  if (it == dir.children.end()) return fail(std::errc::no_such_file_or_directory);
  return &nodes_.at(it->second.ino);
}

MemoryFs::Node& MemoryFs::make_node(const api::Context& ctx, std::uint32_t mode) {
  const std::uint64_t ino = next_ino_++;
  Node& n = nodes_[ino];
  n.attr.st_ino = ino;
  n.attr.st_mode = mode;
  n.attr.st_nlink = 1;
  n.attr.st_uid = ctx.uid;
  n.attr.st_gid = ctx.gid;
  n.attr.st_blksize = 4096;
  n.attr.st_atim = n.attr.st_mtim = n.attr.st_ctim = now();
  return n;
}

void MemoryFs::insert_child(Node& dir, std::string_view name, std::uint64_t ino) {
  const std::uint64_t cookie = dir.next_cookie++;
  dir.children.emplace(std::string(name), Child{ino, cookie});
  dir.order.emplace(cookie, std::string(name));
  dir.attr.st_size = static_cast<off_t>(dir.children.size());
  dir.attr.st_mtim = dir.attr.st_ctim = now();
}

void MemoryFs::erase_child(Node& dir, std::string_view name) {
  auto it = dir.children.find(name);
  dir.order.erase(it->second.cookie);
  dir.children.erase(it);
  dir.attr.st_size = static_cast<off_t>(dir.children.size());
  dir.attr.st_mtim = dir.attr.st_ctim = now();
}

api::Entry MemoryFs::entry_for(Node& n) {
  ++n.lookups;
  api::Entry entry;
  entry.inode = api::InodeId{n.attr.st_ino};
  entry.attr = n.attr;
  entry.attr.st_blocks = (n.attr.st_size + 511) / 512;
  entry.attr_timeout = ttl_;
  entry.entry_timeout = ttl_;
  return entry;
}

api::AttrReply MemoryFs::attr_reply(const Node& n) const {
  api::AttrReply reply;
  reply.attr = n.attr;
  reply.attr.st_blocks = (n.attr.st_size + 511) / 512;
  reply.timeout = ttl_;
  return reply;
}

Result<api::Entry> MemoryFs::add_node(const api::Context& ctx, api::InodeId parent,
                                      std::string_view name, std::uint32_t mode,
                                      const std::function<void(Node&)>& fill) {
  if (auto ok = check_name(name); !ok) return fail(ok.error());
  auto dir = directory(parent);
  if (!dir) return fail(dir.error());
  if ((*dir)->children.contains(name)) return fail(std::errc::file_exists);
  if (nodes_.size() >= total_files) return fail(std::errc::no_space_on_device);
  Node& n = make_node(ctx, mode);
  if (fill) fill(n);
  insert_child(**dir, name, n.attr.st_ino);
  return entry_for(n);
}

void MemoryFs::unlink_node(Node& n) {
  n.attr.st_nlink = S_ISDIR(n.attr.st_mode) ? 0 : n.attr.st_nlink - 1;
  n.attr.st_ctim = now();
  erase_if_unused(n);
}

void MemoryFs::erase_if_unused(Node& n) {
  if (n.attr.st_nlink == 0 && n.lookups == 0 && n.opens == 0) nodes_.erase(n.attr.st_ino);
}

bool MemoryFs::is_ancestor(std::uint64_t ancestor, std::uint64_t ino) const {
  for (;;) {
    if (ino == ancestor) return true;
    if (ino == id(api::root_inode)) return false;
    ino = nodes_.at(ino).parent;
  }
}

// --- lookup and attributes -----------------------------------------------------------------------

Result<api::Entry> MemoryFs::lookup(const api::Context&, api::InodeId parent, std::string_view name) {
  std::lock_guard lock(mutex_);
  auto dir = directory(parent);
  if (!dir) return fail(dir.error());
  if (name == ".") return entry_for(**dir);
  if (name == "..") return entry_for(nodes_.at((*dir)->parent));
  if (name.size() > name_max) return fail(std::errc::filename_too_long);
  auto found = child(**dir, name);
  if (!found) return fail(found.error());
  return entry_for(**found);
}

void MemoryFs::forget(const api::Context&, api::InodeId inode, std::uint64_t nlookup) {
  std::lock_guard lock(mutex_);
  auto n = node(inode);
  if (!n || inode == api::root_inode) return;
  (*n)->lookups -= std::min(nlookup, (*n)->lookups);
  erase_if_unused(**n);
}

void MemoryFs::batch_forget(const api::Context& ctx, std::span<const api::ForgetOne> forgets) {
  for (const auto& one : forgets) forget(ctx, one.inode, one.nlookup);
}

Result<api::AttrReply> MemoryFs::getattr(const api::Context&, api::InodeId inode,
                                         std::optional<api::HandleId>) {
  std::lock_guard lock(mutex_);
  auto n = node(inode);
  if (!n) return fail(n.error());
  return attr_reply(**n);
}

Result<api::AttrReply> MemoryFs::setattr(const api::Context&, api::InodeId inode,
                                         const api::SetattrIn& in, std::optional<api::HandleId>) {
  namespace fattr = abi::fattr;
  std::lock_guard lock(mutex_);
  auto found = node(inode);
  if (!found) return fail(found.error());
  Node& n = **found;
  if (in.valid & fattr::size) {
    if (S_ISDIR(n.attr.st_mode)) return fail(std::errc::is_a_directory);
    if (!S_ISREG(n.attr.st_mode)) return fail(std::errc::invalid_argument);
    if (static_cast<std::uint64_t>(in.attr.st_size) > file_size_max) {
      return fail(std::errc::file_too_large);
    }
    n.data.resize(static_cast<std::size_t>(in.attr.st_size));
    n.attr.st_size = in.attr.st_size;
    n.attr.st_mtim = now();
  }
  if (in.valid & fattr::mode) n.attr.st_mode = (n.attr.st_mode & S_IFMT) | (in.attr.st_mode & 07777);
  if (in.valid & fattr::uid) n.attr.st_uid = in.attr.st_uid;
  if (in.valid & fattr::gid) n.attr.st_gid = in.attr.st_gid;
  if (in.valid & fattr::atime_now) {
    n.attr.st_atim = now();
  } else if (in.valid & fattr::atime) {
    n.attr.st_atim = in.attr.st_atim;
  }
  if (in.valid & fattr::mtime_now) {
    n.attr.st_mtim = now();
  } else if (in.valid & fattr::mtime) {
    n.attr.st_mtim = in.attr.st_mtim;
  }
  n.attr.st_ctim = (in.valid & fattr::ctime) ? in.attr.st_ctim : now();
  return attr_reply(n);
}

// --- names -----------------------------------------------------------------------------------------

Result<std::size_t> MemoryFs::readlink(const api::Context&, api::InodeId inode, std::span<char> target) {
  std::lock_guard lock(mutex_);
  auto n = node(inode);
  if (!n) return fail(n.error());
  if (!S_ISLNK((*n)->attr.st_mode)) return fail(std::errc::invalid_argument);
  const std::size_t length = std::min(target.size(), (*n)->target.size());
  std::memcpy(target.data(), (*n)->target.data(), length);
  return length;
}

Result<api::Entry> MemoryFs::symlink(const api::Context& ctx, std::string_view target,
                                     api::InodeId parent, std::string_view name) {
  std::lock_guard lock(mutex_);
  if (target.size() >= PATH_MAX) return fail(std::errc::filename_too_long);
  return add_node(ctx, parent, name, S_IFLNK | 0777, [&](Node& n) {
    n.target = target;
    n.attr.st_size = static_cast<off_t>(target.size());
  });
}

Result<api::Entry> MemoryFs::mknod(const api::Context& ctx, api::InodeId parent, std::string_view name,
                                   std::uint32_t mode, std::uint32_t rdev) {
  std::lock_guard lock(mutex_);
  if (S_ISDIR(mode) || S_ISLNK(mode)) return fail(std::errc::invalid_argument);
  const std::uint32_t type = (mode & S_IFMT) == 0 ? S_IFREG : (mode & S_IFMT);
  return add_node(ctx, parent, name, type | (mode & 07777 & ~ctx.umask),
                  [&](Node& n) { n.attr.st_rdev = rdev; });
}

Result<api::Entry> MemoryFs::mkdir(const api::Context& ctx, api::InodeId parent, std::string_view name,
                                   std::uint32_t mode) {
  std::lock_guard lock(mutex_);
  auto entry = add_node(ctx, parent, name, S_IFDIR | (mode & 07777 & ~ctx.umask), [&](Node& n) {
    n.attr.st_nlink = 2;
    n.parent = id(parent);
  });
  if (entry) ++nodes_.at(id(parent)).attr.st_nlink;
  return entry;
}

Result<void> MemoryFs::unlink(const api::Context&, api::InodeId parent, std::string_view name) {
  std::lock_guard lock(mutex_);
  auto dir = directory(parent);
  if (!dir) return fail(dir.error());
  auto victim = child(**dir, name);
  if (!victim) return fail(victim.error());
  if (S_ISDIR((*victim)->attr.st_mode)) return fail(std::errc::is_a_directory);
  erase_child(**dir, name);
  unlink_node(**victim);
  return {};
}

Result<void> MemoryFs::rmdir(const api::Context&, api::InodeId parent, std::string_view name) {
  std::lock_guard lock(mutex_);
  auto dir = directory(parent);
  if (!dir) return fail(dir.error());
  auto victim = child(**dir, name);
  if (!victim) return fail(victim.error());
  if (!S_ISDIR((*victim)->attr.st_mode)) return fail(std::errc::not_a_directory);
  if (!(*victim)->children.empty()) return fail(std::errc::directory_not_empty);
  erase_child(**dir, name);
  --(*dir)->attr.st_nlink;
  unlink_node(**victim);
  return {};
}

Result<void> MemoryFs::rename(const api::Context&, api::InodeId old_parent, std::string_view old_name,
                              api::InodeId new_parent, std::string_view new_name, std::uint32_t flags) {
  std::lock_guard lock(mutex_);
  if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) != 0 ||
      (flags == (RENAME_NOREPLACE | RENAME_EXCHANGE))) {
    return fail(std::errc::invalid_argument);  // RENAME_WHITEOUT is for overlay upper layers
  }
  if (auto ok = check_name(new_name); !ok) return ok;
  auto old_dir = directory(old_parent);
  if (!old_dir) return fail(old_dir.error());
  auto new_dir = directory(new_parent);
  if (!new_dir) return fail(new_dir.error());
  return rename_locked(**old_dir, old_name, **new_dir, new_name, flags);
}

Result<void> MemoryFs::rename_locked(Node& old_dir, std::string_view old_name, Node& new_dir,
                                     std::string_view new_name, std::uint32_t flags) {
  auto source_found = child(old_dir, old_name);
  if (!source_found) return fail(source_found.error());
  Node& source = **source_found;
  const bool source_is_dir = S_ISDIR(source.attr.st_mode);
  // A directory cannot move below itself.
  if (source_is_dir && is_ancestor(source.attr.st_ino, new_dir.attr.st_ino)) {
    return fail(std::errc::invalid_argument);
  }
  auto target_found = child(new_dir, new_name);
  const auto now_ts = now();

  if (flags & RENAME_EXCHANGE) {
    if (!target_found) return fail(target_found.error());
    Node& target = **target_found;
    const bool target_is_dir = S_ISDIR(target.attr.st_mode);
    if (target_is_dir && is_ancestor(target.attr.st_ino, old_dir.attr.st_ino)) {
      return fail(std::errc::invalid_argument);
    }
    old_dir.children.find(old_name)->second.ino = target.attr.st_ino;
    new_dir.children.find(new_name)->second.ino = source.attr.st_ino;
    if (source_is_dir != target_is_dir && &old_dir != &new_dir) {
      // The directory among the two changes parent: move its ".." link.
      Node& dir_node = source_is_dir ? source : target;
      Node& gains = source_is_dir ? new_dir : old_dir;
      Node& loses = source_is_dir ? old_dir : new_dir;
      ++gains.attr.st_nlink;
      --loses.attr.st_nlink;
      dir_node.parent = gains.attr.st_ino;
    } else if (source_is_dir && target_is_dir) {
      std::swap(source.parent, target.parent);
    }
    source.attr.st_ctim = target.attr.st_ctim = now_ts;
    old_dir.attr.st_mtim = old_dir.attr.st_ctim = new_dir.attr.st_mtim = new_dir.attr.st_ctim = now_ts;
    return {};
  }

  if (target_found) {
    Node& target = **target_found;
    if (flags & RENAME_NOREPLACE) return fail(std::errc::file_exists);
    if (&target == &source) return {};  // two links to one inode: POSIX says do nothing
    const bool target_is_dir = S_ISDIR(target.attr.st_mode);
    if (source_is_dir && !target_is_dir) return fail(std::errc::not_a_directory);
    if (!source_is_dir && target_is_dir) return fail(std::errc::is_a_directory);
    if (target_is_dir && !target.children.empty()) return fail(std::errc::directory_not_empty);
    erase_child(new_dir, new_name);
    if (target_is_dir) --new_dir.attr.st_nlink;
    unlink_node(target);
  }
  erase_child(old_dir, old_name);
  insert_child(new_dir, new_name, source.attr.st_ino);
  if (source_is_dir && &old_dir != &new_dir) {
    --old_dir.attr.st_nlink;
    ++new_dir.attr.st_nlink;
    source.parent = new_dir.attr.st_ino;
  }
  source.attr.st_ctim = now_ts;
  return {};
}

Result<api::Entry> MemoryFs::link(const api::Context&, api::InodeId inode, api::InodeId new_parent,
                                  std::string_view new_name) {
  std::lock_guard lock(mutex_);
  if (auto ok = check_name(new_name); !ok) return fail(ok.error());
  auto n = node(inode);
  if (!n) return fail(n.error());
  if (S_ISDIR((*n)->attr.st_mode)) return fail(std::errc::operation_not_permitted);
  auto dir = directory(new_parent);
  if (!dir) return fail(dir.error());
  if ((*dir)->children.contains(new_name)) return fail(std::errc::file_exists);
  ++(*n)->attr.st_nlink;
  (*n)->attr.st_ctim = now();
  insert_child(**dir, new_name, (*n)->attr.st_ino);
  return entry_for(**n);
}

// --- files -----------------------------------------------------------------------------------------

Result<api::OpenReply> MemoryFs::open(const api::Context&, api::InodeId inode, std::uint32_t flags,
                                      std::uint32_t) {
  std::lock_guard lock(mutex_);
  auto n = node(inode);
  if (!n) return fail(n.error());
  if (S_ISDIR((*n)->attr.st_mode)) return fail(std::errc::is_a_directory);
  if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY && S_ISREG((*n)->attr.st_mode)) {
    (*n)->data.clear();
    (*n)->attr.st_size = 0;
    (*n)->attr.st_mtim = (*n)->attr.st_ctim = now();
  }
  ++(*n)->opens;
  return api::OpenReply{api::HandleId{next_handle_++}};
}

Result<api::CreateReply> MemoryFs::create(const api::Context& ctx, api::InodeId parent,
                                          std::string_view name, std::uint32_t mode,
                                          std::uint32_t flags) {
  std::lock_guard lock(mutex_);
  auto dir = directory(parent);
  if (!dir) return fail(dir.error());
  api::CreateReply reply;
  if (auto existing = child(**dir, name)) {
    if (flags & O_EXCL) return fail(std::errc::file_exists);
    if (S_ISDIR((*existing)->attr.st_mode)) return fail(std::errc::is_a_directory);
    reply.entry = entry_for(**existing);
  } else {
    auto entry = add_node(ctx, parent, name, S_IFREG | (mode & 07777 & ~ctx.umask), nullptr);
    if (!entry) return fail(entry.error());
    reply.entry = *entry;
  }
  ++nodes_.at(id(reply.entry.inode)).opens;
  reply.open.handle = api::HandleId{next_handle_++};
  return reply;
}

Result<std::size_t> MemoryFs::read(const api::Context&, api::InodeId inode, api::HandleId,
                                   api::ZeroCopyWriter& out, std::uint32_t size, std::uint64_t offset,
                                   std::uint32_t) {
  std::lock_guard lock(mutex_);
  auto n = node(inode);
  if (!n) return fail(n.error());
  if (!S_ISREG((*n)->attr.st_mode)) return fail(std::errc::invalid_argument);
  const auto& data = (*n)->data;
  if (offset >= data.size()) return std::size_t{0};
  const std::size_t count = std::min<std::size_t>(size, data.size() - offset);
  (*n)->attr.st_atim = now();
  return out.write(std::span<const std::byte>(data).subspan(offset, count));
}

Result<std::size_t> MemoryFs::write(const api::Context&, api::InodeId inode, api::HandleId,
                                    api::ZeroCopyReader& in, std::uint32_t size, std::uint64_t offset,
                                    std::uint32_t, std::uint32_t) {
  std::lock_guard lock(mutex_);
  auto n = node(inode);
  if (!n) return fail(n.error());
  if (!S_ISREG((*n)->attr.st_mode)) return fail(std::errc::invalid_argument);
  if (offset > file_size_max || size > file_size_max - offset) return fail(std::errc::file_too_large);
  auto& data = (*n)->data;
  const std::size_t old_size = data.size();
  if (offset + size > old_size) data.resize(offset + size);
  const std::size_t got = in.read(std::span<std::byte>(data).subspan(offset, size));
  // Keep only what really arrived when the request carried less than it announced.
  data.resize(std::max<std::size_t>(old_size, offset + got));
  (*n)->attr.st_size = static_cast<off_t>(data.size());
  (*n)->attr.st_mtim = (*n)->attr.st_ctim = now();
  return got;
}

Result<void> MemoryFs::flush(const api::Context&, api::InodeId, api::HandleId, std::uint64_t) {
  return {};
}

Result<void> MemoryFs::release(const api::Context&, api::InodeId inode, api::HandleId, std::uint32_t,
                               std::uint32_t, std::uint64_t) {
  std::lock_guard lock(mutex_);
  auto n = node(inode);
  if (!n) return fail(n.error());
  if ((*n)->opens > 0) --(*n)->opens;
  erase_if_unused(**n);
  return {};
}

Result<void> MemoryFs::fsync(const api::Context&, api::InodeId, api::HandleId, bool) { return {}; }

// --- directories -----------------------------------------------------------------------------------

Result<api::OpenReply> MemoryFs::opendir(const api::Context&, api::InodeId inode, std::uint32_t) {
  std::lock_guard lock(mutex_);
  auto dir = directory(inode);
  if (!dir) return fail(dir.error());
  return api::OpenReply{};  // readdir resumes from cookies; no per-stream state needed
}

Result<void> MemoryFs::readdir(const api::Context&, api::InodeId inode, api::HandleId,
                               std::uint64_t offset, api::DirSink& sink) {
  return list(inode, offset, sink, false);
}

Result<void> MemoryFs::readdirplus(const api::Context&, api::InodeId inode, api::HandleId,
                                   std::uint64_t offset, api::DirSink& sink) {
  return list(inode, offset, sink, true);
}

Result<void> MemoryFs::list(api::InodeId inode, std::uint64_t offset, api::DirSink& sink, bool plus) {
  std::lock_guard lock(mutex_);
  auto found = directory(inode);
  if (!found) return fail(found.error());
  Node& dir = **found;
  // "." and ".." carry no reference (inode 0 in readdirplus): the kernel skips them.
  const auto add_dot = [&](std::string_view name, const Node& n, std::uint64_t cookie) {
    const api::DirEntry entry{n.attr.st_ino, cookie, dirent_type(n.attr.st_mode), name};
    if (!plus) return sink.add(entry);
    api::Entry attributes;
    attributes.attr = n.attr;
    return sink.add(entry, attributes);
  };
  if (offset < 1 && !add_dot(".", dir, 1)) return {};
  if (offset < 2 && !add_dot("..", nodes_.at(dir.parent), 2)) return {};
  for (auto it = dir.order.upper_bound(offset); it != dir.order.end(); ++it) {
    const std::string& name = it->second;
    Node& n = nodes_.at(dir.children.find(name)->second.ino);
    const api::DirEntry entry{n.attr.st_ino, it->first, dirent_type(n.attr.st_mode), name};
    if (!plus) {
      if (!sink.add(entry)) break;
      continue;
    }
    if (!sink.fits(name)) break;
    if (!sink.add(entry, entry_for(n))) {
      --n.lookups;  // the kernel never saw it
      break;
    }
  }
  return {};
}

Result<void> MemoryFs::releasedir(const api::Context&, api::InodeId, api::HandleId, std::uint32_t) {
  return {};
}

// --- filesystem and xattrs -------------------------------------------------------------------------

Result<struct statvfs> MemoryFs::statfs(const api::Context&, api::InodeId) {
  std::lock_guard lock(mutex_);
  std::uint64_t used = 0;
  for (const auto& [ino, n] : nodes_) used += (n.data.size() + 4095) / 4096;
  struct statvfs st {};
  st.f_bsize = 4096;
  st.f_frsize = 4096;
  st.f_blocks = total_blocks;
  st.f_bfree = st.f_bavail = total_blocks - std::min(used, total_blocks);
  st.f_files = total_files;
  st.f_ffree = st.f_favail = total_files - nodes_.size();
  st.f_namemax = name_max;
  return st;
}

Result<void> MemoryFs::setxattr(const api::Context&, api::InodeId inode, std::string_view name,
                                std::span<const std::byte> value, std::uint32_t flags, std::uint32_t) {
  std::lock_guard lock(mutex_);
  if (name.empty() || name.size() > XATTR_NAME_MAX) return fail(std::errc::result_out_of_range);
  if (value.size() > xattr_size_max) return fail(std::errc::argument_list_too_long);
  auto n = node(inode);
  if (!n) return fail(n.error());
  auto& xattrs = (*n)->xattrs;
  auto it = xattrs.find(name);
  if ((flags & XATTR_CREATE) && it != xattrs.end()) return fail(std::errc::file_exists);
  if ((flags & XATTR_REPLACE) && it == xattrs.end()) return fail(std::errc::no_message_available);
  if (it == xattrs.end()) it = xattrs.emplace(std::string(name), std::vector<std::byte>{}).first;
  it->second.assign(value.begin(), value.end());
  (*n)->attr.st_ctim = now();
  return {};
}

Result<std::size_t> MemoryFs::getxattr(const api::Context&, api::InodeId inode, std::string_view name,
                                       std::span<std::byte> value) {
  std::lock_guard lock(mutex_);
  auto n = node(inode);
  if (!n) return fail(n.error());
  auto it = (*n)->xattrs.find(name);
  if (it == (*n)->xattrs.end()) return fail(std::errc::no_message_available);  // ENODATA
  const auto& stored = it->second;
  if (value.empty()) return stored.size();
  if (value.size() < stored.size()) return fail(std::errc::result_out_of_range);
  std::copy(stored.begin(), stored.end(), value.begin());
  return stored.size();
}

Result<std::size_t> MemoryFs::listxattr(const api::Context&, api::InodeId inode, std::span<char> names) {
  std::lock_guard lock(mutex_);
  auto n = node(inode);
  if (!n) return fail(n.error());
  std::size_t total = 0;
  for (const auto& [name, value] : (*n)->xattrs) total += name.size() + 1;
  if (names.empty()) return total;
  if (names.size() < total) return fail(std::errc::result_out_of_range);
  char* out = names.data();
  for (const auto& [name, value] : (*n)->xattrs) {
    out = std::copy(name.begin(), name.end(), out);
    *out++ = '\0';
  }
  return total;
}

Result<void> MemoryFs::removexattr(const api::Context&, api::InodeId inode, std::string_view name) {
  std::lock_guard lock(mutex_);
  auto n = node(inode);
  if (!n) return fail(n.error());
  auto it = (*n)->xattrs.find(name);
  if (it == (*n)->xattrs.end()) return fail(std::errc::no_message_available);
  (*n)->xattrs.erase(it);
  (*n)->attr.st_ctim = now();
  return {};
}

// --- observers -------------------------------------------------------------------------------------

std::uint64_t MemoryFs::lookup_count(api::InodeId inode) const {
  std::lock_guard lock(mutex_);
  auto it = nodes_.find(id(inode));
  return it == nodes_.end() ? 0 : it->second.lookups;
}

std::size_t MemoryFs::inode_count() const {
  std::lock_guard lock(mutex_);
  return nodes_.size();
}

// Every op above must be one the Server recognises, with the exact signature.
static_assert(api::Filesystem<MemoryFs> && api::check_signatures<MemoryFs>());
static_assert(api::SupportsSetattr<MemoryFs> && api::SupportsReaddirplus<MemoryFs> &&
              api::SupportsRename<MemoryFs> && api::SupportsListxattr<MemoryFs> &&
              api::SupportsBatchForget<MemoryFs> && api::SupportsCreate<MemoryFs>);

}  // namespace fuse_backend::testing
