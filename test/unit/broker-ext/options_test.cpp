#include "broker-ext/options.h"

#include <doctest/doctest.h>

using namespace presence::broker_ext;
using KV = std::vector<std::pair<std::string, std::string>>;

namespace {
bool has_error(const ParseResult& r, const std::string& needle) {
  for (const auto& e : r.errors) {
    if (e.find(needle) != std::string::npos) return true;
  }
  return false;
}
}  // namespace

TEST_CASE("defaults: node = host name, prefix $SYS/presence/{node}, storm protection off") {
  auto r = parse_options({{"basic_auth", "defer"}}, "host1");
  REQUIRE(r.options);
  CHECK(r.options->node == "host1");
  CHECK(r.options->topic_prefix == "$SYS/presence/host1");
  CHECK(r.options->qos == 1);
  CHECK(r.options->heartbeat_interval_ms == 1000);
  CHECK_FALSE(r.options->storm_protection());
  CHECK(r.options->flap_window_ms == 60000);
  CHECK(r.options->flap_ban_ms == 300000);
  CHECK_FALSE(r.info.empty());
}

TEST_CASE("basic_auth is required and must be defer or off") {
  auto r = parse_options({}, "h");
  CHECK_FALSE(r.options);
  CHECK(has_error(r, "plugin_opt_basic_auth: required"));
  r = parse_options({{"basic_auth", "allow"}}, "h");
  CHECK_FALSE(r.options);
  CHECK(has_error(r, "plugin_opt_basic_auth"));
  r = parse_options({{"basic_auth", "off"}}, "h");
  REQUIRE(r.options);
  CHECK(r.options->basic_auth == BasicAuth::off);
}

TEST_CASE("unknown and duplicated keys refuse to load, naming the key") {
  auto r = parse_options({{"basic_auth", "defer"}, {"conect_rate", "5"}}, "h");
  CHECK_FALSE(r.options);
  CHECK(has_error(r, "plugin_opt_conect_rate: unknown option"));
  r = parse_options({{"basic_auth", "defer"}, {"qos", "1"}, {"qos", "0"}}, "h");
  CHECK_FALSE(r.options);
  CHECK(has_error(r, "plugin_opt_qos: given more than once"));
}

TEST_CASE("node and topic_prefix: {node} is substituted wherever it appears, wildcards rejected") {
  auto r = parse_options({{"topic_prefix", "site/{node}/presence"}, {"node", "n1"}, {"basic_auth", "off"}}, "h");
  REQUIRE(r.options);
  CHECK(r.options->topic_prefix == "site/n1/presence");
  CHECK_FALSE(parse_options({{"basic_auth", "off"}, {"node", "a/b"}}, "h").options);
  CHECK_FALSE(parse_options({{"basic_auth", "off"}, {"node", "a+"}}, "h").options);
  CHECK_FALSE(parse_options({{"basic_auth", "off"}, {"node", ""}}, "h").options);
  CHECK_FALSE(parse_options({{"basic_auth", "off"}, {"topic_prefix", "a/#"}}, "h").options);
  CHECK_FALSE(parse_options({{"basic_auth", "off"}, {"topic_prefix", "a/"}}, "h").options);
  CHECK(has_error(parse_options({{"basic_auth", "off"}}, ""), "plugin_opt_node"));
}

TEST_CASE("durations need a unit; bounds are checked") {
  CHECK(parse_duration_ms("250ms") == 250);
  CHECK(parse_duration_ms("2s") == 2000);
  CHECK(parse_duration_ms("5m") == 300000);
  CHECK(parse_duration_ms("1h") == 3600000);
  CHECK_FALSE(parse_duration_ms("60"));
  CHECK_FALSE(parse_duration_ms("1.5s"));
  CHECK_FALSE(parse_duration_ms("-1s"));
  CHECK_FALSE(parse_duration_ms("s"));
  CHECK_FALSE(parse_duration_ms("1d"));
  CHECK(has_error(parse_options({{"basic_auth", "off"}, {"heartbeat_interval", "99ms"}}, "h"),
                  "plugin_opt_heartbeat_interval"));
  CHECK(parse_options({{"basic_auth", "off"}, {"heartbeat_interval", "100ms"}}, "h").options);
  CHECK(has_error(parse_options({{"basic_auth", "off"}, {"qos", "3"}}, "h"), "plugin_opt_qos"));
  CHECK(has_error(parse_options({{"basic_auth", "off"}, {"qos", "1x"}}, "h"), "plugin_opt_qos"));
}

TEST_CASE("storm options: burst defaults to rate, needs a rate, needs basic_auth defer") {
  auto r = parse_options({{"basic_auth", "defer"}, {"connect_rate", "20"}}, "h");
  REQUIRE(r.options);
  CHECK(r.options->connect_burst == 20);
  CHECK(r.options->storm_protection());
  r = parse_options({{"basic_auth", "defer"}, {"connect_rate", "20"}, {"connect_burst", "100"}}, "h");
  REQUIRE(r.options);
  CHECK(r.options->connect_burst == 100);
  CHECK(has_error(parse_options({{"basic_auth", "defer"}, {"connect_burst", "5"}}, "h"),
                  "plugin_opt_connect_burst"));
  CHECK(has_error(parse_options({{"basic_auth", "off"}, {"flap_max_count", "15"}}, "h"),
                  "needs basic_auth defer"));
  r = parse_options({{"basic_auth", "defer"}, {"flap_max_count", "15"}, {"flap_window", "1m"},
                     {"flap_ban", "5m"}},
                    "h");
  REQUIRE(r.options);
  CHECK(r.options->flap_max_count == 15);
  CHECK(has_error(parse_options({{"basic_auth", "defer"}, {"connect_rate", "-1"}}, "h"),
                  "plugin_opt_connect_rate"));
}
