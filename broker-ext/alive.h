// Heartbeat aggregation inside the broker (docs/broker-ext.md, "Heartbeat aggregation").
// presence-e2e-bench (docs/benchmarks.md, "End to end") showed presenced spending 1.3-1.8x
// Mosquitto's CPU per device heartbeat, ~80 % of it in Paho's per-message receive path. Instead
// of one MQTT message per heartbeat, the plugin collects the device ids whose heartbeat topic it
// saw and publishes one `<topic_prefix>/alive` message per alive_interval listing them.
// Pure logic: no broker, no clock; the shim feeds topics, PresenceExt drives the interval.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace presence::broker_ext {

// Longest device id (the {id} topic level) that is aggregated; longer ones are rejected.
inline constexpr std::size_t kMaxHeartbeatId = 256;

// `heartbeat_topic`, e.g. "devices/{id}/heartbeat": exactly one level that is exactly "{id}",
// literal levels otherwise (no '+', '#', NUL, no other '{' '}').
class HeartbeatPattern {
 public:
  // nullopt and a reason in *error if the pattern is invalid.
  static std::optional<HeartbeatPattern> parse(std::string_view pattern, std::string* error);

  enum class Match { no, id, bad_id };
  // Runs for every PUBLISH on the broker: no allocation. On Match::id, *id views into topic.
  // bad_id: the topic has the pattern's shape but the {id} level is empty or longer than
  // kMaxHeartbeatId bytes.
  Match match(std::string_view topic, std::string_view* id) const;

  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  std::string prefix_;  // everything before {id} (ends with '/' unless empty)
  std::string suffix_;  // everything after {id} (starts with '/' unless empty)
};

// The pending id set of one interval and the `alive` payloads built from it.
//   {"v":1,"node":"<node>","boot":"<boot>","seq":<n>,"ids":["dev-1",...]}
// seq counts alive messages of this boot (1, 2, ...). A payload never exceeds max_bytes: when
// the next new id would make it longer, the ids pending so far are flushed first.
class AliveAggregator {
 public:
  AliveAggregator(std::string topic, const std::string& node, const std::string& boot_id,
                  std::size_t max_bytes);

  // Adds one device id (dedupe within the interval). Appends a finished payload to *flushed
  // when the pending set was full. Allocation-free for an id already seen in this or the
  // previous interval (the steady state of a fleet that sends a heartbeat every interval).
  void add(std::string_view id, std::vector<std::string>& flushed);
  // End of an interval: the pending ids as one payload (nothing if there are none).
  void flush(std::vector<std::string>& flushed);

  const std::string& topic() const { return topic_; }
  std::size_t pending() const { return pending_.size(); }
  std::uint64_t last_seq() const { return seq_; }
  std::uint64_t ids_dropped() const { return ids_dropped_; }

 private:
  struct Entry {
    std::uint64_t generation = 0;  // interval in which the id was last added
    std::uint32_t json_bytes = 0;  // length of the id as a JSON string literal
  };
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept;
  };
  struct Eq {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const noexcept { return a == b; }
  };
  std::size_t head_bytes(std::uint64_t seq) const;  // payload bytes without any id
  void emit(std::vector<std::string>& flushed);

  std::string topic_;
  std::string head_;  // {"v":1,"node":..,"boot":"..","seq":
  std::size_t max_bytes_;
  std::uint64_t seq_ = 0;
  std::uint64_t generation_ = 1;
  std::unordered_map<std::string, Entry, Hash, Eq> seen_;
  std::vector<const std::string*> pending_;  // keys of seen_ (stable across rehash)
  std::size_t pending_bytes_ = 0;            // ids + separating commas
  std::string scratch_;
  std::uint64_t ids_dropped_ = 0;
};

}  // namespace presence::broker_ext
