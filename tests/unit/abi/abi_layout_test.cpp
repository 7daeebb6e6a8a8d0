// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//
// Layout test for fuse_backend/abi: every struct and constant that the system <linux/fuse.h>
// also declares must match it field by field (offset, size, element type) and value by value.
// Definitions newer than the system header (Debian 12 ships 7.38, and a partial one) are
// compared when the header has them and are always pinned to the sizes and offsets of the
// 7.45 (linux 6.18) header. The opcode table is checked against the enum as well.

#include <linux/fuse.h>
#include <sys/ioctl.h>

#include <cstddef>
#include <cstdint>
#include <set>
#include <string_view>
#include <type_traits>

#include <gtest/gtest.h>

#include "fuse_backend/abi/kernel.hpp"
#include "fuse_backend/abi/opcode_table.hpp"

namespace {

namespace abi = fuse_backend::abi;

// Element type of a field for comparison; nested structs compare by size and offset only.
template <class T>
using Elem = std::conditional_t<std::is_class_v<std::remove_all_extents_t<T>>, void,
                                std::remove_all_extents_t<T>>;

// LAYOUT opens a comparison of abi::ours against the kernel's struct `theirs` and pins its size.
#define LAYOUT(ours, theirs, bytes)                          \
  using Ours = abi::ours;                                    \
  using Theirs = theirs;                                     \
  EXPECT_EQ(sizeof(Ours), sizeof(Theirs));                   \
  EXPECT_EQ(sizeof(Ours), std::size_t{bytes});               \
  EXPECT_TRUE(abi::wire_struct<Ours>)

// FIELD_AS compares our field with the kernel's (renamed) field; FIELD when the names agree.
#define FIELD_AS(ours_f, theirs_f)                                                        \
  EXPECT_EQ(offsetof(Ours, ours_f), offsetof(Theirs, theirs_f)) << #ours_f;              \
  EXPECT_EQ(sizeof(Ours::ours_f), sizeof(Theirs::theirs_f)) << #ours_f;                  \
  EXPECT_TRUE((std::is_same_v<Elem<decltype(Ours::ours_f)>, Elem<decltype(Theirs::theirs_f)>>)) \
      << #ours_f
#define FIELD(f) FIELD_AS(f, f)

// PIN: a field of a definition newer than the system header, pinned to the 6.18 layout.
#define PIN(type, f, off, bytes)                                              \
  EXPECT_EQ(offsetof(abi::type, f), std::size_t{off}) << #type "." #f;       \
  EXPECT_EQ(sizeof(abi::type::f), std::size_t{bytes}) << #type "." #f

// SAME: one of our constants equals the kernel's macro or enumerator.
#define SAME(ours, theirs) \
  EXPECT_EQ(ours, static_cast<std::remove_cvref_t<decltype(ours)>>(theirs)) << #theirs

// ---------------------------------------------------------------------------------------------
// Headers and basic records

TEST(AbiLayout, VersionConstantsMatchKernel) {
  SAME(abi::kernel_version, FUSE_KERNEL_VERSION);
  EXPECT_GE(abi::kernel_minor_version, std::uint32_t{FUSE_KERNEL_MINOR_VERSION});
  EXPECT_EQ(abi::kernel_minor_version, 45u);
  SAME(abi::root_id, FUSE_ROOT_ID);
  SAME(abi::min_read_buffer, FUSE_MIN_READ_BUFFER);
  SAME(abi::compat_entry_out_size, FUSE_COMPAT_ENTRY_OUT_SIZE);
  SAME(abi::compat_attr_out_size, FUSE_COMPAT_ATTR_OUT_SIZE);
  SAME(abi::compat_mknod_in_size, FUSE_COMPAT_MKNOD_IN_SIZE);
  SAME(abi::compat_write_in_size, FUSE_COMPAT_WRITE_IN_SIZE);
  SAME(abi::compat_statfs_size, FUSE_COMPAT_STATFS_SIZE);
  SAME(abi::compat_setxattr_in_size, FUSE_COMPAT_SETXATTR_IN_SIZE);
  SAME(abi::compat_init_out_size, FUSE_COMPAT_INIT_OUT_SIZE);
  SAME(abi::compat_22_init_out_size, FUSE_COMPAT_22_INIT_OUT_SIZE);
  SAME(abi::cuse_init_info_max, CUSE_INIT_INFO_MAX);
  EXPECT_EQ(abi::compat_init_in_size, offsetof(fuse_init_in, flags2));
}

TEST(AbiLayout, InHeaderMatchesKernel) {
  LAYOUT(in_header, fuse_in_header, 40);
  FIELD(len);
  FIELD(opcode);
  FIELD(unique);
  FIELD(nodeid);
  FIELD(uid);
  FIELD(gid);
  FIELD(pid);
  FIELD(total_extlen);
  FIELD(padding);
}

TEST(AbiLayout, OutHeaderMatchesKernel) {
  LAYOUT(out_header, fuse_out_header, 16);
  FIELD(len);
  FIELD(error);
  FIELD(unique);
}

TEST(AbiLayout, AttrMatchesKernel) {
  LAYOUT(attr, fuse_attr, 88);
  FIELD(ino);
  FIELD(size);
  FIELD(blocks);
  FIELD(atime);
  FIELD(mtime);
  FIELD(ctime);
  FIELD(atimensec);
  FIELD(mtimensec);
  FIELD(ctimensec);
  FIELD(mode);
  FIELD(nlink);
  FIELD(uid);
  FIELD(gid);
  FIELD(rdev);
  FIELD(blksize);
  FIELD(flags);
}

TEST(AbiLayout, KstatfsMatchesKernel) {
  LAYOUT(kstatfs, fuse_kstatfs, 80);
  FIELD(blocks);
  FIELD(bfree);
  FIELD(bavail);
  FIELD(files);
  FIELD(ffree);
  FIELD(bsize);
  FIELD(namelen);
  FIELD(frsize);
  FIELD(padding);
  FIELD(spare);
}

TEST(AbiLayout, FileLockMatchesKernel) {
  LAYOUT(file_lock, fuse_file_lock, 24);
  FIELD(start);
  FIELD(end);
  FIELD(type);
  FIELD(pid);
}

TEST(AbiLayout, EntryOutMatchesKernel) {
  LAYOUT(entry_out, fuse_entry_out, 128);
  FIELD(nodeid);
  FIELD(generation);
  FIELD(entry_valid);
  FIELD(attr_valid);
  FIELD(entry_valid_nsec);
  FIELD(attr_valid_nsec);
  FIELD(attr);
}

TEST(AbiLayout, AttrOutMatchesKernel) {
  LAYOUT(attr_out, fuse_attr_out, 104);
  FIELD(attr_valid);
  FIELD(attr_valid_nsec);
  FIELD(dummy);
  FIELD(attr);
}

TEST(AbiLayout, DirentMatchesKernel) {
  LAYOUT(dirent, fuse_dirent, 24);
  FIELD(ino);
  FIELD(off);
  FIELD(namelen);
  FIELD(type);
  EXPECT_EQ(abi::dirent_name_offset, FUSE_NAME_OFFSET);
  alignas(8) unsigned char buf[sizeof(fuse_dirent) + 64] = {};
  auto* d = reinterpret_cast<fuse_dirent*>(buf);
  for (std::uint32_t n = 0; n < 40; ++n) {
    d->namelen = n;
    EXPECT_EQ(abi::dirent_size(n), FUSE_DIRENT_SIZE(d)) << n;
    EXPECT_EQ(abi::rec_align(n), FUSE_DIRENT_ALIGN(n)) << n;
  }
  EXPECT_EQ(abi::dirent_size(1), 32u);
  EXPECT_EQ(abi::dirent_size(8), 32u);
  EXPECT_EQ(abi::dirent_size(9), 40u);
}

TEST(AbiLayout, DirentplusMatchesKernel) {
  LAYOUT(direntplus, fuse_direntplus, 152);
  FIELD(entry_out);
  FIELD(dirent);
  EXPECT_EQ(abi::direntplus_name_offset, FUSE_NAME_OFFSET_DIRENTPLUS);
  alignas(8) unsigned char buf[sizeof(fuse_direntplus) + 64] = {};
  auto* d = reinterpret_cast<fuse_direntplus*>(buf);
  for (std::uint32_t n = 0; n < 40; ++n) {
    d->dirent.namelen = n;
    EXPECT_EQ(abi::direntplus_size(n), FUSE_DIRENTPLUS_SIZE(d)) << n;
  }
}

// ---------------------------------------------------------------------------------------------
// Request arguments and replies

TEST(AbiLayout, ForgetStructsMatchKernel) {
  {
    LAYOUT(forget_in, fuse_forget_in, 8);
    FIELD(nlookup);
  }
  {
    LAYOUT(forget_one, fuse_forget_one, 16);
    FIELD(nodeid);
    FIELD(nlookup);
  }
  {
    LAYOUT(batch_forget_in, fuse_batch_forget_in, 8);
    FIELD(count);
    FIELD(dummy);
  }
}

TEST(AbiLayout, GetattrInMatchesKernel) {
  LAYOUT(getattr_in, fuse_getattr_in, 16);
  FIELD(getattr_flags);
  FIELD(dummy);
  FIELD(fh);
}

TEST(AbiLayout, SetattrInMatchesKernel) {
  LAYOUT(setattr_in, fuse_setattr_in, 88);
  FIELD(valid);
  FIELD(padding);
  FIELD(fh);
  FIELD(size);
  FIELD(lock_owner);
  FIELD(atime);
  FIELD(mtime);
  FIELD(ctime);
  FIELD(atimensec);
  FIELD(mtimensec);
  FIELD(ctimensec);
  FIELD(mode);
  FIELD(unused4);
  FIELD(uid);
  FIELD(gid);
  FIELD(unused5);
}

TEST(AbiLayout, NodeCreationArgsMatchKernel) {
  {
    LAYOUT(mknod_in, fuse_mknod_in, 16);
    FIELD(mode);
    FIELD(rdev);
    FIELD(umask);
    FIELD(padding);
  }
  {
    LAYOUT(mkdir_in, fuse_mkdir_in, 8);
    FIELD(mode);
    FIELD(umask);
  }
  {
    LAYOUT(rename_in, fuse_rename_in, 8);
    FIELD(newdir);
  }
  {
    LAYOUT(rename2_in, fuse_rename2_in, 16);
    FIELD(newdir);
    FIELD(flags);
    FIELD(padding);
  }
  {
    LAYOUT(link_in, fuse_link_in, 8);
    FIELD(oldnodeid);
  }
}

TEST(AbiLayout, OpenStructsMatchKernel) {
  {
    LAYOUT(open_in, fuse_open_in, 8);
    FIELD(flags);
    FIELD(open_flags);
  }
  {
    LAYOUT(create_in, fuse_create_in, 16);
    FIELD(flags);
    FIELD(mode);
    FIELD(umask);
    FIELD(open_flags);
  }
  {
    LAYOUT(open_out, fuse_open_out, 16);
    FIELD(fh);
    FIELD(open_flags);
#if FUSE_KERNEL_MINOR_VERSION >= 40
    FIELD(backing_id);
#else
    // Same slot, an unsigned `padding` before 7.40: compare place and size only.
    EXPECT_EQ(offsetof(Ours, backing_id), offsetof(Theirs, padding));
    EXPECT_EQ(sizeof(Ours::backing_id), sizeof(Theirs::padding));
#endif
  }
  PIN(open_out, backing_id, 12, 4);
  EXPECT_TRUE(std::is_signed_v<decltype(abi::open_out::backing_id)>);
}

TEST(AbiLayout, ReleaseAndFlushInMatchKernel) {
  {
    LAYOUT(release_in, fuse_release_in, 24);
    FIELD(fh);
    FIELD(flags);
    FIELD(release_flags);
    FIELD(lock_owner);
  }
  {
    LAYOUT(flush_in, fuse_flush_in, 24);
    FIELD(fh);
    FIELD(unused);
    FIELD(padding);
    FIELD(lock_owner);
  }
}

TEST(AbiLayout, ReadWriteStructsMatchKernel) {
  {
    LAYOUT(read_in, fuse_read_in, 40);
    FIELD(fh);
    FIELD(offset);
    FIELD(size);
    FIELD(read_flags);
    FIELD(lock_owner);
    FIELD(flags);
    FIELD(padding);
  }
  {
    LAYOUT(write_in, fuse_write_in, 40);
    FIELD(fh);
    FIELD(offset);
    FIELD(size);
    FIELD(write_flags);
    FIELD(lock_owner);
    FIELD(flags);
    FIELD(padding);
  }
  {
    LAYOUT(write_out, fuse_write_out, 8);
    FIELD(size);
    FIELD(padding);
  }
}

TEST(AbiLayout, StatfsAndFsyncMatchKernel) {
  {
    LAYOUT(statfs_out, fuse_statfs_out, 80);
    FIELD(st);
  }
  {
    LAYOUT(fsync_in, fuse_fsync_in, 16);
    FIELD(fh);
    FIELD(fsync_flags);
    FIELD(padding);
  }
}

TEST(AbiLayout, XattrStructsMatchKernel) {
  {
    LAYOUT(setxattr_in, fuse_setxattr_in, 16);
    FIELD(size);
    FIELD(flags);
    FIELD(setxattr_flags);
    FIELD(padding);
    EXPECT_EQ(offsetof(Ours, setxattr_flags), abi::compat_setxattr_in_size);
  }
  {
    LAYOUT(getxattr_in, fuse_getxattr_in, 8);
    FIELD(size);
    FIELD(padding);
  }
  {
    LAYOUT(getxattr_out, fuse_getxattr_out, 8);
    FIELD(size);
    FIELD(padding);
  }
}

TEST(AbiLayout, LockStructsMatchKernel) {
  {
    LAYOUT(lk_in, fuse_lk_in, 48);
    FIELD(fh);
    FIELD(owner);
    FIELD(lk);
    FIELD(lk_flags);
    FIELD(padding);
  }
  {
    LAYOUT(lk_out, fuse_lk_out, 24);
    FIELD(lk);
  }
  {
    LAYOUT(access_in, fuse_access_in, 8);
    FIELD(mask);
    FIELD(padding);
  }
}

TEST(AbiLayout, InitInMatchesKernel) {
  LAYOUT(init_in, fuse_init_in, 64);
  FIELD(major);
  FIELD(minor);
  FIELD(max_readahead);
  FIELD(flags);
  FIELD(flags2);
  FIELD(unused);
}

TEST(AbiLayout, InitOutMatchesKernel) {
  LAYOUT(init_out, fuse_init_out, 64);
  FIELD(major);
  FIELD(minor);
  FIELD(max_readahead);
  FIELD(flags);
  FIELD(max_background);
  FIELD(congestion_threshold);
  FIELD(max_write);
  FIELD(time_gran);
  FIELD(max_pages);
  FIELD(map_alignment);
  FIELD(flags2);
#if FUSE_KERNEL_MINOR_VERSION >= 43
  FIELD(max_stack_depth);
  FIELD(request_timeout);
  FIELD(unused);
#endif
  // 7.40 / 7.43 carved these out of the old unused[7].
  PIN(init_out, flags2, 32, 4);
  PIN(init_out, max_stack_depth, 36, 4);
  PIN(init_out, request_timeout, 40, 2);
  PIN(init_out, unused, 42, 22);
  // Replies to minor <= 22 end before time_gran.
  EXPECT_EQ(offsetof(Ours, time_gran), abi::compat_22_init_out_size);
}

TEST(AbiLayout, CuseInitMatchesKernel) {
  {
    LAYOUT(cuse_init_in, cuse_init_in, 16);
    FIELD(major);
    FIELD(minor);
    FIELD(unused);
    FIELD(flags);
  }
  {
    LAYOUT(cuse_init_out, cuse_init_out, 72);
    FIELD(major);
    FIELD(minor);
    FIELD(unused);
    FIELD(flags);
    FIELD(max_read);
    FIELD(max_write);
    FIELD(dev_major);
    FIELD(dev_minor);
    FIELD(spare);
  }
}

TEST(AbiLayout, InterruptAndBmapMatchKernel) {
  {
    LAYOUT(interrupt_in, fuse_interrupt_in, 8);
    FIELD(unique);
  }
  {
    LAYOUT(bmap_in, fuse_bmap_in, 16);
    FIELD(block);
    FIELD(blocksize);
    FIELD(padding);
  }
  {
    LAYOUT(bmap_out, fuse_bmap_out, 8);
    FIELD(block);
  }
}

TEST(AbiLayout, IoctlStructsMatchKernel) {
  {
    LAYOUT(ioctl_in, fuse_ioctl_in, 32);
    FIELD(fh);
    FIELD(flags);
    FIELD(cmd);
    FIELD(arg);
    FIELD(in_size);
    FIELD(out_size);
  }
  {
    LAYOUT(ioctl_iovec, fuse_ioctl_iovec, 16);
    FIELD(base);
    FIELD(len);
  }
  {
    LAYOUT(ioctl_out, fuse_ioctl_out, 16);
    FIELD(result);
    FIELD(flags);
    FIELD(in_iovs);
    FIELD(out_iovs);
  }
}

TEST(AbiLayout, PollStructsMatchKernel) {
  {
    LAYOUT(poll_in, fuse_poll_in, 24);
    FIELD(fh);
    FIELD(kh);
    FIELD(flags);
    FIELD(events);
  }
  {
    LAYOUT(poll_out, fuse_poll_out, 8);
    FIELD(revents);
    FIELD(padding);
  }
  {
    LAYOUT(notify_poll_wakeup_out, fuse_notify_poll_wakeup_out, 8);
    FIELD(kh);
  }
}

TEST(AbiLayout, FallocateAndLseekMatchKernel) {
  {
    LAYOUT(fallocate_in, fuse_fallocate_in, 32);
    FIELD(fh);
    FIELD(offset);
    FIELD(length);
    FIELD(mode);
    FIELD(padding);
  }
  {
    LAYOUT(lseek_in, fuse_lseek_in, 24);
    FIELD(fh);
    FIELD(offset);
    FIELD(whence);
    FIELD(padding);
  }
  {
    LAYOUT(lseek_out, fuse_lseek_out, 8);
    FIELD(offset);
  }
}

TEST(AbiLayout, CopyFileRangeMatchesKernel) {
  {
    LAYOUT(copy_file_range_in, fuse_copy_file_range_in, 56);
    FIELD(fh_in);
    FIELD(off_in);
    FIELD(nodeid_out);
    FIELD(fh_out);
    FIELD(off_out);
    FIELD(len);
    FIELD(flags);
  }
#if FUSE_KERNEL_MINOR_VERSION >= 45
  {
    LAYOUT(copy_file_range_out, fuse_copy_file_range_out, 8);
    FIELD(bytes_copied);
  }
#endif
  EXPECT_EQ(sizeof(abi::copy_file_range_out), 8u);
  PIN(copy_file_range_out, bytes_copied, 0, 8);
}

TEST(AbiLayout, DaxMappingStructsMatchKernel) {
  {
    LAYOUT(setupmapping_in, fuse_setupmapping_in, 40);
    FIELD(fh);
    FIELD(foffset);
    FIELD(len);
    FIELD(flags);
    FIELD(moffset);
  }
  {
    LAYOUT(removemapping_in, fuse_removemapping_in, 4);
    FIELD(count);
  }
  {
    LAYOUT(removemapping_one, fuse_removemapping_one, 16);
    FIELD(moffset);
    FIELD(len);
  }
  EXPECT_EQ(abi::removemapping_max_entry(4096), 256u);
  SAME(abi::setupmapping_flags::write, FUSE_SETUPMAPPING_FLAG_WRITE);
  SAME(abi::setupmapping_flags::read, FUSE_SETUPMAPPING_FLAG_READ);
}

TEST(AbiLayout, SyncfsInMatchesKernel) {
  LAYOUT(syncfs_in, fuse_syncfs_in, 8);
  FIELD(padding);
}

TEST(AbiLayout, StatxMatchesKernel) {
#if FUSE_KERNEL_MINOR_VERSION >= 39
  {
    LAYOUT(sx_time, fuse_sx_time, 16);
    FIELD(tv_sec);
    FIELD(tv_nsec);
    FIELD_AS(reserved, __reserved);
  }
  {
    LAYOUT(statx, fuse_statx, 256);
    FIELD(mask);
    FIELD(mode);
    FIELD_AS(spare0, __spare0);
    FIELD(atime);
    FIELD(dev_minor);
    FIELD_AS(spare2, __spare2);
  }
  {
    LAYOUT(statx_in, fuse_statx_in, 24);
    FIELD(sx_mask);
  }
  {
    LAYOUT(statx_out, fuse_statx_out, 288);
    FIELD(stat);
  }
#endif
  EXPECT_EQ(sizeof(abi::sx_time), 16u);
  PIN(sx_time, tv_sec, 0, 8);
  PIN(sx_time, tv_nsec, 8, 4);
  PIN(sx_time, reserved, 12, 4);
  EXPECT_EQ(sizeof(abi::statx), 256u);
  PIN(statx, mask, 0, 4);
  PIN(statx, blksize, 4, 4);
  PIN(statx, attributes, 8, 8);
  PIN(statx, nlink, 16, 4);
  PIN(statx, uid, 20, 4);
  PIN(statx, gid, 24, 4);
  PIN(statx, mode, 28, 2);
  PIN(statx, spare0, 30, 2);
  PIN(statx, ino, 32, 8);
  PIN(statx, size, 40, 8);
  PIN(statx, blocks, 48, 8);
  PIN(statx, attributes_mask, 56, 8);
  PIN(statx, atime, 64, 16);
  PIN(statx, btime, 80, 16);
  PIN(statx, ctime, 96, 16);
  PIN(statx, mtime, 112, 16);
  PIN(statx, rdev_major, 128, 4);
  PIN(statx, rdev_minor, 132, 4);
  PIN(statx, dev_major, 136, 4);
  PIN(statx, dev_minor, 140, 4);
  PIN(statx, spare2, 144, 112);
  EXPECT_EQ(sizeof(abi::statx_in), 24u);
  PIN(statx_in, getattr_flags, 0, 4);
  PIN(statx_in, reserved, 4, 4);
  PIN(statx_in, fh, 8, 8);
  PIN(statx_in, sx_flags, 16, 4);
  PIN(statx_in, sx_mask, 20, 4);
  EXPECT_EQ(sizeof(abi::statx_out), 288u);
  PIN(statx_out, attr_valid, 0, 8);
  PIN(statx_out, attr_valid_nsec, 8, 4);
  PIN(statx_out, flags, 12, 4);
  PIN(statx_out, spare, 16, 16);
  PIN(statx_out, stat, 32, 256);
}

// ---------------------------------------------------------------------------------------------
// Notifications, extensions, passthrough, io_uring

TEST(AbiLayout, NotifyStructsMatchKernel) {
  {
    LAYOUT(notify_inval_inode_out, fuse_notify_inval_inode_out, 24);
    FIELD(ino);
    FIELD(off);
    FIELD(len);
  }
  {
    LAYOUT(notify_inval_entry_out, fuse_notify_inval_entry_out, 16);
    FIELD(parent);
    FIELD(namelen);
    FIELD(flags);
  }
  {
    LAYOUT(notify_delete_out, fuse_notify_delete_out, 24);
    FIELD(parent);
    FIELD(child);
    FIELD(namelen);
    FIELD(padding);
  }
  {
    LAYOUT(notify_store_out, fuse_notify_store_out, 24);
    FIELD(nodeid);
    FIELD(offset);
    FIELD(size);
    FIELD(padding);
  }
  {
    LAYOUT(notify_retrieve_out, fuse_notify_retrieve_out, 32);
    FIELD(notify_unique);
    FIELD(nodeid);
    FIELD(offset);
    FIELD(size);
    FIELD(padding);
  }
  {
    LAYOUT(notify_retrieve_in, fuse_notify_retrieve_in, 40);
    FIELD(dummy1);
    FIELD(offset);
    FIELD(size);
    FIELD(dummy2);
    FIELD(dummy3);
    FIELD(dummy4);
  }
#if FUSE_KERNEL_MINOR_VERSION >= 45
  {
    LAYOUT(notify_prune_out, fuse_notify_prune_out, 16);
    FIELD(count);
    FIELD(padding);
    FIELD(spare);
  }
#endif
  EXPECT_EQ(sizeof(abi::notify_prune_out), 16u);
  PIN(notify_prune_out, count, 0, 4);
  PIN(notify_prune_out, padding, 4, 4);
  PIN(notify_prune_out, spare, 8, 8);
}

TEST(AbiLayout, ExtensionStructsMatchKernel) {
  {
    LAYOUT(secctx, fuse_secctx, 8);
    FIELD(size);
    FIELD(padding);
  }
  {
    LAYOUT(secctx_header, fuse_secctx_header, 8);
    FIELD(size);
    FIELD(nr_secctx);
  }
  {
    LAYOUT(ext_header, fuse_ext_header, 8);
    FIELD(size);
    FIELD(type);
  }
#ifdef FUSE_CREATE_SUPP_GROUP
  {
    LAYOUT(supp_groups, fuse_supp_groups, 4);
    FIELD(nr_groups);
  }
#endif
  EXPECT_EQ(sizeof(abi::supp_groups), 4u);
  PIN(supp_groups, nr_groups, 0, 4);
}

TEST(AbiLayout, BackingMapIsPinned) {
#if FUSE_KERNEL_MINOR_VERSION >= 40
  {
    LAYOUT(backing_map, fuse_backing_map, 16);
    FIELD(fd);
    FIELD(flags);
    FIELD(padding);
  }
#endif
  EXPECT_EQ(sizeof(abi::backing_map), 16u);
  PIN(backing_map, fd, 0, 4);
  PIN(backing_map, flags, 4, 4);
  PIN(backing_map, padding, 8, 8);
  EXPECT_TRUE(std::is_signed_v<decltype(abi::backing_map::fd)>);
}

TEST(AbiLayout, UringStructsArePinned) {
#if FUSE_KERNEL_MINOR_VERSION >= 42
  {
    LAYOUT(uring_ent_in_out, fuse_uring_ent_in_out, 32);
    FIELD(commit_id);
    FIELD(payload_sz);
  }
  {
    LAYOUT(uring_req_header, fuse_uring_req_header, 288);
    FIELD(in_out);
    FIELD(op_in);
    FIELD(ring_ent_in_out);
  }
  {
    LAYOUT(uring_cmd_req, fuse_uring_cmd_req, 24);
    FIELD(qid);
    FIELD(padding);
  }
  SAME(abi::uring_in_out_header_sz, FUSE_URING_IN_OUT_HEADER_SZ);
  SAME(abi::uring_op_in_out_sz, FUSE_URING_OP_IN_OUT_SZ);
  SAME(abi::uring_cmd::register_entry, FUSE_IO_URING_CMD_REGISTER);
  SAME(abi::uring_cmd::commit_and_fetch, FUSE_IO_URING_CMD_COMMIT_AND_FETCH);
#endif
  EXPECT_EQ(abi::uring_in_out_header_sz, 128u);
  EXPECT_EQ(abi::uring_op_in_out_sz, 128u);
  EXPECT_EQ(sizeof(abi::uring_ent_in_out), 32u);
  PIN(uring_ent_in_out, flags, 0, 8);
  PIN(uring_ent_in_out, commit_id, 8, 8);
  PIN(uring_ent_in_out, payload_sz, 16, 4);
  PIN(uring_ent_in_out, padding, 20, 4);
  PIN(uring_ent_in_out, reserved, 24, 8);
  EXPECT_EQ(sizeof(abi::uring_req_header), 288u);
  PIN(uring_req_header, in_out, 0, 128);
  PIN(uring_req_header, op_in, 128, 128);
  PIN(uring_req_header, ring_ent_in_out, 256, 32);
  EXPECT_EQ(sizeof(abi::uring_cmd_req), 24u);
  PIN(uring_cmd_req, flags, 0, 8);
  PIN(uring_cmd_req, commit_id, 8, 8);
  PIN(uring_cmd_req, qid, 16, 2);
  PIN(uring_cmd_req, padding, 18, 6);
  EXPECT_EQ(static_cast<std::uint32_t>(abi::uring_cmd::invalid), 0u);
  EXPECT_EQ(static_cast<std::uint32_t>(abi::uring_cmd::register_entry), 1u);
  EXPECT_EQ(static_cast<std::uint32_t>(abi::uring_cmd::commit_and_fetch), 2u);
}

// ---------------------------------------------------------------------------------------------
// Constants

TEST(AbiConstants, OpcodesMatchKernel) {
  using abi::opcode;
  SAME(opcode::lookup, FUSE_LOOKUP);
  SAME(opcode::forget, FUSE_FORGET);
  SAME(opcode::getattr, FUSE_GETATTR);
  SAME(opcode::setattr, FUSE_SETATTR);
  SAME(opcode::readlink, FUSE_READLINK);
  SAME(opcode::symlink, FUSE_SYMLINK);
  SAME(opcode::mknod, FUSE_MKNOD);
  SAME(opcode::mkdir, FUSE_MKDIR);
  SAME(opcode::unlink, FUSE_UNLINK);
  SAME(opcode::rmdir, FUSE_RMDIR);
  SAME(opcode::rename, FUSE_RENAME);
  SAME(opcode::link, FUSE_LINK);
  SAME(opcode::open, FUSE_OPEN);
  SAME(opcode::read, FUSE_READ);
  SAME(opcode::write, FUSE_WRITE);
  SAME(opcode::statfs, FUSE_STATFS);
  SAME(opcode::release, FUSE_RELEASE);
  SAME(opcode::fsync, FUSE_FSYNC);
  SAME(opcode::setxattr, FUSE_SETXATTR);
  SAME(opcode::getxattr, FUSE_GETXATTR);
  SAME(opcode::listxattr, FUSE_LISTXATTR);
  SAME(opcode::removexattr, FUSE_REMOVEXATTR);
  SAME(opcode::flush, FUSE_FLUSH);
  SAME(opcode::init, FUSE_INIT);
  SAME(opcode::opendir, FUSE_OPENDIR);
  SAME(opcode::readdir, FUSE_READDIR);
  SAME(opcode::releasedir, FUSE_RELEASEDIR);
  SAME(opcode::fsyncdir, FUSE_FSYNCDIR);
  SAME(opcode::getlk, FUSE_GETLK);
  SAME(opcode::setlk, FUSE_SETLK);
  SAME(opcode::setlkw, FUSE_SETLKW);
  SAME(opcode::access, FUSE_ACCESS);
  SAME(opcode::create, FUSE_CREATE);
  SAME(opcode::interrupt, FUSE_INTERRUPT);
  SAME(opcode::bmap, FUSE_BMAP);
  SAME(opcode::destroy, FUSE_DESTROY);
  SAME(opcode::ioctl, FUSE_IOCTL);
  SAME(opcode::poll, FUSE_POLL);
  SAME(opcode::notify_reply, FUSE_NOTIFY_REPLY);
  SAME(opcode::batch_forget, FUSE_BATCH_FORGET);
  SAME(opcode::fallocate, FUSE_FALLOCATE);
  SAME(opcode::readdirplus, FUSE_READDIRPLUS);
  SAME(opcode::rename2, FUSE_RENAME2);
  SAME(opcode::lseek, FUSE_LSEEK);
  SAME(opcode::copy_file_range, FUSE_COPY_FILE_RANGE);
  SAME(opcode::setupmapping, FUSE_SETUPMAPPING);
  SAME(opcode::removemapping, FUSE_REMOVEMAPPING);
  SAME(opcode::syncfs, FUSE_SYNCFS);
  SAME(opcode::tmpfile, FUSE_TMPFILE);
#if FUSE_KERNEL_MINOR_VERSION >= 39
  SAME(opcode::statx, FUSE_STATX);
#endif
#if FUSE_KERNEL_MINOR_VERSION >= 45
  SAME(opcode::copy_file_range_64, FUSE_COPY_FILE_RANGE_64);
#endif
  EXPECT_EQ(static_cast<std::uint32_t>(opcode::statx), 52u);
  EXPECT_EQ(static_cast<std::uint32_t>(opcode::copy_file_range_64), 53u);
  SAME(opcode::cuse_init, CUSE_INIT);
  SAME(abi::cuse_init_bswap_reserved, CUSE_INIT_BSWAP_RESERVED);
  SAME(abi::init_bswap_reserved, FUSE_INIT_BSWAP_RESERVED);
}

TEST(AbiConstants, NotifyCodesMatchKernel) {
  using abi::notify_code;
  SAME(notify_code::poll, FUSE_NOTIFY_POLL);
  SAME(notify_code::inval_inode, FUSE_NOTIFY_INVAL_INODE);
  SAME(notify_code::inval_entry, FUSE_NOTIFY_INVAL_ENTRY);
  SAME(notify_code::store, FUSE_NOTIFY_STORE);
  SAME(notify_code::retrieve, FUSE_NOTIFY_RETRIEVE);
  SAME(notify_code::delete_entry, FUSE_NOTIFY_DELETE);
#if FUSE_KERNEL_MINOR_VERSION >= 45
  SAME(notify_code::resend, FUSE_NOTIFY_RESEND);
  SAME(notify_code::inc_epoch, FUSE_NOTIFY_INC_EPOCH);
  SAME(notify_code::prune, FUSE_NOTIFY_PRUNE);
#endif
  EXPECT_EQ(static_cast<std::int32_t>(notify_code::resend), 7);
  EXPECT_EQ(static_cast<std::int32_t>(notify_code::inc_epoch), 8);
  EXPECT_EQ(static_cast<std::int32_t>(notify_code::prune), 9);
}

TEST(AbiConstants, InitFlagsMatchKernel) {
  namespace f = abi::init_flags;
  SAME(f::async_read, FUSE_ASYNC_READ);
  SAME(f::posix_locks, FUSE_POSIX_LOCKS);
  SAME(f::file_ops, FUSE_FILE_OPS);
  SAME(f::atomic_o_trunc, FUSE_ATOMIC_O_TRUNC);
  SAME(f::export_support, FUSE_EXPORT_SUPPORT);
  SAME(f::big_writes, FUSE_BIG_WRITES);
  SAME(f::dont_mask, FUSE_DONT_MASK);
  SAME(f::splice_write, FUSE_SPLICE_WRITE);
  SAME(f::splice_move, FUSE_SPLICE_MOVE);
  SAME(f::splice_read, FUSE_SPLICE_READ);
  SAME(f::flock_locks, FUSE_FLOCK_LOCKS);
  SAME(f::has_ioctl_dir, FUSE_HAS_IOCTL_DIR);
  SAME(f::auto_inval_data, FUSE_AUTO_INVAL_DATA);
  SAME(f::do_readdirplus, FUSE_DO_READDIRPLUS);
  SAME(f::readdirplus_auto, FUSE_READDIRPLUS_AUTO);
  SAME(f::async_dio, FUSE_ASYNC_DIO);
  SAME(f::writeback_cache, FUSE_WRITEBACK_CACHE);
  SAME(f::no_open_support, FUSE_NO_OPEN_SUPPORT);
  SAME(f::parallel_dirops, FUSE_PARALLEL_DIROPS);
  SAME(f::handle_killpriv, FUSE_HANDLE_KILLPRIV);
  SAME(f::posix_acl, FUSE_POSIX_ACL);
  SAME(f::abort_error, FUSE_ABORT_ERROR);
  SAME(f::max_pages, FUSE_MAX_PAGES);
  SAME(f::cache_symlinks, FUSE_CACHE_SYMLINKS);
  SAME(f::no_opendir_support, FUSE_NO_OPENDIR_SUPPORT);
  SAME(f::explicit_inval_data, FUSE_EXPLICIT_INVAL_DATA);
  SAME(f::map_alignment, FUSE_MAP_ALIGNMENT);
  SAME(f::submounts, FUSE_SUBMOUNTS);
  SAME(f::handle_killpriv_v2, FUSE_HANDLE_KILLPRIV_V2);
  SAME(f::setxattr_ext, FUSE_SETXATTR_EXT);
  SAME(f::init_ext, FUSE_INIT_EXT);
  // The kernel spells it (1 << 31), an int: compare the 32-bit word.
  EXPECT_EQ(static_cast<std::uint32_t>(f::init_reserved),
            static_cast<std::uint32_t>(FUSE_INIT_RESERVED));
  SAME(f::security_ctx, FUSE_SECURITY_CTX);
  SAME(f::has_inode_dax, FUSE_HAS_INODE_DAX);
  SAME(f::has_expire_only, FUSE_HAS_EXPIRE_ONLY);
#ifdef FUSE_CREATE_SUPP_GROUP
  SAME(f::create_supp_group, FUSE_CREATE_SUPP_GROUP);
#endif
#ifdef FUSE_DIRECT_IO_ALLOW_MMAP
  SAME(f::direct_io_allow_mmap, FUSE_DIRECT_IO_ALLOW_MMAP);
#endif
#ifdef FUSE_PASSTHROUGH
  SAME(f::passthrough, FUSE_PASSTHROUGH);
  SAME(f::no_export_support, FUSE_NO_EXPORT_SUPPORT);
  SAME(f::has_resend, FUSE_HAS_RESEND);
#endif
#ifdef FUSE_ALLOW_IDMAP
  SAME(f::allow_idmap, FUSE_ALLOW_IDMAP);
#endif
#ifdef FUSE_OVER_IO_URING
  SAME(f::over_io_uring, FUSE_OVER_IO_URING);
#endif
#ifdef FUSE_REQUEST_TIMEOUT
  SAME(f::request_timeout, FUSE_REQUEST_TIMEOUT);
#endif
  // Pinned to the 6.18 header whatever the system header knows.
  EXPECT_EQ(f::init_ext, 1ull << 30);
  EXPECT_EQ(f::create_supp_group, 1ull << 34);
  EXPECT_EQ(f::has_expire_only, 1ull << 35);
  EXPECT_EQ(f::direct_io_allow_mmap, 1ull << 36);
  EXPECT_EQ(f::direct_io_relax, f::direct_io_allow_mmap);
  EXPECT_EQ(f::passthrough, 1ull << 37);
  EXPECT_EQ(f::no_export_support, 1ull << 38);
  EXPECT_EQ(f::has_resend, 1ull << 39);
  EXPECT_EQ(f::allow_idmap, 1ull << 40);
  EXPECT_EQ(f::over_io_uring, 1ull << 41);
  EXPECT_EQ(f::request_timeout, 1ull << 42);
}

TEST(AbiConstants, InitFlagWordsRoundTrip) {
  // The INIT request seen on this machine's 6.18 kernel (see kernel-abi.md).
  const std::uint64_t all = abi::init_flags_from(0x73fffffbu, 0x7fdu);
  EXPECT_EQ(all & abi::init_flags::async_read, abi::init_flags::async_read);
  EXPECT_EQ(all & abi::init_flags::file_ops, 0u);
  EXPECT_EQ(all & abi::init_flags::security_ctx, abi::init_flags::security_ctx);
  EXPECT_EQ(all & abi::init_flags::has_inode_dax, 0u);
  EXPECT_EQ(all & abi::init_flags::request_timeout, abi::init_flags::request_timeout);
  const abi::init_flag_words words = abi::split_init_flags(all);
  EXPECT_EQ(words.flags, 0x73fffffbu);
  EXPECT_EQ(words.flags2, 0x7fdu);
  static_assert(abi::split_init_flags(abi::init_flags::passthrough).flags2 == 1u << 5);
  static_assert(abi::split_init_flags(abi::init_flags::passthrough).flags == 0u);
}

TEST(AbiConstants, FlagGroupsMatchKernel) {
  SAME(abi::fattr::mode, FATTR_MODE);
  SAME(abi::fattr::uid, FATTR_UID);
  SAME(abi::fattr::gid, FATTR_GID);
  SAME(abi::fattr::size, FATTR_SIZE);
  SAME(abi::fattr::atime, FATTR_ATIME);
  SAME(abi::fattr::mtime, FATTR_MTIME);
  SAME(abi::fattr::fh, FATTR_FH);
  SAME(abi::fattr::atime_now, FATTR_ATIME_NOW);
  SAME(abi::fattr::mtime_now, FATTR_MTIME_NOW);
  SAME(abi::fattr::lockowner, FATTR_LOCKOWNER);
  SAME(abi::fattr::ctime, FATTR_CTIME);
  SAME(abi::fattr::kill_suidgid, FATTR_KILL_SUIDGID);

  SAME(abi::fopen::direct_io, FOPEN_DIRECT_IO);
  SAME(abi::fopen::keep_cache, FOPEN_KEEP_CACHE);
  SAME(abi::fopen::nonseekable, FOPEN_NONSEEKABLE);
  SAME(abi::fopen::cache_dir, FOPEN_CACHE_DIR);
  SAME(abi::fopen::stream, FOPEN_STREAM);
  SAME(abi::fopen::noflush, FOPEN_NOFLUSH);
  SAME(abi::fopen::parallel_direct_writes, FOPEN_PARALLEL_DIRECT_WRITES);
#ifdef FOPEN_PASSTHROUGH
  SAME(abi::fopen::passthrough, FOPEN_PASSTHROUGH);
#endif
  EXPECT_EQ(abi::fopen::passthrough, 1u << 7);

  SAME(abi::cuse_flags::unrestricted_ioctl, CUSE_UNRESTRICTED_IOCTL);
  SAME(abi::release_flags::flush, FUSE_RELEASE_FLUSH);
  SAME(abi::release_flags::flock_unlock, FUSE_RELEASE_FLOCK_UNLOCK);
  SAME(abi::getattr_flags::fh, FUSE_GETATTR_FH);
  SAME(abi::lk_flags::flock, FUSE_LK_FLOCK);
  SAME(abi::write_flags::cache, FUSE_WRITE_CACHE);
  SAME(abi::write_flags::lockowner, FUSE_WRITE_LOCKOWNER);
  SAME(abi::write_flags::kill_suidgid, FUSE_WRITE_KILL_SUIDGID);
  SAME(abi::write_flags::kill_priv, FUSE_WRITE_KILL_PRIV);
  SAME(abi::read_flags::lockowner, FUSE_READ_LOCKOWNER);

  SAME(abi::ioctl_flags::compat, FUSE_IOCTL_COMPAT);
  SAME(abi::ioctl_flags::unrestricted, FUSE_IOCTL_UNRESTRICTED);
  SAME(abi::ioctl_flags::retry, FUSE_IOCTL_RETRY);
  SAME(abi::ioctl_flags::ioctl_32bit, FUSE_IOCTL_32BIT);
  SAME(abi::ioctl_flags::dir, FUSE_IOCTL_DIR);
  SAME(abi::ioctl_flags::compat_x32, FUSE_IOCTL_COMPAT_X32);
  SAME(abi::ioctl_flags::ioctl_max_iov, FUSE_IOCTL_MAX_IOV);

  SAME(abi::poll_flags::schedule_notify, FUSE_POLL_SCHEDULE_NOTIFY);
  SAME(abi::fsync_flags::fdatasync, FUSE_FSYNC_FDATASYNC);
  SAME(abi::attr_flags::submount, FUSE_ATTR_SUBMOUNT);
  SAME(abi::attr_flags::dax, FUSE_ATTR_DAX);
  SAME(abi::open_flags::kill_suidgid, FUSE_OPEN_KILL_SUIDGID);
  SAME(abi::setxattr_flags::acl_kill_sgid, FUSE_SETXATTR_ACL_KILL_SGID);
  SAME(abi::expire_only, FUSE_EXPIRE_ONLY);
}

TEST(AbiConstants, ExtensionAndIdConstantsMatchKernel) {
  SAME(abi::max_nr_secctx, FUSE_MAX_NR_SECCTX);
#ifdef FUSE_CREATE_SUPP_GROUP
  SAME(abi::ext_type::groups, FUSE_EXT_GROUPS);
#endif
  EXPECT_EQ(static_cast<std::uint32_t>(abi::ext_type::groups), 32u);
#ifdef FUSE_UNIQUE_RESEND
  SAME(abi::unique_resend, FUSE_UNIQUE_RESEND);
#endif
#ifdef FUSE_INVALID_UIDGID
  SAME(abi::invalid_uidgid, FUSE_INVALID_UIDGID);
#endif
  EXPECT_EQ(abi::unique_resend, 1ull << 63);
  EXPECT_EQ(abi::invalid_uidgid, static_cast<std::uint32_t>(-1));
}

TEST(AbiConstants, DeviceIoctlsMatchKernel) {
  SAME(abi::dev_ioc_magic, FUSE_DEV_IOC_MAGIC);
  SAME(abi::dev_ioc_clone, FUSE_DEV_IOC_CLONE);
  // Newer than the system header: build them with the libc macros instead.
  SAME(abi::dev_ioc_backing_open, _IOW(229, 1, abi::backing_map));
  SAME(abi::dev_ioc_backing_close, _IOW(229, 2, std::uint32_t));
  SAME(abi::dev_ioc_sync_init, _IO(229, 3));
#ifdef FUSE_DEV_IOC_BACKING_OPEN
  SAME(abi::dev_ioc_backing_open, FUSE_DEV_IOC_BACKING_OPEN);
  SAME(abi::dev_ioc_backing_close, FUSE_DEV_IOC_BACKING_CLOSE);
#endif
#ifdef FUSE_DEV_IOC_SYNC_INIT
  SAME(abi::dev_ioc_sync_init, FUSE_DEV_IOC_SYNC_INIT);
#endif
#if defined(__x86_64__) || defined(__aarch64__) || defined(__i386__) || defined(__riscv)
  EXPECT_EQ(abi::dev_ioc_clone, 0x8004e500u);
  EXPECT_EQ(abi::dev_ioc_backing_open, 0x4010e501u);
  EXPECT_EQ(abi::dev_ioc_backing_close, 0x4004e502u);
  EXPECT_EQ(abi::dev_ioc_sync_init, 0x0000e503u);
#endif
}

// ---------------------------------------------------------------------------------------------
// The opcode table

TEST(OpcodeTable, EveryEnumeratorHasAnEntry) {
  std::set<std::string_view> names;
  for (abi::opcode op : abi::all_opcodes) {
    const abi::opcode_info* info = abi::find_opcode(op);
    ASSERT_NE(info, nullptr) << static_cast<std::uint32_t>(op);
    EXPECT_FALSE(info->name.empty());
    EXPECT_NE(info->name, "UNKNOWN");
    EXPECT_EQ(abi::opcode_name(op), info->name);
    names.insert(info->name);
  }
  EXPECT_EQ(names.size(), abi::all_opcodes.size());  // no name used twice
  EXPECT_EQ(abi::all_opcodes.size(), 52u);
}

TEST(OpcodeTable, EveryEntryIsAnEnumerator) {
  std::size_t known = 0;
  for (std::uint32_t op = 0; op < 5000; ++op) {
    if (abi::find_opcode(op) == nullptr) continue;
    ++known;
    bool listed = false;
    for (abi::opcode e : abi::all_opcodes) listed = listed || static_cast<std::uint32_t>(e) == op;
    EXPECT_TRUE(listed) << op;
  }
  EXPECT_EQ(known, abi::all_opcodes.size());
}

TEST(OpcodeTable, SampleEntriesAreRight) {
  const abi::opcode_info* lookup = abi::find_opcode(FUSE_LOOKUP);
  ASSERT_NE(lookup, nullptr);
  EXPECT_EQ(lookup->name, "LOOKUP");
  EXPECT_EQ(lookup->fixed_in_size, 0u);
  EXPECT_TRUE(lookup->replies);

  const abi::opcode_info* read = abi::find_opcode(FUSE_READ);
  ASSERT_NE(read, nullptr);
  EXPECT_EQ(read->name, "READ");
  EXPECT_EQ(read->fixed_in_size, sizeof(fuse_read_in));

  EXPECT_EQ(abi::find_opcode(FUSE_WRITE)->fixed_in_size, sizeof(fuse_write_in));
  EXPECT_EQ(abi::find_opcode(FUSE_SETATTR)->fixed_in_size, sizeof(fuse_setattr_in));
  EXPECT_EQ(abi::find_opcode(FUSE_INIT)->fixed_in_size, sizeof(fuse_init_in));
  EXPECT_EQ(abi::find_opcode(FUSE_CREATE)->fixed_in_size, sizeof(fuse_create_in));
  EXPECT_EQ(abi::find_opcode(FUSE_TMPFILE)->fixed_in_size, sizeof(fuse_create_in));
  EXPECT_EQ(abi::find_opcode(FUSE_LISTXATTR)->fixed_in_size, sizeof(fuse_getxattr_in));
  EXPECT_EQ(abi::find_opcode(FUSE_NOTIFY_REPLY)->fixed_in_size, sizeof(fuse_notify_retrieve_in));
  EXPECT_EQ(abi::find_opcode(FUSE_REMOVEMAPPING)->fixed_in_size, 4u);
  EXPECT_EQ(abi::find_opcode(52u)->name, "STATX");
  EXPECT_EQ(abi::find_opcode(52u)->fixed_in_size, 24u);
  EXPECT_EQ(abi::find_opcode(53u)->name, "COPY_FILE_RANGE_64");
  EXPECT_EQ(abi::find_opcode(53u)->fixed_in_size, sizeof(fuse_copy_file_range_in));
  EXPECT_EQ(abi::find_opcode(CUSE_INIT)->name, "CUSE_INIT");
  EXPECT_EQ(abi::find_opcode(CUSE_INIT)->fixed_in_size, sizeof(cuse_init_in));
}

TEST(OpcodeTable, OnlyForgetsInterruptAndNotifyReplyGoUnanswered) {
  for (abi::opcode op : abi::all_opcodes) {
    const bool silent = op == abi::opcode::forget || op == abi::opcode::batch_forget ||
                        op == abi::opcode::interrupt || op == abi::opcode::notify_reply;
    EXPECT_EQ(abi::find_opcode(op)->replies, !silent) << abi::opcode_name(op);
  }
}

TEST(OpcodeTable, UnknownOpcodesAreRejected) {
  for (std::uint32_t op : {0u, 7u, 19u, 54u, 100u, 4095u, 4097u, 0xffffffffu,
                           abi::cuse_init_bswap_reserved, abi::init_bswap_reserved}) {
    EXPECT_EQ(abi::find_opcode(op), nullptr) << op;
    EXPECT_EQ(abi::opcode_name(op), "UNKNOWN") << op;
  }
  static_assert(abi::find_opcode(0u) == nullptr);
  static_assert(abi::opcode_name(abi::opcode::lookup) == "LOOKUP");
}

}  // namespace
