#include "presence/ingest/payload.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include <nlohmann/json.hpp>

#include "presence/ingest/source.h"

namespace presence::ingest {

using core::DisconnectReason;
using core::EventKind;
using core::Source;
using nlohmann::json;

const char* to_string(ParseError error) {
  switch (error) {
    case ParseError::None: return "none";
    case ParseError::UnknownTopic: return "unknown_topic";
    case ParseError::EmptyId: return "empty_id";
    case ParseError::IdTooLong: return "id_too_long";
    case ParseError::PayloadTooLarge: return "payload_too_large";
    case ParseError::BadJson: return "bad_json";
    case ParseError::BadPayload: return "bad_payload";
    case ParseError::BadLabel: return "bad_label";
  }
  return "?";
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool looks_like_json(std::string_view s) {
  s = trim(s);
  return !s.empty() && (s.front() == '{' || s.front() == '[');
}

// Parses an object; returns false (and leaves j discarded) on anything else.
bool parse_object(std::string_view payload, json& j) {
  j = json::parse(payload.begin(), payload.end(), nullptr, /*allow_exceptions=*/false);
  return !j.is_discarded() && j.is_object();
}

Parsed reject(ParseError error) {
  Parsed p;
  p.what = Parsed::What::Reject;
  p.error = error;
  return p;
}

void add_label(Parsed& p, const std::string& key, const json& value, const ParseLimits& limits) {
  std::string text;
  // Full label sets refuse even a key already present (unlike the sources' labels): kept as it was.
  if (!detail::scalar_text(value, text) || p.labels.size() >= limits.max_labels) {
    p.error = ParseError::BadLabel;
    return;
  }
  detail::put_label(p, key, std::move(text), limits);
}

void extract_labels(Parsed& p, const json& j, const ParseLimits& limits) {
  if (auto it = j.find("labels"); it != j.end()) {
    if (it->is_object()) {
      for (auto l = it->begin(); l != it->end(); ++l) add_label(p, l.key(), l.value(), limits);
    } else {
      p.error = ParseError::BadLabel;
    }
  }
  for (const auto& key : limits.label_keys) {
    if (auto it = j.find(key); it != j.end()) add_label(p, key, *it, limits);
  }
}

std::uint64_t json_u64(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return 0;
  if (it->is_number_unsigned()) return it->get<std::uint64_t>();
  if (it->is_number_integer()) {
    const auto v = it->get<std::int64_t>();
    return v > 0 ? static_cast<std::uint64_t>(v) : 0;
  }
  if (it->is_number_float()) {
    // Past 2^64 (e.g. "connected_at":2.1e21) the conversion is undefined behaviour (found by
    // test/fuzz/ingest_fuzz.cpp). Such a value means nothing as a session: treat it as absent
    // (0) rather than saturate, since a huge session would make every later real one look stale.
    const double v = it->get<double>();
    return v > 0 && v < 18446744073709551616.0 ? static_cast<std::uint64_t>(v) : 0;
  }
  return 0;
}

std::string json_id_text(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number()) return it->dump();
  return {};
}

DisconnectReason status_reason(std::string_view reason) {
  if (reason.empty()) return DisconnectReason::LastWill;  // the usual source of "offline"
  if (iequals(reason, "graceful") || iequals(reason, "normal") || iequals(reason, "shutdown"))
    return DisconnectReason::Graceful;
  if (iequals(reason, "last_will") || iequals(reason, "will")) return DisconnectReason::LastWill;
  if (iequals(reason, "keepalive_timeout")) return DisconnectReason::KeepaliveTimeout;
  return DisconnectReason::Unknown;
}

}  // namespace

DisconnectReason emqx_reason(std::string_view reason) {
  if (reason == "normal") return DisconnectReason::Graceful;
  if (reason == "takenover" || reason == "discarded") return DisconnectReason::Takeover;
  if (reason == "keepalive_timeout") return DisconnectReason::KeepaliveTimeout;
  if (reason == "kicked") return DisconnectReason::BrokerInitiated;
  return DisconnectReason::Unknown;
}

Parsed parse_status(std::string_view payload, const ParseLimits& limits) {
  if (payload.size() > limits.max_payload_bytes) return reject(ParseError::PayloadTooLarge);
  const std::string_view text = trim(payload);
  Parsed p;
  p.source = Source::Status;
  if (text.empty()) return p;  // Ignore: an empty retained message clears the status
  if (looks_like_json(text)) {
    json j;
    if (!parse_object(text, j)) return reject(ParseError::BadJson);
    auto st = j.find("state");
    if (st == j.end() || !st->is_string()) return reject(ParseError::BadPayload);
    const std::string state = st->get<std::string>();
    if (iequals(state, "online")) {
      p.kind = EventKind::Connected;
    } else if (iequals(state, "offline")) {
      p.kind = EventKind::Disconnected;
      std::string reason;
      if (auto r = j.find("reason"); r != j.end() && r->is_string()) reason = r->get<std::string>();
      p.reason = status_reason(reason);
    } else {
      return reject(ParseError::BadPayload);
    }
    extract_labels(p, j, limits);
    p.what = Parsed::What::DeviceEvent;
    return p;
  }
  if (iequals(text, "online")) {
    p.kind = EventKind::Connected;
  } else if (iequals(text, "offline")) {
    p.kind = EventKind::Disconnected;
    p.reason = DisconnectReason::LastWill;
  } else {
    return reject(ParseError::BadPayload);
  }
  p.what = Parsed::What::DeviceEvent;
  return p;
}

Parsed parse_heartbeat(std::string_view payload, const ParseLimits& limits) {
  // Any payload is proof of life; labels are a bonus. A broken or huge body costs the labels
  // (counted), never the heartbeat.
  Parsed p;
  p.what = Parsed::What::DeviceEvent;
  p.kind = EventKind::Heartbeat;
  p.source = Source::Heartbeat;
  if (payload.size() > limits.max_payload_bytes) {
    p.error = ParseError::PayloadTooLarge;
    return p;
  }
  if (looks_like_json(payload)) {
    json j;
    if (parse_object(payload, j))
      extract_labels(p, j, limits);
    else
      p.error = ParseError::BadJson;
  }
  return p;
}

Parsed parse_emqx(bool connected, std::string_view payload, const ParseLimits& limits) {
  if (payload.size() > limits.max_payload_bytes) return reject(ParseError::PayloadTooLarge);
  // The topic alone says what happened; the body adds the session and the reason. A broken body
  // is counted but the event still counts.
  Parsed p;
  p.what = Parsed::What::DeviceEvent;
  p.source = Source::Emqx;
  p.kind = connected ? EventKind::Connected : EventKind::Disconnected;
  json j;
  if (!parse_object(payload, j)) {
    p.error = ParseError::BadJson;
    return p;
  }
  // The JSON clientid is authoritative; the topic level may be encoded (docs/topics.md).
  if (auto c = j.find("clientid"); c != j.end() && c->is_string()) p.id = c->get<std::string>();
  // connected_at (ms) identifies the connection: a takeover's late disconnect carries the older
  // value and the engine ignores it (event.h).
  p.session = json_u64(j, "connected_at");
  if (!connected) {
    std::string reason;
    if (auto r = j.find("reason"); r != j.end() && r->is_string()) reason = r->get<std::string>();
    p.reason = emqx_reason(reason);
  }
  return p;
}

Parsed parse_broker_ext_client(bool connected, std::string_view payload,
                               const ParseLimits& limits) {
  if (payload.size() > limits.max_payload_bytes) return reject(ParseError::PayloadTooLarge);
  Parsed p;
  p.what = Parsed::What::DeviceEvent;
  p.source = Source::BrokerExt;
  p.kind = connected ? EventKind::Connected : EventKind::Disconnected;
  json j;
  if (!parse_object(payload, j)) {
    p.error = ParseError::BadJson;
    return p;
  }
  // broker-ext percent-encodes (or hashes, when long) the client id in the topic level; the JSON
  // clientid is authoritative (docs/broker-ext.md, "Topics and client ids").
  if (auto c = j.find("clientid"); c != j.end() && c->is_string()) p.id = c->get<std::string>();
  p.session = json_u64(j, "session");
  if (p.session == 0 && connected) p.session = json_u64(j, "seq");
  p.boot = json_id_text(j, "boot");
  // The device-hygiene report compares it with the heartbeat clock (hygiene.h).
  if (auto k = j.find("keepalive"); connected && k != j.end() && k->is_number_integer()) {
    const auto v = k->get<std::int64_t>();
    if (v >= 0 && v <= 65535) p.keepalive = static_cast<std::int32_t>(v);
  }
  if (!connected) {
    // Mosquitto 2.0 gives no disconnect reason (STYLE.md habit 5); broker-ext marks a
    // connection replaced by a newer one with the same client id as superseded.
    auto sup = j.find("superseded");
    if (sup != j.end() && sup->is_boolean() && sup->get<bool>()) {
      p.reason = DisconnectReason::Takeover;
    } else if (auto r = j.find("reason"); r != j.end() && r->is_string()) {
      p.reason = status_reason(r->get<std::string>());
      if (r->get<std::string>().empty()) p.reason = DisconnectReason::Unknown;
    }
  }
  return p;
}

Parsed parse_broker_ext_boot(std::string_view payload, const ParseLimits& limits) {
  if (payload.size() > limits.max_payload_bytes) return reject(ParseError::PayloadTooLarge);
  json j;
  if (!parse_object(payload, j)) return reject(ParseError::BadJson);
  Parsed p;
  p.boot = json_id_text(j, "boot");
  if (p.boot.empty()) return reject(ParseError::BadPayload);
  p.what = Parsed::What::BrokerBoot;
  return p;
}

// {"v":1,"node":"n1","boot":"<id>","seq":7,"ids":["dev-1","dev-2"]} (docs/broker-ext.md). One
// message stands for up to thousands of heartbeats: a bad id costs that id (counted), never the
// others.
Parsed parse_broker_ext_alive(std::string_view payload, const ParseLimits& limits) {
  if (payload.size() > limits.max_payload_bytes) return reject(ParseError::PayloadTooLarge);
  json j;
  if (!parse_object(payload, j)) return reject(ParseError::BadJson);
  const auto ids = j.find("ids");
  if (ids == j.end() || !ids->is_array()) return reject(ParseError::BadPayload);
  Parsed p;
  p.what = Parsed::What::AliveBatch;
  p.kind = EventKind::Heartbeat;
  p.source = Source::Heartbeat;
  p.boot = json_id_text(j, "boot");
  p.ids.reserve(ids->size());
  for (const auto& v : *ids) {
    if (!v.is_string() || v.get_ref<const std::string&>().empty()) {
      p.error = ParseError::BadPayload;
      continue;
    }
    const auto& id = v.get_ref<const std::string&>();
    if (id.size() > limits.max_id_bytes) {
      p.error = ParseError::IdTooLong;
      continue;
    }
    p.ids.push_back(id);
  }
  return p;
}

// Start-up reconciliation (issue 14): the reply to presenced's request on every (re)connect. A
// bad entry costs that entry (counted), never the others.
Parsed parse_broker_ext_clients(std::string_view payload, const ParseLimits& limits) {
  // The list of a large broker is long: bounded by 64 x max_payload_bytes, not max_payload_bytes.
  if (payload.size() > 64 * limits.max_payload_bytes) return reject(ParseError::PayloadTooLarge);
  json j;
  if (!parse_object(payload, j)) return reject(ParseError::BadJson);
  const auto clients = j.find("clients");
  if (clients == j.end() || !clients->is_array()) return reject(ParseError::BadPayload);
  Parsed p;
  p.what = Parsed::What::ClientList;
  p.kind = EventKind::Connected;
  p.source = Source::BrokerExt;
  p.boot = json_id_text(j, "boot");
  p.ids.reserve(clients->size());
  for (const auto& c : *clients) {
    std::string id = c.is_object() ? json_id_text(c, "clientid") : std::string();
    if (id.empty() || id.size() > limits.max_id_bytes) {
      p.error = id.empty() ? ParseError::BadPayload : ParseError::IdTooLong;
      continue;
    }
    p.ids.push_back(std::move(id));
    p.sessions.push_back(json_u64(c, "session"));
  }
  return p;
}

Parsed parse_uptime(std::string_view payload) {
  // Mosquitto: "12345 seconds"; EMQX 4: "1 days, 2 hours, 3 minutes, 4 seconds"; a bare number
  // is seconds.
  std::string_view text = trim(payload);
  if (text.empty()) return reject(ParseError::BadPayload);
  std::uint64_t total = 0;
  bool any = false;
  while (!text.empty()) {
    std::uint64_t n = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc{} || ptr == text.data()) return reject(ParseError::BadPayload);
    text.remove_prefix(static_cast<std::size_t>(ptr - text.data()));
    text = trim(text);
    std::size_t unit_len = 0;
    while (unit_len < text.size() && std::isalpha(static_cast<unsigned char>(text[unit_len])))
      ++unit_len;
    const std::string_view unit = text.substr(0, unit_len);
    std::uint64_t scale = 0;
    if (unit.empty() || unit == "s" || unit == "second" || unit == "seconds") scale = 1;
    else if (unit == "minute" || unit == "minutes" || unit == "mins") scale = 60;
    else if (unit == "hour" || unit == "hours") scale = 3600;
    else if (unit == "day" || unit == "days") scale = 86400;
    else return reject(ParseError::BadPayload);
    if (unit.empty() && any) return reject(ParseError::BadPayload);
    total += n * scale;
    any = true;
    text.remove_prefix(unit_len);
    text = trim(text);
    if (!text.empty() && text.front() == ',') text = trim(text.substr(1));
    if (unit.empty() && !text.empty()) return reject(ParseError::BadPayload);
  }
  Parsed p;
  p.what = Parsed::What::BrokerUptime;
  p.uptime_seconds = total;
  return p;
}

Parsed parse_message(const TopicMatcher& matcher, std::string_view topic,
                     std::string_view payload, bool retained, const ParseLimits& limits,
                     const SourceTable* sources) {
  TopicMatch match;
  if (!matcher.match(topic, match)) return reject(ParseError::UnknownTopic);
  const TopicMatch* m = &match;
  if (needs_device_id(m->kind)) {
    if (m->id.empty()) return reject(ParseError::EmptyId);
    // broker-ext may put a hashed stand-in for a long id in the topic; the JSON id is checked
    // below. Everything else is bounded here, before any JSON is parsed.
    if (m->id.size() > limits.max_id_bytes) return reject(ParseError::IdTooLong);
  }
  // A configured source (issue 14) parses with its own words and label paths.
  const CompiledSource* source = sources != nullptr ? sources->find(m->source) : nullptr;
  if (source != nullptr && source->legacy_payload) source = nullptr;
  Parsed p;
  switch (m->kind) {
    case TopicKind::Status:
      p = source ? parse_source_status(*source, payload, limits) : parse_status(payload, limits);
      break;
    case TopicKind::Heartbeat:
      p = source ? parse_source_heartbeat(*source, payload, limits)
                 : parse_heartbeat(payload, limits);
      break;
    case TopicKind::Ignore: return Parsed{};
    case TopicKind::EmqxConnected: p = parse_emqx(true, payload, limits); break;
    case TopicKind::EmqxDisconnected: p = parse_emqx(false, payload, limits); break;
    case TopicKind::BrokerExtConnected: p = parse_broker_ext_client(true, payload, limits); break;
    case TopicKind::BrokerExtDisconnected:
      p = parse_broker_ext_client(false, payload, limits);
      break;
    case TopicKind::BrokerExtBoot:
    case TopicKind::BrokerExtHeartbeat: p = parse_broker_ext_boot(payload, limits); break;
    case TopicKind::BrokerExtAlive: p = parse_broker_ext_alive(payload, limits); break;
    case TopicKind::BrokerExtClients: p = parse_broker_ext_clients(payload, limits); break;
    case TopicKind::Uptime: p = parse_uptime(payload); break;
  }
  p.topic_kind = m->kind;
  p.source_index = m->source;
  p.node = std::string(m->node);
  // An alive batch is live evidence only; a retained copy (never published so) would be stale.
  if ((p.what == Parsed::What::AliveBatch || p.what == Parsed::What::ClientList) && retained)
    return Parsed{};
  if (p.what == Parsed::What::DeviceEvent) {
    if (p.id.empty()) p.id = std::string(m->id);
    if (p.id.size() > limits.max_id_bytes) return reject(ParseError::IdTooLong);
    if (sources != nullptr) apply_source(*sources, *m, p, limits);
    // mosquitto #1165: a restarted broker replays the retained "online" of a device that may be
    // long gone. A replay is not proof of life: it only introduces the device and its labels;
    // the engine's restart grace then waits for fresh evidence (docs/topics.md).
    if (retained) p.what = Parsed::What::DeviceResync;
  }
  return p;
}

bool BrokerWatch::on_boot(std::string_view node, std::string_view boot) {
  auto [it, inserted] = boots_.try_emplace(std::string(node), std::string(boot));
  if (inserted) return false;
  if (it->second == boot) return false;
  it->second = std::string(boot);
  return true;
}

bool BrokerWatch::on_uptime(std::string_view node, std::uint64_t seconds) {
  auto [it, inserted] = uptimes_.try_emplace(std::string(node), seconds);
  if (inserted) return false;
  const bool restarted = seconds < it->second;
  it->second = seconds;
  return restarted;
}

namespace detail {

bool scalar_text(const json& v, std::string& out) {
  if (v.is_string()) {
    out = v.get<std::string>();
    return true;
  }
  if (v.is_boolean()) {
    out = v.get<bool>() ? "true" : "false";
    return true;
  }
  if (v.is_number()) {
    out = v.dump();
    return true;
  }
  return false;
}

void put_label(Parsed& p, std::string_view key, std::string value, const ParseLimits& limits) {
  if (key.empty() || key.size() > limits.max_label_key_bytes ||
      value.size() > limits.max_label_value_bytes) {
    p.error = ParseError::BadLabel;
    return;
  }
  for (auto& l : p.labels) {
    if (l.first == key) {
      l.second = std::move(value);
      return;
    }
  }
  if (p.labels.size() >= limits.max_labels) {
    p.error = ParseError::BadLabel;
    return;
  }
  p.labels.emplace_back(std::string(key), std::move(value));
}

}  // namespace detail

}  // namespace presence::ingest
