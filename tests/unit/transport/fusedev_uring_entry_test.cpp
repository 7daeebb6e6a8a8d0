// UringEntry without a kernel: how the buffers the kernel fills become one contiguous request
// (and which fillings are refused), and where a reply ends up for COMMIT_AND_FETCH. The same
// entry then carries a whole request through the Server.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <fuse_backend/api/server.hpp>
#include <fuse_backend/transport/fusedev/uring_queue.hpp>
#include <support/memory_fs.hpp>

namespace {

namespace abi = fuse_backend::abi;
using fuse_backend::transport::fusedev::Reader;
using fuse_backend::transport::fusedev::UringEntry;

constexpr std::size_t payload_size = 8192;

// Fills the entry as the kernel does: in_header into in_out, the op struct into op_in, the rest
// into the payload buffer, and payload_sz / commit_id into ring_ent_in_out.
void fill(UringEntry& entry, abi::opcode opcode, std::uint32_t len, std::string_view op_struct,
          std::string_view payload, std::uint32_t payload_sz, std::uint64_t commit_id = 77) {
  abi::in_header in{};
  in.len = len;
  in.opcode = static_cast<std::uint32_t>(opcode);
  in.unique = commit_id;
  in.nodeid = 1;
  std::memcpy(entry.header().in_out, &in, sizeof(in));
  std::memcpy(entry.header().op_in, op_struct.data(), op_struct.size());
  std::memcpy(entry.buffers()[1].iov_base, payload.data(), payload.size());
  entry.header().ring_ent_in_out.payload_sz = payload_sz;
  entry.header().ring_ent_in_out.commit_id = commit_id;
}

std::unique_ptr<UringEntry> make_entry() {
  auto entry = UringEntry::create(payload_size);
  EXPECT_TRUE(entry);
  return std::move(*entry);
}

std::string text(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

TEST(UringEntry, RegistersAHeaderAndAPayloadBufferOfAtLeastTheAskedSize) {
  auto entry = make_entry();
  EXPECT_EQ(entry->buffers()[0].iov_len, sizeof(abi::uring_req_header));
  EXPECT_GE(entry->buffers()[1].iov_len, payload_size);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(entry->buffers()[1].iov_base) % 4096, 0u);
}

TEST(UringEntry, JoinsHeaderOpStructAndPayloadIntoOneRequest) {
  auto entry = make_entry();
  const std::string op(16, 'o');
  fill(*entry, abi::opcode::write, 40 + 16 + 5, op, "hello", 5);
  const auto request = entry->request();
  ASSERT_EQ(request.size(), 40u + 16 + 5);
  abi::in_header in;
  std::memcpy(&in, request.data(), sizeof(in));
  EXPECT_EQ(in.opcode, static_cast<std::uint32_t>(abi::opcode::write));
  EXPECT_EQ(text(request.subspan(40)), op + "hello");
  EXPECT_EQ(entry->commit_id(), 77u);
}

TEST(UringEntry, AnOpcodeWithoutOpStructOrPayloadIsJustTheHeader) {
  auto entry = make_entry();
  fill(*entry, abi::opcode::statfs, 40, "", "", 0);
  EXPECT_EQ(entry->request().size(), 40u);
}

TEST(UringEntry, RefusesLengthsThatDoNotAddUp) {
  auto entry = make_entry();
  fill(*entry, abi::opcode::write, 40 + 129, std::string(128, 'o'), "", 0);  // op struct > 128
  EXPECT_TRUE(entry->request().empty());
  fill(*entry, abi::opcode::write, 40 + 3, "", "hello", 5);  // shorter than its payload
  EXPECT_TRUE(entry->request().empty());
  fill(*entry, abi::opcode::write, 10, "", "", 0);  // shorter than in_header
  EXPECT_TRUE(entry->request().empty());
  fill(*entry, abi::opcode::write, 40 + 16 + 8, std::string(16, 'o'), "", 0xffff'fff0u);  // beyond the buffer
  EXPECT_TRUE(entry->request().empty());
  EXPECT_EQ(entry->commit_id(), 77u) << "a refused request is still committed (with EIO)";
}

TEST(UringEntry, AReplyIsBuiltBehindTheRequestAndMovedToThePayloadStart) {
  auto entry = make_entry();
  fill(*entry, abi::opcode::lookup, 40 + 6, "", std::string_view("name\0\0", 6), 6);
  const auto request = entry->request();
  ASSERT_EQ(text(request.subspan(40, 4)), "name");
  auto writer = entry->writer();
  const std::string reply = "entry-out-bytes";
  ASSERT_TRUE(writer.append(std::as_bytes(std::span(reply))));
  EXPECT_EQ(text(request.subspan(40, 4)), "name") << "the reply must not overwrite the request";
  abi::out_header out{};
  out.len = static_cast<std::uint32_t>(sizeof(out) + reply.size());
  out.unique = 77;
  ASSERT_TRUE(writer.commit(out));
  EXPECT_TRUE(entry->committed());
  const auto* payload = static_cast<const char*>(entry->buffers()[1].iov_base);
  EXPECT_EQ(std::string(payload, reply.size()), reply);
  EXPECT_EQ(entry->header().ring_ent_in_out.payload_sz, reply.size());
  EXPECT_EQ(entry->header().ring_ent_in_out.commit_id, 77u) << "commit_id is left as the kernel set it";
  abi::out_header written;
  std::memcpy(&written, entry->header().in_out, sizeof(written));
  EXPECT_EQ(written.len, out.len);
  EXPECT_EQ(written.unique, 77u);
}

TEST(UringEntry, CarriesARequestThroughTheServer) {
  fuse_backend::testing::MemoryFs fs;
  fuse_backend::api::Server<fuse_backend::transport::fusedev::Transport, fuse_backend::testing::MemoryFs> server(fs);
  auto entry = make_entry();

  abi::init_in init{};
  init.major = abi::kernel_version;
  init.minor = abi::kernel_minor_version;
  init.flags = abi::init_flags::init_ext;
  // INIT's op struct is 64 bytes: it fits op_in like any other.
  fill(*entry, abi::opcode::init, 40 + sizeof(init),
       std::string_view(reinterpret_cast<const char*>(&init), sizeof(init)), "", 0, 1);
  Reader init_reader(entry->request(), nullptr);
  auto init_writer = entry->writer();
  ASSERT_TRUE(server.handle(init_reader, init_writer));
  ASSERT_TRUE(entry->committed());
  ASSERT_TRUE(server.initialized());

  fill(*entry, abi::opcode::mkdir, 40 + 8 + 4, std::string(8, '\0'), std::string_view("dir\0", 4), 4, 2);
  Reader reader(entry->request(), nullptr);
  auto writer = entry->writer();
  ASSERT_TRUE(server.handle(reader, writer));
  ASSERT_TRUE(entry->committed());
  abi::out_header out;
  std::memcpy(&out, entry->header().in_out, sizeof(out));
  EXPECT_EQ(out.error, 0);
  EXPECT_EQ(out.unique, 2u);
  EXPECT_EQ(entry->header().ring_ent_in_out.payload_sz, sizeof(abi::entry_out));
  abi::entry_out created;
  std::memcpy(&created, entry->buffers()[1].iov_base, sizeof(created));
  EXPECT_NE(created.nodeid, 0u);
  EXPECT_TRUE(S_ISDIR(created.attr.mode));
}

}  // namespace
