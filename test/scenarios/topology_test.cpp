// The scenario keys of the storm benchmark (brokers, naive, broker_ext, storm_protection and the
// --storm-protection / --broker-ext-opt overrides) and the mosquitto.conf they produce.
#include "test/scenarios/topology.h"

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

using namespace presence::scenario;

namespace {

const char* kFile = R"(
brokers: 2
broker_ext: {heartbeat_interval: 1s, refusal_log_interval: 5s}
storm_protection: {connect_rate: 1000, connect_burst: 1000, flap_max_count: 15}
full:
  broker_ext: {refusal_log_interval: 2s}
  timeline: []
small:
  brokers: 1
  naive: false
  timeline: []
)";

std::string opt(const BrokerSetup& s, const std::string& key) {
  for (const auto& [k, v] : s.broker_ext)
    if (k == key) return v;
  return "<unset>";
}

}  // namespace

TEST_CASE("broker setup: defaults without any key") {
  const YAML::Node f = YAML::Load("full: {timeline: []}");
  const BrokerSetup s = parse_broker_setup(f, f["full"], "", {});
  CHECK(s.brokers == 1);
  CHECK(s.naive);
  CHECK(s.broker_ext.empty());
  CHECK_FALSE(s.storm_protection);
  CHECK_THROWS_AS(parse_broker_setup(f, f["full"], "on", {}), std::runtime_error);  // nothing to turn on
  CHECK(parse_broker_setup(f, f["full"], "off", {}).broker_ext.empty());
}

TEST_CASE("broker setup: the section wins over the top level; protection on by default") {
  const YAML::Node f = YAML::Load(kFile);
  const BrokerSetup full = parse_broker_setup(f, f["full"], "", {});
  CHECK(full.brokers == 2);
  CHECK(full.naive);
  CHECK(full.storm_protection);
  CHECK(opt(full, "refusal_log_interval") == "2s");
  CHECK(opt(full, "heartbeat_interval") == "1s");
  CHECK(opt(full, "connect_rate") == "1000");
  CHECK(opt(full, "flap_max_count") == "15");
  const BrokerSetup small = parse_broker_setup(f, f["small"], "", {});
  CHECK(small.brokers == 1);
  CHECK_FALSE(small.naive);
}

TEST_CASE("broker setup: --storm-protection off leaves every storm key out; CLI overrides win") {
  const YAML::Node f = YAML::Load(kFile);
  const BrokerSetup off = parse_broker_setup(f, f["full"], "off", {});
  CHECK_FALSE(off.storm_protection);
  CHECK(opt(off, "connect_rate") == "<unset>");
  CHECK(opt(off, "connect_burst") == "<unset>");
  CHECK(opt(off, "flap_max_count") == "<unset>");
  CHECK(opt(off, "heartbeat_interval") == "1s");
  const BrokerSetup on = parse_broker_setup(f, f["full"], "on", {"connect_rate=500", "flap_ban=1m"});
  CHECK(opt(on, "connect_rate") == "500");
  CHECK(opt(on, "flap_ban") == "1m");
  CHECK_THROWS_AS(parse_broker_setup(f, f["full"], "maybe", {}), std::runtime_error);
}

TEST_CASE("broker setup: bad values are errors naming the key") {
  auto err = [](const std::string& yaml, const std::vector<std::string>& cli = {}) -> std::string {
    const YAML::Node f = YAML::Load(yaml);
    try {
      parse_broker_setup(f, f["full"], "", cli);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "";
  };
  CHECK(err("brokers: 3\nfull: {}").find("brokers") != std::string::npos);
  CHECK(err("brokers: two\nfull: {}").find("brokers") != std::string::npos);
  CHECK(err("naive: yes please\nfull: {}").find("naive") != std::string::npos);
  CHECK(err("broker_ext: [1]\nfull: {}").find("broker_ext") != std::string::npos);
  CHECK(err("broker_ext: {node: x}\nfull: {}").find("broker_ext.node") != std::string::npos);
  CHECK(err("broker_ext: {topic_prefix: x}\nfull: {}").find("topic_prefix") != std::string::npos);
  // A value or key that would inject another mosquitto.conf line.
  CHECK(err("broker_ext: {connect_rate: \"1\\nlistener 1883\"}\nfull: {}").find("connect_rate") != std::string::npos);
  CHECK(err("broker_ext: {\"Bad Key\": 1}\nfull: {}").find("Bad Key") != std::string::npos);
  CHECK(err("storm_protection: {connect_rate: {a: 1}}\nfull: {}").find("storm_protection.connect_rate") !=
        std::string::npos);
  CHECK(err("full: {}", {"connect_rate"}).find("KEY=VALUE") != std::string::npos);
  CHECK(err("full: {}", {"basic_auth=off"}).find("basic_auth") != std::string::npos);
  CHECK(err("full: {}").empty());
}

TEST_CASE("mosquitto.conf: one broker as before; b bridges devices and broker-ext events into a") {
  BrokerSetup one;
  BrokerConf a{"n1", 1883, "/tmp/run/", "/x/mosquitto_presence.so", 0};
  const std::string c1 = mosquitto_conf(a, one);
  CHECK(c1.find("listener 1883 127.0.0.1\n") != std::string::npos);
  CHECK(c1.find("plugin_opt_node n1\n") != std::string::npos);
  CHECK(c1.find("topic_prefix") == std::string::npos);  // $SYS/presence/{node}, the default
  CHECK(c1.find("connection") == std::string::npos);

  BrokerSetup two;
  two.brokers = 2;
  two.broker_ext = {{"connect_rate", "1000"}};
  BrokerConf b{"b", 1884, "/tmp/run/broker-b/", "/x/mosquitto_presence.so", 1883};
  const std::string c2 = mosquitto_conf(b, two);
  CHECK(c2.find("plugin_opt_node b\n") != std::string::npos);
  CHECK(c2.find("plugin_opt_topic_prefix nodes/{node}/presence\n") != std::string::npos);
  CHECK(c2.find("plugin_opt_connect_rate 1000\n") != std::string::npos);
  CHECK(c2.find("address 127.0.0.1:1883\n") != std::string::npos);
  CHECK(c2.find("topic devices/# out 1\n") != std::string::npos);
  CHECK(c2.find("topic nodes/# out 1\n") != std::string::npos);
  CHECK(c2.find("persistence_location /tmp/run/broker-b/\n") != std::string::npos);
  // Without the plugin there are no plugin options at all.
  b.plugin.clear();
  CHECK(mosquitto_conf(b, two).find("plugin") == std::string::npos);
}
