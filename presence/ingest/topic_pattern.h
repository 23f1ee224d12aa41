// Topic patterns are configuration (issue 3): "devices/{id}/status" captures the device id from a
// topic, "$SYS/brokers/{node}/clients/{id}/connected" also the broker node. Patterns are compiled
// once at start; matching is a pure function on the hot path.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace presence::ingest {

// What a topic carries. The payload parser is chosen by kind (payload.h).
enum class TopicKind : unsigned char {
  Status,                 // birth / last-will: online|offline or JSON {"state":...}
  Heartbeat,              // any payload is proof of life
  EmqxConnected,          // EMQX $SYS client connected event
  EmqxDisconnected,       // EMQX $SYS client disconnected event
  BrokerExtBoot,          // broker-ext: broker (re)started, carries the boot id
  BrokerExtHeartbeat,     // broker-ext: periodic, carries the boot id
  BrokerExtConnected,     // broker-ext: client session connected
  BrokerExtDisconnected,  // broker-ext: client session ended
  BrokerExtAlive,         // broker-ext: device ids whose heartbeat the broker saw (aggregated)
  Uptime,                 // $SYS/broker/uptime "N seconds": a decrease is a broker restart
};

const char* to_string(TopicKind kind);
// True for kinds whose pattern must capture {id}.
bool needs_device_id(TopicKind kind);

struct TopicMatch {
  TopicKind kind = TopicKind::Status;
  std::string_view id;    // empty when the pattern has no {id}
  std::string_view node;  // empty when the pattern has no {node}
};

// One compiled pattern. Placeholders ({id}, {node}) and '+' must be whole topic levels; '#' is
// allowed only as the last level and captures nothing.
class TopicPattern {
 public:
  // Returns nullopt and fills error on an invalid pattern.
  static std::optional<TopicPattern> compile(TopicKind kind, std::string_view pattern,
                                             std::string* error);

  TopicKind kind() const { return kind_; }
  const std::string& pattern() const { return pattern_; }
  // The MQTT subscription filter: placeholders become '+'.
  const std::string& filter() const { return filter_; }
  // Views in the result point into topic.
  std::optional<TopicMatch> match(std::string_view topic) const;

 private:
  enum class Seg : unsigned char { Literal, Id, Node, Plus, Hash };
  struct Level {
    Seg seg = Seg::Literal;
    std::string text;
  };
  TopicKind kind_ = TopicKind::Status;
  std::string pattern_;
  std::string filter_;
  std::vector<Level> levels_;
};

// All configured patterns; the first pattern that matches a topic wins (configuration order,
// kinds in the order of TopicKind).
class TopicMatcher {
 public:
  TopicMatcher() = default;
  explicit TopicMatcher(std::vector<TopicPattern> patterns);
  std::optional<TopicMatch> match(std::string_view topic) const;
  // Deduplicated subscription filters.
  std::vector<std::string> filters() const;
  const std::vector<TopicPattern>& patterns() const { return patterns_; }

 private:
  std::vector<TopicPattern> patterns_;
};

}  // namespace presence::ingest
