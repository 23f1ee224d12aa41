// Storm protection at the broker's door (issue 4; post-mortem 000-rms-reconnect-storm: old
// firmware reconnecting in a tight loop kept the service down for days). Pure logic: every call
// takes the steady time in milliseconds; nothing here reads a clock (STYLE.md habit 1).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace presence::broker_ext {

// Global connect-rate token bucket: `rate` tokens per second, at most `burst` tokens, starts full.
// Integer milli-tokens so the arithmetic is exact and testable at T-1/T/T+1.
class TokenBucket {
 public:
  TokenBucket(std::int64_t rate_per_s, std::int64_t burst, std::int64_t now_ms);
  // Takes one token if there is one.
  bool try_take(std::int64_t now_ms);
  std::int64_t tokens_milli(std::int64_t now_ms);

 private:
  void refill(std::int64_t now_ms);
  std::int64_t rate_;
  std::int64_t cap_milli_;
  std::int64_t milli_;
  std::int64_t last_ms_;
};

// Per-client flap ban. A client may connect flap_max_count times within any flap_window; the
// next attempt inside the window is refused and bans the client id for flap_ban from that
// moment. Attempts during a ban are refused and neither extend the ban nor count. When the ban
// ends the history is empty: the client starts afresh.
class FlapBan {
 public:
  FlapBan(std::int64_t max_count, std::int64_t window_ms, std::int64_t ban_ms,
          std::size_t max_clients);

  enum class Admission { admit, refuse_banned, refuse_new_ban, untracked };
  // untracked: the table is full (flap_max_clients) and this id is new; it is admitted uncounted.
  Admission on_connect(std::string_view client_id, std::int64_t now_ms);
  // Drops entries whose ban and window are over and returns how many ids are still banned.
  // O(tracked); the plugin calls it once per heartbeat.
  std::size_t sweep(std::int64_t now_ms);
  std::size_t banned(std::int64_t now_ms) const;
  std::size_t tracked() const { return clients_.size(); }
  std::optional<std::int64_t> banned_until(std::string_view client_id) const;

 private:
  struct Entry {
    std::deque<std::int64_t> attempts;  // steady ms, oldest first, at most max_count
    std::int64_t banned_until = 0;      // steady ms; ban active while now < banned_until
  };
  std::int64_t max_count_;
  std::int64_t window_ms_;
  std::int64_t ban_ms_;
  std::size_t max_clients_;
  std::unordered_map<std::string, Entry> clients_;
};

}  // namespace presence::broker_ext
