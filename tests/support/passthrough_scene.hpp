// PassthroughScene: a PassthroughFs over a temporary directory holding one 64 KiB file, served in
// memory, with the file looked up and open read-write and the directory open, as a kernel holds
// them in steady state; and the requests such a kernel keeps sending.
//
// Layer: test support. Construction throws std::runtime_error when a setup step fails (the
// filesystem cannot be created, INIT, LOOKUP, OPEN or OPENDIR answers an error). Requests come
// from MessageBuilder's caller (uid 1000), so the tree is open to everyone: a root daemon
// switches to that caller. Not thread-safe; one owner.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <fcntl.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/passthrough/passthrough_fs.hpp>
#include <support/in_memory_server.hpp>
#include <support/request_mix.hpp>
#include <support/temp_dir.hpp>

namespace fuse_backend::testing {

class PassthroughScene {
 public:
  PassthroughScene() {
    namespace fs = std::filesystem;
    std::ofstream(dir_ / "file", std::ios::binary) << std::string(64 * 1024, 'x');
    fs::permissions(dir_.path(), fs::perms::all);
    fs::permissions(dir_ / "file", fs::perms::owner_read | fs::perms::owner_write |
                                       fs::perms::group_read | fs::perms::group_write |
                                       fs::perms::others_read | fs::perms::others_write);
    passthrough::Config config;
    config.source = dir_.str();
    auto created = passthrough::PassthroughFs::create(std::move(config));
    if (!created)
      throw std::system_error(std::make_error_code(created.error()), "PassthroughFs::create");
    fs_ = std::move(*created);
    served_.emplace(*fs_);
    if (!served_->initialized()) throw std::runtime_error("INIT failed");
    setup("LOOKUP file", requests::lookup(1, "file"));
    file_ = served_->reply_as<abi::entry_out>().nodeid;
    setup("OPEN file", requests::open(file_, O_RDWR));
    file_fh_ = served_->reply_as<abi::open_out>().fh;
    setup("OPENDIR /", requests::opendir(1));
    dir_fh_ = served_->reply_as<abi::open_out>().fh;
  }

  InMemoryServer<passthrough::PassthroughFs>& served() noexcept { return *served_; }

  // What a kernel sends again and again for a known name, an open file and an open directory;
  // each allocates nothing once warm (tests/unit/api/request_allocations_test.cpp). OPEN and
  // OPENDIR are not here: each allocates its open file (see bench/README.md).
  RequestMix steady_mix() const {
    namespace r = requests;
    return {
        {"Lookup", r::lookup(1, "file")},
        {"Getattr", r::getattr(file_)},
        {"Read4k", r::read(file_, file_fh_, 4096)},
        {"Write4k", r::write(file_, file_fh_, 4096)},
        {"Setattr", r::touch(file_, file_fh_)},
        {"Flush", r::flush(file_, file_fh_)},
        {"Fsync", r::fsync(file_, file_fh_)},
        {"Statfs", r::statfs(1)},
        {"Readdir", r::readdir(1, dir_fh_, 4096)},
        {"Readdirplus", r::readdir(1, dir_fh_, 4096, true)},
    };
  }

 private:
  // Serves one setup request; throws when it fails.
  void setup(const std::string& what, const std::vector<std::byte>& message) {
    if (const int error = served_->serve(message); error != 0)
      throw std::system_error(error, std::generic_category(), what);
  }

  TempDir dir_{"passthrough_scene"};
  std::unique_ptr<passthrough::PassthroughFs> fs_;
  std::optional<InMemoryServer<passthrough::PassthroughFs>> served_;
  std::uint64_t file_ = 0, file_fh_ = 0, dir_fh_ = 0;
};

}  // namespace fuse_backend::testing
