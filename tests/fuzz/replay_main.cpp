// Replay driver for the fuzz targets when they are built without libFuzzer (g++, or clang
// without FUSE_BACKEND_FUZZ): feeds every file named on the command line, and every regular
// file under each named directory (recursively, in sorted order so runs are repeatable), to
// LLVMFuzzerTestOneInput once. ctest runs each NAME_fuzz this way over tests/fuzz/corpus/NAME,
// so the seed corpus and every crash input added to it stay regression tests, also under
// ASan/UBSan.
//
// Exit status: 0 after replaying at least one input; 1 when a path is missing or unreadable or
// nothing was replayed (an empty corpus would make the test pass without testing anything).
// A failing input crashes or aborts the process, which is what fails the test.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
// Optional in a target, as with libFuzzer.
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace {

namespace fs = std::filesystem;

bool collect(const fs::path& path, std::vector<fs::path>& inputs) {
  std::error_code error;
  if (fs::is_regular_file(path, error)) {
    inputs.push_back(path);
    return true;
  }
  if (!fs::is_directory(path, error)) {
    std::fprintf(stderr, "replay: %s: not a file or directory\n", path.c_str());
    return false;
  }
  std::vector<fs::path> found;
  for (fs::recursive_directory_iterator it(path, error), end; !error && it != end;
       it.increment(error)) {
    if (it->is_regular_file(error)) found.push_back(it->path());
  }
  if (error) {
    std::fprintf(stderr, "replay: %s: %s\n", path.c_str(), error.message().c_str());
    return false;
  }
  std::sort(found.begin(), found.end());
  inputs.insert(inputs.end(), found.begin(), found.end());
  return true;
}

// A fresh heap block of exactly the file's size, so ASan sees any read past the input's end;
// never null, even when empty, as with libFuzzer.
std::unique_ptr<char[]> read_file(const fs::path& path, std::size_t& size) {
  std::error_code error;
  size = fs::file_size(path, error);
  if (error) return nullptr;
  auto bytes = std::make_unique<char[]>(size);
  std::ifstream in(path, std::ios::binary);
  const auto wanted = static_cast<std::streamsize>(size);
  if (!in.read(bytes.get(), wanted) || in.gcount() != wanted) return nullptr;
  return bytes;
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);

  std::vector<fs::path> inputs;
  bool ok = true;
  for (int i = 1; i < argc; ++i) ok = collect(argv[i], inputs) && ok;

  for (const auto& input : inputs) {
    std::size_t size = 0;
    const auto bytes = read_file(input, size);
    if (bytes == nullptr) {
      std::fprintf(stderr, "replay: cannot read %s\n", input.c_str());
      return 1;
    }
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.get()), size);
  }
  std::printf("replayed %zu input%s\n", inputs.size(), inputs.size() == 1 ? "" : "s");
  if (inputs.empty()) std::fprintf(stderr, "replay: no inputs: commit a seed corpus\n");
  return ok && !inputs.empty() ? 0 : 1;
}
