// The one expected-style result across room boundaries (docs/architecture.md "Errors"; STYLE.md
// habit 7; issue 12 step 6). C++20 has no std::expected. A function another room calls returns
// its failure as a value: Result<T> (a value or an error), Result<void> for "done or why not".
// The error type defaults to a message for a person; the API's Result<T> carries an ApiError
// (HTTP status, code, message) instead: api::Result<T> = common::Result<T, api::ApiError>.
//
//   common::Result<void> start();            // caller: if (auto r = x.start(); !r.ok()) log(r.error)
//   return common::Result<void>::fail("cannot bind 127.0.0.1:9188");
//
// ok() is a flag set only by fail(): an empty message is still a failure, a default-constructed
// Result is a success (T value-initialised), so a handler can fill `value` and return it. An
// aggregate on purpose: `return {page, {}}` is a success too.
#pragma once

#include <string>
#include <utility>

namespace presence::common {

template <class T, class E = std::string>
struct Result {
  T value{};
  E error{};
  bool failed = false;  // set by fail()

  bool ok() const { return !failed; }
  explicit operator bool() const { return ok(); }

  static Result success(T v) {
    Result r;
    r.value = std::move(v);
    return r;
  }
  static Result fail(E e) {
    Result r;
    r.error = std::move(e);
    r.failed = true;
    return r;
  }
};

template <class E>
struct Result<void, E> {
  E error{};
  bool failed = false;  // set by fail()

  bool ok() const { return !failed; }
  explicit operator bool() const { return ok(); }

  static Result success() { return Result{}; }
  static Result fail(E e) {
    Result r;
    r.error = std::move(e);
    r.failed = true;
    return r;
  }
};

}  // namespace presence::common
