// allocation_count(): heap allocations made through operator new so far, so that a benchmark can
// report allocations per request and a test can require none (the request path's target is 0).
//
// Layer: test support. Defined in allocation_counter.cpp, which replaces the global operator new
// (every form: the nothrow and array forms call the plain one, the aligned one is replaced too).
// Only programs that count link it (the OBJECT library fuse_backend_allocation_counter; it is kept
// out of fuse_backend_test_support, which every test links). C code calling malloc directly
// (glibc's opendir, for one) is not counted. Thread-safe; counts every thread of the process.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <cstdint>

namespace fuse_backend::testing {

// operator new calls so far, in this process.
std::uint64_t allocation_count() noexcept;

}  // namespace fuse_backend::testing
