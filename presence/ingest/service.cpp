#include "presence/ingest/service.h"

#include <fnmatch.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>
#include <utility>

#include <mqtt/async_client.h>
#include <nlohmann/json.hpp>

#include "presence/core/engine.h"
#include "presence/ingest/blind_spots.h"
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

bool compile_topics(const TopicOptions& topics, TopicMatcher& out,
                    std::vector<std::string>& errors) {
  SourceTable table;
  return compile_ingest(topics, {}, {}, out, table, errors);
}

bool compile_ingest(const TopicOptions& topics, const std::vector<SourceSpec>& sources,
                    const std::vector<DeviceClassSpec>& classes, TopicMatcher& out,
                    SourceTable& source_table, std::vector<std::string>& errors) {
  const std::pair<const char*, std::pair<TopicKind, const std::vector<std::string>*>> table[] = {
      {"status", {TopicKind::Status, &topics.status}},
      {"heartbeat", {TopicKind::Heartbeat, &topics.heartbeat}},
      {"emqx_connected", {TopicKind::EmqxConnected, &topics.emqx_connected}},
      {"emqx_disconnected", {TopicKind::EmqxDisconnected, &topics.emqx_disconnected}},
      {"broker_ext_boot", {TopicKind::BrokerExtBoot, &topics.broker_ext_boot}},
      {"broker_ext_heartbeat", {TopicKind::BrokerExtHeartbeat, &topics.broker_ext_heartbeat}},
      {"broker_ext_connected", {TopicKind::BrokerExtConnected, &topics.broker_ext_connected}},
      {"broker_ext_disconnected",
       {TopicKind::BrokerExtDisconnected, &topics.broker_ext_disconnected}},
      {"broker_ext_alive", {TopicKind::BrokerExtAlive, &topics.broker_ext_alive}},
      {"broker_ext_clients", {TopicKind::BrokerExtClients, &topics.broker_ext_clients}},
      {"uptime", {TopicKind::Uptime, &topics.uptime}},
  };
  std::vector<TopicPattern> patterns;
  const std::size_t before = errors.size();
  for (const auto& [key, entry] : table) {
    for (const auto& text : *entry.second) {
      std::string error;
      auto p = TopicPattern::compile(entry.first, text, &error);
      if (!p) {
        errors.push_back(std::string("topics.") + key + ": " + error);
        continue;
      }
      patterns.push_back(std::move(*p));
    }
  }
  // Sources (issue 14): every status first, then ignores, then heartbeats, then the broker's
  // topics, so a source's catch-all heartbeat ("zigbee2mqtt/{id+}") never claims a status topic.
  std::vector<TopicPattern> status, ignore, heartbeat;
  compile_sources(sources, classes, source_table, status, ignore, heartbeat, errors);
  auto first_non = [&](TopicKind kind) {
    return std::find_if(patterns.begin(), patterns.end(),
                        [&](const TopicPattern& p) { return p.kind() != kind; });
  };
  {
    auto it = patterns.insert(first_non(TopicKind::Status), status.begin(), status.end());
    it += static_cast<std::ptrdiff_t>(status.size());
    it = patterns.insert(it, ignore.begin(), ignore.end());
    it += static_cast<std::ptrdiff_t>(ignore.size());
    while (it != patterns.end() && it->kind() == TopicKind::Heartbeat) ++it;
    patterns.insert(it, heartbeat.begin(), heartbeat.end());
  }
  if (patterns.empty()) errors.emplace_back("topics: no topic pattern configured");
  if (errors.size() != before) return false;
  out = TopicMatcher(std::move(patterns));
  return true;
}

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
    Task,  // Service::post: run on the engine thread after the batch
  };
  Type type = Type::Message;
  std::string topic;
  std::string payload;
  bool retained = false;
  bool session_present = false;
  std::string detail;
  double rate = 0;
  Duration interval{0};
  Service::EngineTask task;
};

class Listener : public mqtt::iaction_listener {
 public:
  std::function<void(const mqtt::token&)> ok;
  std::function<void(const mqtt::token&)> failed;
  void on_success(const mqtt::token& t) override { ok(t); }
  void on_failure(const mqtt::token& t) override { failed(t); }
};

}  // namespace

// Device transition lines at info level: a steady 20 a second with bursts of 200 (a site going
// down is logged whole); beyond that they are counted and summarised (issue 19 item 9).
constexpr double kTransitionLinesPerSecond = 20;
constexpr double kTransitionLinesBurst = 200;
// Final flush plus disconnect at stop, all waits together (issue 19 item 2: every exit <= 5 s).
constexpr std::chrono::seconds kShutdownBudget{3};
// Longer than Paho's own connect timeout (10 s) so Paho normally reports first.
constexpr Duration kHandshakeTimeout{std::chrono::seconds(15)};
// The engine thread wakes at most once per kBatchWindow while messages keep coming (issue 6:
// presenced must cost less CPU per message than the broker). 1 ms is nothing against presence
// windows of seconds, and bounds wake-ups to 1,000/s at any message rate.
constexpr std::chrono::microseconds kBatchWindow{1000};

// The device classes the engine needs: the configured ones and those the sources' presets name.
static ServiceOptions with_device_classes(ServiceOptions o) {
  o.device_classes = effective_device_classes(o.sources, o.device_classes);
  o.core.device_classes.clear();
  for (const auto& c : o.device_classes) o.core.device_classes.push_back(c.timeouts);
  return o;
}

struct Service::Impl {
  ServiceOptions opt;
  TopicMatcher matcher;
  SourceTable sources;
  core::Engine engine;
  EngineHooks* hooks = nullptr;
  WallAnchor anchor;
  PublishQueue queue;
  BlindSpots blind_spots;
  mutable RateLimitedLog rlog;

  std::unique_ptr<mqtt::async_client> client;
  Listener connect_listener;
  Listener subscribe_listener;

  std::mutex in_mu;
  std::condition_variable in_cv;
  std::vector<Inbound> inbox;
  bool stopping = false;
  std::thread thread;
  bool accepting_tasks = false;  // under in_mu: Service::post takes tasks
  Service::TransitionsHook transitions_hook;
  // HA (issue 13): only the pair's leader publishes the retained output. Unset = always.
  std::function<bool()> publish_gate;
  bool publishing = true;
  std::vector<Service::EngineTask> tasks;
  bool running = false;

  // Engine-thread state.
  enum class Conn : std::uint8_t { Idle, Connecting, Subscribing, Up };
  Conn conn = Conn::Idle;
  MonoTime next_connect{};
  MonoTime state_since{};  // when conn last changed (watchdog for a connect/subscribe that hangs)
  Duration backoff{};
  std::mt19937_64 rng{std::random_device{}()};
  std::vector<core::Transition> transitions;
  static constexpr std::size_t kClearsPerPublish = 1000;
  std::vector<std::string> forgotten;
  std::deque<std::string> clears;  // retained topics of forgotten devices still to clear
  LineBudget transition_lines{kTransitionLinesPerSecond, kTransitionLinesBurst};
  std::chrono::steady_clock::time_point last_transition_summary{};
  FleetStatus last_fleet{};
  bool fleet_known = false;
  MonoTime last_fleet_publish{};
  ServiceStats local;

  mutable std::mutex stats_mu;
  ServiceStats shared;

  explicit Impl(ServiceOptions o)
      : opt(with_device_classes(std::move(o))),
        engine(opt.core),
        queue(opt.output.max_messages_per_second, opt.output.coalesce_interval),
        blind_spots(/*persistent_session=*/!opt.mqtt.clean_session),
        rlog(opt.log_rate_limit) {
    std::vector<std::string> errors;
    if (!compile_ingest(opt.topics, opt.sources, opt.device_classes, matcher, sources, errors)) {
      std::string all;
      for (const auto& e : errors) all += e + "; ";
      throw std::invalid_argument(all);
    }
    anchor.mono = mono_now();
    anchor.wall = std::chrono::system_clock::now();
    backoff = opt.mqtt.reconnect_min;
    local.blind = true;
  }

  void push(Inbound in) {
    bool was_empty = false;
    {
      std::lock_guard<std::mutex> lock(in_mu);
      was_empty = inbox.empty();
      inbox.push_back(std::move(in));
    }
    // Only the push that makes the inbox non-empty wakes the engine thread: it takes the whole
    // inbox under the same mutex, so later pushes are in that batch or find it empty again.
    // A futex wake per message was the largest single cost of ingest (docs/benchmarks.md,
    // "End to end": ~30 % of presenced's CPU at 30k msg/s).
    if (was_empty) in_cv.notify_one();
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
    return j.dump();
  }

  void make_client() {
    build_connect_options();
    // Paho refuses publishes beyond max_buffered_messages (default 100) queued in the client;
    // our own token bucket is the limit that matters, so allow a few seconds' worth.
    const int buffered = static_cast<int>(std::clamp(
        opt.output.max_messages_per_second > 0 ? opt.output.max_messages_per_second * 4 : 100000.0,
        1000.0, 1000000.0));
    mqtt::create_options create(opt.mqtt.version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1,
                                buffered);
    client = std::make_unique<mqtt::async_client>(server_uri(), opt.mqtt.client_id, create,
                                                  nullptr);
    client->set_message_callback([this](mqtt::const_message_ptr m) {
      Inbound in;
      in.type = Inbound::Type::Message;
      in.topic = m->get_topic();
      in.payload = m->get_payload_str();
      in.retained = m->is_retained();
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
    b.set_mqtt_version(opt.mqtt.version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1);
    if (opt.mqtt.version == 5) {
      b.set_clean_start(opt.mqtt.clean_session);
      if (!opt.mqtt.clean_session && opt.mqtt.session_expiry_seconds > 0) {
        b.set_properties(mqtt::properties{
            {mqtt::property::SESSION_EXPIRY_INTERVAL,
             static_cast<int>(opt.mqtt.session_expiry_seconds)}});
      }
    } else {
      b.set_clean_session(opt.mqtt.clean_session);
    }
    b.set_keep_alive_interval(opt.mqtt.keepalive);
    b.set_connect_timeout(std::chrono::seconds(10));
    b.set_max_inflight(1000);
    if (!opt.mqtt.username.empty()) b.set_user_name(opt.mqtt.username);
    if (!opt.mqtt.password.empty()) b.set_password(opt.mqtt.password);
    if (tls()) {
      // Set on a plain object (no builder temporary, see conn_opts). No TLS error callback:
      // Paho keeps a raw pointer to the options object for it, and a failed handshake is
      // reported through the connect failure anyway.
      mqtt::ssl_options tls;
      if (!opt.mqtt.tls_ca_file.empty()) tls.set_trust_store(opt.mqtt.tls_ca_file);
      tls.set_enable_server_cert_auth(opt.mqtt.tls_verify);
      tls.set_verify(opt.mqtt.tls_verify);
      if (!opt.mqtt.tls_cert_file.empty()) tls.set_key_store(opt.mqtt.tls_cert_file);
      if (!opt.mqtt.tls_key_file.empty()) tls.set_private_key(opt.mqtt.tls_key_file);
      b.set_ssl(std::move(tls));
    }
    // presenced's own presence: consumers of presence/devices/# can tell a stale view.
    b.set_will_message(mqtt::message(opt.output.service_topic, service_payload("offline"),
                                     opt.output.qos, true));
  }

  // ---- connection state machine (engine thread) ----

  void schedule_reconnect(MonoTime now) {
    conn = Conn::Idle;
    const double j = std::clamp(opt.mqtt.reconnect_jitter, 0.0, 1.0);
    std::uniform_real_distribution<double> factor(1.0 - j, 1.0 + j);
    next_connect = now + Duration(static_cast<std::int64_t>(
                             static_cast<double>(backoff.count()) * factor(rng)));
    backoff = std::min(opt.mqtt.reconnect_max, backoff * 2);
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
    if (conn != Conn::Idle || now < next_connect) return;
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
  void feed(const BlindSpots::Kinds& kinds, MonoTime now) {
    for (const auto kind : kinds) {
      if (kind == core::EventKind::BrokerRestarted) {
        local.broker_restarts_total = blind_spots.restarts();
        log(LogLevel::Warn, "broker restart detected (" + blind_spots.last_reason() + ")");
      }
      core::Event e;
      e.kind = kind;
      e.at = now;
      engine.on_event(e);
      if (hooks) hooks->on_event(engine, e);  // alerting notes a broker restart (issue 18)
    }
  }

  void on_subscribed(MonoTime now) {
    conn = Conn::Up;
    backoff = opt.mqtt.reconnect_min;
    log(LogLevel::Info, "mqtt: connected to " + server_uri() + " and subscribed (" +
                            std::to_string(matcher.filters().size()) + " filters)");
    // We can see again. What happened while we were blind is unknown: the engine holds
    // judgement for restart grace (incident 002: a presence-service restart must not turn
    // into a wave of false offlines).
    feed(blind_spots.subscribed(), now);
    publish_service_online();
    request_client_list();
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
    if (id == opt.mqtt.client_id) return core::kNoDevice;
    for (const auto& glob : opt.ignore_ids) {
      if (::fnmatch(glob.c_str(), id.c_str(), 0) == 0) {
        ++local.ignored_ids_total;
        return core::kNoDevice;
      }
    }
    return engine.intern(id);  // ids are bounded by ParseLimits first; kNoDevice is belt and braces
  }

  void handle_message(const Inbound& in, MonoTime now) {
    // Paho may hand us the first messages (retained replays right after the SUBACK, or a
    // persistent session's backlog) before the subscribe's success callback. We are receiving,
    // so we are subscribed: restore first, so the engine judges replays inside restart grace.
    if (conn == Conn::Subscribing) on_subscribed(now);
    ++local.mqtt_messages_total;
    Parsed p = parse_message(matcher, in.topic, in.payload, in.retained, opt.limits, &sources);
    if (p.error != ParseError::None) {
      ++local.parse_errors_total[static_cast<std::size_t>(p.error)];
      std::string topic = in.topic.substr(0, 200);
      rlog.log(LogLevel::Warn, std::string("parse:") + to_string(p.error),
               std::string("ingest: ") + to_string(p.error) + " on '" + topic + "' (" +
                   std::to_string(in.payload.size()) + " bytes)" +
                   (p.what == Parsed::What::Reject ? ", message dropped" : ", message kept"));
    }
    switch (p.what) {
      case Parsed::What::Ignore:
      case Parsed::What::Reject:
        return;
      case Parsed::What::BrokerBoot:
        feed(blind_spots.boot(p.node, p.boot), now);
        return;
      case Parsed::What::BrokerUptime:
        feed(blind_spots.uptime(p.node, p.uptime_seconds), now);
        return;
      case Parsed::What::AliveBatch:
        // One message per second per broker node instead of one per heartbeat: the broker
        // aggregated them (broker-ext heartbeat_topic; Paho's per-message receive cost was most
        // of presenced's CPU, docs/benchmarks.md "End to end").
        if (!p.boot.empty()) feed(blind_spots.boot(p.node, p.boot), now);
        for (const auto& id : p.ids) {
          const core::DeviceIndex dev = device_of(id);
          if (dev == core::kNoDevice) continue;
          core::Event e;
          e.kind = core::EventKind::Heartbeat;
          e.source = core::Source::Heartbeat;
          e.device = dev;
          e.at = now;
          engine.on_event(e);
          if (hooks) hooks->on_event(engine, e);
          ++local.alive_heartbeats_total;
        }
        return;
      case Parsed::What::ClientList:
        if (!p.boot.empty()) feed(blind_spots.boot(p.node, p.boot), now);
        for (std::size_t i = 0; i < p.ids.size(); ++i) {
          const core::DeviceIndex dev = device_of(p.ids[i]);
          if (dev == core::kNoDevice) continue;
          core::Event e;
          e.kind = core::EventKind::Connected;
          e.source = core::Source::BrokerExt;
          e.device = dev;
          e.session = blind_spots.session(p.node, p.sessions[i]);
          e.at = now;
          engine.on_event(e);
          if (hooks) hooks->on_event(engine, e);
          ++local.reconciled_total;
        }
        return;
      case Parsed::What::DeviceResync:
      case Parsed::What::DeviceEvent:
        break;
    }
    if (!p.boot.empty()) feed(blind_spots.boot(p.node, p.boot), now);
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
    e.at = now;
    engine.on_event(e);
    if (hooks) hooks->on_event(engine, e);
  }

  void handle(const Inbound& in, MonoTime now) {
    switch (in.type) {
      case Inbound::Type::Message:
        handle_message(in, now);
        break;
      case Inbound::Type::ConnectOk: {
        ++local.connects_total;
        blind_spots.connack(in.session_present);
        conn = Conn::Subscribing;
        state_since = now;
        log(LogLevel::Debug, std::string("mqtt: connected (session present: ") +
                                 (in.session_present ? "yes" : "no") + "), subscribing");
        const auto filters = matcher.filters();
        auto coll = mqtt::string_collection::create(filters);
        mqtt::iasync_client::qos_collection qos(filters.size(), opt.mqtt.qos);
        try {
          client->subscribe(coll, qos, nullptr, subscribe_listener);
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
        if (conn == Conn::Subscribing) on_subscribed(now);
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
        feed(blind_spots.connection_lost(), now);
        backoff = opt.mqtt.reconnect_min;
        schedule_reconnect(now);
        break;
      case Inbound::Type::ServerShutdown:
        blind_spots.server_shutting_down();
        break;
      case Inbound::Type::Task:
        tasks.push_back(in.task);
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
      client->publish("$CONTROL/presence/v1/clients", std::string(R"({"v":1})"), 1, false);
    } catch (const mqtt::exception& e) {
      rlog.log(LogLevel::Warn, "publish", std::string("mqtt: client-list request failed: ") + e.what());
    }
  }

  void publish_service_online() {
    try {
      client->publish(opt.output.service_topic, service_payload("online"), opt.output.qos, true);
    } catch (const mqtt::exception& e) {
      rlog.log(LogLevel::Warn, "publish", std::string("mqtt: publish failed: ") + e.what());
    }
  }

  FleetStatus fleet_status() const {
    FleetStatus f;
    f.counts = engine.counts();
    f.devices = engine.device_count();
    f.broker_connected = conn == Conn::Up;
    f.blind = engine.blind();
    f.restart_grace = engine.in_restart_grace();
    if (hooks) f.incidents_open = hooks->incidents_open();
    return f;
  }

  mqtt::delivery_token_ptr send_device(core::DeviceIndex d) {
    const core::DeviceView view = engine.view(d);
    if (view.id.empty()) return {};  // forgotten since it was queued: its topic is cleared below
    std::string payload = device_json(view, engine.labels(d), anchor);
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

  void drain_transitions(MonoTime now) {
    transitions.clear();
    engine.drain(transitions);
    forgotten.clear();
    engine.drain_forgotten(forgotten);
    if (opt.output.retain)
      for (auto& id : forgotten) clears.push_back(std::move(id));
    const auto wall = std::chrono::steady_clock::now();
    const bool debug = log_level() == LogLevel::Debug;  // the operator asked for every line
    for (const auto& t : transitions) {
      ++local.transitions_total[static_cast<std::size_t>(t.to)];
      // A device's first state waits behind real changes of known devices (issue 19 item 9).
      queue.mark(t.device, now, /*background=*/t.from == core::State::Unknown);
      if (!debug && !transition_lines.take(wall)) continue;
      std::string line = "device " + std::string(engine.id_of(t.device)) + ": " +
                         core::to_string(t.from) + " -> " + core::to_string(t.to) + " (" +
                         core::to_string(t.cause);
      if (t.cause == core::Cause::Disconnected)
        line += std::string(", ") + core::to_string(t.disconnect_reason);
      log(LogLevel::Info, line + ")");
    }
    // What was left out is said in one line per log.rate_limit, and counted in /metrics.
    if (wall - last_transition_summary >= opt.log_rate_limit) {
      if (const auto n = transition_lines.take_suppressed(); n > 0) {
        log(LogLevel::Info, std::to_string(n) + " device transition line(s) not logged (more than " +
                                std::to_string(static_cast<int>(kTransitionLinesPerSecond)) +
                                "/s); every transition is counted in presence_transitions_total");
        last_transition_summary = wall;
      }
    }
    local.transition_lines_suppressed_total = transition_lines.suppressed_total();
  }

  // Bounds reached (issue 19 items 3 and 9): counted always, said once per log.rate_limit.
  void note_refusals() {
    const core::EngineCounters c = engine.counters();
    if (c.label_keys_refused > local.label_keys_refused_total)
      rlog.log(LogLevel::Warn, "bound:label_keys",
               "labels: label refused, more than presence.max_label_keys (" +
                   std::to_string(opt.core.max_label_keys) +
                   ") distinct keys; the device keeps its other labels (" +
                   std::to_string(c.label_keys_refused) + " refused so far)");
    if (c.label_values_refused > local.label_values_refused_total)
      rlog.log(LogLevel::Warn, "bound:label_values",
               "labels: label refused, more than presence.max_label_values (" +
                   std::to_string(opt.core.max_label_values) +
                   ") distinct key=value pairs; the device keeps its other labels (" +
                   std::to_string(c.label_values_refused) + " refused so far)");
    if (c.devices_refused > local.devices_refused_total)
      rlog.log(LogLevel::Warn, "bound:devices",
               "devices: message about a new id dropped, presence.max_devices (" +
                   std::to_string(opt.core.max_devices) + ") reached (" +
                   std::to_string(c.devices_refused) + " refused so far)");
    local.label_keys_refused_total = c.label_keys_refused;
    local.label_values_refused_total = c.label_values_refused;
    local.devices_refused_total = c.devices_refused;
    local.devices_forgotten_total = c.devices_forgotten;
  }

  void update_stats() {
    note_refusals();
    local.devices_by_state = engine.counts();
    local.devices = engine.device_count();
    local.publish_pending = queue.pending();
    local.publish_pending_background = queue.pending_background();
    local.broker_connected = conn == Conn::Up;
    local.blind = conn != Conn::Up || engine.blind();
    local.restart_grace = engine.in_restart_grace();
    local.running = true;
    std::lock_guard<std::mutex> lock(stats_mu);
    shared = local;
  }

  void run() {
    std::vector<Inbound> batch;
    if (hooks) hooks->on_start(engine, mono_now());
    restore_device_classes();
    auto last_batch = std::chrono::steady_clock::now() - kBatchWindow;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(in_mu);
        in_cv.wait_for(lock, opt.tick_interval, [&] { return !inbox.empty() || stopping; });
        if (stopping) break;
      }
      // Under sustained traffic, collect at least kBatchWindow of messages per batch instead of
      // waking for each one; a message after a quiet spell is handled at once.
      if (std::chrono::steady_clock::now() - last_batch < kBatchWindow)
        std::this_thread::sleep_until(last_batch + kBatchWindow);
      {
        std::lock_guard<std::mutex> lock(in_mu);
        if (stopping) break;
        batch.swap(inbox);
      }
      last_batch = std::chrono::steady_clock::now();
      // One "now" per batch (STYLE.md habit 3): every event in it and the tick share it.
      const MonoTime now = mono_now();
      for (const auto& in : batch) handle(in, now);
      batch.clear();
      maybe_connect(now);
      engine.tick(now);
      drain_transitions(now);
      if (hooks) hooks->after_batch(engine, now);
      if (transitions_hook) transitions_hook(engine, transitions, now);
      for (auto& task : tasks) task(engine);
      tasks.clear();
      publish(now);
      update_stats();
    }
    if (hooks) hooks->on_stop(engine, mono_now());
    shutdown();
  }

  void shutdown() {
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
      queue.take_all(fleet, devices);
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
                              " device(s) done");
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
    local.running = false;
    local.broker_connected = false;
    std::lock_guard<std::mutex> lock(stats_mu);
    shared = local;
  }
};

Service::Service(ServiceOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Service::~Service() { stop(); }

void Service::set_hooks(EngineHooks* hooks) { impl_->hooks = hooks; }

void Service::start() {
  if (impl_->running) return;
  impl_->make_client();
  impl_->running = true;
  {
    std::lock_guard<std::mutex> lock(impl_->in_mu);
    impl_->accepting_tasks = true;
  }
  impl_->thread = std::thread([this] { impl_->run(); });
}

void Service::stop() {
  if (!impl_->running) return;
  {
    std::lock_guard<std::mutex> lock(impl_->in_mu);
    impl_->stopping = true;
    impl_->accepting_tasks = false;
  }
  impl_->in_cv.notify_one();
  if (impl_->thread.joinable()) impl_->thread.join();
  {
    // Tasks that never ran: dropping them breaks their promises, so waiting callers return now.
    std::lock_guard<std::mutex> lock(impl_->in_mu);
    impl_->inbox.clear();
  }
  impl_->running = false;
}

ServiceStats Service::stats() const {
  std::lock_guard<std::mutex> lock(impl_->stats_mu);
  return impl_->shared;
}

bool Service::post(EngineTask task) {
  {
    std::lock_guard<std::mutex> lock(impl_->in_mu);
    if (!impl_->accepting_tasks) return false;
    Inbound in;
    in.type = Inbound::Type::Task;
    in.task = std::move(task);
    impl_->inbox.push_back(std::move(in));
  }
  impl_->in_cv.notify_one();
  return true;
}

void Service::set_publish_gate(std::function<bool()> may_publish) {
  impl_->publish_gate = std::move(may_publish);
  // Until the gate first answers, publish nothing (an HA instance starts as a follower).
  impl_->publishing = impl_->publish_gate == nullptr;
}

void Service::set_transitions_hook(TransitionsHook hook) {
  impl_->transitions_hook = std::move(hook);
}

void Service::set_publish_limits(double max_messages_per_second,
                                 core::Duration coalesce_interval) {
  Inbound in;
  in.type = Inbound::Type::SetRate;
  in.rate = max_messages_per_second;
  in.interval = coalesce_interval;
  impl_->push(std::move(in));
}

}  // namespace presence::ingest
