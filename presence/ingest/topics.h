// The configured topics (topics.*, sources, device classes) compiled into one matcher: the one
// rule for what a topic pattern may be, used by presenced's config loader and by the MQTT link
// (issue 12: config and ingest must accept and reject the same patterns). Pure.
#pragma once

#include <string>
#include <vector>

#include "presence/ingest/source.h"
#include "presence/ingest/topic_pattern.h"

namespace presence::ingest {

struct TopicOptions {
  std::vector<std::string> status{"devices/{id}/status"};
  std::vector<std::string> heartbeat{"devices/{id}/heartbeat"};
  std::vector<std::string> emqx_connected{"$SYS/brokers/{node}/clients/{id}/connected"};
  std::vector<std::string> emqx_disconnected{"$SYS/brokers/{node}/clients/{id}/disconnected"};
  std::vector<std::string> broker_ext_boot{"$SYS/presence/{node}/boot"};
  std::vector<std::string> broker_ext_heartbeat{"$SYS/presence/{node}/heartbeat"};
  std::vector<std::string> broker_ext_connected{"$SYS/presence/{node}/clients/{id}/connected"};
  std::vector<std::string> broker_ext_disconnected{
      "$SYS/presence/{node}/clients/{id}/disconnected"};
  // broker-ext heartbeat aggregation (plugin_opt_heartbeat_topic): one message per second per
  // node listing the devices whose heartbeat the broker saw.
  std::vector<std::string> broker_ext_alive{"$SYS/presence/{node}/alive"};
  // broker-ext's reply to the client-list request presenced sends on every (re)connect
  // (issue 14: start-up reconciliation). Empty: no request is sent.
  std::vector<std::string> broker_ext_clients{"$SYS/presence/{node}/clients"};
  std::vector<std::string> uptime{"$SYS/broker/uptime"};
  bool operator==(const TopicOptions&) const = default;
};

// Compiles the topic patterns; errors are "topics.<key>: <reason>".
bool compile_topics(const TopicOptions& topics, TopicMatcher& out, std::vector<std::string>& errors);
// The same plus the sources, in matching order (source.h); errors also "sources[i].<key>: ...".
bool compile_ingest(const TopicOptions& topics, const std::vector<SourceSpec>& sources,
                    const std::vector<DeviceClassSpec>& classes, TopicMatcher& out,
                    SourceTable& table, std::vector<std::string>& errors);

}  // namespace presence::ingest
