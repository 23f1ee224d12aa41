#include "presence/api/health.h"

#include "presence/api/prometheus.h"

#include <thread>

#include <httplib.h>

namespace presence::api {

using prom::family;
using prom::sample;

std::string render_prometheus(const Metrics& m) {
  std::string out;
  family(out, "presence_devices", "gauge", "Devices per presence state.");
  for (const auto& [state, n] : m.devices_by_state)
    sample(out, "presence_devices", n, "state=\"" + state + "\"");
  family(out, "presence_transitions_total", "counter", "Device state transitions, by new state.");
  for (const auto& [state, n] : m.transitions_total)
    sample(out, "presence_transitions_total", n, "to=\"" + state + "\"");
  family(out, "presence_mqtt_messages_total", "counter", "MQTT messages received.");
  sample(out, "presence_mqtt_messages_total", m.mqtt_messages_total);
  family(out, "presence_ignored_ids_total", "counter",
         "Messages about an id in topics.ignore_ids (not a device).");
  sample(out, "presence_ignored_ids_total", m.ignored_ids_total);
  family(out, "presence_alive_heartbeats_total", "counter",
         "Device heartbeats received aggregated in broker-ext alive messages.");
  sample(out, "presence_alive_heartbeats_total", m.alive_heartbeats_total);
  family(out, "presence_parse_errors_total", "counter",
         "Messages rejected or partly dropped, by kind.");
  for (const auto& [kind, n] : m.parse_errors_total)
    sample(out, "presence_parse_errors_total", n, "kind=\"" + kind + "\"");
  family(out, "presence_published_total", "counter", "Retained state messages published.");
  sample(out, "presence_published_total", m.published_total);
  family(out, "presence_publish_pending", "gauge",
         "State messages waiting for the publish rate limit.");
  sample(out, "presence_publish_pending", m.publish_pending);
  family(out, "presence_broker_restarts_total", "counter", "Broker restarts detected.");
  sample(out, "presence_broker_restarts_total", m.broker_restarts_total);
  family(out, "presence_mqtt_connects_total", "counter", "Successful MQTT connects.");
  sample(out, "presence_mqtt_connects_total", m.connects_total);
  family(out, "presence_broker_connected", "gauge", "1 if connected and subscribed.");
  sample(out, "presence_broker_connected", m.broker_connected ? 1 : 0);
  family(out, "presence_restart_grace_active", "gauge",
         "1 while restart grace holds offline judgement.");
  sample(out, "presence_restart_grace_active", m.restart_grace_active ? 1 : 0);
  family(out, "presence_blind", "gauge", "1 while presenced cannot see the broker.");
  sample(out, "presence_blind", m.blind ? 1 : 0);
  out += m.extra;
  return out;
}

struct HealthServer::Impl {
  std::string host;
  int port = 0;
  MetricsFn metrics;
  httplib::Server server;
  std::thread thread;
};

HealthServer::HealthServer(std::string host, int port, MetricsFn metrics)
    : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
  impl_->metrics = std::move(metrics);
}

HealthServer::~HealthServer() { stop(); }

bool HealthServer::start(std::string* error) {
  auto& s = impl_->server;
  s.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  s.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    const Metrics m = impl_->metrics();
    // Ready = connected and not blind: a load balancer or a pager should not trust a presenced
    // that cannot see the broker.
    if (m.broker_connected && !m.blind && m.not_ready.empty()) {
      res.set_content("ready\n", "text/plain");
    } else if (m.broker_connected && !m.blind) {
      // Judging and paging go on, but a crash would lose state: the operator must see it.
      res.status = 503;
      res.set_content(m.not_ready + "\n", "text/plain");
    } else {
      res.status = 503;
      res.set_content(m.broker_connected ? "blind\n" : "not connected to the broker\n",
                      "text/plain");
    }
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(render_prometheus(impl_->metrics()), "text/plain; version=0.0.4");
  });
  // Headers and body are separate writes on a kept-alive connection: without TCP_NODELAY every
  // scrape after the first waited ~40 ms for the delayed ACK (measured by presence-e2e-bench).
  s.set_tcp_nodelay(true);
  if (impl_->port == 0) {
    const int p = s.bind_to_any_port(impl_->host);
    if (p <= 0) {
      if (error) *error = "cannot bind " + impl_->host + ":0";
      return false;
    }
    impl_->port = p;
  } else if (!s.bind_to_port(impl_->host, impl_->port)) {
    if (error) *error = "cannot bind " + impl_->host + ":" + std::to_string(impl_->port);
    return false;
  }
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
  return true;
}

void HealthServer::stop() {
  if (impl_->thread.joinable()) {
    impl_->server.stop();
    impl_->thread.join();
  }
}

int HealthServer::port() const { return impl_->port; }

httplib::Server& HealthServer::server() { return impl_->server; }

}  // namespace presence::api
