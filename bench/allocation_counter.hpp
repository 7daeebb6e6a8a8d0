// Counts heap allocations made through operator new, so benchmarks can report allocations per
// request (the target on the request path is 0). Linked into every benchmark program.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <cstdint>

namespace fuse_backend::bench {

// operator new calls so far, in this process.
std::uint64_t allocation_count() noexcept;

}  // namespace fuse_backend::bench
