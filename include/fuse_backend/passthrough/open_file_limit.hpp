// Raising RLIMIT_NOFILE for a process that serves a PassthroughFs.
//
// Layer: passthrough. PassthroughFs holds an O_PATH fd for every inode the kernel has looked up
// and not yet forgotten (the kernel forgets only when it evicts the inode, typically under
// memory pressure), plus one per open file. The number of files a client can have in its
// caches is therefore bounded by the daemon's soft RLIMIT_NOFILE, which most distributions
// start at 1024: far below what a `find` or a build touches, and past it lookups and creates
// fail with EMFILE. A daemon calls raise_open_file_limit() once at start, like virtiofsd and
// libfuse's passthrough examples do. It is not done by PassthroughFs itself: a library must not
// change a process-wide limit behind its embedder's back.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <sys/resource.h>

#include <fuse_backend/result.hpp>

namespace fuse_backend::passthrough {

struct OpenFileLimit {
  rlim_t before = 0;  // the soft limit found
  rlim_t after = 0;   // the soft limit now
};

// Raises the soft RLIMIT_NOFILE to `wanted`, capped by fs.nr_open (the kernel's ceiling). When
// the hard limit is lower, it is raised too if the process may (CAP_SYS_RESOURCE); otherwise the
// soft limit goes up to the hard one. Never lowers either limit.
Result<OpenFileLimit> raise_open_file_limit(rlim_t wanted = 1'000'000) noexcept;

}  // namespace fuse_backend::passthrough
