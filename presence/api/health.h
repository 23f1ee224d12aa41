// HTTP endpoints for operators (issue 3): /healthz (process alive), /readyz (connected to the
// broker and not blind) and /metrics (Prometheus text). The api room only reads: it is handed a
// function that returns a snapshot, and never touches the engine.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

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
  // Parse error count per kind ("bad_json", "id_too_long", ...).
  std::vector<std::pair<std::string, std::uint64_t>> parse_errors_total;
  std::uint64_t published_total = 0;
  std::size_t publish_pending = 0;
  std::uint64_t broker_restarts_total = 0;
  std::uint64_t connects_total = 0;
  bool broker_connected = false;
  bool restart_grace_active = false;
  bool blind = true;
  // Non-empty: not ready for this reason although connected (e.g. cannot persist: issue 19).
  std::string not_ready;
  // Prometheus text from other rooms (alerts, outbox, policy: presence/app/alerting.h), appended
  // as is. Each family brings its own # HELP / # TYPE lines.
  std::string extra;
};

// Prometheus text exposition format 0.0.4.
std::string render_prometheus(const Metrics& metrics);

class HealthServer {
 public:
  using MetricsFn = std::function<Metrics()>;
  HealthServer(std::string host, int port, MetricsFn metrics);
  ~HealthServer();
  HealthServer(const HealthServer&) = delete;
  HealthServer& operator=(const HealthServer&) = delete;

  // Binds and serves on a background thread. False (and *error) if the port cannot be bound.
  bool start(std::string* error);
  void stop();
  int port() const;  // the bound port (useful with port 0)
  // The underlying server, for more routes before start() (the /v1 API: presence/api/api.h).
  httplib::Server& server();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace presence::api
