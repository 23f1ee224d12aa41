// The plugin's state machine, free of Mosquitto: broker callbacks in, messages to publish and
// log lines out. plugin.cpp is the thin C-ABI shim around it (STYLE.md habit 5); everything that
// can be decided without a broker is decided here and unit-tested with a simulated clock.
//
// Why connected events are confirmed late (docs/broker-ext.md, "Guarantees"): Mosquitto 2.0 has
// no CONNECT event. MOSQ_EVT_BASIC_AUTH runs *before* the broker's decision, so it only records a
// pending connection. The decision is visible afterwards:
//   - refused: the broker frees the client id and disconnects the socket at once, inside the
//     same read, so MOSQ_EVT_DISCONNECT arrives with client id NULL;
//   - accepted: nothing more happens in that read; the next MOSQ_EVT_TICK (end of the same
//     main-loop iteration) therefore confirms every pending connection still open. A session
//     takeover disconnects the old connection inside the new one's acceptance, so a disconnect
//     of client id X also confirms a pending X (it can only be pending if it was accepted).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "broker-ext/alive.h"
#include "broker-ext/options.h"
#include "broker-ext/storm.h"

namespace presence::broker_ext {

// One "now" per callback (STYLE.md habit 3): steady ms for windows, wall ms for payload "ts".
struct Now {
  std::int64_t mono_ms = 0;
  std::int64_t unix_ms = 0;
};

struct ClientInfo {
  std::string client_id;
  std::optional<std::string> username;
  std::string address;
  int protocol_version = 0;  // 3, 4 (3.1.1) or 5
  int keepalive = 0;
  bool clean_start = true;
};

struct Message {
  std::string topic;
  std::string payload;
  bool retain = false;
  int qos = -1;  // -1: the plugin's `qos` option; alive messages are QoS 0 (wire contract)
};

enum class LogLevel { info, notice, warning, error };
struct LogLine {
  LogLevel level;
  std::string text;
};

struct Output {
  std::vector<Message> messages;
  std::vector<LogLine> logs;
};

enum class AuthVerdict { defer, refuse };

struct Counters {
  std::uint64_t connects = 0;                  // connected events published
  std::uint64_t disconnects = 0;               // disconnected events published
  std::uint64_t refused_rate_limited = 0;      // refused by the connect_rate token bucket
  std::uint64_t refused_flap_banned = 0;       // refused by the flap ban (incl. the banning one)
  std::uint64_t flap_untracked = 0;            // admitted uncounted: flap table full
  std::uint64_t auth_refused = 0;              // the broker's auth chain refused after we deferred
  std::uint64_t unidentified_disconnects = 0;  // sockets that never completed CONNECT
  std::uint64_t publish_errors = 0;            // mosquitto_broker_publish_copy failed
  std::uint64_t heartbeats_seen = 0;      // publishes matching heartbeat_topic
  std::uint64_t heartbeats_rejected = 0;  // heartbeat_topic shape, {id} empty or > 256 bytes
  std::uint64_t alive_messages = 0;       // alive messages published
};

class PresenceExt {
 public:
  PresenceExt(Options options, std::string boot_id, std::string plugin_version,
              std::string broker_version, Now now);

  // The retained boot event (seq 1). Published once, at plugin init.
  Message boot_message();

  // MOSQ_EVT_BASIC_AUTH. conn identifies the connection (the struct mosquitto*), never
  // dereferenced. Returns refuse only for storm protection; otherwise the chain goes on.
  AuthVerdict on_basic_auth(const void* conn, const ClientInfo& info, Now now, Output& out);
  // MOSQ_EVT_DISCONNECT. client_id as the broker has it now (NULL: refused / never connected).
  void on_disconnect(const void* conn, const char* client_id, Now now, Output& out);
  // MOSQ_EVT_TICK: confirms pending connections, publishes the heartbeat when due, flushes the
  // rate-limited refusal log. still_identified(conn) tells whether the broker still has a client
  // id on a pending connection (the shim asks mosquitto_client_id; safe because the connection
  // is alive until its MOSQ_EVT_DISCONNECT). A refused connection whose close the broker defers
  // (websockets close via libwebsockets later) has lost its id: it stays pending until its
  // disconnect instead of being reported connected.
  using StillIdentified = bool (*)(const void* conn);
  void on_tick(Now now, Output& out, StillIdentified still_identified = nullptr);

  // MOSQ_EVT_MESSAGE (registered only with heartbeat_topic set): runs for every PUBLISH the
  // broker accepts, so it is allocation-free unless the topic is a heartbeat of a new id.
  // Appends alive messages to out only when the pending ids filled alive_max_bytes.
  void on_message(std::string_view topic, Output& out);

  // MOSQ_EVT_CONTROL on kClientsRequestTopic (issue 14, start-up reconciliation): Mosquitto 2.0
  // cannot list its clients (eclipse-mosquitto/mosquitto#3155), so presenced asks us on every
  // (re)connect. Replies with the connected clients on <prefix>/clients, in parts of at most
  // kClientsPerPart: {"v":1,"boot":..,"seq":N,"node":..,"ts":..,"part":1,"parts":2,
  // "clients":[{"clientid":"a","session":7},...]} (docs/broker-ext.md).
  void on_clients_request(Now now, Output& out);

  void note_publish_error() { ++counters_.publish_errors; }
  const Counters& counters() const { return counters_; }
  std::size_t clients() const { return live_; }
  std::size_t pending() const { return pending_.size(); }
  std::uint64_t last_seq() const { return seq_; }
  const std::string& prefix() const { return options_.topic_prefix; }

 private:
  struct Conn {
    ClientInfo info;
    std::int64_t auth_unix_ms = 0;
    std::uint64_t session = 0;  // 0 while pending
    std::uint64_t attempt = 0;  // distinguishes reuse of the same pointer
  };
  void confirm(const void* conn, Conn& c, Output& out);
  void confirm_pending_of(const std::string& client_id, Output& out);
  void publish_disconnected(const std::string& client_id, std::uint64_t session,
                            bool superseded, Now now, Output& out);
  void refusal(bool rate_limited, bool new_ban, const std::string& client_id, Now now,
               Output& out);
  void flush_refusal_log(Now now, Output& out);
  std::string base_fields(std::uint64_t seq) const;  // {"v":1,"boot":..,"seq":N
  void push_alive(Output& out);

  Options options_;
  std::string boot_id_;
  std::string plugin_version_;
  std::string broker_version_;
  Now start_;
  std::uint64_t seq_ = 0;
  std::uint64_t attempts_ = 0;
  std::optional<TokenBucket> bucket_;
  std::optional<FlapBan> flap_;
  std::size_t banned_clients_ = 0;

  std::unordered_map<const void*, Conn> conns_;
  std::vector<std::pair<const void*, std::uint64_t>> pending_;  // in attempt order
  std::unordered_map<std::string, int> pending_ids_;            // client id -> # pending
  std::unordered_map<std::string, std::uint64_t> latest_session_;  // client id -> live session
  std::size_t live_ = 0;

  std::int64_t next_heartbeat_ms_;
  Counters counters_;
  // Heartbeat aggregation, set when heartbeat_topic is.
  std::optional<HeartbeatPattern> heartbeat_pattern_;
  std::optional<AliveAggregator> alive_;
  std::vector<std::string> alive_flushed_;  // reused between calls
  std::int64_t next_alive_ms_ = 0;
  // Rate-limited refusal log (issue 4: "logged rate-limited").
  std::int64_t last_refusal_log_ms_;
  std::uint64_t log_rate_limited_ = 0, log_flap_banned_ = 0, log_new_bans_ = 0;
  std::string log_last_client_;
};

// Where presenced asks for the client list. $CONTROL/ is the topic space Mosquitto 2.0 routes to
// plugins (MOSQ_EVT_CONTROL) instead of subscribers.
inline constexpr const char* kClientsRequestTopic = "$CONTROL/presence/v1/clients";
inline constexpr std::size_t kClientsPerPart = 1000;

// Topic helpers (also used by tests): prefix + "/clients/" + encoded id + "/" + what.
std::string client_topic(const std::string& prefix, const std::string& client_id,
                         const char* what);

}  // namespace presence::broker_ext
