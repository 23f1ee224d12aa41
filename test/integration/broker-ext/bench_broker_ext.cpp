// Benchmark (not a test; issue 4 "per-event cost measured"): broker CPU per connect/disconnect
// cycle with and without mosquitto_presence.so, and the plugin logic's own cost per event.
// Prints JSON lines {"name":..,"value":..,"unit":..}. Run: build/.../bench_broker_ext [cycles]
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "broker-ext/presence_ext.h"
#include "broker_fixture.h"

using namespace presence::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// utime + stime of pid in seconds (/proc/<pid>/stat fields 14 and 15, clock ticks).
double cpu_seconds(pid_t pid) {
  const std::string s = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto rp = s.rfind(')');
  std::istringstream in(s.substr(rp + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15; ++i) {
    in >> field;
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

void line(const std::string& name, double value, const std::string& unit) {
  std::printf("{\"name\":\"%s\",\"value\":%.3f,\"unit\":\"%s\"}\n", name.c_str(), value,
              unit.c_str());
  std::fflush(stdout);
}

// A mosquitto on a free loopback port that logs nothing: the test brokers log everything, which
// would dwarf what we measure. port < 0 if it did not start.
struct QuietBroker {
  TempDir dir;
  int port = free_tcp_port();
  Process process;
  QuietBroker(const std::string& name, const std::string& plugin_lines) {
    const std::string conf = dir.write("mosquitto.conf", "listener " + std::to_string(port) +
                                                             " 127.0.0.1\nallow_anonymous true\n"
                                                             "persistence false\nlog_dest none\n" +
                                                             plugin_lines);
    process = Process({find_program("mosquitto"), "-c", conf}, dir.file("log"));
    if (!wait_for([&] { return tcp_port_open(port); }, 10000ms)) {
      std::cerr << name << ": broker did not start\n";
      port = -1;
    }
  }
  pid_t pid() const { return process.pid(); }
  void stop() { process.stop(); }
};

// Broker CPU per cycle (TCP connect, CONNECT, CONNACK, DISCONNECT, close), in us; < 0 on error.
double broker_variant(const std::string& name, const std::string& plugin_lines, bool subscriber,
                      int cycles) {
  QuietBroker broker(name, plugin_lines);
  if (broker.port < 0) return -1;
  const int port = broker.port;
  std::unique_ptr<mqtt::Collector> col;
  if (subscriber) col = std::make_unique<mqtt::Collector>(port, "$SYS/presence/#", "bench-sub");
  std::this_thread::sleep_for(200ms);
  const double cpu0 = cpu_seconds(broker.pid());
  const auto t0 = Clock::now();
  int ok = 0;
  for (int i = 0; i < cycles; ++i) {
    mqtt::RawClient c;
    mqtt::ConnectOptions o;
    o.client_id = "bench-" + std::to_string(i % 500);
    if (c.connect(port, o) == 0) ++ok;
    c.disconnect();
  }
  // Let the broker finish the last disconnects before reading its CPU time.
  std::this_thread::sleep_for(300ms);
  const double cpu1 = cpu_seconds(broker.pid());
  (void)t0;
  if (ok != cycles && name.find("refused") == std::string::npos) std::cerr << name << ": only " << ok << " of " << cycles << " accepted\n";
  col.reset();
  broker.stop();
  return (cpu1 - cpu0) * 1e6 / cycles;
}

// Broker CPU per heartbeat PUBLISH (QoS 0, 2000 device ids round robin, no subscriber), in us:
// what MOSQ_EVT_MESSAGE + aggregation add to every publish on the broker; < 0 on error.
// subscriber_filter: a subscriber that stands in for presenced (empty = none).
double heartbeat_variant(const std::string& name, const std::string& plugin_lines, int messages,
                         const std::string& subscriber_filter = "") {
  QuietBroker broker(name, plugin_lines);
  if (broker.port < 0) return -1;
  const int port = broker.port;
  std::unique_ptr<mqtt::Collector> sub;
  if (!subscriber_filter.empty()) {
    sub = std::make_unique<mqtt::Collector>(port, subscriber_filter, "bench-sub");
  }
  mqtt::RawClient c;
  mqtt::ConnectOptions o;
  o.client_id = "bench-pub";
  if (c.connect(port, o) != 0 || !c.subscribe("bench/done")) return -1;
  // Packets built before the clock starts: the publisher's own cost is not measured anyway
  // (we read the broker's CPU time), but a fast sender keeps the broker busy.
  std::vector<std::string> batches;
  const int batch = 1000;
  for (int i = 0; i < messages; i += batch) {
    std::string b;
    for (int k = i; k < std::min(messages, i + batch); ++k) {
      b += mqtt::publish_packet("devices/device-" + std::to_string(k % 2000) + "/heartbeat",
                                "{\"seq\":" + std::to_string(k) + "}");
    }
    batches.push_back(std::move(b));
  }
  std::this_thread::sleep_for(200ms);
  const double cpu0 = cpu_seconds(broker.pid());
  for (const auto& b : batches) {
    if (!c.send_raw(b)) return -1;
  }
  // One connection's packets are handled in order: when our own marker comes back, the broker
  // has processed every heartbeat before it.
  c.publish("bench/done", "x");
  if (!c.read_publish(10000ms)) {
    std::cerr << name << ": no marker\n";
    return -1;
  }
  // With a subscriber, let the broker finish writing the deliveries queued for it.
  if (sub) {
    wait_for([&] {
      return subscriber_filter.find("alive") != std::string::npos ||
             sub->snapshot().size() >= static_cast<std::size_t>(messages);
    }, 20000ms);
    std::this_thread::sleep_for(300ms);
  }
  const double cpu1 = cpu_seconds(broker.pid());
  sub.reset();
  c.disconnect();
  broker.stop();
  return (cpu1 - cpu0) * 1e6 / messages;
}

double cpu_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// PresenceExt alone: basic_auth + tick + disconnect per cycle (what the shim adds per event,
// minus mosquitto_broker_publish_copy).
void logic_variant(int cycles) {
  using namespace presence::broker_ext;
  auto parsed = parse_options({{"basic_auth", "defer"}, {"node", "bench"}, {"connect_rate", "1000000"},
                               {"flap_max_count", "15"}},
                              "h");
  PresenceExt p(*parsed.options, "00112233445566778899aabbccddeeff", "0", "2.0", Now{0, 0});
  ClientInfo info;
  info.address = "127.0.0.1";
  info.protocol_version = 4;
  std::size_t bytes = 0;
  const double t0 = cpu_now_ns();  // CPU time: the machine is shared, wall time is not ours
  for (int i = 0; i < cycles; ++i) {
    info.client_id = "device-" + std::to_string(i % 10000);
    const Now n{i, 1'700'000'000'000 + i};
    Output out;
    const void* conn = reinterpret_cast<const void*>(static_cast<std::uintptr_t>(0x1000 + i % 64));
    p.on_basic_auth(conn, info, n, out);
    p.on_tick(n, out);
    p.on_disconnect(conn, info.client_id.c_str(), n, out);
    for (auto& m : out.messages) bytes += m.payload.size();
  }
  const double ns = cpu_now_ns() - t0;
  line("plugin_logic_per_connect_disconnect", ns / cycles, "ns");
  line("plugin_logic_bytes_per_cycle", static_cast<double>(bytes) / cycles, "bytes");
}

// PresenceExt::on_message alone (match + dedupe), 2000 ids round robin, an alive interval ends
// every 10,000 messages (each id 5 times per interval), and a non-matching topic for contrast.
void logic_heartbeat_variant(int messages) {
  using namespace presence::broker_ext;
  auto parsed = parse_options({{"basic_auth", "off"}, {"node", "bench"},
                               {"heartbeat_topic", "devices/{id}/heartbeat"}}, "h");
  PresenceExt p(*parsed.options, "00112233445566778899aabbccddeeff", "0", "2.0", Now{0, 0});
  std::vector<std::string> topics;
  for (int i = 0; i < 2000; ++i) topics.push_back("devices/device-" + std::to_string(i) + "/heartbeat");
  const std::string other = "sensors/device-1/temperature";
  std::size_t alive = 0;
  Output out;
  const double t0 = cpu_now_ns();
  for (int i = 0; i < messages; ++i) {
    p.on_message(topics[static_cast<std::size_t>(i % 2000)], out);
    if (i % 10000 == 9999) {
      p.on_tick(Now{i, i}, out);
      alive += out.messages.size();
      out.messages.clear();
    }
  }
  const double ns = cpu_now_ns() - t0;
  const double t1 = cpu_now_ns();
  for (int i = 0; i < messages; ++i) p.on_message(other, out);
  const double ns_other = cpu_now_ns() - t1;
  line("plugin_logic_per_heartbeat_publish", ns / messages, "ns");
  line("plugin_logic_per_other_publish", ns_other / messages, "ns");
  (void)alive;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "heartbeats") {
    // bench_broker_ext heartbeats [messages] [reps]: heartbeat aggregation only.
    const int messages = argc > 2 ? std::atoi(argv[2]) : 200000;
    const int reps = argc > 3 ? std::atoi(argv[3]) : 3;
    const std::string plug = "plugin " + presence::test::broker_ext::plugin_path() +
                             "\nplugin_opt_node bench\nplugin_opt_basic_auth off\n";
    logic_heartbeat_variant(2000000);
    struct HV {
      std::string name, conf, sub;
      std::vector<double> us;
    };
    const std::string agg = plug + "plugin_opt_heartbeat_topic devices/{id}/heartbeat\n";
    std::vector<HV> hv = {
        {"no_plugin", "", "", {}},
        {"plugin_aggregation_off", plug, "", {}},
        {"plugin_aggregation_on", agg, "", {}},
        // What presenced costs the broker: every heartbeat delivered to it, or one alive/s.
        {"aggregation_off_subscriber_heartbeats", plug, "devices/+/heartbeat", {}},
        {"aggregation_on_subscriber_alive", agg, "$SYS/presence/+/alive", {}},
    };
    heartbeat_variant("warmup", "", messages / 4);
    for (int r = 0; r < reps; ++r) {
      for (auto& v : hv) v.us.push_back(heartbeat_variant(v.name, v.conf, messages, v.sub));
    }
    for (auto& v : hv) {
      std::sort(v.us.begin(), v.us.end());
      line("broker_cpu_per_heartbeat_publish." + v.name, v.us[v.us.size() / 2], "us");
    }
    return 0;
  }
  const int cycles = argc > 1 ? std::atoi(argv[1]) : 4000;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 3;
  const std::string so = presence::test::broker_ext::plugin_path();
  const std::string plug = "plugin " + so + "\nplugin_opt_node bench\n";
  logic_variant(200000);
  struct Variant {
    std::string name, conf;
    bool subscriber;
    std::vector<double> us;
  };
  std::vector<Variant> vs = {
      {"no_plugin", "", false, {}},
      {"plugin_basic_auth_off", plug + "plugin_opt_basic_auth off\n", false, {}},
      {"plugin_defer", plug + "plugin_opt_basic_auth defer\n", false, {}},
      {"plugin_defer_storm", plug + "plugin_opt_basic_auth defer\nplugin_opt_connect_rate 100000\n"
                             "plugin_opt_flap_max_count 100000\n", false, {}},
      // Nearly every attempt refused at the door (CONNACK 5): what a storm costs the broker.
      {"plugin_refused_by_rate_limit", plug + "plugin_opt_basic_auth defer\n"
                                       "plugin_opt_connect_rate 1\nplugin_opt_connect_burst 1\n", false, {}},
      {"no_plugin_with_subscriber", "", true, {}},
      {"plugin_defer_with_subscriber", plug + "plugin_opt_basic_auth defer\n", true, {}},
  };
  // Interleaved repetitions, median reported: the machine is shared, so single runs are noisy.
  broker_variant("warmup", "", false, cycles / 4);
  for (int r = 0; r < reps; ++r) {
    for (auto& v : vs) v.us.push_back(broker_variant(v.name, v.conf, v.subscriber, cycles));
  }
  for (auto& v : vs) {
    std::sort(v.us.begin(), v.us.end());
    line("broker_cpu_per_connect_disconnect." + v.name, v.us[v.us.size() / 2], "us");
  }
  return 0;
}
