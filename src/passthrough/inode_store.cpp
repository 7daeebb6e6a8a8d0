// InodeStore (see include/fuse_backend/passthrough/inode_store.hpp).
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/passthrough/inode_store.hpp>

namespace fuse_backend::passthrough {

InodeStore::InodeStore(std::shared_ptr<Inode> root) : root_(std::move(root)) {
  by_key_.emplace(root_->key(), root_.get());
  by_id_.emplace(static_cast<std::uint64_t>(root_->id()), root_);
}

std::shared_ptr<Inode> InodeStore::get(api::InodeId id) const noexcept {
  if (id == api::root_inode) return root_;
  std::shared_lock lock(mutex_);
  auto it = by_id_.find(static_cast<std::uint64_t>(id));
  return it == by_id_.end() ? nullptr : it->second;
}

bool Inode::is_object_of(int fd) const noexcept {
  if (!handle_) return true;
  auto handle = FileHandle::of(fd);
  return handle && *handle == *handle_;
}

std::shared_ptr<Inode> InodeStore::referenced(Inode& inode) const noexcept {
  // Forget decrements under the exclusive lock, so this increment cannot race an erase.
  inode.lookups_.fetch_add(1, std::memory_order_relaxed);
  if (&inode == root_.get()) return root_;
  return by_id_.find(static_cast<std::uint64_t>(inode.id()))->second;
}

std::shared_ptr<Inode> InodeStore::reference(const InodeKey& key) noexcept {
  std::shared_lock lock(mutex_);
  auto it = by_key_.find(key);
  if (it == by_key_.end() || it->second->has_handle()) return nullptr;
  return referenced(*it->second);
}

std::shared_ptr<Inode> InodeStore::reference(const InodeKey& key, int object_fd) noexcept {
  std::shared_lock lock(mutex_);
  auto it = by_key_.find(key);
  if (it == by_key_.end() || !it->second->is_object_of(object_fd)) return nullptr;
  return referenced(*it->second);
}

std::shared_ptr<Inode> InodeStore::reference_or_insert(const InodeKey& key, detail::UniqueFd fd,
                                                       mode_t type,
                                                       std::unique_ptr<FileHandle> handle) {
  if (auto known = reference(key, fd.get())) return known;
  std::unique_lock lock(mutex_);
  // Another thread may have inserted the same host object since the shared lookup.
  if (auto it = by_key_.find(key); it != by_key_.end()) {
    if (it->second->is_object_of(fd.get())) return referenced(*it->second);
    // A handle inode whose object is gone: the host gave its inode number to `fd`'s object.
    by_key_.erase(it);
  }
  const api::InodeId id{next_id_++};
  auto inode = std::make_shared<Inode>(id, std::move(fd), key, type, std::move(handle));
  inode->lookups_.store(1, std::memory_order_relaxed);
  by_id_.emplace(static_cast<std::uint64_t>(id), inode);
  try {
    by_key_.emplace(key, inode.get());
  } catch (...) {
    by_id_.erase(static_cast<std::uint64_t>(id));
    throw;
  }
  return inode;
}

void InodeStore::reference(Inode& inode) noexcept {
  // Under the shared lock, so that the increment cannot land between forget's read and write of
  // the count (done under the exclusive lock).
  std::shared_lock lock(mutex_);
  inode.lookups_.fetch_add(1, std::memory_order_relaxed);
}

void InodeStore::forget(api::InodeId id, std::uint64_t count) noexcept {
  if (id == api::root_inode) return;
  std::unique_lock lock(mutex_);
  auto it = by_id_.find(static_cast<std::uint64_t>(id));
  if (it == by_id_.end()) return;
  Inode& inode = *it->second;
  const std::uint64_t held = inode.lookups_.load(std::memory_order_relaxed);
  const std::uint64_t left = count >= held ? 0 : held - count;
  inode.lookups_.store(left, std::memory_order_relaxed);
  if (left != 0) return;
  // Its key may name a newer inode by now (see reference_or_insert).
  if (auto key = by_key_.find(inode.key()); key != by_key_.end() && key->second == &inode) by_key_.erase(key);
  // The fd closes when the last request holding this inode lets go of it.
  by_id_.erase(it);
}

void InodeStore::clear() noexcept {
  std::unique_lock lock(mutex_);
  std::erase_if(by_key_, [&](const auto& item) { return item.second != root_.get(); });
  std::erase_if(by_id_, [&](const auto& item) { return item.second != root_; });
}

std::size_t InodeStore::size() const noexcept {
  std::shared_lock lock(mutex_);
  return by_id_.size();
}

std::uint64_t InodeStore::lookups(api::InodeId id) const noexcept {
  auto inode = get(id);
  return inode ? inode->lookups_.load(std::memory_order_relaxed) : 0;
}

}  // namespace fuse_backend::passthrough
