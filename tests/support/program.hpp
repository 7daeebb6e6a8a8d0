// Starting the example programs from tests: spawn one with its output in files, or run it to
// completion and collect its exit status and output.
//
// Layer: tests/support. Output goes to files, never pipes: a daemon that logs (e.g. --debug)
// must never block on a pipe nobody drains. run_program() kills a program that outlives its
// timeout (ChildGuard), so a hang fails the test instead of stalling it.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <support/files.hpp>
#include <support/mount_guard.hpp>
#include <support/temp_dir.hpp>

extern char** environ;

namespace fuse_backend::testing {

// Starts `binary` with `args`; stdout / stderr go to the files named (inherited when empty),
// stdin is /dev/null (a tool that would ask a terminal, e.g. mv before replacing a read-only
// file, never waits for an answer). Returns the pid, or -1 (with a test failure) when it
// cannot start.
inline pid_t spawn_program(const std::string& binary, const std::vector<std::string>& args,
                           const std::string& out_path = {}, const std::string& err_path = {}) {
  std::vector<char*> argv{const_cast<char*>(binary.c_str())};
  for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  constexpr int flags = O_WRONLY | O_CREAT | O_TRUNC;
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (!out_path.empty()) posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(), flags, 0644);
  if (!err_path.empty()) posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(), flags, 0644);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(rc, 0) << "cannot start " << binary << ": " << std::strerror(rc);
  return rc == 0 ? pid : -1;
}

struct ProgramRun {
  int status = -1;  // wait status; -1 when it did not end within the timeout (it was killed)
  std::string out;
  std::string err;
};

inline bool exited_with(int status, int code) { return WIFEXITED(status) && WEXITSTATUS(status) == code; }

// Runs `binary` with `args` to completion, at most `timeout_ms`.
inline ProgramRun run_program(const std::string& binary, const std::vector<std::string>& args,
                              int timeout_ms = 10'000) {
  TempDir logs("fuse_backend_program_logs");
  const std::string out = logs.str() + "/out", err = logs.str() + "/err";
  ChildGuard child(spawn_program(binary, args, out, err));
  ProgramRun run;
  if (const auto status = child.wait_for(timeout_ms)) run.status = *status;
  run.out = read_file(out);
  run.err = read_file(err);
  return run;
}

}  // namespace fuse_backend::testing
