// presence-scenario: runs one scenario file end to end and prints its scorecard line (issue 6).
//
//   presence-scenario test/scenarios/01-broker-restart.yaml [--scale small|full] [--keep DIR]
//   presence-scenario --score-only DIR         re-score a kept run (truth + recorded pages)
//
// One run: mosquitto (+ the broker-ext plugin) on a free loopback port; two presenced on it, one
// in `mode: presence` and one in `mode: naive`, each with its own mock PagerDuty + Slack receiver;
// presence-sim plays the scenario's timeline. The same events reach both instances, so the
// scorecard compares the two side by side. Exit status: 0 = the scenario's assertions hold
// (small scale: presence mode pages every real failure, no false per-device page, at most
// `events` incident pages), 1 = they do not, 2 = bad usage or the run could not be set up.
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "test/scenarios/score.h"
#include "test/scenarios/topology.h"
#include "test/support/mock_http.h"
#include "test/support/process.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using presence::test::MockHttpServer;
using presence::test::MockResponse;
using presence::test::Process;
using presence::test::RecordedRequest;

namespace {

constexpr const char* kRoutingKey = "0123456789abcdef0123456789abcdef";
const char* const kModes[] = {"presence", "naive"};

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "250ms", "2s", "1m", "1h" -> ms. The scenario files only need these.
std::int64_t parse_ms(const std::string& s) {
  std::size_t pos = 0;
  const double v = std::stod(s, &pos);
  const std::string unit = s.substr(pos);
  if (unit == "ms") return static_cast<std::int64_t>(v);
  if (unit == "s" || unit.empty()) return static_cast<std::int64_t>(v * 1000);
  if (unit == "m") return static_cast<std::int64_t>(v * 60000);
  if (unit == "h") return static_cast<std::int64_t>(v * 3600000);
  throw std::runtime_error("bad duration '" + s + "'");
}

// Deep merge: maps merge key by key, anything else is replaced by `over`.
YAML::Node merge(const YAML::Node& base, const YAML::Node& over) {
  if (!over.IsDefined() || over.IsNull()) return YAML::Clone(base);
  // A key the base does not have (a whole new section such as `sparkplug:`) is taken as is.
  if (!base.IsDefined() || !base.IsMap() || !over.IsMap()) return YAML::Clone(over);
  YAML::Node out = YAML::Clone(base);
  for (const auto& kv : over) {
    const auto key = kv.first.as<std::string>();
    out[key] = merge(base[key], kv.second);
  }
  return out;
}

// Replaces ${NAME} in every scalar (the timeline's exec commands name files of this run).
YAML::Node substitute(const YAML::Node& n, const std::map<std::string, std::string>& vars) {
  if (n.IsScalar()) {
    std::string s = n.as<std::string>();
    for (const auto& [k, v] : vars) {
      const std::string pat = "${" + k + "}";
      for (auto p = s.find(pat); p != std::string::npos; p = s.find(pat, p + v.size()))
        s.replace(p, pat.size(), v);
    }
    return YAML::Node(s);
  }
  if (n.IsSequence()) {
    YAML::Node out(YAML::NodeType::Sequence);
    for (const auto& e : n) out.push_back(substitute(e, vars));
    return out;
  }
  if (n.IsMap()) {
    YAML::Node out(YAML::NodeType::Map);
    for (const auto& kv : n) out[kv.first.as<std::string>()] = substitute(kv.second, vars);
    return out;
  }
  return YAML::Clone(n);
}

std::string emit(const YAML::Node& n) {
  YAML::Emitter e;
  e << n;
  return std::string(e.c_str()) + "\n";
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

pid_t read_pid(const std::string& pidfile) {
  try {
    return static_cast<pid_t>(std::stol(slurp(pidfile)));
  } catch (...) {
    return -1;
  }
}

// Per process: peak RSS (VmHWM) and CPU seconds (utime + stime) from /proc (issue 6 scorecard).
struct Usage {
  std::int64_t hwm_kb = 0;
  std::int64_t rss_kb = 0;  // VmRSS at the last sample: does memory come back after a storm?
  double cpu_s = 0;
};

// `name` is the expected process name (a pidfile may name a pid that was reused meanwhile).
bool sample(pid_t pid, Usage& u, const char* name = "presenced") {
  const std::string status = slurp("/proc/" + std::to_string(pid) + "/status");
  if (status.empty() || status.find(name) == std::string::npos) return false;
  if (status.find("State:\tZ") != std::string::npos) return false;
  const auto p = status.find("VmHWM:");
  if (p != std::string::npos) u.hwm_kb = std::max<std::int64_t>(u.hwm_kb, std::stoll(status.substr(p + 6)));
  const auto q = status.find("VmRSS:");
  if (q != std::string::npos) u.rss_kb = std::stoll(status.substr(q + 6));
  const std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  const auto rp = stat.rfind(')');
  if (rp == std::string::npos) return true;
  std::istringstream in(stat.substr(rp + 2));
  std::string field;
  std::vector<std::string> f;
  while (in >> field) f.push_back(field);
  // After "pid (comm) ": state is field 3, utime 14, stime 15 -> indices 11, 12 here.
  if (f.size() > 12) {
    const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    u.cpu_s = std::max(u.cpu_s, (std::stod(f[11]) + std::stod(f[12])) / ticks);
  }
  return true;
}

struct Instance {
  std::string mode;
  std::string config;
  std::string pidfile;
  std::string log;
  std::string start_cmd;  // sh command line that starts it (and writes its pidfile)
  std::unique_ptr<MockHttpServer> receiver;
  std::mutex mu;
  std::vector<json> pages;  // {"t":..,"path":..,"body":..}
  std::size_t slack_messages = 0;
  std::size_t slack_invalid = 0;
  std::map<pid_t, Usage> usage;
  pid_t last_pid = -1;
};

// One mosquitto of the run (a, and b bridged into a when `brokers: 2`).
struct Broker {
  std::string node;
  int port = 0;
  std::string conf, pidfile, log, cmd, heartbeats;
  std::map<pid_t, Usage> usage;
  pid_t last_pid = -1;
};

void usage_exit() {
  std::cerr << "usage: presence-scenario SCENARIO.yaml [--scale small|full] [--keep DIR]\n"
               "                         [--presenced PATH] [--sim PATH] [--plugin PATH]\n"
               "                         [--storm-protection on|off] [--broker-ext-opt KEY=VALUE]...\n"
               "                         [--no-naive] [--bench NAME]\n"
               "       presence-scenario --score-only DIR\n";
  std::exit(2);
}

// The generated presenced config: time compressed so a scenario runs in seconds (small scale).
// Every key here is a documented presenced key (docs/configuration.md); the scenario file's
// `presenced:` map (top level, then per scale) overrides any of them.
YAML::Node base_config() {
  return YAML::Load(R"(
mqtt:
  keepalive: 5s
  reconnect: {min_backoff: 200ms, max_backoff: 1s}
topics:
  # The other presenced instance is an MQTT client too; broker-ext reports it like any other.
  ignore_ids: ["presenced-scen-*"]
output:
  coalesce_interval: 200ms
presence:
  offline_grace: 2s
  online_stable_for: 3s
  flap_window: 20s
  restart_grace_min: 2s
  restart_grace_max: 10s
  restart_grace_settle: 2s
store:
  snapshot_interval: 1s
alerts:
  slack: {max_per_second: 5}
  policy:
    alert_after: 1s
    group_wait: 1s
    group_interval: 2s
    incident_window: 5s
    incident_open_floor: 5
    incident_open_fraction: 0.1
    incident_stable_for: 3s
    straggler_grace: 3s
    # Every straggler listed (default 50), so the scorer can attribute each one at full scale.
    details_max_devices: 10000
log:
  level: info
)");
}

struct Result {
  json line;
  bool pass = true;
  std::vector<std::string> why;
};

Result score_dir(const std::string& dir) {
  const json meta = json::parse(slurp(dir + "/meta.json"));
  const auto truth = presence::scenario::read_truth(dir + "/truth.jsonl");
  Result r;
  json& line = r.line;
  line["scenario"] = meta.value("scenario", "");
  line["scale"] = meta.value("scale", "");
  line["incident"] = meta.value("incident", "");
  line["devices"] = truth.devices;
  line["events"] = meta.value("events", 0);
  line["duration_s"] = static_cast<double>(truth.end_ms - truth.start_ms) / 1000.0;
  line["min_outage_s"] = meta.value("min_outage_ms", 0) / 1000.0;
  line["disconnect_causes"] = truth.disconnect_causes;
  const std::int64_t min_outage = meta.value("min_outage_ms", std::int64_t{6000});
  const std::int64_t slack = meta.value("slack_ms", std::int64_t{2000});
  for (const char* mode : kModes) {
    const std::string pages_path = dir + "/pages-" + mode + ".jsonl";
    if (!fs::exists(pages_path)) continue;
    const auto pages = presence::scenario::read_pages(pages_path);
    presence::scenario::Expectations ex;
    ex.offline_grace_ms = meta.value("offline_grace_ms", std::int64_t{0});
    ex.bound_ms = meta.value("bound_ms", std::int64_t{0});
    ex.burst_ms = meta.value("burst_ms", std::int64_t{0});
    if (meta.contains("expect_scopes")) {
      ex.check_scopes = true;
      ex.incident_scopes = meta["expect_scopes"].get<std::vector<std::string>>();
    }
    if (meta.contains("expect_cohorts")) {
      ex.check_cohorts = true;
      ex.cohorts = meta["expect_cohorts"].get<std::vector<std::string>>();
    }
    const auto s = presence::scenario::score(truth, pages, min_outage, slack, kRoutingKey, ex);
    json j = presence::scenario::to_json(s);
    if (meta.contains("usage") && meta["usage"].contains(mode)) {
      j["peak_rss_kb"] = meta["usage"][mode].value("peak_rss_kb", 0);
      j["rss_end_kb"] = meta["usage"][mode].value("rss_end_kb", 0);
      j["cpu_s"] = meta["usage"][mode].value("cpu_s", 0.0);
      j["slack_messages"] = meta["usage"][mode].value("slack_messages", 0);
      j["slack_invalid"] = meta["usage"][mode].value("slack_invalid", 0);
    }
    line[mode] = j;
    if (std::string(mode) == "presence") {
      line["real_failures"] = s.required;
      const bool assert_it = meta.value("assert", true);
      // Full scale is reported, not asserted: the reasons are still listed ("failed").
      auto fail = [&](const std::string& w) {
        if (assert_it) r.pass = false;
        r.why.push_back(w);
      };
      if (s.false_device_pages) fail(std::to_string(s.false_device_pages) + " false per-device pages");
      if (s.missed) fail(std::to_string(s.missed) + " real failures not paged");
      if (s.incident_pages > meta.value("events", std::size_t{0}))
        fail(std::to_string(s.incident_pages) + " incident pages for " +
             std::to_string(meta.value("events", 0)) + " injected events");
      if (s.invalid) fail(std::to_string(s.invalid) + " invalid PagerDuty requests");
      // Page truth (issue 11).
      if (s.false_incident_pages) fail(std::to_string(s.false_incident_pages) + " incident pages for healed drops");
      if (s.scope_errors) fail(std::to_string(s.scope_errors) + " incident pages with the wrong scope");
      if (s.cohort_mislabels) fail(std::to_string(s.cohort_mislabels) + " group pages that mislabel a cohort");
      if (s.over_bound)
        fail(std::to_string(s.over_bound) + " deaths paged later than the latency bound (" +
             std::to_string(ex.bound_ms / 1000.0).substr(0, 5) + " s)");
      if (meta.value("expect_cohort_page", false) && s.cohort_pages == 0) fail("no page named the expected cohort");
      if (j.value("slack_invalid", 0) > 0) fail("invalid Slack requests");
      if (s.required == 0 && meta.value("expect_failures", true)) fail("no real failure to score");
    }
  }
  if (!truth.errors.empty()) line["truth_errors"] = truth.errors.size();
  // Storm benchmark: how the fleet came back, and what each broker did (docs/benchmarks.md).
  if (meta.value("storm_metrics", false)) {
    const int brokers = meta.value("brokers", 1);
    line["brokers"] = brokers;
    line["storm_protection"] = meta.value("storm_protection", false);
    line["broker_ext"] = meta.value("broker_ext", json::object());
    line["recovery"] = presence::scenario::to_json(presence::scenario::recovery(dir + "/truth.jsonl", brokers));
    json nodes = json::array();
    for (const auto& b : meta.value("broker_usage", json::array())) {
      json n = b;
      n["counters"] = presence::scenario::to_json(
          presence::scenario::read_heartbeats(dir + "/heartbeats-" + b.value("node", "") + ".txt"));
      nodes.push_back(n);
    }
    line["nodes"] = nodes;
  }
  line["pass"] = r.pass;
  line["asserted"] = meta.value("assert", true);
  if (!r.why.empty()) line["failed"] = r.why;
  return r;
}

// The storm benchmark's JSON lines ({"name","value","unit"}, docs/benchmarks.md) from a scorecard line.
std::vector<json> bench_lines(const json& line, const std::string& name) {
  std::vector<json> out;
  auto add = [&](const std::string& n, const json& v, const char* unit) {
    out.push_back({{"name", name + "." + n}, {"value", v}, {"unit", unit}});
  };
  auto mb = [](const json& kb) { return kb.is_number() ? json(std::round(kb.get<double>() / 102.4) / 10) : json(nullptr); };
  for (const char* mode : kModes) {
    if (!line.contains(mode)) continue;
    const json& m = line[mode];
    const std::string p = std::string("presenced_") + mode;
    add(p + ".peak_rss", mb(m.value("peak_rss_kb", json(nullptr))), "MB");
    add(p + ".rss_end", mb(m.value("rss_end_kb", json(nullptr))), "MB");
    add(p + ".cpu", m.value("cpu_s", json(nullptr)), "s");
    add(p + ".false_device_pages", m.value("false_device_pages", json(nullptr)), "pages");
    add(p + ".incident_pages", m.value("incident_pages", json(nullptr)), "pages");
    add(p + ".real_failures_paged", m.value("real_failures_paged", json(nullptr)), "failures");
    add(p + ".device_pages", m.value("device_pages", json(nullptr)), "pages");
    add(p + ".pages_total", m.value("pages", json(nullptr)), "pages");
  }
  add("real_failures", line.value("real_failures", json(nullptr)), "failures");
  if (line.contains("recovery")) {
    const json& r = line["recovery"];
    add("fleet.devices_dropped", r["lost"], "devices");
    add("fleet.devices_back", r["back"], "devices");
    add("fleet.reconnected_99pct", r["t99_s"], "s");
    add("fleet.reconnected_100pct", r["t100_s"], "s");
    add("fleet.peak_connects_per_s", r["peak_connects_per_s"], "connects/s");
    add("sim.connect_attempts", r["connect_attempts"], "attempts");
    add("sim.connects", r["connects"], "connects");
    add("sim.connect_failures", r["connect_failures"], "attempts");
    add("sim.connack_refused", r["connack_refused"], "attempts");
    const json nodes = line.value("nodes", json::array());
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      const json& n = nodes[i];
      const std::string p = "broker_" + n.value("node", std::to_string(i));
      add(p + ".peak_rss", mb(n.value("peak_rss_kb", json(nullptr))), "MB");
      add(p + ".cpu", n.value("cpu_s", json(nullptr)), "s");
      const json c = n.value("counters", json::object());
      add(p + ".connects_accepted", c.value("connects", json(nullptr)), "connects");
      add(p + ".refused_rate_limited", c.value("refused_rate_limited", json(nullptr)), "attempts");
      add(p + ".refused_flap_banned", c.value("refused_flap_banned", json(nullptr)), "attempts");
      add(p + ".peak_connects_per_s", c.value("peak_connects_per_s", json(nullptr)), "connects/s");
      if (i < r["by_broker"].size()) {
        const json& b = r["by_broker"][i];
        add(p + ".devices_dropped", b["lost"], "devices");
        add(p + ".reconnected_99pct", b["t99_s"], "s");
        add(p + ".reconnected_100pct", b["t100_s"], "s");
      }
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string scenario_path, scale = "small", keep, score_only, protection, bench;
  std::vector<std::string> ext_opts;
  bool no_naive = false;
  std::string bin = PRESENCE_BINARY_DIR;
  std::string presenced = bin + "/presence/app/presenced";
  std::string sim = bin + "/presence/tools/sim/presence-sim";
  std::string plugin = bin + "/broker-ext/mosquitto_presence.so";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage_exit();
      return argv[++i];
    };
    if (a == "--scale") scale = next();
    else if (a == "--keep") keep = next();
    else if (a == "--score-only") score_only = next();
    else if (a == "--presenced") presenced = next();
    else if (a == "--sim") sim = next();
    else if (a == "--plugin") plugin = next();
    else if (a == "--storm-protection") protection = next();
    else if (a == "--broker-ext-opt") ext_opts.push_back(next());
    else if (a == "--no-naive") no_naive = true;
    else if (a == "--bench") bench = next();
    else if (a == "-h" || a == "--help") usage_exit();
    else if (!a.empty() && a[0] == '-') usage_exit();
    else scenario_path = a;
  }
  if (!score_only.empty()) {
    try {
      const auto r = score_dir(score_only);
      std::cout << r.line.dump() << std::endl;
      if (!bench.empty())
        for (const auto& l : bench_lines(r.line, bench)) std::cout << l.dump() << std::endl;
      return r.pass ? 0 : 1;
    } catch (const std::exception& e) {
      std::cerr << "presence-scenario: " << e.what() << "\n";
      return 2;
    }
  }
  if (scenario_path.empty() || (scale != "small" && scale != "full")) usage_exit();
  for (const auto& p : {presenced, sim}) {
    if (!fs::exists(p)) {
      std::cerr << "presence-scenario: " << p << " not built\n";
      return 2;
    }
  }
  const std::string mosquitto = presence::test::find_program("mosquitto");
  if (mosquitto.empty()) {
    std::cerr << "presence-scenario: mosquitto not found\n";
    return 2;
  }

  YAML::Node file;
  try {
    file = YAML::LoadFile(scenario_path);
  } catch (const std::exception& e) {
    std::cerr << scenario_path << ": " << e.what() << "\n";
    return 2;
  }
  const YAML::Node sc = file[scale];
  if (!sc || !sc["timeline"]) {
    std::cerr << scenario_path << ": no '" << scale << "' section with a timeline\n";
    return 2;
  }
  const std::string name = file["name"] ? file["name"].as<std::string>() : fs::path(scenario_path).stem().string();
  presence::scenario::BrokerSetup setup;
  try {
    setup = presence::scenario::parse_broker_setup(file, sc, protection, ext_opts);
  } catch (const std::exception& e) {
    std::cerr << scenario_path << ": " << e.what() << "\n";
    return 2;
  }
  if (no_naive) setup.naive = false;
  std::vector<std::string> modes{"presence"};
  if (setup.naive) modes.push_back("naive");

  presence::test::TempDir tmp;
  std::string dir = tmp.path();
  if (!keep.empty()) {
    fs::create_directories(keep);
    dir = fs::absolute(keep).string();
  }
  auto path = [&](const std::string& f) { return dir + "/" + f; };

  // --- brokers -----------------------------------------------------------------------------
  // One broker (node n1), or two: b bridged into a (a node pair; presenced subscribes to a).
  std::vector<Broker> brokers(static_cast<std::size_t>(setup.brokers));
  for (std::size_t i = 0; i < brokers.size(); ++i) {
    Broker& b = brokers[i];
    b.node = setup.brokers == 1 ? "n1" : std::string(1, static_cast<char>('a' + i));
    b.port = presence::test::free_tcp_port();
    while (i > 0 && b.port == brokers[0].port) b.port = presence::test::free_tcp_port();
    // One broker keeps the file names scenarios 1-6 always had (broker.pid, mosquitto.conf).
    const std::string sfx = setup.brokers == 1 ? "" : "-" + b.node;
    b.conf = path("mosquitto" + sfx + ".conf");
    b.pidfile = path("broker" + sfx + ".pid");
    b.log = path("broker" + sfx + ".log");
    b.heartbeats = path("heartbeats-" + b.node + ".txt");
    const std::string pdir = setup.brokers == 1 ? dir + "/" : path("broker-" + b.node + "/");
    fs::create_directories(pdir);
    if (::geteuid() == 0) {
      // Started as root, mosquitto drops to its own user (`user mosquitto`): its persistence
      // directory must be writable by it, or a restart loses every retained birth ("Error saving
      // in-memory database ... Permission denied"; scenario 1 relies on them surviving).
      fs::permissions(dir, fs::perms::group_exec | fs::perms::others_exec, fs::perm_options::add);
      fs::permissions(pdir, fs::perms::all);
    }
    presence::scenario::BrokerConf bc;
    bc.node = b.node;
    bc.port = b.port;
    bc.dir = pdir;
    bc.plugin = fs::exists(plugin) ? plugin : "";
    bc.bridge_to_port = i > 0 ? brokers[0].port : 0;
    std::ofstream(b.conf) << presence::scenario::mosquitto_conf(bc, setup);
    // Started through sh so the pidfile always names the broker, also after the sim restarted it.
    b.cmd = "echo $$ > " + shell_quote(b.pidfile) + "; exec " + mosquitto + " -c " + shell_quote(b.conf) +
            " >> " + shell_quote(b.log) + " 2>&1";
  }
  // a first: b's bridge must find it listening. Then wait until the bridge is up, else b's first
  // births would reach presenced only when the bridge retries (its restart_timeout).
  std::vector<Process> broker_procs;
  for (auto& b : brokers) {
    broker_procs.emplace_back(std::vector<std::string>{"/bin/sh", "-c", b.cmd});
    if (!presence::test::wait_for([&] { return presence::test::tcp_port_open(b.port); }, 10s)) {
      std::cerr << "presence-scenario: mosquitto (" << b.node << ") did not come up:\n" << slurp(b.log);
      return 2;
    }
  }
  for (std::size_t i = 1; i < brokers.size(); ++i) {
    const std::string needle = "as bridge-" + brokers[i].node + " ";
    if (!presence::test::wait_for([&] { return slurp(brokers[0].log).find(needle) != std::string::npos; }, 15s)) {
      std::cerr << "presence-scenario: the bridge " << brokers[i].node << " -> a did not connect:\n"
                << slurp(brokers[i].log);
      return 2;
    }
  }
  const int port = brokers[0].port;
  const std::string broker_cmd = brokers[0].cmd;
  // Storm metrics: each broker's broker-ext heartbeat counters, read from that broker directly
  // (not through the bridge, which is itself under load in a storm). mosquitto_sub reconnects by
  // itself after a broker restart.
  const bool storm_metrics = setup.brokers > 1 || !bench.empty();
  std::vector<Process> observers;
  const std::string mosquitto_sub = presence::test::find_program("mosquitto_sub");
  if (storm_metrics && !mosquitto_sub.empty() && fs::exists(plugin)) {
    for (auto& b : brokers) {
      std::string prefix = setup.brokers > 1 ? presence::scenario::kBridgedPrefix : "$SYS/presence/{node}";
      prefix.replace(prefix.find("{node}"), 6, b.node);
      // In a loop: mosquitto_sub retries a lost connection by itself but exits when a CONNACK
      // refuses it, and storm protection may refuse it while the brokers restart.
      const std::string sub = shell_quote(mosquitto_sub) + " -h 127.0.0.1 -p " + std::to_string(b.port) +
                              " -i scenario-observer-" + b.node + " -v -t " + shell_quote(prefix + "/heartbeat");
      observers.emplace_back(std::vector<std::string>{"/bin/sh", "-c",
                                                      "trap 'kill $c 2>/dev/null; wait $c; exit 0' TERM; while :; do " + sub +
                                                          " & c=$!; wait $c; sleep 0.2; done"},
                             b.heartbeats);
    }
  }
  // What `${BROKERS_RESTART} SIGNAL [DOWN_S]` in a timeline does: every broker of the run.
  {
    std::ofstream s(path("restart-brokers.sh"));
    s << "#!/bin/sh\n# Stops every broker of this run (signal $1, default TERM), waits $2 s (default 0),\n"
      << "# starts them again.\nsig=${1:-TERM}\n"
      << "alive() { [ -e /proc/$1 ] && ! grep -q '^State:[[:space:]]*Z' /proc/$1/status 2>/dev/null; }\n";
    for (auto& b : brokers)
      s << "pid=$(cat " << shell_quote(b.pidfile) << ")\nkill -s $sig $pid 2>/dev/null\n"
        << "i=0; while alive $pid && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done\n"
        << "alive $pid && kill -s KILL $pid\n";
    s << "sleep ${2:-0}\n";
    for (auto& b : brokers)
      s << "setsid /bin/sh -c " << shell_quote(b.cmd) << " < /dev/null > /dev/null 2>&1 &\n";
    s.close();
    fs::permissions(path("restart-brokers.sh"), fs::perms::owner_all);
  }

  // --- presenced x2, each with its own receiver --------------------------------------------
  YAML::Node over = merge(file["presenced"], sc["presenced"]);
  std::vector<std::unique_ptr<Instance>> inst;
  for (const auto& mode_s : modes) {
    const char* mode = mode_s.c_str();
    auto in = std::make_unique<Instance>();
    Instance* self = in.get();
    in->mode = mode;
    in->receiver = std::make_unique<MockHttpServer>();
    in->receiver->set_handler([self](const RecordedRequest& req) {
      std::lock_guard<std::mutex> lock(self->mu);
      json body = json::parse(req.body, nullptr, false);
      if (req.path == "/slack") {
        ++self->slack_messages;
        if (body.is_discarded() || !body.contains("text") || !body["text"].is_string()) ++self->slack_invalid;
        return MockResponse(200, "ok");
      }
      self->pages.push_back({{"t", wall_ms()}, {"path", req.path}, {"body", body}});
      return MockResponse(202, R"({"status":"success","message":"Event processed"})");
    });
    YAML::Node c = base_config();
    c["mode"] = mode;
    c["mqtt"]["uri"] = "tcp://127.0.0.1:" + std::to_string(port);
    c["mqtt"]["client_id"] = std::string("presenced-scen-") + mode;
    if (setup.brokers > 1) c["topics"]["broker_ext"] = presence::scenario::kBridgedPrefix;
    c["http"]["listen"] = "127.0.0.1:0";
    c["store"]["dir"] = path(std::string("store-") + mode);
    c["alerts"]["pagerduty"]["enabled"] = true;
    c["alerts"]["pagerduty"]["url"] = in->receiver->url("/v2/enqueue");
    c["alerts"]["pagerduty"]["routing_key"] = kRoutingKey;
    // The receiver has no rate limit; the scorecard scores decisions, not PagerDuty's 120 a
    // minute (which would stretch the naive baseline's page-per-device storm over minutes).
    c["alerts"]["pagerduty"]["rate_limit_events"] = 1000000;
    c["alerts"]["slack"]["enabled"] = true;
    c["alerts"]["slack"]["webhook_url"] = in->receiver->url("/slack");
    c["presence"]["heartbeat_default_interval"] =
        sc["options"] && sc["options"]["heartbeat"] ? sc["options"]["heartbeat"].as<std::string>()
                                                    : std::string(scale == "small" ? "1s" : "5s");
    c = merge(c, over);
    c["mode"] = mode;  // a scenario cannot make both instances the same
    fs::create_directories(path(std::string("store-") + mode));
    in->config = path(std::string("presenced-") + mode + ".yaml");
    std::ofstream(in->config) << emit(c);
    in->pidfile = path(std::string("presenced-") + mode + ".pid");
    in->log = path(std::string("presenced-") + mode + ".log");
    in->start_cmd = "echo $$ > " + shell_quote(in->pidfile) + "; exec " + presenced + " --config " +
                    shell_quote(in->config) + " >> " + shell_quote(in->log) + " 2>&1";
    inst.push_back(std::move(in));
  }
  std::vector<Process> first;
  for (auto& in : inst) first.emplace_back(std::vector<std::string>{"/bin/sh", "-c", in->start_cmd});
  for (auto& in : inst) {
    if (!presence::test::wait_for([&] { return slurp(in->log).find("subscribed") != std::string::npos; },
                                  15s)) {
      std::cerr << "presence-scenario: presenced (" << in->mode << ") did not subscribe:\n" << slurp(in->log);
      return 2;
    }
  }
  // What `${PRESENCED_RESTART} SIGNAL` in a timeline does: both instances, so both see the same.
  {
    std::ofstream s(path("restart-presenced.sh"));
    s << "#!/bin/sh\n# Restarts both presenced instances of this run (signal $1, default TERM).\n"
      << "sig=${1:-TERM}\n"
      // A killed first-generation instance stays a zombie (the driver's child) until the end of
      // the run: gone is "no /proc entry or state Z", else the wait below would always time out.
      << "alive() { [ -e /proc/$1 ] && ! grep -q '^State:[[:space:]]*Z' /proc/$1/status 2>/dev/null; }\n";
    for (auto& in : inst) {
      s << "pid=$(cat " << shell_quote(in->pidfile) << ")\nkill -s $sig $pid 2>/dev/null\n"
        << "i=0; while alive $pid && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done\n"
        << "alive $pid && kill -s KILL $pid\n"
        << "setsid /bin/sh -c " << shell_quote(in->start_cmd) << " < /dev/null > /dev/null 2>&1 &\n";
    }
    s.close();
    fs::permissions(path("restart-presenced.sh"), fs::perms::owner_all);
  }

  // --- the simulated fleet ------------------------------------------------------------------
  const std::map<std::string, std::string> vars{{"RUN", dir},
                                                {"PRESENCED_RESTART", path("restart-presenced.sh")},
                                                {"BROKERS_RESTART", path("restart-brokers.sh")}};
  YAML::Node simfile;
  simfile["v"] = 1;
  YAML::Node opts = sc["options"] ? substitute(sc["options"], vars) : YAML::Node(YAML::NodeType::Map);
  // Heartbeats as in a real fleet (compressed): they are presenced's proof of life for devices
  // that reconnected while it could not see the broker (their births are then only retained).
  if (!opts["heartbeat"]) opts["heartbeat"] = scale == "small" ? "1s" : "5s";
  if (!opts["progress"]) opts["progress"] = "0";
  simfile["options"] = opts;
  simfile["timeline"] = substitute(sc["timeline"], vars);
  std::ofstream(path("sim.yaml")) << emit(simfile);

  std::atomic<bool> sampling{true};
  auto sample_all = [&] {
    for (auto& in : inst) {
      const pid_t pid = read_pid(in->pidfile);
      if (pid <= 0) continue;
      Usage u = in->usage[pid];
      if (sample(pid, u)) {
        in->usage[pid] = u;
        in->last_pid = pid;
      }
    }
    for (auto& b : brokers) {
      const pid_t pid = read_pid(b.pidfile);
      if (pid <= 0) continue;
      Usage u = b.usage[pid];
      if (sample(pid, u, "mosquitto")) {
        b.usage[pid] = u;
        b.last_pid = pid;
      }
    }
  };
  std::thread sampler([&] {
    while (sampling) {
      sample_all();
      std::this_thread::sleep_for(100ms);
    }
  });

  const std::int64_t t0 = wall_ms();
  std::string broker_list;
  for (auto& b : brokers) broker_list += (broker_list.empty() ? "" : ",") + std::string("127.0.0.1:") + std::to_string(b.port);
  Process simp({sim, "--broker", broker_list, "--scenario", path("sim.yaml"), "--out",
                path("truth.jsonl"), "--broker-pidfile", path("broker.pid"), "--broker-cmd", "/bin/sh -c " + shell_quote(broker_cmd)},
               path("sim.log"));
  const int sim_rc = simp.wait_exit(std::chrono::minutes(30));
  sampling = false;
  sampler.join();
  sample_all();
  const std::int64_t t1 = wall_ms();

  // --- stop everything we (or the sim, or the restart script) started, by pid ----------------
  for (auto& in : inst) {
    const pid_t pid = read_pid(in->pidfile);
    if (pid > 0) ::kill(pid, SIGTERM);
  }
  for (auto& in : inst) {
    const pid_t pid = read_pid(in->pidfile);
    if (pid > 0 && !presence::test::wait_for([&] { return ::kill(pid, 0) != 0 || fs::exists("/proc/" + std::to_string(pid)) == false || slurp("/proc/" + std::to_string(pid) + "/status").find("State:\tZ") != std::string::npos; }, 5s))
      ::kill(pid, SIGKILL);
  }
  first.clear();
  for (auto& o : observers) o.stop(SIGTERM);  // the loop's trap ends its mosquitto_sub (SIGKILL would not)
  observers.clear();
  for (std::size_t i = 0; i < brokers.size(); ++i) {
    const pid_t bp = read_pid(brokers[i].pidfile);
    if (bp > 0 && bp != broker_procs[i].pid()) ::kill(bp, SIGTERM);
    broker_procs[i].stop();
  }

  json meta;
  meta["scenario"] = name;
  meta["incident"] = file["incident"] ? file["incident"].as<std::string>() : "";
  meta["scale"] = scale;
  meta["events"] = file["events"] ? file["events"].as<int>() : 0;
  meta["expect_failures"] = file["expect_failures"] ? file["expect_failures"].as<bool>() : true;
  meta["assert"] = scale == "small";  // full scale is for the docs: reported, not asserted
  const YAML::Node eff = merge(base_config(), over);
  const std::int64_t min_outage = file["min_outage"]
                                      ? parse_ms(file["min_outage"].as<std::string>())
                                      : parse_ms(eff["presence"]["offline_grace"].as<std::string>()) +
                                            parse_ms(eff["alerts"]["policy"]["alert_after"].as<std::string>()) +
                                            parse_ms(eff["alerts"]["policy"]["group_wait"].as<std::string>()) + 2000;
  meta["min_outage_ms"] = min_outage;
  // Page truth (issue 11): the latency bound offline_grace + alert_after + group_wait + 5 s
  // (docs/configuration.md), the burst window (incident_window) and what the file expects.
  {
    const std::int64_t grace = parse_ms(eff["presence"]["offline_grace"].as<std::string>());
    meta["offline_grace_ms"] = grace;
    meta["bound_ms"] = grace + parse_ms(eff["alerts"]["policy"]["alert_after"].as<std::string>()) +
                       parse_ms(eff["alerts"]["policy"]["group_wait"].as<std::string>()) + 5000;
    meta["burst_ms"] = parse_ms(eff["alerts"]["policy"]["incident_window"].as<std::string>());
    const YAML::Node ex = sc["expect"] ? sc["expect"] : file["expect"];
    if (ex && ex["incidents"]) meta["expect_scopes"] = ex["incidents"].as<std::vector<std::string>>();
    if (ex && ex["cohorts"]) meta["expect_cohorts"] = ex["cohorts"].as<std::vector<std::string>>();
    if (ex && ex["cohort_page"]) meta["expect_cohort_page"] = ex["cohort_page"].as<bool>();
  }
  meta["slack_ms"] = 2000;
  meta["sim_exit"] = sim_rc;
  meta["wall_s"] = static_cast<double>(t1 - t0) / 1000.0;
  for (auto& in : inst) {
    std::lock_guard<std::mutex> lock(in->mu);
    std::ofstream out(path("pages-" + in->mode + ".jsonl"));
    for (const auto& p : in->pages) out << p.dump() << "\n";
    std::int64_t hwm = 0;
    double cpu = 0;
    for (const auto& [pid, u] : in->usage) {
      hwm = std::max(hwm, u.hwm_kb);
      cpu += u.cpu_s;
    }
    const std::int64_t rss_end = in->usage.count(in->last_pid) ? in->usage[in->last_pid].rss_kb : 0;
    meta["usage"][in->mode] = {{"peak_rss_kb", hwm},
                               {"rss_end_kb", rss_end},
                               {"cpu_s", std::round(cpu * 100) / 100},
                               {"processes", in->usage.size()},
                               {"slack_messages", in->slack_messages},
                               {"slack_invalid", in->slack_invalid}};
  }
  meta["brokers"] = setup.brokers;
  meta["storm_metrics"] = storm_metrics;
  meta["storm_protection"] = setup.storm_protection;
  meta["broker_ext"] = json::object();
  for (const auto& [k, v] : setup.broker_ext) meta["broker_ext"][k] = v;
  meta["broker_usage"] = json::array();
  for (auto& b : brokers) {
    std::int64_t hwm = 0;
    double cpu = 0;
    for (const auto& [pid, u] : b.usage) {
      hwm = std::max(hwm, u.hwm_kb);
      cpu += u.cpu_s;
    }
    meta["broker_usage"].push_back({{"node", b.node}, {"port", b.port}, {"peak_rss_kb", hwm},
                                    {"cpu_s", std::round(cpu * 100) / 100}, {"processes", b.usage.size()}});
  }
  std::ofstream(path("meta.json")) << meta.dump(2) << "\n";
  if (sim_rc != 0) {
    std::cerr << "presence-scenario: presence-sim exited with " << sim_rc << ":\n" << slurp(path("sim.log"));
    return 2;
  }
  try {
    auto r = score_dir(dir);
    r.line["wall_s"] = meta["wall_s"];
    if (bench.empty()) {
      std::cout << r.line.dump() << std::endl;
    } else {
      // Benchmark mode: stdout is only {"name","value","unit"} lines; the scorecard goes to stderr.
      std::cerr << r.line.dump() << std::endl;
      for (const auto& l : bench_lines(r.line, bench)) std::cout << l.dump() << std::endl;
    }
    if (!r.pass) {
      std::cerr << "presence-scenario: " << name << " FAILED:";
      for (const auto& w : r.why) std::cerr << " " << w << ";";
      std::cerr << "\n  (run again with --keep DIR to keep truth.jsonl, pages-*.jsonl and the logs)\n";
      for (auto& in : inst) {
        const std::string log = slurp(in->log);
        std::cerr << "--- presenced (" << in->mode << ") log, last 3000 bytes ---\n"
                  << log.substr(log.size() > 3000 ? log.size() - 3000 : 0);
      }
    }
    return r.pass ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "presence-scenario: scoring failed: " << e.what() << "\n";
    return 2;
  }
}
