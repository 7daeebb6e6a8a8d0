// metadata_ops: times one phase of the metadata workload of bench/compare.sh on a directory.
//
//   metadata_ops create|stat|readdir|unlink DIR COUNT
//
// Works on the files DIR/f0000000 .. DIR/f<COUNT-1>: `create` makes them (empty, O_EXCL),
// `stat` stats each, `readdir` lists DIR (and checks that all COUNT are there), `unlink` removes
// them. Prints one line "PHASE OPS SECONDS" on stdout, timed with CLOCK_MONOTONIC around the
// system calls only (process start-up is not counted), and exits 1 on any failure with one line
// on stderr. Phases are separate runs so that compare.sh can drop the kernel's caches between
// them (a stat after a drop makes a FUSE daemon answer a LOOKUP per file).
//
// Not built by CMake (bench/*_bench.cpp are Google Benchmark programs): compare.sh compiles it
// with `g++ -O2 -std=c++20`, like the libfuse example it compares against.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace {

int failed(const char* what, const std::string& path) {
  std::fprintf(stderr, "metadata_ops: %s %s: %s\n", what, path.c_str(), std::strerror(errno));
  return 1;
}

std::string file_name(const std::string& dir, unsigned long i) {
  char name[32];
  std::snprintf(name, sizeof name, "/f%07lu", i);
  return dir + name;
}

// Runs `op(i)` for every file; returns the seconds taken, or a negative value when one failed.
template <class Op>
double timed(unsigned long count, Op op) {
  const auto start = std::chrono::steady_clock::now();
  for (unsigned long i = 0; i < count; ++i) {
    if (!op(i)) return -1;
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  unsigned long count = 0;
  if (argc != 4 || std::from_chars(argv[3], argv[3] + std::strlen(argv[3]), count).ec != std::errc{} ||
      count == 0) {
    std::fprintf(stderr, "usage: metadata_ops create|stat|readdir|unlink DIR COUNT\n");
    return 1;
  }
  const std::string_view phase = argv[1];
  const std::string dir = argv[2];
  double seconds = -1;
  std::string failed_path;
  const auto fail_at = [&](const std::string& path) {
    failed_path = path;
    return false;
  };

  if (phase == "create") {
    seconds = timed(count, [&](unsigned long i) {
      const std::string path = file_name(dir, i);
      const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      return fd >= 0 ? ::close(fd) == 0 : fail_at(path);
    });
  } else if (phase == "stat") {
    seconds = timed(count, [&](unsigned long i) {
      const std::string path = file_name(dir, i);
      struct stat st {};
      return ::stat(path.c_str(), &st) == 0 ? true : fail_at(path);
    });
  } else if (phase == "readdir") {
    unsigned long seen = 0;
    seconds = timed(1, [&](unsigned long) {
      DIR* stream = ::opendir(dir.c_str());
      if (stream == nullptr) return fail_at(dir);
      errno = 0;
      while (const dirent* entry = ::readdir(stream)) seen += entry->d_name[0] == 'f' ? 1 : 0;
      const bool ok = errno == 0;
      ::closedir(stream);
      return ok ? true : fail_at(dir);
    });
    if (seconds >= 0 && seen != count) {
      std::fprintf(stderr, "metadata_ops: readdir %s: %lu files listed, %lu expected\n",
                   dir.c_str(), seen, count);
      return 1;
    }
  } else if (phase == "unlink") {
    seconds = timed(count, [&](unsigned long i) {
      const std::string path = file_name(dir, i);
      return ::unlink(path.c_str()) == 0 ? true : fail_at(path);
    });
  } else {
    std::fprintf(stderr, "metadata_ops: unknown phase '%s'\n", argv[1]);
    return 1;
  }
  if (seconds < 0) return failed(argv[1], failed_path);
  // readdir is one listing of COUNT entries: report entries, like the other phases report files.
  std::printf("%s %lu %.6f\n", argv[1], count, seconds);
  return 0;
}
