// Fuzz target: what the kernel leaves in one FUSE-over-io_uring entry, through UringEntry and
// the Server.
//
// Input: 4 bytes payload_sz, the 40-byte in_header (in_out), 1 byte n, n bytes of op struct
// (op_in, at most 128 taken), then the payload buffer's contents. UringEntry::request() must refuse lengths
// that do not add up; whatever it accepts goes through a Server (RecordingFs, initialised as by
// a 7.45 kernel) and must come back as one committed reply that fits the payload buffer and
// agrees with its own header. Any crash, sanitizer report or violated rule is a bug.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include <fuse_backend/api/server.hpp>
#include <fuse_backend/transport/fusedev/uring_queue.hpp>
#include <support/memory_transport.hpp>
#include <support/message_builder.hpp>
#include <support/recording_fs.hpp>

using namespace fuse_backend;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr std::size_t payload_size = 64 * 1024;
  static auto entry = std::move(*transport::fusedev::UringEntry::create(payload_size));
  if (size < 4 + sizeof(abi::in_header) + 1) return 0;
  std::uint32_t payload_sz = 0;
  std::memcpy(&payload_sz, data, sizeof(payload_sz));
  data += 4;
  size -= 4;
  std::memcpy(entry->header().in_out, data, sizeof(abi::in_header));
  data += sizeof(abi::in_header);
  size -= sizeof(abi::in_header);
  const std::size_t op = std::min({std::size_t{data[0]}, size - 1, abi::uring_op_in_out_sz});
  ++data;
  --size;
  std::memcpy(entry->header().op_in, data, op);
  std::memcpy(entry->buffers()[1].iov_base, data + op, std::min(size - op, payload_size));
  entry->header().ring_ent_in_out.payload_sz = payload_sz;
  entry->header().ring_ent_in_out.commit_id = 5;

  const auto request = entry->request();
  if (request.empty()) return 0;
  testing::RecordingFs fs;
  api::Server<transport::fusedev::Transport, testing::RecordingFs> server(fs);
  {
    // INIT's reply goes to a buffer of its own: the entry holds the request under test.
    struct Discard final : transport::fusedev::ReplySink {
      Result<void> send(const abi::out_header&, std::span<const std::byte>) noexcept override { return {}; }
    } discard;
    static std::byte init_reply[4096];
    const auto init = testing::init_request(7, 45, 0x73fffffbull | (0x7fdull << 32));
    transport::fusedev::Reader init_reader(init, nullptr);
    transport::fusedev::Writer init_writer(discard, init_reply);
    (void)server.handle(init_reader, init_writer);
  }
  transport::fusedev::Reader reader(request, nullptr);
  auto writer = entry->writer();
  const auto disposition = server.handle(reader, writer);
  if (!disposition) std::abort();  // an entry never fails to take a reply that fits
  if (*disposition != api::Disposition::replied) return 0;  // the queue then commits EIO itself
  if (!entry->committed()) std::abort();
  abi::out_header header;
  std::memcpy(&header, entry->header().in_out, sizeof(header));
  const std::uint32_t sent = entry->header().ring_ent_in_out.payload_sz;
  if (sent > payload_size || header.len != sizeof(header) + sent || header.error > 0 || header.error < -511)
    std::abort();
  return 0;
}
