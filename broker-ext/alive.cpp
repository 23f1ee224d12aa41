#include "broker-ext/alive.h"

#include <algorithm>
#include <cstring>
#include <functional>

#include "broker-ext/encode.h"

namespace presence::broker_ext {

namespace {
std::size_t decimal_digits(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 10) {
    v /= 10;
    ++n;
  }
  return n;
}
}  // namespace

std::optional<HeartbeatPattern> HeartbeatPattern::parse(std::string_view pattern,
                                                        std::string* error) {
  auto fail = [error](const char* why) {
    if (error) *error = why;
    return std::optional<HeartbeatPattern>{};
  };
  if (pattern.empty()) return fail("must not be empty");
  if (pattern.size() > 1024) return fail("longer than 1024 bytes");
  if (pattern.find_first_of(std::string_view("+#\0", 3)) != std::string_view::npos) {
    return fail("must be a topic, not a filter: no '+' or '#' (the {id} level is the wildcard)");
  }
  std::size_t id_levels = 0;
  std::size_t id_at = 0;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = std::min(pattern.find('/', start), pattern.size());
    const std::string_view level = pattern.substr(start, end - start);
    if (level == "{id}") {
      ++id_levels;
      id_at = start;
    } else if (level.find_first_of("{}") != std::string_view::npos) {
      return fail("{id} must be a whole topic level (e.g. devices/{id}/heartbeat) and is the "
                  "only placeholder");
    }
    if (end == pattern.size()) break;
    start = end + 1;
  }
  if (id_levels == 0) return fail("needs one {id} level, e.g. devices/{id}/heartbeat");
  if (id_levels > 1) return fail("has more than one {id} level");
  HeartbeatPattern p;
  p.pattern_ = std::string(pattern);
  p.prefix_ = std::string(pattern.substr(0, id_at));
  p.suffix_ = std::string(pattern.substr(id_at + 4));
  return p;
}

HeartbeatPattern::Match HeartbeatPattern::match(std::string_view topic,
                                                std::string_view* id) const {
  // prefix and suffix hold every '/' of the pattern, so "same number of levels, literal levels
  // equal" is: topic = prefix + X + suffix with no '/' in X.
  if (topic.size() < prefix_.size() + suffix_.size()) return Match::no;
  if (topic.compare(0, prefix_.size(), prefix_) != 0) return Match::no;
  if (topic.compare(topic.size() - suffix_.size(), suffix_.size(), suffix_) != 0) return Match::no;
  const std::string_view level =
      topic.substr(prefix_.size(), topic.size() - prefix_.size() - suffix_.size());
  if (std::memchr(level.data(), '/', level.size()) != nullptr) return Match::no;
  if (level.empty() || level.size() > kMaxHeartbeatId) return Match::bad_id;
  if (id) *id = level;
  return Match::id;
}

std::size_t AliveAggregator::Hash::operator()(std::string_view s) const noexcept {
  return std::hash<std::string_view>{}(s);
}

AliveAggregator::AliveAggregator(std::string topic, const std::string& node,
                                 const std::string& boot_id, std::size_t max_bytes)
    : topic_(std::move(topic)), max_bytes_(max_bytes) {
  head_ = "{\"v\":1,\"node\":";
  append_json_string(head_, node);
  head_ += ",\"boot\":";
  append_json_string(head_, boot_id);
  head_ += ",\"seq\":";
}

std::size_t AliveAggregator::head_bytes(std::uint64_t seq) const {
  // head_ + seq + ,"ids":[ + ]}
  return head_.size() + decimal_digits(seq) + 8 + 2;
}

void AliveAggregator::add(std::string_view id, std::vector<std::string>& flushed) {
  auto it = seen_.find(id);
  if (it == seen_.end()) {
    scratch_.clear();
    append_json_string(scratch_, id);
    it = seen_.emplace(std::string(id), Entry{0, static_cast<std::uint32_t>(scratch_.size())})
             .first;
  }
  Entry& e = it->second;
  if (e.generation == generation_) return;  // already listed in this interval
  e.generation = generation_;
  if (!pending_.empty() &&
      head_bytes(seq_ + 1) + pending_bytes_ + 1 + e.json_bytes > max_bytes_) {
    emit(flushed);
  }
  if (head_bytes(seq_ + 1) + e.json_bytes > max_bytes_) {
    // Cannot fit even alone (a long id of escaped bytes with a small alive_max_bytes): dropping
    // it keeps the size promise; counted in the heartbeat as alive_ids_dropped.
    ++ids_dropped_;
    return;
  }
  pending_bytes_ += (pending_.empty() ? 0 : 1) + e.json_bytes;
  pending_.push_back(&it->first);
}

void AliveAggregator::emit(std::vector<std::string>& flushed) {
  std::string p;
  p.reserve(head_bytes(seq_ + 1) + pending_bytes_);
  p += head_;
  p += std::to_string(++seq_);
  p += ",\"ids\":[";
  for (std::size_t i = 0; i < pending_.size(); ++i) {
    if (i) p.push_back(',');
    append_json_string(p, *pending_[i]);
  }
  p += "]}";
  flushed.push_back(std::move(p));
  pending_.clear();
  pending_bytes_ = 0;
}

void AliveAggregator::flush(std::vector<std::string>& flushed) {
  if (!pending_.empty()) emit(flushed);
  // Keep only the ids of the interval that just ended: a fleet that reports every interval
  // finds its entries again (no allocation), ids that went quiet free their memory.
  for (auto it = seen_.begin(); it != seen_.end();) {
    if (it->second.generation != generation_) {
      it = seen_.erase(it);
    } else {
      ++it;
    }
  }
  ++generation_;
}

}  // namespace presence::broker_ext
