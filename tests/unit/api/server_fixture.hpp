// Shared fixture for the Server tests: a RecordingFs behind a Server over the memory transport,
// initialised as a 7.45 kernel would.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <gtest/gtest.h>

#include <fuse_backend/api/server.hpp>
#include <support/memory_transport.hpp>
#include <support/message_builder.hpp>
#include <support/recording_fs.hpp>

namespace fuse_backend::testing {

using RecordingServer = api::Server<MemoryTransport, RecordingFs>;

class ServerTest : public ::testing::Test {
 protected:
  RecordingFs fs;
  RecordingServer server{fs};
  MemoryWriter writer;
  Result<api::Disposition> last_disposition = api::Disposition::dropped;

  void SetUp() override {
    auto reply = exchange(init_request(7, 45, kernel_offer));
    ASSERT_EQ(reply.error(), 0);
    ASSERT_TRUE(server.initialized());
  }

  ParsedReply exchange(const std::vector<std::byte>& message) {
    writer.reset();
    MemoryReader reader(message);
    last_disposition = server.handle(reader, writer);
    return ParsedReply::parse(writer.reply());
  }
  // Sends a request and checks the reply header is well formed for it.
  ParsedReply expect_reply(const std::vector<std::byte>& message, int error = 0) {
    auto reply = exchange(message);
    abi::in_header in;
    std::memcpy(&in, message.data(), sizeof(in));
    EXPECT_EQ(writer.commits(), 1u);
    EXPECT_EQ(reply.header.unique, in.unique);
    EXPECT_EQ(reply.header.len, sizeof(abi::out_header) + reply.payload.size());
    EXPECT_EQ(reply.error(), error);
    if (error != 0) {
      EXPECT_TRUE(reply.payload.empty());
    }
    return reply;
  }
  void expect_no_reply(const std::vector<std::byte>& message) {
    exchange(message);
    EXPECT_EQ(writer.commits(), 0u);
    ASSERT_TRUE(last_disposition);
    EXPECT_NE(*last_disposition, api::Disposition::replied);
  }
};

}  // namespace fuse_backend::testing
