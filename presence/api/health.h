// HTTP endpoints for operators (issue 3): /healthz (process alive), /readyz (connected to the
// broker and not blind) and /metrics (Prometheus text). The api room only reads: it is handed a
// function that returns a snapshot, and never touches the engine.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "presence/common/result.h"

namespace httplib {
class Server;
}

namespace presence::api {

struct Metrics {
  // Device count per state word ("unknown", "online", "suspect", "offline", "flapping").
  std::vector<std::pair<std::string, std::size_t>> devices_by_state;
  // Transitions per target state word (sum = all transitions).
  std::vector<std::pair<std::string, std::uint64_t>> transitions_total;
  std::uint64_t mqtt_messages_total = 0;
  std::uint64_t ignored_ids_total = 0;
  std::uint64_t alive_heartbeats_total = 0;
  // Start-up reconciliation (issue 14): devices reported connected, by way ("broker_ext",
  // "emqx"); client-list requests sent to broker-ext; EMQX API fetches by result word.
  std::vector<std::pair<std::string, std::uint64_t>> reconciled_total;
  std::uint64_t reconcile_requests_total = 0;
  std::vector<std::pair<std::string, std::uint64_t>> reconcile_fetches_total;
  // Parse error count per kind ("bad_json", "id_too_long", ...).
  std::vector<std::pair<std::string, std::uint64_t>> parse_errors_total;
  std::uint64_t published_total = 0;
  std::size_t publish_pending = 0;
  std::size_t publish_pending_background = 0;
  std::uint64_t transition_log_lines_suppressed_total = 0;
  std::int64_t engine_batch_max_us = 0;          // longest engine batch since start
  std::uint64_t engine_batches_slow_total = 0;   // batches over 10 ms
  std::uint64_t label_keys_refused_total = 0;
  std::uint64_t label_values_refused_total = 0;
  std::uint64_t devices_refused_total = 0;
  std::uint64_t devices_forgotten_total = 0;
  std::uint64_t heartbeats_reordered_total = 0;
  std::uint64_t devices_cleared_total = 0;
  std::uint64_t broker_restarts_total = 0;
  std::uint64_t connects_total = 0;
  // Sparkplug B (issue 15, docs/sparkplug.md).
  std::uint64_t sparkplug_messages_total = 0;
  std::uint64_t sparkplug_stale_deaths_total = 0;
  std::uint64_t sparkplug_births_dead_on_arrival_total = 0;
  std::uint64_t sparkplug_rebirths_total = 0;
  std::uint64_t sparkplug_rebirths_suppressed_total = 0;
  bool broker_connected = false;
  // The bulk heartbeat reader (issue 16, mqtt.bulk_heartbeats); its lines only when in use.
  bool heartbeat_reader = false;
  bool heartbeat_reader_connected = false;
  std::uint64_t heartbeat_reader_reads_total = 0;
  std::uint64_t heartbeat_reader_protocol_errors_total = 0;
  bool restart_grace_active = false;
  bool blind = true;
  // Overload (issue 16): presenced is behind and judges no silence.
  bool overloaded = false;
  std::uint64_t overloads_total = 0;
  std::uint64_t probes_lost_total = 0;
  std::uint64_t broker_dropped = 0;
  double ingest_lag_seconds = 0;
  // Non-empty: not ready for this reason although connected (e.g. cannot persist: issue 19).
  std::string not_ready;
  // Prometheus text from other rooms (alerts, outbox, policy: presence/app/alerting.h), appended
  // as is. Each family brings its own # HELP / # TYPE lines.
  std::string extra;
};

// Prometheus text exposition format 0.0.4.
std::string render_prometheus(const Metrics& metrics);

// What one HTTP listener lets a client hold (issue 19 items 4 and 8). cpp-httplib's default pool
// is 8 threads and a keep-alive connection holds its thread while idle: 8 idle connections made
// /healthz wait 4.5 s, 20 slowloris connections kept it unanswered. Here every connection gets its
// own thread up to max_connections (beyond it connections wait for a free thread, counted),
// idle keep-alive connections are closed after idle_timeout, a read that gets no byte for
// read_timeout ends the connection, and a body larger than max_body_bytes (or one without a
// Content-Length) is refused from its headers, before it is read and before auth.
// A client that holds max_connections connections open can still delay /healthz on this
// listener: http.health_listen gives health and metrics a listener (and threads) of their own.
struct HttpLimits {
  std::size_t max_connections = 256;
  std::size_t max_body_bytes = 64 * 1024;
  std::chrono::seconds idle_timeout{5};
  std::chrono::seconds read_timeout{5};
};

// Counters for /metrics (presence_http_*), shared by every listener.
struct HttpCounters {
  std::atomic<std::uint64_t> connections_waited{0};  // found every thread busy
  std::atomic<std::uint64_t> bodies_refused{0};      // over max_body_bytes, or chunked
  std::atomic<std::int64_t> connections_open{0};
};
std::string render_prometheus(const HttpCounters& counters);

class HealthServer {
 public:
  using MetricsFn = std::function<Metrics()>;
  HealthServer(std::string host, int port, MetricsFn metrics, HttpLimits limits = {},
               std::shared_ptr<HttpCounters> counters = nullptr);
  ~HealthServer();
  HealthServer(const HealthServer&) = delete;
  HealthServer& operator=(const HealthServer&) = delete;

  // Binds and serves on a background thread. Fails (with why) if the port cannot be bound.
  common::Result<void> start();
  void stop();
  int port() const;  // the bound port (useful with port 0)
  // The underlying server, for more routes before start() (the /v1 API: presence/api/api.h).
  httplib::Server& server();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace presence::api
