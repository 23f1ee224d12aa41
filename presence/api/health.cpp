#include "presence/api/health.h"

#include "presence/api/prometheus.h"

#include <condition_variable>
#include <deque>
#include <mutex>
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
  family(out, "presence_reconciled_total", "counter",
         "Devices reported connected by start-up reconciliation, by way (broker_ext, emqx).");
  for (const auto& [via, n] : m.reconciled_total)
    sample(out, "presence_reconciled_total", n, "via=\"" + via + "\"");
  family(out, "presence_reconcile_requests_total", "counter",
         "Client-list requests sent to broker-ext (one per broker (re)connect).");
  sample(out, "presence_reconcile_requests_total", m.reconcile_requests_total);
  family(out, "presence_reconcile_fetches_total", "counter",
         "EMQX clients API fetches (emqx_api), by result.");
  for (const auto& [result, n] : m.reconcile_fetches_total)
    sample(out, "presence_reconcile_fetches_total", n, "result=\"" + result + "\"");
  family(out, "presence_parse_errors_total", "counter",
         "Messages rejected or partly dropped, by kind.");
  for (const auto& [kind, n] : m.parse_errors_total)
    sample(out, "presence_parse_errors_total", n, "kind=\"" + kind + "\"");
  family(out, "presence_published_total", "counter", "Retained state messages published.");
  sample(out, "presence_published_total", m.published_total);
  family(out, "presence_publish_pending", "gauge",
         "State messages waiting for the publish rate limit.");
  sample(out, "presence_publish_pending", m.publish_pending);
  family(out, "presence_publish_pending_background", "gauge",
         "Of presence_publish_pending: first states of new devices, sent after every change of a "
         "known device.");
  sample(out, "presence_publish_pending_background", m.publish_pending_background);
  family(out, "presence_engine_batch_max_seconds", "gauge",
         "Longest engine-thread batch since start (ingest, tick, alerts, snapshot copy, API reads).");
  sample(out, "presence_engine_batch_max_seconds",
         static_cast<double>(m.engine_batch_max_us) / 1e6);
  family(out, "presence_engine_batches_slow_total", "counter",
         "Engine-thread batches longer than 10 ms.");
  sample(out, "presence_engine_batches_slow_total", m.engine_batches_slow_total);
  family(out, "presence_transition_log_lines_suppressed_total", "counter",
         "Device transition log lines left out by the log rate limit (20/s).");
  sample(out, "presence_transition_log_lines_suppressed_total",
         m.transition_log_lines_suppressed_total);
  family(out, "presence_labels_refused_total", "counter",
         "Labels refused: beyond presence.max_label_keys (reason=keys) or "
         "presence.max_label_values (reason=values).");
  sample(out, "presence_labels_refused_total", m.label_keys_refused_total, "reason=\"keys\"");
  sample(out, "presence_labels_refused_total", m.label_values_refused_total,
         "reason=\"values\"");
  family(out, "presence_devices_refused_total", "counter",
         "Messages about a new id dropped because presence.max_devices was reached.");
  sample(out, "presence_devices_refused_total", m.devices_refused_total);
  family(out, "presence_devices_forgotten_total", "counter",
         "Devices forgotten by presence.forget_after / presence.forget_unconfirmed_after.");
  sample(out, "presence_devices_forgotten_total", m.devices_forgotten_total);
  family(out, "presence_heartbeats_reordered_total", "counter",
         "Heartbeats from the bulk heartbeat connection that arrived within "
         "presence.reorder_window of the device's last-will or disconnect: possibly sent before "
         "it, not taken as the device being back.");
  sample(out, "presence_heartbeats_reordered_total", m.heartbeats_reordered_total);
  family(out, "presence_devices_cleared_total", "counter",
         "Retained presence/devices/<id> topics cleared because their device was forgotten.");
  sample(out, "presence_devices_cleared_total", m.devices_cleared_total);
  family(out, "presence_broker_restarts_total", "counter", "Broker restarts detected.");
  sample(out, "presence_broker_restarts_total", m.broker_restarts_total);
  family(out, "presence_mqtt_connects_total", "counter", "Successful MQTT connects.");
  sample(out, "presence_mqtt_connects_total", m.connects_total);
  family(out, "presence_sparkplug_messages_total", "counter", "Sparkplug B messages read (spBv1.0/#).");
  sample(out, "presence_sparkplug_messages_total", m.sparkplug_messages_total);
  family(out, "presence_sparkplug_stale_deaths_total", "counter",
         "NDEATHs ignored: their bdSeq is not the current NBIRTH's (a late will of an earlier session).");
  sample(out, "presence_sparkplug_stale_deaths_total", m.sparkplug_stale_deaths_total);
  family(out, "presence_sparkplug_births_dead_on_arrival_total", "counter",
         "NBIRTHs whose own NDEATH arrived first: the edge node stays down.");
  sample(out, "presence_sparkplug_births_dead_on_arrival_total", m.sparkplug_births_dead_on_arrival_total);
  family(out, "presence_sparkplug_rebirths_total", "counter", "NCMD Node Control/Rebirth requests published.");
  sample(out, "presence_sparkplug_rebirths_total", m.sparkplug_rebirths_total);
  family(out, "presence_sparkplug_rebirths_suppressed_total", "counter",
         "Rebirth requests not sent: the node was asked less than sparkplug.rebirth_interval ago.");
  sample(out, "presence_sparkplug_rebirths_suppressed_total", m.sparkplug_rebirths_suppressed_total);
  family(out, "presence_broker_connected", "gauge", "1 if connected and subscribed.");
  sample(out, "presence_broker_connected", m.broker_connected ? 1 : 0);
  if (m.heartbeat_reader) {
    family(out, "presence_heartbeat_reader_connected", "gauge",
           "1 while the bulk heartbeat connection is connected and subscribed.");
    sample(out, "presence_heartbeat_reader_connected", m.heartbeat_reader_connected ? 1 : 0);
    family(out, "presence_heartbeat_reader_reads_total", "counter",
           "Reads of the bulk heartbeat connection (each hands over every message it got).");
    sample(out, "presence_heartbeat_reader_reads_total", m.heartbeat_reader_reads_total);
    family(out, "presence_heartbeat_reader_protocol_errors_total", "counter",
           "Malformed streams on the bulk heartbeat connection (connection dropped and reopened).");
    sample(out, "presence_heartbeat_reader_protocol_errors_total", m.heartbeat_reader_protocol_errors_total);
  }
  family(out, "presence_restart_grace_active", "gauge",
         "1 while restart grace holds offline judgement.");
  sample(out, "presence_restart_grace_active", m.restart_grace_active ? 1 : 0);
  family(out, "presence_blind", "gauge", "1 while presenced cannot see the broker.");
  sample(out, "presence_blind", m.blind ? 1 : 0);
  family(out, "presence_overloaded", "gauge",
         "1 while presenced is behind: no device is judged offline on silence.");
  sample(out, "presence_overloaded", m.overloaded ? 1 : 0);
  family(out, "presence_overloads_total", "counter", "Overload episodes since start.");
  sample(out, "presence_overloads_total", m.overloads_total);
  family(out, "presence_probes_lost_total", "counter",
         "Own probe messages that did not come back through the broker in time.");
  sample(out, "presence_probes_lost_total", m.probes_lost_total);
  family(out, "presence_broker_dropped_messages", "gauge",
         "The broker's own count of dropped messages ($SYS/broker/publish/messages/dropped).");
  sample(out, "presence_broker_dropped_messages", m.broker_dropped);
  family(out, "presence_ingest_lag_seconds", "gauge",
         "Age of the oldest message of the last batch when the engine took it.");
  sample(out, "presence_ingest_lag_seconds", m.ingest_lag_seconds);
  out += m.extra;
  return out;
}

std::string render_prometheus(const HttpCounters& c) {
  std::string out;
  family(out, "presence_http_connections_open", "gauge", "HTTP connections being served.");
  sample(out, "presence_http_connections_open", c.connections_open.load());
  family(out, "presence_http_connections_waited_total", "counter",
         "HTTP connections that found http.max_connections busy and waited for a thread.");
  sample(out, "presence_http_connections_waited_total", c.connections_waited.load());
  family(out, "presence_http_bodies_refused_total", "counter",
         "Requests refused from their headers: body over http.max_body_bytes (413) or without a "
         "Content-Length (411).");
  sample(out, "presence_http_bodies_refused_total", c.bodies_refused.load());
  return out;
}

namespace {

// One thread per connection, started on demand and kept for the next one, at most `max`.
// cpp-httplib hands each accepted connection to enqueue() and a kept-alive connection holds its
// thread while idle, so a fixed pool of 8 was held by 8 idle clients (issue 19 item 4). A
// connection beyond `max` waits in FIFO order. Threads stay until shutdown (at most `max`: their
// stacks are virtual memory until used).
class ConnectionPool : public httplib::TaskQueue {
 public:
  ConnectionPool(std::size_t max, std::shared_ptr<HttpCounters> counters)
      : max_(max == 0 ? 1 : max), counters_(std::move(counters)) {}
  ~ConnectionPool() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_) return;
    queue_.push_back(std::move(fn));
    // An idle thread not yet claimed by an earlier queued connection takes this one.
    if (idle_ >= queue_.size()) {
      cv_.notify_one();
      return;
    }
    if (threads_.size() < max_) {
      threads_.emplace_back([this] { work(); });
      return;
    }
    if (counters_) ++counters_->connections_waited;
  }

  void shutdown() override {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      threads.swap(threads_);
    }
    cv_.notify_all();
    for (auto& t : threads)
      if (t.joinable()) t.join();
  }

 private:
  void work() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      if (!queue_.empty()) {
        auto fn = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();
        if (counters_) ++counters_->connections_open;
        fn();
        if (counters_) --counters_->connections_open;
        lock.lock();
        continue;
      }
      // Drain what was accepted before stop, so no socket is left open.
      if (stopping_) return;
      ++idle_;
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      --idle_;
    }
  }

  const std::size_t max_;
  std::shared_ptr<HttpCounters> counters_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;
  std::size_t idle_ = 0;
  bool stopping_ = false;
};

}  // namespace

struct HealthServer::Impl {
  std::string host;
  int port = 0;
  MetricsFn metrics;
  HttpLimits limits;
  std::shared_ptr<HttpCounters> counters;
  httplib::Server server;
  std::thread thread;
};

HealthServer::HealthServer(std::string host, int port, MetricsFn metrics, HttpLimits limits,
                           std::shared_ptr<HttpCounters> counters)
    : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
  impl_->metrics = std::move(metrics);
  impl_->limits = limits;
  impl_->counters = counters ? std::move(counters) : std::make_shared<HttpCounters>();
  auto& s = impl_->server;
  const std::size_t max_connections = limits.max_connections;
  auto pool_counters = impl_->counters;
  s.new_task_queue = [max_connections, pool_counters] {
    return new ConnectionPool(max_connections, pool_counters);
  };
  s.set_keep_alive_timeout(static_cast<time_t>(limits.idle_timeout.count()));
  s.set_read_timeout(static_cast<time_t>(limits.read_timeout.count()), 0);
  s.set_write_timeout(static_cast<time_t>(limits.read_timeout.count()), 0);
  s.set_payload_max_length(limits.max_body_bytes);
  // Before the body is read and before any route (so before auth): a body we would refuse is
  // refused from its headers. cpp-httplib's own payload limit reads (and discards) an oversized
  // body first and does not apply to chunked bodies at all, which it would keep in memory
  // (issue 19 item 8: an unauthenticated 400 MiB POST took RSS to 457 MB).
  auto counters_for_body = impl_->counters;
  const std::size_t max_body = limits.max_body_bytes;
  s.set_pre_routing_handler([counters_for_body, max_body](const httplib::Request& req,
                                                          httplib::Response& res) {
    // Same shape as the API's errors (docs/api.md).
    auto refuse = [&](int status, const char* code, const std::string& message) {
      ++counters_for_body->bodies_refused;
      res.status = status;
      // The unread body is still on the socket: the connection cannot carry another request.
      res.set_header("Connection", "close");
      res.set_content(std::string("{\"error\":{\"code\":\"") + code + "\",\"message\":\"" +
                          message + "\"}}",
                      "application/json");
      return httplib::Server::HandlerResponse::Handled;
    };
    const std::string te = req.get_header_value("Transfer-Encoding");
    if (!te.empty() && te != "identity")
      return refuse(411, "length_required", "a request body needs a Content-Length");
    if (req.has_header("Content-Length")) {
      const std::string cl = req.get_header_value("Content-Length");
      const bool digits = !cl.empty() && cl.size() <= 19 &&
                          cl.find_first_not_of("0123456789") == std::string::npos;
      if (!digits) return refuse(400, "bad_request", "bad Content-Length");
      if (std::stoull(cl) > max_body)
        return refuse(413, "too_large",
                      "body larger than " + std::to_string(max_body) + " bytes");
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
}

HealthServer::~HealthServer() { stop(); }

common::Result<void> HealthServer::start() {
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
      return common::Result<void>::fail("cannot bind " + impl_->host + ":0");
    }
    impl_->port = p;
  } else if (!s.bind_to_port(impl_->host, impl_->port)) {
    return common::Result<void>::fail("cannot bind " + impl_->host + ":" +
                                      std::to_string(impl_->port));
  }
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
  return {};
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
