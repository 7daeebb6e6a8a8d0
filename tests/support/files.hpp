// Plain file helpers for tests that check a filesystem through ordinary POSIX calls.
//
// Layer: tests/support. Each is one open + read/write loop with O_CLOEXEC (never a C++ stream,
// whose buffering would hide short writes and errors). read_file returns "<open: reason>" when
// the file cannot be opened, so a failed comparison says why; write_file records a GoogleTest
// failure (usable under ASSERT_NO_FATAL_FAILURE). list_dir sorts, "." and ".." excluded unless
// asked for.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include <fuse_backend/detail/unique_fd.hpp>

namespace fuse_backend::testing {

inline std::string read_file(const std::string& path) {
  detail::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return "<open: " + std::string(std::strerror(errno)) + ">";
  std::string out;
  std::array<char, 65536> buffer;
  for (ssize_t n; (n = ::read(fd.get(), buffer.data(), buffer.size())) > 0;) {
    out.append(buffer.data(), static_cast<std::size_t>(n));
  }
  return out;
}

inline void write_file(const std::string& path, std::string_view data, mode_t mode = 0644) {
  detail::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  ASSERT_TRUE(fd.valid()) << path << ": " << std::strerror(errno);
  ASSERT_EQ(::write(fd.get(), data.data(), data.size()), static_cast<ssize_t>(data.size()))
      << path << ": " << std::strerror(errno);
}

inline std::vector<std::string> list_dir(const std::string& path, bool with_dots = false) {
  std::vector<std::string> names;
  if (DIR* dir = ::opendir(path.c_str())) {
    while (const dirent* entry = ::readdir(dir)) {
      const std::string_view name = entry->d_name;
      if (with_dots || (name != "." && name != "..")) names.emplace_back(name);
    }
    ::closedir(dir);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace fuse_backend::testing
