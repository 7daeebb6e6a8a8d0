// eventually(condition): polls `condition` every millisecond for up to 10 s; whether it came
// true. For tests that wait on another thread or process (frequent looks catch a state the
// other side passes through quickly).
//
// Layer: tests/support.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <chrono>
#include <thread>

namespace fuse_backend::testing {

template <typename Condition>
bool eventually(Condition condition) {
  for (int i = 0; i < 10000; ++i) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return condition();
}

}  // namespace fuse_backend::testing
