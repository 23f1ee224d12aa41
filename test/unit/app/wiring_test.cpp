// presence/app/wiring.*: the config -> options and stats -> /metrics mappings presenced's main
// used to carry (issue 12). Each derived value at its edge.
#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "presence/app/config.h"
#include "presence/app/wiring.h"

using namespace presence;
using namespace std::chrono_literals;

namespace {
app::Config load(const std::string& yaml) {
  const auto r = app::load_config_string(yaml, "c.yaml", [](std::string_view) { return std::nullopt; });
  REQUIRE(r.ok());
  return *r.config;
}
}  // namespace

TEST_CASE("service topic: beside fleet_topic, one per instance in an HA pair") {
  CHECK(app::service_topic(load("")) == "presence/service");
  CHECK(app::service_topic(load("output:\n  fleet_topic: site/a/fleet\n")) == "site/a/service");
  CHECK(app::service_topic(load("output:\n  fleet_topic: fleet\n")) == "presenced/service");
  CHECK(app::service_topic(load("ha:\n  endpoints: [\"http://127.0.0.1:2379\"]\n  name: b\n")) ==
        "presence/service/b");
}

TEST_CASE("link options: the file's sections, one struct where the room takes the config's") {
  const auto c = load(
      "output:\n  device_prefix: state/devices\n  publish_rate: 50\n  coalesce_interval: 2s\n"
      "sparkplug:\n  enabled: true\n  primary_host: scada\n  rebirth: true\n"
      "emqx_api:\n  url: http://127.0.0.1:18083\n  api_key: k\n  api_secret: s\n  page_size: 500\n"
      "  timeout: 3s\n"
      "topics:\n  ignore_ids: [\"backend-*\"]\n");
  const auto o = app::link_options(c);
  CHECK(o.mqtt.uri == c.mqtt.uri);
  CHECK(o.output.device_prefix == "state/devices");
  CHECK(o.output.max_messages_per_second == 50.0);
  CHECK(o.output.coalesce_interval == 2s);
  CHECK(o.output.service_topic == "presence/service");
  CHECK(o.sparkplug == c.sparkplug);
  CHECK(o.sparkplug.primary_host == "scada");
  CHECK(o.emqx_api.url == "http://127.0.0.1:18083");
  CHECK(o.emqx_api.page_size == 500);
  CHECK(o.emqx_api.timeout == 3s);
  CHECK(o.ignore_ids == std::vector<std::string>{"backend-*"});
  CHECK(o.overload == c.overload);
  const auto l = app::loop_options(c, o);
  CHECK(l.core.offline_grace == c.presence.offline_grace);
  CHECK(l.log_rate_limit == c.log.rate_limit);
}

TEST_CASE("http limits: idle_timeout rounded up to whole seconds, at least 1 s") {
  CHECK(app::http_limits(load("http:\n  idle_timeout: 1s\n")).idle_timeout == 1s);
  CHECK(app::http_limits(load("http:\n  idle_timeout: 1001ms\n")).idle_timeout == 2s);
  CHECK(app::http_limits(load("http:\n  idle_timeout: 200ms\n")).idle_timeout == 1s);
  const auto l = app::http_limits(load("http:\n  max_connections: 32\n  max_body_bytes: 2048\n"));
  CHECK(l.max_connections == 32);
  CHECK(l.max_body_bytes == 2048);
}

TEST_CASE("metrics: blind when not subscribed or the engine holds judgement; overload not ready") {
  server::LoopStats s;
  s.engine_blind = false;
  ingest::MqttStats q;
  q.broker_connected = true;
  q.reconciled_total = 10;
  q.reconciled_emqx_total = 4;
  auto m = app::metrics(s, q);
  CHECK_FALSE(m.blind);
  CHECK(m.not_ready.empty());
  CHECK(m.reconciled_total ==
        decltype(m.reconciled_total){{"broker_ext", 6}, {"emqx", 4}});
  s.engine_blind = true;
  CHECK(app::metrics(s, q).blind);
  s.engine_blind = false;
  q.broker_connected = false;
  CHECK(app::metrics(s, q).blind);
  q.overloaded = true;
  q.overloaded_why = "ingest lag 3.0 s > 2.0 s";
  CHECK(app::metrics(s, q).not_ready ==
        "overloaded: ingest lag 3.0 s > 2.0 s; silence is not judged");
  CHECK(app::metrics(s, q).devices_by_state.at(0).first == "unknown");
  s.batch_max_us = 1234;
  s.batches_slow_total = 3;
  CHECK(app::metrics(s, q).engine_batch_max_us == 1234);
  CHECK(app::metrics(s, q).engine_batches_slow_total == 3);
}

TEST_CASE("parse_listen: host, port, loopback (one rule for the loader and the listeners)") {
  auto l = app::parse_listen("127.0.0.1:9188");
  REQUIRE(l);
  CHECK(l->host == "127.0.0.1");
  CHECK(l->port == 9188);
  CHECK(l->loopback);
  l = app::parse_listen("[::1]:0");
  REQUIRE(l);
  CHECK(l->host == "::1");
  CHECK(l->port == 0);
  CHECK(l->loopback);
  CHECK(app::parse_listen("[0:0:0:0:0:0:0:1]:80")->loopback);
  CHECK(app::parse_listen("localhost:80")->loopback);
  CHECK_FALSE(app::parse_listen("0.0.0.0:80")->loopback);
  CHECK_FALSE(app::parse_listen("[::]:80")->loopback);
  CHECK_FALSE(app::parse_listen("10.0.0.1:80")->loopback);
  CHECK(app::parse_listen("127.0.0.1:65535"));
  CHECK_FALSE(app::parse_listen("127.0.0.1:65536"));
  CHECK_FALSE(app::parse_listen(":9188"));
  CHECK_FALSE(app::parse_listen("::1:9188"));  // a v6 address needs its brackets
}
