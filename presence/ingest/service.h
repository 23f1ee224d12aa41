// The running service: one MQTT connection in (Paho), one engine thread, retained JSON out.
//
// Threading (issue 3): Paho callbacks only push into a queue. ONE engine thread drains it in
// batches, reads steady_clock once per batch (STYLE.md habit 3), feeds Engine::on_event/tick,
// drains transitions and publishes. Other threads see only stats() snapshots.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "presence/core/config.h"
#include "presence/core/engine.h"
#include "presence/core/overload.h"
#include "presence/ingest/payload.h"
#include "presence/ingest/source.h"
#include "presence/ingest/topic_pattern.h"

namespace presence::ingest {

struct MqttOptions {
  // tcp://host:port, ssl://host:port (mqtt:// and mqtts:// are accepted as aliases).
  std::string uri = "tcp://127.0.0.1:1883";
  std::string client_id = "presenced";
  int version = 4;              // 4 = MQTT 3.1.1, 5 = MQTT 5
  bool clean_session = true;    // false = persistent session (QoS 1 backlog kept while away)
  std::uint32_t session_expiry_seconds = 0;  // MQTT 5 persistent session lifetime
  std::chrono::seconds keepalive{30};
  std::string username;
  std::string password;
  // TLS is on for ssl:// and mqtts:// URIs.
  std::string tls_ca_file;    // empty = system trust store
  bool tls_verify = true;       // verify the broker certificate and host name
  std::string tls_cert_file;    // client certificate (mTLS), optional
  std::string tls_key_file;
  int qos = 1;                  // subscription QoS
  // Reconnect: exponential backoff from reconnect_min to reconnect_max, each delay scaled by a
  // random factor in [1 - reconnect_jitter, 1 + reconnect_jitter] so presenced replicas do not
  // reconnect in lockstep with each other or the fleet (post-mortem 000: reconnect storms).
  core::Duration reconnect_min{std::chrono::seconds(1)};
  core::Duration reconnect_max{std::chrono::seconds(30)};
  double reconnect_jitter = 0.2;
  bool operator==(const MqttOptions&) const = default;
};

struct TopicOptions {
  std::vector<std::string> status{"devices/{id}/status"};
  std::vector<std::string> heartbeat{"devices/{id}/heartbeat"};
  std::vector<std::string> emqx_connected{"$SYS/brokers/{node}/clients/{id}/connected"};
  std::vector<std::string> emqx_disconnected{"$SYS/brokers/{node}/clients/{id}/disconnected"};
  std::vector<std::string> broker_ext_boot{"$SYS/presence/{node}/boot"};
  std::vector<std::string> broker_ext_heartbeat{"$SYS/presence/{node}/heartbeat"};
  std::vector<std::string> broker_ext_connected{"$SYS/presence/{node}/clients/{id}/connected"};
  std::vector<std::string> broker_ext_disconnected{
      "$SYS/presence/{node}/clients/{id}/disconnected"};
  // broker-ext heartbeat aggregation (plugin_opt_heartbeat_topic): one message per second per
  // node listing the devices whose heartbeat the broker saw.
  std::vector<std::string> broker_ext_alive{"$SYS/presence/{node}/alive"};
  // broker-ext's reply to the client-list request presenced sends on every (re)connect
  // (issue 14: start-up reconciliation). Empty: no request is sent.
  std::vector<std::string> broker_ext_clients{"$SYS/presence/{node}/clients"};
  std::vector<std::string> uptime{"$SYS/broker/uptime"};
  bool operator==(const TopicOptions&) const = default;
};

struct OutputOptions {
  std::string device_prefix = "presence/devices";  // <device_prefix>/<id>
  std::string fleet_topic = "presence/fleet";
  std::string service_topic = "presence/service";  // presenced's own birth / last-will
  bool retain = true;
  int qos = 1;
  double max_messages_per_second = 1000;  // all output together; <= 0 = unlimited
  // A device (and the fleet summary) is published at most once per coalesce_interval; changes
  // inside it are coalesced, the latest state wins.
  core::Duration coalesce_interval{std::chrono::seconds(1)};
  bool operator==(const OutputOptions&) const = default;
};

struct ServiceOptions {
  MqttOptions mqtt;
  TopicOptions topics;
  ParseLimits limits;
  OutputOptions output;
  core::Config core;
  core::Duration tick_interval{std::chrono::milliseconds(100)};
  core::Duration log_rate_limit{std::chrono::seconds(10)};  // repeated errors: one line per key
  // Ids that are not devices (fnmatch globs; mqtt.client_id is always ignored): backend clients
  // that broker-ext / EMQX report like any other. Counted in ignored_ids_total.
  std::vector<std::string> ignore_ids;
  // Several inputs with their own conventions (issue 14, source.h); topics.status/heartbeat stay
  // source 0. device_classes: Service fills core.device_classes from them (and the presets').
  std::vector<SourceSpec> sources;
  std::vector<DeviceClassSpec> device_classes;
  // When presenced is behind, silence is not judged (issue 16, core/overload.h).
  core::OverloadConfig overload;
};

// Compiles the topic patterns; errors are "topics.<key>: <reason>".
bool compile_topics(const TopicOptions& topics, TopicMatcher& out, std::vector<std::string>& errors);
// The same plus the sources, in matching order (source.h); errors also "sources[i].<key>: ...".
bool compile_ingest(const TopicOptions& topics, const std::vector<SourceSpec>& sources,
                    const std::vector<DeviceClassSpec>& classes, TopicMatcher& out,
                    SourceTable& table, std::vector<std::string>& errors);

struct ServiceStats {
  std::array<std::size_t, 5> devices_by_state{};  // per core::State
  std::size_t devices = 0;
  std::array<std::uint64_t, 5> transitions_total{};  // per new core::State
  std::uint64_t mqtt_messages_total = 0;
  std::uint64_t ignored_ids_total = 0;  // messages about an id in ignore_ids
  std::uint64_t alive_heartbeats_total = 0;  // heartbeats received in broker-ext alive batches
  std::uint64_t reconciled_total = 0;  // devices reported connected by a client-list reply
  std::array<std::uint64_t, kParseErrorKinds> parse_errors_total{};  // per ParseError
  std::uint64_t published_total = 0;
  std::size_t publish_pending = 0;
  std::size_t publish_pending_background = 0;  // of which first states of new devices
  std::uint64_t transition_lines_suppressed_total = 0;  // device transition log lines left out
  // Refused by the engine's bounds (core::Config max_label_keys, max_label_values, max_devices).
  std::uint64_t label_keys_refused_total = 0;
  std::uint64_t label_values_refused_total = 0;
  std::uint64_t devices_refused_total = 0;
  // Expiry (presence.forget_after, forget_unconfirmed_after): devices forgotten, and retained
  // presence/devices/<id> topics cleared for them.
  std::uint64_t devices_forgotten_total = 0;
  std::uint64_t devices_cleared_total = 0;
  std::uint64_t broker_restarts_total = 0;
  std::uint64_t connects_total = 0;
  bool broker_connected = false;  // connected and subscribed
  bool blind = true;
  bool restart_grace = false;
  // Overload (issue 16): presenced is behind, no device is judged on silence (core/overload.h).
  bool overloaded = false;
  std::string overloaded_why;             // the signal that fired last
  std::uint64_t overloads_total = 0;      // episodes
  std::uint64_t probes_lost_total = 0;    // own probe messages lost or late
  std::uint64_t broker_dropped = 0;       // $SYS/broker/publish/messages/dropped, last value
  double ingest_lag_seconds = 0;          // oldest message of the last batch, at engine time
  bool running = false;
};

// The app's wiring (alerts, snapshots: presence/app/alerting.h) plugs in here. Every call is on
// the engine thread, so a hook may use the engine freely but must never block on I/O.
class EngineHooks {
 public:
  virtual ~EngineHooks() = default;
  // Before the first event (restore a snapshot, set the engine's observer).
  virtual void on_start(core::Engine& /*engine*/, core::MonoTime /*now*/) {}
  // After each device event was fed (naive mode sees every raw status, not the debounced state).
  virtual void on_event(core::Engine& /*engine*/, const core::Event& /*event*/) {}
  // After each batch: events fed, engine ticked, transitions drained. Same now as the batch.
  virtual void after_batch(core::Engine& /*engine*/, core::MonoTime /*now*/) {}
  // Fleet incidents not closed, for the retained presence/fleet message.
  virtual std::uint32_t incidents_open() const { return 0; }
  // At stop, after the last batch (final snapshot).
  virtual void on_stop(core::Engine& /*engine*/, core::MonoTime /*now*/) {}
};

class Service {
 public:
  // Throws std::invalid_argument if the options do not compile (validate config first).
  explicit Service(ServiceOptions options);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Before start(); non-owning, must outlive the service.
  void set_hooks(EngineHooks* hooks);
  void start();
  // Stops ingest, publishes everything pending (bounded wait), disconnects cleanly.
  void stop();

  ServiceStats stats() const;

  // The /v1 API (issue 7) reads the engine only on its own thread: task runs there after the
  // current batch. False (task dropped, not run) when the service is not running.
  using EngineTask = std::function<void(core::Engine&)>;
  bool post(EngineTask task);
  // Before start(): called on the engine thread after each batch with the transitions it drained
  // (possibly none) and the batch's now; must not block (presence/ingest/api_backend.h).
  using TransitionsHook = std::function<void(const core::Engine&,
                                             const std::vector<core::Transition>&, core::MonoTime)>;
  void set_transitions_hook(TransitionsHook hook);
  // Before start(), optional (HA, issue 13; docs/ha.md): asked on the engine thread once per
  // batch, must not block. While false the retained device and fleet output is not published
  // (the service topic still is); when it turns true every device and the fleet are restated.
  void set_publish_gate(std::function<bool()> may_publish);
  // What SIGHUP can change without a restart.
  void set_publish_limits(double max_messages_per_second, core::Duration coalesce_interval);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace presence::ingest
