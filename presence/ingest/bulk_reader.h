// The bulk heartbeat reader (issue 16 item 2, docs/benchmarks.md "End to end": the direct path).
//
// Why: with heartbeats sent directly (no broker-ext aggregation, as on EMQX) one MQTT message per
// heartbeat reaches presenced, and ~80 % of presenced's CPU was Paho's receive path: Paho C's
// receive thread handles one packet per cycle (a poll(), a recv() per header byte and one for the
// rest, several mutex round trips, mallocs, trace formatting) and the C++ wrapper copies every
// message again. presenced's own parsing and engine work is ~5 %. So heartbeats get a second,
// subscribe-only connection read in bulk: one blocking recv() of up to 64 KiB straight into the
// decoder's buffer, every PUBLISH in it decoded with the one MQTT codec (presence/common/
// mqtt_codec.h, zero-copy views), and the whole read handed to the engine thread as one chunk
// (one lock, at most one wake-up). Paho keeps everything else: TLS, WebSocket, MQTT 5, the will,
// the births and the retained output, and every other subscription (QoS 1, persistent session).
//
// The connection: MQTT 3.1.1 over plain TCP, clean session, QoS 0 subscriptions (a heartbeat is
// proof of life *now*: one the broker kept while we were away proves nothing), the same
// username / password, keepalive and reconnect backoff as the mqtt: section, PINGREQ when nothing
// was sent for a keepalive, dead after 1.5 keepalives without a byte. A malformed stream (a
// remaining length over 4 bytes, a reserved packet type, a malformed PUBLISH, a packet a broker
// never sends to a subscriber) is a protocol error: logged (rate limited), counted, connection
// dropped and reopened with backoff. A well-formed PUBLISH over max_packet (one device's huge
// "heartbeat") is read past, dropped and counted, the connection kept. Nothing crashes and the
// buffer never grows past max_packet plus one read. stop() is bounded: shutdown() of the socket
// wakes the blocked recv().
//
// BulkStream is the pure part (bytes in, chunks out), unit-tested in
// test/unit/ingest/bulk_reader_test.cpp; BulkReader adds the socket and its thread, tested
// against a real mosquitto in test/integration/ingest/bulk_reader_test.cpp.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "presence/common/log.h"
#include "presence/common/mqtt_codec.h"
#include "presence/core/time.h"
#include "presence/ingest/mqtt_config.h"

namespace presence::ingest {

// host and port of a plain-TCP broker URI (tcp://host:port, mqtt://host:port, [v6]:port; port
// 1883 when left out); nullopt for TLS, WebSocket or anything unparsable: the bulk reader speaks
// plain TCP only, those brokers keep heartbeats on Paho (docs/configuration.md).
struct TcpEndpoint {
  std::string host;
  std::string port;
};
std::optional<TcpEndpoint> plain_tcp_endpoint(std::string_view uri);

// One read's messages (or a connection event), handed to the engine thread in one piece.
struct BulkChunk {
  enum class Kind : std::uint8_t {
    Messages,  // the PUBLISHes of one read
    Up,        // connected and every subscription granted
    Lost,      // the connection is gone (detail: why); Up follows when it is back
  };
  struct Message {
    std::uint32_t topic_at = 0;  // offsets into bytes
    std::uint32_t topic_len = 0;
    std::uint32_t payload_at = 0;
    std::uint32_t payload_len = 0;
    bool retained = false;
  };
  Kind kind = Kind::Messages;
  std::string bytes;  // topics and payloads, back to back
  std::vector<Message> messages;
  std::string detail;
  std::chrono::steady_clock::time_point received{};  // when the read returned

  std::string_view topic(const Message& m) const {
    return std::string_view(bytes).substr(m.topic_at, m.topic_len);
  }
  std::string_view payload(const Message& m) const {
    return std::string_view(bytes).substr(m.payload_at, m.payload_len);
  }
};

// The bytes of one connection in, PUBLISHes out. Pure (no socket, no clock).
class BulkStream {
 public:
  // A PUBLISH over max_packet is dropped and counted (oversized()), not a protocol error: one
  // device publishing a huge "heartbeat" must not cost everyone's heartbeats a reconnect.
  explicit BulkStream(std::size_t max_packet) : decoder_(max_packet) { decoder_.skip_oversized(true); }

  // Bytes read from the socket: recv() into prepare(n), then commit(k); or feed().
  char* prepare(std::size_t n) { return decoder_.prepare(n); }
  void commit(std::size_t k) { decoder_.commit(k); }
  void feed(std::string_view bytes) { decoder_.feed(bytes); }

  // Every whole packet buffered: PUBLISHes appended to chunk, answers the broker is owed
  // (PUBACK of a QoS 1 PUBLISH) appended to replies, CONNACK / SUBACK remembered for the
  // handshake. False on a protocol error (error() says what): the connection must be dropped.
  bool drain(BulkChunk& chunk, std::string& replies);

  const std::string& error() const { return error_; }
  std::optional<mqtt_codec::Connack> connack() const { return connack_; }
  // SUBACK return codes by packet id (ids 1..n for the n SUBSCRIBEs of a handshake).
  const std::vector<std::pair<std::uint16_t, std::uint8_t>>& subacks() const { return subacks_; }
  std::size_t buffered() const { return decoder_.buffered(); }
  std::uint64_t oversized() const { return decoder_.skipped() + oversized_before_; }
  std::size_t last_oversized_size() const { return decoder_.last_skipped_size(); }
  void reset();

 private:
  bool fail(std::string why);
  mqtt_codec::Decoder decoder_;
  std::uint64_t oversized_before_ = 0;  // skipped by decoders before the last reset()
  std::string error_;
  std::optional<mqtt_codec::Connack> connack_;
  std::vector<std::pair<std::uint16_t, std::uint8_t>> subacks_;
};

struct BulkReaderOptions {
  TcpEndpoint broker;
  std::string client_id;
  std::string username;  // empty = anonymous
  std::string password;
  core::Duration keepalive{std::chrono::seconds(30)};
  MqttReconnectConfig reconnect;
  std::vector<std::string> filters;  // subscribed at QoS 0
  // Bigger PUBLISHes are dropped as their bytes arrive (a remaining length of 268 MB must not
  // allocate 268 MB), counted in oversized_total.
  std::size_t max_packet = 1 << 20;
  std::size_t read_size = 64 * 1024;
  // After a read that did not fill half the buffer, wait this long before the next one so that
  // heartbeats arriving meanwhile share one recv() and one hand-over: at 10k msg/s a read per
  // message cost more than the message, and with a 1 ms wait the ~1,000 reads and engine batches
  // a second still cost presenced 0.7 - 0.8 x the broker's CPU per heartbeat; 10 ms brought it to
  // 0.3 - 0.37 (docs/benchmarks.md "The direct path"). At most this much latency (lag p99 ~50 ms,
  // the broker's Nagle against our delayed ACK, as at 30k msg/s before), nothing against presence
  // windows of seconds or overload.lag_limit (2 s); under load reads fill and never wait.
  // 0 = read as soon as bytes arrive.
  core::Duration read_coalesce{std::chrono::milliseconds(10)};
  // Connect, CONNACK and every SUBACK within this (Paho's connect timeout is 10 s too).
  core::Duration handshake_timeout{std::chrono::seconds(10)};
  core::Duration log_rate_limit{std::chrono::seconds(10)};
};

struct BulkReaderStats {
  bool connected = false;               // connected and subscribed
  std::uint64_t connects_total = 0;     // handshakes completed
  std::uint64_t reads_total = 0;        // recv() calls that returned bytes
  std::uint64_t messages_total = 0;     // PUBLISHes handed over
  std::uint64_t protocol_errors_total = 0;  // malformed streams (connection dropped)
  std::uint64_t oversized_total = 0;  // PUBLISHes over max_packet, dropped (connection kept)
};

class BulkReader {
 public:
  // sink is called on the reader's thread, once per read with messages and on Up / Lost; it
  // must not block for long (MqttLink's pushes into its inbox under one mutex).
  using Sink = std::function<void(BulkChunk&&)>;
  BulkReader(BulkReaderOptions options, Sink sink);
  ~BulkReader();  // stop()
  BulkReader(const BulkReader&) = delete;
  BulkReader& operator=(const BulkReader&) = delete;

  void start();
  // Bounded: DISCONNECT if connected, shutdown() of the socket (wakes recv), join. Idempotent.
  void stop();
  BulkReaderStats stats() const;
  const BulkReaderOptions& options() const { return opt_; }

 private:
  bool session(std::string& why);  // one connection, until it fails or stop(); true if it was up
  int connect_socket(std::string& why);
  bool send_all(std::string_view bytes);
  bool read_some(BulkChunk& chunk, std::string& replies, std::string& why);
  void run();

  BulkReaderOptions opt_;
  Sink sink_;
  BulkStream stream_;
  std::thread thread_;
  std::mutex mu_;  // fd_ and stop: stop() shuts the socket down under it, the thread closes it
  std::condition_variable cv_;
  int fd_ = -1;
  bool stopping_ = false;
  bool coalesce_next_ = false;  // reader thread: the last read was short
  std::atomic<bool> up_{false};
  std::atomic<std::uint64_t> connects_{0}, reads_{0}, messages_{0}, errors_{0}, oversized_{0};
  common::RateLimitedLog oversized_log_;
};

}  // namespace presence::ingest
