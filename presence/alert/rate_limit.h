// A sliding-window request limit for one sink (issue 18): at most max_requests in any window.
// PagerDuty's Events API allows about 120 events per minute per routing key and answers more with
// 429; sending a burst at once and then waiting is faster than spacing every request evenly, and
// still never exceeds the limit in any window. Pure: the caller passes the time (the dispatcher
// its steady clock, tests a fake one).
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>

namespace presence::alert {

struct RateLimit {
  std::size_t max_requests = 0;  // 0 = unlimited
  std::chrono::milliseconds window{std::chrono::minutes(1)};
};

class RateWindow {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  explicit RateWindow(RateLimit limit) : limit_(limit) {}

  // The earliest time at or after now when one more request keeps within the limit.
  TimePoint earliest(TimePoint now) {
    if (limit_.max_requests == 0) return now;
    expire(now);
    if (sent_.size() < limit_.max_requests) return now;
    // The oldest request in the window must leave it first: [t, t + window) holds it.
    return sent_[sent_.size() - limit_.max_requests] + limit_.window;
  }
  // A request was made at now (every attempt counts: the endpoint counts the ones it refused).
  void record(TimePoint now) {
    if (limit_.max_requests == 0) return;
    sent_.push_back(now);
    expire(now);
  }
  std::size_t in_window(TimePoint now) {
    expire(now);
    return sent_.size();
  }

 private:
  void expire(TimePoint now) {
    while (!sent_.empty() && sent_.front() + limit_.window <= now) sent_.pop_front();
    // Never keep more than needed to answer earliest().
    while (sent_.size() > limit_.max_requests) sent_.pop_front();
  }

  RateLimit limit_;
  std::deque<TimePoint> sent_;
};

}  // namespace presence::alert
