// Built with -fno-exceptions (tests/CMakeLists.txt): instantiating the virtio-fs device and the
// Server over the virtio transport proves that their request path compiles without exception
// support, i.e. never throws or catches itself.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/transport/virtio/fs_device.hpp>
#include <support/recording_fs.hpp>

#if defined(__cpp_exceptions)
#error "this translation unit must be compiled with -fno-exceptions"
#endif

template class fuse_backend::api::Server<fuse_backend::transport::virtio::Transport, fuse_backend::testing::RecordingFs>;
template class fuse_backend::transport::virtio::FsDevice<fuse_backend::testing::RecordingFs>;
