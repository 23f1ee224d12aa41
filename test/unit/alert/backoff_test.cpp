#include "presence/alert/backoff.h"

#include <doctest/doctest.h>

using namespace presence::alert;
using std::chrono::milliseconds;
using std::chrono::seconds;

TEST_CASE("exponential schedule without jitter, capped at max (T-1, T, T+1)") {
  BackoffConfig c;
  c.initial = milliseconds(100);
  c.max = milliseconds(1600);
  c.multiplier = 2.0;
  c.jitter = 0.0;
  CHECK(backoff_delay(c, 1, 0.5) == milliseconds(100));
  CHECK(backoff_delay(c, 2, 0.5) == milliseconds(200));
  CHECK(backoff_delay(c, 3, 0.5) == milliseconds(400));
  CHECK(backoff_delay(c, 4, 0.5) == milliseconds(800));
  CHECK(backoff_delay(c, 5, 0.5) == milliseconds(1600));     // reaches the cap exactly
  CHECK(backoff_delay(c, 6, 0.5) == milliseconds(1600));     // stays there
  CHECK(backoff_delay(c, 1000, 0.5) == milliseconds(1600));  // no overflow
  CHECK(backoff_delay(c, 0, 0.5) == milliseconds(100));
}

TEST_CASE("jitter takes off at most jitter * delay, never adds") {
  BackoffConfig c;
  c.initial = milliseconds(1000);
  c.max = seconds(300);
  c.jitter = 0.2;
  CHECK(backoff_delay(c, 1, 0.0) == milliseconds(1000));
  CHECK(backoff_delay(c, 1, 0.5) == milliseconds(900));
  CHECK(backoff_delay(c, 1, 0.999999) == milliseconds(800));
  CHECK(backoff_delay(c, 3, 1.0) == milliseconds(3200));
  // Out-of-range random and config values are clamped.
  CHECK(backoff_delay(c, 1, 7.0) == milliseconds(800));
  c.jitter = 5.0;
  CHECK(backoff_delay(c, 1, 0.5) == milliseconds(500));
  // At the cap, jitter still spreads retries below it.
  c.jitter = 0.2;
  CHECK(backoff_delay(c, 30, 1.0) == milliseconds(240'000));
}

TEST_CASE("Retry-After: delay-seconds, HTTP-date, garbage") {
  const std::time_t now = 1'445'412'480;  // Wed, 21 Oct 2015 07:28:00 GMT
  CHECK(parse_retry_after("120", now) == seconds(120));
  CHECK(parse_retry_after(" 5 \r\n", now) == seconds(5));
  CHECK(parse_retry_after("0", now) == seconds(0));
  CHECK(parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now) == seconds(30));
  CHECK(parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now) == seconds(0));  // past
  CHECK_FALSE(parse_retry_after("", now).has_value());
  CHECK_FALSE(parse_retry_after("soon", now).has_value());
  CHECK_FALSE(parse_retry_after("-5", now).has_value());
  CHECK(parse_retry_after("99999999999999999999", now).has_value());  // huge: capped by caller
}
