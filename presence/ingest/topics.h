// The configured topics (topics.*, sources, device classes) compiled into one matcher: the one
// rule for what a topic pattern may be, used by presenced's config loader and by the MQTT link
// (issue 12: config and ingest must accept and reject the same patterns). Pure.
#pragma once

#include <string>
#include <string_view>
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

// True when MQTT subscription filters a and b can both match one topic (levels compared one by
// one: '+' matches any level, '#' the rest including none; a filter starting with a wildcard
// matches no topic starting with '$').
bool filters_overlap(std::string_view a, std::string_view b);

// Which subscriptions the bulk heartbeat reader takes (bulk_reader.h, issue 16): the heartbeat
// patterns' filters that share no topic with any other subscription (a topic on both connections
// would arrive twice, and a status or a will on the bulk connection would lose QoS 1 and the
// persistent session: post-mortem 001). `others` are the subscriptions made outside the matcher
// (Sparkplug's, $SYS). Everything not in `bulk` stays on Paho, in the matcher's order.
struct FilterSplit {
  std::vector<std::string> bulk;
  std::vector<std::string> paho;
};
FilterSplit split_heartbeat_filters(const TopicMatcher& matcher, const std::vector<std::string>& others);

}  // namespace presence::ingest
