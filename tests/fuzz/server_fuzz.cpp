// Fuzz target: one untrusted request through the Server (decoder, dispatch, encoder).
//
// The Server is initialised as by a 7.45 kernel first, unless the input is itself an INIT
// request (opcode 26), which then meets a fresh Server. The input bytes are the request; the filesystem is
// RecordingFs (every op implemented), so every decode path is reachable. Any crash, sanitizer
// report or reply that disagrees with its own header is a bug.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include <fuse_backend/api/server.hpp>
#include <support/memory_transport.hpp>
#include <support/message_builder.hpp>
#include <support/recording_fs.hpp>

using namespace fuse_backend;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static testing::MemoryWriter writer;
  testing::RecordingFs fs;
  api::Server<testing::MemoryTransport, testing::RecordingFs> server(fs);
  std::uint32_t opcode = 0;
  if (size >= 8) std::memcpy(&opcode, data + 4, sizeof(opcode));
  if (opcode != static_cast<std::uint32_t>(abi::opcode::init)) {
    const auto init = testing::init_request(7, 45, 0x73fffffbull | (0x7fdull << 32));
    testing::MemoryReader reader(init);
    (void)server.handle(reader, writer);
  }
  writer.reset();
  testing::MemoryReader reader(std::as_bytes(std::span(data, size)));
  const auto disposition = server.handle(reader, writer);
  const auto reply = writer.reply();
  if (!disposition) std::abort();  // the memory transport never fails to send
  if (*disposition == api::Disposition::replied) {
    abi::out_header header;
    if (reply.size() < sizeof(header)) std::abort();
    std::memcpy(&header, reply.data(), sizeof(header));
    if (header.len != reply.size() || header.error > 0 || header.error < -511) std::abort();
  } else if (writer.commits() != 0) {
    std::abort();
  }
  return 0;
}
