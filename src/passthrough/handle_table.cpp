// HandleTable (see include/fuse_backend/passthrough/handle_table.hpp).
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/passthrough/handle_table.hpp>

namespace fuse_backend::passthrough {

api::HandleId HandleTable::insert(std::shared_ptr<OpenFile> file) {
  std::unique_lock lock(mutex_);
  const std::uint64_t id = next_id_++;
  files_.emplace(id, std::move(file));
  return api::HandleId{id};
}

std::shared_ptr<OpenFile> HandleTable::get(api::HandleId id) const noexcept {
  std::shared_lock lock(mutex_);
  auto it = files_.find(static_cast<std::uint64_t>(id));
  return it == files_.end() ? nullptr : it->second;
}

std::shared_ptr<OpenFile> HandleTable::remove(api::HandleId id) noexcept {
  std::unique_lock lock(mutex_);
  auto it = files_.find(static_cast<std::uint64_t>(id));
  if (it == files_.end()) return nullptr;
  auto file = std::move(it->second);
  files_.erase(it);
  return file;
}

void HandleTable::clear() noexcept {
  std::unique_lock lock(mutex_);
  files_.clear();
}

std::size_t HandleTable::size() const noexcept {
  std::shared_lock lock(mutex_);
  return files_.size();
}

}  // namespace fuse_backend::passthrough
