// presence-sim options and the scenario file: options (the same names as the command-line flags)
// and a timeline of actions (docs/simulator.md, "Scenario file"). Pure parsing: no I/O besides
// reading the text the caller passes in.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "presence/tools/sim/fleet.h"

namespace presence::sim {

struct BrokerAddress {
  std::string host = "127.0.0.1";
  int port = 1883;
};

// A process the timeline may signal and (re)start: the broker or presenced.
struct ProcessTarget {
  std::string command;  // run with /bin/sh -c by start/restart actions
  pid_t pid = 0;        // --broker-pid / --presenced-pid
  std::string pidfile;  // re-read at every use (a restart script may write a new pid)
};

struct SimOptions {
  FleetOptions fleet;
  ReconnectPolicy reconnect;
  std::vector<BrokerAddress> brokers{BrokerAddress{}};
  // Bind to 127.0.0.1 .. 127.0.0.N round-robin. The kernel picks an ephemeral port per (source,
  // destination) pair: one pair has ~28k ports (32768-60999) and connect() gets slow long before
  // they run out, worse with TIME_WAITs of an earlier run. 0 = auto: one address per 5000 devices
  // on a broker (docs/simulator.md, "Limits").
  int source_addrs = 0;
  int processes = 1;     // worker processes (each has its own RLIMIT_NOFILE)
  double connect_rate = 1000;  // initial connects per second (the start-up ramp)
  Millis keepalive = 60'000;
  Millis heartbeat = 30'000;  // 0 = no heartbeats
  double heartbeat_jitter = 0.1;
  int heartbeat_qos = 0;
  int status_qos = 1;
  std::string payload = "json";  // json | plain
  std::string status_topic = "devices/{id}/status";
  std::string heartbeat_topic = "devices/{id}/heartbeat";
  // Sparkplug B edge-node mode (issue 15, docs/simulator.md "Sparkplug B"): every simulated
  // client is an edge node of this group ("" = off) with sparkplug_devices devices behind it:
  // will = NDEATH with the connection's bdSeq, NBIRTH + one DBIRTH per device when online, NDATA
  // as the heartbeat, NDEATH before a clean disconnect. Status/heartbeat topics are then unused.
  std::string sparkplug_group;
  int sparkplug_devices = 0;
  Millis connect_timeout = 10'000;
  double failure_rate = 0;  // background real failures per second, fleet-wide
  DurationRange failure_down{30'000, 300'000};
  double failure_never = 0;  // share of background failures that never come back
  Millis duration = 0;       // 0 = until the timeline ends it or SIGINT/SIGTERM
  std::string out = "-";
  Millis progress = 1000;  // 0 = no progress lines on stderr
  bool device_lines = true;
  ProcessTarget broker;
  ProcessTarget presenced;
  std::string scenario;
};

// source_addrs for a fleet: the configured count, or for auto (0) one per 5000 devices a broker.
int effective_source_addrs(const SimOptions& o);

// Sets one option by name (underscores; "--tight-loop-delay" maps to tight_loop_delay). Returns an
// error message, empty on success.
std::string set_option(SimOptions& o, std::string_view name, std::string_view value);
// Names of every option, for --help and tests.
std::vector<std::string> option_names();
std::string usage();

enum class ActionKind {
  Exec,        // run a shell command
  Signal,      // send a signal to the broker, presenced or a pid
  Start,       // run the target's command (broker_cmd / presenced_cmd)
  Restart,     // signal, wait for it to exit (up to `wait`), then start
  Drop,        // close a share of connections abruptly (no DISCONNECT): last-wills fire
  Flap,        // a cohort drops and comes back every period for a while
  Die,         // devices really die: abrupt close, back after back_after or never
  Revive,      // dead or stuck devices power-cycle and connect again
  Disconnect,  // clean DISCONNECT (after an "offline" status if announce)
  Failures,    // change the background failure rate
  End,         // end the run
};
const char* to_string(ActionKind k);

struct Selection {
  Match match;
  double share = 1.0;
  std::optional<std::size_t> count;  // wins over share
};

struct Action {
  Millis at = 0;
  int line = 0;  // 1-based line in the scenario file
  ActionKind kind = ActionKind::End;
  Selection select;
  std::string command;
  std::string target;  // broker | presenced | a pid
  int signal = 15;
  Millis wait = 5000;
  bool rst = false;
  bool announce = true;
  std::optional<DurationRange> back_after;
  Millis period = 10'000;
  Millis down = 2'000;
  Millis duration = 60'000;
  bool same_phase = false;
  std::optional<double> failure_rate;
  std::optional<DurationRange> failure_down;
  std::optional<double> failure_never;
};

struct Scenario {
  std::map<std::string, std::string> options;  // from the file's `options:` map
  std::vector<Action> timeline;                // sorted by `at` (stable)
};

// Parses a scenario. Errors read "<name>:<line>: <what>".
Expected<Scenario> parse_scenario(std::string_view yaml, std::string_view name);
std::optional<int> parse_signal(std::string_view name);

// Picks which of `candidates` an action applies to: `count` of them, or round(share * size), in a
// seeded random order.
std::vector<std::size_t> pick(std::vector<std::size_t> candidates, const Selection& s, Rng& rng);

}  // namespace presence::sim
