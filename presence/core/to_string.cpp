// Names of enums: the same words appear in retained payloads ("reason"), metrics and docs.
#include "presence/core/decision.h"
#include "presence/core/event.h"

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
  switch (state) {
    case State::Unknown: return "unknown";
    case State::Online: return "online";
    case State::Suspect: return "suspect";
    case State::Offline: return "offline";
    case State::Flapping: return "flapping";
  }
  return "unknown";
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
  switch (severity) {
    case Severity::Critical: return "critical";
    case Severity::Error: return "error";
    case Severity::Warning: return "warning";
    case Severity::Info: return "info";
  }
  return "unknown";
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

}  // namespace presence::core
