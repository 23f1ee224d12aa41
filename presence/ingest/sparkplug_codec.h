// Sparkplug B 3.0 wire format (issue 15): topic names, the protobuf payload (sparkplug_b.proto,
// protobuf-lite) and the primary host's STATE JSON. No presence logic: presence-sim encodes with
// it, presenced decodes with it (sparkplug.h), the fuzz target attacks it. docs/sparkplug.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace presence::ingest::sparkplug {

inline constexpr std::string_view kNamespace = "spBv1.0";
// The subscription that receives every Sparkplug B message (STATE included).
inline constexpr std::string_view kFilter = "spBv1.0/#";
inline constexpr std::string_view kRebirthMetric = "Node Control/Rebirth";
inline constexpr std::string_view kBdSeqMetric = "bdSeq";

enum class MessageType : std::uint8_t { NBIRTH, NDEATH, DBIRTH, DDEATH, NDATA, DDATA, NCMD, DCMD, STATE };
const char* to_string(MessageType type);

struct Topic {
  MessageType type = MessageType::NDATA;
  std::string group, edge, device;  // device: D* messages only
  std::string host;                 // STATE only
};
// spBv1.0/{group}/{type}/{edge}[/{device}] or spBv1.0/STATE/{host_id}. nullopt: not Sparkplug B,
// an unknown message type, an empty or wildcard id element, or a device on an N* message.
std::optional<Topic> parse_topic(std::string_view topic);

// What presenced reads from a payload.
struct Payload {
  std::optional<std::uint64_t> timestamp;
  std::optional<std::uint64_t> seq;
  std::optional<std::uint64_t> bd_seq;  // the "bdSeq" metric (NBIRTH, NDEATH)
  bool rebirth = false;                 // "Node Control/Rebirth" = true (NCMD)
  std::size_t metrics = 0;
};
// False with a reason on anything that is not a Sparkplug B protobuf payload. Never throws.
bool decode(std::string_view bytes, Payload& out, std::string& error);

// The simulator, the tests and the Rebirth command encode with this.
struct PayloadSpec {
  std::uint64_t timestamp = 0;
  std::optional<std::uint64_t> seq;
  std::optional<std::uint64_t> bd_seq;
  bool rebirth = false;
  std::vector<std::pair<std::string, double>> values;  // extra Double metrics (NDATA/DDATA)
};
std::string encode(const PayloadSpec& spec);

// Sparkplug 3.0 STATE payload: {"online":true|false,"timestamp":<ms>} (UTF-8 JSON, retained).
struct State {
  bool online = false;
  std::uint64_t timestamp = 0;
};
bool parse_state(std::string_view payload, State& out, std::string& error);
std::string encode_state(const State& state);

}  // namespace presence::ingest::sparkplug
