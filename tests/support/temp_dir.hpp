// TempDir: a uniquely named directory under /tmp, removed with its contents on scope exit.
//
// Layer: tests/support. Used by real-mount tests for mountpoints and by filesystem tests for
// scratch trees. Removal does not cross into other filesystems (a mount left inside is skipped,
// never recursed into), so a test that failed to unmount cannot delete what it had mounted.
// Not thread-safe; one owner.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace fuse_backend::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "fuse_backend") {
    std::string pattern = "/tmp/" + prefix + ".XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::system_error(errno, std::generic_category(), "mkdtemp " + pattern);
    }
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() { remove_tree(path_); }

  const std::filesystem::path& path() const noexcept { return path_; }
  std::string str() const { return path_.string(); }
  // A path inside the directory.
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  // Removes `dir` depth-first without following symlinks or leaving its filesystem.
  static void remove_tree(const std::filesystem::path& dir) noexcept {
    remove_same_device(dir, device_of(dir));
  }
  static void remove_same_device(const std::filesystem::path& dir, dev_t dev) noexcept {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      if (entry.is_directory(ec) && !entry.is_symlink(ec)) {
        if (device_of(entry.path()) != dev) continue;  // a mount still inside: leave it alone
        remove_same_device(entry.path(), dev);
      }
      std::filesystem::remove(entry.path(), ec);
    }
    std::filesystem::remove(dir, ec);
  }
  static dev_t device_of(const std::filesystem::path& p) noexcept {
    struct stat st {};
    return ::lstat(p.c_str(), &st) == 0 ? st.st_dev : dev_t{};
  }

  std::filesystem::path path_;
};

}  // namespace fuse_backend::testing
