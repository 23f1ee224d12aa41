// The MQTT link (issue 12: "MQTT message -> event"): one Paho connection in, the translation of
// each message into core events (payload.h, topic_pattern.h, blind_spots.h: pure), and the
// retained JSON output. It runs as two steps of the server's loop (presence/server/loop.h):
// "mqtt.in" feeds the batch what Paho's threads queued, "mqtt.out" publishes what changed.
// Paho callbacks only push into the link's inbox and wake the loop.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "presence/core/overload.h"
#include "presence/core/config.h"
#include "presence/ingest/emqx_clients.h"
#include "presence/ingest/hygiene.h"
#include "presence/ingest/mqtt_config.h"
#include "presence/ingest/payload.h"
#include "presence/ingest/source.h"
#include "presence/ingest/topic_pattern.h"
#include "presence/ingest/topics.h"
#include "presence/server/loop.h"

namespace presence::ingest {

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

struct MqttLinkOptions {
  MqttConfig mqtt;  // the mqtt: section, as loaded (mqtt_config.h)
  TopicOptions topics;
  ParseLimits limits;
  OutputOptions output;
  core::Duration log_rate_limit{std::chrono::seconds(10)};  // repeated errors: one line per key
  // Ids that are not devices (fnmatch globs; mqtt.client_id is always ignored): backend clients
  // that broker-ext / EMQX report like any other. Counted in ignored_ids_total.
  std::vector<std::string> ignore_ids;
  // Several inputs with their own conventions (issue 14, source.h); topics.status/heartbeat stay
  // source 0. The engine's classes are engine_device_classes() of these.
  std::vector<SourceSpec> sources;
  std::vector<DeviceClassSpec> device_classes;
  // EMQX's clients REST API (emqx_clients.h): asked on every (re)connect, like broker-ext.
  EmqxApiOptions emqx_api;
  // Sparkplug B (issue 15, docs/sparkplug.md): subscribe to spBv1.0/# and read it with
  // sparkplug::Tracker (edge nodes, their devices, the primary host's STATE).
  SparkplugConfig sparkplug;  // mqtt_config.h
  // When presenced is behind, silence is not judged (issue 16, core/overload.h).
  core::OverloadConfig overload;
};

// The device classes the engine needs (core::Config::device_classes): the configured ones and
// those the sources' presets name, in the order the link numbers them.
std::vector<core::DeviceClass> engine_device_classes(const MqttLinkOptions& options);

struct MqttStats {
  std::uint64_t mqtt_messages_total = 0;
  std::uint64_t ignored_ids_total = 0;  // messages about an id in ignore_ids
  std::uint64_t alive_heartbeats_total = 0;  // heartbeats received in broker-ext alive batches
  std::uint64_t reconciled_total = 0;  // devices reported connected by a client-list reply
  std::uint64_t reconciled_emqx_total = 0;  // ... of which by EMQX's clients API
  std::uint64_t reconcile_requests_total = 0;  // client-list requests sent to broker-ext
  std::array<std::uint64_t, kEmqxFetchResults> emqx_fetches_total{};  // per EmqxFetchResult
  std::array<std::uint64_t, kParseErrorKinds> parse_errors_total{};  // per ParseError
  std::uint64_t published_total = 0;
  std::size_t publish_pending = 0;
  std::size_t publish_pending_background = 0;  // of which first states of new devices
  // Retained presence/devices/<id> topics cleared for forgotten devices (presence.forget_after).
  std::uint64_t devices_cleared_total = 0;
  std::uint64_t broker_restarts_total = 0;
  std::uint64_t connects_total = 0;
  // Sparkplug B (issue 15): the tracker's counters (sparkplug.h), rebirth commands published.
  std::uint64_t sparkplug_messages_total = 0;
  std::uint64_t sparkplug_stale_deaths_total = 0;
  std::uint64_t sparkplug_births_dead_on_arrival_total = 0;
  std::uint64_t sparkplug_rebirths_total = 0;
  std::uint64_t sparkplug_rebirths_suppressed_total = 0;
  bool broker_connected = false;  // connected and subscribed (both connections, with the bulk reader)
  // The bulk heartbeat reader (bulk_reader.h, mqtt.bulk_heartbeats): in use, and its counters.
  bool heartbeat_reader = false;
  bool heartbeat_reader_connected = false;
  std::uint64_t heartbeat_reader_reads_total = 0;
  std::uint64_t heartbeat_reader_messages_total = 0;
  std::uint64_t heartbeat_reader_protocol_errors_total = 0;
  // Overload (issue 16): presenced is behind, no device is judged on silence (core/overload.h).
  bool overloaded = false;
  std::string overloaded_why;           // the signal that fired last
  std::uint64_t overloads_total = 0;    // episodes
  std::uint64_t probes_lost_total = 0;  // own probe messages lost or late
  std::uint64_t broker_dropped = 0;     // $SYS/broker/publish/messages/dropped, last value
  double ingest_lag_seconds = 0;        // oldest message of the last batch, at engine time
};

class MqttLink {
 public:
  // Throws std::invalid_argument if the options do not compile (validate config first). The
  // link works on the loop's engine from its steps only; Paho's threads wake the loop when the
  // link's inbox turns non-empty. The loop must outlive the link.
  MqttLink(MqttLinkOptions options, server::Loop& loop);
  ~MqttLink();
  MqttLink(const MqttLink&) = delete;
  MqttLink& operator=(const MqttLink&) = delete;

  // The loop's steps, in that order around the engine step: "mqtt.in" (start: device classes
  // restored from the snapshot's labels; each batch: the inbox translated into events, the
  // connection state machine) and "mqtt.out" (each batch: the retained output of what changed;
  // stop: final flush, bounded, and a clean disconnect).
  server::Step input_step();
  server::Step output_step();

  // Before the loop starts: creates the Paho client (the "mqtt.in" step connects).
  void start();

  MqttStats stats() const;

  // The device-hygiene report (issue 14, hygiene.h) of what this link observed. ENGINE THREAD
  // ONLY: call it from a task given to Loop::post (the /v1/doctor backend does).
  HygieneReport hygiene_report(std::size_t limit) const;

  // Before start(): fleet incidents not closed, for the retained presence/fleet message (any
  // thread).
  void set_incidents_open(std::function<std::uint32_t()> incidents_open);
  // Before start(), optional (HA, issue 13; docs/ha.md): asked on the engine thread once per
  // batch, must not block. While false the retained device and fleet output is not published
  // (the service topic still is); when it turns true every device and the fleet are restated.
  void set_publish_gate(std::function<bool()> may_publish);
  // Before start(), optional (HA): the instance's role word ("leader", "follower", "fail_open"),
  // asked on the engine thread, must not block. It is put in the retained service message
  // (presence/service/<name>), which is published again when the role changes.
  void set_role(std::function<const char*()> role);
  // Before start(), optional (issue 15): parents and children, both asked on the engine thread.
  // down_ancestor(d): "" or the topmost ancestor down (core::AlertPolicy::unreachable_behind);
  // a down device behind one is published as "unreachable" with that parent (output.h).
  // descendants(id): devices below id; when a parent changes state they are republished, so a
  // child left offline reads "offline" (not "unreachable") once its parent is back.
  struct Parents {
    std::function<std::string(core::DeviceIndex)> down_ancestor;
    std::function<std::vector<core::DeviceIndex>(std::string_view)> descendants;
  };
  void set_parents(Parents parents);
  // What SIGHUP can change without a restart (any thread; applied in the next batch).
  void set_publish_limits(double max_messages_per_second, core::Duration coalesce_interval);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace presence::ingest
