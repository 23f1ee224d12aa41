#include "presence/ingest/topic_pattern.h"

#include <algorithm>
#include <cctype>
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
    case TopicKind::BrokerExtClients: return "broker_ext_clients";
    case TopicKind::Uptime: return "uptime";
    case TopicKind::Ignore: return "ignore";
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
    case TopicKind::BrokerExtClients:
    case TopicKind::Uptime:
    case TopicKind::Ignore:
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

namespace {

bool label_name(std::string_view name) {
  if (name.empty() || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_'))
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

}  // namespace

std::optional<TopicPattern> TopicPattern::compile(TopicKind kind, std::string_view pattern,
                                                  std::string* error, std::uint16_t source) {
  auto fail = [&](std::string why) -> std::optional<TopicPattern> {
    if (error) *error = "topic pattern '" + std::string(pattern) + "': " + std::move(why);
    return std::nullopt;
  };
  if (pattern.empty()) return fail("empty");
  TopicPattern p;
  p.kind_ = kind;
  p.source_ = source;
  p.pattern_ = std::string(pattern);
  const auto levels = split_levels(pattern);
  bool has_id = false;
  bool has_node = false;
  bool after_multi = false;
  std::size_t labels = 0;
  for (std::size_t i = 0; i < levels.size(); ++i) {
    const std::string_view lv = levels[i];
    Level level;
    if (lv == "{id}" || lv == "{id+}") {
      if (has_id) return fail("must contain {id} only once");
      has_id = true;
      level.seg = lv == "{id}" ? Seg::Id : Seg::IdMulti;
      if (level.seg == Seg::IdMulti) after_multi = true;
    } else if (lv == "{node}") {
      if (has_node) return fail("must contain {node} at most once");
      has_node = true;
      level.seg = Seg::Node;
    } else if (lv.size() > 2 && lv.front() == '{' && lv.back() == '}' &&
               label_name(lv.substr(1, lv.size() - 2))) {
      const std::string name(lv.substr(1, lv.size() - 2));
      for (const auto& other : p.levels_)
        if (other.seg == Seg::Label && other.text == name)
          return fail("{" + name + "} appears twice");
      if (++labels > kMaxLevelLabels)
        return fail("at most " + std::to_string(kMaxLevelLabels) + " label levels");
      level.seg = Seg::Label;
      level.text = name;
    } else if (lv == "+") {
      level.seg = Seg::Plus;
    } else if (lv == "#") {
      if (i + 1 != levels.size()) return fail("'#' must be the last level");
      // "{id+}/#" could split a topic many ways: the id would be a guess.
      if (after_multi) return fail("'#' cannot follow {id+}");
      level.seg = Seg::Hash;
    } else {
      if (lv.find_first_of("{}+#") != std::string_view::npos)
        return fail("placeholders and wildcards must be whole levels (e.g. a/{id}/b); "
                    "placeholders are {id}, {id+}, {node} or a label name such as {site}");
      level.seg = Seg::Literal;
      level.text = std::string(lv);
    }
    p.levels_.push_back(std::move(level));
  }
  if (p.levels_.front().seg == Seg::Literal) p.first_literal_ = p.levels_.front().text;
  if (needs_device_id(kind) && !has_id)
    return fail("must contain {id} (or {id+}) as a whole level");
  if (!needs_device_id(kind) && has_id && kind != TopicKind::Ignore)
    return fail("must not contain {id}");
  for (std::size_t i = 0; i < p.levels_.size(); ++i) {
    if (i) p.filter_ += '/';
    const Seg seg = p.levels_[i].seg;
    if (seg == Seg::IdMulti) {
      p.filter_ += '#';  // MQTT: '#' only last; match() checks the levels after {id+}
      break;
    }
    switch (seg) {
      case Seg::Literal: p.filter_ += p.levels_[i].text; break;
      case Seg::Id:
      case Seg::Node:
      case Seg::Label:
      case Seg::Plus: p.filter_ += '+'; break;
      case Seg::Hash:
      case Seg::IdMulti: p.filter_ += '#'; break;
    }
  }
  return p;
}

bool TopicPattern::has_id() const {
  return std::any_of(levels_.begin(), levels_.end(),
                     [](const Level& l) { return l.seg == Seg::Id || l.seg == Seg::IdMulti; });
}

std::optional<TopicMatch> TopicPattern::match(std::string_view topic) const {
  TopicMatch m;
  if (!match_into(topic, m)) return std::nullopt;
  return m;
}

bool TopicPattern::match_into(std::string_view topic, TopicMatch& m) const {
  if (!first_literal_.empty()) {
    // Cheap reject: the first level must equal the literal exactly.
    const std::size_t n = first_literal_.size();
    if (topic.size() < n || topic.compare(0, n, first_literal_) != 0) return false;
    if (topic.size() > n && topic[n] != '/') return false;
  } else if (!levels_.empty() && !topic.empty() && topic[0] == '$') {
    // MQTT: wildcards at the first level never match "$SYS/..." topics; mirror that so a
    // "+/{id}/status" pattern cannot claim a broker topic.
    return false;
  }
  m.kind = kind_;
  m.source = source_;
  m.id = {};
  m.node = {};
  m.label_count = 0;
  return match_levels(topic, 0, 0, m);
}

bool TopicPattern::match_levels(std::string_view topic, std::size_t first, std::size_t pos,
                                TopicMatch& m) const {
  for (std::size_t i = first; i < levels_.size(); ++i) {
    const Level& level = levels_[i];
    if (level.seg == Seg::Hash) return true;  // matches the rest (including nothing)
    if (pos > topic.size()) return false;
    if (level.seg == Seg::IdMulti) {
      // The id is everything up to the levels the rest of the pattern needs (at least one level):
      // "zigbee2mqtt/{id+}/availability" on "zigbee2mqtt/living room/lamp/availability" gives
      // "living room/lamp".
      std::size_t rest = levels_.size() - i - 1;
      std::size_t end = topic.size();
      while (rest > 0) {
        if (end <= pos) return false;
        const std::size_t slash = topic.rfind('/', end - 1);
        if (slash == std::string_view::npos || slash < pos) return false;
        end = slash;
        --rest;
      }
      m.id = topic.substr(pos, end - pos);
      if (end == topic.size()) return i + 1 == levels_.size();
      return match_levels(topic, i + 1, end + 1, m);
    }
    std::size_t end = topic.find('/', pos);
    if (end == std::string_view::npos) end = topic.size();
    const std::string_view lv = topic.substr(pos, end - pos);
    switch (level.seg) {
      case Seg::Literal:
        if (lv != level.text) return false;
        break;
      case Seg::Id: m.id = lv; break;
      case Seg::Node: m.node = lv; break;
      case Seg::Label:
        m.labels[m.label_count++] = LevelLabel{level.text, lv};
        break;
      case Seg::Plus:
      case Seg::Hash:
      case Seg::IdMulti: break;
    }
    const bool last = i + 1 == levels_.size();
    if (last) return end == topic.size();  // else the topic has more levels
    if (end == topic.size()) {
      // Topic ended; only a trailing '#' may still match ("a/#" matches "a").
      return i + 2 == levels_.size() && levels_[i + 1].seg == Seg::Hash;
    }
    pos = end + 1;
  }
  return false;
}

TopicMatcher::TopicMatcher(std::vector<TopicPattern> patterns) : patterns_(std::move(patterns)) {}

std::optional<TopicMatch> TopicMatcher::match(std::string_view topic) const {
  // One TopicMatch for all patterns, filled in place: building (and zeroing the label array of)
  // a fresh optional<TopicMatch> per pattern per message made a topic no pattern claims cost
  // ~3x more than a matching one (ingest_unknown_topic 8.6 M -> 2.5 M msg/s; docs/benchmarks.md).
  std::optional<TopicMatch> out(std::in_place);
  if (!match(topic, *out)) out.reset();
  return out;
}

bool TopicMatcher::match(std::string_view topic, TopicMatch& out) const {
  for (const auto& p : patterns_) {
    if (p.match_into(topic, out)) return true;
  }
  return false;
}

std::vector<std::string> TopicMatcher::filters() const {
  std::vector<std::string> out;
  for (const auto& p : patterns_) {
    if (p.kind() == TopicKind::Ignore) continue;
    if (std::find(out.begin(), out.end(), p.filter()) == out.end()) out.push_back(p.filter());
  }
  return out;
}

}  // namespace presence::ingest
