// The pure model of a simulated fleet: durations and rates in text, label mixes, device specs,
// and the reconnect behaviours (issue 6). No sockets, no clocks: time comes in as milliseconds and
// randomness from a seeded Rng, so unit tests drive it deterministically.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace presence::sim {

// Milliseconds of the simulator's steady clock (since the run started), or a duration.
using Millis = std::int64_t;

// A value or an error message, across the parser boundary (STYLE.md habit 7).
template <class T>
struct Expected {
  std::optional<T> value;
  std::string error;

  static Expected fail(std::string message) { return Expected{std::nullopt, std::move(message)}; }
  explicit operator bool() const { return value.has_value(); }
  T& operator*() { return *value; }
  const T& operator*() const { return *value; }
  T* operator->() { return &*value; }
  const T* operator->() const { return &*value; }
};

template <class T>
Expected<T> ok(T v) {
  return Expected<T>{std::move(v), {}};
}

// splitmix64: small, fast, and the same sequence on every platform and standard library (the
// <random> distributions are not), so a seed reproduces a fleet anywhere.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next();
  double uniform01();                              // [0, 1)
  Millis uniform(Millis lo, Millis hi);            // [lo, hi]; lo when hi <= lo
  double exponential(double mean);                 // > 0
  std::size_t index(std::size_t n);                // [0, n)

 private:
  std::uint64_t state_;
};

// "250ms", "30s", "5m", "2h", "1.5s"; a bare number is seconds.
Expected<Millis> parse_duration(std::string_view text);
// "lo-hi" (each a duration) or one duration (lo == hi).
struct DurationRange {
  Millis lo = 0;
  Millis hi = 0;
};
Expected<DurationRange> parse_duration_range(std::string_view text);
// "5/s", "300/min", "2/h", or a bare number per second. Returns events per second.
Expected<double> parse_rate(std::string_view text);
std::string format_duration(Millis ms);

// A weighted mix: "3.7.2:60,3.8.0-b3:5,07.06:35". Weights are relative (need not sum to 100).
struct Mix {
  std::vector<std::pair<std::string, double>> entries;
};
Expected<Mix> parse_mix(std::string_view text);
// Assigns one entry index to each of n devices with exact proportions (largest remainder), in a
// seeded random order: a 60/40 mix of 200 devices gives exactly 120 and 80.
std::vector<std::size_t> assign_mix(const Mix& mix, std::size_t n, Rng& rng);

// What a device does after it loses its session (issue 6; incidents 000 and 001).
enum class Behaviour : std::uint8_t {
  WellBehaved,  // exponential backoff with jitter
  TightLoop,    // incident 000: old firmware reconnects at once, again and again
  Stuck,        // incident 001: never reconnects after a lost session until revived
  SlowJoiner,   // reconnects only after a long random delay
};
const char* to_string(Behaviour b);
std::optional<Behaviour> parse_behaviour(std::string_view name);

struct ReconnectPolicy {
  Millis backoff_initial = 1000;
  Millis backoff_max = 60'000;
  double backoff_multiplier = 2.0;
  Millis tight_loop_delay = 50;  // upper bound of the tight loop's pause, uniform [0, this]
  DurationRange slow_joiner_delay{60'000, 300'000};
};

// Delay before the next connect attempt, or nullopt for never.
//  failures: consecutive failed attempts since the device last lost its session (0 for the first
//            attempt after the loss, or the first connect of the run).
//  after_session_loss: the device had a session and lost it (versus never having connected).
// Well-behaved uses "equal jitter": cap/2 + uniform[0, cap/2], cap = min(max, initial * mult^n),
// so even the first retry waits and a whole fleet does not come back in the same millisecond.
std::optional<Millis> reconnect_delay(Behaviour b, const ReconnectPolicy& p, std::uint32_t failures,
                                      bool after_session_loss, Rng& rng);

// Next heartbeat: interval * (1 + uniform[-jitter, +jitter]), at least 1 ms.
Millis heartbeat_delay(Millis interval, double jitter, Rng& rng);

struct DeviceSpec {
  std::string id;
  std::string firmware;
  std::string site;
  std::string model;
  Behaviour behaviour = Behaviour::WellBehaved;
};

struct FleetOptions {
  std::size_t devices = 1000;
  std::size_t first_id = 1;
  std::string id_prefix = "dev-";
  int id_width = 6;
  std::uint64_t seed = 1;
  Mix firmware{{{"3.7.2", 60}, {"3.8.0-b3", 5}, {"07.06", 35}}};
  Mix site{{{"site-a", 50}, {"site-b", 30}, {"site-c", 20}}};
  Mix model{{{"gw-100", 70}, {"gw-200", 30}}};
  Mix behaviour{{{"well_behaved", 100}}};
};

// Builds the fleet. Fails if a behaviour mix entry names an unknown behaviour.
Expected<std::vector<DeviceSpec>> build_fleet(const FleetOptions& o);

// Label match for timeline actions: every given key must equal the device's value. Keys are
// firmware, site, model, behaviour, and id (exact device ids, any of).
struct Match {
  std::vector<std::pair<std::string, std::string>> labels;
  std::vector<std::string> ids;
  bool empty() const { return labels.empty() && ids.empty(); }
};
bool matches(const Match& m, const DeviceSpec& d);
std::string to_string(const Match& m);

}  // namespace presence::sim

namespace presence::sim {

// "devices/{id}/status" with {id} replaced.
std::string topic_for(std::string_view pattern, std::string_view id);
// Birth (online) and will (offline) payloads on the status topic. json: {"v":1,"state":..,
// "firmware":..,"site":..,"model":..}; plain: "online" / "offline".
std::string status_payload(const DeviceSpec& d, bool online, bool json);
// {"v":1,"seq":N} or the sequence number as plain text.
std::string heartbeat_payload(std::uint64_t seq, bool json);

}  // namespace presence::sim
