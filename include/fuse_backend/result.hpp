// fuse_backend::Result<T>: a T or an errno value (std::errc), the error type of the whole library.
//
// Layer: below everything. Spelled like std::expected (has_value, operator bool, *, ->, error(),
// value_or) without using <expected>, which clang 14 (the fuzzing compiler) cannot compile.
// Result<T> is trivially copyable whenever T is, so it is returned in registers on the request
// path; that is why the storage is a base specialised on triviality (clang 14 lacks conditionally
// trivial special members). Errors are std::errc because their values are errno values, which is
// what the FUSE wire carries. Never throws.
//
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#pragma once

#include <cerrno>
#include <memory>
#include <new>
#include <system_error>
#include <type_traits>
#include <utility>

namespace fuse_backend {

// Tag to build an error: `return fail(std::errc::no_such_file_or_directory);`
struct Failure {
  std::errc code;
};
[[nodiscard]] constexpr Failure fail(std::errc code) noexcept { return {code}; }
// The current errno as a failure (EIO if errno is somehow 0).
[[nodiscard]] inline Failure fail_errno() noexcept {
  return {static_cast<std::errc>(errno != 0 ? errno : EIO)};
}

namespace detail {

template <class T, bool = std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>>
struct ResultStorage {
  union {
    T value_;
    std::errc error_;
  };
  bool ok_;

  template <class... Args>
  constexpr explicit ResultStorage(std::in_place_t, Args&&... args)
      : value_(std::forward<Args>(args)...), ok_(true) {}
  constexpr explicit ResultStorage(Failure f) noexcept : error_(f.code), ok_(false) {}
};

template <class T>
struct ResultStorage<T, false> {
  union {
    T value_;
    std::errc error_;
  };
  bool ok_;

  template <class... Args>
  explicit ResultStorage(std::in_place_t, Args&&... args)
      : value_(std::forward<Args>(args)...), ok_(true) {}
  explicit ResultStorage(Failure f) noexcept : error_(f.code), ok_(false) {}
  ResultStorage(const ResultStorage& other) : ok_(other.ok_) { copy_from(other); }
  ResultStorage(ResultStorage&& other) noexcept : ok_(other.ok_) { move_from(other); }
  ResultStorage& operator=(const ResultStorage& other) {
    if (this != &other) {
      destroy();
      ok_ = other.ok_;
      copy_from(other);
    }
    return *this;
  }
  ResultStorage& operator=(ResultStorage&& other) noexcept {
    if (this != &other) {
      destroy();
      ok_ = other.ok_;
      move_from(other);
    }
    return *this;
  }
  ~ResultStorage() { destroy(); }

 private:
  void copy_from(const ResultStorage& other) {
    if (ok_)
      std::construct_at(&value_, other.value_);
    else
      error_ = other.error_;
  }
  void move_from(ResultStorage& other) noexcept {
    if (ok_)
      std::construct_at(&value_, std::move(other.value_));
    else
      error_ = other.error_;
  }
  void destroy() noexcept {
    if (ok_) std::destroy_at(&value_);
  }
};

}  // namespace detail

template <class T>
class [[nodiscard]] Result : private detail::ResultStorage<T> {
  using Storage = detail::ResultStorage<T>;

 public:
  using value_type = T;

  template <class U = T>
    requires std::is_constructible_v<T, U&&>
  constexpr Result(U&& value) : Storage(std::in_place, std::forward<U>(value)) {}
  template <class... Args>
  constexpr explicit Result(std::in_place_t, Args&&... args)
      : Storage(std::in_place, std::forward<Args>(args)...) {}
  constexpr Result(Failure f) noexcept : Storage(f) {}

  constexpr bool has_value() const noexcept { return this->ok_; }
  constexpr explicit operator bool() const noexcept { return this->ok_; }
  constexpr T& operator*() & noexcept { return this->value_; }
  constexpr const T& operator*() const& noexcept { return this->value_; }
  constexpr T&& operator*() && noexcept { return std::move(this->value_); }
  constexpr T* operator->() noexcept { return &this->value_; }
  constexpr const T* operator->() const noexcept { return &this->value_; }
  constexpr T& value() & noexcept { return this->value_; }
  constexpr const T& value() const& noexcept { return this->value_; }
  constexpr std::errc error() const noexcept { return this->error_; }
  // The error as an errno value; 0 when there is a value.
  constexpr int error_number() const noexcept { return this->ok_ ? 0 : static_cast<int>(this->error_); }
  template <class U>
  constexpr T value_or(U&& fallback) const& {
    return this->ok_ ? this->value_ : static_cast<T>(std::forward<U>(fallback));
  }
};

template <>
class [[nodiscard]] Result<void> {
 public:
  using value_type = void;

  constexpr Result() noexcept = default;
  constexpr Result(Failure f) noexcept : error_(f.code), ok_(false) {}

  constexpr bool has_value() const noexcept { return ok_; }
  constexpr explicit operator bool() const noexcept { return ok_; }
  constexpr std::errc error() const noexcept { return error_; }
  constexpr int error_number() const noexcept { return ok_ ? 0 : static_cast<int>(error_); }

 private:
  std::errc error_{};
  bool ok_ = true;
};

// A Result<void> from a syscall-style return value (-1 and errno on failure).
[[nodiscard]] inline Result<void> check_errno(long rc) noexcept {
  if (rc < 0) return fail_errno();
  return {};
}

}  // namespace fuse_backend
