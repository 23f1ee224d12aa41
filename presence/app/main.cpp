// presenced: MQTT in, true state out (issue 3).
//
//   presenced --config FILE         run
//   presenced --check-config FILE   validate; prints "file:line: key: reason", exit 2 on errors
//
// Signals: SIGHUP reloads the file (applies what can change live, logs what needs a restart;
// keeps the running config if the new file has errors). SIGTERM/SIGINT stop cleanly: pending
// state messages are flushed before disconnecting.
#include <signal.h>

#include <httplib.h>

#include <cstdio>
#include <cstdlib>
#include <thread>
#include <algorithm>
#include <chrono>
#include <memory>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "presence/api/api.h"
#include "presence/api/health.h"
#include "presence/app/alerting.h"
#include "presence/app/config.h"
#include "presence/app/wiring.h"
#include "presence/core/words.h"
#include "presence/ha/node.h"
#include "presence/common/log.h"
#include "presence/ingest/mqtt_link.h"
#include "presence/ingest/output.h"
#include "presence/server/api_backend.h"
#include "presence/server/loop.h"

namespace {

using presence::common::LogLevel;
using presence::common::log;

constexpr int kExitConfig = 2;
// Longer than every bounded wait of a stop together (MQTT 3 s, snapshot and outbox 10 s + 5 s in
// the worst case): only a wait we failed to bound reaches it.
constexpr std::chrono::seconds kStopDeadline{20};

void usage() {
  std::fprintf(stderr,
               "usage: presenced --config FILE\n"
               "       presenced --check-config FILE\n");
}

// The loader compiles the topic patterns and sources itself (config_check.cpp, one config truth).
presence::app::LoadResult load(const std::string& path) { return presence::app::load_config_file(path); }

int check_config(const std::string& path) {
  const auto r = load(path);
  if (!r.ok()) {
    for (const auto& e : r.errors)
      std::fprintf(stderr, "%s\n", presence::app::to_string(e).c_str());
    return kExitConfig;
  }
  // "FILE: OK" and the effective value of every key, secrets hidden (docs/configuration.md), in
  // the config room's one format.
  return presence::app::check_config(path, std::cout, std::cerr);
}

void reload(const std::string& path, presence::app::Config& running,
            presence::server::Loop& loop, presence::ingest::MqttLink& mqtt,
            presence::app::Alerting& alerting) {
  auto r = presence::app::reload_config(running, path);
  if (!r.load.ok()) {
    for (const auto& e : r.load.errors)
      log(LogLevel::Error, "reload: " + presence::app::to_string(e));
    log(LogLevel::Error, "reload: keeping the running configuration");
    return;
  }
  const auto& next = *r.load.config;
  if (r.diff.empty()) {
    log(LogLevel::Info, "reload: no changes");
    return;
  }
  bool output_limits = false;
  bool silences = false;
  for (const auto& key : r.diff.changed) {
    const bool restart = std::find(r.diff.restart_required.begin(), r.diff.restart_required.end(),
                                   key) != r.diff.restart_required.end();
    if (restart) {
      log(LogLevel::Warn, "reload: " + key + " changed: takes effect after a restart");
    } else if (key == "output.publish_rate" || key == "output.coalesce_interval") {
      output_limits = true;
    } else if (key.rfind("alerts.silences", 0) == 0) {
      silences = true;  // docs/runbook.md "Silencing" relies on this (issue 19 item 11)
    } else if (key == "log.level") {
      presence::common::set_log_level(next.log.level);
      log(LogLevel::Info, std::string("reload: log.level = ") + presence::common::to_string(next.log.level));
    } else {
      log(LogLevel::Warn, "reload: " + key + " changed: not used live by this presenced, restart to apply");
    }
  }
  if (output_limits)
    mqtt.set_publish_limits(next.output.publish_rate, next.output.coalesce_interval);
  if (silences) {
    const bool posted = loop.post(
        [&alerting, list = next.alerts.silences](presence::core::Engine& engine) {
          const std::size_t n = alerting.replace_config_silences(list, engine.now());
          log(LogLevel::Info, "reload: alerts.silences applied (" + std::to_string(n) +
                                  " in force from the file)");
        });
    if (!posted) log(LogLevel::Warn, "reload: alerts.silences not applied: service stopping");
  }
  running = next;
}

int run(const std::string& path) {
  const auto r = load(path);
  if (!r.ok()) {
    for (const auto& e : r.errors)
      std::fprintf(stderr, "%s\n", presence::app::to_string(e).c_str());
    return kExitConfig;
  }
  presence::app::Config running = *r.config;
  presence::common::set_log_level(running.log.level);

  // The loader checked http.listen (and a token off loopback): it parses.
  const auto listen = presence::app::parse_listen(running.http.listen).value();

  // Signals are taken synchronously on this thread: block them before any thread starts so
  // every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // The run loop (presence/server/loop.h) and the MQTT link that feeds it and publishes for it.
  const auto link_options = presence::app::link_options(running);
  presence::server::Loop loop(presence::app::loop_options(running, link_options));
  presence::ingest::MqttLink mqtt(link_options, loop);
  // Alerts, fleet incidents, snapshots, watchdog (presence/app/alerting.h), on the engine thread.
  presence::app::Alerting alerting(running, [](std::string_view line) {
    log(LogLevel::Info, std::string(line));
  });
  // HA pair (issue 13, docs/ha.md): only when ha.endpoints is set; else single, as before.
  std::unique_ptr<presence::ha::Node> ha;
  if (running.ha.enabled()) {
    auto hc = presence::app::ha_node_config(
        running, [](std::string_view line) { log(LogLevel::Info, std::string(line)); });
    presence::ha::NodeHooks hooks;
    hooks.submit = [&alerting](presence::core::AlertIntent i, std::int64_t decided_wall_ms) {
      alerting.submit_external(std::move(i), decided_wall_ms);
    };
    hooks.holds = [&alerting](const std::string& sink, const std::string& key,
                              presence::core::AlertIntent::Action action, std::int64_t wall_ms,
                              std::int64_t window_ms) {
      return alerting.outbox_holds(sink, key, action, wall_ms, window_ms);
    };
    hooks.unsent = [&alerting] { return alerting.outbox_unsent(); };
    hooks.later = [&alerting](const std::string& sink, const std::string& key,
                              std::int64_t wall_ms) {
      return alerting.outbox_later(sink, key, wall_ms);
    };
    hooks.adopt = [&loop, &alerting](std::vector<std::string> keys) {
      return loop.post([&alerting, keys = std::move(keys)](presence::core::Engine& engine) {
        alerting.adopt_open_pages(engine, keys, engine.now());
      });
    };
    ha = std::make_unique<presence::ha::Node>(hc, std::move(hooks));
    using Gate = presence::alert::DispatcherConfig::Gate;
    alerting.set_send_gate(
        [node = ha.get()](const std::vector<presence::alert::OutboxEntry>& b) {
          switch (node->before_send(b)) {
            case presence::ha::Gate::Send: return Gate::Send;
            case presence::ha::Gate::Skip: return Gate::Skip;
            case presence::ha::Gate::Hold: return Gate::Hold;
          }
          return Gate::Hold;
        },
        [node = ha.get()](const std::vector<presence::alert::OutboxEntry>& b) {
          node->after_send(b);
        });
    alerting.set_queue_hooks(
        [node = ha.get()](const std::vector<presence::alert::OutboxEntry>& b) { node->queued(b); },
        [node = ha.get()](const std::vector<presence::alert::OutboxEntry>& b) {
          node->dropped(b);
        });
  }
  if (const auto started = alerting.start(); !started.ok()) {
    log(LogLevel::Error, "alerts: " + started.error);
    return 1;
  }
  mqtt.set_incidents_open([&alerting] { return alerting.incidents_open(); });
  // Parents and children (issue 15): the policy's judgement, shown in the retained output.
  mqtt.set_parents({[&alerting](presence::core::DeviceIndex d) {
                      const auto* policy = alerting.policy();
                      return policy ? policy->unreachable_behind(d) : std::string();
                    },
                    [&alerting](std::string_view id) {
                      const auto* policy = alerting.policy();
                      return policy ? policy->topology().descendants(id)
                                    : std::vector<presence::core::DeviceIndex>{};
                    }});
  // Only the pair's leader (or an instance failing open) publishes the retained output.
  if (ha) {
    mqtt.set_publish_gate([node = ha.get()] { return node->may_publish(); });
    mqtt.set_role([node = ha.get()] { return presence::ha::to_string(node->role()); });
  }
  auto api_counters = std::make_shared<presence::api::ApiCounters>();
  auto http_counters = std::make_shared<presence::api::HttpCounters>();
  auto metrics_fn = [&loop, &mqtt, &alerting, &ha, api_counters, http_counters] {
    auto m = presence::app::metrics(loop.stats(), mqtt.stats());
    m.extra = presence::api::render_prometheus(alerting.metrics());
    // Persistence first; an overload reason (to_metrics) after it.
    if (auto why = alerting.not_ready_reason(); !why.empty())
      m.not_ready = m.not_ready.empty() ? why : why + "; " + m.not_ready;
    m.extra += presence::api::render_prometheus(*api_counters);
    m.extra += presence::api::render_prometheus(*http_counters);
    if (ha) m.extra += ha->metrics_text();
    return m;
  };
  const auto http_limits = presence::app::http_limits(running);
  presence::api::HealthServer http(listen.host, listen.port, metrics_fn, http_limits,
                                   http_counters);
  // http.health_listen: probes get a listener and threads of their own (issue 19 item 4).
  std::unique_ptr<presence::api::HealthServer> health_http;
  if (!running.http.health_listen.empty()) {
    const auto health = presence::app::parse_listen(running.http.health_listen).value();
    health_http = std::make_unique<presence::api::HealthServer>(
        health.host, health.port, metrics_fn, http_limits, http_counters);
  }
  // /v1 JSON API and dashboard (issue 7). Off loopback every endpoint needs the bearer token.
  presence::api::ApiOptions api_options;
  api_options.token = running.http.token;
  // The loader's loopback rule (config.h parse_listen), which also required the token off it.
  api_options.require_token_for_reads = !listen.loopback;
  api_options.counters = api_counters;
  presence::common::RateLimitedLog api_log(running.log.rate_limit);
  api_options.log = [&api_log](std::string_view code, std::string_view line) {
    api_log.log(LogLevel::Warn, "api:" + std::string(code), line);
  };
  // The policy is read on the engine thread only (LoopApiBackend posts every query there).
  presence::server::LoopApiBackend api_backend(
      loop, [&alerting] { return alerting.policy(); },
      [&mqtt] { return mqtt.stats().broker_connected; });
  api_backend.set_hygiene([&mqtt](std::size_t limit) { return mqtt.hygiene_report(limit); });
  alerting.set_intent_observer(
      [&api_backend](const std::vector<presence::core::AlertIntent>& intents) {
        api_backend.on_intents(intents);
      });
  // GET /v1/ha: the same token rule as every /v1 read (docs/ha.md).
  if (ha) api_options.extra_reads.emplace_back("/v1/ha", [&ha] { return ha->status_json(); });
  presence::api::register_api(http.server(), api_backend, api_options);
  if (ha) ha->start();
  if (const auto started = http.start(); !started.ok()) {
    log(LogLevel::Error, "http: " + started.error);
    return 1;
  }
  if (health_http) {
    if (const auto started = health_http->start(); !started.ok()) {
      log(LogLevel::Error, "http.health_listen: " + started.error);
      return 1;
    }
  }
  log(LogLevel::Info, "presenced: http on " + listen.host + ":" + std::to_string(http.port()) +
                          " (/healthz /readyz /metrics /v1, dashboard at /), broker " +
                          running.mqtt.uri);
  // One batch, in data-path order (docs/architecture.md): the snapshot restored before anything
  // reads the engine; MQTT in; the engine ticked with the batch's now; alerts decided; the API's
  // ring fed; API tasks; MQTT out. Stop hooks go in the same order: the final snapshot, then the
  // final flush and disconnect.
  loop.add_step(alerting.restore_step());
  loop.add_step(mqtt.input_step());
  loop.add_step(loop.engine_step());
  loop.add_step(alerting.step());
  loop.add_step(api_backend.step());
  loop.add_step(loop.tasks_step());
  loop.add_step(mqtt.output_step());
  mqtt.start();
  loop.start();

  while (true) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      log(LogLevel::Info, "SIGHUP: reloading " + path);
      reload(path, running, loop, mqtt, alerting);
      continue;
    }
    log(LogLevel::Info, std::string("presenced: ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") +
                            ", stopping");
    break;
  }
  // Belt and braces (issue 19 item 2): every wait below is bounded, but should one still hang
  // (a library wait we do not control), presenced exits anyway rather than hang for a minute
  // under a supervisor that then SIGKILLs it.
  std::thread([] {
    std::this_thread::sleep_for(kStopDeadline);
    log(LogLevel::Error, "presenced: stop took longer than " +
                             std::to_string(kStopDeadline.count()) + " s, exiting now");
    std::_Exit(1);
  }).detach();
  loop.stop();  // the final snapshot, flush and disconnect, on the engine thread
  alerting.stop();  // waits (bounded) for the snapshot and the outbox to be on disk
  if (ha) ha->stop();  // revokes the lease: the peer takes over at once (rolling restart)
  http.stop();
  if (health_http) health_http->stop();
  log(LogLevel::Info, "presenced: stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  if (args.size() == 2 && args[0] == "--config") return run(std::string(args[1]));
  if (args.size() == 2 && args[0] == "--check-config") return check_config(std::string(args[1]));
  if (args.size() == 1 && (args[0] == "--help" || args[0] == "-h")) {
    usage();
    return 0;
  }
  usage();
  return kExitConfig;
}
