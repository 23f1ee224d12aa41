// presence/common/result.h: the one expected-style result across room boundaries (issue 12).
#include <doctest/doctest.h>

#include <string>

#include "presence/common/result.h"

using presence::common::Result;

TEST_CASE("Result<T>: a default or success() is ok with its value; fail() is not, with its error") {
  Result<int> d;
  CHECK(d.ok());
  CHECK(d.value == 0);
  const auto s = Result<int>::success(7);
  CHECK(s.ok());
  CHECK(static_cast<bool>(s));
  CHECK(s.value == 7);
  const auto f = Result<int>::fail("no such device");
  CHECK_FALSE(f.ok());
  CHECK_FALSE(static_cast<bool>(f));
  CHECK(f.error == "no such device");
}

TEST_CASE("Result: a failure with an empty message is still a failure (no 'empty string = OK')") {
  CHECK_FALSE(Result<void>::fail("").ok());
  CHECK_FALSE(Result<std::string>::fail("").ok());
  CHECK(Result<void>::success().ok());
  CHECK(Result<void>{}.ok());
}

TEST_CASE("Result<T, E>: another error type (the API's carries an HTTP status)") {
  struct HttpError {
    int status = 0;
    std::string message;
  };
  const auto f = Result<std::string, HttpError>::fail({404, "not found"});
  CHECK_FALSE(f.ok());
  CHECK(f.error.status == 404);
  CHECK(f.value.empty());
}
