// DirSink: where readdir/readdirplus put directory entries.
//
// Layer: api. The Server implements it over the reply, packing kernel dirent/direntplus records
// (8-byte aligned) up to the size the kernel asked for; a filesystem only sees entries.
// Used by one thread for one request.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <cstddef>
#include <string_view>

#include <fuse_backend/api/types.hpp>

namespace fuse_backend::api {

// The longest name a directory record may carry (the kernel's FUSE_NAME_MAX). fits() and add()
// refuse a longer name whatever room is left, so a filesystem meeting one (host names can be
// longer than NAME_MAX, e.g. from a FUSE submount) skips it instead of ending the listing there.
inline constexpr std::size_t max_entry_name = 1024;

class DirSink {
 public:
  // True when an entry with this name still fits. readdirplus must ask *before* the lookup that
  // takes a reference, so that no reference is taken for an entry the kernel never sees.
  virtual bool fits(std::string_view name) const noexcept = 0;
  // Appends an entry (readdir). False, with nothing written, when it does not fit.
  virtual bool add(const DirEntry& entry) noexcept = 0;
  // Appends an entry with its attributes (readdirplus); the kernel takes one lookup reference
  // for `attributes.inode` when it is not 0.
  virtual bool add(const DirEntry& entry, const Entry& attributes) noexcept = 0;
  // Bytes added so far.
  virtual std::size_t size() const noexcept = 0;

 protected:
  ~DirSink() = default;
};

}  // namespace fuse_backend::api
