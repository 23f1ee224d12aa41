// The bulk heartbeat reader (presence/ingest/bulk_reader.*, issue 16 item 2) against a real
// mosquitto on a free loopback port: heartbeats arrive (many per read), a broker restart is a
// Lost then an Up again and heartbeats flow on, stop() is bounded whatever the connection is
// doing. And against a fake broker (a loopback socket in this test) for what a real one never
// sends: a malformed stream is a counted protocol error, the connection is dropped and reopened,
// a refused CONNACK is retried, nothing crashes.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "presence/common/mqtt_codec.h"
#include "presence/ingest/bulk_reader.h"
#include "test/support/process.h"

using namespace std::chrono_literals;
using presence::ingest::BulkChunk;
using presence::ingest::BulkReader;
using presence::ingest::BulkReaderOptions;
using presence::test::Mosquitto;
using presence::test::wait_for;
namespace codec = presence::mqtt_codec;

namespace {

// What the sink got, from the reader's thread.
struct Received {
  std::mutex mu;
  std::vector<std::string> topics;
  std::vector<BulkChunk::Kind> events;  // Up / Lost in order
  std::vector<std::string> lost_why;
  std::size_t chunks = 0;

  BulkReader::Sink sink() {
    return [this](BulkChunk&& c) {
      std::lock_guard<std::mutex> lock(mu);
      if (c.kind == BulkChunk::Kind::Messages) {
        ++chunks;
        for (const auto& m : c.messages) topics.emplace_back(c.topic(m));
      } else {
        events.push_back(c.kind);
        if (c.kind == BulkChunk::Kind::Lost) lost_why.push_back(c.detail);
      }
    };
  }
  std::size_t count() {
    std::lock_guard<std::mutex> lock(mu);
    return topics.size();
  }
  std::size_t ups() {
    std::lock_guard<std::mutex> lock(mu);
    return static_cast<std::size_t>(std::count(events.begin(), events.end(), BulkChunk::Kind::Up));
  }
  std::size_t losts() {
    std::lock_guard<std::mutex> lock(mu);
    return static_cast<std::size_t>(std::count(events.begin(), events.end(), BulkChunk::Kind::Lost));
  }
};

BulkReaderOptions options(int port) {
  BulkReaderOptions o;
  o.broker = {"127.0.0.1", std::to_string(port)};
  o.client_id = "bulk-test-heartbeats";
  o.filters = {"devices/+/heartbeat"};
  o.reconnect.min_backoff = 100ms;
  o.reconnect.max_backoff = 400ms;
  o.handshake_timeout = 2s;
  o.max_packet = 64 * 1024;
  return o;
}

int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

void send_all(int fd, const std::string& bytes) {
  std::size_t at = 0;
  while (at < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
    REQUIRE(n > 0);
    at += static_cast<std::size_t>(n);
  }
}

// A raw publisher (the one codec): CONNECT, then batches of QoS 0 PUBLISHes in single writes.
class Publisher {
 public:
  explicit Publisher(int port) : fd_(connect_to(port)) {
    std::string out;
    codec::ConnectOptions co;
    co.client_id = "bulk-test-publisher";
    codec::encode_connect(out, co);
    send_all(fd_, out);
    // CONNACK: 4 bytes.
    char ack[4];
    std::size_t got = 0;
    while (got < 4) {
      const ssize_t n = ::recv(fd_, ack + got, 4 - got, 0);
      REQUIRE(n > 0);
      got += static_cast<std::size_t>(n);
    }
    REQUIRE(ack[0] == 0x20);
  }
  ~Publisher() { ::close(fd_); }
  void big_heartbeat(std::size_t bytes) {
    std::string out;
    codec::encode_publish(out, "devices/big/heartbeat", std::string(bytes, 'x'), 0, false, 0);
    send_all(fd_, out);
  }
  void heartbeats(int from, int n) {
    std::string out;
    for (int i = from; i < from + n; ++i)
      codec::encode_publish(out, "devices/d" + std::to_string(i) + "/heartbeat", "1", 0, false, 0);
    codec::encode_publish(out, "devices/d0/status", "online", 0, false, 0);  // not subscribed
    send_all(fd_, out);
  }

 private:
  int fd_;
};

// A fake broker on a loopback port: for each connection, reads the CONNECT (and SUBSCRIBEs),
// writes script(n) (n = 0, 1, ... per connection), then holds it open until the peer closes.
class FakeBroker {
 public:
  explicit FakeBroker(std::function<std::string(int)> script) : script_(std::move(script)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    REQUIRE(::listen(fd_, 8) == 0);
    thread_ = std::thread([this] { run(); });
  }
  ~FakeBroker() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  int accepted() const { return accepted_; }

 private:
  void run() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      const int n = accepted_++;
      char buf[4096];
      pollfd q{c, POLLIN, 0};
      if (::poll(&q, 1, 2000) > 0 && ::recv(c, buf, sizeof buf, 0) > 0) {
        const std::string out = script_(n);
        (void)::send(c, out.data(), out.size(), MSG_NOSIGNAL);
      }
      // Until the reader drops us (or the test ends).
      while (!stop_) {
        if (::poll(&q, 1, 50) > 0 && ::recv(c, buf, sizeof buf, 0) <= 0) break;
      }
      ::close(c);
    }
  }
  std::function<std::string(int)> script_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<int> accepted_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::string connack_and_suback(std::uint8_t rc = 0) {
  std::string out{0x20, 0x02, 0x00, static_cast<char>(rc)};
  out += std::string("\x90\x03\x00\x01\x00", 5);
  return out;
}

}  // namespace

TEST_CASE("heartbeats arrive through a real mosquitto, many per read; a broker restart reconnects") {
  Mosquitto broker;
  broker.start();
  Received got;
  BulkReader reader(options(broker.port()), got.sink());
  reader.start();
  REQUIRE(wait_for([&] { return got.ups() == 1; }, 10s));
  CHECK(reader.stats().connected);

  Publisher pub(broker.port());
  constexpr int kBeats = 20000;
  for (int i = 0; i < kBeats; i += 1000) pub.heartbeats(i, 1000);
  REQUIRE(wait_for([&] { return got.count() >= kBeats; }, 20s));
  {
    std::lock_guard<std::mutex> lock(got.mu);
    CHECK(got.topics.size() == kBeats);  // QoS 0 on loopback, far below any queue limit
    CHECK(got.topics.front() == "devices/d0/heartbeat");
    CHECK(got.topics.back() == "devices/d19999/heartbeat");
    for (const auto& t : got.topics) CHECK(t.find("/status") == std::string::npos);
  }
  const auto s = reader.stats();
  CHECK(s.messages_total == kBeats);
  // The point of the reader: several heartbeats per recv() and per hand-over.
  CHECK(s.reads_total < kBeats / 4);
  CHECK(s.protocol_errors_total == 0);

  // One device's 200 KB "heartbeat" (over this reader's 64 KiB limit): dropped and counted, the
  // connection kept, the heartbeats after it delivered.
  pub.big_heartbeat(200 * 1024);
  pub.heartbeats(kBeats, 1);
  REQUIRE(wait_for([&] { return got.count() >= kBeats + 1; }, 10s));
  CHECK(reader.stats().oversized_total == 1);
  CHECK(reader.stats().connects_total == 1);
  CHECK(got.losts() == 0);

  // Broker restart: Lost, then Up again on the same port, and heartbeats flow on.
  broker.restart();
  REQUIRE(wait_for([&] { return got.ups() == 2; }, 15s));
  CHECK(got.losts() == 1);
  Publisher pub2(broker.port());
  pub2.heartbeats(kBeats + 1, 10);
  REQUIRE(wait_for([&] { return got.count() >= kBeats + 11; }, 10s));
  CHECK(reader.stats().connects_total == 2);

  const auto t0 = std::chrono::steady_clock::now();
  reader.stop();
  CHECK(std::chrono::steady_clock::now() - t0 < 1s);
  CHECK_FALSE(reader.stats().connected);
}

TEST_CASE("a steady trickle shares reads: after a short read the reader waits read_coalesce") {
  // At 10k msg/s a read per arriving segment cost more than the heartbeats in it (docs/
  // benchmarks.md "The direct path"): one heartbeat a millisecond, as a 10k msg/s fleet spread
  // over 10 subscribers' worth would trickle in, must come several to a recv(). With the old 1 ms
  // wait this was 1 - 2 heartbeats per read; the default wait makes it ~read_coalesce's worth.
  Mosquitto broker;
  broker.start();
  Received got;
  BulkReader reader(options(broker.port()), got.sink());  // the default read_coalesce
  reader.start();
  REQUIRE(wait_for([&] { return got.ups() == 1; }, 10s));
  Publisher pub(broker.port());
  const auto reads_before = reader.stats().reads_total;
  constexpr int kBeats = 300;
  // On a schedule, not a sleep per message: a publisher held up by a loaded machine catches up
  // in a burst (fewer reads, never more), so the bound below holds however slow the machine is.
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kBeats; ++i) {
    std::this_thread::sleep_until(t0 + i * 1ms);
    pub.heartbeats(i, 1);
  }
  REQUIRE(wait_for([&] { return got.count() >= kBeats; }, 10s));
  const auto reads = reader.stats().reads_total - reads_before;
  CHECK(got.count() == kBeats);
  INFO("reads: " << reads << " for " << kBeats << " heartbeats a millisecond apart");
  CHECK(reads * 4 <= kBeats);
  reader.stop();
}

TEST_CASE("stop() is bounded: connected, waiting out a backoff, stuck in a handshake") {
  SUBCASE("connected and idle (blocked in recv)") {
    Mosquitto broker;
    broker.start();
    Received got;
    BulkReader reader(options(broker.port()), got.sink());
    reader.start();
    REQUIRE(wait_for([&] { return got.ups() == 1; }, 10s));
    const auto t0 = std::chrono::steady_clock::now();
    reader.stop();
    CHECK(std::chrono::steady_clock::now() - t0 < 1s);
  }
  SUBCASE("no broker: in a 30 s backoff") {
    Received got;
    auto o = options(presence::test::free_tcp_port());
    o.reconnect.min_backoff = 30s;
    o.reconnect.max_backoff = 30s;
    BulkReader reader(o, got.sink());
    reader.start();
    std::this_thread::sleep_for(200ms);  // let it fail once and start waiting
    const auto t0 = std::chrono::steady_clock::now();
    reader.stop();
    CHECK(std::chrono::steady_clock::now() - t0 < 1s);
    CHECK(got.ups() == 0);
  }
  SUBCASE("a broker that accepts TCP and never answers CONNECT") {
    FakeBroker silent([](int) { return std::string(); });
    Received got;
    auto o = options(silent.port());
    o.handshake_timeout = 30s;
    BulkReader reader(o, got.sink());
    reader.start();
    REQUIRE(wait_for([&] { return silent.accepted() == 1; }, 5s));
    const auto t0 = std::chrono::steady_clock::now();
    reader.stop();
    CHECK(std::chrono::steady_clock::now() - t0 < 1s);
  }
}

TEST_CASE("a malformed stream is a protocol error: counted, connection dropped and reopened") {
  // Connection 0: a good heartbeat, then a remaining length of 5 bytes (MQTT allows 4). Later
  // ones: a good stream.
  FakeBroker fake([](int n) {
    std::string out = connack_and_suback();
    codec::encode_publish(out, "devices/a/heartbeat", "1", 0, false, 0);
    if (n == 0) out += std::string("\x30\xff\xff\xff\xff\x01", 6);
    return out;
  });
  Received got;
  BulkReader reader(options(fake.port()), got.sink());
  reader.start();
  REQUIRE(wait_for([&] { return got.ups() >= 2 && got.count() >= 2; }, 10s));
  const auto s = reader.stats();
  CHECK(s.protocol_errors_total == 1);
  CHECK(s.connects_total >= 2);
  {
    std::lock_guard<std::mutex> lock(got.mu);
    REQUIRE(!got.lost_why.empty());
    CHECK(got.lost_why.front() == "protocol error: remaining length longer than 4 bytes");
  }
  reader.stop();
}

TEST_CASE("a refused CONNACK or SUBACK is never Up, and is retried with backoff") {
  SUBCASE("CONNACK: not authorized") {
    FakeBroker fake([](int) { return connack_and_suback(5); });
    Received got;
    BulkReader reader(options(fake.port()), got.sink());
    reader.start();
    REQUIRE(wait_for([&] { return fake.accepted() >= 2; }, 10s));
    reader.stop();
    CHECK(got.ups() == 0);
    CHECK(reader.stats().connects_total == 0);
  }
  SUBCASE("SUBACK 0x80") {
    FakeBroker fake([](int) { return std::string("\x20\x02\x00\x00\x90\x03\x00\x01\x80", 9); });
    Received got;
    BulkReader reader(options(fake.port()), got.sink());
    reader.start();
    REQUIRE(wait_for([&] { return fake.accepted() >= 2; }, 10s));
    reader.stop();
    CHECK(got.ups() == 0);
  }
}
