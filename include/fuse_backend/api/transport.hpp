// The Transport concept: what Server<Transport, Fs> needs from a channel to the kernel.
//
// Layer: api. A transport supplies a RequestReader over the bytes of one request and a
// ReplyWriter for its reply. The /dev/fuse channel implements them over one reused buffer and
// one writev; virtio implements them over a descriptor chain in guest memory, where a request
// may be split at any byte. Both are noexcept, and both also implement the zero-copy interfaces
// through which file data moves. One reader/writer pair serves one request on one thread.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <concepts>
#include <cstddef>
#include <span>

#include <fuse_backend/abi/kernel.hpp>
#include <fuse_backend/api/backing.hpp>
#include <fuse_backend/api/zero_copy.hpp>
#include <fuse_backend/result.hpp>

namespace fuse_backend::api {

// Reads a request front to back. remaining() never grows; nothing past it is ever read.
template <class R>
concept RequestReader = std::derived_from<R, ZeroCopyReader> &&
    requires(R& reader, const R& const_reader, std::size_t count) {
      { const_reader.remaining() } noexcept -> std::same_as<std::size_t>;
      // Never read past `count` more bytes (the request's own length) even if the transport
      // holds more.
      { reader.limit(count) } noexcept -> std::same_as<void>;
      // The next `count` bytes as one contiguous view (copied into the reader's own bounce
      // buffer when split across buffers) and consumed; an empty span, consuming nothing, when
      // fewer remain (or `count` exceeds the bounce buffer). Valid until the next call.
      { reader.read_bytes(count) } noexcept -> std::same_as<std::span<const std::byte>>;
      // Skips `count` bytes; false (consuming nothing) when fewer remain.
      { reader.skip(count) } noexcept -> std::same_as<bool>;
      // The transport's passthrough backing-file registry, or nullptr when it has none.
      { reader.backing_files() } noexcept -> std::same_as<BackingFiles*>;
      // Whether the request's handler may wait (Context::may_block).
      { const_reader.may_block() } noexcept -> std::same_as<bool>;
    };

// Builds one reply: the payload is appended (or filled through the zero-copy interface), the
// header goes in front at commit.
template <class W>
concept ReplyWriter = std::derived_from<W, ZeroCopyWriter> &&
    requires(W& writer, const W& const_writer, std::span<const std::byte> bytes,
             const abi::out_header& header) {
      // Payload bytes written so far.
      { const_writer.written() } noexcept -> std::same_as<std::size_t>;
      // Appends all of `bytes`, or nothing and false when they do not fit.
      { writer.append(bytes) } noexcept -> std::same_as<bool>;
      // Forgets the payload (an error reply after a partial one).
      { writer.discard() } noexcept -> std::same_as<void>;
      // Sends `header` (whose len is 16 + written()) followed by the payload.
      { writer.commit(header) } noexcept -> std::same_as<Result<void>>;
    };

template <class T>
concept Transport = RequestReader<typename T::Reader> && ReplyWriter<typename T::Writer>;

}  // namespace fuse_backend::api
