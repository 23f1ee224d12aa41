// MQTT message -> what it means for presence. Pure functions: no clock, no I/O, no engine.
// The schemas are documented in docs/topics.md; keep the two in step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "presence/core/event.h"
#include "presence/ingest/topic_pattern.h"

namespace presence::ingest {

using Label = std::pair<std::string, std::string>;

// Bounds on untrusted input. A device id longer than max_id_bytes is rejected and counted:
// an attacker (or a bug) must not be able to intern unbounded strings into the engine.
struct ParseLimits {
  std::size_t max_id_bytes = 256;
  std::size_t max_payload_bytes = 64 * 1024;
  std::size_t max_labels = 32;
  std::size_t max_label_key_bytes = 64;
  std::size_t max_label_value_bytes = 256;
  // Top-level JSON fields taken as labels (besides everything inside a "labels" object).
  std::vector<std::string> label_keys{"firmware", "site", "model"};
  bool operator==(const ParseLimits&) const = default;
};

// Counted in presence_parse_errors_total{kind=...}.
enum class ParseError : std::uint8_t {
  None,
  UnknownTopic,     // a message on a subscribed filter that no pattern claims
  EmptyId,          // {id} level is empty
  IdTooLong,        // {id} longer than max_id_bytes: message rejected
  PayloadTooLarge,  // payload longer than max_payload_bytes
  BadJson,          // payload looked like JSON but did not parse / was not an object
  BadPayload,       // well-formed but meaningless (unknown state, missing boot id, bad uptime)
  BadLabel,         // a label was dropped (not a scalar, too long, too many)
};
inline constexpr std::size_t kParseErrorKinds = 8;
const char* to_string(ParseError error);

struct Parsed {
  enum class What : std::uint8_t {
    Ignore,        // nothing to do (e.g. empty payload clearing a retained status)
    Reject,        // unusable: `error` says why
    DeviceEvent,   // feed `kind`/`reason`/`source`/`session` for `id`, then set `labels`
    DeviceResync,  // retained replay: like DeviceEvent but NOT proof of life (Event::retained)
    BrokerBoot,    // broker-ext boot id of `node`
    BrokerUptime,  // $SYS uptime of `node` in seconds
    AliveBatch,    // broker-ext alive: a heartbeat for each of `ids` (and `boot` of `node`)
    ClientList,    // broker-ext clients: each of `ids` is connected now, session `sessions[i]`
  };
  What what = What::Ignore;
  // Set on Reject, and also on accepted messages that lost something (a label, or labels from
  // an unparsable heartbeat): count it, keep the message.
  ParseError error = ParseError::None;
  TopicKind topic_kind = TopicKind::Status;

  std::string id;
  core::EventKind kind = core::EventKind::Heartbeat;
  core::DisconnectReason reason = core::DisconnectReason::Unknown;
  core::Source source = core::Source::Status;
  std::uint64_t session = 0;
  std::vector<Label> labels;
  std::vector<std::string> ids;  // AliveBatch, ClientList
  std::vector<std::uint64_t> sessions;  // ClientList: one per id
  bool asleep = false;              // Connected from a `sleeping` word (source.h)
  std::uint8_t device_class = 0;    // 0 = no opinion; else the class to judge the device by
  std::uint16_t source_index = 0;   // the matching pattern's source (source.h); 0 = topics.*
  std::int32_t keepalive = -1;      // broker-ext connected: the client's keepalive (s); -1 unknown

  std::string node;
  std::string boot;  // broker-ext boot id (also filled by broker-ext client events when present)
  std::uint64_t uptime_seconds = 0;
};

// Classify one message. `retained` is the RETAIN flag as received: set only when the broker
// replays a stored message after a (re)subscribe, never for live traffic (MQTT 3.1.1 3.3.1.3,
// MQTT 5 retain-as-published off).
// `sources` (source.h) parses the messages of configured sources; without it every status and
// heartbeat pattern is parsed as source 0 (topics.*).
struct SourceTable;
Parsed parse_message(const TopicMatcher& matcher, std::string_view topic,
                     std::string_view payload, bool retained, const ParseLimits& limits,
                     const SourceTable* sources = nullptr);

// Individual parsers, exposed for tests.
Parsed parse_status(std::string_view payload, const ParseLimits& limits);
Parsed parse_heartbeat(std::string_view payload, const ParseLimits& limits);
Parsed parse_emqx(bool connected, std::string_view payload, const ParseLimits& limits);
Parsed parse_broker_ext_client(bool connected, std::string_view payload,
                               const ParseLimits& limits);
Parsed parse_broker_ext_boot(std::string_view payload, const ParseLimits& limits);
Parsed parse_broker_ext_alive(std::string_view payload, const ParseLimits& limits);
Parsed parse_uptime(std::string_view payload);
// {"v":1,"boot":..,"node":..,"part":1,"parts":1,"clients":[{"clientid":"a","session":7},...]}
Parsed parse_broker_ext_clients(std::string_view payload, const ParseLimits& limits);

// EMQX disconnect reasons (normal, kicked, discarded, takenover, keepalive_timeout, ...).
core::DisconnectReason emqx_reason(std::string_view reason);

// Remembers the last boot id and uptime per broker node. A changed boot id or a decreasing
// uptime means the broker restarted while we may not have noticed (persistence on, our own
// connection survived through a load balancer, ...).
class BrokerWatch {
 public:
  // True when `boot` differs from the last boot id seen for `node` (first sight is not a restart).
  bool on_boot(std::string_view node, std::string_view boot);
  // True when `seconds` is smaller than the last uptime seen for `node`.
  bool on_uptime(std::string_view node, std::uint64_t seconds);

 private:
  std::unordered_map<std::string, std::string> boots_;
  std::unordered_map<std::string, std::uint64_t> uptimes_;
};

// Shared by the payload parsers here and the configurable sources (source.cpp): one copy of how
// a JSON value becomes label text and how a label is bounded (issue 12 step 3).
namespace detail {
// A JSON scalar as label text; false for objects, arrays and null.
bool scalar_text(const nlohmann::json& v, std::string& out);
// Adds or replaces label key=value within limits; a label that breaks them sets
// ParseError::BadLabel and is dropped, the message is kept.
void put_label(Parsed& p, std::string_view key, std::string value, const ParseLimits& limits);
}  // namespace detail

}  // namespace presence::ingest
