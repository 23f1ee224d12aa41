// Decisions out of the core: per-device state transitions, and alert intents from policy.
// Adapters persist, publish and send them; the core never does I/O.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "presence/core/event.h"
#include "presence/core/time.h"

namespace presence::core {

enum class State : std::uint8_t { Unknown, Online, Suspect, Offline, Flapping };

// Why a transition happened: the same word lands in the retained MQTT payload's "reason".
enum class Cause : std::uint8_t {
  Connected,          // birth / session connect
  Heartbeat,          // proof of life
  Disconnected,       // see Transition::disconnect_reason
  HeartbeatTimeout,   // silent past the adaptive heartbeat timeout
  OfflineGrace,       // offline_grace ran out while suspect
  StableOnline,       // online_stable_for elapsed after offline/flapping
  FlapStart,
  FlapStop,
  RestartGrace,       // restart grace ended and the device never showed fresh evidence
  Resync,             // loaded from a snapshot / retained state
};

struct Transition {
  DeviceIndex device = kNoDevice;
  State from = State::Unknown;
  State to = State::Unknown;
  Cause cause = Cause::Connected;
  DisconnectReason disconnect_reason = DisconnectReason::Unknown;
  MonoTime at{};
};

enum class Severity : std::uint8_t { Critical, Error, Warning, Info };

// What should be paged. The alert room maps this onto PagerDuty/Slack/webhook payloads; the
// outbox adds wall-clock timestamps. dedup_key is stable across trigger and resolve.
struct AlertIntent {
  // Notify = one-shot context, never a page: never a PagerDuty trigger, no resolve follows
  // (issue 11: a healed drop is an info "blip" notice, not a critical page). Severity::Info.
  enum class Action : std::uint8_t { Trigger, Resolve, Notify };
  enum class Type : std::uint8_t {
    DeviceOffline,
    DeviceFlapping,
    DeviceGroup,      // several unrelated device alerts grouped (group_wait / group_interval)
    FleetIncident,    // fleet/segment drop
    ReconnectStorm,
    Stragglers,       // devices that did not come back after an incident resolved
    Blind,            // presenced cannot see the broker
    Persistence,      // presenced cannot write its store (outbox, snapshot): issue 19 item 6
    DeviceCap,        // presence.max_devices reached: new device ids are refused (issue 19 item 9)
    Overloaded,       // presenced has been behind for overload.alert_after (issue 16)
  };
  Action action = Action::Trigger;
  Type type = Type::DeviceOffline;
  Severity severity = Severity::Error;
  std::string dedup_key;  // <= 255 chars
  std::string summary;    // <= 1024 chars
  std::string component;  // e.g. device id or segment
  std::string group;      // e.g. site
  std::string cls;        // PagerDuty "class"
  std::vector<std::pair<std::string, std::string>> details;
  MonoTime at{};
};

const char* to_string(State);
const char* to_string(Cause);
const char* to_string(Severity);
const char* to_string(AlertIntent::Type);

}  // namespace presence::core
