// Topic patterns are configuration (issue 3): "devices/{id}/status" captures the device id from a
// topic, "$SYS/brokers/{node}/clients/{id}/connected" also the broker node. Patterns are compiled
// once at start; matching is a pure function on the hot path.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
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
  BrokerExtClients,       // broker-ext: the connected clients, on request (issue 14)
  Uptime,                 // $SYS/broker/uptime "N seconds": a decrease is a broker restart
  Ignore,                 // a source's `ignore` pattern: claimed and dropped, never subscribed
                          // (zigbee2mqtt/bridge/# under a zigbee2mqtt/{id+} heartbeat, issue 14)
};

const char* to_string(TopicKind kind);
// True for kinds whose pattern must capture {id}.
bool needs_device_id(TopicKind kind);

// A topic level captured as a label: "{site}" in "plant/{site}/{id}/status" (issue 14).
inline constexpr std::size_t kMaxLevelLabels = 4;
struct LevelLabel {
  std::string_view key;    // the placeholder's name, points into the pattern
  std::string_view value;  // points into the topic
};

struct TopicMatch {
  TopicKind kind = TopicKind::Status;
  std::string_view id;    // empty when the pattern has no {id}
  std::string_view node;  // empty when the pattern has no {node}
  std::uint16_t source = 0;  // the pattern's source (presence/ingest/source.h); 0 = topics.*
  std::uint8_t label_count = 0;
  std::array<LevelLabel, kMaxLevelLabels> labels{};
};

// One compiled pattern: THE rule for topic patterns (the config loader calls compile() too, so
// --check-config and the service can never disagree; issue 14). Placeholders and wildcards are
// whole topic levels:
//   {id}    one level, the device id          {id+}  one or more levels (Zigbee2MQTT names
//   {node}  the broker node                           with '/'); at most one id placeholder
//   {name}  any other name: a label from that level (at most kMaxLevelLabels)
//   +       any one level                     #      the rest; last level only
// The subscription filter turns placeholders into '+', and {id+} with everything after it into
// '#' (MQTT allows '#' only last; match() checks the levels after {id+} itself).
class TopicPattern {
 public:
  // Returns nullopt and fills error on an invalid pattern.
  static std::optional<TopicPattern> compile(TopicKind kind, std::string_view pattern,
                                             std::string* error, std::uint16_t source = 0);

  TopicKind kind() const { return kind_; }
  std::uint16_t source() const { return source_; }
  bool has_id() const;
  const std::string& pattern() const { return pattern_; }
  // The MQTT subscription filter: placeholders become '+'.
  const std::string& filter() const { return filter_; }
  // Views in the result point into topic.
  std::optional<TopicMatch> match(std::string_view topic) const;
  // The hot path: fills m (kind, source, id, node, label_count; labels[0..label_count)) and
  // returns true on a match. m's label array is not cleared: only label_count entries are valid.
  bool match_into(std::string_view topic, TopicMatch& m) const;

 private:
  enum class Seg : unsigned char { Literal, Id, IdMulti, Node, Label, Plus, Hash };
  struct Level {
    Seg seg = Seg::Literal;
    std::string text;  // Literal: the level; Label: the label key
  };
  bool match_levels(std::string_view topic, std::size_t first, std::size_t pos,
                    TopicMatch& m) const;
  TopicKind kind_ = TopicKind::Status;
  std::uint16_t source_ = 0;
  std::string pattern_;
  std::string filter_;
  std::vector<Level> levels_;
  // The first level when it is a literal: a topic that does not start with "<first>/" (or equal
  // it) is rejected with one compare, before any level walk (most patterns start with one).
  std::string first_literal_;
};

// All configured patterns; the first pattern that matches a topic wins (configuration order,
// kinds in the order of TopicKind).
class TopicMatcher {
 public:
  TopicMatcher() = default;
  explicit TopicMatcher(std::vector<TopicPattern> patterns);
  std::optional<TopicMatch> match(std::string_view topic) const;
  // The hot path: one TopicMatch filled in place; false when no pattern claims the topic.
  bool match(std::string_view topic, TopicMatch& out) const;
  // Deduplicated subscription filters (Ignore patterns are not subscribed).
  std::vector<std::string> filters() const;
  const std::vector<TopicPattern>& patterns() const { return patterns_; }

 private:
  std::vector<TopicPattern> patterns_;
};

}  // namespace presence::ingest
