// Events into the core. Adapters (ingest, replay, bench) turn MQTT messages or log lines into
// these; the core turns them into decisions. Small and trivially copyable: the hot path moves
// millions a second.
#pragma once

#include <cstdint>
#include <string_view>

#include "presence/core/time.h"

namespace presence::core {

// Dense index of an interned device id (Engine::intern). Stable for the engine's lifetime.
using DeviceIndex = std::uint32_t;
inline constexpr DeviceIndex kNoDevice = 0xFFFFFFFFu;

enum class EventKind : std::uint8_t {
  Connected,     // birth message, or a broker session event saying the client connected
  Heartbeat,     // any proof of life that is not a (re)connect
  Disconnected,  // last-will, broker session event, explicit "offline" status
  // Fleet-wide, device == kNoDevice:
  BrokerRestarted,  // boot id changed, $SYS uptime reset, or our connection saw the broker go away
  IngestLost,       // presenced lost its broker connection: from now on it is blind
  IngestRestored,   // presenced is connected and subscribed again: restart grace begins
  // presenced itself is behind (ingest lag, inbox depth, broker-reported drops, lost probes:
  // core/overload.h decides): heartbeats may be late or lost on the way to it, so silence proves
  // nothing and no device is convicted on silence alone until OverloadEnded (issue 16).
  OverloadBegan,
  OverloadEnded,    // caught up: silence is observed again, counted from here
};

enum class DisconnectReason : std::uint8_t {
  Unknown,
  Graceful,          // client sent DISCONNECT / published "offline" itself
  LastWill,          // broker published the client's will
  KeepaliveTimeout,  // broker noticed silence
  Takeover,          // the session was taken over by a newer connection with the same id
  BrokerInitiated,   // kicked, banned, broker shutting down
};

// Where an event came from. Several sources can report one device (docs/topics.md explains how
// they combine); the core uses it for diagnostics and to weigh authority.
enum class Source : std::uint8_t { Status, Heartbeat, BrokerExt, Emqx, Replay };

struct Event {
  EventKind kind = EventKind::Heartbeat;
  DisconnectReason reason = DisconnectReason::Unknown;
  Source source = Source::Replay;
  DeviceIndex device = kNoDevice;
  // Identity of the connection the event belongs to, increasing within a broker boot (broker-ext
  // per-boot sequence of the CONNECT, EMQX connected_at). 0 = unknown: order by arrival.
  // A Disconnected whose session is older than the device's current session is stale (a session
  // takeover delivers the old connection's disconnect after the new connect) and is ignored.
  std::uint64_t session = 0;
  MonoTime at{};
  // The message was a retained replay (MQTT retain flag on delivery): it restates an old state and
  // is not proof of life. It only seeds a device the engine has never seen (cause Resync) and never
  // counts as fresh evidence in restart grace (mosquitto #1165: a restarted broker replays
  // "online" for devices that are gone).
  bool retained = false;
  // Connected only: the device said it is going to sleep (Homie `$state` = sleeping, issue 14).
  // It is up but silent by design: heartbeat silence is not judged until it heartbeats again.
  bool asleep = false;
  // The message came on a different broker connection from the one that carries departures
  // (ingest's bulk heartbeat reader; wills and broker-ext events come through Paho). Its order
  // against a departure is unknown: a heartbeat the device sent just before it died can arrive
  // after its last-will. The engine does not let such a heartbeat undo a departure it saw less
  // than Config::reorder_window before (reordered_heartbeats).
  bool unordered = false;
};

const char* to_string(EventKind);
const char* to_string(DisconnectReason);
const char* to_string(Source);

}  // namespace presence::core
