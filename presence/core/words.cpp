// Names of enums: the same words appear in retained payloads ("reason"), metrics, snapshots, alert
// payloads and docs. The one table of each (words.h says why).
#include "presence/core/words.h"

namespace presence::core {

const char* to_string(EventKind kind) {
  switch (kind) {
    case EventKind::Connected: return "connected";
    case EventKind::Heartbeat: return "heartbeat";
    case EventKind::Disconnected: return "disconnected";
    case EventKind::BrokerRestarted: return "broker_restarted";
    case EventKind::IngestLost: return "ingest_lost";
    case EventKind::IngestRestored: return "ingest_restored";
    case EventKind::OverloadBegan: return "overload_began";
    case EventKind::OverloadEnded: return "overload_ended";
  }
  return "unknown";
}

const char* to_string(DisconnectReason reason) {
  switch (reason) {
    case DisconnectReason::Unknown: return "unknown";
    case DisconnectReason::Graceful: return "graceful";
    case DisconnectReason::LastWill: return "last_will";
    case DisconnectReason::KeepaliveTimeout: return "keepalive_timeout";
    case DisconnectReason::Takeover: return "takeover";
    case DisconnectReason::BrokerInitiated: return "broker_initiated";
  }
  return "unknown";
}

const char* to_string(Source source) {
  switch (source) {
    case Source::Status: return "status";
    case Source::Heartbeat: return "heartbeat";
    case Source::BrokerExt: return "broker_ext";
    case Source::Emqx: return "emqx";
    case Source::Replay: return "replay";
  }
  return "unknown";
}

const char* to_string(State state) {
  const auto i = static_cast<std::size_t>(state);
  return i < kStateWords.size() ? kStateWords[i] : "unknown";
}

const char* to_string(Cause cause) {
  switch (cause) {
    case Cause::Connected: return "connected";
    case Cause::Heartbeat: return "heartbeat";
    case Cause::Disconnected: return "disconnected";
    case Cause::HeartbeatTimeout: return "heartbeat_timeout";
    case Cause::OfflineGrace: return "offline_grace";
    case Cause::StableOnline: return "stable_online";
    case Cause::FlapStart: return "flap_start";
    case Cause::FlapStop: return "flap_stop";
    case Cause::RestartGrace: return "restart_grace";
    case Cause::Resync: return "resync";
  }
  return "unknown";
}

const char* to_string(Severity severity) {
  const auto i = static_cast<std::size_t>(severity);
  return i < kSeverityWords.size() ? kSeverityWords[i] : "unknown";
}

const char* to_string(AlertIntent::Type type) {
  switch (type) {
    case AlertIntent::Type::DeviceOffline: return "device_offline";
    case AlertIntent::Type::DeviceFlapping: return "device_flapping";
    case AlertIntent::Type::DeviceGroup: return "device_group";
    case AlertIntent::Type::FleetIncident: return "fleet_incident";
    case AlertIntent::Type::ReconnectStorm: return "reconnect_storm";
    case AlertIntent::Type::Stragglers: return "stragglers";
    case AlertIntent::Type::Blind: return "blind";
    case AlertIntent::Type::Persistence: return "persistence";
    case AlertIntent::Type::DeviceCap: return "device_cap";
    case AlertIntent::Type::Overloaded: return "overloaded";
  }
  return "unknown";
}

const char* to_string(AlertIntent::Action action) {
  switch (action) {
    case AlertIntent::Action::Trigger: return "trigger";
    case AlertIntent::Action::Resolve: return "resolve";
    case AlertIntent::Action::Notify: return "notify";
  }
  return "unknown";
}

const char* to_string(IncidentKind k) {
  switch (k) {
    case IncidentKind::Drop: return "drop";
    case IncidentKind::Storm: return "storm";
    case IncidentKind::Blind: return "blind";
  }
  return "?";
}

const char* to_string(IncidentStage s) {
  switch (s) {
    case IncidentStage::Open: return "open";
    case IncidentStage::Recovering: return "recovering";
    case IncidentStage::Stragglers: return "stragglers";
    case IncidentStage::Closed: return "closed";
  }
  return "?";
}

const char* to_string(IncidentEvent::Kind k) {
  switch (k) {
    case IncidentEvent::Kind::Opened: return "opened";
    case IncidentEvent::Kind::Resolved: return "resolved";
    case IncidentEvent::Kind::Stragglers: return "stragglers";
    case IncidentEvent::Kind::Closed: return "closed";
  }
  return "?";
}

namespace {
// The reverse of to_string over an enum's values [0, count).
template <class E>
std::optional<E> from_word(std::string_view word, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    const auto e = static_cast<E>(i);
    if (word == to_string(e)) return e;
  }
  return std::nullopt;
}
}  // namespace

const char* shown_state_word(State state, std::string_view down_ancestor) {
  // The drops of docs/core.md "Down and unreachable": suspect, offline or flapping.
  const bool down = state == State::Suspect || state == State::Offline || state == State::Flapping;
  return down && !down_ancestor.empty() ? kUnreachableWord.data() : to_string(state);
}

std::optional<State> state_from_word(std::string_view word) {
  return from_word<State>(word, kStateWords.size());
}
std::optional<Severity> severity_from_word(std::string_view word) {
  return from_word<Severity>(word, kSeverityWords.size());
}
std::optional<IncidentKind> incident_kind_from_word(std::string_view word) {
  return from_word<IncidentKind>(word, 3);
}
std::optional<IncidentStage> incident_stage_from_word(std::string_view word) {
  return from_word<IncidentStage>(word, 4);
}

}  // namespace presence::core
