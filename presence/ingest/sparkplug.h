// Sparkplug B 3.0 (issue 15): topics, payloads and the edge-node session rules that turn them
// into presence events. Pure: no clock reads, no I/O; the caller passes the time and publishes the
// commands returned. docs/sparkplug.md documents every rule below with its reason.
//
// Ids (the device ids presenced pages and publishes):
//   edge node       {group}/{edge}             labels sparkplug_group, parent={primary host} when
//                                              one is configured
//   device          {group}/{edge}/{device}    labels sparkplug_group, edge_node={group}/{edge},
//                                              parent={group}/{edge}
//   primary host    {host_id}                  no label
// No "role" label: the cohort logic would take "3 of 20 edge nodes down" for a common cause
// (issue 11) when three unrelated nodes fail; a label must name something that can fail together.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "presence/core/time.h"
#include "presence/ingest/payload.h"
#include "presence/ingest/sparkplug_codec.h"

namespace presence::ingest::sparkplug {

struct Options {
  // host_id of the primary host application the edge nodes are configured with: its STATE makes
  // it the parent of every edge node (its departure is one page naming it). "" = none.
  std::string primary_host;
  // Send NCMD "Node Control/Rebirth" to an edge node whose NBIRTH presenced has not seen (it
  // started after the birth, or the birth was lost): at most one per node per rebirth_interval.
  bool rebirth = false;
  core::Duration rebirth_interval{std::chrono::seconds(60)};
  // Edge nodes tracked at most; beyond, a new node's messages are refused (counted).
  std::size_t max_nodes = 100000;
};

struct Counters {
  std::uint64_t messages = 0;
  std::uint64_t bad_topics = 0;         // under spBv1.0/ but not a Sparkplug B topic
  std::uint64_t bad_payloads = 0;       // protobuf / STATE JSON that does not decode
  std::uint64_t stale_deaths = 0;       // NDEATH whose bdSeq is not the current birth's (a late will)
  std::uint64_t deaths_ahead = 0;       // NDEATH of a session whose NBIRTH is not here yet (race)
  std::uint64_t births_dead_on_arrival = 0;  // NBIRTH whose NDEATH overtook it: node stays down
  std::uint64_t stale_device_deaths = 0;     // DDEATH of a node that is not alive
  std::uint64_t stale_states = 0;       // STATE older than the last one of that host
  std::uint64_t rebirths_requested = 0;
  std::uint64_t rebirths_suppressed = 0;  // rate limit
  std::uint64_t nodes_refused = 0;        // max_nodes
};

// An MQTT publish presenced should make (only NCMD Rebirth; presenced never publishes a STATE).
struct Command {
  std::string topic;
  std::string payload;
};

class Tracker {
 public:
  explicit Tracker(Options options = {}, ParseLimits limits = {});

  // One message under spBv1.0/. Appends device events (Parsed::What::DeviceEvent or, for a
  // retained STATE, DeviceResync; node before its devices) and commands. Returns None, or why
  // the message was dropped (BadPayload, BadJson, IdTooLong, PayloadTooLarge, UnknownTopic);
  // `detail` then says what was wrong in words for the log.
  ParseError on_message(std::string_view topic, std::string_view payload, bool retained, core::MonoTime now,
                        std::uint64_t wall_ms, std::vector<Parsed>& events, std::vector<Command>& commands,
                        std::string* detail = nullptr);

  const Counters& counters() const { return counters_; }
  const Options& options() const { return options_; }
  // bdSeq of the node's current birth (tests, API).
  std::optional<std::uint8_t> bd_seq(std::string_view node_id) const;
  bool alive(std::string_view node_id) const;
  std::size_t nodes() const { return nodes_.size(); }

 private:
  struct Node {
    bool alive = false;
    bool known = false;  // any birth, death or data seen
    bool born = false;   // an NBIRTH was seen (else alive was inferred from data)
    std::optional<std::uint8_t> bd_seq;
    std::optional<std::uint8_t> dead_ahead;  // an NDEATH for a birth not seen yet
    std::unordered_set<std::string> devices;  // alive devices (ids)
    std::int64_t last_rebirth = 0;
    bool rebirth_sent = false;
  };
  Options options_;
  ParseLimits limits_;
  Counters counters_;
  std::unordered_map<std::string, Node> nodes_;
  std::unordered_map<std::string, std::uint64_t> state_ts_;  // host -> newest STATE timestamp
};

}  // namespace presence::ingest::sparkplug
