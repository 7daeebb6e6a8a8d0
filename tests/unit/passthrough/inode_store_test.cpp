// InodeStore and DirStream on their own: identity keys, counting, never-reused ids, seeking.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <thread>

#include <fuse_backend/passthrough/dir_stream.hpp>
#include <fuse_backend/passthrough/inode_store.hpp>

namespace fuse_backend::passthrough {
namespace {

detail::UniqueFd some_fd() { return detail::UniqueFd(::open("/", O_PATH | O_CLOEXEC)); }

InodeStore make_store() {
  return InodeStore(std::make_shared<Inode>(api::root_inode, some_fd(), InodeKey{1, 1, 1}, S_IFDIR));
}

TEST(InodeStore, SameKeySameInodeAndCounted) {
  InodeStore store = make_store();
  const InodeKey key{42, 7, 3};
  auto first = store.reference_or_insert(key, some_fd(), S_IFREG | 0644);
  auto second = store.reference_or_insert(key, some_fd(), S_IFREG);
  EXPECT_EQ(first, second);
  EXPECT_EQ(first->type(), static_cast<mode_t>(S_IFREG));
  EXPECT_EQ(store.lookups(first->id()), 2u);
  EXPECT_EQ(store.reference(key), first);
  EXPECT_EQ(store.lookups(first->id()), 3u);
  EXPECT_EQ(store.reference(InodeKey{42, 7, 4}), nullptr);  // another mount: another inode
  EXPECT_EQ(store.size(), 2u);
}

TEST(InodeStore, ForgetRemovesAtZeroAndIdsAreNeverReused) {
  InodeStore store = make_store();
  auto inode = store.reference_or_insert(InodeKey{5, 5, 5}, some_fd(), S_IFREG);
  const auto id = inode->id();
  store.reference(*inode);
  store.forget(id, 1);
  EXPECT_EQ(store.get(id), inode);
  store.forget(id, 1);
  EXPECT_EQ(store.get(id), nullptr);
  EXPECT_EQ(store.reference(InodeKey{5, 5, 5}), nullptr);
  // The request still holding it keeps a valid fd.
  EXPECT_GE(inode->fd(), 0);
  auto again = store.reference_or_insert(InodeKey{5, 5, 5}, some_fd(), S_IFREG);
  EXPECT_NE(again->id(), id);
}

// References taken on an inode a request holds ("." lookups, link) and FORGETs at the same time
// lose no count: the increment must not land between forget's read and write of the count.
TEST(InodeStore, ReferencesOfAHeldInodeRacingForgetsLoseNoCount) {
  InodeStore store = make_store();
  auto inode = store.reference_or_insert(InodeKey{42, 7, 3}, some_fd(), S_IFDIR);
  constexpr std::uint64_t rounds = 200000;
  for (std::uint64_t i = 0; i < rounds; ++i) store.reference(*inode);  // never reaches 0 below
  std::thread referencing([&] {
    for (std::uint64_t i = 0; i < rounds; ++i) store.reference(*inode);
  });
  for (std::uint64_t i = 0; i < rounds; ++i) store.forget(inode->id(), 1);
  referencing.join();
  EXPECT_EQ(store.lookups(inode->id()), rounds + 1);
}

TEST(InodeStore, RootIsNeverForgotten) {
  InodeStore store = make_store();
  auto root = store.get(api::root_inode);
  ASSERT_NE(root, nullptr);
  store.forget(api::root_inode, 1000);
  EXPECT_EQ(store.get(api::root_inode), root);
  EXPECT_EQ(store.reference(InodeKey{1, 1, 1}), root);
  store.clear();
  EXPECT_EQ(store.get(api::root_inode), root);
  EXPECT_EQ(store.size(), 1u);
}

TEST(InodeStore, ClearDropsEverythingButTheRoot) {
  InodeStore store = make_store();
  for (std::uint64_t i = 10; i < 20; ++i) store.reference_or_insert(InodeKey{i, 1, 1}, some_fd(), S_IFREG);
  EXPECT_EQ(store.size(), 11u);
  store.clear();
  EXPECT_EQ(store.size(), 1u);
  EXPECT_EQ(store.reference(InodeKey{10, 1, 1}), nullptr);
}

TEST(DirStream, ReadsAllEntriesAndSeeksToCookies) {
  char pattern[] = "/tmp/passthrough-dirstream-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::filesystem::path dir = pattern;
  // Enough long names to need several getdents64 calls with the 32 KiB buffer.
  for (int i = 0; i < 600; ++i)
    ::close(::open((dir / (std::string(100, 'x') + std::to_string(i))).c_str(), O_CREAT | O_WRONLY, 0600));
  detail::UniqueFd fd(::open(pattern, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  DirStream stream(fd.get());
  std::vector<std::pair<std::string, std::uint64_t>> all;
  for (;;) {
    auto entry = stream.peek();
    ASSERT_TRUE(entry);
    if (!*entry) break;
    all.emplace_back(std::string((*entry)->name), (*entry)->next_offset);
    stream.consume();
  }
  EXPECT_EQ(all.size(), 602u);
  std::set<std::string> unique;
  for (const auto& [name, offset] : all) unique.insert(name);
  EXPECT_EQ(unique.size(), 602u);
  // Resume after entry 300, then rewind to the start.
  ASSERT_TRUE(stream.seek(all[300].second));
  auto next = stream.peek();
  ASSERT_TRUE(next && *next);
  EXPECT_EQ((*next)->name, all[301].first);
  ASSERT_TRUE(stream.seek(0));
  next = stream.peek();
  ASSERT_TRUE(next && *next);
  EXPECT_EQ((*next)->name, all[0].first);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace fuse_backend::passthrough
