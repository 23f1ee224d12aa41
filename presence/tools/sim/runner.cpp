#include "presence/tools/sim/runner.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <queue>

#include "presence/ingest/sparkplug_codec.h"
#include "presence/common/mqtt_codec.h"

extern char** environ;

namespace presence::sim {

namespace mqtt = presence::mqtt_codec;

namespace {

using json = nlohmann::json;

volatile std::sig_atomic_t g_stop = 0;
void on_stop_signal(int) { g_stop = 1; }

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// JSON lines, buffered and written in whole lines. When several workers share a pipe, each write
// stays within PIPE_BUF so lines never interleave; a regular file is opened O_APPEND.
class EventLog {
 public:
  explicit EventLog(const std::string& path) {
    if (path.empty() || path == "-") {
      fd_ = STDOUT_FILENO;
    } else {
      fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      own_ = fd_ >= 0;
    }
    struct stat st{};
    regular_ = fd_ >= 0 && ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode);
  }
  ~EventLog() {
    flush();
    if (own_) ::close(fd_);
  }
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  bool ok() const { return fd_ >= 0; }
  void line(const json& j) {
    buf_ += j.dump();
    buf_.push_back('\n');
    if (buf_.size() > 256 * 1024) flush();
  }
  void flush() {
    std::size_t off = 0;
    while (off < buf_.size()) {
      std::size_t len = buf_.size() - off;
      if (!regular_ && len > PIPE_BUF) {
        auto cut = buf_.rfind('\n', off + PIPE_BUF - 1);
        len = (cut == std::string::npos || cut < off) ? PIPE_BUF : cut + 1 - off;
      }
      ssize_t n = ::write(fd_, buf_.data() + off, len);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // reader gone: nothing sensible left to do with the report
      off += static_cast<std::size_t>(n);
    }
    buf_.clear();
  }

 private:
  int fd_ = -1;
  bool own_ = false;
  bool regular_ = false;
  std::string buf_;
};

enum class Conn : std::uint8_t { Idle, TcpConnecting, Handshake, Online, Closing };

struct Device {
  const DeviceSpec* spec = nullptr;
  std::string status_topic;
  std::string heartbeat_topic;
  int fd = -1;
  Conn conn = Conn::Idle;
  bool dead = false;          // die / disconnect: parked until revived
  bool gave_up = false;       // stuck after a lost session (incident 001)
  bool flapping_down = false; // a flap action holds it down; the flap brings it back
  bool after_loss = false;    // lost a session since it was last online (or revived)
  std::uint32_t failures = 0; // consecutive failed attempts since then
  std::uint32_t attempts = 0; // attempts since it went offline (reported on connect)
  std::uint32_t gen = 0;      // connection timers; bumped on every connection change
  std::uint32_t flap_gen = 0;
  std::uint32_t life_gen = 0;
  Millis flap_until = 0;
  Millis flap_period = 0;
  Millis flap_down = 0;
  Millis last_send = 0;
  Millis ping_sent = -1;
  Millis next_heartbeat = 0;
  std::uint64_t heartbeat_seq = 0;
  // Sparkplug edge-node mode: bdSeq of the current connection (0 on the first CONNECT, +1 on each
  // next one, wrapping 255 -> 0) and the message seq (0 = NBIRTH, wrapping 255 -> 0).
  std::uint8_t bd_seq = 0;
  bool bd_used = false;
  std::uint8_t sp_seq = 0;
  std::uint16_t packet_id = 0;
  std::uint32_t broker = 0;
  std::string out;
  std::size_t out_off = 0;
  mqtt::Decoder decoder{64 * 1024};
};

constexpr int kTimerBatch = 512;

enum class TimerKind : std::uint8_t { Connect, Tick, ConnectTimeout, CloseTimeout, FlapDown, FlapUp, Revive };

struct Timer {
  Millis at;
  std::uint32_t device;
  std::uint32_t gen;
  TimerKind kind;
  bool operator>(const Timer& o) const { return at > o.at; }
};

struct Stats {
  std::uint64_t connect_attempts = 0;
  std::uint64_t connects = 0;
  std::uint64_t connect_failures = 0;
  std::uint64_t connack_refused = 0;
  std::uint64_t disconnects = 0;
  std::uint64_t deaths = 0;
  std::uint64_t revives = 0;
  std::uint64_t gave_up = 0;
  std::uint64_t publishes = 0;
  std::uint64_t pubacks = 0;
  std::uint64_t pings = 0;
  std::uint64_t protocol_errors = 0;
  std::uint64_t socket_errors = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::size_t online = 0;
  std::size_t max_online = 0;
  double peak_connects_per_s = 0;
};

struct ProcState {
  const ProcessTarget* target = nullptr;
  const char* name = "";
  pid_t started = 0;  // a pid we spawned and have not reaped yet
};

struct PendingRestart {
  ProcState* proc;
  pid_t pid;
  Millis deadline;
  std::string command;
  int line;
};

double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

long max_rss_kb() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

long current_rss_kb() {
  std::ifstream in("/proc/self/statm");
  long size = 0, resident = 0;
  in >> size >> resident;
  return resident * (::sysconf(_SC_PAGESIZE) / 1024);
}

class Runner {
 public:
  Runner(const SimOptions& o, const Scenario& sc, const std::vector<DeviceSpec>& fleet, Worker w)
      : o_(o), sc_(sc), w_(w), rng_(o.fleet.seed * 7919 + static_cast<std::uint64_t>(w.index) + 1),
        log_(o.out) {
    for (std::size_t i = static_cast<std::size_t>(w.index); i < fleet.size();
         i += static_cast<std::size_t>(w.count)) {
      Device d;
      d.spec = &fleet[i];
      d.status_topic = topic_for(o.status_topic, fleet[i].id);
      d.heartbeat_topic = topic_for(o.heartbeat_topic, fleet[i].id);
      d.broker = static_cast<std::uint32_t>(i % o.brokers.size());
      dev_.push_back(std::move(d));
    }
    broker_ = {&o.broker, "broker", 0};
    presenced_ = {&o.presenced, "presenced", 0};
    failure_rate_ = o.failure_rate / w.count;
    failure_down_ = o.failure_down;
    failure_never_ = o.failure_never;
    source_addrs_ = effective_source_addrs(o);
  }

  int run();

 private:
  // --- time ---
  Millis clock() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 t0_)
        .count();
  }
  std::int64_t wall(Millis t) const { return wall0_ + t; }

  json event(const char* kind) {
    json j;
    j["v"] = 1;
    j["t"] = wall(now_);
    j["event"] = kind;
    if (w_.count > 1) j["worker"] = w_.index;
    return j;
  }
  json device_event(const char* kind, const Device& d, const char* truth) {
    auto j = event(kind);
    j["device"] = truth_id(d);
    j["truth"] = truth;
    return j;
  }

  void schedule(std::uint32_t i, Millis at, TimerKind k) {
    auto& d = dev_[i];
    std::uint32_t g = k == TimerKind::FlapDown || k == TimerKind::FlapUp ? d.flap_gen
                      : k == TimerKind::Revive                         ? d.life_gen
                                                                       : d.gen;
    timers_.push(Timer{std::max(at, now_ + 1), i, g, k});
  }
  bool timer_valid(const Timer& t) const {
    auto& d = dev_[t.device];
    switch (t.kind) {
      case TimerKind::FlapDown:
      case TimerKind::FlapUp: return t.gen == d.flap_gen;
      case TimerKind::Revive: return t.gen == d.life_gen;
      default: return t.gen == d.gen;
    }
  }

  // --- connections ---
  bool resolve_brokers();
  void start_connect(std::uint32_t i);
  void close_fd(Device& d, bool rst);
  void connect_failed(std::uint32_t i, const char* why);
  void lost(std::uint32_t i, const char* cause);
  void go_online(std::uint32_t i);
  void send(std::uint32_t i, bool* still_open = nullptr);
  void handle_io(std::uint32_t i, std::uint32_t events);
  void handle_packet(std::uint32_t i, mqtt::Packet& p);
  void tick(std::uint32_t i);
  void schedule_tick(std::uint32_t i);
  // Sparkplug edge-node mode (SimOptions::sparkplug_group).
  bool sparkplug() const { return !o_.sparkplug_group.empty(); }
  // The id presenced gives the device: an edge node is {group}/{edge} (docs/sparkplug.md), so the
  // truth the scenarios score names it the same way.
  std::string truth_id(const Device& d) const {
    return sparkplug() ? o_.sparkplug_group + "/" + d.spec->id : d.spec->id;
  }
  std::string sp_topic(const char* type, const Device& d, const std::string& device = {}) const {
    return "spBv1.0/" + o_.sparkplug_group + "/" + type + "/" + d.spec->id + (device.empty() ? "" : "/" + device);
  }
  std::string sp_payload(Device& d, bool with_bd_seq, bool with_seq, bool value) const {
    presence::ingest::sparkplug::PayloadSpec s;
    s.timestamp = static_cast<std::uint64_t>(wall(now_));
    if (with_bd_seq) s.bd_seq = d.bd_seq;
    if (with_seq) s.seq = d.sp_seq++;
    if (value) s.values = {{"uptime_s", static_cast<double>(now_) / 1000.0}};
    return presence::ingest::sparkplug::encode(s);
  }
  void publish(Device& d, const std::string& topic, const std::string& payload, int qos,
               bool retain);
  void schedule_reconnect(std::uint32_t i, bool session_lost, json* ev);

  // --- life ---
  void die(std::uint32_t i, const char* cause, std::optional<Millis> back_after);
  bool revive(std::uint32_t i);
  void run_timer(const Timer& t);

  // --- timeline ---
  void run_action(const Action& a);
  std::vector<std::size_t> candidates(const Action& a, bool (*eligible)(const Device&));
  pid_t resolve_pid(ProcState& p);
  pid_t spawn(const std::string& command);
  void start_process(ProcState& p, const std::string& command, int line);
  void reap_children();
  void check_restarts();
  void background_failure();
  void progress();
  void summary();

  const SimOptions& o_;
  const Scenario& sc_;
  Worker w_;
  Rng rng_;
  EventLog log_;
  std::vector<Device> dev_;
  std::vector<sockaddr_in> broker_addrs_;
  int ep_ = -1;
  int source_addrs_ = 1;
  std::chrono::steady_clock::time_point t0_;
  std::int64_t wall0_ = 0;
  Millis now_ = 0;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  std::size_t next_action_ = 0;
  bool stop_ = false;
  Stats st_;
  ProcState broker_;
  ProcState presenced_;
  std::vector<PendingRestart> restarts_;
  double failure_rate_ = 0;
  DurationRange failure_down_;
  double failure_never_ = 0;
  Millis next_failure_ = -1;
  Millis next_progress_ = 0;
  std::uint64_t progress_connects_ = 0;
  std::uint64_t progress_attempts_ = 0;
  double progress_cpu_ = 0;
  Millis progress_at_ = 0;
  std::uint64_t peak_connects_ = 0;
  Millis peak_at_ = 0;
};

bool Runner::resolve_brokers() {
  for (auto& b : o_.brokers) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(b.port));
    if (::inet_pton(AF_INET, b.host.c_str(), &a.sin_addr) != 1) {
      addrinfo hints{};
      hints.ai_family = AF_INET;
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* res = nullptr;
      if (::getaddrinfo(b.host.c_str(), nullptr, &hints, &res) != 0 || !res) {
        std::fprintf(stderr, "presence-sim: cannot resolve broker host '%s'\n", b.host.c_str());
        return false;
      }
      a.sin_addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
      ::freeaddrinfo(res);
    }
    broker_addrs_.push_back(a);
  }
  return true;
}

void Runner::start_connect(std::uint32_t i) {
  auto& d = dev_[i];
  if (d.fd >= 0 || d.dead) return;
  ++d.gen;
  ++st_.connect_attempts;
  ++d.attempts;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ++st_.socket_errors;
    connect_failed(i, errno == EMFILE || errno == ENFILE ? "no file descriptors" : "socket");
    return;
  }
  d.fd = fd;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (source_addrs_ > 1) {
    // More loopback source addresses widen the ephemeral port space past ~28k per destination.
    ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7F000001u + i % static_cast<std::uint32_t>(source_addrs_));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
      ++st_.socket_errors;
      connect_failed(i, "bind");
      return;
    }
  }
  auto& addr = broker_addrs_[d.broker];
  int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  if (rc != 0 && errno != EINPROGRESS) {
    connect_failed(i, errno == ECONNREFUSED ? "refused" : "connect");
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = i;
  if (::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    ++st_.socket_errors;
    connect_failed(i, "epoll");
    return;
  }
  d.conn = Conn::TcpConnecting;
  schedule(i, now_ + o_.connect_timeout, TimerKind::ConnectTimeout);
}

void Runner::close_fd(Device& d, bool rst) {
  if (d.fd >= 0) {
    if (rst) {
      linger l{1, 0};  // RST instead of FIN, like a load balancer dropping the flow
      ::setsockopt(d.fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    ::close(d.fd);  // closing removes it from the epoll set
    d.fd = -1;
  }
  if (d.conn == Conn::Online) --st_.online;
  d.conn = Conn::Idle;
  d.out.clear();
  d.out.shrink_to_fit();
  d.out_off = 0;
  d.decoder.reset();
  d.ping_sent = -1;
  ++d.gen;
}

void Runner::connect_failed(std::uint32_t i, const char*) {
  auto& d = dev_[i];
  close_fd(d, false);
  ++st_.connect_failures;
  ++d.failures;
  if (d.dead || d.flapping_down) return;
  auto delay = reconnect_delay(d.spec->behaviour, o_.reconnect, d.failures, d.after_loss, rng_);
  if (delay) schedule(i, now_ + *delay, TimerKind::Connect);
  else {
    d.gave_up = true;
    ++st_.gave_up;
  }
}

void Runner::schedule_reconnect(std::uint32_t i, bool session_lost, json* ev) {
  auto& d = dev_[i];
  if (session_lost) {
    d.after_loss = true;
    d.failures = 0;
  }
  auto delay = reconnect_delay(d.spec->behaviour, o_.reconnect, d.failures, d.after_loss, rng_);
  if (delay) {
    schedule(i, now_ + *delay, TimerKind::Connect);
    if (ev) (*ev)["reconnect_in_ms"] = *delay;
  } else {
    d.gave_up = true;
    ++st_.gave_up;
    if (ev) (*ev)["reconnect_in_ms"] = nullptr;
  }
}

// The connection is gone without us choosing it (EOF, reset, keepalive, protocol error), or a
// drop/flap closed it. Reports the truth change and lets the device's behaviour decide what next.
void Runner::lost(std::uint32_t i, const char* cause) {
  auto& d = dev_[i];
  bool was_online = d.conn == Conn::Online;
  bool was_closing = d.conn == Conn::Closing;
  bool rst = std::strcmp(cause, "drop_rst") == 0;
  close_fd(d, rst);
  if (was_closing || d.dead) return;
  if (!was_online) {
    // A connection that never got its CONNACK: a failed attempt, not a lost session.
    ++st_.connect_failures;
    ++d.failures;
    if (d.flapping_down) return;
    auto delay = reconnect_delay(d.spec->behaviour, o_.reconnect, d.failures, d.after_loss, rng_);
    if (delay) schedule(i, now_ + *delay, TimerKind::Connect);
    else {
      d.gave_up = true;
      ++st_.gave_up;
    }
    return;
  }
  ++st_.disconnects;
  d.attempts = 0;
  auto ev = device_event("disconnect", d, "offline");
  ev["cause"] = rst ? "drop" : cause;
  ev["behaviour"] = to_string(d.spec->behaviour);
  if (d.flapping_down) {
    d.after_loss = true;
    d.failures = 0;
    ev["reconnect_in_ms"] = d.flap_down;
  } else {
    schedule_reconnect(i, true, &ev);
  }
  log_.line(ev);
}

void Runner::publish(Device& d, const std::string& topic, const std::string& payload, int qos,
                     bool retain) {
  std::uint16_t id = 0;
  if (qos > 0) {
    if (++d.packet_id == 0) d.packet_id = 1;
    id = d.packet_id;
  }
  mqtt::encode_publish(d.out, topic, payload, static_cast<std::uint8_t>(qos), retain, id);
  ++st_.publishes;
}

void Runner::go_online(std::uint32_t i) {
  auto& d = dev_[i];
  d.conn = Conn::Online;
  ++st_.online;
  ++st_.connects;
  st_.max_online = std::max(st_.max_online, st_.online);
  auto ev = device_event("connect", d, "online");
  ev["behaviour"] = to_string(d.spec->behaviour);
  ev["attempts"] = d.attempts;
  log_.line(ev);
  d.failures = 0;
  d.attempts = 0;
  d.after_loss = false;
  if (sparkplug()) {
    // Sparkplug 3.0: NBIRTH (seq 0, the bdSeq of this connection's will), then each device's
    // DBIRTH; none retained, QoS 0.
    d.sp_seq = 0;
    publish(d, sp_topic("NBIRTH", d), sp_payload(d, true, true, false), 0, false);
    for (int k = 0; k < o_.sparkplug_devices; ++k)
      publish(d, sp_topic("DBIRTH", d, "dev-" + std::to_string(k)), sp_payload(d, false, true, true), 0, false);
  } else {
    // Birth: retained, so presenced (and anyone) sees the current state on subscribe.
    publish(d, d.status_topic, status_payload(*d.spec, true, o_.payload == "json"), o_.status_qos,
            true);
  }
  d.next_heartbeat = o_.heartbeat > 0 ? now_ + heartbeat_delay(o_.heartbeat, o_.heartbeat_jitter, rng_)
                                      : -1;
  bool open = true;
  send(i, &open);
  if (open) schedule_tick(i);
}

void Runner::schedule_tick(std::uint32_t i) {
  auto& d = dev_[i];
  Millis ka = o_.keepalive * 3 / 4;  // ping well inside the broker's 1.5 x keepalive
  Millis at = d.ping_sent >= 0 ? d.ping_sent + o_.keepalive : d.last_send + std::max<Millis>(ka, 1);
  if (o_.keepalive <= 0) at = std::numeric_limits<Millis>::max();
  if (d.next_heartbeat >= 0) at = std::min(at, d.next_heartbeat);
  if (at != std::numeric_limits<Millis>::max()) schedule(i, at, TimerKind::Tick);
}

void Runner::tick(std::uint32_t i) {
  auto& d = dev_[i];
  if (d.conn != Conn::Online) return;
  if (o_.keepalive > 0 && d.ping_sent >= 0 && now_ - d.ping_sent >= o_.keepalive) {
    lost(i, "keepalive");
    return;
  }
  if (d.next_heartbeat >= 0 && now_ >= d.next_heartbeat) {
    if (sparkplug()) publish(d, sp_topic("NDATA", d), sp_payload(d, false, true, true), 0, false);
    else
      publish(d, d.heartbeat_topic, heartbeat_payload(++d.heartbeat_seq, o_.payload == "json"),
              o_.heartbeat_qos, false);
    d.next_heartbeat = now_ + heartbeat_delay(o_.heartbeat, o_.heartbeat_jitter, rng_);
  } else if (o_.keepalive > 0 && d.ping_sent < 0 && now_ - d.last_send >= o_.keepalive * 3 / 4) {
    mqtt::encode_pingreq(d.out);
    d.ping_sent = now_;
    ++st_.pings;
  }
  bool open = true;
  send(i, &open);
  if (open) schedule_tick(i);
}

void Runner::send(std::uint32_t i, bool* still_open) {
  auto& d = dev_[i];
  if (d.fd < 0) {
    if (still_open) *still_open = false;
    return;
  }
  if (d.out_off < d.out.size()) d.last_send = now_;
  while (d.out_off < d.out.size()) {
    ssize_t n = ::send(d.fd, d.out.data() + d.out_off, d.out.size() - d.out_off, MSG_NOSIGNAL);
    if (n > 0) {
      d.out_off += static_cast<std::size_t>(n);
      st_.bytes_out += static_cast<std::uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // EPOLLOUT (edge) resumes
    lost(i, "write_error");
    if (still_open) *still_open = false;
    return;
  }
  d.out.clear();
  d.out_off = 0;
  if (d.out.capacity() > 4096) d.out.shrink_to_fit();
}

void Runner::handle_packet(std::uint32_t i, mqtt::Packet& p) {
  auto& d = dev_[i];
  switch (p.type) {
    case mqtt::PacketType::Connack: {
      auto ack = mqtt::parse_connack(p);
      if (d.conn != Conn::Handshake || !ack) {
        ++st_.protocol_errors;
        lost(i, "protocol_error");
        return;
      }
      if (ack->return_code != 0) {
        ++st_.connack_refused;
        connect_failed(i, mqtt::connack_reason(ack->return_code));
        return;
      }
      go_online(i);
      return;
    }
    case mqtt::PacketType::Puback:
      ++st_.pubacks;
      return;
    case mqtt::PacketType::Pingresp:
      d.ping_sent = -1;
      return;
    case mqtt::PacketType::Publish: {
      auto pub = mqtt::parse_publish(p);
      if (!pub) {
        ++st_.protocol_errors;
        lost(i, "protocol_error");
        return;
      }
      if (pub->qos == 1) {
        mqtt::encode_puback(d.out, pub->packet_id);
        send(i);
      }
      return;
    }
    default:
      return;  // nothing else is expected; ignore rather than fight the broker
  }
}

void Runner::handle_io(std::uint32_t i, std::uint32_t events) {
  auto& d = dev_[i];
  if (d.fd < 0) return;
  if (d.conn == Conn::TcpConnecting) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(d.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      connect_failed(i, err == ECONNREFUSED ? "refused" : "connect");
      return;
    }
    d.conn = Conn::Handshake;
    mqtt::ConnectOptions c;
    c.client_id = d.spec->id;
    c.keepalive_s = static_cast<std::uint16_t>(std::clamp<Millis>(o_.keepalive / 1000, 0, 65535));
    c.clean_session = true;
    if (sparkplug()) {
      // Sparkplug 3.0: the will is NDEATH carrying this connection's bdSeq (QoS 1, not retained);
      // each new connection uses the next bdSeq.
      if (d.bd_used) ++d.bd_seq;
      d.bd_used = true;
      c.will = mqtt::Will{sp_topic("NDEATH", d), sp_payload(d, true, false, false), 1, false};
    } else {
      c.will = mqtt::Will{d.status_topic, status_payload(*d.spec, false, o_.payload == "json"),
                          static_cast<std::uint8_t>(o_.status_qos), true};
    }
    mqtt::encode_connect(d.out, c);
    bool open = true;
    send(i, &open);
    if (!open) return;
  } else if ((events & EPOLLOUT) && d.out_off < d.out.size()) {
    bool open = true;
    send(i, &open);
    if (!open) return;
  }
  if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;
  char buf[16 * 1024];
  while (d.fd >= 0) {
    ssize_t n = ::recv(d.fd, buf, sizeof buf, 0);
    if (n > 0) {
      st_.bytes_in += static_cast<std::uint64_t>(n);
      d.decoder.feed(std::string_view(buf, static_cast<std::size_t>(n)));
      mqtt::Packet p;
      auto gen = d.gen;
      while (d.fd >= 0 && d.gen == gen) {
        auto s = d.decoder.next(p);
        if (s == mqtt::Decoder::Status::NeedMore) break;
        if (s == mqtt::Decoder::Status::Error) {
          ++st_.protocol_errors;
          lost(i, "protocol_error");
          return;
        }
        handle_packet(i, p);
      }
      if (d.gen != gen) return;
      continue;
    }
    if (n == 0) {
      lost(i, "broker_closed");
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    lost(i, errno == ECONNRESET ? "broker_reset" : "read_error");
    return;
  }
}

void Runner::die(std::uint32_t i, const char* cause, std::optional<Millis> back_after) {
  auto& d = dev_[i];
  bool was_online = d.conn == Conn::Online;
  close_fd(d, false);  // no DISCONNECT: the broker publishes the will
  d.dead = true;
  d.flapping_down = false;
  ++d.flap_gen;
  ++d.life_gen;
  ++st_.deaths;
  auto ev = device_event("die", d, "offline");
  ev["cause"] = cause;
  ev["was_online"] = was_online;
  ev["behaviour"] = to_string(d.spec->behaviour);
  if (back_after) {
    ev["back_after_ms"] = *back_after;
    schedule(i, now_ + *back_after, TimerKind::Revive);
  } else {
    ev["back_after_ms"] = nullptr;
  }
  log_.line(ev);
}

bool Runner::revive(std::uint32_t i) {
  auto& d = dev_[i];
  if (!d.dead && !d.gave_up) return false;
  // A power cycle: a fresh boot, so stuck devices (incident 001) come back too.
  d.dead = false;
  d.gave_up = false;
  d.after_loss = false;
  d.failures = 0;
  ++d.life_gen;
  ++st_.revives;
  auto ev = device_event("revive", d, "offline");
  ev["behaviour"] = to_string(d.spec->behaviour);
  log_.line(ev);
  if (d.conn == Conn::Idle) {
    ++d.gen;
    schedule(i, now_ + 1, TimerKind::Connect);
  }
  return true;
}

void Runner::run_timer(const Timer& t) {
  auto i = t.device;
  auto& d = dev_[i];
  switch (t.kind) {
    case TimerKind::Connect:
      if (!d.dead && d.conn == Conn::Idle) start_connect(i);
      return;
    case TimerKind::Tick:
      tick(i);
      return;
    case TimerKind::ConnectTimeout:
      if (d.conn == Conn::TcpConnecting || d.conn == Conn::Handshake) connect_failed(i, "timeout");
      return;
    case TimerKind::CloseTimeout:
      if (d.conn == Conn::Closing) close_fd(d, false);
      return;
    case TimerKind::FlapDown:
      if (d.dead || now_ >= d.flap_until) {
        d.flapping_down = false;
        return;
      }
      d.flapping_down = true;
      if (d.conn != Conn::Idle) lost(i, "flap");
      else ++d.gen;  // cancel a pending reconnect: the flap brings it back
      schedule(i, now_ + d.flap_down, TimerKind::FlapUp);
      schedule(i, now_ + d.flap_period, TimerKind::FlapDown);
      return;
    case TimerKind::FlapUp:
      d.flapping_down = false;
      if (d.dead || d.conn != Conn::Idle) return;
      d.gave_up = false;
      d.failures = 0;
      start_connect(i);
      return;
    case TimerKind::Revive:
      revive(i);
      return;
  }
}

std::vector<std::size_t> Runner::candidates(const Action& a, bool (*eligible)(const Device&)) {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < dev_.size(); ++i)
    if (eligible(dev_[i]) && matches(a.select.match, *dev_[i].spec)) out.push_back(i);
  return out;
}

pid_t Runner::resolve_pid(ProcState& p) {
  if (p.started > 0) return p.started;
  if (!p.target->pidfile.empty()) {
    std::ifstream in(p.target->pidfile);
    long pid = 0;
    if (in >> pid && pid > 1) return static_cast<pid_t>(pid);
  }
  return p.target->pid;
}

pid_t Runner::spawn(const std::string& command) {
  // exec, so the pid we keep is the program's, not a shell's. Its output goes to our stderr, never
  // into the JSON lines on stdout.
  std::string cmd = "exec " + command;
  const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  // Its own process group, so a Ctrl-C on the sim does not also kill a broker or presenced it
  // (re)started; default SIGPIPE/SIGINT/SIGTERM, which we changed for ourselves.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  ::sigemptyset(&defaults);
  ::sigaddset(&defaults, SIGPIPE);
  ::sigaddset(&defaults, SIGINT);
  ::sigaddset(&defaults, SIGTERM);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, "/bin/sh", &fa, &attr, const_cast<char* const*>(argv), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

void Runner::start_process(ProcState& p, const std::string& command, int line) {
  auto ev = event("action");
  ev["action"] = "start";
  ev["target"] = p.name;
  ev["line"] = line;
  if (command.empty()) {
    ev["error"] = std::string("no command: give --") + p.name + "-cmd";
  } else {
    pid_t pid = spawn(command);
    if (pid > 0) p.started = pid;
    ev["pid"] = pid;
  }
  log_.line(ev);
}

void Runner::reap_children() {
  int status = 0;
  pid_t pid;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
    for (auto* p : {&broker_, &presenced_}) {
      if (p->started != pid) continue;
      p->started = 0;
      auto ev = event("process_exit");
      ev["target"] = p->name;
      ev["pid"] = pid;
      if (WIFEXITED(status)) ev["exit_code"] = WEXITSTATUS(status);
      if (WIFSIGNALED(status)) ev["signal"] = WTERMSIG(status);
      log_.line(ev);
    }
  }
}

void Runner::check_restarts() {
  for (auto it = restarts_.begin(); it != restarts_.end();) {
    bool gone = ::kill(it->pid, 0) != 0 && errno == ESRCH;
    if (!gone && now_ < it->deadline) {
      ++it;
      continue;
    }
    if (!gone) ::kill(it->pid, SIGKILL);  // it did not exit within `wait`
    auto ev = event("action");
    ev["action"] = "restart_wait_done";
    ev["target"] = it->proc ? it->proc->name : "pid";
    ev["pid"] = it->pid;
    ev["exited"] = gone;
    ev["line"] = it->line;
    log_.line(ev);
    if (it->proc) {
      if (it->proc->started == it->pid) it->proc->started = 0;
      start_process(*it->proc, it->command, it->line);
    } else {
      spawn(it->command);
    }
    it = restarts_.erase(it);
  }
}

void Runner::run_action(const Action& a) {
  auto ev = event("action");
  ev["action"] = to_string(a.kind);
  ev["line"] = a.line;
  ev["at_ms"] = a.at;
  bool control = a.kind == ActionKind::Exec || a.kind == ActionKind::Signal ||
                 a.kind == ActionKind::Start || a.kind == ActionKind::Restart;
  if (control && w_.index != 0) return;  // process control happens once, in worker 0

  auto proc_for = [&](const std::string& t) -> ProcState* {
    if (t == "broker") return &broker_;
    if (t == "presenced") return &presenced_;
    return nullptr;
  };
  // Count-based selections split across workers so the fleet-wide total is `count`.
  auto split = [&](Selection s) {
    if (s.count) {
      auto c = *s.count;
      auto n = static_cast<std::size_t>(w_.count);
      auto k = static_cast<std::size_t>(w_.index);
      s.count = c / n + (k < c % n ? 1 : 0);
    }
    return s;
  };
  std::size_t affected = 0;
  // Each action draws from its own seeded stream, so which devices it picks does not depend on
  // how many heartbeats or reconnects happened before it: same seed and same eligible devices,
  // same choice.
  Rng choose(o_.fleet.seed * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(a.line) * 1000003u +
             static_cast<std::uint64_t>(a.at) * 7u + static_cast<std::uint64_t>(w_.index));
  switch (a.kind) {
    case ActionKind::Exec: {
      pid_t pid = spawn(a.command);
      ev["command"] = a.command;
      ev["pid"] = pid;
      break;
    }
    case ActionKind::Signal: {
      auto* p = proc_for(a.target);
      pid_t pid = p ? resolve_pid(*p) : static_cast<pid_t>(std::stol(a.target));
      ev["target"] = a.target;
      ev["signal"] = a.signal;
      ev["pid"] = pid;
      if (pid > 1) {
        if (::kill(pid, a.signal) != 0) ev["error"] = std::strerror(errno);
      } else {
        ev["error"] = "no pid for " + a.target + " (give --" + a.target + "-pid or -pidfile)";
      }
      break;
    }
    case ActionKind::Start: {
      auto* p = proc_for(a.target);
      if (p) start_process(*p, a.command.empty() ? p->target->command : a.command, a.line);
      else spawn(a.command);
      return;
    }
    case ActionKind::Restart: {
      auto* p = proc_for(a.target);
      pid_t pid = p ? resolve_pid(*p) : static_cast<pid_t>(std::stol(a.target));
      std::string command = a.command.empty() && p ? p->target->command : a.command;
      ev["target"] = a.target;
      ev["signal"] = a.signal;
      ev["pid"] = pid;
      if (pid > 1 && ::kill(pid, a.signal) == 0) {
        restarts_.push_back(PendingRestart{p, pid, now_ + a.wait, command, a.line});
      } else {
        ev["error"] = pid > 1 ? std::string(std::strerror(errno)) : "no pid: starting only";
        log_.line(ev);
        if (p) start_process(*p, command, a.line);
        else spawn(command);
        return;
      }
      break;
    }
    case ActionKind::Drop: {
      auto c = candidates(a, [](const Device& d) {
        return d.conn == Conn::Online || d.conn == Conn::Handshake;
      });
      for (auto i : pick(c, split(a.select), choose)) {
        lost(static_cast<std::uint32_t>(i), a.rst ? "drop_rst" : "drop");
        ++affected;
      }
      break;
    }
    case ActionKind::Flap: {
      auto c = candidates(a, [](const Device& d) { return !d.dead; });
      for (auto i : pick(c, split(a.select), choose)) {
        auto& d = dev_[i];
        ++d.flap_gen;
        d.flap_until = now_ + a.duration;
        d.flap_period = a.period;
        d.flap_down = a.down;
        Millis phase = a.same_phase ? 0 : choose.uniform(0, a.period - 1);
        schedule(static_cast<std::uint32_t>(i), now_ + phase, TimerKind::FlapDown);
        ++affected;
      }
      ev["period_ms"] = a.period;
      ev["down_ms"] = a.down;
      ev["duration_ms"] = a.duration;
      break;
    }
    case ActionKind::Die: {
      auto c = candidates(a, [](const Device& d) { return !d.dead; });
      for (auto i : pick(c, split(a.select), choose)) {
        std::optional<Millis> back;
        if (a.back_after) back = choose.uniform(a.back_after->lo, a.back_after->hi);
        die(static_cast<std::uint32_t>(i), "action", back);
        ++affected;
      }
      break;
    }
    case ActionKind::Revive: {
      auto c = candidates(a, [](const Device& d) { return d.dead || d.gave_up; });
      for (auto i : pick(c, split(a.select), choose))
        if (revive(static_cast<std::uint32_t>(i))) ++affected;
      break;
    }
    case ActionKind::Disconnect: {
      auto c = candidates(a, [](const Device& d) { return d.conn == Conn::Online && !d.dead; });
      for (auto idx : pick(c, split(a.select), choose)) {
        auto i = static_cast<std::uint32_t>(idx);
        auto& d = dev_[i];
        if (a.announce && sparkplug())
          publish(d, sp_topic("NDEATH", d), sp_payload(d, true, false, false), 1, false);  // no will on a clean close
        else if (a.announce)
          publish(d, d.status_topic, status_payload(*d.spec, false, o_.payload == "json"),
                  o_.status_qos, true);
        mqtt::encode_disconnect(d.out);
        bool open = true;
        send(i, &open);
        if (!open) continue;
        ::shutdown(d.fd, SHUT_WR);
        --st_.online;
        d.conn = Conn::Closing;
        ++d.gen;
        d.dead = true;
        ++d.life_gen;
        ++st_.disconnects;
        schedule(i, now_ + 2000, TimerKind::CloseTimeout);
        auto dev = device_event("disconnect", d, "offline");
        dev["cause"] = "clean";
        dev["behaviour"] = to_string(d.spec->behaviour);
        if (a.back_after) {
          Millis back = choose.uniform(a.back_after->lo, a.back_after->hi);
          dev["reconnect_in_ms"] = back;
          schedule(i, now_ + back, TimerKind::Revive);
        } else {
          dev["reconnect_in_ms"] = nullptr;
        }
        log_.line(dev);
        ++affected;
      }
      ev["announce"] = a.announce;
      break;
    }
    case ActionKind::Failures:
      if (a.failure_rate) failure_rate_ = *a.failure_rate / w_.count;
      if (a.failure_down) failure_down_ = *a.failure_down;
      if (a.failure_never) failure_never_ = *a.failure_never;
      next_failure_ = -1;
      ev["rate_per_s"] = failure_rate_ * w_.count;
      ev["never"] = failure_never_;
      break;
    case ActionKind::End:
      stop_ = true;
      break;
  }
  if (!a.select.match.empty()) ev["match"] = to_string(a.select.match);
  if (!control && a.kind != ActionKind::Failures && a.kind != ActionKind::End)
    ev["affected"] = affected;
  log_.line(ev);
}

void Runner::background_failure() {
  if (failure_rate_ <= 0) {
    next_failure_ = -1;
    return;
  }
  if (next_failure_ < 0) {
    next_failure_ = now_ + static_cast<Millis>(rng_.exponential(1000.0 / failure_rate_));
    return;
  }
  if (now_ < next_failure_) return;
  next_failure_ = now_ + static_cast<Millis>(rng_.exponential(1000.0 / failure_rate_));
  // A real failure hits a device that is up: try a few random ones.
  for (int tries = 0; tries < 16 && !dev_.empty(); ++tries) {
    auto i = static_cast<std::uint32_t>(rng_.index(dev_.size()));
    if (dev_[i].dead || dev_[i].conn != Conn::Online) continue;
    std::optional<Millis> back;
    if (rng_.uniform01() >= failure_never_) back = rng_.uniform(failure_down_.lo, failure_down_.hi);
    die(i, "failure", back);
    return;
  }
}

void Runner::progress() {
  // connects/s peak over whole seconds, whether or not progress lines are printed.
  if (now_ - peak_at_ >= 1000) {
    double rate = static_cast<double>(st_.connects - peak_connects_) * 1000.0 /
                  static_cast<double>(now_ - peak_at_);
    st_.peak_connects_per_s = std::max(st_.peak_connects_per_s, rate);
    peak_connects_ = st_.connects;
    peak_at_ = now_;
  }
  if (o_.progress <= 0 || now_ < next_progress_) return;
  double secs = static_cast<double>(now_ - progress_at_) / 1000.0;
  double cps = secs > 0 ? static_cast<double>(st_.connects - progress_connects_) / secs : 0;
  double aps = secs > 0 ? static_cast<double>(st_.connect_attempts - progress_attempts_) / secs : 0;
  double cpu = cpu_seconds();
  double cpu_pct = secs > 0 ? 100.0 * (cpu - progress_cpu_) / secs : 0;
  std::size_t dead = 0, stuck = 0;
  for (auto& d : dev_) {
    dead += d.dead;
    stuck += d.gave_up;
  }
  std::fprintf(stderr,
               "presence-sim[w%d] t=%.1fs online=%zu/%zu connects/s=%.0f attempts/s=%.0f "
               "failed=%llu dead=%zu stuck=%zu cpu=%.0f%% rss=%ldMB\n",
               w_.index, static_cast<double>(now_) / 1000.0, st_.online, dev_.size(), cps, aps,
               static_cast<unsigned long long>(st_.connect_failures), dead, stuck, cpu_pct,
               current_rss_kb() / 1024);
  progress_connects_ = st_.connects;
  progress_attempts_ = st_.connect_attempts;
  progress_cpu_ = cpu;
  progress_at_ = now_;
  next_progress_ = now_ + o_.progress;
}

void Runner::summary() {
  auto ev = event("summary");
  ev["devices"] = dev_.size();
  ev["duration_ms"] = now_;
  ev["online"] = st_.online;
  ev["max_online"] = st_.max_online;
  ev["connect_attempts"] = st_.connect_attempts;
  ev["connects"] = st_.connects;
  ev["connect_failures"] = st_.connect_failures;
  ev["connack_refused"] = st_.connack_refused;
  ev["disconnects"] = st_.disconnects;
  ev["deaths"] = st_.deaths;
  ev["revives"] = st_.revives;
  ev["gave_up"] = st_.gave_up;
  ev["publishes"] = st_.publishes;
  ev["pubacks"] = st_.pubacks;
  ev["pings"] = st_.pings;
  ev["protocol_errors"] = st_.protocol_errors;
  ev["socket_errors"] = st_.socket_errors;
  ev["bytes_in"] = st_.bytes_in;
  ev["bytes_out"] = st_.bytes_out;
  ev["peak_connects_per_s"] = std::round(st_.peak_connects_per_s);
  ev["cpu_s"] = std::round(cpu_seconds() * 100) / 100;
  ev["max_rss_kb"] = max_rss_kb();
  log_.line(ev);
}

int Runner::run() {
  if (!log_.ok()) {
    std::fprintf(stderr, "presence-sim: cannot open --out %s: %s\n", o_.out.c_str(),
                 std::strerror(errno));
    return 2;
  }
  if (!resolve_brokers()) return 2;
  ep_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep_ < 0) {
    std::perror("presence-sim: epoll_create1");
    return 2;
  }
  t0_ = std::chrono::steady_clock::now();
  wall0_ = wall_ms();
  now_ = 0;

  auto start = event("start");
  start["devices"] = dev_.size();
  start["fleet_devices"] = o_.fleet.devices;
  start["seed"] = o_.fleet.seed;
  start["processes"] = w_.count;
  start["scenario"] = o_.scenario;
  json brokers = json::array();
  for (auto& b : o_.brokers) brokers.push_back(b.host + ":" + std::to_string(b.port));
  start["brokers"] = brokers;
  start["source_addrs"] = source_addrs_;
  log_.line(start);
  if (o_.device_lines) {
    for (auto& d : dev_) {
      auto j = event("device");
      j["device"] = truth_id(d);
      j["firmware"] = d.spec->firmware;
      j["site"] = d.spec->site;
      j["model"] = d.spec->model;
      j["behaviour"] = to_string(d.spec->behaviour);
      j["truth"] = "offline";
      log_.line(j);
    }
  }
  log_.flush();

  // The start-up ramp: connect_rate is fleet-wide, so each worker takes its share.
  double per_ms = o_.connect_rate / 1000.0 / w_.count;
  for (std::uint32_t i = 0; i < dev_.size(); ++i)
    timers_.push(Timer{static_cast<Millis>(std::floor(i / per_ms)), i, dev_[i].gen, TimerKind::Connect});

  std::vector<epoll_event> events(4096);
  Millis last_flush = 0;
  while (!stop_ && !g_stop) {
    now_ = clock();
    Millis wake = now_ + 100;
    if (!timers_.empty()) wake = std::min(wake, timers_.top().at);
    if (next_action_ < sc_.timeline.size()) wake = std::min(wake, sc_.timeline[next_action_].at);
    if (next_failure_ >= 0) wake = std::min(wake, next_failure_);
    int timeout = static_cast<int>(std::clamp<Millis>(wake - now_, 0, 100));
    int n = ::epoll_wait(ep_, events.data(), static_cast<int>(events.size()), timeout);
    // One "now" per dispatch (STYLE.md habit 3).
    now_ = clock();
    for (int k = 0; k < n; ++k) {
      // A batch never holds a stale event: a device's socket is only closed by its own event or
      // after the batch (actions, timers), and reconnects always go through a timer.
      auto i = static_cast<std::uint32_t>(events[static_cast<std::size_t>(k)].data.u64);
      if (i < dev_.size()) handle_io(i, events[static_cast<std::size_t>(k)].events);
    }
    while (next_action_ < sc_.timeline.size() && sc_.timeline[next_action_].at <= now_)
      run_action(sc_.timeline[next_action_++]);
    // At most kTimerBatch timers per pass, so a start-up ramp or a reconnect storm (thousands of
    // connect() calls due at once) does not starve the sockets: the next epoll_wait then does not
    // sleep (timeout 0) and the rest run in the following pass.
    for (int k = 0; k < kTimerBatch && !timers_.empty() && timers_.top().at <= now_; ++k) {
      auto t = timers_.top();
      timers_.pop();
      if (timer_valid(t)) run_timer(t);
    }
    background_failure();
    reap_children();
    check_restarts();
    progress();
    if (o_.duration > 0 && now_ >= o_.duration) stop_ = true;
    if (now_ - last_flush >= 100) {
      log_.flush();
      last_flush = now_;
    }
  }
  now_ = clock();
  auto end = event("action");
  end["action"] = g_stop ? "signal_stop" : "end";
  log_.line(end);
  summary();
  log_.flush();
  if (o_.progress > 0) {
    next_progress_ = 0;
    progress();
  }
  return 0;
}

}  // namespace

std::string raise_fd_limit(std::size_t devices, int processes) {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  // Each device is one socket; 64 more for epoll, stdio, the report and spawned commands.
  rlim_t need = static_cast<rlim_t>(devices) + 64;
  if (rl.rlim_cur >= need) return {};
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
    rlim_t usable = rl.rlim_max > 64 ? rl.rlim_max - 64 : 1;
    auto fit = (static_cast<rlim_t>(devices) * static_cast<rlim_t>(processes) + usable - 1) / usable;
    return "need " + std::to_string(need) + " file descriptors per process, the hard limit is " +
           std::to_string(rl.rlim_max) + ": raise it (ulimit -Hn, as root) or use --processes " +
           std::to_string(fit);
  }
  rl.rlim_cur = need;
  if (::setrlimit(RLIMIT_NOFILE, &rl) != 0)
    return std::string("setrlimit(RLIMIT_NOFILE): ") + std::strerror(errno);
  return {};
}

int run_worker(const SimOptions& o, const Scenario& scenario, const std::vector<DeviceSpec>& fleet,
               Worker worker) {
  struct sigaction sa{};
  sa.sa_handler = on_stop_signal;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  std::size_t mine = (fleet.size() + static_cast<std::size_t>(worker.count) - 1 -
                      static_cast<std::size_t>(worker.index)) /
                     static_cast<std::size_t>(worker.count);
  auto err = raise_fd_limit(mine, worker.count);
  if (!err.empty()) {
    std::fprintf(stderr, "presence-sim: %s\n", err.c_str());
    return 2;
  }
  Runner r(o, scenario, fleet, worker);
  return r.run();
}

}  // namespace presence::sim
