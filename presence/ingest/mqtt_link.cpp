#include "presence/ingest/mqtt_link.h"

#include "presence/ingest/sparkplug.h"

#include <fnmatch.h>

#include <algorithm>
#include <deque>
#include <optional>
#include <functional>
#include <mutex>
#include <random>
#include <stdexcept>
#include <utility>

#include <mqtt/async_client.h>
#include <nlohmann/json.hpp>

#include "presence/core/engine.h"
#include "presence/ingest/blind_spots.h"
#include "presence/ingest/bulk_reader.h"
#include "presence/common/log.h"
#include "presence/ingest/output.h"

namespace presence::ingest {

using core::Duration;
using core::MonoTime;
using core::mono_now;
using common::LineBudget;
using common::log_level;
using common::log;
using common::LogLevel;
using common::RateLimitedLog;

namespace {

// What Paho's threads hand to the engine thread.
struct Inbound {
  enum class Type : std::uint8_t {
    Message,
    ConnectOk,
    ConnectFailed,
    Subscribed,
    SubscribeFailed,
    Lost,
    ServerShutdown,
    SetRate,
    EmqxClients,  // the EMQX clients API answered (emqx_fetch)
  };
  Type type = Type::Message;
  std::string topic;
  std::string payload;
  bool retained = false;
  bool session_present = false;
  std::string detail;
  double rate = 0;
  Duration interval{0};
  std::shared_ptr<const EmqxFetch> emqx_fetch;
  // Message: when Paho handed it over (the ingest lag of its batch, issue 16).
  std::chrono::steady_clock::time_point received{};
};

class Listener : public mqtt::iaction_listener {
 public:
  std::function<void(const mqtt::token&)> ok;
  std::function<void(const mqtt::token&)> failed;
  void on_success(const mqtt::token& t) override { ok(t); }
  void on_failure(const mqtt::token& t) override { failed(t); }
};

}  // namespace

// Final flush plus disconnect at stop, all waits together (issue 19 item 2: every exit <= 5 s).
constexpr std::chrono::seconds kShutdownBudget{3};
// A persistent MQTT 5 session must outlive a presenced restart to keep queued last-wills.
constexpr int kSessionExpirySeconds = 3600;
// Longer than Paho's own connect timeout (10 s) so Paho normally reports first.
constexpr Duration kHandshakeTimeout{std::chrono::seconds(15)};
// The device classes the engine needs: the configured ones and those the sources' presets name.
static MqttLinkOptions with_device_classes(MqttLinkOptions o) {
  o.device_classes = effective_device_classes(o.sources, o.device_classes);
  return o;
}

std::vector<core::DeviceClass> engine_device_classes(const MqttLinkOptions& o) {
  std::vector<core::DeviceClass> out;
  for (const auto& c : effective_device_classes(o.sources, o.device_classes))
    out.push_back(c.timeouts);
  return out;
}

struct MqttLink::Impl {
  MqttLinkOptions opt;
  TopicMatcher matcher;
  SourceTable sources;
  std::optional<sparkplug::Tracker> sparkplug_tracker;  // sparkplug.enabled
  std::vector<Parsed> sparkplug_events;
  std::vector<sparkplug::Command> sparkplug_commands;
  server::Loop& loop;
  core::Engine& engine;  // the loop's: used on the engine thread only
  std::function<std::uint32_t()> incidents_open;
  WallAnchor anchor;
  PublishQueue queue;
  BlindSpots blind_spots;
  mutable RateLimitedLog rlog;
  HygieneObserver hygiene;  // engine thread: what the device-hygiene report is made of
  // EMQX reconciliation: one fetch at a time on its own thread (HTTP must not block the engine).
  std::thread emqx_thread;
  std::atomic<bool> emqx_busy{false};
  std::atomic<bool> emqx_abort{false};

  std::unique_ptr<mqtt::async_client> client;
  Listener connect_listener;
  Listener subscribe_listener;

  std::mutex in_mu;
  std::vector<Inbound> inbox;  // under in_mu: what Paho's threads handed over
  std::vector<Inbound> batch;  // engine thread: the inbox taken by this batch
  std::vector<BulkChunk> bulk_inbox;  // under in_mu: what the bulk heartbeat reader handed over
  std::vector<BulkChunk> bulk_batch;  // engine thread: taken by this batch
  // HA (issue 13): only the pair's leader publishes the retained output. Unset = always.
  std::function<bool()> publish_gate;
  bool publishing = true;
  std::function<const char*()> role;  // HA: in the service message; unset = no role field
  std::string role_published;         // the role the last service message carried
  MqttLink::Parents parents;  // issue 15: unset = no topology

  // Engine-thread state.
  enum class Conn : std::uint8_t { Idle, Connecting, Subscribing, Up };
  Conn conn = Conn::Idle;
  MonoTime next_connect{};
  MonoTime state_since{};  // when conn last changed (watchdog for a connect/subscribe that hangs)
  Duration backoff{};
  std::mt19937_64 rng{std::random_device{}()};
  static constexpr std::size_t kClearsPerPublish = 1000;
  std::deque<std::string> clears;  // retained topics of forgotten devices still to clear
  FleetStatus last_fleet{};
  bool fleet_known = false;
  // Overload (issue 16): signals sampled per batch, core::OverloadDetector decides.
  core::OverloadDetector overload{opt.overload};
  MonoTime overload_since{};
  MonoTime last_batch_now{};  // the previous batch's now: a stall in between
  std::optional<std::uint64_t> broker_dropped;  // $SYS/broker/publish/messages/dropped
  // Own probes: published every kProbeInterval through the broker to ourselves with a sequence
  // number; one that does not come back within lag_limit, or a gap, means messages to presenced
  // are lost or late, whatever the broker reports.
  static constexpr Duration kProbeInterval{std::chrono::milliseconds(500)};
  static constexpr const char* kDroppedTopic = "$SYS/broker/publish/messages/dropped";
  std::string probe_topic;
  std::uint64_t probe_seq = 0;
  std::deque<std::pair<std::uint64_t, MonoTime>> probes_out;  // sent, not back yet
  MonoTime next_probe{};
  std::uint64_t probes_lost = 0;
  MonoTime last_fleet_publish{};
  MqttStats local;
  // The bulk heartbeat reader (bulk_reader.h, issue 16): heartbeats on a connection of their own.
  // Declared after the inboxes it pushes into, so it stops (destructor) before they go.
  std::vector<std::string> paho_filters;  // what Paho subscribes: the matcher's minus the bulk ones
  std::string bulk_client_id;             // <client_id>-heartbeats: never a device
  bool bulk_up = false;                   // engine thread: the reader reported Up, not Lost since
  std::uint64_t bulk_oversized_seen = 0;  // engine thread: the reader's oversized_total counted
  std::unique_ptr<BulkReader> bulk;

  mutable std::mutex stats_mu;
  MqttStats shared;

  Impl(MqttLinkOptions o, server::Loop& l)
      : opt(with_device_classes(std::move(o))),
        loop(l),
        engine(l.engine()),
        queue(opt.output.max_messages_per_second, opt.output.coalesce_interval),
        blind_spots(/*persistent_session=*/!opt.mqtt.clean_session),
        rlog(opt.log_rate_limit) {
    std::vector<std::string> errors;
    if (!compile_ingest(opt.topics, opt.sources, opt.device_classes, matcher, sources, errors)) {
      std::string all;
      for (const auto& e : errors) all += e + "; ";
      throw std::invalid_argument(all);
    }
    if (opt.sparkplug.enabled) {
      sparkplug::Options so;
      so.primary_host = opt.sparkplug.primary_host;
      so.rebirth = opt.sparkplug.rebirth;
      so.rebirth_interval = opt.sparkplug.rebirth_interval;
      sparkplug_tracker.emplace(so, opt.limits);
    }
    anchor.mono = mono_now();
    anchor.wall = std::chrono::system_clock::now();
    backoff = opt.mqtt.reconnect.min_backoff;
    probe_topic = opt.output.service_topic + "/probe/" + opt.mqtt.client_id;
  }

  void push(Inbound in) {
    bool was_empty = false;
    // Every entry is stamped: the engine thread merges this inbox with the bulk reader's by it.
    if (in.received == std::chrono::steady_clock::time_point{}) in.received = std::chrono::steady_clock::now();
    {
      std::lock_guard<std::mutex> lock(in_mu);
      was_empty = inbox.empty() && bulk_inbox.empty();
      inbox.push_back(std::move(in));
    }
    // Only the push that makes the inbox non-empty wakes the engine thread: it takes the whole
    // inbox under the same mutex, so later pushes are in that batch or find it empty again.
    // A futex wake per message was the largest single cost of ingest (docs/benchmarks.md,
    // "End to end": ~30 % of presenced's CPU at 30k msg/s).
    if (was_empty) loop.wake();
  }

  // The bulk reader's thread: one chunk per read (many heartbeats, one lock, at most one wake).
  void push_bulk(BulkChunk&& chunk) {
    bool was_empty = false;
    {
      std::lock_guard<std::mutex> lock(in_mu);
      was_empty = inbox.empty() && bulk_inbox.empty();
      bulk_inbox.push_back(std::move(chunk));
    }
    if (was_empty) loop.wake();
  }

  // Connected, subscribed, and (with the bulk reader) the heartbeat connection up too: only then
  // does presenced see everything it judges by.
  bool ingest_up() const { return conn == Conn::Up && (!bulk || bulk_up); }

  // Decided once at start (mqtt: is restart-only): which heartbeat filters the bulk reader takes.
  // Logged once either way, with the reason when heartbeats stay on Paho.
  void plan_bulk_reader() {
    std::vector<std::string> others{kDroppedTopic};
    if (sparkplug_tracker) others.emplace_back(sparkplug::kFilter);
    FilterSplit split = split_heartbeat_filters(matcher, others);
    paho_filters = matcher.filters();
    bool any_heartbeat = false;
    for (const auto& p : matcher.patterns()) any_heartbeat |= p.kind() == TopicKind::Heartbeat;
    if (!any_heartbeat) return;
    const auto endpoint = plain_tcp_endpoint(opt.mqtt.uri);
    std::string why;
    if (!opt.mqtt.bulk_heartbeats) why = "mqtt.bulk_heartbeats is false";
    else if (!endpoint) why = "the bulk reader needs a plain tcp:// or mqtt:// mqtt.uri";
    else if (split.bulk.empty()) why = "every heartbeat filter shares topics with another subscription";
    if (!why.empty()) {
      log(LogLevel::Info, "mqtt: heartbeats through Paho with the other subscriptions (" + why + ")");
      return;
    }
    paho_filters = std::move(split.paho);
    bulk_client_id = opt.mqtt.client_id + "-heartbeats";
    BulkReaderOptions bo;
    bo.broker = *endpoint;
    bo.client_id = bulk_client_id;
    bo.username = opt.mqtt.username;
    bo.password = opt.mqtt.password;
    bo.keepalive = opt.mqtt.keepalive;
    bo.reconnect = opt.mqtt.reconnect;
    bo.filters = split.bulk;
    // Own probes travel with the heartbeats: a probe lost or late on this connection is what
    // tells presenced the heartbeats are (issue 16 item 1).
    bo.filters.push_back(probe_topic);
    // A heartbeat bigger than a payload we would parse is junk anyway; the codec's bound keeps a
    // broken remaining length from allocating.
    bo.max_packet = std::max<std::size_t>(64 * 1024, opt.limits.max_payload_bytes + 64 * 1024);
    bo.log_rate_limit = opt.log_rate_limit;
    std::string list;
    for (const auto& f : split.bulk) list += (list.empty() ? "" : ", ") + f;
    std::string kept;
    for (const auto& p : matcher.patterns())
      if (p.kind() == TopicKind::Heartbeat &&
          std::find(split.bulk.begin(), split.bulk.end(), p.filter()) == split.bulk.end() &&
          kept.find(p.filter()) == std::string::npos)
        kept += (kept.empty() ? "" : ", ") + p.filter();
    log(LogLevel::Info, "mqtt: heartbeats (" + list + ") on a second connection '" + bulk_client_id +
                            "' read in bulk (mqtt.bulk_heartbeats)" +
                            (kept.empty() ? std::string()
                                          : "; " + kept + " stay on Paho (shared with other subscriptions)"));
    bulk = std::make_unique<BulkReader>(std::move(bo), [this](BulkChunk&& c) { push_bulk(std::move(c)); });
  }

  std::string server_uri() const {
    const std::string& u = opt.mqtt.uri;
    if (u.rfind("mqtt://", 0) == 0) return "tcp://" + u.substr(7);
    if (u.rfind("mqtts://", 0) == 0) return "ssl://" + u.substr(8);
    return u;
  }
  bool tls() const {
    const std::string u = server_uri();
    return u.rfind("ssl://", 0) == 0 || u.rfind("wss://", 0) == 0;
  }

  std::string service_payload(const char* state) const {
    nlohmann::json j;
    j["v"] = 1;
    j["state"] = state;
    j["ts"] = iso8601(std::chrono::system_clock::now());
    if (role && std::string_view(state) == "online") j["role"] = role();
    return j.dump();
  }

  void make_client() {
    build_connect_options();
    // Paho refuses publishes beyond max_buffered_messages (default 100) queued in the client;
    // our own token bucket is the limit that matters, so allow a few seconds' worth.
    const int buffered = static_cast<int>(std::clamp(
        opt.output.max_messages_per_second > 0 ? opt.output.max_messages_per_second * 4 : 100000.0,
        1000.0, 1000000.0));
    mqtt::create_options create(opt.mqtt.protocol == MqttProtocol::v5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1,
                                buffered);
    client = std::make_unique<mqtt::async_client>(server_uri(), opt.mqtt.client_id, create,
                                                  nullptr);
    client->set_message_callback([this](mqtt::const_message_ptr m) {
      Inbound in;
      in.type = Inbound::Type::Message;
      in.topic = m->get_topic();
      in.payload = m->get_payload_str();
      in.retained = m->is_retained();
      in.received = std::chrono::steady_clock::now();
      push(std::move(in));
    });
    client->set_connection_lost_handler([this](const std::string& cause) {
      Inbound in;
      in.type = Inbound::Type::Lost;
      in.detail = cause;
      push(std::move(in));
    });
    client->set_disconnected_handler([this](const mqtt::properties&, mqtt::ReasonCode rc) {
      // MQTT 5: the broker told us it is shutting down. That is a broker restart in the making,
      // not a network problem on our side.
      if (rc == mqtt::ReasonCode::SERVER_SHUTTING_DOWN) {
        Inbound in;
        in.type = Inbound::Type::ServerShutdown;
        push(std::move(in));
      }
    });
    connect_listener.ok = [this](const mqtt::token& t) {
      Inbound in;
      in.type = Inbound::Type::ConnectOk;
      try {
        in.session_present = t.get_connect_response().is_session_present();
      } catch (...) {
      }
      push(std::move(in));
    };
    connect_listener.failed = [this](const mqtt::token& t) {
      Inbound in;
      in.type = Inbound::Type::ConnectFailed;
      in.detail = "return code " + std::to_string(t.get_return_code());
      push(std::move(in));
    };
    subscribe_listener.ok = [this](const mqtt::token&) {
      Inbound in;
      in.type = Inbound::Type::Subscribed;
      push(std::move(in));
    };
    subscribe_listener.failed = [this](const mqtt::token& t) {
      Inbound in;
      in.type = Inbound::Type::SubscribeFailed;
      in.detail = "return code " + std::to_string(t.get_return_code());
      push(std::move(in));
    };
  }

  // Built once and kept for the client's lifetime. Paho C++ 1.2's connect_options copies keep
  // C pointers into the object they were copied from (the MQTT 5 connect properties): a
  // temporary (e.g. connect_options_builder::finalize()) leaves them dangling and
  // MQTTAsync_connect crashed in MQTTProperties_copy. Set fields on this object directly.
  mqtt::connect_options conn_opts;

  void build_connect_options() {
    mqtt::connect_options& b = conn_opts;
    b.set_mqtt_version(opt.mqtt.protocol == MqttProtocol::v5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1);
    if (opt.mqtt.protocol == MqttProtocol::v5) {
      b.set_clean_start(opt.mqtt.clean_session);
      if (!opt.mqtt.clean_session) {
        b.set_properties(mqtt::properties{
            {mqtt::property::SESSION_EXPIRY_INTERVAL, kSessionExpirySeconds}});
      }
    } else {
      b.set_clean_session(opt.mqtt.clean_session);
    }
    b.set_keep_alive_interval(std::chrono::duration_cast<std::chrono::seconds>(opt.mqtt.keepalive));
    b.set_connect_timeout(std::chrono::seconds(10));
    b.set_max_inflight(1000);
    if (!opt.mqtt.username.empty()) b.set_user_name(opt.mqtt.username);
    if (!opt.mqtt.password.empty()) b.set_password(opt.mqtt.password);
    if (tls()) {
      // Set on a plain object (no builder temporary, see conn_opts). No TLS error callback:
      // Paho keeps a raw pointer to the options object for it, and a failed handshake is
      // reported through the connect failure anyway.
      mqtt::ssl_options tls;
      if (!opt.mqtt.tls.ca_file.empty()) tls.set_trust_store(opt.mqtt.tls.ca_file);
      tls.set_enable_server_cert_auth(opt.mqtt.tls.verify);
      tls.set_verify(opt.mqtt.tls.verify);
      if (!opt.mqtt.tls.cert_file.empty()) tls.set_key_store(opt.mqtt.tls.cert_file);
      if (!opt.mqtt.tls.key_file.empty()) tls.set_private_key(opt.mqtt.tls.key_file);
      b.set_ssl(std::move(tls));
    }
    // presenced's own presence: consumers of presence/devices/# can tell a stale view.
    b.set_will_message(mqtt::message(opt.output.service_topic, service_payload("offline"),
                                     opt.output.qos, true));
  }

  // ---- connection state machine (engine thread) ----

  void schedule_reconnect(MonoTime now) {
    conn = Conn::Idle;
    const double j = std::clamp(opt.mqtt.reconnect.jitter, 0.0, 1.0);
    std::uniform_real_distribution<double> factor(1.0 - j, 1.0 + j);
    next_connect = now + Duration(static_cast<std::int64_t>(
                             static_cast<double>(backoff.count()) * factor(rng)));
    backoff = std::min(opt.mqtt.reconnect.max_backoff, backoff * 2);
  }

  void maybe_connect(MonoTime now) {
    // Watchdog: Paho promises a callback for every connect and subscribe, but a broker that
    // accepts the TCP connection and then stalls must not leave us waiting forever.
    if ((conn == Conn::Connecting || conn == Conn::Subscribing) &&
        now - state_since > kHandshakeTimeout) {
      log(LogLevel::Warn, std::string("mqtt: ") +
                              (conn == Conn::Connecting ? "connect" : "subscribe") +
                              " got no answer in time, reconnecting");
      disconnect_quietly();
      schedule_reconnect(now);
      return;
    }
    if (!client || conn != Conn::Idle || now < next_connect) return;
    conn = Conn::Connecting;
    state_since = now;
    try {
      client->connect(conn_opts, nullptr, connect_listener);
    } catch (const mqtt::exception& e) {
      rlog.log(LogLevel::Warn, "connect", std::string("mqtt: connect to ") + server_uri() +
                                              " failed: " + e.what());
      schedule_reconnect(now);
    }
  }

  // Feeds what BlindSpots decided; logs restarts.
  void feed(const BlindSpots::Kinds& kinds, server::Batch& b) {
    const MonoTime now = b.now;
    for (const auto kind : kinds) {
      if (kind == core::EventKind::BrokerRestarted) {
        local.broker_restarts_total = blind_spots.restarts();
        log(LogLevel::Warn, "broker restart detected (" + blind_spots.last_reason() + ")");
      }
      core::Event e;
      e.kind = kind;
      e.at = now;
      b.feed(e);
    }
  }

  void on_subscribed(server::Batch& b) {
    const MonoTime now = b.now;
    conn = Conn::Up;
    backoff = opt.mqtt.reconnect.min_backoff;
    log(LogLevel::Info, "mqtt: connected to " + server_uri() + " and subscribed (" +
                            std::to_string(matcher.filters().size()) + " filters)");
    // We can see again. What happened while we were blind is unknown: the engine holds
    // judgement for restart grace (incident 002: a presence-service restart must not turn
    // into a wave of false offlines).
    if (ingest_up()) feed(blind_spots.subscribed(), b);
    else log(LogLevel::Info, "mqtt: waiting for the heartbeat connection before judging again");
    publish_service_online();
    request_client_list();
    request_emqx_clients();
    // The broker may have lost our retained output (restart without persistence): resend, in
    // the background, so a real change after the reconnect is not queued behind the whole fleet.
    for (core::DeviceIndex d = 0; d < engine.size(); ++d) queue.mark(d, now, /*background=*/true);
    queue.mark_fleet();
  }

  // The engine's index of a device id, or kNoDevice when the id is not a device: broker-ext and
  // EMQX report every client, presenced included, and the operator lists others in
  // topics.ignore_ids (another presenced, backend services: scenario 01 paged the other
  // presenced instance as a straggler before that). Globs are matched whole (fnmatch without
  // flags: '*' spans '/' too).
  core::DeviceIndex device_of(const std::string& id) {
    if (id == opt.mqtt.client_id || (!bulk_client_id.empty() && id == bulk_client_id))
      return core::kNoDevice;
    for (const auto& glob : opt.ignore_ids) {
      if (::fnmatch(glob.c_str(), id.c_str(), 0) == 0) {
        ++local.ignored_ids_total;
        return core::kNoDevice;
      }
    }
    // Ids are bounded by ParseLimits first. The engine refuses an id holding a NUL byte (a JSON
    // "\u0000"), checked only for ids it does not know yet: counted here, off the hot path.
    const auto dev = engine.intern(id);
    if (dev == core::kNoDevice && id.find('\0') != std::string::npos)
      ++local.parse_errors_total[static_cast<std::size_t>(ParseError::BadPayload)];
    return dev;
  }

  // One message, from Paho (via_paho) or from the bulk heartbeat reader: one code path.
  void handle_message(std::string_view topic_in, std::string_view payload, bool retained,
                      server::Batch& b, bool via_paho) {
    const MonoTime now = b.now;
    // Paho may hand us the first messages (retained replays right after the SUBACK, or a
    // persistent session's backlog) before the subscribe's success callback. We are receiving,
    // so we are subscribed: restore first, so the engine judges replays inside restart grace.
    if (via_paho && conn == Conn::Subscribing) on_subscribed(b);
    if (overload_signal(topic_in, payload)) return;
    ++local.mqtt_messages_total;
    if (sparkplug_tracker && topic_in.starts_with("spBv1.0/")) {
      handle_sparkplug(topic_in, payload, retained, b);
      return;
    }
    Parsed p = parse_message(matcher, topic_in, payload, retained, opt.limits, &sources);
    hygiene.observe(p, topic_in, retained, now);
    if (p.error != ParseError::None) {
      ++local.parse_errors_total[static_cast<std::size_t>(p.error)];
      std::string topic(topic_in.substr(0, 200));
      rlog.log(LogLevel::Warn, std::string("parse:") + to_string(p.error),
               std::string("ingest: ") + to_string(p.error) + " on '" + topic + "' (" +
                   std::to_string(payload.size()) + " bytes)" +
                   (p.what == Parsed::What::Reject ? ", message dropped" : ", message kept"));
    }
    switch (p.what) {
      case Parsed::What::Ignore:
      case Parsed::What::Reject:
        return;
      case Parsed::What::BrokerBoot:
        feed(blind_spots.boot(p.node, p.boot), b);
        return;
      case Parsed::What::BrokerUptime:
        feed(blind_spots.uptime(p.node, p.uptime_seconds), b);
        return;
      case Parsed::What::AliveBatch:
        // One message per second per broker node instead of one per heartbeat: the broker
        // aggregated them (broker-ext heartbeat_topic; Paho's per-message receive cost was most
        // of presenced's CPU, docs/benchmarks.md "End to end").
        if (!p.boot.empty()) feed(blind_spots.boot(p.node, p.boot), b);
        for (const auto& id : p.ids) {
          const core::DeviceIndex dev = device_of(id);
          if (dev == core::kNoDevice) continue;
          core::Event e;
          e.kind = core::EventKind::Heartbeat;
          e.source = core::Source::Heartbeat;
          e.device = dev;
          // The listing is up to alive_interval old: a device listed may have sent its heartbeat
          // before the disconnect we already handled (Event::unordered, presence.reorder_window).
          e.unordered = true;
          e.at = now;
          b.feed(e);
          ++local.alive_heartbeats_total;
        }
        return;
      case Parsed::What::ClientList:
        apply_client_list(p, b);
        return;
      case Parsed::What::DeviceResync:
      case Parsed::What::DeviceEvent:
        break;
    }
    feed_device(p, b, /*unordered=*/!via_paho);
  }

  // Sparkplug B (issue 15): the tracker turns the message into device events, in order (an
  // NDEATH's node before its devices, so the core knows the parent is down before the children
  // drop), and maybe an NCMD Rebirth to publish.
  void handle_sparkplug(std::string_view topic, std::string_view payload, bool retained,
                        server::Batch& b) {
    sparkplug_events.clear();
    sparkplug_commands.clear();
    std::string detail;
    const auto wall_ms = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                        std::chrono::system_clock::now().time_since_epoch())
                                                        .count());
    const ParseError err = sparkplug_tracker->on_message(topic, payload, retained, b.now, wall_ms,
                                                         sparkplug_events, sparkplug_commands, &detail);
    if (err != ParseError::None) {
      ++local.parse_errors_total[static_cast<std::size_t>(err)];
      rlog.log(LogLevel::Warn, std::string("sparkplug:") + to_string(err),
               std::string("sparkplug: ") + to_string(err) + " on '" + std::string(topic.substr(0, 200)) + "' (" +
                   std::to_string(payload.size()) + " bytes): " + detail + ", message dropped");
    }
    for (const auto& p : sparkplug_events) feed_device(p, b);
    for (const auto& c : sparkplug_commands) {
      // Rebirth requests only (presenced never publishes a STATE): QoS 0, not retained, best
      // effort; a node that misses it is asked again after rebirth_interval.
      if (!client || conn != Conn::Up) continue;
      try {
        client->publish(c.topic, c.payload.data(), c.payload.size(), 0, false);
        ++local.sparkplug_rebirths_total;
      } catch (const std::exception& e) {
        rlog.log(LogLevel::Warn, "sparkplug:rebirth", std::string("sparkplug: rebirth request failed: ") + e.what());
      }
    }
    const auto& c = sparkplug_tracker->counters();
    local.sparkplug_messages_total = c.messages;
    local.sparkplug_stale_deaths_total = c.stale_deaths;
    local.sparkplug_births_dead_on_arrival_total = c.births_dead_on_arrival;
    local.sparkplug_rebirths_suppressed_total = c.rebirths_suppressed;
  }

  // unordered: the message came on the bulk reader's connection, not with the wills (Event).
  void feed_device(const Parsed& p, server::Batch& b, bool unordered = false) {
    const MonoTime now = b.now;
    if (!p.boot.empty()) feed(blind_spots.boot(p.node, p.boot), b);
    const core::DeviceIndex dev = device_of(p.id);
    if (dev == core::kNoDevice) return;
    for (const auto& [k, v] : p.labels) engine.set_label(dev, k, v);
    if (p.device_class != 0) {
      engine.set_device_class(dev, p.device_class);
      // Shown in the API and kept by the snapshot (restore_device_classes).
      engine.set_label(dev, kClassLabel, opt.device_classes[p.device_class - 1].timeouts.name);
    }
    core::Event e;
    e.asleep = p.asleep;
    // mosquitto #1165: a retained replay restates the past. The engine may seed an unknown
    // device from it (cause "resync") but never takes it as fresh evidence.
    e.retained = p.what == Parsed::What::DeviceResync;
    e.kind = p.kind;
    e.reason = p.reason;
    e.source = p.source;
    e.device = dev;
    e.session = p.session;
    if (p.source == core::Source::BrokerExt) e.session = blind_spots.session(p.node, e.session);
    e.unordered = unordered;
    e.at = now;
    b.feed(e);
  }

  // Start-up reconciliation: each listed client is connected now. broker-ext's reply and EMQX's
  // clients API both arrive here as a ClientList (one code path; emqx_clients.h).
  void apply_client_list(const Parsed& p, server::Batch& b) {
    const MonoTime now = b.now;
    if (!p.boot.empty()) feed(blind_spots.boot(p.node, p.boot), b);
    for (std::size_t i = 0; i < p.ids.size(); ++i) {
      const core::DeviceIndex dev = device_of(p.ids[i]);
      if (dev == core::kNoDevice) continue;
      core::Event e;
      e.kind = core::EventKind::Connected;
      e.source = p.source;
      e.device = dev;
      e.session = i < p.sessions.size() ? blind_spots.session(p.node, p.sessions[i]) : 0;
      e.at = now;
      b.feed(e);
      ++local.reconciled_total;
      if (p.source == core::Source::Emqx) ++local.reconciled_emqx_total;
    }
  }

  void on_emqx_clients(const EmqxFetch& f, server::Batch& b) {
    ++local.emqx_fetches_total[static_cast<std::size_t>(f.result)];
    if (f.result == EmqxFetchResult::Ok) {
      log(LogLevel::Info, "emqx api: " + std::to_string(f.ids.size()) + " connected client(s) in " +
                              std::to_string(f.pages) + " page(s)" +
                              (f.detail.empty() ? std::string() : " (" + f.detail + ")"));
    } else if (f.result != EmqxFetchResult::Aborted) {
      rlog.log(f.result == EmqxFetchResult::Unauthorized ? LogLevel::Error : LogLevel::Warn,
               std::string("emqx:") + to_string(f.result),
               std::string("emqx api: clients not listed (") + to_string(f.result) + ", " +
                   f.detail + "); " + std::to_string(f.ids.size()) +
                   " client(s) from earlier pages reconciled, the rest wait for their grace");
    }
    if (f.ids.empty()) return;
    const Parsed p = emqx_client_list(f);
    hygiene.observe(p, {}, false, b.now);
    apply_client_list(p, b);
  }

  // On every (re)connect, like broker-ext's request: a worker asks EMQX; the answer comes back
  // through the inbox. A fetch still running is not doubled.
  void request_emqx_clients() {
    if (!opt.emqx_api.enabled() || emqx_busy.exchange(true)) return;
    if (emqx_thread.joinable()) emqx_thread.join();  // the previous one has finished
    emqx_thread = std::thread([this] {
      auto f = std::make_shared<EmqxFetch>(fetch_emqx_clients(opt.emqx_api, opt.limits, &emqx_abort));
      Inbound in;
      in.type = Inbound::Type::EmqxClients;
      in.emqx_fetch = std::move(f);
      push(std::move(in));
      emqx_busy = false;
    });
  }

  void handle_bulk(const BulkChunk& c, server::Batch& b) {
    switch (c.kind) {
      case BulkChunk::Kind::Messages:
        for (const auto& m : c.messages) handle_message(c.topic(m), c.payload(m), m.retained, b, false);
        break;
      case BulkChunk::Kind::Up:
        bulk_up = true;
        log(LogLevel::Info, "mqtt: heartbeat connection '" + bulk_client_id + "' connected and subscribed");
        // Seeing again only when Paho's side is up too (on_subscribed checks the other way round).
        if (conn == Conn::Up) feed(blind_spots.subscribed(), b);
        break;
      case BulkChunk::Kind::Lost:
        if (!bulk_up) break;
        bulk_up = false;
        // Without heartbeats every heartbeating device would look silent: blind, as when Paho's
        // connection is lost (no judgement on silence; restart grace when both are back).
        log(LogLevel::Warn, "mqtt: heartbeat connection lost (" + c.detail + "): blind until reconnected");
        feed(blind_spots.connection_lost(), b);
        break;
    }
  }

  void handle(const Inbound& in, server::Batch& b) {
    const MonoTime now = b.now;
    switch (in.type) {
      case Inbound::Type::Message:
        handle_message(in.topic, in.payload, in.retained, b, /*via_paho=*/true);
        break;
      case Inbound::Type::ConnectOk: {
        ++local.connects_total;
        blind_spots.connack(in.session_present);
        conn = Conn::Subscribing;
        state_since = now;
        log(LogLevel::Debug, std::string("mqtt: connected (session present: ") +
                                 (in.session_present ? "yes" : "no") + "), subscribing");
        auto filters = paho_filters;  // without the bulk reader's heartbeat filters
        if (sparkplug_tracker) filters.emplace_back(sparkplug::kFilter);
        auto coll = mqtt::string_collection::create(filters);
        mqtt::iasync_client::qos_collection qos(filters.size(), opt.mqtt.qos);
        try {
          client->subscribe(coll, qos, nullptr, subscribe_listener);
          // Overload signals (issue 16), separately and without a listener: a broker that refuses
          // them (no $SYS, an ACL) costs the signal, not the connection.
          if (!bulk) client->subscribe(probe_topic, 0);  // else on the heartbeat connection
          client->subscribe(kDroppedTopic, 0);
        } catch (const mqtt::exception& e) {
          log(LogLevel::Error, std::string("mqtt: subscribe failed: ") + e.what());
          disconnect_quietly();
          schedule_reconnect(now);
        }
        break;
      }
      case Inbound::Type::ConnectFailed:
        rlog.log(LogLevel::Warn, "connect",
                 "mqtt: cannot connect to " + server_uri() + " (" + in.detail + "), retrying");
        schedule_reconnect(now);
        break;
      case Inbound::Type::Subscribed:
        if (conn == Conn::Subscribing) on_subscribed(b);
        break;
      case Inbound::Type::SubscribeFailed:
        log(LogLevel::Error, "mqtt: subscribe refused (" + in.detail + "), reconnecting");
        disconnect_quietly();
        schedule_reconnect(now);
        break;
      case Inbound::Type::Lost:
        log(LogLevel::Warn, "mqtt: connection lost" +
                                (in.detail.empty() ? std::string() : " (" + in.detail + ")") +
                                ": blind until reconnected");
        feed(blind_spots.connection_lost(), b);
        backoff = opt.mqtt.reconnect.min_backoff;
        schedule_reconnect(now);
        break;
      case Inbound::Type::ServerShutdown:
        blind_spots.server_shutting_down();
        break;
      case Inbound::Type::EmqxClients:
        if (in.emqx_fetch) on_emqx_clients(*in.emqx_fetch, b);
        break;
      case Inbound::Type::SetRate:
        queue.set_rate(in.rate);
        queue.set_coalesce_interval(in.interval);
        opt.output.max_messages_per_second = in.rate;
        opt.output.coalesce_interval = in.interval;
        log(LogLevel::Info, "output: publish_rate " + std::to_string(in.rate) +
                                "/s, coalesce_interval " + std::to_string(in.interval.count()) +
                                "ms applied");
        break;
    }
  }

  void disconnect_quietly() {
    try {
      client->disconnect(0);
    } catch (...) {
    }
  }

  // A device's class (issue 14) is its label "class": the snapshot keeps labels, so a restarted
  // presenced judges a battery sensor by its own clock before its next report (hours away,
  // after restart grace has ended) instead of the default one.
  static constexpr const char* kClassLabel = "class";
  void restore_device_classes() {
    if (opt.device_classes.empty()) return;
    for (core::DeviceIndex d = 0; d < engine.size(); ++d) {
      for (const auto& [k, v] : engine.labels(d)) {
        if (k != kClassLabel) continue;
        for (std::size_t c = 0; c < opt.device_classes.size(); ++c)
          if (opt.device_classes[c].timeouts.name == v)
            engine.set_device_class(d, static_cast<std::uint8_t>(c + 1));
      }
    }
  }

  // Start-up reconciliation (issue 14): who is connected *now*. Mosquitto 2.0 cannot list its
  // clients (eclipse-mosquitto/mosquitto#3155); broker-ext answers on <broker_ext>/clients. The
  // devices it lists are live evidence at once, instead of waiting for heartbeats or the end of
  // restart grace; the others wait for their grace as before.
  void request_client_list() {
    if (opt.topics.broker_ext_clients.empty()) return;
    try {
      ++local.reconcile_requests_total;
      client->publish("$CONTROL/presence/v1/clients", std::string(R"({"v":1})"), 1, false);
    } catch (const mqtt::exception& e) {
      rlog.log(LogLevel::Warn, "publish", std::string("mqtt: client-list request failed: ") + e.what());
    }
  }

  void publish_service_online() {
    try {
      if (role) role_published = role();
      client->publish(opt.output.service_topic, service_payload("online"), opt.output.qos, true);
    } catch (const mqtt::exception& e) {
      rlog.log(LogLevel::Warn, "publish", std::string("mqtt: publish failed: ") + e.what());
    }
  }

  FleetStatus fleet_status() const {
    FleetStatus f;
    f.counts = engine.counts();
    f.devices = engine.device_count();
    f.broker_connected = ingest_up();
    f.blind = engine.blind();
    f.restart_grace = engine.in_restart_grace();
    if (incidents_open) f.incidents_open = incidents_open();
    return f;
  }

  mqtt::delivery_token_ptr send_device(core::DeviceIndex d) {
    const core::DeviceView view = engine.view(d);
    if (view.id.empty()) return {};  // forgotten since it was queued: its topic is cleared below
    std::string payload = device_json(view, engine.labels(d), anchor,
                                      parents.down_ancestor ? parents.down_ancestor(d) : std::string());
    std::string topic = opt.output.device_prefix + "/" + std::string(view.id);
    ++local.published_total;
    return client->publish(topic, payload.data(), payload.size(), opt.output.qos,
                           opt.output.retain);
  }

  mqtt::delivery_token_ptr send_fleet() {
    ++local.published_total;
    return client->publish(opt.output.fleet_topic,
                           fleet_json(fleet_status(), std::chrono::system_clock::now()),
                           opt.output.qos, opt.output.retain);
  }

  // Asked once per batch. On becoming the publisher (HA takeover) the retained truth is ours to
  // set: every device and the fleet are restated, in the background, as after a reconnect.
  bool may_publish(MonoTime now) {
    if (!publish_gate) return true;
    const bool may = publish_gate();
    if (may && !publishing) {
      for (core::DeviceIndex d = 0; d < engine.size(); ++d) queue.mark(d, now, /*background=*/true);
      queue.mark_fleet();
      log(LogLevel::Info, "output: publishing the retained output (HA leader); restating " +
                              std::to_string(engine.size()) + " device(s)");
    } else if (!may && publishing) {
      log(LogLevel::Info, "output: not publishing the retained output (HA follower)");
    }
    publishing = may;
    return may;
  }

  void publish(MonoTime now) {
    const FleetStatus f = fleet_status();
    const bool changed = !fleet_known || f.counts != last_fleet.counts ||
                         f.devices != last_fleet.devices || f.blind != last_fleet.blind ||
                         f.restart_grace != last_fleet.restart_grace ||
                         f.incidents_open != last_fleet.incidents_open ||
                         f.broker_connected != last_fleet.broker_connected;
    if (changed && (!fleet_known || now - last_fleet_publish >= opt.output.coalesce_interval)) {
      queue.mark_fleet();
      last_fleet = f;
      fleet_known = true;
      last_fleet_publish = now;
    }
    if (conn != Conn::Up) return;
    if (role && role() != role_published) publish_service_online();  // HA: role changed
    bool fleet = false;
    std::vector<core::DeviceIndex> devices;
    if (!may_publish(now)) {
      // A follower's retained messages would fight the leader's (same topics, its own view and
      // timestamps): it drops what it would have sent and restates everything when it leads.
      queue.take_all(fleet, devices);
      return;
    }
    queue.take(now, fleet, devices);
    std::size_t i = 0;
    try {
      if (fleet) send_fleet();
      fleet = false;
      for (; i < devices.size(); ++i) send_device(devices[i]);
      send_clears(devices.size());
    } catch (const mqtt::exception& e) {
      rlog.log(LogLevel::Warn, "publish", std::string("mqtt: publish failed: ") + e.what() +
                                              "; will retry");
      queue.put_back(fleet, std::vector<core::DeviceIndex>(devices.begin() + static_cast<std::ptrdiff_t>(i), devices.end()));
    }
  }

  // Forgotten devices (presence.forget_after, issue 19 item 9): their retained
  // presence/devices/<id> is cleared (an empty retained message deletes it), or a flood of junk
  // ids would stay in the broker, and in every consumer's subscription, for good. Behind real
  // output: at most as many clears per publish as device updates left room for, at least 64.
  void send_clears(std::size_t sent) {
    const std::size_t budget = sent >= kClearsPerPublish ? 64 : kClearsPerPublish - sent;
    for (std::size_t n = 0; n < budget && !clears.empty(); ++n) {
      const std::string id = std::move(clears.front());
      clears.pop_front();
      if (engine.find(id)) continue;  // spoke again since: its topic is live
      ++local.published_total;
      ++local.devices_cleared_total;
      client->publish(opt.output.device_prefix + "/" + id, "", 0, opt.output.qos, true);
    }
  }

  // What the engine step drained: every changed device is republished, forgotten devices get
  // their retained topic cleared.
  void mark(const server::Batch& b) {
    if (opt.output.retain)
      for (const auto& id : b.forgotten) clears.push_back(id);
    for (const auto& t : b.transitions) {
      // A device's first state waits behind real changes of known devices (issue 19 item 9).
      queue.mark(t.device, b.now, /*background=*/t.from == core::State::Unknown);
      // A parent that goes down or comes back changes what its down children read
      // ("unreachable" <-> "offline") without a transition of their own.
      if (parents.descendants && t.from != core::State::Unknown)
        for (core::DeviceIndex c : parents.descendants(engine.view(t.device).id)) queue.mark(c, b.now);
    }
  }

  void update_stats() {
    local.publish_pending = queue.pending();
    local.publish_pending_background = queue.pending_background();
    local.broker_connected = ingest_up();
    if (bulk) {
      const BulkReaderStats r = bulk->stats();
      local.heartbeat_reader = true;
      local.heartbeat_reader_connected = r.connected;
      local.heartbeat_reader_reads_total = r.reads_total;
      local.heartbeat_reader_messages_total = r.messages_total;
      local.heartbeat_reader_protocol_errors_total = r.protocol_errors_total;
      // A heartbeat over the packet limit is dropped by the reader: the same counter as a
      // payload too large on Paho's side.
      local.parse_errors_total[static_cast<std::size_t>(ParseError::PayloadTooLarge)] +=
          r.oversized_total - bulk_oversized_seen;
      bulk_oversized_seen = r.oversized_total;
    }
    std::lock_guard<std::mutex> lock(stats_mu);
    shared = local;
  }

  // "mqtt.in": what Paho's threads queued, in order, then the connection's own timers.
  void take_input(server::Batch& b) {
    {
      std::lock_guard<std::mutex> lock(in_mu);
      batch.swap(inbox);
      bulk_batch.swap(bulk_inbox);
    }
    check_overload(b);  // before the batch's events: see check_overload
    // Two connections, one order: merged by when each was received, so a heartbeat and a status
    // of one device received in this order are handled in this order (what the broker sent on
    // the two connections in between is as close as presenced can tell).
    std::size_t j = 0;
    for (const auto& in : batch) {
      for (; j < bulk_batch.size() && bulk_batch[j].received < in.received; ++j) handle_bulk(bulk_batch[j], b);
      handle(in, b);
    }
    for (; j < bulk_batch.size(); ++j) handle_bulk(bulk_batch[j], b);
    batch.clear();
    bulk_batch.clear();
    maybe_connect(b.now);
    send_probe(b.now);
  }

  // ---- overload (issue 16) ------------------------------------------------------------------

  // Probe replies and the broker's drop counter: consumed here, never parsed as device traffic.
  bool overload_signal(std::string_view topic, std::string_view payload) {
    if (topic == probe_topic) {
      std::uint64_t seq = 0;
      for (char c : payload) {
        if (c < '0' || c > '9') return true;
        seq = seq * 10 + static_cast<std::uint64_t>(c - '0');
      }
      // In order on one connection: earlier outstanding probes were lost on the way.
      while (!probes_out.empty() && probes_out.front().first < seq) {
        ++probes_lost;
        probes_out.pop_front();
      }
      if (!probes_out.empty() && probes_out.front().first == seq) probes_out.pop_front();
      return true;
    }
    if (topic == kDroppedTopic) {
      try {
        broker_dropped = std::stoull(std::string(payload));
      } catch (const std::exception&) {
      }
      return true;
    }
    return false;
  }

  void send_probe(MonoTime now) {
    if (!ingest_up() || now < next_probe) return;
    next_probe = now + kProbeInterval;
    try {
      client->publish(probe_topic, std::to_string(++probe_seq), 0, false);
      probes_out.emplace_back(probe_seq, now);
    } catch (const mqtt::exception&) {
      // Not connected after all: the connection-lost path reports it.
    }
  }

  // Sample the overload signals for this batch and tell the engine when presenced falls behind
  // or catches up, before the batch's events and the tick: an OverloadBegan gates silence before
  // the engine catches up the time it did not observe.
  void check_overload(server::Batch& b) {
    const MonoTime now = b.now;
    core::OverloadSample s;
    const auto steady = std::chrono::steady_clock::now();
    std::optional<std::chrono::steady_clock::time_point> oldest;
    for (const auto& in : batch) {
      if (in.type != Inbound::Type::Message) continue;
      oldest = in.received;
      break;
    }
    std::size_t depth = batch.size();
    for (const auto& c : bulk_batch) {
      depth += c.messages.size();
      if (c.kind == BulkChunk::Kind::Messages && (!oldest || c.received < *oldest)) oldest = c.received;
    }
    if (oldest) s.lag = std::chrono::duration_cast<Duration>(steady - *oldest);  // the oldest
    s.inbox_depth = depth;
    if (last_batch_now != MonoTime{}) s.stall = now - last_batch_now;
    last_batch_now = now;
    s.broker_dropped = broker_dropped;
    if (!ingest_up()) probes_out.clear();  // blind covers a lost connection
    while (!probes_out.empty() && now - probes_out.front().second > opt.overload.lag_limit) {
      ++probes_lost;
      probes_out.pop_front();
    }
    s.probes_lost = probes_lost;
    local.ingest_lag_seconds = static_cast<double>(s.lag.count()) / 1000.0;
    local.probes_lost_total = probes_lost;
    if (broker_dropped) local.broker_dropped = *broker_dropped;
    const auto change = overload.observe(now, s);
    local.overloaded = overload.overloaded();
    local.overloaded_why = overload.overloaded() ? overload.why() : std::string();
    local.overloads_total = overload.episodes();
    if (!change) return;
    core::Event e;
    e.at = now;
    if (*change) {
      overload_since = now;
      e.kind = core::EventKind::OverloadBegan;
      log(LogLevel::Warn, "overload: presenced is behind (" + overload.why() +
                              "); no device is judged offline on silence until it catches up");
    } else {
      e.kind = core::EventKind::OverloadEnded;
      log(LogLevel::Warn,
          "overload: caught up after " +
              std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - overload_since)
                                 .count()) +
              " s; silence is judged again, counted from now");
    }
    b.feed(e);
  }

  // "mqtt.out": the retained output of what changed.
  void put_output(server::Batch& b) {
    mark(b);
    publish(b.now);
    update_stats();
  }

  // An EMQX fetch in flight is cancelled (its abort flag is polled every ~20 ms) and joined.
  void stop_emqx() {
    emqx_abort = true;
    if (emqx_thread.joinable()) emqx_thread.join();
  }

  void shutdown() {
    stop_emqx();
    if (bulk) bulk->stop();  // bounded: shutdown() of its socket wakes its recv()
    // Every wait here is bounded and they share one budget (issue 19 item 2: SIGTERM to
    // presenced and its broker at the same moment left presenced in an unbounded
    // disconnect()->wait() for over a minute; Paho never completes a token whose connection died
    // under it). With the broker gone, presenced exits within kShutdownBudget plus the final
    // snapshot.
    const auto deadline = std::chrono::steady_clock::now() + kShutdownBudget;
    auto left = [&] {
      return std::max(std::chrono::steady_clock::duration::zero(),
                      deadline - std::chrono::steady_clock::now());
    };
    // Final flush (issue 3: SIGTERM stops cleanly): what consumers see retained must be the
    // last state we knew, not a rate-limited leftover.
    if (conn == Conn::Up) {
      bool fleet = false;
      std::vector<core::DeviceIndex> devices;
      queue.take_all(fleet, devices, /*background=*/false);
      if (publish_gate && !publishing) {  // an HA follower's flush is its service topic only
        fleet = false;
        devices.clear();
      }
      mqtt::delivery_token_ptr last;
      try {
        if (fleet) last = send_fleet();
        for (const auto d : devices) last = send_device(d);
        last = client->publish(opt.output.service_topic, service_payload("offline"),
                               opt.output.qos, true);
        // Most of the budget: the flush is what consumers will see.
        if (last && !last->wait_for(std::chrono::duration_cast<std::chrono::milliseconds>(
                        left() * 2 / 3)))
          log(LogLevel::Warn, "mqtt: final flush not acknowledged in time, stopping anyway");
      } catch (const mqtt::exception& e) {
        log(LogLevel::Warn, std::string("mqtt: final flush incomplete: ") + e.what());
      }
      log(LogLevel::Info, "output: final flush of " + std::to_string(devices.size()) +
                              " device(s) done" +
                              (queue.pending_background() > 0
                                   ? "; " + std::to_string(queue.pending_background()) +
                                         " first state(s)/restatement(s) left to the next "
                                         "start, which restates every device"
                                   : std::string()));
    }
    try {
      if (client && client->is_connected()) {
        const auto budget = std::max(std::chrono::milliseconds(100),
                                     std::chrono::duration_cast<std::chrono::milliseconds>(left()));
        if (!client->disconnect(static_cast<int>(budget.count()))->wait_for(budget))
          log(LogLevel::Warn, "mqtt: disconnect not acknowledged in time, stopping anyway");
      }
    } catch (const mqtt::exception& e) {
      log(LogLevel::Warn, std::string("mqtt: disconnect: ") + e.what());
    }
    local.broker_connected = false;
    std::lock_guard<std::mutex> lock(stats_mu);
    shared = local;
  }
};

MqttLink::MqttLink(MqttLinkOptions options, server::Loop& loop)
    : impl_(std::make_unique<Impl>(std::move(options), loop)) {}

MqttLink::~MqttLink() {
  impl_->stop_emqx();
  if (impl_->bulk) impl_->bulk->stop();
}

server::Step MqttLink::input_step() {
  server::Step s;
  s.name = "mqtt.in";
  s.start = [impl = impl_.get()](core::Engine&, MonoTime) { impl->restore_device_classes(); };
  s.run = [impl = impl_.get()](server::Batch& b) { impl->take_input(b); };
  return s;
}

server::Step MqttLink::output_step() {
  server::Step s;
  s.name = "mqtt.out";
  s.run = [impl = impl_.get()](server::Batch& b) { impl->put_output(b); };
  s.stop = [impl = impl_.get()](core::Engine&, MonoTime) { impl->shutdown(); };
  return s;
}

void MqttLink::start() {
  if (impl_->client) return;
  impl_->plan_bulk_reader();
  impl_->make_client();
  if (impl_->bulk) impl_->bulk->start();
}

MqttStats MqttLink::stats() const {
  std::lock_guard<std::mutex> lock(impl_->stats_mu);
  return impl_->shared;
}

HygieneReport MqttLink::hygiene_report(std::size_t limit) const {
  const Impl& im = *impl_;
  HygieneRules rules;
  rules.core = im.engine.config();
  rules.status_patterns = rules.heartbeat_patterns = false;
  for (const auto& p : im.matcher.patterns()) {
    rules.status_patterns |= p.kind() == TopicKind::Status;
    rules.heartbeat_patterns |= p.kind() == TopicKind::Heartbeat;
  }
  for (const auto& src : im.sources.sources) rules.source_names.push_back(src.name);
  return im.hygiene.analyze(rules, core::mono_now(), limit);
}

void MqttLink::set_incidents_open(std::function<std::uint32_t()> incidents_open) {
  impl_->incidents_open = std::move(incidents_open);
}

void MqttLink::set_parents(Parents parents) { impl_->parents = std::move(parents); }

void MqttLink::set_role(std::function<const char*()> role) { impl_->role = std::move(role); }

void MqttLink::set_publish_gate(std::function<bool()> may_publish) {
  impl_->publish_gate = std::move(may_publish);
  // Until the gate first answers, publish nothing (an HA instance starts as a follower).
  impl_->publishing = impl_->publish_gate == nullptr;
}

void MqttLink::set_publish_limits(double max_messages_per_second,
                                  core::Duration coalesce_interval) {
  Inbound in;
  in.type = Inbound::Type::SetRate;
  in.rate = max_messages_per_second;
  in.interval = coalesce_interval;
  impl_->push(std::move(in));
}

}  // namespace presence::ingest
