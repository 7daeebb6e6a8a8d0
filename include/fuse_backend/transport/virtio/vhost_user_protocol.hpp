// The vhost-user wire protocol: request numbers, header flags, feature bits and payload layouts,
// as QEMU's docs/interop/vhost-user.rst defines them (version 1, little-endian x86/arm hosts).
//
// Layer: transport/virtio. Pure data and constexpr helpers, no behaviour: the channel
// (vhost_user_channel.hpp) moves these bytes, the backend (vhost_user_backend.hpp) interprets
// them, and tests speak the same structs as a test master. Names follow the spec without the
// VHOST_USER_ prefix; the spec's "slave" channel is called the backend request channel.
//
// Every message is a 12-byte header (request, flags, size) followed by `size` payload bytes; file
// descriptors ride as SCM_RIGHTS on the header. `payload_size_rule()` is the single table of which
// payload each request must carry, so a message of the wrong size is rejected in one place.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace fuse_backend::transport::virtio::vhost_user {

// Front-end (QEMU) -> back-end requests. Back-end -> front-end requests are not needed by a
// virtio-fs back-end without DAX and are not listed.
enum class Request : std::uint32_t {
  none = 0,
  get_features = 1,
  set_features = 2,
  set_owner = 3,
  reset_owner = 4,
  set_mem_table = 5,
  set_log_base = 6,
  set_log_fd = 7,
  set_vring_num = 8,
  set_vring_addr = 9,
  set_vring_base = 10,
  get_vring_base = 11,
  set_vring_kick = 12,
  set_vring_call = 13,
  set_vring_err = 14,
  get_protocol_features = 15,
  set_protocol_features = 16,
  get_queue_num = 17,
  set_vring_enable = 18,
  send_rarp = 19,
  net_set_mtu = 20,
  set_backend_req_fd = 21,  // SET_SLAVE_REQ_FD
  iotlb_msg = 22,
  set_vring_endian = 23,
  get_config = 24,
  set_config = 25,
  create_crypto_session = 26,
  close_crypto_session = 27,
  postcopy_advise = 28,
  postcopy_listen = 29,
  postcopy_end = 30,
  get_inflight_fd = 31,
  set_inflight_fd = 32,
  gpu_set_socket = 33,
  reset_device = 34,
  vring_kick = 35,
  get_max_mem_slots = 36,
  add_mem_reg = 37,
  rem_mem_reg = 38,
  set_status = 39,
  get_status = 40,
};

inline constexpr std::uint32_t request_limit = 41;  // one past the highest request number

// The spec's names, for logs ("SET_VRING_ADDR"); "UNKNOWN" outside the table.
constexpr std::string_view request_name(Request request) noexcept {
  constexpr std::string_view names[request_limit] = {
      "NONE", "GET_FEATURES", "SET_FEATURES", "SET_OWNER", "RESET_OWNER", "SET_MEM_TABLE",
      "SET_LOG_BASE", "SET_LOG_FD", "SET_VRING_NUM", "SET_VRING_ADDR", "SET_VRING_BASE",
      "GET_VRING_BASE", "SET_VRING_KICK", "SET_VRING_CALL", "SET_VRING_ERR",
      "GET_PROTOCOL_FEATURES", "SET_PROTOCOL_FEATURES", "GET_QUEUE_NUM", "SET_VRING_ENABLE",
      "SEND_RARP", "NET_SET_MTU", "SET_SLAVE_REQ_FD", "IOTLB_MSG", "SET_VRING_ENDIAN",
      "GET_CONFIG", "SET_CONFIG", "CREATE_CRYPTO_SESSION", "CLOSE_CRYPTO_SESSION",
      "POSTCOPY_ADVISE", "POSTCOPY_LISTEN", "POSTCOPY_END", "GET_INFLIGHT_FD", "SET_INFLIGHT_FD",
      "GPU_SET_SOCKET", "RESET_DEVICE", "VRING_KICK", "GET_MAX_MEM_SLOTS", "ADD_MEM_REG",
      "REM_MEM_REG", "SET_STATUS", "GET_STATUS"};
  const auto n = static_cast<std::uint32_t>(request);
  return n < request_limit ? names[n] : std::string_view("UNKNOWN");
}

// Header flags.
namespace flags {
inline constexpr std::uint32_t version_mask = 0x3;
inline constexpr std::uint32_t version = 0x1;  // the only version that exists
inline constexpr std::uint32_t reply = 1u << 2;
inline constexpr std::uint32_t need_reply = 1u << 3;
}  // namespace flags

// Virtio feature bits a vhost-user-fs back-end deals with (VIRTIO_F_* / VIRTIO_RING_F_* /
// VHOST_F_*), as bit numbers.
namespace feature {
inline constexpr unsigned notify_on_empty = 24;
inline constexpr unsigned log_all = 26;          // VHOST_F_LOG_ALL: migration dirty logging
inline constexpr unsigned indirect_desc = 28;    // VIRTIO_RING_F_INDIRECT_DESC
inline constexpr unsigned event_idx = 29;        // VIRTIO_RING_F_EVENT_IDX
inline constexpr unsigned protocol_features = 30;  // VHOST_USER_F_PROTOCOL_FEATURES
inline constexpr unsigned version_1 = 32;        // VIRTIO_F_VERSION_1
}  // namespace feature

// VHOST_USER_PROTOCOL_F_* bit numbers.
namespace protocol_feature {
inline constexpr unsigned mq = 0;
inline constexpr unsigned log_shmfd = 1;
inline constexpr unsigned rarp = 2;
inline constexpr unsigned reply_ack = 3;
inline constexpr unsigned mtu = 4;
inline constexpr unsigned backend_req = 5;  // SLAVE_REQ
inline constexpr unsigned cross_endian = 6;
inline constexpr unsigned crypto_session = 7;
inline constexpr unsigned pagefault = 8;
inline constexpr unsigned config = 9;
inline constexpr unsigned backend_send_fd = 10;  // SLAVE_SEND_FD
inline constexpr unsigned host_notifier = 11;
inline constexpr unsigned inflight_shmfd = 12;
inline constexpr unsigned reset_device = 13;
inline constexpr unsigned inband_notifications = 14;
inline constexpr unsigned configure_mem_slots = 15;
inline constexpr unsigned status = 16;
}  // namespace protocol_feature

constexpr std::uint64_t bit(unsigned n) noexcept { return std::uint64_t{1} << n; }

// Payload of SET_VRING_KICK / CALL / ERR: queue index in the low byte, bit 8 = no fd (polling).
inline constexpr std::uint64_t vring_index_mask = 0xff;
inline constexpr std::uint64_t vring_nofd_mask = 1u << 8;

// Limits of this implementation (announced to the front-end where the protocol allows).
inline constexpr std::size_t max_fds_per_message = 8;  // VHOST_MEMORY_BASELINE_NREGIONS
inline constexpr std::size_t max_mem_table_regions = 8;
inline constexpr std::uint64_t max_mem_slots = 32;  // GET_MAX_MEM_SLOTS reply
inline constexpr std::size_t max_payload_size = 4096;

struct Header {
  std::uint32_t request;
  std::uint32_t flags;
  std::uint32_t size;  // payload bytes that follow
};

struct VringState {  // SET_VRING_NUM / BASE / ENABLE, GET_VRING_BASE (and its reply)
  std::uint32_t index;
  std::uint32_t num;
};

struct VringAddress {  // SET_VRING_ADDR: front-end (QEMU) user virtual addresses
  std::uint32_t index;
  std::uint32_t flags;  // bit 0: log_guest_addr is valid
  std::uint64_t descriptor;
  std::uint64_t used;
  std::uint64_t available;
  std::uint64_t log_guest_addr;
};

struct MemoryRegion {
  std::uint64_t guest_phys_addr;
  std::uint64_t memory_size;
  std::uint64_t userspace_addr;  // the front-end's mapping of the region
  std::uint64_t mmap_offset;     // offset of the region in the fd passed with the message
};

struct MemoryTableHeader {  // SET_MEM_TABLE: followed by `region_count` MemoryRegion
  std::uint32_t region_count;
  std::uint32_t padding;
};

struct SingleMemoryRegion {  // ADD_MEM_REG / REM_MEM_REG
  std::uint64_t padding;
  MemoryRegion region;
};

struct LogArea {  // SET_LOG_BASE
  std::uint64_t mmap_size;
  std::uint64_t mmap_offset;
};

static_assert(sizeof(Header) == 12 && sizeof(VringState) == 8 && sizeof(VringAddress) == 40 &&
              sizeof(MemoryRegion) == 32 && sizeof(MemoryTableHeader) == 8 &&
              sizeof(SingleMemoryRegion) == 40 && sizeof(LogArea) == 16);
static_assert(std::is_trivially_copyable_v<VringAddress> &&
              std::is_trivially_copyable_v<SingleMemoryRegion>);

// What payload a request must carry. `exact` means size == bytes; `empty_or_exact` size 0 or
// bytes (QEMU sends SET_SLAVE_REQ_FD empty, other front-ends an unused u64); `at_least`
// size >= bytes (SET_MEM_TABLE, whose exact size depends on its region count); `any` means the
// request is not understood here (the back-end rejects it anyway).
struct PayloadRule {
  enum class Kind : std::uint8_t { exact, empty_or_exact, at_least, any } kind;
  std::uint32_t bytes;
};

constexpr PayloadRule payload_size_rule(Request request) noexcept {
  using K = PayloadRule::Kind;
  switch (request) {
    case Request::get_features:
    case Request::get_protocol_features:
    case Request::get_queue_num:
    case Request::get_max_mem_slots:
    case Request::set_owner:
    case Request::reset_owner:
    case Request::reset_device:
    case Request::get_status:
      return {K::exact, 0};
    case Request::set_features:
    case Request::set_protocol_features:
    case Request::set_vring_kick:
    case Request::set_vring_call:
    case Request::set_vring_err:
    case Request::set_status:
      return {K::exact, 8};
    case Request::set_backend_req_fd:
    case Request::set_log_fd:
      return {K::empty_or_exact, 8};
    case Request::set_vring_num:
    case Request::set_vring_base:
    case Request::get_vring_base:
    case Request::set_vring_enable:
      return {K::exact, sizeof(VringState)};
    case Request::set_vring_addr:
      return {K::exact, sizeof(VringAddress)};
    case Request::set_mem_table:
      return {K::at_least, sizeof(MemoryTableHeader)};
    case Request::add_mem_reg:
    case Request::rem_mem_reg:
      return {K::exact, sizeof(SingleMemoryRegion)};
    case Request::set_log_base:
      return {K::exact, sizeof(LogArea)};
    default:
      return {K::any, 0};
  }
}

}  // namespace fuse_backend::transport::virtio::vhost_user
