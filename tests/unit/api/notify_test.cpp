// Notifications: exact wire bytes of each message, sent in one piece.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <gtest/gtest.h>

#include <vector>

#include <fuse_backend/api/notify.hpp>
#include <support/message_builder.hpp>

namespace fuse_backend::testing {
namespace {

class CapturingNotifier final : public api::Notifier {
 public:
  std::vector<std::vector<std::byte>> messages;
  Result<void> send(std::span<const iovec> message) noexcept override {
    std::vector<std::byte> bytes;
    for (const auto& part : message) {
      const auto* base = static_cast<const std::byte*>(part.iov_base);
      bytes.insert(bytes.end(), base, base + part.iov_len);
    }
    messages.push_back(std::move(bytes));
    return {};
  }
};

TEST(Notify, InvalInodeAndEntryAndDelete) {
  CapturingNotifier notifier;
  ASSERT_TRUE(api::notify_inval_inode(notifier, api::InodeId{5}, -1, 0));
  ASSERT_TRUE(api::notify_inval_entry(notifier, api::InodeId{1}, "name", abi::expire_only));
  ASSERT_TRUE(api::notify_delete(notifier, api::InodeId{1}, api::InodeId{9}, "gone"));
  ASSERT_EQ(notifier.messages.size(), 3u);

  auto inode = ParsedReply::parse(notifier.messages[0]);
  EXPECT_EQ(inode.header.unique, 0u);
  EXPECT_EQ(inode.header.error, static_cast<std::int32_t>(abi::notify_code::inval_inode));
  EXPECT_EQ(inode.header.len, notifier.messages[0].size());
  EXPECT_EQ(inode.as<abi::notify_inval_inode_out>().ino, 5u);
  EXPECT_EQ(inode.as<abi::notify_inval_inode_out>().off, -1);

  auto entry = ParsedReply::parse(notifier.messages[1]);
  EXPECT_EQ(entry.header.error, static_cast<std::int32_t>(abi::notify_code::inval_entry));
  EXPECT_EQ(entry.payload.size(), sizeof(abi::notify_inval_entry_out) + 5);
  EXPECT_EQ(entry.as<abi::notify_inval_entry_out>().namelen, 4u);
  EXPECT_EQ(entry.as<abi::notify_inval_entry_out>().flags, abi::expire_only);
  EXPECT_EQ(entry.text().substr(sizeof(abi::notify_inval_entry_out)), std::string_view("name\0", 5));

  auto deleted = ParsedReply::parse(notifier.messages[2]);
  EXPECT_EQ(deleted.header.error, static_cast<std::int32_t>(abi::notify_code::delete_entry));
  EXPECT_EQ(deleted.as<abi::notify_delete_out>().child, 9u);
}

TEST(Notify, StoreRetrievePollResend) {
  CapturingNotifier notifier;
  const std::string data = "cached";
  ASSERT_TRUE(api::notify_store(notifier, api::InodeId{3}, 4096, std::as_bytes(std::span(data.data(), data.size()))));
  ASSERT_TRUE(api::notify_retrieve(notifier, 77, api::InodeId{3}, 0, 100));
  ASSERT_TRUE(api::notify_poll(notifier, 55));
  ASSERT_TRUE(api::notify_resend(notifier));
  auto store = ParsedReply::parse(notifier.messages[0]);
  EXPECT_EQ(store.as<abi::notify_store_out>().size, data.size());
  EXPECT_EQ(store.text().substr(sizeof(abi::notify_store_out)), data);
  EXPECT_EQ(ParsedReply::parse(notifier.messages[1]).as<abi::notify_retrieve_out>().notify_unique, 77u);
  EXPECT_EQ(ParsedReply::parse(notifier.messages[2]).as<abi::notify_poll_wakeup_out>().kh, 55u);
  auto resend = ParsedReply::parse(notifier.messages[3]);
  EXPECT_EQ(resend.header.len, sizeof(abi::out_header));
  EXPECT_EQ(resend.header.error, static_cast<std::int32_t>(abi::notify_code::resend));
}

TEST(Notify, BadNamesAreRefusedUnsent) {
  CapturingNotifier notifier;
  EXPECT_FALSE(api::notify_inval_entry(notifier, api::InodeId{1}, ""));
  EXPECT_FALSE(api::notify_delete(notifier, api::InodeId{1}, api::InodeId{2}, std::string(1025, 'x')));
  EXPECT_TRUE(notifier.messages.empty());
}

}  // namespace
}  // namespace fuse_backend::testing
