// passthrough::Config: how a PassthroughFs serves its host directory (caching, timeouts, features).
//
// Layer: passthrough. A plain value, read once by PassthroughFs::create and never changed
// afterwards; it mirrors fuse-backend-rs's passthrough Config (entry/attr timeouts, cache policy,
// writeback, no_open/no_opendir, xattr, killpriv_v2, seal_size, readdirplus, submounts, host
// inode numbers, inode file handles) plus `passthrough_backing` (kernel FUSE passthrough, see below).
// Options a kernel can refuse (writeback, no_open, killpriv_v2, submounts, passthrough) only take
// effect when INIT negotiated them; PassthroughFs::init asks for exactly the ones set here.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include <fuse_backend/api/types.hpp>

namespace fuse_backend::passthrough {

// What the kernel may cache; becomes the FOPEN flags of every open/opendir reply.
enum class CachePolicy {
  // No data caching: files open with direct_io (plus parallel_direct_writes), directory
  // listings are not cached. For a directory that others change behind the daemon's back.
  never,
  // Metadata (entries, attributes, directory listings) is cached for the timeouts, file data is
  // not (direct_io).
  metadata,
  // Close-to-open consistency: the kernel keeps file data while the file's mtime/size do not
  // change (auto_inval_data), and across opens while the host file is the version its cache
  // reflects (keep_cache only then: PageCacheVersion); any other change drops the cache at the
  // next open. Listings are read anew on every opendir (no cache_dir). The default.
  automatic,
  // Everything is kept across opens (keep_cache, cache_dir): only when the daemon has the
  // directory to itself.
  always,
};

// Whether inodes keep host file handles instead of O_PATH fds (virtiofsd's
// --inode-file-handles). An fd per inode the kernel references can exhaust the daemon's fd limit
// with a large cache; a handle inode holds no fd and is reopened with open_by_handle_at while a
// request uses it. Needs CAP_DAC_READ_SEARCH (in practice: a root daemon) and a host file system
// with file handles (not every one has them: EOPNOTSUPP). A handle survives renames; a request
// for an object deleted on the host answers ESTALE.
enum class InodeFileHandles {
  // O_PATH fds only.
  never,
  // O_PATH fds while the inodes fit Config::inode_fd_budget, handles (as `prefer`) for inodes
  // added beyond it, so that a client caching more files than the fd limit allows is still
  // served (more slowly: a system call more per use) instead of answered EMFILE. The default.
  // Where handles are unavailable it is `never`; crossing the budget is logged once either way.
  automatic,
  // Handles where possible: when create() finds that the source cannot be reopened from a handle
  // (no capability, no handles) every inode keeps an fd; when one object has no handle (another
  // file system, or a special file first seen on a mount) that inode keeps an fd. Logged once.
  prefer,
  // Handles or nothing: create() fails when the source has no usable handle (EPERM without the
  // capability, EOPNOTSUPP...) and a lookup of an object without one fails with that errno.
  mandatory,
};

struct Config {
  // The host directory to serve. Resolved once by create(); everything is reached from its fd.
  std::string source;

  // How long the kernel may trust a name -> inode mapping and an inode's attributes.
  api::Timeout entry_timeout = std::chrono::seconds(5);
  api::Timeout attr_timeout = std::chrono::seconds(5);
  CachePolicy cache_policy = CachePolicy::automatic;

  // Kernel writeback cache: writes are coalesced in the page cache. Files are then opened
  // O_RDWR on the host even for O_WRONLY opens (the kernel reads to fill partial pages; a caller
  // allowed to write but not to read gets an O_WRONLY open instead, as with virtiofsd) and
  // O_APPEND is left to the kernel. Incompatible with passthrough_backing (the kernel refuses
  // the combination), so create() rejects both together with EINVAL.
  bool writeback = false;
  // Answer OPEN / OPENDIR with ENOSYS so the kernel stops sending them (zero-message opens);
  // reads, writes, readdir, ioctl... then reopen the inode for each request (handle 0). With
  // no_open, INIT also drops atomic O_TRUNC (the kernel truncates with SETATTR instead) and
  // POSIX/flock locks (which need an open file to live on; the kernel keeps them local).
  bool no_open = false;
  bool no_opendir = false;
  // Extended attributes; when false every xattr op answers ENOSYS (and the kernel stops asking).
  bool xattr = false;
  // FUSE_HANDLE_KILLPRIV_V2: the daemon clears set-uid/set-gid on write, truncate and chown as
  // the kernel asks (KILL_SUIDGID flags) instead of the kernel sending a separate SETATTR.
  bool killpriv_v2 = false;
  // Refuse (EPERM) every change of a file's size: writes past the end, truncate (SETATTR to
  // another size, OPEN/CREATE with O_TRUNC of a non-empty file), size-changing fallocate. Host
  // files then never append (the kernel's offsets are checked and used, also for O_APPEND).
  // For a directory of fixed-size files (e.g. shared memory) a client must not grow. Not with
  // passthrough_backing (the kernel writes backing files itself): create() rejects both with EINVAL.
  bool seal_size = false;
  // READDIRPLUS (entries with attributes, each taking a lookup reference).
  bool readdirplus = true;
  // Mark directories that are mount points on the host (a different mount id than their
  // parent) as submounts, so the client gives them their own st_dev.
  bool announce_submounts = false;
  // POSIX record locks (fcntl F_SETLK) served by the daemon with per-owner open file
  // description locks on the host, so they are visible to host processes too. When false the
  // kernel keeps POSIX locks local to the mount. flock(2) locks are always served.
  bool posix_locks = true;
  // How many SETLKW (blocking fcntl or flock lock) requests may wait for a contended lock at
  // once. A waiting request holds a worker until the lock is granted or the kernel sends
  // FUSE_INTERRUPT, so:
  // - 0 (the default) never waits: a free lock is granted, a contended one answers EOPNOTSUPP
  //   at once (what virtiofsd answers for every blocking lock).
  // - On /dev/fuse, at most workers - 1: INTERRUPT (a signal to the waiting process) reaches
  //   the daemon only through a free worker. Requests beyond the limit answer ENOLCK.
  // - With a non-zero limit, a request whose thread may not wait (Context::may_block) answers
  //   ENOLCK: on virtio-fs, whose Linux guest never sends FUSE_INTERRUPT, a waiting request would
  //   hold its queue (and the unlock queued behind it) forever; with FUSE-over-io_uring only
  //   the SETLKW requests a queue hands to a helper thread may wait (uring_queue.hpp).
  std::size_t max_lock_waiters = 0;
  // Report the host's st_ino in attributes (stable across daemon restarts, the same number a
  // host `ls -i` shows). When false st_ino is the FUSE node id: unique even across host
  // submounts, but not stable across restarts. (READDIR's d_ino is the host's either way: an
  // entry not looked up yet has no node id.)
  bool use_host_ino = true;
  // FUSE passthrough backing files (kernel >= 6.9): open/create register the host fd with the
  // transport (Context::backing_files) and reply FOPEN_PASSTHROUGH, so the kernel reads, writes
  // and mmaps the host file directly. Falls back to ordinary I/O (logged once) where the kernel
  // or the transport cannot.
  bool passthrough_backing = false;
  // Start the host's writeback of each whole MiB a write appends to a file, on a thread of the
  // daemon's, instead of leaving it all to the kernel's flusher or the client's fsync (see
  // WriteBehind, which says what it costs). Moot under seal_size, where no write grows a file.
  bool write_behind = true;
  // Host file handles instead of an O_PATH fd per inode, see InodeFileHandles. The root always
  // keeps its fd.
  InodeFileHandles inode_file_handles = InodeFileHandles::automatic;
  // `automatic`: how many inodes (root included) may keep an fd. 0: three quarters of the soft
  // RLIMIT_NOFILE when create() runs, leaving the rest for open files and requests in flight.
  std::size_t inode_fd_budget = 0;
};

}  // namespace fuse_backend::passthrough
