#include "presence/tools/sim/scenario.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <utility>

namespace presence::sim {

namespace {

using Setter = std::function<std::string(SimOptions&, std::string_view)>;

std::string to_s(std::string_view v) { return std::string(v); }

template <class T>
std::string parse_int(std::string_view v, T& out, T lo, T hi, std::string_view name) {
  long long x = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc() || p != v.data() + v.size() || x < static_cast<long long>(lo) ||
      x > static_cast<long long>(hi))
    return std::string(name) + ": '" + to_s(v) + "' is not an integer in [" +
           std::to_string(lo) + ", " + std::to_string(hi) + "]";
  out = static_cast<T>(x);
  return {};
}

std::string parse_real(std::string_view v, double& out, double lo, double hi,
                       std::string_view name) {
  double x = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc() || p != v.data() + v.size() || !(x >= lo && x <= hi))
    return std::string(name) + ": '" + to_s(v) + "' is not a number in [" + std::to_string(lo) +
           ", " + std::to_string(hi) + "]";
  out = x;
  return {};
}

std::string parse_bool(std::string_view v, bool& out, std::string_view name) {
  if (v == "true" || v == "1" || v == "yes") out = true;
  else if (v == "false" || v == "0" || v == "no") out = false;
  else return std::string(name) + ": '" + to_s(v) + "' is not true/false";
  return {};
}

template <class F>
std::string with(std::string_view name, std::string_view v, F&& f) {
  auto r = f(v);
  if (!r) return std::string(name) + ": " + r.error;
  return {};
}

Setter duration(Millis SimOptions::*field) {
  return [field](SimOptions& o, std::string_view v) {
    return with("", v, [&](std::string_view s) {
      auto d = parse_duration(s);
      if (d) o.*field = *d;
      return d;
    });
  };
}

Setter policy_duration(Millis ReconnectPolicy::*field) {
  return [field](SimOptions& o, std::string_view v) {
    return with("", v, [&](std::string_view s) {
      auto d = parse_duration(s);
      if (d) o.reconnect.*field = *d;
      return d;
    });
  };
}

Setter mix(Mix FleetOptions::*field) {
  return [field](SimOptions& o, std::string_view v) {
    return with("", v, [&](std::string_view s) {
      auto m = parse_mix(s);
      if (m) o.fleet.*field = *m;
      return m;
    });
  };
}

Setter text(std::string SimOptions::*field) {
  return [field](SimOptions& o, std::string_view v) {
    o.*field = to_s(v);
    return std::string{};
  };
}

Expected<std::vector<BrokerAddress>> parse_brokers(std::string_view v) {
  std::vector<BrokerAddress> out;
  std::size_t start = 0;
  while (start <= v.size()) {
    auto comma = v.find(',', start);
    auto item = v.substr(start, comma == std::string_view::npos ? std::string_view::npos
                                                                : comma - start);
    start = comma == std::string_view::npos ? v.size() + 1 : comma + 1;
    if (item.empty()) continue;
    BrokerAddress b;
    auto colon = item.rfind(':');
    if (colon == std::string_view::npos) {
      b.host = to_s(item);
    } else {
      b.host = to_s(item.substr(0, colon));
      auto e = parse_int(item.substr(colon + 1), b.port, 1, 65535, "port");
      if (!e.empty()) return Expected<std::vector<BrokerAddress>>::fail(e);
    }
    if (b.host.empty()) b.host = "127.0.0.1";
    out.push_back(b);
  }
  if (out.empty()) return Expected<std::vector<BrokerAddress>>::fail("no broker address");
  return ok(std::move(out));
}

const std::vector<std::pair<std::string, Setter>>& setters() {
  static const std::vector<std::pair<std::string, Setter>> table = {
      {"broker",
       [](SimOptions& o, std::string_view v) {
         return with("", v, [&](std::string_view s) {
           auto b = parse_brokers(s);
           if (b) o.brokers = *b;
           return b;
         });
       }},
      {"devices",
       [](SimOptions& o, std::string_view v) {
         return parse_int<std::size_t>(v, o.fleet.devices, 0, 10'000'000, "");
       }},
      {"first_id",
       [](SimOptions& o, std::string_view v) {
         return parse_int<std::size_t>(v, o.fleet.first_id, 0, 1'000'000'000, "");
       }},
      {"id_prefix",
       [](SimOptions& o, std::string_view v) {
         if (v.size() > 64 || v.find_first_of("/+#") != std::string_view::npos)
           return std::string("must be at most 64 characters without / + #");
         o.fleet.id_prefix = to_s(v);
         return std::string{};
       }},
      {"id_width",
       [](SimOptions& o, std::string_view v) { return parse_int(v, o.fleet.id_width, 1, 12, ""); }},
      {"seed",
       [](SimOptions& o, std::string_view v) {
         return parse_int<std::uint64_t>(v, o.fleet.seed, 0, ~0ull >> 1, "");
       }},
      {"firmware", mix(&FleetOptions::firmware)},
      {"site", mix(&FleetOptions::site)},
      {"model", mix(&FleetOptions::model)},
      {"behaviour", mix(&FleetOptions::behaviour)},
      {"backoff_initial", policy_duration(&ReconnectPolicy::backoff_initial)},
      {"backoff_max", policy_duration(&ReconnectPolicy::backoff_max)},
      {"backoff_multiplier",
       [](SimOptions& o, std::string_view v) {
         return parse_real(v, o.reconnect.backoff_multiplier, 1.0, 100.0, "");
       }},
      {"tight_loop_delay", policy_duration(&ReconnectPolicy::tight_loop_delay)},
      {"slow_joiner_delay",
       [](SimOptions& o, std::string_view v) {
         return with("", v, [&](std::string_view s) {
           auto r = parse_duration_range(s);
           if (r) o.reconnect.slow_joiner_delay = *r;
           return r;
         });
       }},
      {"source_addrs",
       [](SimOptions& o, std::string_view v) {
         if (v == "auto") {
           o.source_addrs = 0;
           return std::string{};
         }
         return parse_int(v, o.source_addrs, 1, 250, "");
       }},
      {"processes",
       [](SimOptions& o, std::string_view v) { return parse_int(v, o.processes, 1, 64, ""); }},
      {"connect_rate",
       [](SimOptions& o, std::string_view v) {
         return with("", v, [&](std::string_view s) {
           auto r = parse_rate(s);
           if (r && *r <= 0) return Expected<double>::fail("must be above 0");
           if (r) o.connect_rate = *r;
           return r;
         });
       }},
      {"keepalive", duration(&SimOptions::keepalive)},
      {"heartbeat", duration(&SimOptions::heartbeat)},
      {"heartbeat_jitter",
       [](SimOptions& o, std::string_view v) {
         return parse_real(v, o.heartbeat_jitter, 0.0, 0.9, "");
       }},
      {"heartbeat_qos",
       [](SimOptions& o, std::string_view v) { return parse_int(v, o.heartbeat_qos, 0, 1, ""); }},
      {"status_qos",
       [](SimOptions& o, std::string_view v) { return parse_int(v, o.status_qos, 0, 1, ""); }},
      {"payload",
       [](SimOptions& o, std::string_view v) {
         if (v != "json" && v != "plain") return std::string("must be json or plain");
         o.payload = to_s(v);
         return std::string{};
       }},
      {"status_topic", text(&SimOptions::status_topic)},
      {"heartbeat_topic", text(&SimOptions::heartbeat_topic)},
      {"sparkplug_group",
       [](SimOptions& o, std::string_view v) {
         if (v.find_first_of("/+#") != std::string_view::npos) return std::string("must not contain / + #");
         o.sparkplug_group = to_s(v);
         return std::string{};
       }},
      {"sparkplug_devices",
       [](SimOptions& o, std::string_view v) { return parse_int(v, o.sparkplug_devices, 0, 10000, ""); }},
      {"connect_timeout", duration(&SimOptions::connect_timeout)},
      {"failure_rate",
       [](SimOptions& o, std::string_view v) {
         return with("", v, [&](std::string_view s) {
           auto r = parse_rate(s);
           if (r) o.failure_rate = *r;
           return r;
         });
       }},
      {"failure_down",
       [](SimOptions& o, std::string_view v) {
         return with("", v, [&](std::string_view s) {
           auto r = parse_duration_range(s);
           if (r) o.failure_down = *r;
           return r;
         });
       }},
      {"failure_never",
       [](SimOptions& o, std::string_view v) {
         return parse_real(v, o.failure_never, 0.0, 1.0, "");
       }},
      {"duration", duration(&SimOptions::duration)},
      {"out", text(&SimOptions::out)},
      {"progress", duration(&SimOptions::progress)},
      {"device_lines",
       [](SimOptions& o, std::string_view v) { return parse_bool(v, o.device_lines, ""); }},
      {"broker_cmd",
       [](SimOptions& o, std::string_view v) {
         o.broker.command = to_s(v);
         return std::string{};
       }},
      {"broker_pid",
       [](SimOptions& o, std::string_view v) {
         return parse_int<pid_t>(v, o.broker.pid, 1, 1 << 30, "");
       }},
      {"broker_pidfile",
       [](SimOptions& o, std::string_view v) {
         o.broker.pidfile = to_s(v);
         return std::string{};
       }},
      {"presenced_cmd",
       [](SimOptions& o, std::string_view v) {
         o.presenced.command = to_s(v);
         return std::string{};
       }},
      {"presenced_pid",
       [](SimOptions& o, std::string_view v) {
         return parse_int<pid_t>(v, o.presenced.pid, 1, 1 << 30, "");
       }},
      {"presenced_pidfile",
       [](SimOptions& o, std::string_view v) {
         o.presenced.pidfile = to_s(v);
         return std::string{};
       }},
      {"scenario", text(&SimOptions::scenario)},
  };
  return table;
}

}  // namespace

std::string set_option(SimOptions& o, std::string_view name, std::string_view value) {
  std::string key(name);
  std::replace(key.begin(), key.end(), '-', '_');
  for (auto& [n, set] : setters()) {
    if (n != key) continue;
    auto e = set(o, value);
    if (e.empty()) return {};
    if (e.rfind(": ", 0) == 0) e = e.substr(2);
    return key + ": " + e;
  }
  return "unknown option '" + std::string(name) + "'";
}

int effective_source_addrs(const SimOptions& o) {
  if (o.source_addrs > 0) return o.source_addrs;
  std::size_t brokers = std::max<std::size_t>(1, o.brokers.size());
  std::size_t per_broker = (o.fleet.devices + brokers - 1) / brokers;
  return static_cast<int>(std::clamp<std::size_t>((per_broker + 4999) / 5000, 1, 250));
}

std::vector<std::string> option_names() {
  std::vector<std::string> out;
  for (auto& [n, s] : setters()) out.push_back(n);
  return out;
}

std::string usage() {
  return R"(usage: presence-sim [--option value | --option=value]...

Simulates a fleet of MQTT devices as real connections to a real broker (docs/simulator.md).

  --broker host:port[,host:port]   brokers, devices spread round-robin (127.0.0.1:1883)
  --devices N                      fleet size (1000); --first-id, --id-prefix (dev-), --id-width (6)
  --seed N                         labels, behaviours and choices are reproducible per seed (1)
  --firmware/--site/--model MIX    label mixes, e.g. "3.7.2:60,3.8.0-b3:5,07.06:35"
  --behaviour MIX                  well_behaved, tight_loop, stuck, slow_joiner ("well_behaved:100")
  --backoff-initial 1s --backoff-max 60s --backoff-multiplier 2 --tight-loop-delay 50ms
  --slow-joiner-delay 60s-300s
  --connect-rate 1000/s            start-up ramp
  --keepalive 60s --heartbeat 30s --heartbeat-jitter 0.1 --heartbeat-qos 0 --status-qos 1
  --payload json|plain             birth/will payloads (json)
  --status-topic devices/{id}/status --heartbeat-topic devices/{id}/heartbeat
  --sparkplug-group G --sparkplug-devices N   Sparkplug B edge nodes of group G with N devices each
  --failure-rate 2/min --failure-down 30s-5m --failure-never 0.1   background real failures
  --scenario FILE                  options and a timeline of actions (YAML)
  --duration 10m                   end of run (0: until the timeline ends it or SIGINT/SIGTERM)
  --out FILE|-                     JSON lines of what happened (stdout)
  --progress 1s                    progress on stderr (0: off); --device-lines true|false
  --broker-cmd CMD --broker-pid N --broker-pidfile F          what broker actions act on
  --presenced-cmd CMD --presenced-pid N --presenced-pidfile F what presenced actions act on
  --processes N                    worker processes, each with its own file descriptor limit
  --source-addrs auto|N            bind to 127.0.0.1..127.0.0.N (auto: one per 5000 devices a broker)
  --connect-timeout 10s
  --check                          parse everything, print the fleet and timeline, connect nothing
)";
}

const char* to_string(ActionKind k) {
  switch (k) {
    case ActionKind::Exec: return "exec";
    case ActionKind::Signal: return "signal";
    case ActionKind::Start: return "start";
    case ActionKind::Restart: return "restart";
    case ActionKind::Drop: return "drop";
    case ActionKind::Flap: return "flap";
    case ActionKind::Die: return "die";
    case ActionKind::Revive: return "revive";
    case ActionKind::Disconnect: return "disconnect";
    case ActionKind::Failures: return "failures";
    case ActionKind::End: return "end";
  }
  return "unknown";
}

std::optional<int> parse_signal(std::string_view name) {
  static const std::pair<const char*, int> names[] = {
      {"HUP", 1}, {"INT", 2}, {"QUIT", 3}, {"KILL", 9}, {"USR1", 10}, {"USR2", 12},
      {"TERM", 15}, {"CONT", 18}, {"STOP", 19}};
  if (name.rfind("SIG", 0) == 0) name.remove_prefix(3);
  for (auto& [n, v] : names)
    if (name == n) return v;
  int v = 0;
  auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), v);
  if (ec == std::errc() && p == name.data() + name.size() && v > 0 && v < 65) return v;
  return std::nullopt;
}

namespace {

struct ParseError {
  int line;
  std::string what;
};

int line_of(const YAML::Node& n) { return n.Mark().line + 1; }

std::string scalar(const YAML::Node& n, const std::string& key) {
  if (!n.IsScalar()) throw ParseError{line_of(n), key + ": expected a value"};
  return n.as<std::string>();
}

template <class T>
T need(Expected<T> r, const YAML::Node& n, const std::string& key) {
  if (!r) throw ParseError{line_of(n), key + ": " + r.error};
  return *r;
}

double share_of(const YAML::Node& n, const std::string& key) {
  double v = 0;
  auto e = parse_real(scalar(n, key), v, 0.0, 1.0, key);
  if (!e.empty()) throw ParseError{line_of(n), e};
  return v;
}

bool bool_of(const YAML::Node& n, const std::string& key) {
  bool b = false;
  auto e = parse_bool(scalar(n, key), b, key);
  if (!e.empty()) throw ParseError{line_of(n), e};
  return b;
}

const std::vector<std::string>& allowed_keys(ActionKind k) {
  static const std::vector<std::string> none{};
  static const std::vector<std::string> exec{"command"};
  static const std::vector<std::string> signal{"target", "signal"};
  static const std::vector<std::string> start{"target", "command"};
  static const std::vector<std::string> restart{"target", "signal", "wait", "command"};
  static const std::vector<std::string> drop{"match", "devices", "share", "count", "rst"};
  static const std::vector<std::string> flap{"match",  "devices", "share",    "count",
                                             "period", "down",    "duration", "phase"};
  static const std::vector<std::string> die{"match", "devices", "share", "count", "back_after"};
  static const std::vector<std::string> revive{"match", "devices", "share", "count"};
  static const std::vector<std::string> disconnect{"match", "devices",  "share",
                                                   "count", "announce", "back_after"};
  static const std::vector<std::string> failures{"rate", "down", "never"};
  switch (k) {
    case ActionKind::Exec: return exec;
    case ActionKind::Signal: return signal;
    case ActionKind::Start: return start;
    case ActionKind::Restart: return restart;
    case ActionKind::Drop: return drop;
    case ActionKind::Flap: return flap;
    case ActionKind::Die: return die;
    case ActionKind::Revive: return revive;
    case ActionKind::Disconnect: return disconnect;
    case ActionKind::Failures: return failures;
    case ActionKind::End: return none;
  }
  return none;
}

std::string check_target(const YAML::Node& n) {
  auto t = scalar(n, "target");
  if (t == "broker" || t == "presenced") return t;
  int pid = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), pid);
  if (ec != std::errc() || p != t.data() + t.size() || pid <= 1)
    throw ParseError{line_of(n), "target: '" + t + "' is not broker, presenced or a pid"};
  return t;
}

Action parse_action(const YAML::Node& item) {
  if (!item.IsMap()) throw ParseError{line_of(item), "timeline entry must be a map with 'at'"};
  Action a;
  a.line = line_of(item);
  if (!item["at"]) throw ParseError{a.line, "timeline entry without 'at'"};
  a.at = need(parse_duration(scalar(item["at"], "at")), item["at"], "at");
  std::optional<ActionKind> kind;
  YAML::Node params;
  for (auto it = item.begin(); it != item.end(); ++it) {
    auto key = it->first.as<std::string>();
    if (key == "at") continue;
    std::optional<ActionKind> k;
    for (auto c : {ActionKind::Exec, ActionKind::Signal, ActionKind::Start, ActionKind::Restart,
                   ActionKind::Drop, ActionKind::Flap, ActionKind::Die, ActionKind::Revive,
                   ActionKind::Disconnect, ActionKind::Failures, ActionKind::End})
      if (key == to_string(c)) k = c;
    if (!k) throw ParseError{line_of(it->first), "unknown action '" + key + "'"};
    if (kind) throw ParseError{line_of(it->first), "one action per timeline entry ('" + key + "')"};
    kind = k;
    params = it->second;
  }
  if (!kind) throw ParseError{a.line, "timeline entry without an action"};
  a.kind = *kind;
  if (a.kind == ActionKind::Exec && params.IsScalar()) {
    a.command = params.as<std::string>();
    if (a.command.empty()) throw ParseError{line_of(params), "exec: empty command"};
    return a;
  }
  if (params.IsNull()) params = YAML::Node(YAML::NodeType::Map);
  if (!params.IsMap())
    throw ParseError{line_of(params), std::string(to_string(a.kind)) + ": expected a map"};
  auto& allowed = allowed_keys(a.kind);
  for (auto it = params.begin(); it != params.end(); ++it) {
    auto key = it->first.as<std::string>();
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
      throw ParseError{line_of(it->first),
                       std::string(to_string(a.kind)) + ": unknown key '" + key + "'"};
  }
  if (auto n = params["command"]) a.command = scalar(n, "command");
  if (auto n = params["target"]) a.target = check_target(n);
  if (auto n = params["signal"]) {
    auto s = parse_signal(scalar(n, "signal"));
    if (!s) throw ParseError{line_of(n), "signal: unknown signal '" + n.as<std::string>() + "'"};
    a.signal = *s;
  }
  if (auto n = params["wait"]) a.wait = need(parse_duration(scalar(n, "wait")), n, "wait");
  if (auto n = params["match"]) {
    if (!n.IsMap()) throw ParseError{line_of(n), "match: expected a map of label: value"};
    for (auto it = n.begin(); it != n.end(); ++it) {
      auto key = it->first.as<std::string>();
      if (key != "firmware" && key != "site" && key != "model" && key != "behaviour")
        throw ParseError{line_of(it->first),
                         "match: unknown label '" + key + "' (firmware, site, model, behaviour)"};
      a.select.match.labels.emplace_back(key, scalar(it->second, key));
    }
  }
  if (auto n = params["devices"]) {
    if (n.IsScalar()) a.select.match.ids.push_back(n.as<std::string>());
    else if (n.IsSequence())
      for (auto d : n) a.select.match.ids.push_back(scalar(d, "devices"));
    else throw ParseError{line_of(n), "devices: expected an id or a list of ids"};
  }
  if (auto n = params["share"]) a.select.share = share_of(n, "share");
  if (auto n = params["count"]) {
    std::size_t c = 0;
    auto e = parse_int<std::size_t>(scalar(n, "count"), c, 0, 100'000'000, "count");
    if (!e.empty()) throw ParseError{line_of(n), e};
    a.select.count = c;
  }
  if (auto n = params["rst"]) a.rst = bool_of(n, "rst");
  if (auto n = params["announce"]) a.announce = bool_of(n, "announce");
  if (auto n = params["back_after"])
    a.back_after = need(parse_duration_range(scalar(n, "back_after")), n, "back_after");
  if (auto n = params["period"]) a.period = need(parse_duration(scalar(n, "period")), n, "period");
  if (auto n = params["down"]; n && a.kind == ActionKind::Flap)
    a.down = need(parse_duration(scalar(n, "down")), n, "down");
  if (auto n = params["duration"])
    a.duration = need(parse_duration(scalar(n, "duration")), n, "duration");
  if (auto n = params["phase"]) {
    auto p = scalar(n, "phase");
    if (p != "random" && p != "same")
      throw ParseError{line_of(n), "phase: '" + p + "' is not random or same"};
    a.same_phase = p == "same";
  }
  if (auto n = params["rate"]) a.failure_rate = need(parse_rate(scalar(n, "rate")), n, "rate");
  if (auto n = params["down"]; n && a.kind == ActionKind::Failures)
    a.failure_down = need(parse_duration_range(scalar(n, "down")), n, "down");
  if (auto n = params["never"]) a.failure_never = share_of(n, "never");

  switch (a.kind) {
    case ActionKind::Exec:
      if (a.command.empty()) throw ParseError{a.line, "exec: needs a command"};
      break;
    case ActionKind::Signal:
    case ActionKind::Start:
    case ActionKind::Restart:
      if (a.target.empty())
        throw ParseError{a.line, std::string(to_string(a.kind)) +
                                     ": needs a target (broker, presenced or a pid)"};
      if (a.kind != ActionKind::Signal && a.target != "broker" && a.target != "presenced" &&
          a.command.empty())
        throw ParseError{a.line, std::string(to_string(a.kind)) + ": a pid target needs a command"};
      break;
    case ActionKind::Flap:
      if (a.period <= 0) throw ParseError{a.line, "flap: period must be above 0"};
      if (a.down >= a.period) throw ParseError{a.line, "flap: down must be shorter than period"};
      break;
    default:
      break;
  }
  return a;
}

}  // namespace

Expected<Scenario> parse_scenario(std::string_view yaml, std::string_view name) {
  auto fail = [&](int line, const std::string& what) {
    return Expected<Scenario>::fail(std::string(name) + ":" + std::to_string(line) + ": " + what);
  };
  Scenario sc;
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    if (root.IsNull()) return fail(1, "empty scenario");
    if (!root.IsMap()) return fail(line_of(root), "scenario must be a map (v, options, timeline)");
    for (auto it = root.begin(); it != root.end(); ++it) {
      auto key = it->first.as<std::string>();
      if (key != "v" && key != "options" && key != "timeline")
        return fail(line_of(it->first), "unknown key '" + key + "' (v, options, timeline)");
    }
    if (auto v = root["v"]; v && scalar(v, "v") != "1")
      return fail(line_of(v), "v: only version 1 is known");
    if (auto opts = root["options"]) {
      if (!opts.IsMap()) return fail(line_of(opts), "options: expected a map");
      SimOptions probe;
      for (auto it = opts.begin(); it != opts.end(); ++it) {
        auto key = it->first.as<std::string>();
        auto value = scalar(it->second, key);
        if (key == "scenario") return fail(line_of(it->first), "options: scenario cannot nest");
        auto e = set_option(probe, key, value);
        if (!e.empty()) return fail(line_of(it->second), "options: " + e);
        sc.options[key] = value;
      }
    }
    if (auto tl = root["timeline"]) {
      if (!tl.IsSequence()) return fail(line_of(tl), "timeline: expected a list");
      for (auto item : tl) sc.timeline.push_back(parse_action(item));
    }
  } catch (const ParseError& e) {
    return fail(e.line, e.what);
  } catch (const YAML::Exception& e) {
    return fail(e.mark.line + 1, e.msg);
  }
  std::stable_sort(sc.timeline.begin(), sc.timeline.end(),
                   [](const Action& a, const Action& b) { return a.at < b.at; });
  return ok(std::move(sc));
}

std::vector<std::size_t> pick(std::vector<std::size_t> candidates, const Selection& s, Rng& rng) {
  std::size_t n = s.count ? std::min(*s.count, candidates.size())
                          : static_cast<std::size_t>(
                                std::llround(s.share * static_cast<double>(candidates.size())));
  // Partial Fisher-Yates: the first n of a seeded shuffle.
  for (std::size_t i = 0; i < n; ++i)
    std::swap(candidates[i], candidates[i + rng.index(candidates.size() - i)]);
  candidates.resize(n);
  return candidates;
}

}  // namespace presence::sim
