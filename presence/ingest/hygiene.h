// Device hygiene (issue 14 item 6, "doctor"): from what presenced itself sees — birth and will
// messages with their retain flag on replay, broker-ext session events with the client's
// keepalive, heartbeats, which source each message came through — list the devices whose MQTT
// set-up will make presence wrong, each with what is wrong and the line of configuration or
// firmware setting that fixes it.
//
// Mosquitto 2.0's plugin API cannot read a client's will topic or will retain flag, so the will is
// judged by its effect: a broker-ext disconnect followed (or not) by an "offline" status, and the
// retained status the broker replays when presenced subscribes. Pure: the service feeds it on the
// engine thread with the batch's now; analyze() is a function of the observations and a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "presence/core/config.h"
#include "presence/core/time.h"
#include "presence/ingest/payload.h"

namespace presence::ingest {

// What one check found about one device (or, for fleet-wide checks, a device standing for many).
struct HygieneFinding {
  std::string id;
  std::string check;     // stable word: "no_last_will", "keepalive_too_long", ... (docs/doctor.md)
  std::string problem;   // what is wrong, with the evidence
  std::string fix;       // the line of configuration / firmware setting that fixes it
};

struct HygieneReport {
  std::size_t devices_checked = 0;
  std::size_t devices_dropped = 0;  // not observed: beyond max_devices (counted, never a crash)
  std::vector<std::pair<std::string, std::size_t>> counts;  // per check, every check listed
  std::vector<HygieneFinding> findings;                     // at most `limit`, by id then check
  bool truncated = false;
};

// What the analysis needs to know about the configuration.
struct HygieneRules {
  core::Config core;          // heartbeat_timeout_ceiling and device classes
  bool heartbeat_patterns = true;  // some heartbeat pattern is configured
  bool status_patterns = true;     // some status pattern is configured
  // As the observer's will_wait: a disconnect this old without a will counts as missed.
  core::Duration will_wait{std::chrono::seconds(10)};
  std::vector<std::string> source_names;  // index = source id (0 = topics.*)
};

// The checks, in report order (docs/doctor.md describes each).
inline constexpr const char* kHygieneChecks[] = {
    "no_last_will",          "will_topic_unmatched",  "birth_not_retained",
    "stale_retained_online", "birth_will_topics_differ", "keepalive_too_long",
    "births_without_heartbeats", "id_in_two_sources", "random_client_id_churn",
};

class HygieneObserver {
 public:
  // will_wait: a will arrives right after the broker notices the disconnect (before or after
  // broker-ext's session event); one not seen within will_wait of it is taken as missing.
  explicit HygieneObserver(std::size_t max_devices = 200000,
                           core::Duration will_wait = std::chrono::seconds(10))
      : max_devices_(max_devices), will_wait_(will_wait) {}

  // One parsed message (parse_message's result for `topic`, `retained` as received).
  void observe(const Parsed& p, std::string_view topic, bool retained, core::MonoTime now);
  // A device's class was set (1-based, 0 = none): its heartbeat clock for keepalive_too_long.
  void set_device_class(std::string_view id, std::uint8_t device_class);

  std::size_t size() const { return devices_.size(); }
  std::size_t dropped() const { return dropped_; }

  HygieneReport analyze(const HygieneRules& rules, core::MonoTime now,
                        std::size_t limit = 1000) const;

  // Heuristic, exposed for tests: a client id that looks generated at random (a UUID, a long
  // hex/base62 run, the default ids of Paho, MQTT.js, mosquitto_pub ...).
  static bool looks_random(std::string_view id);

 private:
  struct Device {
    core::MonoTime first_seen{};
    std::uint32_t births = 0;           // live "online" status
    std::uint32_t wills = 0;            // live "offline" status (lost / will words)
    std::uint32_t heartbeats = 0;
    std::uint32_t sessions = 0;         // broker-ext / EMQX connected events, client-list entries
    std::uint32_t disconnects = 0;      // broker-ext / EMQX disconnects (not session takeovers)
    std::uint32_t wills_after_disconnect = 0;
    std::uint32_t missed_wills = 0;     // disconnects with no will within will_wait
    std::int32_t keepalive = -1;        // seconds; -1 unknown (broker-ext reports it)
    core::MonoTime last_disconnect{};
    core::MonoTime last_will{};         // a will may reach us just before the session event
    bool disconnect_pending = false;    // a disconnect waiting for its will
    bool connected = false;             // per the broker's session events / client list
    bool broker_knows = false;          // some session event or client list mentioned it
    bool replay_online = false;         // the retained status replayed on subscribe says online
    bool replay_offline = false;        //                                      ... says offline
    std::uint8_t device_class = 0;
    std::uint64_t sources = 0;          // bit per source id (status and heartbeat), ids < 64
    std::string birth_topic;            // last topic an "online" status came on
    std::string will_topic;             // last topic an "offline" status came on
  };
  Device* find_or_add(std::string_view id, core::MonoTime now);

  std::size_t max_devices_;
  core::Duration will_wait_;
  bool list_seen_ = false;  // a client list arrived: who it leaves out is not connected
  std::size_t dropped_ = 0;
  // Looked up per message from the topic's string_view: no allocation for a known device.
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, Device, Hash, std::equal_to<>> devices_;
};

}  // namespace presence::ingest
