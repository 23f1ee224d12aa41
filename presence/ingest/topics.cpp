#include "presence/ingest/topics.h"

#include <algorithm>
#include <utility>

namespace presence::ingest {

bool compile_topics(const TopicOptions& topics, TopicMatcher& out,
                    std::vector<std::string>& errors) {
  SourceTable table;
  return compile_ingest(topics, {}, {}, out, table, errors);
}

bool compile_ingest(const TopicOptions& topics, const std::vector<SourceSpec>& sources,
                    const std::vector<DeviceClassSpec>& classes, TopicMatcher& out,
                    SourceTable& source_table, std::vector<std::string>& errors) {
  const std::pair<const char*, std::pair<TopicKind, const std::vector<std::string>*>> table[] = {
      {"status", {TopicKind::Status, &topics.status}},
      {"heartbeat", {TopicKind::Heartbeat, &topics.heartbeat}},
      {"emqx_connected", {TopicKind::EmqxConnected, &topics.emqx_connected}},
      {"emqx_disconnected", {TopicKind::EmqxDisconnected, &topics.emqx_disconnected}},
      {"broker_ext_boot", {TopicKind::BrokerExtBoot, &topics.broker_ext_boot}},
      {"broker_ext_heartbeat", {TopicKind::BrokerExtHeartbeat, &topics.broker_ext_heartbeat}},
      {"broker_ext_connected", {TopicKind::BrokerExtConnected, &topics.broker_ext_connected}},
      {"broker_ext_disconnected",
       {TopicKind::BrokerExtDisconnected, &topics.broker_ext_disconnected}},
      {"broker_ext_alive", {TopicKind::BrokerExtAlive, &topics.broker_ext_alive}},
      {"broker_ext_clients", {TopicKind::BrokerExtClients, &topics.broker_ext_clients}},
      {"uptime", {TopicKind::Uptime, &topics.uptime}},
  };
  std::vector<TopicPattern> patterns;
  const std::size_t before = errors.size();
  for (const auto& [key, entry] : table) {
    for (const auto& text : *entry.second) {
      std::string error;
      auto p = TopicPattern::compile(entry.first, text, &error);
      if (!p) {
        errors.push_back(std::string("topics.") + key + ": " + error);
        continue;
      }
      patterns.push_back(std::move(*p));
    }
  }
  // Sources (issue 14): every status first, then ignores, then heartbeats, then the broker's
  // topics, so a source's catch-all heartbeat ("zigbee2mqtt/{id+}") never claims a status topic.
  std::vector<TopicPattern> status, ignore, heartbeat;
  compile_sources(sources, classes, source_table, status, ignore, heartbeat, errors);
  auto first_non = [&](TopicKind kind) {
    return std::find_if(patterns.begin(), patterns.end(),
                        [&](const TopicPattern& p) { return p.kind() != kind; });
  };
  {
    auto it = patterns.insert(first_non(TopicKind::Status), status.begin(), status.end());
    it += static_cast<std::ptrdiff_t>(status.size());
    it = patterns.insert(it, ignore.begin(), ignore.end());
    it += static_cast<std::ptrdiff_t>(ignore.size());
    while (it != patterns.end() && it->kind() == TopicKind::Heartbeat) ++it;
    patterns.insert(it, heartbeat.begin(), heartbeat.end());
  }
  if (patterns.empty()) errors.emplace_back("topics: no topic pattern configured");
  if (errors.size() != before) return false;
  out = TopicMatcher(std::move(patterns));
  return true;
}

namespace {

std::string_view next_level(std::string_view& rest, bool& more) {
  const auto slash = rest.find('/');
  std::string_view level = rest.substr(0, slash);
  more = slash != std::string_view::npos;
  rest = more ? rest.substr(slash + 1) : std::string_view();
  return level;
}

}  // namespace

bool filters_overlap(std::string_view a, std::string_view b) {
  if (a.empty() || b.empty()) return false;
  // MQTT 3.1.1 section 4.7.2: '#' or '+' first never matches a topic starting with '$'.
  const bool a_wild = a.front() == '#' || a.front() == '+';
  const bool b_wild = b.front() == '#' || b.front() == '+';
  if ((a_wild && b.front() == '$') || (b_wild && a.front() == '$')) return false;
  bool a_more = true, b_more = true;
  while (a_more && b_more) {
    const std::string_view la = next_level(a, a_more);
    const std::string_view lb = next_level(b, b_more);
    if (la == "#" || lb == "#") return true;
    if (la != "+" && lb != "+" && la != lb) return false;
  }
  // One ran out of levels: "x/#" also matches "x" itself; anything else longer does not.
  if (a_more) return a == "#";
  if (b_more) return b == "#";
  return true;
}

FilterSplit split_heartbeat_filters(const TopicMatcher& matcher, const std::vector<std::string>& others) {
  std::vector<std::string> other = others;
  for (const auto& p : matcher.patterns())
    if (p.kind() != TopicKind::Heartbeat && p.kind() != TopicKind::Ignore) other.push_back(p.filter());
  FilterSplit out;
  for (const auto& f : matcher.filters()) {
    bool heartbeat = false;
    for (const auto& p : matcher.patterns()) heartbeat |= p.kind() == TopicKind::Heartbeat && p.filter() == f;
    const bool shared = std::any_of(other.begin(), other.end(),
                                    [&](const std::string& o) { return filters_overlap(f, o); });
    (heartbeat && !shared ? out.bulk : out.paho).push_back(f);
  }
  return out;
}

}  // namespace presence::ingest
