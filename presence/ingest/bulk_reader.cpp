#include "presence/ingest/bulk_reader.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <utility>

#include "presence/common/log.h"

namespace presence::ingest {

using common::LogLevel;
using Steady = std::chrono::steady_clock;

std::optional<TcpEndpoint> plain_tcp_endpoint(std::string_view uri) {
  std::string_view rest;
  if (uri.starts_with("tcp://")) rest = uri.substr(6);
  else if (uri.starts_with("mqtt://")) rest = uri.substr(7);
  else return std::nullopt;
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) rest = rest.substr(0, slash);
  TcpEndpoint e;
  if (rest.starts_with("[")) {  // [v6 literal]:port
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    e.host = std::string(rest.substr(1, close - 1));
    rest = rest.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return std::nullopt;
    e.port = rest.empty() ? "1883" : std::string(rest.substr(1));
  } else {
    const auto colon = rest.rfind(':');
    e.host = std::string(rest.substr(0, colon));
    e.port = colon == std::string_view::npos ? "1883" : std::string(rest.substr(colon + 1));
  }
  if (e.host.empty() || e.port.empty() ||
      !std::all_of(e.port.begin(), e.port.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return e;
}

// ---- BulkStream (pure) ------------------------------------------------------------------------

void BulkStream::reset() {
  oversized_before_ += decoder_.skipped();
  decoder_ = mqtt_codec::Decoder(decoder_.max_packet());
  decoder_.skip_oversized(true);
  error_.clear();
  connack_.reset();
  subacks_.clear();
}

bool BulkStream::fail(std::string why) {
  error_ = std::move(why);
  return false;
}

bool BulkStream::drain(BulkChunk& chunk, std::string& replies) {
  if (!error_.empty()) return false;
  mqtt_codec::PacketView p;
  while (true) {
    switch (decoder_.next(p)) {
      case mqtt_codec::Decoder::Status::NeedMore: return true;
      case mqtt_codec::Decoder::Status::Error: return fail(decoder_.error());
      case mqtt_codec::Decoder::Status::Packet: break;
    }
    switch (p.type) {
      case mqtt_codec::PacketType::Publish: {
        const auto pub = mqtt_codec::parse_publish(p);
        if (!pub) return fail("malformed PUBLISH");
        // We subscribe at QoS 0, so the broker sends QoS 0; a QoS 1 copy is acknowledged
        // anyway (an unacknowledged one would be resent forever), QoS 2 would need a session.
        if (pub->qos == 2) return fail("QoS 2 PUBLISH on a QoS 0 subscription");
        if (pub->qos == 1) mqtt_codec::encode_puback(replies, pub->packet_id);
        BulkChunk::Message m;
        m.topic_at = static_cast<std::uint32_t>(chunk.bytes.size());
        m.topic_len = static_cast<std::uint32_t>(pub->topic.size());
        chunk.bytes.append(pub->topic);
        m.payload_at = static_cast<std::uint32_t>(chunk.bytes.size());
        m.payload_len = static_cast<std::uint32_t>(pub->payload.size());
        chunk.bytes.append(pub->payload);
        m.retained = pub->retain;
        chunk.messages.push_back(m);
        break;
      }
      case mqtt_codec::PacketType::Pingresp:
        if (!p.body.empty()) return fail("malformed PINGRESP");
        break;
      case mqtt_codec::PacketType::Connack: {
        const auto c = mqtt_codec::parse_connack(mqtt_codec::Packet{p.type, p.flags, std::string(p.body)});
        if (!c || connack_) return fail(c ? "second CONNACK" : "malformed CONNACK");
        connack_ = c;
        break;
      }
      case mqtt_codec::PacketType::Suback: {
        const auto c = mqtt_codec::parse_suback_code(mqtt_codec::Packet{p.type, p.flags, std::string(p.body)});
        const auto id = mqtt_codec::parse_packet_id(mqtt_codec::Packet{p.type, p.flags, std::string(p.body)});
        if (!c || !id) return fail("malformed SUBACK");
        subacks_.emplace_back(*id, *c);
        break;
      }
      case mqtt_codec::PacketType::Unsuback:
        break;  // never asked for, harmless
      default:
        return fail(std::string("unexpected ") + mqtt_codec::to_string(p.type) + " from the broker");
    }
  }
}

// ---- BulkReader (socket and thread) -----------------------------------------------------------

BulkReader::BulkReader(BulkReaderOptions options, Sink sink)
    : opt_(std::move(options)), sink_(std::move(sink)), stream_(opt_.max_packet) {}

BulkReader::~BulkReader() { stop(); }

void BulkReader::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

void BulkReader::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    if (fd_ >= 0) {
      if (up_) {  // polite: the broker ends the session at once instead of at keepalive
        std::string bye;
        mqtt_codec::encode_disconnect(bye);
        (void)::send(fd_, bye.data(), bye.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      }
      ::shutdown(fd_, SHUT_RDWR);  // wakes the reader's recv(); it closes the fd
    }
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

BulkReaderStats BulkReader::stats() const {
  BulkReaderStats s;
  s.connected = up_;
  s.connects_total = connects_;
  s.reads_total = reads_;
  s.messages_total = messages_;
  s.protocol_errors_total = errors_;
  s.oversized_total = oversized_;
  return s;
}

bool BulkReader::send_all(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // includes SO_SNDTIMEO expiring: the broker does not read
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// A connected blocking socket with receive/send timeouts, or -1. The connect itself waits in
// 100 ms slices so stop() is never held up by a broker that does not answer SYNs.
int BulkReader::connect_socket(std::string& why) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (const int rc = ::getaddrinfo(opt_.broker.host.c_str(), opt_.broker.port.c_str(), &hints, &res);
      rc != 0) {
    why = "cannot resolve " + opt_.broker.host + ": " + ::gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  why = "no address for " + opt_.broker.host;
  const auto deadline = Steady::now() + opt_.handshake_timeout;
  for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {
        ::close(fd);
        ::freeaddrinfo(res);
        why = "stopping";
        return -1;
      }
      fd_ = fd;
    }
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      rc = -1;
      while (Steady::now() < deadline) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          if (stopping_) break;
        }
        pollfd pfd{fd, POLLOUT, 0};
        if (::poll(&pfd, 1, 100) > 0) {
          int err = 0;
          socklen_t len = sizeof err;
          ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
          if (err == 0) rc = 0;
          else errno = err;
          break;
        }
        errno = ETIMEDOUT;
      }
    }
    if (rc != 0) {
      why = "cannot connect to " + opt_.broker.host + ":" + opt_.broker.port + ": " +
            std::strerror(errno);
      std::lock_guard<std::mutex> lock(mu_);
      ::close(fd);
      fd_ = fd = -1;
    }
  }
  ::freeaddrinfo(res);
  if (fd < 0) return -1;
  // Blocking from here: one recv() per read, woken by data, by shutdown() from stop(), or every
  // 250 ms to check the keepalive.
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  timeval rcv{0, 250 * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rcv, sizeof rcv);
  timeval snd{5, 0};  // a broker that stops reading must not hold the thread
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof snd);
  return fd;
}

// One recv() into the stream's buffer and everything decoded from it. False: the connection is
// over (why says so). A receive timeout is true with nothing read.
bool BulkReader::read_some(BulkChunk& chunk, std::string& replies, std::string& why) {
  if (coalesce_next_ && opt_.read_coalesce.count() > 0) {
    coalesce_next_ = false;
    std::this_thread::sleep_for(opt_.read_coalesce);
  }
  const ssize_t n = ::recv(fd_, stream_.prepare(opt_.read_size), opt_.read_size, 0);
  if (n < 0) {
    stream_.commit(0);
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return true;
    why = std::string("receive failed: ") + std::strerror(errno);
    return false;
  }
  if (n == 0) {
    stream_.commit(0);
    why = "closed by the broker";
    return false;
  }
  stream_.commit(static_cast<std::size_t>(n));
  reads_.fetch_add(1, std::memory_order_relaxed);
  coalesce_next_ = static_cast<std::size_t>(n) < opt_.read_size / 2;
  chunk.received = Steady::now();
  const bool ok = stream_.drain(chunk, replies);
  if (const auto o = stream_.oversized(); o != oversized_) {
    oversized_ = o;
    oversized_log_.log(LogLevel::Warn, "bulk:oversized",
                       "mqtt: heartbeat connection: a message of " + std::to_string(stream_.last_oversized_size()) +
                           " bytes over the limit of " + std::to_string(opt_.max_packet) +
                           " dropped (counted in presence_parse_errors_total{error=\"payload_too_large\"})");
  }
  if (!ok) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    why = "protocol error: " + stream_.error();
    return false;
  }
  if (!replies.empty()) {
    const bool sent = send_all(replies);
    replies.clear();
    if (!sent) {
      why = "send failed";
      return false;
    }
  }
  return true;
}

bool BulkReader::session(std::string& why) {
  const int fd = connect_socket(why);
  if (fd < 0) return false;
  stream_.reset();
  bool was_up = false;
  const auto keepalive = std::chrono::duration_cast<Steady::duration>(opt_.keepalive);
  auto hand_over = [&](BulkChunk& chunk) {
    if (chunk.messages.empty()) return;
    messages_.fetch_add(chunk.messages.size(), std::memory_order_relaxed);
    sink_(std::move(chunk));
    chunk = BulkChunk{};
  };
  [&] {
    mqtt_codec::ConnectOptions co;
    co.client_id = opt_.client_id;
    co.keepalive_s = static_cast<std::uint16_t>(
        std::clamp<std::int64_t>(std::chrono::duration_cast<std::chrono::seconds>(opt_.keepalive).count(),
                                 0, 65535));
    co.clean_session = true;  // heartbeats are proof of life now: nothing to keep while away
    if (!opt_.username.empty()) co.username = opt_.username;
    if (!opt_.password.empty()) co.password = opt_.password;
    std::string out;
    mqtt_codec::encode_connect(out, co);
    for (std::size_t i = 0; i < opt_.filters.size(); ++i)
      mqtt_codec::encode_subscribe(out, static_cast<std::uint16_t>(i + 1), opt_.filters[i], 0);
    if (!send_all(out)) {
      why = "cannot send CONNECT";
      return;
    }
    auto last_sent = Steady::now();
    auto last_heard = last_sent;
    const auto handshake_end = last_sent + opt_.handshake_timeout;
    BulkChunk chunk;
    std::string replies;
    while (true) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return;
      }
      const std::uint64_t reads_before = reads_.load(std::memory_order_relaxed);
      // On failure what was decoded before it still counts (the handshake, PUBLISHes before a
      // malformed packet): handled below, then the session ends.
      const bool ok = read_some(chunk, replies, why);
      const auto now = Steady::now();
      if (reads_.load(std::memory_order_relaxed) != reads_before) last_heard = now;
      if (!was_up) {
        // CONNECT and the SUBSCRIBEs went out together; a broker may send PUBLISHes of the first
        // filters before the last SUBACK. They are held until Up is reported.
        if (const auto c = stream_.connack(); c && c->return_code != 0) {
          why = std::string("connection refused: ") + mqtt_codec::connack_reason(c->return_code);
          return;
        }
        for (const auto& [id, code] : stream_.subacks()) {
          if (code == 0x80 && id >= 1 && id <= opt_.filters.size()) {
            why = "subscription to '" + opt_.filters[id - 1] + "' refused";
            return;
          }
        }
        if (stream_.connack() && stream_.subacks().size() >= opt_.filters.size()) {
          was_up = true;
          up_ = true;
          connects_.fetch_add(1, std::memory_order_relaxed);
          BulkChunk up;
          up.kind = BulkChunk::Kind::Up;
          up.received = now;
          sink_(std::move(up));
        } else if (ok && now >= handshake_end) {
          why = stream_.connack() ? "SUBACK not received in time" : "CONNACK not received in time";
          return;
        }
      }
      if (was_up) hand_over(chunk);
      if (!ok) return;
      if (now - last_sent >= keepalive && keepalive.count() > 0) {
        std::string ping;
        mqtt_codec::encode_pingreq(ping);
        if (!send_all(ping)) {
          why = "cannot send PINGREQ";
          return;
        }
        last_sent = now;
      }
      // Nothing at all, not even a PINGRESP, for 1.5 keepalives: a half-open connection.
      if (keepalive.count() > 0 && now - last_heard > keepalive + keepalive / 2) {
        why = "no answer from the broker for " +
              std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - last_heard).count()) +
              " s (keepalive)";
        return;
      }
    }
  }();
  up_ = false;
  std::lock_guard<std::mutex> lock(mu_);
  ::close(fd_);
  fd_ = -1;
  return was_up;
}

void BulkReader::run() {
  // Named, so top -H, perf and presence-e2e-bench's busiest-thread line can tell it apart.
  ::pthread_setname_np(::pthread_self(), "hb_bulk_reader");
  common::RateLimitedLog rlog(opt_.log_rate_limit);
  std::mt19937_64 rng{std::random_device{}()};
  core::Duration backoff = opt_.reconnect.min_backoff;
  while (true) {
    std::string why;
    const bool was_up = session(why);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    if (was_up) {
      BulkChunk lost;
      lost.kind = BulkChunk::Kind::Lost;
      lost.detail = why;
      lost.received = Steady::now();
      sink_(std::move(lost));  // MqttLink logs it and goes blind
      backoff = opt_.reconnect.min_backoff;
    } else {
      rlog.log(LogLevel::Warn, "bulk:connect",
               "mqtt: heartbeat connection (" + opt_.client_id + "): " + why +
                   "; retrying (set mqtt.bulk_heartbeats: false to read heartbeats through Paho)");
    }
    // The same backoff as Paho's connection (mqtt.reconnect): exponential with jitter, so a
    // broker restart is not met by a synchronized storm (post-mortem 000).
    const double j = std::clamp(opt_.reconnect.jitter, 0.0, 1.0);
    std::uniform_real_distribution<double> factor(1.0 - j, 1.0 + j);
    const auto wait = std::chrono::duration_cast<Steady::duration>(
        core::Duration(static_cast<std::int64_t>(static_cast<double>(backoff.count()) * factor(rng))));
    if (!was_up) backoff = std::min(opt_.reconnect.max_backoff, backoff * 2);
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, wait, [this] { return stopping_; })) return;
  }
}

}  // namespace presence::ingest
