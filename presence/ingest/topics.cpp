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

}  // namespace presence::ingest
