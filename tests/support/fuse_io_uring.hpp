// enable_fuse_io_uring(): lets FUSE servers on this machine use FUSE-over-io_uring.
//
// Layer: tests/support. The kernel offers FUSE_OVER_IO_URING in INIT only while the fuse
// module's `enable_uring` parameter is on (it is off at boot). Tests that serve over io_uring
// turn it on (root) and leave it on: tests run in parallel processes, so restoring the old value
// could switch it off under another test's mount; and the parameter only lets a server opt in,
// so no other mount changes behaviour. Returns a message on failure, empty on success.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <fstream>
#include <string>

namespace fuse_backend::testing {

inline std::string enable_fuse_io_uring() {
  constexpr const char* parameter = "/sys/module/fuse/parameters/enable_uring";
  {
    std::ofstream out(parameter);
    if (!(out << "1\n") || !out.flush()) return std::string("cannot write 1 to ") + parameter;
  }
  std::ifstream in(parameter);
  std::string value;
  if (!std::getline(in, value) || value != "Y") return std::string(parameter) + " stays '" + value + "'";
  return {};
}

}  // namespace fuse_backend::testing
