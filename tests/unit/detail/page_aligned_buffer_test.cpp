// PageAlignedBuffer starts on a page boundary at every size (a std::vector of the channel's
// sizes does not, which is why the /dev/fuse channel uses it) and holds all of its bytes.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include <gtest/gtest.h>

#include <fuse_backend/detail/page_aligned_buffer.hpp>

namespace {

using fuse_backend::detail::PageAlignedBuffer;

TEST(PageAlignedBuffer, StartsOnAPageBoundaryAndHoldsEveryByte) {
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  for (std::size_t size : {std::size_t{1}, page, 2 * page + 16, std::size_t{1} << 20, (std::size_t{1} << 20) + page}) {
    PageAlignedBuffer buffer(size);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(buffer.data()) % page, 0u) << size;
    EXPECT_EQ(buffer.size(), size);
    EXPECT_EQ(buffer.span().data(), buffer.data());
    EXPECT_EQ(buffer.span().size(), size);
    std::memset(buffer.data(), 0x5a, size);  // AddressSanitizer checks the whole range is ours
    EXPECT_EQ(buffer.data()[size - 1], std::byte{0x5a});
  }
}

TEST(PageAlignedBuffer, MovesWithoutCopyingTheBytes) {
  PageAlignedBuffer first(8192);
  std::byte* const bytes = first.data();
  PageAlignedBuffer second(std::move(first));
  EXPECT_EQ(second.data(), bytes);
  EXPECT_EQ(second.size(), 8192u);
}

}  // namespace
