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

namespace codec = presence::mqtt_codec;

namespace {

codec::ConnectOptions to_codec(const ConnectOptions& o) {
  codec::ConnectOptions c;
  c.client_id = o.client_id;
  c.keepalive_s = o.keepalive;
  c.clean_session = o.clean;
  c.username = o.username;
  c.password = o.password;
  c.protocol_level = static_cast<std::uint8_t>(o.protocol);
  return c;
}

}  // namespace

std::string connect_packet(const ConnectOptions& o) {
  std::string out;
  codec::encode_connect(out, to_codec(o));
  return out;
}

std::string publish_packet(const std::string& topic, const std::string& payload) {
  std::string out;
  codec::encode_publish(out, topic, payload, 0, false, 0);
  return out;
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
  decoder_.reset();
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
  decoder_.reset();
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
  codec::Packet p;
  // Byte 2 of a CONNACK is the return code (3.1.1) or reason code (5, then properties follow).
  if (!read_packet(p, timeout) || p.type != codec::PacketType::Connack || p.body.size() < 2) return -1;
  return static_cast<unsigned char>(p.body[1]);
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
  std::string out;
  codec::encode_subscribe(out, mid, filter, 0);
  return send_raw(out);
}

bool RawClient::publish(const std::string& topic, const std::string& payload) {
  return send_raw(publish_packet(topic, payload));
}

bool RawClient::ping() {
  std::string out;
  codec::encode_pingreq(out);
  return send_raw(out);
}

void RawClient::disconnect() {
  std::string out;
  codec::encode_disconnect(out);
  if (fd_ >= 0) send_raw(out);
  close();
}

void RawClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool RawClient::read_packet(codec::Packet& out, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    switch (decoder_.next(out)) {
      case codec::Decoder::Status::Packet: return true;
      case codec::Decoder::Status::Error: return false;  // a broken stream: nothing more to read
      case codec::Decoder::Status::NeedMore: break;
    }
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
    decoder_.feed(std::string_view(tmp, static_cast<std::size_t>(got)));
  }
}

std::optional<Publish> RawClient::read_publish(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    codec::Packet p;
    if (!read_packet(p, left)) return std::nullopt;
    if (p.type != codec::PacketType::Publish) continue;
    auto pub = codec::parse_publish(p);
    if (!pub) continue;
    return Publish{std::move(pub->topic), std::move(pub->payload), pub->retain};
  }
}

bool RawClient::wait_closed(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    codec::Packet p;
    const bool got = read_packet(p, std::chrono::duration_cast<std::chrono::milliseconds>(
                                        deadline - std::chrono::steady_clock::now()));
    if (!got && closed_by_peer_) return true;
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
