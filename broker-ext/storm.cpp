#include "broker-ext/storm.h"

#include <algorithm>

namespace presence::broker_ext {

TokenBucket::TokenBucket(std::int64_t rate_per_s, std::int64_t burst, std::int64_t now_ms)
    : rate_(rate_per_s), cap_milli_(burst * 1000), milli_(burst * 1000), last_ms_(now_ms) {}

void TokenBucket::refill(std::int64_t now_ms) {
  if (now_ms <= last_ms_) return;  // steady clock never goes back; be safe anyway
  const std::int64_t elapsed = now_ms - last_ms_;
  // rate tokens/s == rate milli-tokens/ms. Cap elapsed so the product cannot overflow.
  const std::int64_t add = std::min<std::int64_t>(elapsed, 1'000'000'000) * rate_;
  milli_ = std::min(cap_milli_, milli_ + add);
  last_ms_ = now_ms;
}

bool TokenBucket::try_take(std::int64_t now_ms) {
  refill(now_ms);
  if (milli_ < 1000) return false;
  milli_ -= 1000;
  return true;
}

std::int64_t TokenBucket::tokens_milli(std::int64_t now_ms) {
  refill(now_ms);
  return milli_;
}

FlapBan::FlapBan(std::int64_t max_count, std::int64_t window_ms, std::int64_t ban_ms,
                 std::size_t max_clients)
    : max_count_(max_count), window_ms_(window_ms), ban_ms_(ban_ms), max_clients_(max_clients) {}

FlapBan::Admission FlapBan::on_connect(std::string_view client_id, std::int64_t now_ms) {
  auto it = clients_.find(std::string(client_id));
  if (it == clients_.end()) {
    if (clients_.size() >= max_clients_) {
      sweep(now_ms);
      if (clients_.size() >= max_clients_) return Admission::untracked;
    }
    it = clients_.emplace(std::string(client_id), Entry{}).first;
  }
  Entry& e = it->second;
  if (now_ms < e.banned_until) return Admission::refuse_banned;
  // An attempt at time a is inside the window at `now` while now - a < window.
  while (!e.attempts.empty() && now_ms - e.attempts.front() >= window_ms_) e.attempts.pop_front();
  if (static_cast<std::int64_t>(e.attempts.size()) >= max_count_) {
    e.attempts.clear();
    e.banned_until = now_ms + ban_ms_;
    return Admission::refuse_new_ban;
  }
  e.attempts.push_back(now_ms);
  return Admission::admit;
}

std::size_t FlapBan::sweep(std::int64_t now_ms) {
  std::size_t still_banned = 0;
  for (auto it = clients_.begin(); it != clients_.end();) {
    const Entry& e = it->second;
    const bool ban_over = now_ms >= e.banned_until;
    const bool window_over = e.attempts.empty() || now_ms - e.attempts.back() >= window_ms_;
    if (ban_over && window_over) {
      it = clients_.erase(it);
    } else {
      still_banned += ban_over ? 0 : 1;
      ++it;
    }
  }
  return still_banned;
}

std::size_t FlapBan::banned(std::int64_t now_ms) const {
  std::size_t n = 0;
  for (const auto& [id, e] : clients_) n += now_ms < e.banned_until ? 1 : 0;
  return n;
}

std::optional<std::int64_t> FlapBan::banned_until(std::string_view client_id) const {
  auto it = clients_.find(std::string(client_id));
  if (it == clients_.end() || it->second.banned_until == 0) return std::nullopt;
  return it->second.banned_until;
}

}  // namespace presence::broker_ext
