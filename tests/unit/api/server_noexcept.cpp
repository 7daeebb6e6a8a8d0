// Built with -fno-exceptions (tests/CMakeLists.txt): instantiating the whole Server proves that
// the request path compiles without exception support, i.e. never throws or catches itself.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/api/server.hpp>
#include <support/memory_transport.hpp>
#include <support/recording_fs.hpp>

#if defined(__cpp_exceptions)
#error "this translation unit must be compiled with -fno-exceptions"
#endif

template class fuse_backend::api::Server<fuse_backend::testing::MemoryTransport, fuse_backend::testing::RecordingFs>;
