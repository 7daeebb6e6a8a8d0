// Guest memory: region table checks, user-address translation and fd mappings.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <fuse_backend/transport/virtio/guest_memory.hpp>

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>

#include <fuse_backend/detail/syscall.hpp>
#include <fuse_backend/detail/unique_fd.hpp>

namespace fuse_backend::transport::virtio {
namespace {

// One mmap of an fd, unmapped (and the fd closed) with the last snapshot that uses it.
class Mapping {
 public:
  Mapping(void* base, std::size_t length, detail::UniqueFd fd) noexcept
      : base_(base), length_(length), fd_(std::move(fd)) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { ::munmap(base_, length_); }

  std::byte* bytes() const noexcept { return static_cast<std::byte*>(base_); }
  int fd() const noexcept { return fd_.get(); }

 private:
  void* base_;
  std::size_t length_;
  detail::UniqueFd fd_;
};

// Maps [offset, offset + size) of `fd` shared and read-write. mmap needs a page-aligned file
// offset while vhost-user's mmap_offset need not be one, so the mapping starts at the page
// below; the returned pointer is that of byte `offset`. For a file (memfd, hugetlbfs, shm) the
// range must lie inside it: mmap maps past the end without complaint, and the first access
// there would kill the process with SIGBUS.
Result<std::pair<std::shared_ptr<Mapping>, std::byte*>> map_fd(detail::UniqueFd fd, std::uint64_t size,
                                                              std::uint64_t offset) noexcept {
  if (!fd || size == 0) return fail(std::errc::invalid_argument);
  const long page = ::sysconf(_SC_PAGESIZE);
  const std::uint64_t page_size = page > 0 ? static_cast<std::uint64_t>(page) : 4096;
  const std::uint64_t aligned = offset - offset % page_size;
  const std::uint64_t lead = offset - aligned;
  if (size > SIZE_MAX - lead || aligned > static_cast<std::uint64_t>(INT64_MAX))
    return fail(std::errc::invalid_argument);
  const std::size_t length = static_cast<std::size_t>(size + lead);
  struct stat st {};
  if (auto stat = detail::syscall_void([&] { return ::fstat(fd.get(), &st); }); !stat) return fail(stat.error());
  if (S_ISREG(st.st_mode) && (offset > static_cast<std::uint64_t>(st.st_size) ||
                              size > static_cast<std::uint64_t>(st.st_size) - offset)) {
    return fail(std::errc::invalid_argument);
  }
  void* base = MAP_FAILED;
  auto mapped = detail::syscall_result([&] {
    base = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd.get(),
                  static_cast<off_t>(aligned));
    return base == MAP_FAILED ? -1L : 0L;
  });
  if (!mapped) return fail(mapped.error());
  try {
    auto mapping = std::make_shared<Mapping>(base, length, std::move(fd));
    std::byte* at = mapping->bytes() + lead;
    return std::pair{std::move(mapping), at};
  } catch (...) {
    ::munmap(base, length);
    return fail(std::errc::not_enough_memory);
  }
}

}  // namespace

Result<GuestRegion> map_region(int fd, std::uint64_t guest_addr, std::uint64_t size,
                               std::uint64_t user_addr, std::uint64_t mmap_offset) noexcept {
  auto mapped = map_fd(detail::UniqueFd(fd), size, mmap_offset);
  if (!mapped) return fail(mapped.error());
  GuestRegion region;
  region.guest_addr = guest_addr;
  region.size = size;
  region.host = mapped->second;
  region.user_addr = user_addr;
  region.fd = mapped->first->fd();
  region.mmap_offset = mmap_offset;
  region.owner = std::move(mapped->first);
  return region;
}

Result<std::shared_ptr<DirtyLog>> DirtyLog::map(int fd, std::uint64_t size, std::uint64_t offset) noexcept {
  auto mapped = map_fd(detail::UniqueFd(fd), size, offset);
  if (!mapped) return fail(mapped.error());
  try {
    std::span<std::byte> bitmap(mapped->second, static_cast<std::size_t>(size));
    return std::make_shared<DirtyLog>(bitmap, std::move(mapped->first));
  } catch (...) {
    return fail(std::errc::not_enough_memory);
  }
}

Result<GuestMemory> GuestMemory::create(std::vector<GuestRegion> regions) noexcept {
  for (const GuestRegion& region : regions) {
    if (region.size == 0 || region.host == nullptr || region.size - 1 > UINT64_MAX - region.guest_addr ||
        (region.user_addr && region.size - 1 > UINT64_MAX - *region.user_addr))
      return fail(std::errc::invalid_argument);
  }
  std::sort(regions.begin(), regions.end(),
            [](const GuestRegion& a, const GuestRegion& b) { return a.guest_addr < b.guest_addr; });
  for (std::size_t i = 0; i < regions.size(); ++i) {
    for (std::size_t j = i + 1; j < regions.size(); ++j) {
      const GuestRegion& a = regions[i];
      const GuestRegion& b = regions[j];
      // Sizes are compared as "last byte" to stay exact for a region ending at UINT64_MAX.
      const bool guest_overlap = b.guest_addr <= a.guest_addr + (a.size - 1);
      const bool user_overlap = a.user_addr && b.user_addr &&
                                *a.user_addr <= *b.user_addr + (b.size - 1) &&
                                *b.user_addr <= *a.user_addr + (a.size - 1);
      if (guest_overlap || user_overlap) return fail(std::errc::invalid_argument);
    }
  }
  return GuestMemory(std::move(regions), nullptr);
}

Result<GuestMemory> GuestMemory::with_region(GuestRegion region) const noexcept {
  try {
    std::vector<GuestRegion> regions = regions_;
    regions.push_back(std::move(region));
    auto memory = create(std::move(regions));
    if (!memory) return memory;
    memory->log_ = log_;
    return memory;
  } catch (...) {
    return fail(std::errc::not_enough_memory);
  }
}

Result<GuestMemory> GuestMemory::without_region(std::uint64_t guest_addr, std::uint64_t size) const noexcept {
  try {
    std::vector<GuestRegion> regions = regions_;
    auto it = std::find_if(regions.begin(), regions.end(), [&](const GuestRegion& region) {
      return region.guest_addr == guest_addr && region.size == size;
    });
    if (it == regions.end()) return fail(std::errc::no_such_file_or_directory);
    regions.erase(it);
    return GuestMemory(std::move(regions), log_);
  } catch (...) {
    return fail(std::errc::not_enough_memory);
  }
}

GuestMemory GuestMemory::with_dirty_log(std::shared_ptr<const DirtyLog> log) const noexcept {
  // Copying the region table of at most a few dozen entries; bad_alloc here is fatal anyway.
  return GuestMemory(regions_, std::move(log));
}

Result<std::span<std::byte>> GuestMemory::translate_user(std::uint64_t uva, std::uint64_t len) const noexcept {
  for (const GuestRegion& region : regions_) {
    if (region.user_addr && GuestRegion::contains(*region.user_addr, region.size, uva, len) &&
        uva - *region.user_addr < region.size)
      return std::span<std::byte>(region.host + (uva - *region.user_addr), len);
  }
  return fail(std::errc::bad_address);
}

Result<std::uint64_t> GuestMemory::user_to_guest(std::uint64_t uva) const noexcept {
  for (const GuestRegion& region : regions_) {
    if (region.user_addr && uva >= *region.user_addr && uva - *region.user_addr < region.size)
      return region.guest_addr + (uva - *region.user_addr);
  }
  return fail(std::errc::bad_address);
}

}  // namespace fuse_backend::transport::virtio
