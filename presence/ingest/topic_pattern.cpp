#include "presence/ingest/topic_pattern.h"

#include <algorithm>
#include <utility>

namespace presence::ingest {

const char* to_string(TopicKind kind) {
  switch (kind) {
    case TopicKind::Status: return "status";
    case TopicKind::Heartbeat: return "heartbeat";
    case TopicKind::EmqxConnected: return "emqx_connected";
    case TopicKind::EmqxDisconnected: return "emqx_disconnected";
    case TopicKind::BrokerExtBoot: return "broker_ext_boot";
    case TopicKind::BrokerExtHeartbeat: return "broker_ext_heartbeat";
    case TopicKind::BrokerExtConnected: return "broker_ext_connected";
    case TopicKind::BrokerExtDisconnected: return "broker_ext_disconnected";
    case TopicKind::BrokerExtAlive: return "broker_ext_alive";
    case TopicKind::Uptime: return "uptime";
  }
  return "?";
}

bool needs_device_id(TopicKind kind) {
  switch (kind) {
    case TopicKind::Status:
    case TopicKind::Heartbeat:
    case TopicKind::EmqxConnected:
    case TopicKind::EmqxDisconnected:
    case TopicKind::BrokerExtConnected:
    case TopicKind::BrokerExtDisconnected:
      return true;
    case TopicKind::BrokerExtBoot:
    case TopicKind::BrokerExtHeartbeat:
    case TopicKind::BrokerExtAlive:
    case TopicKind::Uptime:
      return false;
  }
  return false;
}

namespace {

std::vector<std::string_view> split_levels(std::string_view topic) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = topic.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(topic.substr(start));
      return out;
    }
    out.push_back(topic.substr(start, slash - start));
    start = slash + 1;
  }
}

}  // namespace

std::optional<TopicPattern> TopicPattern::compile(TopicKind kind, std::string_view pattern,
                                                  std::string* error) {
  auto fail = [&](std::string why) -> std::optional<TopicPattern> {
    if (error) *error = "topic pattern '" + std::string(pattern) + "': " + std::move(why);
    return std::nullopt;
  };
  if (pattern.empty()) return fail("empty");
  TopicPattern p;
  p.kind_ = kind;
  p.pattern_ = std::string(pattern);
  const auto levels = split_levels(pattern);
  bool has_id = false;
  bool has_node = false;
  for (std::size_t i = 0; i < levels.size(); ++i) {
    const std::string_view lv = levels[i];
    Level level;
    if (lv == "{id}") {
      if (has_id) return fail("{id} appears twice");
      has_id = true;
      level.seg = Seg::Id;
    } else if (lv == "{node}") {
      if (has_node) return fail("{node} appears twice");
      has_node = true;
      level.seg = Seg::Node;
    } else if (lv == "+") {
      level.seg = Seg::Plus;
    } else if (lv == "#") {
      if (i + 1 != levels.size()) return fail("'#' must be the last level");
      level.seg = Seg::Hash;
    } else {
      if (lv.find_first_of("{}+#") != std::string_view::npos)
        return fail("placeholders and wildcards must be whole levels (e.g. a/{id}/b)");
      level.seg = Seg::Literal;
      level.text = std::string(lv);
    }
    p.levels_.push_back(std::move(level));
  }
  if (needs_device_id(kind) && !has_id)
    return fail(std::string("a ") + to_string(kind) + " pattern needs an {id} level");
  for (std::size_t i = 0; i < p.levels_.size(); ++i) {
    if (i) p.filter_ += '/';
    switch (p.levels_[i].seg) {
      case Seg::Literal: p.filter_ += p.levels_[i].text; break;
      case Seg::Id:
      case Seg::Node:
      case Seg::Plus: p.filter_ += '+'; break;
      case Seg::Hash: p.filter_ += '#'; break;
    }
  }
  return p;
}

std::optional<TopicMatch> TopicPattern::match(std::string_view topic) const {
  TopicMatch m;
  m.kind = kind_;
  // MQTT: wildcards at the first level never match "$SYS/..." topics; mirror that so a
  // "+/{id}/status" pattern cannot claim a broker topic.
  if (!levels_.empty() && levels_[0].seg != Seg::Literal && !topic.empty() && topic[0] == '$')
    return std::nullopt;
  std::size_t pos = 0;
  for (std::size_t i = 0; i < levels_.size(); ++i) {
    const Level& level = levels_[i];
    if (level.seg == Seg::Hash) return m;  // matches the rest (including nothing)
    if (pos > topic.size()) return std::nullopt;
    std::size_t end = topic.find('/', pos);
    if (end == std::string_view::npos) end = topic.size();
    const std::string_view lv = topic.substr(pos, end - pos);
    switch (level.seg) {
      case Seg::Literal:
        if (lv != level.text) return std::nullopt;
        break;
      case Seg::Id: m.id = lv; break;
      case Seg::Node: m.node = lv; break;
      case Seg::Plus:
      case Seg::Hash: break;
    }
    const bool last = i + 1 == levels_.size();
    if (last) {
      if (end != topic.size()) return std::nullopt;  // topic has more levels
      return m;
    }
    if (end == topic.size()) {
      // Topic ended; only a trailing '#' may still match ("a/#" matches "a").
      if (i + 2 == levels_.size() && levels_[i + 1].seg == Seg::Hash) return m;
      return std::nullopt;
    }
    pos = end + 1;
  }
  return std::nullopt;
}

TopicMatcher::TopicMatcher(std::vector<TopicPattern> patterns) : patterns_(std::move(patterns)) {}

std::optional<TopicMatch> TopicMatcher::match(std::string_view topic) const {
  for (const auto& p : patterns_) {
    if (auto m = p.match(topic)) return m;
  }
  return std::nullopt;
}

std::vector<std::string> TopicMatcher::filters() const {
  std::vector<std::string> out;
  for (const auto& p : patterns_) {
    if (std::find(out.begin(), out.end(), p.filter()) == out.end()) out.push_back(p.filter());
  }
  return out;
}

}  // namespace presence::ingest
