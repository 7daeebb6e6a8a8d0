// Vfs: routing, inode translation and the pseudo tree of mount points (see vfs/vfs.hpp).
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/vfs/vfs.hpp>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <mutex>
#include <utility>
#include <vector>

#include <fuse_backend/api/server.hpp>

namespace fuse_backend::vfs {

namespace {

using api::InodeId;

constexpr std::uint64_t raw(InodeId inode) noexcept { return static_cast<std::uint64_t>(inode); }

// The Vfs inode of backend `index`'s inode `ino`, or nothing when `ino` does not fit.
constexpr std::optional<InodeId> encode(std::uint64_t index, std::uint64_t ino) noexcept {
  if (ino > Vfs::max_backend_inode) return std::nullopt;
  return InodeId{(index << Vfs::inode_bits) | ino};
}

// Pseudo inodes are directories: file ops on them are EISDIR.
constexpr auto is_a_directory = std::errc::is_a_directory;

constexpr std::uint64_t index_of(InodeId inode) noexcept { return raw(inode) >> Vfs::inode_bits; }

// "/b/c" -> {"b", "c"}.
Result<std::vector<std::string_view>> split_path(std::string_view path) {
  if (path.empty() || path.front() != '/' || path == "/") return fail(std::errc::invalid_argument);
  std::vector<std::string_view> parts;
  path.remove_prefix(1);
  while (true) {
    const auto slash = path.find('/');
    const auto part = path.substr(0, slash);
    if (part.empty() || part == "." || part == "..") return fail(std::errc::invalid_argument);
    if (part.size() > NAME_MAX) return fail(std::errc::filename_too_long);
    parts.push_back(part);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return parts;
}

// A backend's readdir/readdirplus entries, made Vfs-wide on their way to the Server's sink.
class TranslatingSink final : public api::DirSink {
 public:
  TranslatingSink(api::DirSink& inner, api::AnyFilesystem& fs, std::uint64_t index, const api::Context& ctx) noexcept
      : inner_(inner), fs_(fs), index_(index), ctx_(ctx) {}

  bool fits(std::string_view name) const noexcept override { return inner_.fits(name); }
  bool add(const api::DirEntry& entry) noexcept override { return inner_.add(with_ino(entry)); }
  bool add(const api::DirEntry& entry, const api::Entry& attributes) noexcept override {
    if (attributes.inode == InodeId{}) return inner_.add(with_ino(entry), attributes);
    const auto inode = encode(index_, raw(attributes.inode));
    if (!inode) {
      // Cannot be named without colliding: leave it out, give the backend its reference back.
      give_back(attributes.inode);
      return true;
    }
    api::Entry translated = attributes;
    translated.inode = *inode;
    translated.attr.st_ino = raw(*inode);
    if (inner_.add(with_ino(entry), translated)) return true;
    give_back(attributes.inode);
    return false;
  }
  std::size_t size() const noexcept override { return inner_.size(); }

 private:
  api::DirEntry with_ino(api::DirEntry entry) const noexcept {
    entry.ino = (index_ << Vfs::inode_bits) | (entry.ino & Vfs::max_backend_inode);
    return entry;
  }
  void give_back(InodeId inode) const noexcept {
    api::detail::guarded([&] { fs_.forget(ctx_, inode, 1); });
  }

  api::DirSink& inner_;
  api::AnyFilesystem& fs_;
  std::uint64_t index_;
  const api::Context& ctx_;
};

}  // namespace

Vfs::Vfs(VfsOptions options) : options_(options) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(now);
  created_.tv_sec = static_cast<time_t>(seconds.count());
  created_.tv_nsec = static_cast<long>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - seconds).count());
  pseudo_.emplace(raw(api::root_inode), PseudoNode{raw(api::root_inode), {}, 0});
}

Vfs::~Vfs() = default;

// --- mount table -------------------------------------------------------------------------------

Result<void> Vfs::mount(std::string_view path, api::AnyFilesystem fs) {
  const auto parts = split_path(path);
  if (!parts) return fail(parts.error());
  std::unique_lock lock(mutex_);
  if (next_index_ > max_backends) return fail(std::errc::no_space_on_device);

  // Walk the existing part of the path; nothing changes until every check has passed.
  std::uint64_t node = raw(api::root_inode);
  std::size_t depth = 0;
  for (; depth < parts->size(); ++depth) {
    const auto& children = pseudo_.at(node).children;
    const auto found = children.find((*parts)[depth]);
    if (found == children.end()) break;
    const PseudoNode& child = pseudo_.at(found->second);
    const bool last = depth + 1 == parts->size();
    // A mount point on the way (or at the end), or a pseudo directory that would hide others.
    if (child.backend != 0 || (last && !child.children.empty())) return fail(std::errc::device_or_resource_busy);
    node = found->second;
  }

  if (initialized_) {
    const auto accepted = fs.init(negotiated_);
    if (!accepted) return fail(accepted.error());
    if ((*accepted & negotiated_) != negotiated_) {
      fs.destroy();  // initialised, and never to be served
      return fail(std::errc::not_supported);
    }
  }

  const std::uint64_t index = next_index_++;
  if (depth == parts->size()) {
    // An empty pseudo directory becomes the mount point. It gets a new node so that a kernel
    // still holding the directory's inode sees it go stale rather than change kind.
    const std::uint64_t parent = pseudo_.at(node).parent;
    auto& siblings = pseudo_.at(parent).children;
    siblings.erase(siblings.find(parts->back()));
    pseudo_.erase(node);
    node = parent;
    --depth;
  }
  for (; depth < parts->size(); ++depth) {
    const std::uint64_t ino = next_pseudo_ino_++;
    const bool last = depth + 1 == parts->size();
    pseudo_.emplace(ino, PseudoNode{node, {}, last ? index : 0});
    pseudo_.at(node).children.emplace(std::string((*parts)[depth]), ino);
    node = ino;
  }
  backends_[index] = std::make_shared<Backend>(Backend{std::move(fs), index});
  return {};
}

Result<void> Vfs::umount(std::string_view path) {
  const auto parts = split_path(path);
  if (!parts) return fail(parts.error());
  std::shared_ptr<Backend> removed;
  bool initialized = false;
  {
    std::unique_lock lock(mutex_);
    std::uint64_t node = raw(api::root_inode);
    for (std::size_t depth = 0; depth < parts->size(); ++depth) {
      const PseudoNode& dir = pseudo_.at(node);
      if (dir.backend != 0) return fail(std::errc::invalid_argument);  // inside a backend
      const auto found = dir.children.find((*parts)[depth]);
      if (found == dir.children.end()) return fail(std::errc::no_such_file_or_directory);
      node = found->second;
    }
    const PseudoNode& mount_point = pseudo_.at(node);
    if (mount_point.backend == 0) return fail(std::errc::invalid_argument);
    removed = std::move(backends_[mount_point.backend]);
    auto& siblings = pseudo_.at(mount_point.parent).children;
    siblings.erase(siblings.find(parts->back()));
    pseudo_.erase(node);
    initialized = initialized_;
  }
  // Outside the lock: a backend's destroy may take its time.
  if (initialized) removed->fs.destroy();
  return {};
}

// --- routing -----------------------------------------------------------------------------------

Result<Vfs::Route> Vfs::route(InodeId inode) const {
  const std::uint64_t index = index_of(inode);
  if (index == 0) return Route{nullptr, inode};
  std::shared_lock lock(mutex_);
  auto backend = backends_[index];
  if (!backend) return fail(std::errc::no_such_file_or_directory);  // unmounted: stale
  return Route{std::move(backend), InodeId{raw(inode) & max_backend_inode}};
}

template <class Op>
auto Vfs::on_backend(InodeId inode, std::errc pseudo_error, Op&& op)
    -> decltype(op(std::declval<Backend&>(), inode)) {
  auto where = route(inode);
  if (!where) return fail(where.error());
  if (!where->backend) return fail(pseudo_error);
  return op(*where->backend, where->inode);
}

Result<std::shared_ptr<Vfs::Backend>> Vfs::same_backend(InodeId first, InodeId second) const {
  if (index_of(first) != index_of(second)) return fail(std::errc::cross_device_link);
  if (index_of(first) == 0) return fail(std::errc::operation_not_permitted);  // the pseudo tree
  auto where = route(first);
  if (!where) return fail(where.error());
  return std::move(where->backend);
}

Result<api::Entry> Vfs::translate_entry(Backend& backend, const api::Context& ctx, Result<api::Entry> entry) const {
  if (!entry || entry->inode == InodeId{}) return entry;  // errors and negative entries
  const auto inode = encode(backend.index, raw(entry->inode));
  if (!inode) {
    backend.fs.forget(ctx, entry->inode, 1);
    return fail(std::errc::io_error);
  }
  entry->inode = *inode;
  entry->attr.st_ino = raw(*inode);
  return entry;
}

Result<api::CreateReply> Vfs::translate_created(Backend& backend, const api::Context& ctx,
                                        Result<api::CreateReply> reply) const {
  if (!reply) return reply;
  if (!encode(backend.index, raw(reply->entry.inode))) {
    static_cast<void>(backend.fs.release(ctx, reply->entry.inode, reply->open.handle, 0, 0, 0));
  }
  auto entry = translate_entry(backend, ctx, reply->entry);
  if (!entry) return fail(entry.error());
  reply->entry = *entry;
  return reply;
}

Result<api::AttrReply> Vfs::translate_attr(InodeId inode, Result<api::AttrReply> reply) {
  if (reply) reply->attr.st_ino = raw(inode);
  return reply;
}

// --- the pseudo tree ---------------------------------------------------------------------------

const Vfs::PseudoNode* Vfs::pseudo_node(InodeId inode) const {
  const auto found = pseudo_.find(raw(inode));
  // Mount points are never handed to the kernel as themselves.
  if (found == pseudo_.end() || found->second.backend != 0) return nullptr;
  return &found->second;
}

api::AttrReply Vfs::pseudo_attr(std::uint64_t ino, const PseudoNode& node) const {
  api::AttrReply reply;
  reply.attr.st_ino = ino;
  reply.attr.st_mode = S_IFDIR | 0555;
  reply.attr.st_nlink = static_cast<nlink_t>(2 + node.children.size());
  reply.attr.st_size = 4096;
  reply.attr.st_blksize = 4096;
  reply.attr.st_atim = reply.attr.st_mtim = reply.attr.st_ctim = created_;
  reply.timeout = options_.timeout;
  return reply;
}

Result<api::Entry> Vfs::lookup_pseudo(const api::Context& ctx, InodeId parent, std::string_view name) {
  std::shared_ptr<Backend> mounted;
  {
    std::shared_lock lock(mutex_);
    const PseudoNode* dir = pseudo_node(parent);
    if (dir == nullptr) return fail(std::errc::no_such_file_or_directory);
    const auto found = dir->children.find(name);
    if (found == dir->children.end()) return fail(std::errc::no_such_file_or_directory);
    const PseudoNode& child = pseudo_.at(found->second);
    if (child.backend == 0) {
      const auto attr = pseudo_attr(found->second, child);
      api::Entry entry;
      entry.inode = InodeId{found->second};
      entry.attr = attr.attr;
      entry.attr_timeout = entry.entry_timeout = options_.timeout;
      return entry;
    }
    mounted = backends_[child.backend];
  }
  // The mount point shows the backend's root. The backend hands out no reference for it (its
  // root is never forgotten), which is why forgets of backend roots stop here.
  const auto root = mounted->fs.getattr(ctx, api::root_inode, std::nullopt);
  if (!root) return fail(root.error());
  api::Entry entry;
  entry.inode = *encode(mounted->index, raw(api::root_inode));
  entry.attr = root->attr;
  entry.attr.st_ino = raw(entry.inode);
  entry.attr_flags = root->attr_flags;
  entry.attr_timeout = root->timeout;
  entry.entry_timeout = options_.timeout;
  return entry;
}

Result<void> Vfs::list_pseudo(InodeId inode, std::uint64_t offset, api::DirSink& sink, bool plus) const {
  std::shared_lock lock(mutex_);
  const PseudoNode* dir = pseudo_node(inode);
  if (dir == nullptr) return fail(std::errc::no_such_file_or_directory);
  // Cookies: entry i (".", "..", then the children by name) continues at offset i + 1.
  std::uint64_t position = 0;
  const auto emit = [&](std::string_view name, std::uint64_t ino, const PseudoNode* node) {
    if (position++ < offset) return true;
    const api::DirEntry entry{ino, position, DT_DIR, name};
    if (!plus) return sink.add(entry);
    // Mount points and "."/".." go without attributes (inode 0: the kernel looks them up).
    api::Entry attributes;
    if (node != nullptr && node->backend == 0 && name != "." && name != "..") {
      attributes.inode = InodeId{ino};
      attributes.attr = pseudo_attr(ino, *node).attr;
      attributes.attr_timeout = attributes.entry_timeout = options_.timeout;
    }
    return sink.add(entry, attributes);
  };
  if (!emit(".", raw(inode), dir) || !emit("..", dir->parent, nullptr)) return {};
  for (const auto& [name, ino] : dir->children) {
    const PseudoNode& child = pseudo_.at(ino);
    const std::uint64_t shown = child.backend != 0 ? raw(*encode(child.backend, raw(api::root_inode))) : ino;
    if (!emit(name, shown, &child)) break;
  }
  return {};
}

// --- lifecycle ---------------------------------------------------------------------------------

Result<std::uint64_t> Vfs::init(std::uint64_t offered) {
  std::unique_lock lock(mutex_);
  // The kernel gets what every backend wants, and each backend must then be set up for exactly
  // that: a backend sets itself up from what it answers (PassthroughFs takes the writeback cache
  // it asked for), so the narrowed offer goes round again until nobody drops anything more.
  const bool any =
      std::any_of(backends_.begin(), backends_.end(), [](const auto& b) { return b != nullptr; });
  std::uint64_t wanted = any ? offered : offered & api::always_on_init_flags;
  for (bool narrowed = any; narrowed;) {
    std::uint64_t common = wanted;
    for (const auto& backend : backends_) {
      if (!backend) continue;
      const auto chosen = backend->fs.init(wanted);
      if (!chosen) return fail(chosen.error());
      common &= *chosen;
    }
    narrowed = common != wanted;
    wanted = common;
  }
  negotiated_ = wanted;
  initialized_ = true;
  return wanted;
}

void Vfs::destroy() {
  std::vector<std::shared_ptr<Backend>> mounted;
  {
    std::unique_lock lock(mutex_);
    initialized_ = false;
    for (const auto& backend : backends_) {
      if (backend) mounted.push_back(backend);
    }
  }
  for (const auto& backend : mounted) backend->fs.destroy();
}

void Vfs::forget(const api::Context& ctx, InodeId inode, std::uint64_t nlookup) {
  auto where = route(inode);
  // Pseudo inodes live as long as the Vfs; backend roots were never referenced by the backend.
  if (!where || !where->backend || where->inode == api::root_inode) return;
  // Through batch_forget: AnyFilesystem turns it into whichever of the two the backend has.
  const api::ForgetOne one{where->inode, nlookup};
  where->backend->fs.batch_forget(ctx, std::span<const api::ForgetOne>(&one, 1));
}

void Vfs::batch_forget(const api::Context& ctx, std::span<const api::ForgetOne> forgets) {
  for (const api::ForgetOne& one : forgets) forget(ctx, one.inode, one.nlookup);
}

// --- entries and attributes --------------------------------------------------------------------

Result<api::Entry> Vfs::lookup(const api::Context& ctx, InodeId parent, std::string_view name) {
  if (index_of(parent) == 0) return lookup_pseudo(ctx, parent, name);
  return on_backend(parent, std::errc::no_such_file_or_directory, [&](Backend& b, InodeId ino) {
    return translate_entry(b, ctx, b.fs.lookup(ctx, ino, name));
  });
}

Result<api::AttrReply> Vfs::getattr(const api::Context& ctx, InodeId inode, std::optional<api::HandleId> handle) {
  if (index_of(inode) == 0) {
    std::shared_lock lock(mutex_);
    const PseudoNode* node = pseudo_node(inode);
    if (node == nullptr) return fail(std::errc::no_such_file_or_directory);
    return pseudo_attr(raw(inode), *node);
  }
  return on_backend(inode, std::errc::no_such_file_or_directory, [&](Backend& b, InodeId ino) {
    return translate_attr(inode, b.fs.getattr(ctx, ino, handle));
  });
}

Result<api::AttrReply> Vfs::setattr(const api::Context& ctx, InodeId inode, const api::SetattrIn& in,
                                    std::optional<api::HandleId> handle) {
  return on_backend(inode, std::errc::operation_not_permitted, [&](Backend& b, InodeId ino) {
    return translate_attr(inode, b.fs.setattr(ctx, ino, in, handle));
  });
}

Result<api::StatxReply> Vfs::statx(const api::Context& ctx, InodeId inode, std::optional<api::HandleId> handle,
                                   std::uint32_t flags, std::uint32_t mask) {
  if (index_of(inode) == 0) {
    std::shared_lock lock(mutex_);
    const PseudoNode* node = pseudo_node(inode);
    if (node == nullptr) return fail(std::errc::no_such_file_or_directory);
    const struct stat attr = pseudo_attr(raw(inode), *node).attr;
    api::StatxReply reply;
    reply.stx.stx_mask = STATX_BASIC_STATS;
    reply.stx.stx_ino = attr.st_ino;
    reply.stx.stx_mode = static_cast<std::uint16_t>(attr.st_mode);
    reply.stx.stx_nlink = static_cast<std::uint32_t>(attr.st_nlink);
    reply.stx.stx_size = static_cast<std::uint64_t>(attr.st_size);
    reply.stx.stx_blksize = static_cast<std::uint32_t>(attr.st_blksize);
    for (auto* time : {&reply.stx.stx_atime, &reply.stx.stx_mtime, &reply.stx.stx_ctime}) {
      time->tv_sec = created_.tv_sec;
      time->tv_nsec = static_cast<std::uint32_t>(created_.tv_nsec);
    }
    reply.timeout = options_.timeout;
    return reply;
  }
  return on_backend(inode, std::errc::no_such_file_or_directory, [&](Backend& b, InodeId ino) {
    auto reply = b.fs.statx(ctx, ino, handle, flags, mask);
    if (reply) reply->stx.stx_ino = raw(inode);
    return reply;
  });
}

Result<std::size_t> Vfs::readlink(const api::Context& ctx, InodeId inode, std::span<char> target) {
  return on_backend(inode, std::errc::invalid_argument,
                    [&](Backend& b, InodeId ino) { return b.fs.readlink(ctx, ino, target); });
}

// --- creating and removing ---------------------------------------------------------------------

Result<api::Entry> Vfs::symlink(const api::Context& ctx, std::string_view target, InodeId parent,
                                std::string_view name) {
  return on_backend(parent, std::errc::operation_not_permitted, [&](Backend& b, InodeId ino) {
    return translate_entry(b, ctx, b.fs.symlink(ctx, target, ino, name));
  });
}

Result<api::Entry> Vfs::mknod(const api::Context& ctx, InodeId parent, std::string_view name, std::uint32_t mode,
                              std::uint32_t rdev) {
  return on_backend(parent, std::errc::operation_not_permitted, [&](Backend& b, InodeId ino) {
    return translate_entry(b, ctx, b.fs.mknod(ctx, ino, name, mode, rdev));
  });
}

Result<api::Entry> Vfs::mkdir(const api::Context& ctx, InodeId parent, std::string_view name, std::uint32_t mode) {
  return on_backend(parent, std::errc::operation_not_permitted, [&](Backend& b, InodeId ino) {
    return translate_entry(b, ctx, b.fs.mkdir(ctx, ino, name, mode));
  });
}

Result<void> Vfs::unlink(const api::Context& ctx, InodeId parent, std::string_view name) {
  return on_backend(parent, std::errc::operation_not_permitted,
                    [&](Backend& b, InodeId ino) { return b.fs.unlink(ctx, ino, name); });
}

Result<void> Vfs::rmdir(const api::Context& ctx, InodeId parent, std::string_view name) {
  return on_backend(parent, std::errc::operation_not_permitted,
                    [&](Backend& b, InodeId ino) { return b.fs.rmdir(ctx, ino, name); });
}

Result<void> Vfs::rename(const api::Context& ctx, InodeId old_parent, std::string_view old_name,
                         InodeId new_parent, std::string_view new_name, std::uint32_t flags) {
  const auto backend = same_backend(old_parent, new_parent);
  if (!backend) return fail(backend.error());
  const auto mask = [](InodeId inode) { return InodeId{raw(inode) & max_backend_inode}; };
  return (*backend)->fs.rename(ctx, mask(old_parent), old_name, mask(new_parent), new_name, flags);
}

Result<api::Entry> Vfs::link(const api::Context& ctx, InodeId inode, InodeId new_parent,
                             std::string_view new_name) {
  const auto backend = same_backend(inode, new_parent);
  if (!backend) return fail(backend.error());
  Backend& b = **backend;
  return translate_entry(b, ctx,
                   b.fs.link(ctx, InodeId{raw(inode) & max_backend_inode},
                             InodeId{raw(new_parent) & max_backend_inode}, new_name));
}

Result<api::CreateReply> Vfs::create(const api::Context& ctx, InodeId parent, std::string_view name,
                                     std::uint32_t mode, std::uint32_t flags) {
  return on_backend(parent, std::errc::operation_not_permitted, [&](Backend& b, InodeId ino) {
    return translate_created(b, ctx, b.fs.create(ctx, ino, name, mode, flags));
  });
}

Result<api::CreateReply> Vfs::tmpfile(const api::Context& ctx, InodeId parent, std::uint32_t mode,
                                      std::uint32_t flags) {
  return on_backend(parent, std::errc::operation_not_permitted, [&](Backend& b, InodeId ino) {
    return translate_created(b, ctx, b.fs.tmpfile(ctx, ino, mode, flags));
  });
}

// --- files ---------------------------------------------------------------------------------------

Result<api::OpenReply> Vfs::open(const api::Context& ctx, InodeId inode, std::uint32_t flags,
                                 std::uint32_t open_flags) {
  return on_backend(inode, is_a_directory,
                    [&](Backend& b, InodeId ino) { return b.fs.open(ctx, ino, flags, open_flags); });
}

Result<std::size_t> Vfs::read(const api::Context& ctx, InodeId inode, api::HandleId handle,
                              api::ZeroCopyWriter& out, std::uint32_t size, std::uint64_t offset,
                              std::uint32_t flags) {
  return on_backend(inode, is_a_directory, [&](Backend& b, InodeId ino) {
    return b.fs.read(ctx, ino, handle, out, size, offset, flags);
  });
}

Result<std::size_t> Vfs::write(const api::Context& ctx, InodeId inode, api::HandleId handle,
                               api::ZeroCopyReader& in, std::uint32_t size, std::uint64_t offset,
                               std::uint32_t write_flags, std::uint32_t flags) {
  return on_backend(inode, is_a_directory, [&](Backend& b, InodeId ino) {
    return b.fs.write(ctx, ino, handle, in, size, offset, write_flags, flags);
  });
}

Result<void> Vfs::flush(const api::Context& ctx, InodeId inode, api::HandleId handle, std::uint64_t lock_owner) {
  return on_backend(inode, is_a_directory,
                    [&](Backend& b, InodeId ino) { return b.fs.flush(ctx, ino, handle, lock_owner); });
}

Result<void> Vfs::release(const api::Context& ctx, InodeId inode, api::HandleId handle, std::uint32_t flags,
                          std::uint32_t release_flags, std::uint64_t lock_owner) {
  return on_backend(inode, is_a_directory, [&](Backend& b, InodeId ino) {
    return b.fs.release(ctx, ino, handle, flags, release_flags, lock_owner);
  });
}

Result<void> Vfs::fsync(const api::Context& ctx, InodeId inode, api::HandleId handle, bool datasync) {
  return on_backend(inode, is_a_directory,
                    [&](Backend& b, InodeId ino) { return b.fs.fsync(ctx, ino, handle, datasync); });
}

Result<void> Vfs::fallocate(const api::Context& ctx, InodeId inode, api::HandleId handle, std::uint32_t mode,
                            std::uint64_t offset, std::uint64_t length) {
  return on_backend(inode, is_a_directory, [&](Backend& b, InodeId ino) {
    return b.fs.fallocate(ctx, ino, handle, mode, offset, length);
  });
}

Result<std::uint64_t> Vfs::lseek(const api::Context& ctx, InodeId inode, api::HandleId handle,
                                 std::uint64_t offset, std::uint32_t whence) {
  return on_backend(inode, is_a_directory,
                    [&](Backend& b, InodeId ino) { return b.fs.lseek(ctx, ino, handle, offset, whence); });
}

Result<std::uint64_t> Vfs::copy_file_range(const api::Context& ctx, InodeId inode_in, api::HandleId handle_in,
                                           std::uint64_t offset_in, InodeId inode_out, api::HandleId handle_out,
                                           std::uint64_t offset_out, std::uint64_t length, std::uint64_t flags) {
  const auto backend = same_backend(inode_in, inode_out);
  if (!backend) return fail(backend.error());
  return (*backend)->fs.copy_file_range(ctx, InodeId{raw(inode_in) & max_backend_inode}, handle_in, offset_in,
                                        InodeId{raw(inode_out) & max_backend_inode}, handle_out, offset_out,
                                        length, flags);
}

Result<api::IoctlReply> Vfs::ioctl(const api::Context& ctx, InodeId inode, api::HandleId handle,
                                   std::uint32_t flags, std::uint32_t command, std::uint64_t argument,
                                   std::span<const std::byte> in, std::span<std::byte> out) {
  return on_backend(inode, std::errc::inappropriate_io_control_operation, [&](Backend& b, InodeId ino) {
    return b.fs.ioctl(ctx, ino, handle, flags, command, argument, in, out);
  });
}

Result<std::uint32_t> Vfs::poll(const api::Context& ctx, InodeId inode, api::HandleId handle,
                                std::uint64_t kernel_handle, std::uint32_t flags, std::uint32_t events) {
  return on_backend(inode, is_a_directory, [&](Backend& b, InodeId ino) {
    return b.fs.poll(ctx, ino, handle, kernel_handle, flags, events);
  });
}

Result<std::uint64_t> Vfs::bmap(const api::Context& ctx, InodeId inode, std::uint64_t block,
                                std::uint32_t block_size) {
  return on_backend(inode, is_a_directory,
                    [&](Backend& b, InodeId ino) { return b.fs.bmap(ctx, ino, block, block_size); });
}

Result<api::FileLock> Vfs::getlk(const api::Context& ctx, InodeId inode, api::HandleId handle, std::uint64_t owner,
                                 const api::FileLock& lock, std::uint32_t lock_flags) {
  return on_backend(inode, std::errc::no_lock_available, [&](Backend& b, InodeId ino) {
    return b.fs.getlk(ctx, ino, handle, owner, lock, lock_flags);
  });
}

Result<void> Vfs::setlk(const api::Context& ctx, InodeId inode, api::HandleId handle, std::uint64_t owner,
                        const api::FileLock& lock, std::uint32_t lock_flags, bool wait) {
  return on_backend(inode, std::errc::no_lock_available, [&](Backend& b, InodeId ino) {
    return b.fs.setlk(ctx, ino, handle, owner, lock, lock_flags, wait);
  });
}

void Vfs::retrieve_reply(const api::Context& ctx, std::uint64_t notify_unique, InodeId inode, std::uint64_t offset,
                         api::ZeroCopyReader& in) {
  auto where = route(inode);
  if (!where || !where->backend) return;
  where->backend->fs.retrieve_reply(ctx, notify_unique, where->inode, offset, in);
}

// --- directories ---------------------------------------------------------------------------------

Result<api::OpenReply> Vfs::opendir(const api::Context& ctx, InodeId inode, std::uint32_t flags) {
  if (index_of(inode) == 0) {
    std::shared_lock lock(mutex_);
    if (pseudo_node(inode) == nullptr) return fail(std::errc::no_such_file_or_directory);
    return api::OpenReply{};
  }
  return on_backend(inode, std::errc::no_such_file_or_directory,
                    [&](Backend& b, InodeId ino) { return b.fs.opendir(ctx, ino, flags); });
}

Result<void> Vfs::list(const api::Context& ctx, InodeId inode, api::HandleId handle, std::uint64_t offset,
                       api::DirSink& sink, bool plus) {
  if (index_of(inode) == 0) return list_pseudo(inode, offset, sink, plus);
  return on_backend(inode, std::errc::no_such_file_or_directory, [&](Backend& b, InodeId ino) {
    TranslatingSink translating(sink, b.fs, b.index, ctx);
    return plus ? b.fs.readdirplus(ctx, ino, handle, offset, translating)
                : b.fs.readdir(ctx, ino, handle, offset, translating);
  });
}

Result<void> Vfs::readdir(const api::Context& ctx, InodeId inode, api::HandleId handle, std::uint64_t offset,
                          api::DirSink& sink) {
  return list(ctx, inode, handle, offset, sink, false);
}

Result<void> Vfs::readdirplus(const api::Context& ctx, InodeId inode, api::HandleId handle, std::uint64_t offset,
                              api::DirSink& sink) {
  return list(ctx, inode, handle, offset, sink, true);
}

Result<void> Vfs::releasedir(const api::Context& ctx, InodeId inode, api::HandleId handle, std::uint32_t flags) {
  if (index_of(inode) == 0) return {};
  return on_backend(inode, std::errc::no_such_file_or_directory,
                    [&](Backend& b, InodeId ino) { return b.fs.releasedir(ctx, ino, handle, flags); });
}

Result<void> Vfs::fsyncdir(const api::Context& ctx, InodeId inode, api::HandleId handle, bool datasync) {
  if (index_of(inode) == 0) return {};
  return on_backend(inode, std::errc::no_such_file_or_directory,
                    [&](Backend& b, InodeId ino) { return b.fs.fsyncdir(ctx, ino, handle, datasync); });
}

// --- whole filesystem ----------------------------------------------------------------------------

Result<struct statvfs> Vfs::statfs(const api::Context& ctx, InodeId inode) {
  if (index_of(inode) == 0) {
    struct statvfs empty {};
    empty.f_bsize = empty.f_frsize = 4096;
    empty.f_namemax = NAME_MAX;
    return empty;
  }
  return on_backend(inode, std::errc::no_such_file_or_directory,
                    [&](Backend& b, InodeId ino) { return b.fs.statfs(ctx, ino); });
}

Result<void> Vfs::access(const api::Context& ctx, InodeId inode, std::uint32_t mask) {
  if (index_of(inode) == 0) {
    if ((mask & W_OK) != 0) return fail(std::errc::permission_denied);
    return {};
  }
  return on_backend(inode, std::errc::no_such_file_or_directory,
                    [&](Backend& b, InodeId ino) { return b.fs.access(ctx, ino, mask); });
}

Result<void> Vfs::syncfs(const api::Context& ctx, InodeId inode) {
  if (index_of(inode) != 0) {
    return on_backend(inode, std::errc::no_such_file_or_directory,
                      [&](Backend& b, InodeId ino) { return b.fs.syncfs(ctx, ino); });
  }
  // The kernel names the root: sync every backend (those without syncfs have nothing to do).
  std::vector<std::shared_ptr<Backend>> mounted;
  {
    std::shared_lock lock(mutex_);
    for (const auto& backend : backends_) {
      if (backend) mounted.push_back(backend);
    }
  }
  Result<void> outcome;
  for (const auto& backend : mounted) {
    const auto synced = backend->fs.syncfs(ctx, api::root_inode);
    if (!synced && synced.error() != std::errc::function_not_supported && outcome) outcome = synced;
  }
  return outcome;
}

// --- extended attributes -------------------------------------------------------------------------

Result<void> Vfs::setxattr(const api::Context& ctx, InodeId inode, std::string_view name,
                           std::span<const std::byte> value, std::uint32_t flags, std::uint32_t setxattr_flags) {
  return on_backend(inode, std::errc::not_supported, [&](Backend& b, InodeId ino) {
    return b.fs.setxattr(ctx, ino, name, value, flags, setxattr_flags);
  });
}

Result<std::size_t> Vfs::getxattr(const api::Context& ctx, InodeId inode, std::string_view name,
                                  std::span<std::byte> value) {
  return on_backend(inode, std::errc::no_message_available,  // ENODATA: pseudo dirs have none
                    [&](Backend& b, InodeId ino) { return b.fs.getxattr(ctx, ino, name, value); });
}

Result<std::size_t> Vfs::listxattr(const api::Context& ctx, InodeId inode, std::span<char> names) {
  if (index_of(inode) == 0) return std::size_t{0};
  return on_backend(inode, std::errc::no_such_file_or_directory,
                    [&](Backend& b, InodeId ino) { return b.fs.listxattr(ctx, ino, names); });
}

Result<void> Vfs::removexattr(const api::Context& ctx, InodeId inode, std::string_view name) {
  return on_backend(inode, std::errc::not_supported,
                    [&](Backend& b, InodeId ino) { return b.fs.removexattr(ctx, ino, name); });
}

}  // namespace fuse_backend::vfs
