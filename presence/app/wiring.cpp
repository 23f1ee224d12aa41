// Config -> the rooms' options, stats -> /metrics (wiring.h; issue 12: out of main.cpp).
#include "presence/app/wiring.h"

#include <algorithm>
#include <chrono>

#include "presence/core/words.h"

namespace presence::app {

std::string service_topic(const Config& c) {
  const auto slash = c.output.fleet_topic.rfind('/');
  std::string topic = slash == std::string::npos ? "presenced/service"
                                                 : c.output.fleet_topic.substr(0, slash) + "/service";
  if (c.ha.enabled()) topic += "/" + c.ha.name;
  return topic;
}

ingest::MqttLinkOptions link_options(const Config& c) {
  ingest::MqttLinkOptions o;
  o.mqtt = c.mqtt;
  o.topics = topic_options(c);
  o.ignore_ids = c.topics.ignore_ids;
  o.sparkplug = c.sparkplug;
  o.sources = c.sources;
  o.device_classes = device_class_specs(c);
  o.overload = c.overload;
  o.log_rate_limit = c.log.rate_limit;
  // emqx_api: the link's options carry bounds of their own (max_pages, attempts) the file does
  // not set.
  o.emqx_api.url = c.emqx_api.url;
  o.emqx_api.api_key = c.emqx_api.api_key;
  o.emqx_api.api_secret = c.emqx_api.api_secret;
  o.emqx_api.page_size = c.emqx_api.page_size;
  o.emqx_api.timeout = c.emqx_api.timeout;
  // output: the same keys, except presenced's own topic, derived from fleet_topic.
  auto& out = o.output;
  out.device_prefix = c.output.device_prefix;  // the loader refuses a leading or trailing '/'
  out.fleet_topic = c.output.fleet_topic;
  out.service_topic = service_topic(c);
  out.retain = c.output.retain;
  out.qos = c.output.qos;
  out.max_messages_per_second = c.output.publish_rate;
  out.coalesce_interval = c.output.coalesce_interval;
  return o;
}

server::LoopOptions loop_options(const Config& c, const ingest::MqttLinkOptions& link) {
  server::LoopOptions o;
  o.core = c.presence;
  o.core.device_classes = ingest::engine_device_classes(link);
  o.log_rate_limit = c.log.rate_limit;
  return o;
}

ha::NodeConfig ha_node_config(const Config& c, common::LogFn log) {
  ha::NodeConfig hc;
  hc.endpoints = c.ha.endpoints;
  hc.name = c.ha.name;
  hc.key_prefix = c.ha.key_prefix;
  hc.timing.lease_ttl = c.ha.lease_ttl;
  hc.timing.fail_open_after = c.ha.fail_open_after;
  hc.timing.peer_down_after = c.ha.peer_down_after;
  hc.log = std::move(log);
  return hc;
}

api::HttpLimits http_limits(const Config& c) {
  api::HttpLimits l;
  l.max_connections = c.http.max_connections;
  l.max_body_bytes = c.http.max_body_bytes;
  l.idle_timeout = std::max(std::chrono::seconds(1),
                            std::chrono::ceil<std::chrono::seconds>(c.http.idle_timeout));
  return l;
}

api::Metrics metrics(const server::LoopStats& s, const ingest::MqttStats& q) {
  api::Metrics m;
  for (std::size_t i = 0; i < s.devices_by_state.size(); ++i)
    m.devices_by_state.emplace_back(core::to_string(static_cast<core::State>(i)),
                                    s.devices_by_state[i]);
  for (std::size_t i = 0; i < s.transitions_total.size(); ++i)
    m.transitions_total.emplace_back(core::to_string(static_cast<core::State>(i)),
                                     s.transitions_total[i]);
  m.mqtt_messages_total = q.mqtt_messages_total;
  m.ignored_ids_total = q.ignored_ids_total;
  m.alive_heartbeats_total = q.alive_heartbeats_total;
  m.reconciled_total = {{"broker_ext", q.reconciled_total - q.reconciled_emqx_total},
                        {"emqx", q.reconciled_emqx_total}};
  m.reconcile_requests_total = q.reconcile_requests_total;
  for (std::size_t i = 0; i < q.emqx_fetches_total.size(); ++i)
    m.reconcile_fetches_total.emplace_back(
        ingest::to_string(static_cast<ingest::EmqxFetchResult>(i)), q.emqx_fetches_total[i]);
  for (std::size_t i = 1; i < q.parse_errors_total.size(); ++i)  // 0 = ParseError::None
    m.parse_errors_total.emplace_back(ingest::to_string(static_cast<ingest::ParseError>(i)),
                                      q.parse_errors_total[i]);
  m.published_total = q.published_total;
  m.publish_pending = q.publish_pending;
  m.publish_pending_background = q.publish_pending_background;
  m.transition_log_lines_suppressed_total = s.transition_lines_suppressed_total;
  m.engine_batch_max_us = s.batch_max_us;
  m.engine_batches_slow_total = s.batches_slow_total;
  m.label_keys_refused_total = s.label_keys_refused_total;
  m.label_values_refused_total = s.label_values_refused_total;
  m.devices_refused_total = s.devices_refused_total;
  m.devices_forgotten_total = s.devices_forgotten_total;
  m.heartbeats_reordered_total = s.heartbeats_reordered_total;
  m.devices_cleared_total = q.devices_cleared_total;
  m.broker_restarts_total = q.broker_restarts_total;
  m.connects_total = q.connects_total;
  m.sparkplug_messages_total = q.sparkplug_messages_total;
  m.sparkplug_stale_deaths_total = q.sparkplug_stale_deaths_total;
  m.sparkplug_births_dead_on_arrival_total = q.sparkplug_births_dead_on_arrival_total;
  m.sparkplug_rebirths_total = q.sparkplug_rebirths_total;
  m.sparkplug_rebirths_suppressed_total = q.sparkplug_rebirths_suppressed_total;
  m.broker_connected = q.broker_connected;
  m.heartbeat_reader = q.heartbeat_reader;
  m.heartbeat_reader_connected = q.heartbeat_reader_connected;
  m.heartbeat_reader_reads_total = q.heartbeat_reader_reads_total;
  m.heartbeat_reader_protocol_errors_total = q.heartbeat_reader_protocol_errors_total;
  m.restart_grace_active = s.restart_grace;
  // Blind: not subscribed, or the engine itself holds judgement (a broker restart).
  m.blind = !q.broker_connected || s.engine_blind;
  m.overloaded = q.overloaded;
  m.overloads_total = q.overloads_total;
  m.probes_lost_total = q.probes_lost_total;
  m.broker_dropped = q.broker_dropped;
  m.ingest_lag_seconds = q.ingest_lag_seconds;
  if (q.overloaded) m.not_ready = "overloaded: " + q.overloaded_why + "; silence is not judged";
  return m;
}

}  // namespace presence::app
