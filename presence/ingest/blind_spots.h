// What presenced tells the engine about its own blind spots (issue 3), as a pure state machine:
// the service calls it from the engine thread on connection events and on broker-wide messages,
// and feeds the fleet events it returns. No clock, no I/O: unit-tested in
// test/unit/ingest/blind_spots_test.cpp.
//
// - connection lost                     -> IngestLost (the engine is blind)
// - connected AND subscribed again      -> IngestRestored (restart grace begins)
// - evidence that the broker restarted  -> BrokerRestarted, at most once per reconnect:
//     a persistent session the broker no longer has (CONNACK session-present = 0),
//     MQTT 5 DISCONNECT "server shutting down", a new broker-ext boot id, a $SYS uptime decrease.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "presence/core/event.h"
#include "presence/ingest/payload.h"

namespace presence::ingest {

class BlindSpots {
 public:
  using Kinds = std::vector<core::EventKind>;

  explicit BlindSpots(bool persistent_session) : persistent_(persistent_session) {}

  Kinds connection_lost();
  void connack(bool session_present);
  void server_shutting_down() { evidence_ = "server shutting down"; }
  Kinds subscribed();
  // A boot id seen on any broker-ext topic. Returns BrokerRestarted when it changed.
  Kinds boot(std::string_view node, std::string_view boot_id);
  Kinds uptime(std::string_view node, std::uint64_t seconds);

  // broker-ext session numbers restart with each boot; this keeps them increasing across boots
  // (boot epoch in the high bits) so a new boot's session 1 is never "older" than the old boot's
  // session 900 (event.h: older sessions are stale).
  std::uint64_t session(std::string_view node, std::uint64_t per_boot_session) const;

  bool connected() const { return up_; }
  std::uint64_t restarts() const { return restarts_; }
  // Why the last BrokerRestarted was sent (for the log).
  const std::string& last_reason() const { return last_reason_; }

  static constexpr int kBootEpochShift = 40;

 private:
  Kinds restarted(const char* why);

  bool persistent_;
  bool up_ = false;
  bool ever_up_ = false;
  bool reported_ = false;  // BrokerRestarted sent since the last connection loss
  std::string evidence_;   // restart evidence gathered while reconnecting
  std::string last_reason_;
  std::uint64_t restarts_ = 0;
  BrokerWatch watch_;
  std::unordered_map<std::string, std::uint64_t> epoch_;  // per node
  std::unordered_map<std::string, std::string> boot_;
  std::uint64_t next_epoch_ = 1;
};

}  // namespace presence::ingest
