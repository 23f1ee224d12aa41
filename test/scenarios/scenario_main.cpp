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
  if (!base.IsMap() || !over.IsMap()) return YAML::Clone(over);
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
  double cpu_s = 0;
};

bool sample(pid_t pid, Usage& u) {
  const std::string status = slurp("/proc/" + std::to_string(pid) + "/status");
  if (status.empty() || status.find("presenced") == std::string::npos) return false;
  const auto p = status.find("VmHWM:");
  if (p != std::string::npos) u.hwm_kb = std::max<std::int64_t>(u.hwm_kb, std::stoll(status.substr(p + 6)));
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
};

void usage_exit() {
  std::cerr << "usage: presence-scenario SCENARIO.yaml [--scale small|full] [--keep DIR]\n"
               "                         [--presenced PATH] [--sim PATH] [--plugin PATH]\n"
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
    const auto s = presence::scenario::score(truth, pages, min_outage, slack, kRoutingKey);
    json j = presence::scenario::to_json(s);
    if (meta.contains("usage") && meta["usage"].contains(mode)) {
      j["peak_rss_kb"] = meta["usage"][mode].value("peak_rss_kb", 0);
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
      if (j.value("slack_invalid", 0) > 0) fail("invalid Slack requests");
      if (s.required == 0 && meta.value("expect_failures", true)) fail("no real failure to score");
    }
  }
  if (!truth.errors.empty()) line["truth_errors"] = truth.errors.size();
  line["pass"] = r.pass;
  line["asserted"] = meta.value("assert", true);
  if (!r.why.empty()) line["failed"] = r.why;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string scenario_path, scale = "small", keep, score_only;
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
    else if (a == "-h" || a == "--help") usage_exit();
    else if (!a.empty() && a[0] == '-') usage_exit();
    else scenario_path = a;
  }
  if (!score_only.empty()) {
    try {
      const auto r = score_dir(score_only);
      std::cout << r.line.dump() << std::endl;
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

  presence::test::TempDir tmp;
  std::string dir = tmp.path();
  if (!keep.empty()) {
    fs::create_directories(keep);
    dir = fs::absolute(keep).string();
  }
  auto path = [&](const std::string& f) { return dir + "/" + f; };

  // --- broker ------------------------------------------------------------------------------
  const int port = presence::test::free_tcp_port();
  {
    std::ofstream conf(path("mosquitto.conf"));
    conf << "listener " << port << " 127.0.0.1\nallow_anonymous true\n"
         // As config/mosquitto.conf: retained births and presenced's persistent session survive a
         // broker restart (scenario 1), so presenced must not trust a stale retained "online".
         << "persistence true\npersistence_location " << dir << "/\n"
         // presenced's persistent session queues last-wills while it restarts (scenario 3);
         // the default of 1000 queued messages would drop some of a fleet's wills.
         << "max_queued_messages 0\nset_tcp_nodelay true\n";
    if (fs::exists(plugin))
      conf << "plugin " << plugin << "\nplugin_opt_basic_auth defer\nplugin_opt_node n1\n";
  }
  // Started through sh so the pidfile always names the broker, also after the sim restarted it.
  const std::string broker_cmd = "echo $$ > " + shell_quote(path("broker.pid")) + "; exec " + mosquitto +
                                 " -c " + shell_quote(path("mosquitto.conf")) + " >> " +
                                 shell_quote(path("broker.log")) + " 2>&1";
  Process broker({"/bin/sh", "-c", broker_cmd});
  if (!presence::test::wait_for([&] { return presence::test::tcp_port_open(port); }, 10s)) {
    std::cerr << "presence-scenario: mosquitto did not come up:\n" << slurp(path("broker.log"));
    return 2;
  }

  // --- presenced x2, each with its own receiver --------------------------------------------
  YAML::Node over = merge(file["presenced"], sc["presenced"]);
  std::vector<std::unique_ptr<Instance>> inst;
  for (const char* mode : kModes) {
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
    c["http"]["listen"] = "127.0.0.1:0";
    c["store"]["dir"] = path(std::string("store-") + mode);
    c["alerts"]["pagerduty"]["enabled"] = true;
    c["alerts"]["pagerduty"]["url"] = in->receiver->url("/v2/enqueue");
    c["alerts"]["pagerduty"]["routing_key"] = kRoutingKey;
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
                                                {"PRESENCED_RESTART", path("restart-presenced.sh")}};
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
      if (sample(pid, u)) in->usage[pid] = u;
    }
  };
  std::thread sampler([&] {
    while (sampling) {
      sample_all();
      std::this_thread::sleep_for(100ms);
    }
  });

  const std::int64_t t0 = wall_ms();
  Process simp({sim, "--broker", "127.0.0.1:" + std::to_string(port), "--scenario", path("sim.yaml"), "--out",
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
  {
    const pid_t bp = read_pid(path("broker.pid"));
    if (bp > 0 && bp != broker.pid()) ::kill(bp, SIGTERM);
    broker.stop();
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
    meta["usage"][in->mode] = {{"peak_rss_kb", hwm},
                               {"cpu_s", std::round(cpu * 100) / 100},
                               {"processes", in->usage.size()},
                               {"slack_messages", in->slack_messages},
                               {"slack_invalid", in->slack_invalid}};
  }
  std::ofstream(path("meta.json")) << meta.dump(2) << "\n";
  if (sim_rc != 0) {
    std::cerr << "presence-scenario: presence-sim exited with " << sim_rc << ":\n" << slurp(path("sim.log"));
    return 2;
  }
  try {
    auto r = score_dir(dir);
    r.line["wall_s"] = meta["wall_s"];
    std::cout << r.line.dump() << std::endl;
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
