# Install rules and the CMake package `fuse_backend` (included by the top-level CMakeLists.txt when
# FUSE_BACKEND_INSTALL is on).
#
# Installs the static library, the public headers (the FILE_SET, so the tree under
# include/fuse_backend is kept), fuse_backend-targets.cmake exporting fuse_backend::fuse_backend,
# fuse_backend-config.cmake (finds Threads and fmt for the consumer) and
# fuse_backend-config-version.cmake. tests/package builds a consumer against the result.
#
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(FUSE_BACKEND_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/fuse_backend"
    CACHE STRING "Where fuse_backend-config.cmake is installed, relative to the prefix")

install(TARGETS fuse_backend
        EXPORT fuse_backend-targets
        ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT fuse_backend_development
        FILE_SET HEADERS DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
                         COMPONENT fuse_backend_development)

install(EXPORT fuse_backend-targets
        NAMESPACE fuse_backend::
        DESTINATION "${FUSE_BACKEND_INSTALL_CMAKEDIR}"
        COMPONENT fuse_backend_development)

configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/fuse_backend-config.cmake.in"
  "${PROJECT_BINARY_DIR}/fuse_backend-config.cmake"
  INSTALL_DESTINATION "${FUSE_BACKEND_INSTALL_CMAKEDIR}")
# 0.x: a minor release may break the API, so only the same minor version is compatible.
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/fuse_backend-config-version.cmake"
  COMPATIBILITY SameMinorVersion)

install(FILES "${PROJECT_BINARY_DIR}/fuse_backend-config.cmake"
              "${PROJECT_BINARY_DIR}/fuse_backend-config-version.cmake"
        DESTINATION "${FUSE_BACKEND_INSTALL_CMAKEDIR}"
        COMPONENT fuse_backend_development)
install(FILES "${PROJECT_SOURCE_DIR}/LICENSE-APACHE" "${PROJECT_SOURCE_DIR}/LICENSE-BSD-3-Clause"
        DESTINATION "${CMAKE_INSTALL_DATADIR}/doc/fuse_backend"
        COMPONENT fuse_backend_development)
