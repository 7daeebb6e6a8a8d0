// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//
// fuse_backend/abi/kernel.hpp: the Linux FUSE wire protocol up to 7.45 (kernel 6.18) as plain
// C++ types: request/reply structs, opcodes, notification codes, flag groups, /dev/fuse ioctl
// numbers and the FUSE-over-io_uring structs.
//
// Layer: abi, the bottom of the stack. Depends on nothing but the standard library and never on
// <linux/fuse.h> (build hosts ship older headers than the kernels we talk to).
//
// Contract: every struct is a trivially copyable, standard-layout aggregate whose bytes are the
// wire bytes (FUSE uses the host's byte order; only virtio-fs guests may differ, and that
// translation belongs to the virtio transport). No struct has implicit padding (checked with
// std::has_unique_object_representations below), so memcpy in and out is exact and no
// uninitialised byte can leak to the kernel. Names follow the kernel spelling with the
// `fuse_`/`FUSE_` prefix dropped; where the kernel uses a reserved C++ identifier (`__spare0`)
// or a keyword the deviation is noted next to it. No behaviour lives here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace fuse_backend::abi {

// ---------------------------------------------------------------------------------------------
// Versions and fixed sizes

inline constexpr std::uint32_t kernel_version = 7;
inline constexpr std::uint32_t kernel_minor_version = 45;

// Node id of the filesystem root; the kernel never sends 0.
inline constexpr std::uint64_t root_id = 1;

// A /dev/fuse read buffer must hold at least this much, whatever max_write says.
inline constexpr std::size_t min_read_buffer = 8192;

// Truncated reply / request sizes the kernel uses when the negotiated minor is older.
inline constexpr std::size_t compat_entry_out_size = 120;  // entry_out before 7.9
inline constexpr std::size_t compat_attr_out_size = 96;    // attr_out before 7.9
inline constexpr std::size_t compat_mknod_in_size = 8;     // mknod_in before 7.12 (no umask)
inline constexpr std::size_t compat_write_in_size = 24;    // write_in before 7.9
inline constexpr std::size_t compat_statfs_size = 48;      // statfs_out before 7.4
inline constexpr std::size_t compat_setxattr_in_size = 8;  // setxattr_in without SETXATTR_EXT
inline constexpr std::size_t compat_init_out_size = 8;     // init_out before 7.5
inline constexpr std::size_t compat_22_init_out_size = 24; // init_out before 7.23
// Not a kernel name: init_in was 16 bytes until 7.36 added flags2; older kernels still send that.
inline constexpr std::size_t compat_init_in_size = 16;

inline constexpr std::size_t cuse_init_info_max = 4096;

// Every user of these structs can require this: bytes in == object, no padding holes.
template <class T>
concept wire_struct = std::is_standard_layout_v<T> && std::is_trivially_copyable_v<T> &&
                      std::has_unique_object_representations_v<T>;

// ---------------------------------------------------------------------------------------------
// Attribute and helper records (embedded in replies)

struct attr {
  std::uint64_t ino;
  std::uint64_t size;
  std::uint64_t blocks;
  std::uint64_t atime;
  std::uint64_t mtime;
  std::uint64_t ctime;
  std::uint32_t atimensec;
  std::uint32_t mtimensec;
  std::uint32_t ctimensec;
  std::uint32_t mode;
  std::uint32_t nlink;
  std::uint32_t uid;
  std::uint32_t gid;
  std::uint32_t rdev;
  std::uint32_t blksize;  // 7.9
  std::uint32_t flags;    // attr_flags::*, 7.32 (was padding)
};

// statx timestamp (7.39). The kernel names the last field `__reserved`.
struct sx_time {
  std::int64_t tv_sec;
  std::uint32_t tv_nsec;
  std::int32_t reserved;
};

// fuse_statx (7.39): mirrors struct statx. Kernel `__spare0`/`__spare2` are spare0/spare2 here.
struct statx {
  std::uint32_t mask;
  std::uint32_t blksize;
  std::uint64_t attributes;
  std::uint32_t nlink;
  std::uint32_t uid;
  std::uint32_t gid;
  std::uint16_t mode;
  std::uint16_t spare0[1];
  std::uint64_t ino;
  std::uint64_t size;
  std::uint64_t blocks;
  std::uint64_t attributes_mask;
  sx_time atime;
  sx_time btime;
  sx_time ctime;
  sx_time mtime;
  std::uint32_t rdev_major;
  std::uint32_t rdev_minor;
  std::uint32_t dev_major;
  std::uint32_t dev_minor;
  std::uint64_t spare2[14];
};

struct kstatfs {
  std::uint64_t blocks;
  std::uint64_t bfree;
  std::uint64_t bavail;
  std::uint64_t files;
  std::uint64_t ffree;
  std::uint32_t bsize;
  std::uint32_t namelen;
  std::uint32_t frsize;
  std::uint32_t padding;
  std::uint32_t spare[6];
};

struct file_lock {
  std::uint64_t start;
  std::uint64_t end;
  std::uint32_t type;
  std::uint32_t pid;  // thread group id of the lock holder
};

// ---------------------------------------------------------------------------------------------
// Flag groups

// setattr_in.valid
namespace fattr {
inline constexpr std::uint32_t mode = 1u << 0;
inline constexpr std::uint32_t uid = 1u << 1;
inline constexpr std::uint32_t gid = 1u << 2;
inline constexpr std::uint32_t size = 1u << 3;
inline constexpr std::uint32_t atime = 1u << 4;
inline constexpr std::uint32_t mtime = 1u << 5;
inline constexpr std::uint32_t fh = 1u << 6;
inline constexpr std::uint32_t atime_now = 1u << 7;
inline constexpr std::uint32_t mtime_now = 1u << 8;
inline constexpr std::uint32_t lockowner = 1u << 9;
inline constexpr std::uint32_t ctime = 1u << 10;      // 7.23
inline constexpr std::uint32_t kill_suidgid = 1u << 11;  // 7.33
}  // namespace fattr

// open_out.open_flags (FOPEN_*)
namespace fopen {
inline constexpr std::uint32_t direct_io = 1u << 0;
inline constexpr std::uint32_t keep_cache = 1u << 1;
inline constexpr std::uint32_t nonseekable = 1u << 2;  // 7.10
inline constexpr std::uint32_t cache_dir = 1u << 3;    // 7.28
inline constexpr std::uint32_t stream = 1u << 4;       // 7.31
inline constexpr std::uint32_t noflush = 1u << 5;      // 7.35
inline constexpr std::uint32_t parallel_direct_writes = 1u << 6;  // 7.38
inline constexpr std::uint32_t passthrough = 1u << 7;  // 7.40, with open_out.backing_id
}  // namespace fopen

// INIT capability bits as one 64-bit set. Bits 32..63 travel in init_in/init_out.flags2 (only
// when init_ext is set); use init_flags_from()/split_init_flags() to cross the wire.
namespace init_flags {
inline constexpr std::uint64_t async_read = 1ull << 0;
inline constexpr std::uint64_t posix_locks = 1ull << 1;
inline constexpr std::uint64_t file_ops = 1ull << 2;  // never implemented by the kernel
inline constexpr std::uint64_t atomic_o_trunc = 1ull << 3;
inline constexpr std::uint64_t export_support = 1ull << 4;
inline constexpr std::uint64_t big_writes = 1ull << 5;
inline constexpr std::uint64_t dont_mask = 1ull << 6;
inline constexpr std::uint64_t splice_write = 1ull << 7;
inline constexpr std::uint64_t splice_move = 1ull << 8;
inline constexpr std::uint64_t splice_read = 1ull << 9;
inline constexpr std::uint64_t flock_locks = 1ull << 10;    // 7.17
inline constexpr std::uint64_t has_ioctl_dir = 1ull << 11;  // 7.18
inline constexpr std::uint64_t auto_inval_data = 1ull << 12;  // 7.20
inline constexpr std::uint64_t do_readdirplus = 1ull << 13;   // 7.21
inline constexpr std::uint64_t readdirplus_auto = 1ull << 14;
inline constexpr std::uint64_t async_dio = 1ull << 15;        // 7.22
inline constexpr std::uint64_t writeback_cache = 1ull << 16;  // 7.23
inline constexpr std::uint64_t no_open_support = 1ull << 17;
inline constexpr std::uint64_t parallel_dirops = 1ull << 18;  // 7.25
inline constexpr std::uint64_t handle_killpriv = 1ull << 19;  // 7.26
inline constexpr std::uint64_t posix_acl = 1ull << 20;
inline constexpr std::uint64_t abort_error = 1ull << 21;  // 7.27
inline constexpr std::uint64_t max_pages = 1ull << 22;    // 7.28
inline constexpr std::uint64_t cache_symlinks = 1ull << 23;
inline constexpr std::uint64_t no_opendir_support = 1ull << 24;  // 7.29
inline constexpr std::uint64_t explicit_inval_data = 1ull << 25;  // 7.30
inline constexpr std::uint64_t map_alignment = 1ull << 26;  // 7.31 (DAX)
inline constexpr std::uint64_t submounts = 1ull << 27;      // 7.32
inline constexpr std::uint64_t handle_killpriv_v2 = 1ull << 28;  // 7.33
inline constexpr std::uint64_t setxattr_ext = 1ull << 29;        // 7.33
inline constexpr std::uint64_t init_ext = 1ull << 30;  // 7.36: flags2 is valid
inline constexpr std::uint64_t init_reserved = 1ull << 31;  // reserved by the kernel, never set
// flags2 (bit - 32 on the wire)
inline constexpr std::uint64_t security_ctx = 1ull << 32;       // 7.36
inline constexpr std::uint64_t has_inode_dax = 1ull << 33;      // 7.36
inline constexpr std::uint64_t create_supp_group = 1ull << 34;  // 7.38
inline constexpr std::uint64_t has_expire_only = 1ull << 35;    // 7.38
inline constexpr std::uint64_t direct_io_allow_mmap = 1ull << 36;  // 7.39
inline constexpr std::uint64_t direct_io_relax = direct_io_allow_mmap;  // its first, obsolete name
inline constexpr std::uint64_t passthrough = 1ull << 37;        // 7.40
inline constexpr std::uint64_t no_export_support = 1ull << 38;  // 7.40
inline constexpr std::uint64_t has_resend = 1ull << 39;         // 7.40
inline constexpr std::uint64_t allow_idmap = 1ull << 40;        // 7.41
inline constexpr std::uint64_t over_io_uring = 1ull << 41;      // 7.42
inline constexpr std::uint64_t request_timeout = 1ull << 42;    // 7.43
}  // namespace init_flags

// Joins the two 32-bit INIT flag words into the 64-bit set used by init_flags::*.
constexpr std::uint64_t init_flags_from(std::uint32_t flags, std::uint32_t flags2) noexcept {
  return (std::uint64_t{flags2} << 32) | std::uint64_t{flags};
}

// The way back: the two words to store in init_out.flags / init_out.flags2.
struct init_flag_words {
  std::uint32_t flags;
  std::uint32_t flags2;
};
constexpr init_flag_words split_init_flags(std::uint64_t all) noexcept {
  return {static_cast<std::uint32_t>(all & 0xffff'ffffu), static_cast<std::uint32_t>(all >> 32)};
}

// cuse_init_in/out.flags
namespace cuse_flags {
inline constexpr std::uint32_t unrestricted_ioctl = 1u << 0;
}

// release_in.release_flags
namespace release_flags {
inline constexpr std::uint32_t flush = 1u << 0;
inline constexpr std::uint32_t flock_unlock = 1u << 1;  // 7.17
}  // namespace release_flags

// getattr_in.getattr_flags (also statx_in.getattr_flags)
namespace getattr_flags {
inline constexpr std::uint32_t fh = 1u << 0;
}

// lk_in.lk_flags
namespace lk_flags {
inline constexpr std::uint32_t flock = 1u << 0;  // BSD flock(), not POSIX fcntl lock
}

// write_in.write_flags
namespace write_flags {
inline constexpr std::uint32_t cache = 1u << 0;  // from the page cache: fh is a guess
inline constexpr std::uint32_t lockowner = 1u << 1;
inline constexpr std::uint32_t kill_suidgid = 1u << 2;  // 7.31 as KILL_PRIV, renamed 7.33
inline constexpr std::uint32_t kill_priv = kill_suidgid;  // obsolete alias
}  // namespace write_flags

// read_in.read_flags
namespace read_flags {
inline constexpr std::uint32_t lockowner = 1u << 1;
}

// ioctl_in.flags / ioctl_out.flags
namespace ioctl_flags {
inline constexpr std::uint32_t compat = 1u << 0;
inline constexpr std::uint32_t unrestricted = 1u << 1;
inline constexpr std::uint32_t retry = 1u << 2;
inline constexpr std::uint32_t ioctl_32bit = 1u << 3;  // FUSE_IOCTL_32BIT (7.16)
inline constexpr std::uint32_t dir = 1u << 4;          // 7.18
inline constexpr std::uint32_t compat_x32 = 1u << 5;   // 7.30
// Upper bound on in_iovs + out_iovs of a retry reply.
inline constexpr std::uint32_t ioctl_max_iov = 256;
}  // namespace ioctl_flags

// poll_in.flags
namespace poll_flags {
inline constexpr std::uint32_t schedule_notify = 1u << 0;
}

// fsync_in.fsync_flags (FSYNC and FSYNCDIR)
namespace fsync_flags {
inline constexpr std::uint32_t fdatasync = 1u << 0;
}

// attr.flags
namespace attr_flags {
inline constexpr std::uint32_t submount = 1u << 0;  // 7.32
inline constexpr std::uint32_t dax = 1u << 1;       // 7.36
}  // namespace attr_flags

// open_in.open_flags / create_in.open_flags
namespace open_flags {
inline constexpr std::uint32_t kill_suidgid = 1u << 0;  // 7.33
}

// setxattr_in.setxattr_flags
namespace setxattr_flags {
inline constexpr std::uint32_t acl_kill_sgid = 1u << 0;  // 7.33
}

// setupmapping_in.flags (virtio-fs DAX)
namespace setupmapping_flags {
inline constexpr std::uint64_t write = 1ull << 0;
inline constexpr std::uint64_t read = 1ull << 1;
}  // namespace setupmapping_flags

// notify_inval_entry_out.flags (7.38): only expire the dentry, do not drop it.
inline constexpr std::uint32_t expire_only = 1u << 0;

// Set in in_header.unique when the kernel resends a request after NOTIFY_RESEND (7.40).
inline constexpr std::uint64_t unique_resend = 1ull << 63;

// in_header.uid/gid when the caller has no mapping in the mount's idmap (7.41).
inline constexpr std::uint32_t invalid_uidgid = 0xffff'ffffu;

// ---------------------------------------------------------------------------------------------
// Extensions appended after a request's arguments (in_header.total_extlen, 7.38)

// Largest secctx_header.nr_secctx; ext_header.type values 0..31 are therefore secctx headers.
inline constexpr std::uint32_t max_nr_secctx = 31;

// Values 0..max_nr_secctx are not enumerated: such a block is a secctx_header whose second
// word is nr_secctx (the kernel keeps FUSE_MAX_NR_SECCTX in this enum; here it is the constant
// above, so the two cannot shadow each other).
enum class ext_type : std::uint32_t {
  groups = 32,  // supp_groups (7.38, with init_flags::create_supp_group)
};

// ---------------------------------------------------------------------------------------------
// Opcodes and notification codes

enum class opcode : std::uint32_t {
  lookup = 1,
  forget = 2,  // no reply
  getattr = 3,
  setattr = 4,
  readlink = 5,
  symlink = 6,
  // 7 was FUSE_GETDIR, long gone
  mknod = 8,
  mkdir = 9,
  unlink = 10,
  rmdir = 11,
  rename = 12,
  link = 13,
  open = 14,
  read = 15,
  write = 16,
  statfs = 17,
  release = 18,
  // 19 unused
  fsync = 20,
  setxattr = 21,
  getxattr = 22,
  listxattr = 23,
  removexattr = 24,
  flush = 25,
  init = 26,
  opendir = 27,
  readdir = 28,
  releasedir = 29,
  fsyncdir = 30,
  getlk = 31,
  setlk = 32,
  setlkw = 33,
  access = 34,
  create = 35,
  interrupt = 36,
  bmap = 37,
  destroy = 38,
  ioctl = 39,         // 7.11
  poll = 40,          // 7.11
  notify_reply = 41,  // 7.15: the kernel's answer to NOTIFY_RETRIEVE; no reply
  batch_forget = 42,  // 7.16, no reply
  fallocate = 43,     // 7.19
  readdirplus = 44,   // 7.21
  rename2 = 45,       // 7.23
  lseek = 46,         // 7.24
  copy_file_range = 47,  // 7.28
  setupmapping = 48,     // 7.31 (virtio-fs DAX)
  removemapping = 49,    // 7.31
  syncfs = 50,           // 7.34
  tmpfile = 51,          // 7.37
  statx = 52,            // 7.39
  copy_file_range_64 = 53,  // 7.45
  cuse_init = 4096,
};

// Opcodes the kernel reserves so that a byte-swapped INIT is recognisable; never valid requests.
inline constexpr std::uint32_t cuse_init_bswap_reserved = 4096u << 8;
inline constexpr std::uint32_t init_bswap_reserved = 26u << 24;

// Carried in out_header.error of an unsolicited message (out_header.unique == 0).
enum class notify_code : std::int32_t {
  poll = 1,
  inval_inode = 2,
  inval_entry = 3,
  store = 4,     // 7.15
  retrieve = 5,  // 7.15
  delete_entry = 6,  // FUSE_NOTIFY_DELETE (7.18); `delete` is a keyword
  resend = 7,     // 7.40
  inc_epoch = 8,  // 7.44
  prune = 9,      // 7.45
};

// ---------------------------------------------------------------------------------------------
// Request and reply structs, in kernel order

struct entry_out {
  std::uint64_t nodeid;
  std::uint64_t generation;  // nodeid:generation must be unique over the filesystem's lifetime
  std::uint64_t entry_valid;  // name cache timeout, seconds
  std::uint64_t attr_valid;   // attribute cache timeout, seconds
  std::uint32_t entry_valid_nsec;
  std::uint32_t attr_valid_nsec;
  abi::attr attr;
};

struct forget_in {
  std::uint64_t nlookup;
};

struct forget_one {
  std::uint64_t nodeid;
  std::uint64_t nlookup;
};

// Followed by `count` forget_one records.
struct batch_forget_in {
  std::uint32_t count;
  std::uint32_t dummy;
};

struct getattr_in {
  std::uint32_t getattr_flags;
  std::uint32_t dummy;
  std::uint64_t fh;
};

struct attr_out {
  std::uint64_t attr_valid;
  std::uint32_t attr_valid_nsec;
  std::uint32_t dummy;
  abi::attr attr;
};

struct statx_in {  // 7.39
  std::uint32_t getattr_flags;
  std::uint32_t reserved;
  std::uint64_t fh;
  std::uint32_t sx_flags;
  std::uint32_t sx_mask;
};

struct statx_out {  // 7.39
  std::uint64_t attr_valid;
  std::uint32_t attr_valid_nsec;
  std::uint32_t flags;
  std::uint64_t spare[2];
  abi::statx stat;
};

struct mknod_in {
  std::uint32_t mode;
  std::uint32_t rdev;
  std::uint32_t umask;  // 7.12
  std::uint32_t padding;
};

struct mkdir_in {
  std::uint32_t mode;
  std::uint32_t umask;
};

struct rename_in {
  std::uint64_t newdir;
};

struct rename2_in {  // 7.23
  std::uint64_t newdir;
  std::uint32_t flags;  // RENAME_NOREPLACE / RENAME_EXCHANGE / RENAME_WHITEOUT
  std::uint32_t padding;
};

struct link_in {
  std::uint64_t oldnodeid;
};

struct setattr_in {
  std::uint32_t valid;  // fattr::*
  std::uint32_t padding;
  std::uint64_t fh;
  std::uint64_t size;
  std::uint64_t lock_owner;
  std::uint64_t atime;
  std::uint64_t mtime;
  std::uint64_t ctime;
  std::uint32_t atimensec;
  std::uint32_t mtimensec;
  std::uint32_t ctimensec;
  std::uint32_t mode;
  std::uint32_t unused4;
  std::uint32_t uid;
  std::uint32_t gid;
  std::uint32_t unused5;
};

struct open_in {
  std::uint32_t flags;       // open(2) flags
  std::uint32_t open_flags;  // open_flags::*, 7.33 (was unused)
};

struct create_in {
  std::uint32_t flags;
  std::uint32_t mode;
  std::uint32_t umask;
  std::uint32_t open_flags;  // open_flags::*, 7.33 (was padding)
};

struct open_out {
  std::uint64_t fh;
  std::uint32_t open_flags;  // fopen::*
  std::int32_t backing_id;   // 7.40, with fopen::passthrough (was padding)
};

struct release_in {
  std::uint64_t fh;
  std::uint32_t flags;
  std::uint32_t release_flags;
  std::uint64_t lock_owner;
};

struct flush_in {
  std::uint64_t fh;
  std::uint32_t unused;
  std::uint32_t padding;
  std::uint64_t lock_owner;
};

struct read_in {
  std::uint64_t fh;
  std::uint64_t offset;
  std::uint32_t size;
  std::uint32_t read_flags;
  std::uint64_t lock_owner;
  std::uint32_t flags;
  std::uint32_t padding;
};

// Followed by `size` bytes of data.
struct write_in {
  std::uint64_t fh;
  std::uint64_t offset;
  std::uint32_t size;
  std::uint32_t write_flags;
  std::uint64_t lock_owner;
  std::uint32_t flags;
  std::uint32_t padding;
};

struct write_out {
  std::uint32_t size;
  std::uint32_t padding;
};

struct statfs_out {
  kstatfs st;
};

struct fsync_in {
  std::uint64_t fh;
  std::uint32_t fsync_flags;
  std::uint32_t padding;
};

// The 16-byte form is sent only when init_flags::setxattr_ext was negotiated; otherwise the
// kernel sends compat_setxattr_in_size bytes (size, flags).
struct setxattr_in {
  std::uint32_t size;
  std::uint32_t flags;
  std::uint32_t setxattr_flags;  // 7.33
  std::uint32_t padding;
};

struct getxattr_in {
  std::uint32_t size;
  std::uint32_t padding;
};

struct getxattr_out {
  std::uint32_t size;
  std::uint32_t padding;
};

struct lk_in {
  std::uint64_t fh;
  std::uint64_t owner;
  file_lock lk;
  std::uint32_t lk_flags;
  std::uint32_t padding;
};

struct lk_out {
  file_lock lk;
};

struct access_in {
  std::uint32_t mask;
  std::uint32_t padding;
};

// Kernels before 7.36 send only the first compat_init_in_size bytes.
struct init_in {
  std::uint32_t major;
  std::uint32_t minor;
  std::uint32_t max_readahead;
  std::uint32_t flags;
  std::uint32_t flags2;  // 7.36, valid with init_flags::init_ext
  std::uint32_t unused[11];
};

struct init_out {
  std::uint32_t major;
  std::uint32_t minor;
  std::uint32_t max_readahead;
  std::uint32_t flags;
  std::uint16_t max_background;
  std::uint16_t congestion_threshold;
  std::uint32_t max_write;
  std::uint32_t time_gran;        // 7.23
  std::uint16_t max_pages;        // 7.28
  std::uint16_t map_alignment;    // 7.31
  std::uint32_t flags2;           // 7.36
  std::uint32_t max_stack_depth;  // 7.40, passthrough stacking limit
  std::uint16_t request_timeout;  // 7.43, seconds
  std::uint16_t unused[11];
};

struct cuse_init_in {
  std::uint32_t major;
  std::uint32_t minor;
  std::uint32_t unused;
  std::uint32_t flags;
};

struct cuse_init_out {
  std::uint32_t major;
  std::uint32_t minor;
  std::uint32_t unused;
  std::uint32_t flags;
  std::uint32_t max_read;
  std::uint32_t max_write;
  std::uint32_t dev_major;
  std::uint32_t dev_minor;
  std::uint32_t spare[10];
};

struct interrupt_in {
  std::uint64_t unique;
};

struct bmap_in {
  std::uint64_t block;
  std::uint32_t blocksize;
  std::uint32_t padding;
};

struct bmap_out {
  std::uint64_t block;
};

struct ioctl_in {
  std::uint64_t fh;
  std::uint32_t flags;
  std::uint32_t cmd;
  std::uint64_t arg;
  std::uint32_t in_size;
  std::uint32_t out_size;
};

struct ioctl_iovec {
  std::uint64_t base;
  std::uint64_t len;
};

struct ioctl_out {
  std::int32_t result;
  std::uint32_t flags;
  std::uint32_t in_iovs;
  std::uint32_t out_iovs;
};

struct poll_in {
  std::uint64_t fh;
  std::uint64_t kh;
  std::uint32_t flags;
  std::uint32_t events;  // 7.21
};

struct poll_out {
  std::uint32_t revents;
  std::uint32_t padding;
};

struct notify_poll_wakeup_out {
  std::uint64_t kh;
};

struct fallocate_in {
  std::uint64_t fh;
  std::uint64_t offset;
  std::uint64_t length;
  std::uint32_t mode;
  std::uint32_t padding;
};

struct in_header {
  std::uint32_t len;  // whole request, header included
  std::uint32_t opcode;
  std::uint64_t unique;  // may carry unique_resend
  std::uint64_t nodeid;
  std::uint32_t uid;
  std::uint32_t gid;
  std::uint32_t pid;
  std::uint16_t total_extlen;  // 7.38: extension bytes at the end of the request, in 8-byte units
  std::uint16_t padding;
};

struct out_header {
  std::uint32_t len;  // whole reply, header included
  std::int32_t error;  // 0 or -errno; notify_code for unsolicited messages
  std::uint64_t unique;
};

// Header of one READDIR record; `namelen` name bytes follow at dirent_name_offset and the
// record is padded to dirent_size(namelen).
struct dirent {
  std::uint64_t ino;
  std::uint64_t off;
  std::uint32_t namelen;
  std::uint32_t type;  // DT_* (d_type), i.e. (mode & S_IFMT) >> 12
};

inline constexpr std::size_t dirent_name_offset = 24;

// Records are aligned to 8 bytes (FUSE_REC_ALIGN / FUSE_DIRENT_ALIGN).
constexpr std::size_t rec_align(std::size_t n) noexcept {
  return (n + sizeof(std::uint64_t) - 1) & ~(sizeof(std::uint64_t) - 1);
}
constexpr std::size_t dirent_size(std::size_t namelen) noexcept {
  return rec_align(dirent_name_offset + namelen);
}

// One READDIRPLUS record: entry_out, then the dirent header, then the name.
struct direntplus {
  abi::entry_out entry_out;
  abi::dirent dirent;
};

inline constexpr std::size_t direntplus_name_offset = 152;

constexpr std::size_t direntplus_size(std::size_t namelen) noexcept {
  return rec_align(direntplus_name_offset + namelen);
}

struct notify_inval_inode_out {
  std::uint64_t ino;
  std::int64_t off;
  std::int64_t len;
};

// Followed by the name and its NUL.
struct notify_inval_entry_out {
  std::uint64_t parent;
  std::uint32_t namelen;
  std::uint32_t flags;  // expire_only, 7.38 (was padding)
};

struct notify_delete_out {
  std::uint64_t parent;
  std::uint64_t child;
  std::uint32_t namelen;
  std::uint32_t padding;
};

struct notify_store_out {
  std::uint64_t nodeid;
  std::uint64_t offset;
  std::uint32_t size;
  std::uint32_t padding;
};

struct notify_retrieve_out {
  std::uint64_t notify_unique;
  std::uint64_t nodeid;
  std::uint64_t offset;
  std::uint32_t size;
  std::uint32_t padding;
};

// Argument of opcode::notify_reply; sized like write_in on purpose.
struct notify_retrieve_in {
  std::uint64_t dummy1;
  std::uint64_t offset;
  std::uint32_t size;
  std::uint32_t dummy2;
  std::uint64_t dummy3;
  std::uint64_t dummy4;
};

// notify_code::prune (7.45): followed by `count` node ids (u64) to drop from the cache.
struct notify_prune_out {
  std::uint32_t count;
  std::uint32_t padding;
  std::uint64_t spare;
};

// Argument of dev_ioc_backing_open (7.40).
struct backing_map {
  std::int32_t fd;
  std::uint32_t flags;
  std::uint64_t padding;
};

struct lseek_in {
  std::uint64_t fh;
  std::uint64_t offset;
  std::uint32_t whence;
  std::uint32_t padding;
};

struct lseek_out {
  std::uint64_t offset;
};

// Argument of COPY_FILE_RANGE and COPY_FILE_RANGE_64.
struct copy_file_range_in {
  std::uint64_t fh_in;
  std::uint64_t off_in;
  std::uint64_t nodeid_out;
  std::uint64_t fh_out;
  std::uint64_t off_out;
  std::uint64_t len;
  std::uint64_t flags;
};

// Reply of COPY_FILE_RANGE_64 (7.45); plain COPY_FILE_RANGE answers with write_out.
struct copy_file_range_out {
  std::uint64_t bytes_copied;
};

struct setupmapping_in {
  std::uint64_t fh;       // an open handle
  std::uint64_t foffset;  // file offset of the mapping
  std::uint64_t len;
  std::uint64_t flags;    // setupmapping_flags::*
  std::uint64_t moffset;  // offset in the DAX window
};

// Followed by `count` removemapping_one. Really 4 bytes: the kernel struct has one u32.
struct removemapping_in {
  std::uint32_t count;
};

struct removemapping_one {
  std::uint64_t moffset;
  std::uint64_t len;
};

// FUSE_REMOVEMAPPING_MAX_ENTRY depends on the page size, hence a function.
constexpr std::size_t removemapping_max_entry(std::size_t page_size) noexcept {
  return page_size / sizeof(removemapping_one);
}

struct syncfs_in {  // 7.34
  std::uint64_t padding;
};

// One security context: this header, the NUL-terminated xattr name, then the context value.
struct secctx {
  std::uint32_t size;
  std::uint32_t padding;
};

// Leads the security-context extension; `size` covers all contexts and this header.
struct secctx_header {
  std::uint32_t size;
  std::uint32_t nr_secctx;
};

// Generic extension header (7.38); type > max_nr_secctx tells it apart from secctx_header.
struct ext_header {
  std::uint32_t size;  // this header included
  std::uint32_t type;  // ext_type
};

// ext_type::groups payload: `nr_groups` u32 group ids follow (kernel: flexible groups[]).
struct supp_groups {
  std::uint32_t nr_groups;
};

// ---------------------------------------------------------------------------------------------
// FUSE over io_uring (7.42)

inline constexpr std::size_t uring_in_out_header_sz = 128;
inline constexpr std::size_t uring_op_in_out_sz = 128;

struct uring_ent_in_out {
  std::uint64_t flags;
  std::uint64_t commit_id;  // echo in uring_cmd_req when committing the reply
  std::uint32_t payload_sz;  // bytes used in the payload buffer
  std::uint32_t padding;
  std::uint64_t reserved;
};

// The header buffer registered with every ring entry (iovec 0).
struct uring_req_header {
  char in_out[uring_in_out_header_sz];  // in_header on the way in, out_header on the way out
  char op_in[uring_op_in_out_sz];       // the opcode's fixed argument struct
  uring_ent_in_out ring_ent_in_out;
};

enum class uring_cmd : std::uint32_t {
  invalid = 0,
  register_entry = 1,    // FUSE_IO_URING_CMD_REGISTER; `register` is a keyword
  commit_and_fetch = 2,  // FUSE_IO_URING_CMD_COMMIT_AND_FETCH
};

// The 80-byte SQE command area (IORING_SETUP_SQE128) starts with this.
struct uring_cmd_req {
  std::uint64_t flags;
  std::uint64_t commit_id;
  std::uint16_t qid;
  std::uint8_t padding[6];
};

// ---------------------------------------------------------------------------------------------
// /dev/fuse ioctls, encoded like <asm-generic/ioctl.h> (_IOR/_IOW/_IO); the few architectures
// with a different layout get their own constants, so no <sys/ioctl.h> macro is needed.

namespace detail {
#if defined(__powerpc__) || defined(__mips__) || defined(__sparc__) || defined(__alpha__)
inline constexpr std::uint32_t ioc_none = 1, ioc_write = 4, ioc_read = 2, ioc_sizebits = 13;
#else
inline constexpr std::uint32_t ioc_none = 0, ioc_write = 1, ioc_read = 2, ioc_sizebits = 14;
#endif
constexpr std::uint32_t ioc(std::uint32_t dir, std::uint32_t type, std::uint32_t nr,
                            std::size_t size) noexcept {
  return (dir << (16 + ioc_sizebits)) | (static_cast<std::uint32_t>(size) << 16) | (type << 8) |
         nr;
}
}  // namespace detail

inline constexpr std::uint32_t dev_ioc_magic = 229;
// Clone a session onto a fresh /dev/fuse fd: argument is the session fd (u32).
inline constexpr std::uint32_t dev_ioc_clone =
    detail::ioc(detail::ioc_read, dev_ioc_magic, 0, sizeof(std::uint32_t));
// 7.40: register a backing file for passthrough; returns the backing id.
inline constexpr std::uint32_t dev_ioc_backing_open =
    detail::ioc(detail::ioc_write, dev_ioc_magic, 1, sizeof(backing_map));
// 7.40: drop a backing id (argument: u32 id).
inline constexpr std::uint32_t dev_ioc_backing_close =
    detail::ioc(detail::ioc_write, dev_ioc_magic, 2, sizeof(std::uint32_t));
// 6.18: ask for INIT to be processed synchronously on this fd (no argument).
inline constexpr std::uint32_t dev_ioc_sync_init =
    detail::ioc(detail::ioc_none, dev_ioc_magic, 3, 0);

// ---------------------------------------------------------------------------------------------
// Layout pins: every size is the kernel's, and no struct has hidden padding.

#define FUSE_BACKEND_ABI_PIN(type, bytes) \
  static_assert(sizeof(type) == (bytes) && wire_struct<type>, #type " layout")
FUSE_BACKEND_ABI_PIN(attr, 88);
FUSE_BACKEND_ABI_PIN(sx_time, 16);
FUSE_BACKEND_ABI_PIN(statx, 256);
FUSE_BACKEND_ABI_PIN(kstatfs, 80);
FUSE_BACKEND_ABI_PIN(file_lock, 24);
FUSE_BACKEND_ABI_PIN(entry_out, 128);
FUSE_BACKEND_ABI_PIN(forget_in, 8);
FUSE_BACKEND_ABI_PIN(forget_one, 16);
FUSE_BACKEND_ABI_PIN(batch_forget_in, 8);
FUSE_BACKEND_ABI_PIN(getattr_in, 16);
FUSE_BACKEND_ABI_PIN(attr_out, 104);
FUSE_BACKEND_ABI_PIN(statx_in, 24);
FUSE_BACKEND_ABI_PIN(statx_out, 288);
FUSE_BACKEND_ABI_PIN(mknod_in, 16);
FUSE_BACKEND_ABI_PIN(mkdir_in, 8);
FUSE_BACKEND_ABI_PIN(rename_in, 8);
FUSE_BACKEND_ABI_PIN(rename2_in, 16);
FUSE_BACKEND_ABI_PIN(link_in, 8);
FUSE_BACKEND_ABI_PIN(setattr_in, 88);
FUSE_BACKEND_ABI_PIN(open_in, 8);
FUSE_BACKEND_ABI_PIN(create_in, 16);
FUSE_BACKEND_ABI_PIN(open_out, 16);
FUSE_BACKEND_ABI_PIN(release_in, 24);
FUSE_BACKEND_ABI_PIN(flush_in, 24);
FUSE_BACKEND_ABI_PIN(read_in, 40);
FUSE_BACKEND_ABI_PIN(write_in, 40);
FUSE_BACKEND_ABI_PIN(write_out, 8);
FUSE_BACKEND_ABI_PIN(statfs_out, 80);
FUSE_BACKEND_ABI_PIN(fsync_in, 16);
FUSE_BACKEND_ABI_PIN(setxattr_in, 16);
FUSE_BACKEND_ABI_PIN(getxattr_in, 8);
FUSE_BACKEND_ABI_PIN(getxattr_out, 8);
FUSE_BACKEND_ABI_PIN(lk_in, 48);
FUSE_BACKEND_ABI_PIN(lk_out, 24);
FUSE_BACKEND_ABI_PIN(access_in, 8);
FUSE_BACKEND_ABI_PIN(init_in, 64);
FUSE_BACKEND_ABI_PIN(init_out, 64);
FUSE_BACKEND_ABI_PIN(cuse_init_in, 16);
FUSE_BACKEND_ABI_PIN(cuse_init_out, 72);
FUSE_BACKEND_ABI_PIN(interrupt_in, 8);
FUSE_BACKEND_ABI_PIN(bmap_in, 16);
FUSE_BACKEND_ABI_PIN(bmap_out, 8);
FUSE_BACKEND_ABI_PIN(ioctl_in, 32);
FUSE_BACKEND_ABI_PIN(ioctl_iovec, 16);
FUSE_BACKEND_ABI_PIN(ioctl_out, 16);
FUSE_BACKEND_ABI_PIN(poll_in, 24);
FUSE_BACKEND_ABI_PIN(poll_out, 8);
FUSE_BACKEND_ABI_PIN(notify_poll_wakeup_out, 8);
FUSE_BACKEND_ABI_PIN(fallocate_in, 32);
FUSE_BACKEND_ABI_PIN(in_header, 40);
FUSE_BACKEND_ABI_PIN(out_header, 16);
FUSE_BACKEND_ABI_PIN(dirent, dirent_name_offset);
FUSE_BACKEND_ABI_PIN(direntplus, direntplus_name_offset);
FUSE_BACKEND_ABI_PIN(notify_inval_inode_out, 24);
FUSE_BACKEND_ABI_PIN(notify_inval_entry_out, 16);
FUSE_BACKEND_ABI_PIN(notify_delete_out, 24);
FUSE_BACKEND_ABI_PIN(notify_store_out, 24);
FUSE_BACKEND_ABI_PIN(notify_retrieve_out, 32);
FUSE_BACKEND_ABI_PIN(notify_retrieve_in, 40);
FUSE_BACKEND_ABI_PIN(notify_prune_out, 16);
FUSE_BACKEND_ABI_PIN(backing_map, 16);
FUSE_BACKEND_ABI_PIN(lseek_in, 24);
FUSE_BACKEND_ABI_PIN(lseek_out, 8);
FUSE_BACKEND_ABI_PIN(copy_file_range_in, 56);
FUSE_BACKEND_ABI_PIN(copy_file_range_out, 8);
FUSE_BACKEND_ABI_PIN(setupmapping_in, 40);
FUSE_BACKEND_ABI_PIN(removemapping_in, 4);
FUSE_BACKEND_ABI_PIN(removemapping_one, 16);
FUSE_BACKEND_ABI_PIN(syncfs_in, 8);
FUSE_BACKEND_ABI_PIN(secctx, 8);
FUSE_BACKEND_ABI_PIN(secctx_header, 8);
FUSE_BACKEND_ABI_PIN(ext_header, 8);
FUSE_BACKEND_ABI_PIN(supp_groups, 4);
FUSE_BACKEND_ABI_PIN(uring_ent_in_out, 32);
FUSE_BACKEND_ABI_PIN(uring_req_header, 288);
FUSE_BACKEND_ABI_PIN(uring_cmd_req, 24);
#undef FUSE_BACKEND_ABI_PIN

// Offsets that other layers and the io_uring transport rely on directly.
static_assert(offsetof(direntplus, dirent) == sizeof(entry_out));
static_assert(offsetof(init_out, flags2) == 32 && offsetof(init_out, max_stack_depth) == 36 &&
              offsetof(init_out, request_timeout) == 40);
static_assert(offsetof(uring_req_header, op_in) == 128 &&
              offsetof(uring_req_header, ring_ent_in_out) == 256);
static_assert(sizeof(in_header) <= uring_in_out_header_sz &&
              sizeof(out_header) <= uring_in_out_header_sz);
static_assert(sizeof(uring_cmd_req) <= 80, "must fit the SQE128 command area");
static_assert(sizeof(notify_retrieve_in) == sizeof(write_in));

}  // namespace fuse_backend::abi
