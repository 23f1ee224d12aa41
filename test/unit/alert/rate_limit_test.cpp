// presence/alert/rate_limit.h: the sliding window at its boundaries, on a simulated clock.
#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

#include "presence/alert/rate_limit.h"

using namespace presence::alert;
using namespace std::chrono_literals;
using TP = RateWindow::TimePoint;

TEST_CASE("rate window: max_requests at once, the next exactly one window after the first") {
  RateWindow w({3, 1000ms});
  const TP t0{std::chrono::seconds(100)};
  for (int i = 0; i < 3; ++i) {
    CHECK(w.earliest(t0) == t0);
    w.record(t0 + std::chrono::milliseconds(i));  // 3 requests at t0, t0+1, t0+2
  }
  // The 4th must wait until the first leaves the window: T = t0 + 1000 ms.
  CHECK(w.earliest(t0 + 999ms) == t0 + 1000ms);  // T-1: still full
  CHECK(w.earliest(t0 + 1000ms) == t0 + 1000ms);  // T: allowed
  w.record(t0 + 1000ms);
  // Now t0+1, t0+2, t0+1000 are in the window: the next waits for t0+1 to leave.
  CHECK(w.earliest(t0 + 1000ms) == t0 + 1001ms);
  CHECK(w.earliest(t0 + 1001ms) == t0 + 1001ms);  // T+1 of the first window's second request
  CHECK(w.in_window(t0 + 1001ms) == 2);
}

TEST_CASE("rate window: 0 = unlimited; a quiet period empties the window") {
  RateWindow unlimited({0, 1000ms});
  const TP t0{std::chrono::seconds(5)};
  for (int i = 0; i < 1000; ++i) unlimited.record(t0);
  CHECK(unlimited.earliest(t0) == t0);

  RateWindow w({2, 60'000ms});
  w.record(t0);
  w.record(t0);
  CHECK(w.earliest(t0 + 59'999ms) == t0 + 60'000ms);
  CHECK(w.earliest(t0 + 60'000ms) == t0 + 60'000ms);
  CHECK(w.in_window(t0 + 60'000ms) == 0);
}

TEST_CASE("rate window: no window of the limit's length ever holds more than max_requests") {
  // 500 requests sent as fast as the window allows, at 1 ms steps of a fake clock.
  RateWindow w({120, 60'000ms});
  std::vector<TP> sent;
  TP now{};
  while (sent.size() < 500) {
    const TP at = w.earliest(now);
    now = std::max(now, at);
    w.record(now);
    sent.push_back(now);
    now += 1ms;
  }
  std::size_t worst = 0;
  for (std::size_t i = 0, j = 0; i < sent.size(); ++i) {
    while (sent[j] + 60'000ms <= sent[i]) ++j;
    worst = std::max(worst, i - j + 1);
  }
  CHECK(worst == 120);
  // And it is not slower than it must be: 500 requests need 4 full windows after the first burst.
  CHECK(sent.back() - sent.front() < 4 * 60'000ms + 1000ms);
}
