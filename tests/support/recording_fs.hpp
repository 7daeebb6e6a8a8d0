// RecordingFs: a filesystem that implements every op by recording its decoded arguments and
// answering with canned values, so tests can check what the Server decoded and encoded.
//
// Layer: test support. Not thread-safe (one test thread). `fail_with` makes every op fail.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fuse_backend/api/filesystem.hpp>

namespace fuse_backend::testing {

struct RecordedCall {
  std::string op;
  api::InodeId inode{};
  std::optional<api::HandleId> handle;
  std::vector<std::uint64_t> numbers;  // the op's integer arguments, in signature order
  std::vector<std::string> names;      // its names / byte strings, in signature order
  std::uint32_t uid = 0, gid = 0, pid = 0, umask = 0;
  std::uint64_t unique = 0;
  std::vector<std::uint32_t> groups;
  bool interrupted = false;
};

class RecordingFs {
 public:
  std::vector<RecordedCall> calls;
  std::optional<std::errc> fail_with;
  std::uint64_t init_wants = ~std::uint64_t{0};
  std::uint64_t init_offered = 0;
  api::Entry entry = canned_entry();
  std::string file_data = "0123456789abcdef";
  std::string link_target = "target/of/link";
  std::string xattr_value = "xattr-value";
  std::vector<std::string> dir_names = {"a", "bb", "ccc"};
  int destroyed = 0;

  const RecordedCall& last() const { return calls.back(); }

  static api::Entry canned_entry() {
    api::Entry e;
    e.inode = api::InodeId{42};
    e.generation = 7;
    e.attr.st_ino = 42;
    e.attr.st_mode = S_IFREG | 0644;
    e.attr.st_size = 16;
    e.attr.st_nlink = 1;
    e.attr_timeout = std::chrono::milliseconds(1500);
    e.entry_timeout = std::chrono::seconds(2);
    return e;
  }

  Result<std::uint64_t> init(std::uint64_t offered) {
    init_offered = offered;
    return offered & init_wants;
  }
  void destroy() { ++destroyed; }
  Result<api::Entry> lookup(const api::Context& c, api::InodeId p, std::string_view n) { return answer(record(c, "lookup", p, {}, {n}), entry); }
  void forget(const api::Context& c, api::InodeId i, std::uint64_t n) { record(c, "forget", i, {n}); }
  void batch_forget(const api::Context& c, std::span<const api::ForgetOne> f) {
    auto& call = record(c, "batch_forget", {});
    for (auto one : f) {
      call.numbers.push_back(static_cast<std::uint64_t>(one.inode));
      call.numbers.push_back(one.nlookup);
    }
  }
  Result<api::AttrReply> getattr(const api::Context& c, api::InodeId i, std::optional<api::HandleId> h) {
    record(c, "getattr", i).handle = h;
    return answer(api::AttrReply{entry.attr, 0, entry.attr_timeout});
  }
  Result<api::AttrReply> setattr(const api::Context& c, api::InodeId i, const api::SetattrIn& in, std::optional<api::HandleId> h) {
    auto& call = record(c, "setattr", i, {in.valid, in.attr.st_mode, in.attr.st_uid, in.attr.st_gid,
                                          static_cast<std::uint64_t>(in.attr.st_size),
                                          static_cast<std::uint64_t>(in.attr.st_mtim.tv_sec),
                                          static_cast<std::uint64_t>(in.attr.st_mtim.tv_nsec)});
    call.handle = h;
    return answer(api::AttrReply{entry.attr, 0, entry.attr_timeout});
  }
  Result<std::size_t> readlink(const api::Context& c, api::InodeId i, std::span<char> out) {
    record(c, "readlink", i);
    if (fail_with) return fail(*fail_with);
    const auto n = std::min(out.size(), link_target.size());
    std::memcpy(out.data(), link_target.data(), n);
    return n;
  }
  Result<api::Entry> symlink(const api::Context& c, std::string_view t, api::InodeId p, std::string_view n) {
    return answer(record(c, "symlink", p, {}, {t, n}), entry);
  }
  Result<api::Entry> mknod(const api::Context& c, api::InodeId p, std::string_view n, std::uint32_t m, std::uint32_t r) {
    return answer(record(c, "mknod", p, {m, r}, {n}), entry);
  }
  Result<api::Entry> mkdir(const api::Context& c, api::InodeId p, std::string_view n, std::uint32_t m) {
    return answer(record(c, "mkdir", p, {m}, {n}), entry);
  }
  Result<void> unlink(const api::Context& c, api::InodeId p, std::string_view n) { return done(record(c, "unlink", p, {}, {n})); }
  Result<void> rmdir(const api::Context& c, api::InodeId p, std::string_view n) { return done(record(c, "rmdir", p, {}, {n})); }
  Result<void> rename(const api::Context& c, api::InodeId p, std::string_view o, api::InodeId np, std::string_view n, std::uint32_t f) {
    return done(record(c, "rename", p, {static_cast<std::uint64_t>(np), f}, {o, n}));
  }
  Result<api::Entry> link(const api::Context& c, api::InodeId i, api::InodeId np, std::string_view n) {
    return answer(record(c, "link", i, {static_cast<std::uint64_t>(np)}, {n}), entry);
  }
  Result<api::OpenReply> open(const api::Context& c, api::InodeId i, std::uint32_t f, std::uint32_t of) {
    record(c, "open", i, {f, of});
    return answer(api::OpenReply{api::HandleId{99}, abi::fopen::keep_cache, 0});
  }
  Result<api::CreateReply> create(const api::Context& c, api::InodeId p, std::string_view n, std::uint32_t m, std::uint32_t f) {
    record(c, "create", p, {m, f}, {n});
    return answer(api::CreateReply{entry, {api::HandleId{98}, abi::fopen::direct_io, 0}});
  }
  Result<api::CreateReply> tmpfile(const api::Context& c, api::InodeId p, std::uint32_t m, std::uint32_t f) {
    record(c, "tmpfile", p, {m, f});
    return answer(api::CreateReply{entry, {api::HandleId{97}, 0, 0}});
  }
  Result<std::size_t> read(const api::Context& c, api::InodeId i, api::HandleId h, api::ZeroCopyWriter& w,
                           std::uint32_t size, std::uint64_t off, std::uint32_t flags) {
    record(c, "read", i, {size, off, flags}).handle = h;
    if (fail_with) return fail(*fail_with);
    if (off >= file_data.size()) return std::size_t{0};
    const auto n = std::min<std::size_t>(size, file_data.size() - off);
    return w.write(std::as_bytes(std::span(file_data.data() + off, n)));
  }
  Result<std::size_t> write(const api::Context& c, api::InodeId i, api::HandleId h, api::ZeroCopyReader& r,
                            std::uint32_t size, std::uint64_t off, std::uint32_t write_flags,
                            std::uint32_t flags) {
    auto& call = record(c, "write", i, {size, off, write_flags, flags});
    call.handle = h;
    std::string data(r.remaining(), '\0');
    r.read(std::as_writable_bytes(std::span(data.data(), data.size())));
    call.names.push_back(data);
    if (fail_with) return fail(*fail_with);
    return data.size();
  }
  Result<void> flush(const api::Context& c, api::InodeId i, api::HandleId h, std::uint64_t o) { return handled(c, "flush", i, h, {o}); }
  Result<void> release(const api::Context& c, api::InodeId i, api::HandleId h, std::uint32_t f, std::uint32_t rf, std::uint64_t o) {
    return handled(c, "release", i, h, {f, rf, o});
  }
  Result<void> fsync(const api::Context& c, api::InodeId i, api::HandleId h, bool d) { return handled(c, "fsync", i, h, {d}); }
  Result<void> fallocate(const api::Context& c, api::InodeId i, api::HandleId h, std::uint32_t m, std::uint64_t o, std::uint64_t l) {
    return handled(c, "fallocate", i, h, {m, o, l});
  }
  Result<std::uint64_t> lseek(const api::Context& c, api::InodeId i, api::HandleId h, std::uint64_t o, std::uint32_t w) {
    record(c, "lseek", i, {o, w}).handle = h;
    return answer(o + 100);
  }
  Result<std::uint64_t> copy_file_range(const api::Context& c, api::InodeId i, api::HandleId hi, std::uint64_t oi,
                                        api::InodeId io, api::HandleId ho, std::uint64_t oo, std::uint64_t l, std::uint64_t f) {
    record(c, "copy_file_range", i, {static_cast<std::uint64_t>(hi), oi, static_cast<std::uint64_t>(io),
                                     static_cast<std::uint64_t>(ho), oo, l, f});
    return answer(l);
  }
  Result<api::IoctlReply> ioctl(const api::Context& c, api::InodeId i, api::HandleId h, std::uint32_t f, std::uint32_t cmd,
                                std::uint64_t arg, std::span<const std::byte> in, std::span<std::byte> out) {
    auto& call = record(c, "ioctl", i, {f, cmd, arg, out.size()});
    call.handle = h;
    call.names.emplace_back(reinterpret_cast<const char*>(in.data()), in.size());
    if (fail_with) return fail(*fail_with);
    for (std::size_t k = 0; k < out.size(); ++k) out[k] = std::byte{static_cast<unsigned char>(k)};
    return api::IoctlReply{5, out.size()};
  }
  Result<std::uint32_t> poll(const api::Context& c, api::InodeId i, api::HandleId h, std::uint64_t kh, std::uint32_t f, std::uint32_t e) {
    record(c, "poll", i, {kh, f, e}).handle = h;
    return answer(e & 1u);
  }
  Result<std::uint64_t> bmap(const api::Context& c, api::InodeId i, std::uint64_t b, std::uint32_t s) {
    record(c, "bmap", i, {b, s});
    return answer(b * 2);
  }
  Result<api::FileLock> getlk(const api::Context& c, api::InodeId i, api::HandleId h, std::uint64_t o, const api::FileLock& l, std::uint32_t f) {
    record(c, "getlk", i, {o, l.start, l.end, l.type, l.pid, f}).handle = h;
    return answer(api::FileLock{l.start, l.end, 2 /* F_UNLCK */, 0});
  }
  Result<void> setlk(const api::Context& c, api::InodeId i, api::HandleId h, std::uint64_t o, const api::FileLock& l,
                     std::uint32_t f, bool w) {
    return handled(c, "setlk", i, h, {o, l.start, l.end, l.type, l.pid, f, w});
  }
  Result<api::OpenReply> opendir(const api::Context& c, api::InodeId i, std::uint32_t f) {
    record(c, "opendir", i, {f});
    return answer(api::OpenReply{api::HandleId{77}, abi::fopen::cache_dir, 0});
  }
  Result<void> readdir(const api::Context& c, api::InodeId i, api::HandleId h, std::uint64_t off, api::DirSink& sink) {
    return list(c, "readdir", i, h, off, sink, false);
  }
  Result<void> readdirplus(const api::Context& c, api::InodeId i, api::HandleId h, std::uint64_t off, api::DirSink& sink) {
    return list(c, "readdirplus", i, h, off, sink, true);
  }
  Result<void> releasedir(const api::Context& c, api::InodeId i, api::HandleId h, std::uint32_t f) { return handled(c, "releasedir", i, h, {f}); }
  Result<void> fsyncdir(const api::Context& c, api::InodeId i, api::HandleId h, bool d) { return handled(c, "fsyncdir", i, h, {d}); }
  Result<struct statvfs> statfs(const api::Context& c, api::InodeId i) {
    record(c, "statfs", i);
    struct statvfs st {};
    st.f_blocks = 1000;
    st.f_bfree = 500;
    st.f_bavail = 400;
    st.f_files = 300;
    st.f_ffree = 200;
    st.f_bsize = 4096;
    st.f_namemax = 255;
    st.f_frsize = 4096;
    return answer(st);
  }
  Result<void> access(const api::Context& c, api::InodeId i, std::uint32_t m) { return done(record(c, "access", i, {m})); }
  Result<void> syncfs(const api::Context& c, api::InodeId i) { return done(record(c, "syncfs", i)); }
  Result<api::StatxReply> statx(const api::Context& c, api::InodeId i, std::optional<api::HandleId> h, std::uint32_t f, std::uint32_t m) {
    record(c, "statx", i, {f, m}).handle = h;
    api::StatxReply r;
    r.stx.stx_mask = m;
    r.stx.stx_ino = 42;
    r.stx.stx_size = 16;
    r.stx.stx_mode = S_IFREG | 0600;
    r.stx.stx_btime.tv_sec = 1234;
    r.timeout = std::chrono::seconds(3);
    return answer(r);
  }
  Result<void> setxattr(const api::Context& c, api::InodeId i, std::string_view n, std::span<const std::byte> v,
                        std::uint32_t f, std::uint32_t sf) {
    return done(record(c, "setxattr", i, {f, sf}, {n, std::string_view(reinterpret_cast<const char*>(v.data()), v.size())}));
  }
  Result<std::size_t> getxattr(const api::Context& c, api::InodeId i, std::string_view n, std::span<std::byte> v) {
    record(c, "getxattr", i, {v.size()}, {n});
    return copy_out(xattr_value, v);
  }
  Result<std::size_t> listxattr(const api::Context& c, api::InodeId i, std::span<char> v) {
    record(c, "listxattr", i, {v.size()});
    return copy_out(std::string("user.a\0user.b\0", 14), std::as_writable_bytes(v));
  }
  Result<void> removexattr(const api::Context& c, api::InodeId i, std::string_view n) { return done(record(c, "removexattr", i, {}, {n})); }
  void retrieve_reply(const api::Context& c, std::uint64_t nu, api::InodeId i, std::uint64_t off, api::ZeroCopyReader& r) {
    auto& call = record(c, "retrieve_reply", i, {nu, off});
    std::string data(r.remaining(), '\0');
    r.read(std::as_writable_bytes(std::span(data.data(), data.size())));
    call.names.push_back(data);
  }
  Result<void> setupmapping(const api::Context& c, api::InodeId i, api::HandleId h, std::uint64_t fo, std::uint64_t l,
                            std::uint64_t f, std::uint64_t wo, api::DaxMapper& m) {
    if (auto recorded = handled(c, "setupmapping", i, h, {fo, l, f, wo}); !recorded) return recorded;
    return m.map(wo, -1, fo, l, static_cast<std::uint32_t>(f));
  }
  Result<void> removemapping(const api::Context& c, std::uint64_t wo, std::uint64_t l, api::DaxMapper& m) {
    record(c, "removemapping", {}, {wo, l});
    return m.unmap(wo, l);
  }

 private:
  RecordedCall& record(const api::Context& c, std::string op, api::InodeId inode, std::vector<std::uint64_t> numbers = {},
                       std::vector<std::string_view> names = {}) {
    RecordedCall call{std::move(op), inode, std::nullopt, std::move(numbers), {}, c.uid, c.gid, c.pid, c.umask,
                      c.unique, {c.supplementary_groups.begin(), c.supplementary_groups.end()}, c.interrupted()};
    for (auto n : names) call.names.emplace_back(n);
    calls.push_back(std::move(call));
    return calls.back();
  }
  template <class V>
  Result<V> answer(V value) {
    if (fail_with) return fail(*fail_with);
    return value;
  }
  Result<api::Entry> answer(RecordedCall&, const api::Entry& e) { return answer(e); }
  Result<void> done(RecordedCall&) {
    if (fail_with) return fail(*fail_with);
    return {};
  }
  Result<void> handled(const api::Context& c, std::string op, api::InodeId i, api::HandleId h, std::vector<std::uint64_t> n) {
    auto& call = record(c, std::move(op), i, std::move(n));
    call.handle = h;
    return done(call);
  }
  Result<std::size_t> copy_out(const std::string& value, std::span<std::byte> out) {
    if (fail_with) return fail(*fail_with);
    if (out.empty()) return value.size();
    if (out.size() < value.size()) return fail(std::errc::result_out_of_range);
    std::memcpy(out.data(), value.data(), value.size());
    return value.size();
  }
  Result<void> list(const api::Context& c, std::string op, api::InodeId i, api::HandleId h, std::uint64_t off,
                    api::DirSink& sink, bool plus) {
    record(c, std::move(op), i, {off}).handle = h;
    if (fail_with) return fail(*fail_with);
    for (std::size_t k = off; k < dir_names.size(); ++k) {
      const api::DirEntry d{100 + k, k + 1, 8 /* DT_REG */, dir_names[k]};
      if (!sink.fits(d.name)) break;
      if (plus ? !sink.add(d, entry) : !sink.add(d)) break;
    }
    return {};
  }
};

}  // namespace fuse_backend::testing
