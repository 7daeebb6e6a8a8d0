# Script behind the ctest `package_consumer` (see CMakeLists.txt beside it):
#   cmake -DBUILD_DIR=... -DCONFIG=... -DWORK_DIR=... -DCONSUMER_DIR=... -DGENERATOR=...
#         -DCXX_COMPILER=... -DCXX_FLAGS=... -DEXE_LINKER_FLAGS=... -P run_consumer.cmake
# Starts from an empty WORK_DIR each time so a stale install can never make it pass.
#
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
cmake_minimum_required(VERSION 3.25)

set(prefix "${WORK_DIR}/prefix")
set(consumer_build "${WORK_DIR}/consumer-build")
file(REMOVE_RECURSE "${WORK_DIR}")

function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE status)
  if(NOT status EQUAL 0)
    list(JOIN ARGV " " command)
    message(FATAL_ERROR "failed (${status}): ${command}")
  endif()
endfunction()

run("${CMAKE_COMMAND}" --install "${BUILD_DIR}" --config "${CONFIG}" --prefix "${prefix}")
# Only the package's own directory is searched: no system copy, no build tree.
run("${CMAKE_COMMAND}" -S "${CONSUMER_DIR}" -B "${consumer_build}" -G "${GENERATOR}"
    "-DCMAKE_BUILD_TYPE=${CONFIG}"
    "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
    "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
    "-DCMAKE_EXE_LINKER_FLAGS=${EXE_LINKER_FLAGS}"
    "-DCMAKE_PREFIX_PATH=${prefix}"
    -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON)
run("${CMAKE_COMMAND}" --build "${consumer_build}" --config "${CONFIG}")
run("${consumer_build}/fuse_backend_consumer")
