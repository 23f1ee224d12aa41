// presence-e2e-bench: end-to-end throughput, CPU and lag of presenced behind a real Mosquitto
// (issue 6, "Benchmarks": presenced <= 0.5 x Mosquitto's CPU per message, never the bottleneck).
//
//   presence-e2e-bench [--devices D] [--connections K] [--seconds S] [--rates 10000,30000,max]
//                      [--payload plain|json] [--broker-ext on|off] [--bulk-heartbeats on|off] [--poll-ms N]
//                      [--birth-rate R] [--settle-seconds S] [--broker-nodelay] [--raw-subscriber]
//                      [--perf FILE] [--keep] [--quick] [--presenced PATH] [--plugin PATH]
//
// One run: mosquitto (with broker-ext by default) on a free loopback port, the real presenced
// binary with a production config (default windows) against it, K raw MQTT 3.1.1 connections
// (presence-sim's codec) publishing births, then QoS 0 heartbeats for D devices round robin at
// each rate step ("max" = as fast as the broker reads). Per step it prints JSON lines
// {"name":..,"value":..,"unit":..}; docs/benchmarks.md ("End to end") explains every name.
// Nothing here is asserted: performance is printed, never tested (HELPERS.md).
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

#include "presence/tools/e2e-bench/proc.h"
#include "presence/common/mqtt_codec.h"

namespace presence::e2e {
namespace {

using Clock = std::chrono::steady_clock;
namespace mqtt = presence::mqtt_codec;

const Clock::time_point kEpoch = Clock::now();
double since_epoch(Clock::time_point t) {
  return std::chrono::duration<double>(t - kEpoch).count();
}
double now_s() { return since_epoch(Clock::now()); }
void sleep_s(double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); }

void emit(const std::string& name, double value, const std::string& unit) {
  // %.6g: integers up to a million print exactly, the rest with 6 significant digits.
  std::printf("{\"name\":\"%s\",\"value\":%.6g,\"unit\":\"%s\"}\n", name.c_str(),
              std::isfinite(value) ? value : 0.0, unit.c_str());
  std::fflush(stdout);
}
void note(const std::string& text) { std::fprintf(stderr, "e2e-bench: %s\n", text.c_str()); }

struct Options {
  std::size_t devices = 100000;
  int connections = 8;
  double seconds = 5;
  std::vector<double> rates{10000, 30000, 100000, 0};  // 0 = flat out
  bool json = false;
  bool broker_ext = true;
  // --heartbeats aggregated: broker-ext collects the heartbeats inside the broker
  // (plugin_opt_heartbeat_topic) and presenced reads one /alive message per second instead of
  // subscribing to devices/+/heartbeat (docs/broker-ext.md). Lines are then named e2e_agg_*.
  bool aggregated = false;
  int poll_ms = 10;
  bool broker_nodelay = false;
  bool raw_subscriber = false;
  std::string bulk_heartbeats;  // "", "on", "off": mqtt.bulk_heartbeats ("" = presenced's default)
  double birth_rate = 20000;
  double settle_seconds = 150;
  bool keep = false;
  std::string perf_out;
  // --fleet: the big-fleet run (issue 16 item 3) instead of the rate steps: every device
  // heartbeats once per fleet_period through broker-ext aggregation; steady RSS, snapshot pause
  // and write time, API latency under load, then SIGTERM and restart-to-ready from the snapshot.
  // Lines are named fleet_*; docs/benchmarks.md "A million devices".
  bool fleet = false;
  double fleet_period = 30;        // s between two heartbeats of one device
  double fleet_intro_rate = 100000;  // msg/s of the first round (the fleet appearing)
  double fleet_steady_seconds = 90;  // measured window
  // output.publish_rate, the default: 1 M first states (and the restatement after the restart)
  // trickle out in the background for ~17 min, as in production. 50000/s kept presenced's engine
  // thread overloaded while publishing (measured: "overload: presenced is behind" for 53 s).
  double fleet_publish_rate = 1000;
  std::string fleet_snapshot_interval = "30s";  // store.snapshot_interval (the default)
  std::string presenced = PRESENCE_E2E_PRESENCED;
  std::string plugin = PRESENCE_E2E_PLUGIN;
};

std::string step_name(double rate) {
  if (rate <= 0) return "max";
  if (rate >= 1000 && std::fmod(rate, 1000) == 0)
    return std::to_string(static_cast<long long>(rate / 1000)) + "k";
  return std::to_string(static_cast<long long>(rate));
}

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "presence-e2e-bench: %s\n"
               "usage: presence-e2e-bench [--devices D] [--connections K] [--seconds S]\n"
               "         [--rates 10000,30000,100000,max] [--payload plain|json]\n"
               "         [--broker-ext on|off] [--heartbeats direct|aggregated] [--bulk-heartbeats on|off]\n"
               "         [--poll-ms N] [--birth-rate R] [--settle-seconds S]\n"
               "         [--broker-nodelay] [--raw-subscriber] [--perf FILE] [--keep] [--quick]\n"
               "         [--presenced PATH] [--plugin PATH]\n"
               "       presence-e2e-bench --fleet|--fleet-quick [--devices D] [--connections K]\n"
               "         [--fleet-period S] [--fleet-intro-rate R] [--fleet-steady-seconds S]\n"
               "         [--fleet-publish-rate R] [--fleet-snapshot-interval 30s]\n"
               "         [--settle-seconds S] [--keep] [--presenced PATH] [--plugin PATH]\n",
               why.c_str());
  std::exit(2);
}

Options parse_args(int argc, char** argv) {
  Options o;
  auto value = [&](int& i) -> std::string {
    if (i + 1 >= argc) usage(std::string(argv[i]) + " needs a value");
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    try {
      if (a == "--devices") o.devices = std::stoul(value(i));
      else if (a == "--connections") o.connections = std::stoi(value(i));
      else if (a == "--seconds") o.seconds = std::stod(value(i));
      else if (a == "--poll-ms") o.poll_ms = std::stoi(value(i));
      else if (a == "--birth-rate") o.birth_rate = std::stod(value(i));
      else if (a == "--settle-seconds") o.settle_seconds = std::stod(value(i));
      else if (a == "--perf") o.perf_out = value(i);
      else if (a == "--presenced") o.presenced = value(i);
      else if (a == "--plugin") o.plugin = value(i);
      else if (a == "--keep") o.keep = true;
      else if (a == "--fleet") {
        o.fleet = true;
        o.aggregated = true;
        o.devices = 1000000;
        o.connections = 8;
        o.settle_seconds = 5;
      } else if (a == "--fleet-quick") {
        // The CTest smoke run (presence_e2e_bench_fleet_smoke): 20 k devices, seconds.
        o.fleet = true;
        o.aggregated = true;
        o.devices = 20000;
        o.connections = 2;
        o.fleet_period = 5;
        o.fleet_steady_seconds = 4;
        o.fleet_snapshot_interval = "1s";
        o.settle_seconds = 2;
      } else if (a == "--fleet-period") o.fleet_period = std::stod(value(i));
      else if (a == "--fleet-intro-rate") o.fleet_intro_rate = std::stod(value(i));
      else if (a == "--fleet-steady-seconds") o.fleet_steady_seconds = std::stod(value(i));
      else if (a == "--fleet-publish-rate") o.fleet_publish_rate = std::stod(value(i));
      else if (a == "--fleet-snapshot-interval") o.fleet_snapshot_interval = value(i);
      else if (a == "--broker-nodelay") o.broker_nodelay = true;
      else if (a == "--raw-subscriber") o.raw_subscriber = true;
      else if (a == "--payload") {
        const std::string v = value(i);
        if (v != "plain" && v != "json") usage("--payload is plain or json");
        o.json = v == "json";
      } else if (a == "--broker-ext") {
        const std::string v = value(i);
        if (v != "on" && v != "off") usage("--broker-ext is on or off");
        o.broker_ext = v == "on";
      } else if (a == "--bulk-heartbeats") {
        o.bulk_heartbeats = value(i);
        if (o.bulk_heartbeats != "on" && o.bulk_heartbeats != "off") usage("--bulk-heartbeats is on or off");
      } else if (a == "--heartbeats") {
        const std::string v = value(i);
        if (v != "direct" && v != "aggregated") usage("--heartbeats is direct or aggregated");
        o.aggregated = v == "aggregated";
      } else if (a == "--rates") {
        o.rates.clear();
        std::stringstream ss(value(i));
        std::string r;
        while (std::getline(ss, r, ',')) o.rates.push_back(r == "max" ? 0 : std::stod(r));
        if (o.rates.empty()) usage("--rates is empty");
      } else if (a == "--quick") {
        // The CTest smoke run (presence_e2e_bench_smoke): seconds, not minutes.
        o.devices = 2000;
        o.connections = 2;
        o.seconds = 1;
        o.rates = {5000, 0};
        o.settle_seconds = 10;
      } else if (a == "--help" || a == "-h") {
        usage("help");
      } else {
        usage("unknown argument " + a);
      }
    } catch (const std::logic_error&) {
      usage("bad value for " + a);
    }
  }
  if (o.aggregated && !o.broker_ext) usage("--heartbeats aggregated needs --broker-ext on");
  if (o.fleet && (o.fleet_period <= 0 || o.fleet_intro_rate <= 0 || o.fleet_steady_seconds <= 0 ||
                  o.fleet_publish_rate < 0))
    usage("--fleet-period, --fleet-intro-rate and --fleet-steady-seconds must be positive");
  if (o.broker_ext && o.plugin.empty())
    usage("built without broker-ext (WITH_BROKER_EXT off): pass --plugin PATH or --broker-ext off");
  if (o.devices == 0 || o.connections <= 0 || o.seconds <= 0 || o.poll_ms <= 0)
    usage("devices, connections, seconds and poll-ms must be positive");
  return o;
}

std::string device_id(std::size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "dev-%07zu", i);
  return buf;
}

int connect_loopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::runtime_error("connect: " + std::string(std::strerror(errno)));
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

void write_all(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("send: " + std::string(std::strerror(errno)));
    }
    off += static_cast<std::size_t>(n);
  }
}

// Reads until one whole packet is decoded (blocking). Used for CONNACK and SUBACK only.
mqtt::Packet read_packet(int fd, mqtt::Decoder& dec) {
  mqtt::Packet p;
  char buf[4096];
  while (true) {
    const auto st = dec.next(p);
    if (st == mqtt::Decoder::Status::Packet) return p;
    if (st == mqtt::Decoder::Status::Error) throw std::runtime_error("mqtt: " + dec.error());
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) throw std::runtime_error("mqtt: connection closed by the broker");
    dec.feed(std::string_view(buf, static_cast<std::size_t>(n)));
  }
}

int mqtt_connect(int port, const std::string& client_id) {
  const int fd = connect_loopback(port);
  mqtt::ConnectOptions co;
  co.client_id = client_id;
  co.keepalive_s = 0;  // we never read after CONNACK; no PINGREQ needed
  std::string out;
  mqtt::encode_connect(out, co);
  write_all(fd, out);
  mqtt::Decoder dec;
  const auto p = read_packet(fd, dec);
  const auto ack = mqtt::parse_connack(p);
  if (p.type != mqtt::PacketType::Connack || !ack || ack->return_code != 0)
    throw std::runtime_error("mqtt: connect of " + client_id + " refused");
  return fd;
}

// K publisher connections sharing the device ids round robin: device i always goes out on
// connection i % K (one gateway per K-th of the fleet). Packets are encoded once up front so
// the bench spends its CPU on send(), not on formatting.
class Publishers {
 public:
  struct Sample {
    double t;            // since_epoch, after the send returned
    std::uint64_t sent;  // messages handed to the kernel in this stream so far
  };

  // with_births false (--fleet): heartbeats only, so 1 M devices do not hold 1 M births too.
  Publishers(int port, int k, std::size_t devices, bool json, bool with_births = true)
      : devices_(devices) {
    for (int c = 0; c < k; ++c) fds_.push_back(mqtt_connect(port, "e2e-pub-" + std::to_string(c)));
    if (with_births) births_.reserve(devices);
    beats_.reserve(devices);
    for (std::size_t i = 0; i < devices; ++i) {
      const std::string id = device_id(i);
      const std::string site = "site-" + std::to_string(i % 50);
      std::string b, h;
      // What a fleet sends: a retained birth (docs/topics.md), then periodic heartbeats.
      mqtt::encode_publish(b, "devices/" + id + "/status",
                           json ? R"({"state":"online","firmware":"3.8.0","site":")" + site + "\"}"
                                : std::string("online"),
                           0, true, 0);
      mqtt::encode_publish(h, "devices/" + id + "/heartbeat",
                           json ? R"({"uptime":86400,"firmware":"3.8.0","site":")" + site + "\"}"
                                : std::string("1"),
                           0, false, 0);
      if (with_births) births_.push_back(std::move(b));
      beats_.push_back(std::move(h));
    }
  }
  ~Publishers() {
    for (int fd : fds_) ::close(fd);
  }
  Publishers(const Publishers&) = delete;
  Publishers& operator=(const Publishers&) = delete;

  void births(double rate) {
    std::size_t next = 0;
    stream(births_, next, rate, 0, devices_);
  }

  // Heartbeats at `rate` msg/s (0 = as fast as the broker reads) for `seconds`.
  std::vector<Sample> heartbeats(double rate, double seconds) {
    return stream(beats_, next_beat_, rate, seconds, 0);
  }
  // One heartbeat of every device, at `rate` msg/s.
  void heartbeat_round(double rate) { stream(beats_, next_beat_, rate, 0, devices_); }

 private:
  // Paced by wall time: every millisecond sends what is due (rate x elapsed - sent). Flat out
  // sends 2,048-message chunks with blocking sends, so TCP back-pressure from the broker paces it.
  std::vector<Sample> stream(const std::vector<std::string>& packets, std::size_t& next,
                             double rate, double seconds, std::uint64_t count) {
    std::vector<Sample> samples;
    std::vector<std::string> bufs(fds_.size());
    const auto t0 = Clock::now();
    std::uint64_t sent = 0;
    constexpr std::uint64_t kChunk = 2048;
    while (true) {
      const auto now = Clock::now();
      const double el = std::chrono::duration<double>(now - t0).count();
      if (count > 0 ? sent >= count : el >= seconds) break;
      std::uint64_t n = kChunk;
      if (rate > 0) {
        const auto due = static_cast<std::uint64_t>(rate * el);
        n = due > sent ? std::min(due - sent, kChunk * 8) : 0;
      }
      if (count > 0) n = std::min(n, count - sent);
      if (n == 0) {
        std::this_thread::sleep_until(now + std::chrono::milliseconds(1));
        continue;
      }
      for (std::uint64_t j = 0; j < n; ++j) {
        const std::size_t d = next;
        next = next + 1 == devices_ ? 0 : next + 1;
        bufs[d % fds_.size()] += packets[d];
      }
      for (std::size_t c = 0; c < fds_.size(); ++c) {
        if (bufs[c].empty()) continue;
        write_all(fds_[c], bufs[c]);
        bufs[c].clear();
      }
      sent += n;
      samples.push_back({now_s(), sent});
    }
    return samples;
  }

  std::size_t devices_;
  std::vector<int> fds_;
  std::vector<std::string> births_;
  std::vector<std::string> beats_;
  std::size_t next_beat_ = 0;
};

// Mosquitto's own counters ($SYS/broker/#, every sys_interval = 1 s): what the broker says it
// received, sent and dropped.
class SysWatch {
 public:
  explicit SysWatch(int port) : fd_(mqtt_connect(port, "e2e-sys-watch")) {
    std::string out;
    mqtt::encode_subscribe(out, 1, "$SYS/broker/#", 0);
    write_all(fd_, out);
    thread_ = std::thread([this] { run(); });
  }
  ~SysWatch() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  SysWatch(const SysWatch&) = delete;
  SysWatch& operator=(const SysWatch&) = delete;

  double get(const std::string& topic) const {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = values_.find(topic);
    return it == values_.end() ? 0 : it->second;
  }

 private:
  void run() {
    mqtt::Decoder dec(1 << 20);
    char buf[16384];
    while (true) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return;
      dec.feed(std::string_view(buf, static_cast<std::size_t>(n)));
      mqtt::Packet p;
      while (dec.next(p) == mqtt::Decoder::Status::Packet) {
        if (p.type != mqtt::PacketType::Publish) continue;
        const auto pub = mqtt::parse_publish(p);
        if (!pub) continue;
        char* end = nullptr;
        const double v = std::strtod(pub->payload.c_str(), &end);
        if (end == pub->payload.c_str()) continue;
        std::lock_guard<std::mutex> lock(mu_);
        values_[pub->topic] = v;
      }
    }
  }

  int fd_;
  mutable std::mutex mu_;
  std::map<std::string, double> values_;
  std::thread thread_;
};

// --raw-subscriber: a reference receiver on the same stream. One thread, recv() of 64 KiB at a
// time, presence-sim's incremental decoder, every PUBLISH parsed (topic and payload copied). Its
// thread CPU per message is what MQTT receive costs when many packets are decoded per syscall,
// against Paho's one-packet-per-cycle receive thread in presenced. It is a second subscriber, so
// the broker's fan-out doubles: compare presenced with it, not the broker's numbers of such a run.
class RawSubscriber {
 public:
  explicit RawSubscriber(int port) : fd_(mqtt_connect(port, "e2e-raw-subscriber")) {
    std::string out;
    mqtt::encode_subscribe(out, 1, "devices/+/heartbeat", 0);
    write_all(fd_, out);
    thread_ = std::thread([this] { run(); });
  }
  ~RawSubscriber() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  RawSubscriber(const RawSubscriber&) = delete;
  RawSubscriber& operator=(const RawSubscriber&) = delete;

  std::uint64_t received() const { return received_.load(); }
  double cpu_seconds() const { return static_cast<double>(cpu_ns_.load()) * 1e-9; }

 private:
  void run() {
    mqtt::Decoder dec(1 << 20);
    std::string buf(64 * 1024, '\0');
    while (true) {
      const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
      if (n <= 0) return;
      dec.feed(std::string_view(buf.data(), static_cast<std::size_t>(n)));
      mqtt::Packet p;
      std::uint64_t got = 0;
      while (dec.next(p) == mqtt::Decoder::Status::Packet) {
        if (p.type == mqtt::PacketType::Publish && mqtt::parse_publish(p)) ++got;
      }
      timespec ts{};
      ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      cpu_ns_.store(static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL +
                    static_cast<std::uint64_t>(ts.tv_nsec));
      received_.fetch_add(got);
    }
  }

  int fd_;
  std::atomic<std::uint64_t> received_{0};
  std::atomic<std::uint64_t> cpu_ns_{0};
  std::thread thread_;
};

// What "processed" means for this run (set once from Options before any scrape).
bool g_aggregated = false;

struct Scrape {
  bool ok = false;
  double processed = 0;  // presence_mqtt_messages_total (direct) or heartbeats in /alive batches
  double messages = 0;   // presence_mqtt_messages_total
  double alive = 0;      // presence_alive_heartbeats_total
  double devices = 0;    // sum of presence_devices{state=...}
  double connected = 0;  // presence_broker_connected
  double pending = 0;    // presence_publish_pending
  double published = 0;  // presence_published_total
  // --fleet (0 when this presenced does not export the metric):
  double online = 0;               // presence_devices{state="online"}
  double snapshot_saves = 0;       // presence_snapshot_saves_total
  double snapshot_pause = 0;       // presence_snapshot_pause_seconds (the last copy)
  double snapshot_pause_max = 0;   // presence_snapshot_pause_max_seconds
  double snapshot_write = 0;       // presence_snapshot_write_seconds (the last write)
  double snapshot_bytes = 0;       // presence_snapshot_bytes
  double snapshot_restore = 0;     // presence_snapshot_restore_seconds
  double batch_max = 0;            // presence_engine_batch_max_seconds
  double batches_slow = 0;         // presence_engine_batches_slow_total
};

double metric_after(const std::string& body, std::size_t pos) {
  const auto sp = body.find(' ', pos);
  return sp == std::string::npos ? 0 : std::strtod(body.c_str() + sp + 1, nullptr);
}

Scrape parse_metrics(const std::string& body) {
  Scrape s;
  s.ok = true;
  std::size_t pos = 0;
  while (pos < body.size()) {
    const auto eol = body.find('\n', pos);
    const std::size_t end = eol == std::string::npos ? body.size() : eol;
    if (body[pos] != '#') {
      const std::string_view line(body.data() + pos, end - pos);
      if (line.starts_with("presence_mqtt_messages_total "))
        s.messages = metric_after(body, pos);
      else if (line.starts_with("presence_alive_heartbeats_total "))
        s.alive = metric_after(body, pos);
      else if (line.starts_with("presence_devices{"))
        s.devices += std::strtod(body.c_str() + pos + line.rfind(' ') + 1, nullptr);
      else if (line.starts_with("presence_broker_connected "))
        s.connected = metric_after(body, pos);
      else if (line.starts_with("presence_publish_pending "))
        s.pending = metric_after(body, pos);
      else if (line.starts_with("presence_published_total "))
        s.published = metric_after(body, pos);
      else if (line.starts_with("presence_snapshot_saves_total "))
        s.snapshot_saves = metric_after(body, pos);
      else if (line.starts_with("presence_snapshot_pause_seconds "))
        s.snapshot_pause = metric_after(body, pos);
      else if (line.starts_with("presence_snapshot_pause_max_seconds "))
        s.snapshot_pause_max = metric_after(body, pos);
      else if (line.starts_with("presence_snapshot_write_seconds "))
        s.snapshot_write = metric_after(body, pos);
      else if (line.starts_with("presence_snapshot_bytes "))
        s.snapshot_bytes = metric_after(body, pos);
      else if (line.starts_with("presence_snapshot_restore_seconds "))
        s.snapshot_restore = metric_after(body, pos);
      else if (line.starts_with("presence_engine_batch_max_seconds "))
        s.batch_max = metric_after(body, pos);
      else if (line.starts_with("presence_engine_batches_slow_total "))
        s.batches_slow = metric_after(body, pos);
      if (line.starts_with("presence_devices{state=\"online\"}"))
        s.online = std::strtod(body.c_str() + pos + line.rfind(' ') + 1, nullptr);
    }
    pos = end + 1;
  }
  s.processed = g_aggregated ? s.alive : s.messages;
  return s;
}

// Reads presenced's /metrics over one keep-alive connection.
class Scraper {
 public:
  explicit Scraper(int port) : client_("127.0.0.1", port) {
    // A new connection per scrape: on a keep-alive connection cpp-httplib's server writes the
    // headers and the body separately without TCP_NODELAY, so every answer after the first waits
    // ~40 ms for our delayed ACK (Nagle), which would swamp the lag we measure.
    client_.set_keep_alive(false);
    client_.set_connection_timeout(std::chrono::seconds(2));
    client_.set_read_timeout(std::chrono::seconds(5));
  }
  Scrape scrape() {
    auto res = client_.Get("/metrics");
    if (!res || res->status != 200) return {};
    return parse_metrics(res->body);
  }

 private:
  httplib::Client client_;
};

// Polls presenced's processed counter every poll_ms on its own thread while a step runs.
class Poller {
 public:
  struct Sample {
    double t;
    double processed;
  };
  Poller(int port, int poll_ms) : scraper_(port), every_(std::chrono::milliseconds(poll_ms)) {}
  void start() {
    stop_ = false;
    samples_.clear();
    thread_ = std::thread([this] {
      auto next = Clock::now();
      while (!stop_) {
        const Scrape s = scraper_.scrape();
        if (s.ok) {
          std::lock_guard<std::mutex> lock(mu_);
          samples_.push_back({now_s(), s.processed});
        }
        next += every_;
        std::this_thread::sleep_until(next);
      }
    });
  }
  std::vector<Sample> stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return samples_;
  }
  double latest() {
    std::lock_guard<std::mutex> lock(mu_);
    return samples_.empty() ? 0 : samples_.back().processed;
  }

 private:
  Scraper scraper_;
  std::chrono::milliseconds every_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Sample> samples_;
  std::thread thread_;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size()))) ;
  return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
}

// --fleet: what an operator does at 1 M devices while the fleet heartbeats, one request at a time
// on one keep-alive connection, 20 ms apart: the first page of /v1/devices, the next page of a
// walk over the whole fleet (limit 1000), one device's detail, the fleet summary, /metrics.
// Each answer is timed from request to full body (every API read runs on the engine thread).
class ApiLoad {
 public:
  ApiLoad(int port, std::size_t devices) : client_("127.0.0.1", port), devices_(devices) {
    client_.set_keep_alive(true);
    client_.set_connection_timeout(std::chrono::seconds(2));
    client_.set_read_timeout(std::chrono::seconds(10));
  }
  ~ApiLoad() { stop(); }
  void start() {
    thread_ = std::thread([this] { run(); });
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  void report() const {
    for (const auto& [name, v] : ms_) {
      emit("fleet_api_" + name + "_p50_ms", percentile(v, 0.50), "ms");
      emit("fleet_api_" + name + "_p99_ms", percentile(v, 0.99), "ms");
      emit("fleet_api_" + name + "_max_ms", v.empty() ? 0 : *std::max_element(v.begin(), v.end()),
           "ms");
    }
    emit("fleet_api_requests", static_cast<double>(requests_), "requests");
    emit("fleet_api_errors", static_cast<double>(errors_), "requests");
    emit("fleet_api_walk_devices", static_cast<double>(walked_), "devices");
  }

 private:
  void timed(const std::string& name, const std::string& path, std::string* body = nullptr) {
    const auto t0 = Clock::now();
    auto res = client_.Get(path);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    ++requests_;
    if (!res || res->status != 200) {
      ++errors_;
      return;
    }
    ms_[name].push_back(ms);
    if (body) *body = std::move(res->body);
  }
  void run() {
    std::uint64_t i = 0;
    std::string cursor;
    while (!stop_) {
      switch (i++ % 5) {
        case 0:
          timed("devices_page", "/v1/devices?limit=100");
          break;
        case 1: {
          std::string body;
          timed("devices_walk", "/v1/devices?limit=1000" + (cursor.empty() ? "" : "&cursor=" + cursor),
                &body);
          for (auto at = body.find("\"id\":"); at != std::string::npos;
               at = body.find("\"id\":", at + 5))
            ++walked_;
          // "next_cursor":"c1_..." or null: the walk starts over at the end.
          const auto at = body.find("\"next_cursor\":\"");
          cursor.clear();
          if (at != std::string::npos) {
            const auto b = at + 15;
            cursor = body.substr(b, body.find('"', b) - b);
          }
          break;
        }
        case 2:
          timed("device", "/v1/devices/" + device_id(rng_() % devices_));
          break;
        case 3:
          timed("fleet", "/v1/fleet");
          break;
        default:
          timed("metrics", "/metrics");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  httplib::Client client_;
  std::size_t devices_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::map<std::string, std::vector<double>> ms_;
  std::uint64_t requests_ = 0, errors_ = 0, walked_ = 0;
  std::mt19937_64 rng_{42};
};

struct CpuSnap {
  double mosquitto = 0;
  double presenced = 0;
  double self = 0;
  std::vector<ThreadCpu> threads;  // presenced's
};

struct Bench {
  explicit Bench(Options o) : opt(std::move(o)) { g_aggregated = opt.aggregated; }
  Options opt;
  TempDir dir;
  int broker_port = 0;
  int http_port = 0;
  Process mosquitto;
  Process presenced;
  Process perf;
  std::optional<SysWatch> sys;
  std::optional<Scraper> scraper;
  std::optional<RawSubscriber> raw;
  double idle_presenced_cores = 0;  // /metrics polling, timers, broker-ext heartbeats
  double idle_mosquitto_cores = 0;

  CpuSnap snap() {
    CpuSnap s;
    s.mosquitto = cpu_seconds(mosquitto.pid());
    s.presenced = cpu_seconds(presenced.pid());
    s.self = cpu_seconds(::getpid());
    s.threads = thread_cpu(presenced.pid());
    return s;
  }

  void start_mosquitto() {
    const std::string bin = find_program("mosquitto");
    if (bin.empty()) throw std::runtime_error("mosquitto not found (apt-get install mosquitto)");
    broker_port = free_tcp_port();
    std::ostringstream conf;
    // log_type without debug: the broker must not log every PUBLISH while we bill its CPU.
    // sys_interval 1: $SYS counters (received/sent/dropped) fresh every second.
    conf << "per_listener_settings false\n"
         << "allow_anonymous true\n"
         << "listener " << broker_port << " 127.0.0.1\n"
         << "persistence false\n"
         << "log_dest stderr\n"
         << "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
         << "sys_interval 1\n"
         << "max_keepalive 65535\n";
    // Off by default as in config/*.conf; on, the broker writes each packet at once instead of
    // letting Nagle hold small writes until presenced's (delayed) ACK.
    if (opt.broker_nodelay) conf << "set_tcp_nodelay true\n";
    if (opt.broker_ext) {
      // basic_auth off: an open broker (allow_anonymous, no password_file), docs/broker-ext.md.
      conf << "plugin " << opt.plugin << "\n"
           << "plugin_opt_basic_auth off\n"
           << "plugin_opt_node bench\n";
      if (opt.aggregated) conf << "plugin_opt_heartbeat_topic devices/{id}/heartbeat\n";
    }
    const std::string path = dir.write("mosquitto.conf", conf.str());
    mosquitto = Process({bin, "-c", path}, dir.path() + "/mosquitto.log");
    wait_port(broker_port, mosquitto, "mosquitto", dir.path() + "/mosquitto.log");
  }

  std::string presenced_config;  // written once; the restart of --fleet reuses it

  void start_presenced() {
    http_port = free_tcp_port();
    std::ostringstream y;
    // Production behaviour: only what must differ from config/presenced.yaml is set (the
    // broker, a free HTTP port, a temp store); every presence window keeps its default.
    // Alerts off: nothing to send to, and the alert path is not what this bench measures.
    y << "mqtt:\n  uri: tcp://127.0.0.1:" << broker_port << "\n  client_id: presenced-e2e\n";
    // --bulk-heartbeats: A/B of the bulk heartbeat reader with one binary (issue 16 item 2);
    // unset = presenced's default (and a binary older than the key still starts).
    if (!opt.bulk_heartbeats.empty())
      y << "  bulk_heartbeats: " << (opt.bulk_heartbeats == "on" ? "true" : "false") << "\n";
    y << "http:\n  listen: 127.0.0.1:" << http_port << "\n"
      << "store:\n  dir: " << dir.path() << "/store\n";
    // --fleet: a big fleet's first states (and every restatement after a restart) go out at
    // --fleet-publish-rate instead of 1000/s (docs/scaling.md: raise it for big fleets).
    if (opt.fleet)
      y << "  snapshot_interval: " << opt.fleet_snapshot_interval << "\n"
        << "output:\n  publish_rate: " << opt.fleet_publish_rate << "\n";
    y << "alerts:\n  enabled: false\n";
    // Aggregated: the broker lists the heartbeats; subscribing to them too would count each twice.
    if (opt.aggregated) y << "topics:\n  heartbeat: \"\"\n";
    presenced_config = dir.write("presenced.yaml", y.str());
    spawn_presenced("presenced.log");
  }

  // (Re)starts presenced on presenced_config and http_port, until it answers HTTP and is connected.
  void spawn_presenced(const std::string& log) {
    presenced = Process({opt.presenced, "--config", presenced_config}, dir.path() + "/" + log);
    wait_port(http_port, presenced, "presenced", dir.path() + "/" + log);
    scraper.emplace(http_port);
    wait_until([&] { return scraper->scrape().connected >= 1; }, 30, "presenced connected");
  }

  void wait_port(int port, Process& child, const char* what, const std::string& log) {
    const double deadline = now_s() + 30;
    while (!tcp_port_open(port)) {
      if (!child.running())
        throw std::runtime_error(std::string(what) + " exited at start; log:\n" + read_file(log));
      if (now_s() > deadline)
        throw std::runtime_error(std::string(what) + " did not open its port; log:\n" +
                                 read_file(log));
      sleep_s(0.02);
    }
  }

  template <class Pred>
  void wait_until(Pred pred, double seconds, const char* what) {
    const double deadline = now_s() + seconds;
    while (!pred()) {
      if (now_s() > deadline) throw std::runtime_error(std::string("timed out: ") + what);
      sleep_s(0.02);
    }
  }

  // presenced has drained: its processed counter stopped moving for 200 ms.
  double wait_quiet() {
    double last = scraper->scrape().processed;
    double stable_since = now_s();
    const double deadline = now_s() + 60;
    while (now_s() < deadline) {
      sleep_s(0.02);
      const double p = scraper->scrape().processed;
      // Background ($SYS uptime, broker-ext heartbeat) is ~2 messages/s: that is quiet.
      if (p - last > 2) {
        last = p;
        stable_since = now_s();
      } else if (now_s() - stable_since >= 0.3) {
        break;
      }
    }
    return last;
  }

  void run() {
    start_mosquitto();
    start_presenced();
    sys.emplace(broker_port);
    note("mosquitto pid " + std::to_string(mosquitto.pid()) + " port " +
         std::to_string(broker_port) + ", presenced pid " + std::to_string(presenced.pid()) +
         " http " + std::to_string(http_port) + ", dir " + dir.path());
    Publishers pubs(broker_port, opt.connections, opt.devices, opt.json);
    if (opt.raw_subscriber) raw.emplace(broker_port);
    emit("e2e_devices", static_cast<double>(opt.devices), "devices");
    emit("e2e_connections", opt.connections, "connections");

    // Births first, so every heartbeat is for a device presenced knows (as in a real fleet).
    const double b0 = now_s();
    pubs.births(opt.birth_rate);
    wait_until([&] { return scraper->scrape().devices >= static_cast<double>(opt.devices); },
               60, "presenced knows every device after the births");
    emit("e2e_births_seconds", now_s() - b0, "s");
    // Every birth is a transition that presenced publishes retained, at output.publish_rate
    // (1000/s by default): 100 s for 100k devices. Measure the steady state of a fleet that is
    // already known, not that backlog (bounded by --settle-seconds; what is left is reported).
    const double s0 = now_s();
    while (now_s() - s0 < opt.settle_seconds && scraper->scrape().pending > 0) sleep_s(0.2);
    emit("e2e_output_settle_seconds", now_s() - s0, "s");
    emit("e2e_output_pending_at_start", scraper->scrape().pending, "msg");
    wait_quiet();

    // Idle: what presenced and the broker cost with no traffic while we poll /metrics every
    // poll_ms (the poll itself is billed to presenced in every step below).
    {
      Poller poller(http_port, opt.poll_ms);
      const CpuSnap a = snap();
      const double t0 = now_s();
      poller.start();
      sleep_s(std::min(2.0, opt.seconds));
      poller.stop();
      const CpuSnap b = snap();
      const double wall = now_s() - t0;
      idle_presenced_cores = (b.presenced - a.presenced) / wall;
      idle_mosquitto_cores = (b.mosquitto - a.mosquitto) / wall;
      emit("e2e_idle_presenced_cores", idle_presenced_cores, "cores");
      emit("e2e_idle_mosquitto_cores", idle_mosquitto_cores, "cores");
    }

    if (!opt.perf_out.empty()) {
      // Software clock sampling: this VM exposes no hardware counters (perf stat -e
      // instructions says <not supported>). DWARF unwinding: RelWithDebInfo omits frame pointers.
      perf = Process({"perf", "record", "-e", "cpu-clock", "-F", "499", "--call-graph", "dwarf,16384",
                    "-p", std::to_string(presenced.pid()), "-o", opt.perf_out},
                   dir.path() + "/perf.log");
      sleep_s(0.5);
    }
    for (const double rate : opt.rates) step(pubs, rate);
    if (perf.running()) perf.stop(SIGINT, std::chrono::milliseconds(30000));

    emit("e2e_presenced_peak_rss_mb",
         static_cast<double>(peak_rss_bytes(presenced.pid())) / (1024.0 * 1024.0), "MiB");
    emit("e2e_mosquitto_peak_rss_mb",
         static_cast<double>(peak_rss_bytes(mosquitto.pid())) / (1024.0 * 1024.0), "MiB");
    const int st = presenced.stop(SIGTERM, std::chrono::milliseconds(10000));
    emit("e2e_presenced_clean_exit", WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 1 : 0, "bool");
    sys.reset();
    raw.reset();
    mosquitto.stop(SIGTERM, std::chrono::milliseconds(5000));
    if (opt.keep) {
      dir.keep();
      note("kept " + dir.path());
    }
  }

  // --fleet (issue 16 item 3): the real presenced with a big fleet. Heartbeats go through
  // broker-ext aggregation (the real plugin lists the ids in $SYS/presence/bench/alive), so one
  // Mosquitto carries 1 M devices on K publisher connections. Phases: the fleet appears (one
  // round at --fleet-intro-rate), its first states are published, then a steady window with
  // every device heartbeating once per --fleet-period while an operator uses the API; then
  // SIGTERM (final snapshot) and a restart from the snapshot while the heartbeats go on.
  void run_fleet() {
    start_mosquitto();
    start_presenced();
    note("fleet: mosquitto pid " + std::to_string(mosquitto.pid()) + " port " +
         std::to_string(broker_port) + ", presenced pid " + std::to_string(presenced.pid()) +
         " http " + std::to_string(http_port) + ", dir " + dir.path());
    const double n = static_cast<double>(opt.devices);
    emit("fleet_devices", n, "devices");
    emit("fleet_presenced_idle_rss_mb", mib(rss_bytes(presenced.pid())), "MiB");
    Publishers pubs(broker_port, opt.connections, opt.devices, false, false);

    // The heartbeat thread: one fast round (the fleet appears), then every device once per
    // period until the end of the run, restart included (devices do not stop for it).
    std::atomic<bool> beating{true};
    std::atomic<std::uint64_t> rounds{0};
    std::thread beat([&] {
      pubs.heartbeat_round(opt.fleet_intro_rate);
      ++rounds;
      while (beating) {
        pubs.heartbeats(n / opt.fleet_period, 0.25);
      }
    });
    struct Joiner {
      std::atomic<bool>& flag;
      std::thread& t;
      ~Joiner() {
        flag = false;
        if (t.joinable()) t.join();
      }
    } joiner{beating, beat};

    const double t0 = now_s();
    wait_until([&] { return scraper->scrape().devices >= n; }, 600, "presenced knows the fleet");
    emit("fleet_known_seconds", now_s() - t0, "s");
    const double s0 = now_s();
    while (now_s() - s0 < opt.settle_seconds && scraper->scrape().pending > 0) sleep_s(0.5);
    emit("fleet_output_settle_seconds", now_s() - s0, "s");
    emit("fleet_output_pending_at_start", scraper->scrape().pending, "msg");

    // Steady window: RSS and the snapshot metrics once a second, the API exercised meanwhile.
    const Scrape before = scraper->scrape();
    std::vector<double> rss;
    double pause_max = 0, write_max = 0;
    std::optional<ApiLoad> api(std::in_place, http_port, opt.devices);
    api->start();
    const double w0 = now_s();
    const CpuSnap cpu0 = snap();
    Scrape last = before;
    while (now_s() - w0 < opt.fleet_steady_seconds) {
      sleep_s(std::min(1.0, opt.fleet_steady_seconds / 4));
      rss.push_back(mib(rss_bytes(presenced.pid())));
      const Scrape sc = scraper->scrape();
      if (!sc.ok) continue;
      if (sc.snapshot_saves > last.snapshot_saves || sc.snapshot_saves > before.snapshot_saves) {
        pause_max = std::max(pause_max, sc.snapshot_pause);
        write_max = std::max(write_max, sc.snapshot_write);
      }
      last = sc;
    }
    api->stop();
    const CpuSnap cpu1 = snap();
    const double window = now_s() - w0;
    const Scrape after = scraper->scrape();
    std::sort(rss.begin(), rss.end());
    emit("fleet_rss_mb", rss.empty() ? 0 : rss[rss.size() / 2], "MiB");
    emit("fleet_rss_max_mb", rss.empty() ? 0 : rss.back(), "MiB");
    emit("fleet_rss_bytes_per_device", (rss.empty() ? 0 : rss[rss.size() / 2]) * 1048576.0 / n,
         "B");
    emit("fleet_peak_rss_mb", mib(peak_rss_bytes(presenced.pid())), "MiB");
    // CPU in the window: heartbeats (devices / period per second, listed by the plugin), the
    // background first states at publish_rate, snapshots and the API load all included.
    emit("fleet_heartbeats_per_s", n / opt.fleet_period, "msg/s");
    emit("fleet_presenced_cores", (cpu1.presenced - cpu0.presenced) / window, "cores");
    emit("fleet_mosquitto_cores", (cpu1.mosquitto - cpu0.mosquitto) / window, "cores");
    emit("fleet_online", after.online, "devices");
    emit("fleet_not_online", after.devices - after.online, "devices");
    emit("fleet_snapshot_saves", after.snapshot_saves - before.snapshot_saves, "snapshots");
    emit("fleet_snapshot_bytes", after.snapshot_bytes, "B");
    emit("fleet_snapshot_pause_max_ms", std::max(pause_max, after.snapshot_pause_max) * 1000, "ms");
    emit("fleet_snapshot_write_max_ms", write_max * 1000, "ms");
    emit("fleet_engine_batch_max_ms", after.batch_max * 1000, "ms");
    emit("fleet_engine_batches_slow", after.batches_slow - before.batches_slow, "batches");
    api->report();
    // Its kept-alive connection closed now: cpp-httplib's server holds SIGTERM up to its 5 s
    // keep-alive timeout for an idle open connection, which is not presenced's stop time.
    api.reset();

    // Restart: SIGTERM (the final snapshot is written before exit), then a new presenced on the
    // same store; ready = /readyz 200, restored = every device back.
    const double k0 = now_s();
    const int st = presenced.stop(SIGTERM, std::chrono::milliseconds(60000));
    emit("fleet_stop_seconds", now_s() - k0, "s");
    emit("fleet_presenced_clean_exit", WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 1 : 0, "bool");
    const double r0 = now_s();
    presenced = Process({opt.presenced, "--config", presenced_config},
                        dir.path() + "/presenced-restart.log");
    httplib::Client probe("127.0.0.1", http_port);
    probe.set_connection_timeout(std::chrono::milliseconds(200));
    probe.set_read_timeout(std::chrono::seconds(5));
    double ready = -1, restored = -1;
    scraper.emplace(http_port);
    while (now_s() - r0 < 120 && (ready < 0 || restored < 0)) {
      if (!presenced.running())
        throw std::runtime_error("presenced exited after the restart; log:\n" +
                                 read_file(dir.path() + "/presenced-restart.log"));
      if (ready < 0) {
        auto res = probe.Get("/readyz");
        if (res && res->status == 200) ready = now_s() - r0;
      }
      if (restored < 0 && scraper->scrape().devices >= n) restored = now_s() - r0;
      sleep_s(0.01);
    }
    emit("fleet_restart_ready_seconds", ready, "s");
    emit("fleet_restart_restored_seconds", restored, "s");
    const Scrape rs = scraper->scrape();
    emit("fleet_restart_restore_seconds", rs.snapshot_restore, "s");
    emit("fleet_restart_rss_mb", mib(rss_bytes(presenced.pid())), "MiB");
    emit("fleet_restart_not_online", rs.devices - rs.online, "devices");
    // Once the start-up's transients (the decoded snapshot, the file) are gone.
    sleep_s(std::min(5.0, opt.fleet_steady_seconds));
    emit("fleet_restart_rss_later_mb", mib(rss_bytes(presenced.pid())), "MiB");
    emit("fleet_restart_peak_rss_mb", mib(peak_rss_bytes(presenced.pid())), "MiB");

    beating = false;
    beat.join();
    const double k1 = now_s();
    const int st2 = presenced.stop(SIGTERM, std::chrono::milliseconds(60000));
    emit("fleet_restart_stop_seconds", now_s() - k1, "s");
    emit("fleet_restart_clean_exit", WIFEXITED(st2) && WEXITSTATUS(st2) == 0 ? 1 : 0, "bool");
    mosquitto.stop(SIGTERM, std::chrono::milliseconds(5000));
    if (opt.keep) {
      dir.keep();
      note("kept " + dir.path());
    }
  }

  static double mib(std::uint64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

  void step(Publishers& pubs, double rate) {
    const std::string n = std::string(opt.aggregated ? "e2e_agg_" : "e2e_") + step_name(rate) + "_";
    // $SYS counters are refreshed every second: let them settle before and after the step.
    sleep_s(1.1);
    const double dropped0 = sys->get("$SYS/broker/publish/messages/dropped");
    const double p0 = wait_quiet();
    const Scrape before = scraper->scrape();
    const double out0 = before.published;
    Poller poller(http_port, opt.poll_ms);
    const std::uint64_t raw_n0 = raw ? raw->received() : 0;
    const double raw_cpu0 = raw ? raw->cpu_seconds() : 0;
    const CpuSnap a = snap();
    const double t0 = now_s();
    poller.start();
    const auto sent = pubs.heartbeats(rate, opt.seconds);
    const CpuSnap b = snap();
    const double t1 = now_s();
    const double total = sent.empty() ? 0 : static_cast<double>(sent.back().sent);
    const double at_end = poller.latest() - p0;
    // Drain: until presenced processed everything or stopped making progress for 2 s.
    {
      // presenced also gets ~2 messages/s of its own ($SYS uptime, broker-ext heartbeat):
      // "progress" is more than 20 messages per second.
      double last = poller.latest();
      double moved = now_s();
      while (poller.latest() - p0 < total && now_s() - moved < 1.0 && now_s() - t1 < 120) {
        sleep_s(0.05);
        if (poller.latest() - last > 20.0 * (now_s() - moved)) {
          last = poller.latest();
          moved = now_s();
        }
      }
    }
    const CpuSnap c = snap();
    const double t2 = now_s();
    const auto polls = poller.stop();
    const double received = (polls.empty() ? 0 : polls.back().processed) - p0;
    const double window = t1 - t0;

    // Lag: for each moment t the publishers had sent s messages, the first poll at which
    // presenced had processed s messages of this step. Resolution: one poll period.
    std::vector<double> lags;
    std::size_t unreached = 0;
    std::size_t j = 0;
    for (const auto& s : sent) {
      while (j < polls.size() && polls[j].processed - p0 < static_cast<double>(s.sent)) ++j;
      if (j == polls.size()) {
        ++unreached;
        continue;
      }
      lags.push_back(std::max(0.0, polls[j].t - s.t) * 1000.0);
    }

    const double mosq_cpu = c.mosquitto - a.mosquitto;
    const double pres_cpu = c.presenced - a.presenced;
    emit(n + "published_per_s", total / window, "msg/s");
    emit(n + "processed_per_s", at_end / window, "msg/s");
    emit(n + "published", total, "msg");
    emit(n + "received", received, "msg");
    // Aggregated: a device is listed once per alive_interval however often it beat, so at rates
    // above one heartbeat per device per interval published - received counts merged
    // heartbeats, not lost evidence; only the broker drops QoS 0 messages.
    if (opt.aggregated)
      emit(n + "merged_in_interval", std::max(0.0, total - received), "msg");
    else
      emit(n + "lost", std::max(0.0, total - received), "msg");
    emit(n + "mqtt_messages_to_presenced", scraper->scrape().messages - before.messages, "msg");
    sleep_s(1.1);
    emit(n + "presenced_published", scraper->scrape().published - out0, "msg");
    const double dropped = sys->get("$SYS/broker/publish/messages/dropped") - dropped0;
    emit(n + "broker_dropped", dropped, "msg");
    if (opt.aggregated) emit(n + "lost", dropped, "msg");
    emit(n + "mosquitto_cpu_us_per_msg", total > 0 ? mosq_cpu / total * 1e6 : 0, "us/msg");
    emit(n + "presenced_cpu_us_per_msg", total > 0 ? pres_cpu / total * 1e6 : 0, "us/msg");
    emit(n + "cpu_ratio", mosq_cpu > 0 ? pres_cpu / mosq_cpu : 0, "ratio");
    // Net of the idle cost (mostly our own /metrics polling, billed to presenced): the cost of
    // the messages themselves.
    const double pres_net = std::max(0.0, pres_cpu - idle_presenced_cores * (t2 - t0));
    const double mosq_net = std::max(0.0, mosq_cpu - idle_mosquitto_cores * (t2 - t0));
    emit(n + "presenced_net_cpu_us_per_msg", total > 0 ? pres_net / total * 1e6 : 0, "us/msg");
    emit(n + "net_cpu_ratio", mosq_net > 0 ? pres_net / mosq_net : 0, "ratio");
    emit(n + "mosquitto_cores", (b.mosquitto - a.mosquitto) / window, "cores");
    emit(n + "presenced_cores", (b.presenced - a.presenced) / window, "cores");
    // The busiest presenced thread (engine thread or Paho's receive thread): a single-threaded
    // stage at ~1.0 core is the bottleneck even when the process total is below 2.
    double busiest = 0;
    std::string busiest_name;
    for (const auto& tb : b.threads) {
      for (const auto& ta : a.threads) {
        if (ta.tid != tb.tid) continue;
        const double u = (tb.seconds - ta.seconds) / window;
        if (u > busiest) {
          busiest = u;
          busiest_name = tb.name + "/" + std::to_string(tb.tid);
        }
      }
    }
    emit(n + "presenced_busiest_thread_cores", busiest, "cores");
    emit(n + "bench_cores", (b.self - a.self) / window, "cores");
    emit(n + "lag_p50_ms", percentile(lags, 0.50), "ms");
    emit(n + "lag_p99_ms", percentile(lags, 0.99), "ms");
    emit(n + "lag_max_ms", lags.empty() ? 0 : *std::max_element(lags.begin(), lags.end()), "ms");
    emit(n + "backlog_at_end", std::max(0.0, total - at_end), "msg");
    emit(n + "drain_seconds", t2 - t1, "s");
    emit(n + "presenced_rss_mb", static_cast<double>(rss_bytes(presenced.pid())) / (1024.0 * 1024.0),
         "MiB");
    if (raw) {
      const double got = static_cast<double>(raw->received() - raw_n0);
      emit(n + "raw_subscriber_received", got, "msg");
      emit(n + "raw_subscriber_cpu_us_per_msg", got > 0 ? (raw->cpu_seconds() - raw_cpu0) / got * 1e6 : 0,
           "us/msg");
    }
    if (rate <= 0) {
      // Flat out: presenced is the bottleneck if the broker dropped messages for it (Mosquitto
      // drops QoS 0 only for a subscriber whose queue is full: a slow presenced) or one of its
      // threads ran flat out. A backlog alone is not enough: with a fast subscriber it sits in
      // the publishers' sockets in front of the broker, which set the pace (issue 16 item 2:
      // the bulk reader left presenced at 0.1 cores while the broker ran at 0.8).
      // Aggregated, "processed" cannot catch up with "published" (merged heartbeats).
      const bool pres_bound = busiest > 0.9 || (!opt.aggregated && dropped > 0);
      emit(n + "bottleneck_is_presenced", pres_bound ? 1 : 0, "bool");
    }
    note(step_name(rate) + ": busiest presenced thread " + busiest_name + ", " +
         std::to_string(unreached) + " publisher samples never caught up, " +
         std::to_string(polls.size()) + " polls");
  }
};

}  // namespace
}  // namespace presence::e2e

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  presence::test::Process::kill_all_on_signals();
  try {
    presence::e2e::Bench bench(presence::e2e::parse_args(argc, argv));
    if (bench.opt.fleet) bench.run_fleet();
    else bench.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "presence-e2e-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
