#include "mqtt_raw.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace presence::test::mqtt {

namespace {

void put_u16(std::string& s, std::uint16_t v) {
  s.push_back(static_cast<char>(v >> 8));
  s.push_back(static_cast<char>(v & 0xFF));
}
void put_str(std::string& s, const std::string& v) {
  put_u16(s, static_cast<std::uint16_t>(v.size()));
  s += v;
}
std::string packet(std::uint8_t header, const std::string& body) {
  std::string p;
  p.push_back(static_cast<char>(header));
  std::size_t len = body.size();
  do {
    std::uint8_t b = len % 128;
    len /= 128;
    if (len > 0) b |= 0x80;
    p.push_back(static_cast<char>(b));
  } while (len > 0);
  return p + body;
}

}  // namespace

std::string connect_packet(const ConnectOptions& o) {
  std::string v;
  put_str(v, "MQTT");
  v.push_back(static_cast<char>(o.protocol));
  std::uint8_t flags = o.clean ? 0x02 : 0x00;
  if (o.username) flags |= 0x80;
  if (o.password) flags |= 0x40;
  v.push_back(static_cast<char>(flags));
  put_u16(v, o.keepalive);
  if (o.protocol == 5) v.push_back(0);  // CONNECT properties: none
  put_str(v, o.client_id);
  if (o.username) put_str(v, *o.username);
  if (o.password) put_str(v, *o.password);
  return packet(0x10, v);
}

std::string publish_packet(const std::string& topic, const std::string& payload) {
  std::string v;
  put_str(v, topic);
  return packet(0x30, v + payload);
}

RawClient::~RawClient() { close(); }

bool RawClient::open(int port) {
  close();
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return false;
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close();
    return false;
  }
  buf_.clear();
  closed_by_peer_ = false;
  return true;
}

bool RawClient::open_async(int port) {
  close();
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno != EINPROGRESS) {
    close();
    return false;
  }
  buf_.clear();
  closed_by_peer_ = false;
  return true;
}

bool RawClient::finish_open() {
  int err = 0;
  socklen_t len = sizeof err;
  if (fd_ < 0 || ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) return false;
  const int fl = ::fcntl(fd_, F_GETFL);
  return fl >= 0 && ::fcntl(fd_, F_SETFL, fl & ~O_NONBLOCK) == 0;
}

int RawClient::connect(int port, const ConnectOptions& o, std::chrono::milliseconds timeout) {
  if (!open(port) || !send_raw(connect_packet(o))) return -1;
  std::string body;
  auto h = read_packet(body, timeout);
  if (!h || (*h & 0xF0) != 0x20 || body.size() < 2) return -1;
  return static_cast<unsigned char>(body[1]);
}

bool RawClient::send_raw(const std::string& bytes) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  return true;
}

bool RawClient::subscribe(const std::string& filter, std::uint16_t mid) {
  std::string v;
  put_u16(v, mid);
  put_str(v, filter);
  v.push_back(0);  // QoS 0
  return send_raw(packet(0x82, v));
}

bool RawClient::publish(const std::string& topic, const std::string& payload) {
  return send_raw(publish_packet(topic, payload));
}

bool RawClient::ping() { return send_raw(std::string("\xC0\x00", 2)); }

void RawClient::disconnect() {
  if (fd_ >= 0) send_raw(std::string("\xE0\x00", 2));
  close();
}

void RawClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool RawClient::fill(std::size_t n, std::chrono::steady_clock::time_point deadline) {
  while (buf_.size() < n) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || fd_ < 0) return false;
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      return false;
    }
    char tmp[65536];
    const ssize_t got = ::recv(fd_, tmp, sizeof tmp, 0);
    if (got == 0) {
      closed_by_peer_ = true;
      return false;
    }
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      closed_by_peer_ = true;
      return false;
    }
    buf_.append(tmp, static_cast<std::size_t>(got));
  }
  return true;
}

std::optional<std::uint8_t> RawClient::read_packet(std::string& body,
                                                   std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (!fill(2, deadline)) return std::nullopt;
  std::size_t len = 0, mult = 1, pos = 1;
  for (;;) {
    if (!fill(pos + 1, deadline)) return std::nullopt;
    const auto b = static_cast<unsigned char>(buf_[pos]);
    len += (b & 0x7F) * mult;
    mult *= 128;
    ++pos;
    if ((b & 0x80) == 0) break;
    if (pos > 4) return std::nullopt;
  }
  if (!fill(pos + len, deadline)) return std::nullopt;
  const auto header = static_cast<std::uint8_t>(buf_[0]);
  body = buf_.substr(pos, len);
  buf_.erase(0, pos + len);
  return header;
}

std::optional<Publish> RawClient::read_publish(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    std::string body;
    auto h = read_packet(body, left);
    if (!h) return std::nullopt;
    if ((*h & 0xF0) != 0x30 || body.size() < 2) continue;
    const std::size_t tlen = (static_cast<unsigned char>(body[0]) << 8) |
                             static_cast<unsigned char>(body[1]);
    std::size_t off = 2 + tlen;
    if ((*h & 0x06) != 0) off += 2;  // packet id (QoS > 0)
    if (off > body.size()) continue;
    return Publish{body.substr(2, tlen), body.substr(off), (*h & 0x01) != 0};
  }
}

bool RawClient::wait_closed(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::string body;
    auto h = read_packet(body, std::chrono::duration_cast<std::chrono::milliseconds>(
                                   deadline - std::chrono::steady_clock::now()));
    if (!h && closed_by_peer_) return true;
  }
  return closed_by_peer_;
}

Collector::Collector(int port, const std::string& filter, const std::string& client_id) {
  ConnectOptions o;
  o.client_id = client_id;
  o.keepalive = 0;  // no keepalive: the collector may sit idle between reads
  if (client_.connect(port, o) != 0 || !client_.subscribe(filter)) {
    stop_ = true;
    return;
  }
  thread_ = std::thread([this] {
    for (;;) {
      {
        std::lock_guard<std::mutex> l(mu_);
        if (stop_) return;
      }
      auto p = client_.read_publish(std::chrono::milliseconds(50));
      if (p) {
        std::lock_guard<std::mutex> l(mu_);
        msgs_.push_back(std::move(*p));
      }
    }
  });
}

Collector::~Collector() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
  client_.disconnect();
}

std::vector<Publish> Collector::snapshot() {
  std::lock_guard<std::mutex> l(mu_);
  return msgs_;
}

std::optional<Publish> Collector::wait_for(const std::string& topic_suffix,
                                           const std::string& contains,
                                           std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    {
      std::lock_guard<std::mutex> l(mu_);
      for (const auto& m : msgs_) {
        if (m.topic.size() >= topic_suffix.size() &&
            m.topic.compare(m.topic.size() - topic_suffix.size(), topic_suffix.size(),
                            topic_suffix) == 0 &&
            m.payload.find(contains) != std::string::npos) {
          return m;
        }
      }
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace presence::test::mqtt
