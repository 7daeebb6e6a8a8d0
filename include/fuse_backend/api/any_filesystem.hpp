// AnyFilesystem: a type-erased Filesystem that knows at run time which ops it really has.
//
// Layer: api. Wraps any type modelling api::Filesystem behind one virtual interface so that
// several different filesystems can live side by side (vfs::Vfs mounts them at paths of one
// device), while staying compiled once. The op table is generated in one place
// (FUSE_BACKEND_ANY_FILESYSTEM_OPS below) from the same SupportsX concepts the Server uses:
// - AnyFilesystem itself models Filesystem and every SupportsX, so a Server over it dispatches
//   every op here; an op the wrapped filesystem lacks answers ENOSYS, exactly as the Server
//   would have answered for the wrapped type (forget/destroy/retrieve_reply do nothing;
//   batch_forget falls back to forget per inode, as the Server does).
// - supports(opcode) reports which requests reach the wrapped filesystem's own code.
// - init(offered) offers the wrapped filesystem what a Server serving it directly would have
//   offered (offered ∩ the flags its ops can back ∩ ...), delegates to its init() when it has one,
//   and otherwise keeps what the Server keeps by itself: always_on_init_flags plus the
//   op-backed flags (readdirplus -> do_readdirplus|readdirplus_auto, getlk+setlk ->
//   posix_locks, setlk -> flock_locks, ioctl -> has_ioctl_dir, setxattr -> setxattr_ext), never
//   the opt-in ones. So INIT never advertises a capability the wrapped filesystem lacks.
//
// Ownership: three ways in, one representation (a std::shared_ptr to the wrapped object):
// AnyFilesystem(std::unique_ptr<Fs>) and make<Fs>(args...) own it; AnyFilesystem(std::shared_ptr<Fs>)
// shares it; borrow(fs) does not own it (the caller keeps `fs` alive for as long as the
// AnyFilesystem and its moved-to copies exist). AnyFilesystem is move-only; a moved-from one
// may only be destroyed or assigned to.
// Thread safety: whatever the wrapped filesystem guarantees (the Filesystem contract asks for
// full concurrency); AnyFilesystem adds no state of its own after construction.
// Exceptions thrown by the wrapped filesystem pass through unchanged (the Server catches them).
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sys/statvfs.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/api/filesystem.hpp>
#include <fuse_backend/api/init_flags.hpp>
#include <fuse_backend/result.hpp>

namespace fuse_backend::api {

// The op table: X(op, Concept, return type, (parameters), (arguments), opcodes it serves).
// init and batch_forget are not in it: their fallbacks are not "ENOSYS / nothing".
#define FUSE_BACKEND_ANY_FILESYSTEM_OPS(X)                                                          \
  X(lookup, SupportsLookup, Result<Entry>,                                                          \
    (const Context& ctx, InodeId parent, std::string_view name), (ctx, parent, name),               \
    opcode_bit(abi::opcode::lookup))                                                        \
  X(getattr, SupportsGetattr, Result<AttrReply>,                                                    \
    (const Context& ctx, InodeId inode, std::optional<HandleId> handle), (ctx, inode, handle),      \
    opcode_bit(abi::opcode::getattr))                                                       \
  X(destroy, SupportsDestroy, void, (), (), opcode_bit(abi::opcode::destroy))              \
  X(forget, SupportsForget, void, (const Context& ctx, InodeId inode, std::uint64_t nlookup),       \
    (ctx, inode, nlookup), opcode_bit(abi::opcode::forget))                                 \
  X(setattr, SupportsSetattr, Result<AttrReply>,                                                    \
    (const Context& ctx, InodeId inode, const SetattrIn& in, std::optional<HandleId> handle),       \
    (ctx, inode, in, handle), opcode_bit(abi::opcode::setattr))                             \
  X(readlink, SupportsReadlink, Result<std::size_t>,                                                \
    (const Context& ctx, InodeId inode, std::span<char> target), (ctx, inode, target),              \
    opcode_bit(abi::opcode::readlink))                                                      \
  X(symlink, SupportsSymlink, Result<Entry>,                                                        \
    (const Context& ctx, std::string_view target, InodeId parent, std::string_view name),           \
    (ctx, target, parent, name), opcode_bit(abi::opcode::symlink))                          \
  X(mknod, SupportsMknod, Result<Entry>,                                                            \
    (const Context& ctx, InodeId parent, std::string_view name, std::uint32_t mode,                 \
     std::uint32_t rdev),                                                                           \
    (ctx, parent, name, mode, rdev), opcode_bit(abi::opcode::mknod))                        \
  X(mkdir, SupportsMkdir, Result<Entry>,                                                            \
    (const Context& ctx, InodeId parent, std::string_view name, std::uint32_t mode),                \
    (ctx, parent, name, mode), opcode_bit(abi::opcode::mkdir))                              \
  X(unlink, SupportsUnlink, Result<void>,                                                           \
    (const Context& ctx, InodeId parent, std::string_view name), (ctx, parent, name),               \
    opcode_bit(abi::opcode::unlink))                                                        \
  X(rmdir, SupportsRmdir, Result<void>,                                                             \
    (const Context& ctx, InodeId parent, std::string_view name), (ctx, parent, name),               \
    opcode_bit(abi::opcode::rmdir))                                                         \
  X(rename, SupportsRename, Result<void>,                                                           \
    (const Context& ctx, InodeId old_parent, std::string_view old_name, InodeId new_parent,         \
     std::string_view new_name, std::uint32_t flags),                                               \
    (ctx, old_parent, old_name, new_parent, new_name, flags),                                       \
    opcode_bit(abi::opcode::rename) | opcode_bit(abi::opcode::rename2))             \
  X(link, SupportsLink, Result<Entry>,                                                              \
    (const Context& ctx, InodeId inode, InodeId new_parent, std::string_view new_name),             \
    (ctx, inode, new_parent, new_name), opcode_bit(abi::opcode::link))                      \
  X(open, SupportsOpen, Result<OpenReply>,                                                          \
    (const Context& ctx, InodeId inode, std::uint32_t flags, std::uint32_t open_flags),             \
    (ctx, inode, flags, open_flags), opcode_bit(abi::opcode::open))                         \
  X(create, SupportsCreate, Result<CreateReply>,                                                    \
    (const Context& ctx, InodeId parent, std::string_view name, std::uint32_t mode,                 \
     std::uint32_t flags),                                                                          \
    (ctx, parent, name, mode, flags), opcode_bit(abi::opcode::create))                      \
  X(tmpfile, SupportsTmpfile, Result<CreateReply>,                                                  \
    (const Context& ctx, InodeId parent, std::uint32_t mode, std::uint32_t flags),                  \
    (ctx, parent, mode, flags), opcode_bit(abi::opcode::tmpfile))                           \
  X(read, SupportsRead, Result<std::size_t>,                                                        \
    (const Context& ctx, InodeId inode, HandleId handle, ZeroCopyWriter& out, std::uint32_t size,   \
     std::uint64_t offset, std::uint32_t flags),                                                    \
    (ctx, inode, handle, out, size, offset, flags), opcode_bit(abi::opcode::read))          \
  X(write, SupportsWrite, Result<std::size_t>,                                                      \
    (const Context& ctx, InodeId inode, HandleId handle, ZeroCopyReader& in, std::uint32_t size,    \
     std::uint64_t offset, std::uint32_t write_flags, std::uint32_t flags),                         \
    (ctx, inode, handle, in, size, offset, write_flags, flags), opcode_bit(abi::opcode::write)) \
  X(flush, SupportsFlush, Result<void>,                                                             \
    (const Context& ctx, InodeId inode, HandleId handle, std::uint64_t lock_owner),                 \
    (ctx, inode, handle, lock_owner), opcode_bit(abi::opcode::flush))                       \
  X(release, SupportsRelease, Result<void>,                                                         \
    (const Context& ctx, InodeId inode, HandleId handle, std::uint32_t flags,                       \
     std::uint32_t release_flags, std::uint64_t lock_owner),                                        \
    (ctx, inode, handle, flags, release_flags, lock_owner),                                         \
    opcode_bit(abi::opcode::release))                                                       \
  X(fsync, SupportsFsync, Result<void>,                                                             \
    (const Context& ctx, InodeId inode, HandleId handle, bool datasync),                            \
    (ctx, inode, handle, datasync), opcode_bit(abi::opcode::fsync))                         \
  X(fallocate, SupportsFallocate, Result<void>,                                                     \
    (const Context& ctx, InodeId inode, HandleId handle, std::uint32_t mode, std::uint64_t offset,  \
     std::uint64_t length),                                                                         \
    (ctx, inode, handle, mode, offset, length), opcode_bit(abi::opcode::fallocate))         \
  X(lseek, SupportsLseek, Result<std::uint64_t>,                                                    \
    (const Context& ctx, InodeId inode, HandleId handle, std::uint64_t offset,                      \
     std::uint32_t whence),                                                                         \
    (ctx, inode, handle, offset, whence), opcode_bit(abi::opcode::lseek))                   \
  X(copy_file_range, SupportsCopyFileRange, Result<std::uint64_t>,                                  \
    (const Context& ctx, InodeId inode_in, HandleId handle_in, std::uint64_t offset_in,             \
     InodeId inode_out, HandleId handle_out, std::uint64_t offset_out, std::uint64_t length,        \
     std::uint64_t flags),                                                                          \
    (ctx, inode_in, handle_in, offset_in, inode_out, handle_out, offset_out, length, flags),        \
    opcode_bit(abi::opcode::copy_file_range) |                                              \
        opcode_bit(abi::opcode::copy_file_range_64))                                        \
  X(ioctl, SupportsIoctl, Result<IoctlReply>,                                                       \
    (const Context& ctx, InodeId inode, HandleId handle, std::uint32_t flags,                       \
     std::uint32_t command, std::uint64_t argument, std::span<const std::byte> in,                  \
     std::span<std::byte> out),                                                                     \
    (ctx, inode, handle, flags, command, argument, in, out),                                        \
    opcode_bit(abi::opcode::ioctl))                                                         \
  X(poll, SupportsPoll, Result<std::uint32_t>,                                                      \
    (const Context& ctx, InodeId inode, HandleId handle, std::uint64_t kernel_handle,               \
     std::uint32_t flags, std::uint32_t events),                                                    \
    (ctx, inode, handle, kernel_handle, flags, events), opcode_bit(abi::opcode::poll))      \
  X(bmap, SupportsBmap, Result<std::uint64_t>,                                                      \
    (const Context& ctx, InodeId inode, std::uint64_t block, std::uint32_t block_size),             \
    (ctx, inode, block, block_size), opcode_bit(abi::opcode::bmap))                         \
  X(getlk, SupportsGetlk, Result<FileLock>,                                                         \
    (const Context& ctx, InodeId inode, HandleId handle, std::uint64_t owner,                       \
     const FileLock& lock, std::uint32_t lock_flags),                                               \
    (ctx, inode, handle, owner, lock, lock_flags), opcode_bit(abi::opcode::getlk))          \
  X(setlk, SupportsSetlk, Result<void>,                                                             \
    (const Context& ctx, InodeId inode, HandleId handle, std::uint64_t owner,                       \
     const FileLock& lock, std::uint32_t lock_flags, bool wait),                                    \
    (ctx, inode, handle, owner, lock, lock_flags, wait),                                            \
    opcode_bit(abi::opcode::setlk) | opcode_bit(abi::opcode::setlkw))               \
  X(opendir, SupportsOpendir, Result<OpenReply>,                                                    \
    (const Context& ctx, InodeId inode, std::uint32_t flags), (ctx, inode, flags),                  \
    opcode_bit(abi::opcode::opendir))                                                       \
  X(readdir, SupportsReaddir, Result<void>,                                                         \
    (const Context& ctx, InodeId inode, HandleId handle, std::uint64_t offset, DirSink& sink),      \
    (ctx, inode, handle, offset, sink), opcode_bit(abi::opcode::readdir))                   \
  X(readdirplus, SupportsReaddirplus, Result<void>,                                                 \
    (const Context& ctx, InodeId inode, HandleId handle, std::uint64_t offset, DirSink& sink),      \
    (ctx, inode, handle, offset, sink), opcode_bit(abi::opcode::readdirplus))               \
  X(releasedir, SupportsReleasedir, Result<void>,                                                   \
    (const Context& ctx, InodeId inode, HandleId handle, std::uint32_t flags),                      \
    (ctx, inode, handle, flags), opcode_bit(abi::opcode::releasedir))                       \
  X(fsyncdir, SupportsFsyncdir, Result<void>,                                                       \
    (const Context& ctx, InodeId inode, HandleId handle, bool datasync),                            \
    (ctx, inode, handle, datasync), opcode_bit(abi::opcode::fsyncdir))                      \
  X(statfs, SupportsStatfs, Result<struct statvfs>, (const Context& ctx, InodeId inode),            \
    (ctx, inode), opcode_bit(abi::opcode::statfs))                                          \
  X(access, SupportsAccess, Result<void>, (const Context& ctx, InodeId inode, std::uint32_t mask),  \
    (ctx, inode, mask), opcode_bit(abi::opcode::access))                                    \
  X(syncfs, SupportsSyncfs, Result<void>, (const Context& ctx, InodeId inode), (ctx, inode),        \
    opcode_bit(abi::opcode::syncfs))                                                        \
  X(statx, SupportsStatx, Result<StatxReply>,                                                       \
    (const Context& ctx, InodeId inode, std::optional<HandleId> handle, std::uint32_t flags,        \
     std::uint32_t mask),                                                                           \
    (ctx, inode, handle, flags, mask), opcode_bit(abi::opcode::statx))                      \
  X(setxattr, SupportsSetxattr, Result<void>,                                                       \
    (const Context& ctx, InodeId inode, std::string_view name, std::span<const std::byte> value,    \
     std::uint32_t flags, std::uint32_t setxattr_flags),                                            \
    (ctx, inode, name, value, flags, setxattr_flags), opcode_bit(abi::opcode::setxattr))    \
  X(getxattr, SupportsGetxattr, Result<std::size_t>,                                                \
    (const Context& ctx, InodeId inode, std::string_view name, std::span<std::byte> value),         \
    (ctx, inode, name, value), opcode_bit(abi::opcode::getxattr))                           \
  X(listxattr, SupportsListxattr, Result<std::size_t>,                                              \
    (const Context& ctx, InodeId inode, std::span<char> names), (ctx, inode, names),                \
    opcode_bit(abi::opcode::listxattr))                                                     \
  X(removexattr, SupportsRemovexattr, Result<void>,                                                 \
    (const Context& ctx, InodeId inode, std::string_view name), (ctx, inode, name),                 \
    opcode_bit(abi::opcode::removexattr))                                                   \
  X(retrieve_reply, SupportsRetrieveReply, void,                                                    \
    (const Context& ctx, std::uint64_t notify_unique, InodeId inode, std::uint64_t offset,          \
     ZeroCopyReader& in),                                                                           \
    (ctx, notify_unique, inode, offset, in), opcode_bit(abi::opcode::notify_reply))         \
  X(setupmapping, SupportsSetupmapping, Result<void>,                                               \
    (const Context& ctx, InodeId inode, HandleId handle, std::uint64_t file_offset,                 \
     std::uint64_t length, std::uint64_t flags, std::uint64_t window_offset, DaxMapper& mapper),    \
    (ctx, inode, handle, file_offset, length, flags, window_offset, mapper),                        \
    opcode_bit(abi::opcode::setupmapping))                                                  \
  X(removemapping, SupportsRemovemapping, Result<void>,                                             \
    (const Context& ctx, std::uint64_t window_offset, std::uint64_t length, DaxMapper& mapper),     \
    (ctx, window_offset, length, mapper), opcode_bit(abi::opcode::removemapping))

class AnyFilesystem {
 public:
  // Owns `fs` (not null).
  template <Filesystem Fs>
  explicit AnyFilesystem(std::unique_ptr<Fs> fs) : AnyFilesystem(std::shared_ptr<Fs>(std::move(fs))) {}
  // Shares `fs` (not null) with its other owners.
  template <Filesystem Fs>
  explicit AnyFilesystem(std::shared_ptr<Fs> fs) : model_(std::make_unique<Model<Fs>>(std::move(fs))) {}
  // Builds an owned Fs in place (filesystems holding mutexes cannot be moved in).
  template <Filesystem Fs, class... Args>
  static AnyFilesystem make(Args&&... args) {
    return AnyFilesystem(std::make_shared<Fs>(std::forward<Args>(args)...));
  }
  // Refers to `fs` without owning it: the caller keeps it alive.
  template <Filesystem Fs>
  static AnyFilesystem borrow(Fs& fs) {
    // The aliasing constructor with an empty owner: a pointer that owns nothing.
    return AnyFilesystem(std::shared_ptr<Fs>(std::shared_ptr<void>(), &fs));
  }

  AnyFilesystem(AnyFilesystem&&) noexcept = default;
  AnyFilesystem& operator=(AnyFilesystem&&) noexcept = default;
  ~AnyFilesystem() = default;

  // True when requests with this opcode reach the wrapped filesystem's own code (rename2,
  // setlkw, copy_file_range_64 and notify_reply count with the op that serves them).
  bool supports(abi::opcode op) const noexcept { return (model_->opcodes() & opcode_bit(op)) != 0; }
  // The set of such opcodes, one bit per opcode value (opcode_bit).
  std::uint64_t opcodes() const noexcept { return model_->opcodes(); }

  // INIT: see the header comment.
  Result<std::uint64_t> init(std::uint64_t offered) { return model_->init(offered); }
  // BATCH_FORGET: the wrapped batch_forget, else its forget for each entry, else nothing.
  void batch_forget(const Context& ctx, std::span<const ForgetOne> forgets) {
    model_->batch_forget(ctx, forgets);
  }

#define FUSE_BACKEND_ANY_FORWARD(op, concept_name, R, params, args, opcode_bits) \
  R op params { return model_->op args; }
  FUSE_BACKEND_ANY_FILESYSTEM_OPS(FUSE_BACKEND_ANY_FORWARD)
#undef FUSE_BACKEND_ANY_FORWARD

 private:
  class Interface {
   public:
    virtual ~Interface() = default;
    virtual std::uint64_t opcodes() const noexcept = 0;
    virtual Result<std::uint64_t> init(std::uint64_t offered) = 0;
    virtual void batch_forget(const Context& ctx, std::span<const ForgetOne> forgets) = 0;
#define FUSE_BACKEND_ANY_VIRTUAL(op, concept_name, R, params, args, opcode_bits) virtual R op params = 0;
    FUSE_BACKEND_ANY_FILESYSTEM_OPS(FUSE_BACKEND_ANY_VIRTUAL)
#undef FUSE_BACKEND_ANY_VIRTUAL
  };

  template <class Fs>
  class Model final : public Interface {
   public:
    explicit Model(std::shared_ptr<Fs> fs) noexcept : fs_(std::move(fs)) {}

    // The opcodes Fs serves, computed from the concepts at compile time.
    static constexpr std::uint64_t served_opcodes() noexcept {
      std::uint64_t served = 0;
#define FUSE_BACKEND_ANY_OPCODES(op, concept_name, R, params, args, opcode_bits) \
  if constexpr (concept_name<Fs>) served |= (opcode_bits);
      FUSE_BACKEND_ANY_FILESYSTEM_OPS(FUSE_BACKEND_ANY_OPCODES)
#undef FUSE_BACKEND_ANY_OPCODES
      if constexpr (SupportsInit<Fs>) served |= opcode_bit(abi::opcode::init);
      if constexpr (SupportsBatchForget<Fs>) served |= opcode_bit(abi::opcode::batch_forget);
      return served;
    }

    std::uint64_t opcodes() const noexcept override { return served_opcodes(); }

    Result<std::uint64_t> init(std::uint64_t offered) override {
      constexpr std::uint64_t backed = op_backed_init_flags(served_opcodes());
      // What Server<T, Fs>::handle_init would have offered Fs: the rest of the Server's
      // possible flags (always-on and opt-in) are possible for every filesystem.
      const std::uint64_t possible =
          offered & (always_on_init_flags | backed | opt_in_init_flags);
      if constexpr (SupportsInit<Fs>) {
        const auto chosen = fs_->init(possible);
        if (!chosen) return chosen;
        return *chosen & possible;
      } else {
        return possible & (always_on_init_flags | backed);
      }
    }

    void batch_forget(const Context& ctx, std::span<const ForgetOne> forgets) override {
      if constexpr (SupportsBatchForget<Fs>) {
        fs_->batch_forget(ctx, forgets);
      } else if constexpr (SupportsForget<Fs>) {
        for (const ForgetOne& one : forgets) fs_->forget(ctx, one.inode, one.nlookup);
      }
    }

#define FUSE_BACKEND_ANY_OVERRIDE(op, concept_name, R, params, args, opcode_bits) \
  R op params override {                                                         \
    if constexpr (concept_name<Fs>) {                                            \
      return fs_->op args;                                                       \
    } else {                                                                     \
      return missing<R>();                                                       \
    }                                                                            \
  }
    FUSE_BACKEND_ANY_FILESYSTEM_OPS(FUSE_BACKEND_ANY_OVERRIDE)
#undef FUSE_BACKEND_ANY_OVERRIDE

   private:
    static_assert(check_signatures<Fs>());

    // An op Fs lacks: ENOSYS, or nothing for ops without a reply.
    template <class R>
    static R missing() noexcept {
      if constexpr (std::is_void_v<R>) {
        return;
      } else {
        return fail(std::errc::function_not_supported);
      }
    }

    std::shared_ptr<Fs> fs_;
  };

  std::unique_ptr<Interface> model_;
};

#undef FUSE_BACKEND_ANY_FILESYSTEM_OPS

static_assert(Filesystem<AnyFilesystem>);
static_assert(SupportsInit<AnyFilesystem> && SupportsBatchForget<AnyFilesystem> &&
              SupportsReaddirplus<AnyFilesystem> && SupportsRemovemapping<AnyFilesystem>);

}  // namespace fuse_backend::api
