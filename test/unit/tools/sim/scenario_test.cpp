// Unit tests for presence/tools/sim/scenario.*: options by name, the timeline format and its
// errors (file:line), and action selection.
#include "presence/tools/sim/scenario.h"

#include <doctest/doctest.h>

#include <fstream>
#include <set>
#include <sstream>

using namespace presence::sim;

TEST_CASE("options by name: dashes or underscores, clear errors") {
  SimOptions o;
  CHECK(set_option(o, "devices", "20000").empty());
  CHECK(o.fleet.devices == 20000);
  CHECK(set_option(o, "tight-loop-delay", "10ms").empty());
  CHECK(o.reconnect.tight_loop_delay == 10);
  CHECK(set_option(o, "broker", "127.0.0.1:1884,127.0.0.2:1885").empty());
  REQUIRE(o.brokers.size() == 2);
  CHECK(o.brokers[1].host == "127.0.0.2");
  CHECK(o.brokers[1].port == 1885);
  CHECK(set_option(o, "connect_rate", "6000/min").empty());
  CHECK(o.connect_rate == doctest::Approx(100));
  CHECK(set_option(o, "failure_rate", "2/min").empty());
  CHECK(set_option(o, "firmware", "3.7.2:60,07.06:40").empty());
  CHECK(o.fleet.firmware.entries.size() == 2);

  CHECK(set_option(o, "devices", "-1") .find("devices:") == 0);
  CHECK(set_option(o, "devices", "12x").find("devices:") == 0);
  CHECK(set_option(o, "heartbeat", "soon").find("heartbeat: bad duration") == 0);
  CHECK(set_option(o, "broker", "h:99999").find("broker:") == 0);
  CHECK(set_option(o, "payload", "xml") == "payload: must be json or plain");
  CHECK(set_option(o, "connect_rate", "0/s").find("connect_rate:") == 0);
  CHECK(set_option(o, "id_prefix", "a/b").find("id_prefix:") == 0);
  CHECK(set_option(o, "colour", "red") == "unknown option 'colour'");
  // Sparkplug B edge-node mode (issue 15): the group is a topic level, devices bounded.
  CHECK(set_option(o, "sparkplug_group", "plant").empty());
  CHECK(o.sparkplug_group == "plant");
  CHECK(set_option(o, "sparkplug_devices", "20").empty());
  CHECK(o.sparkplug_devices == 20);
  CHECK(set_option(o, "sparkplug_group", "a/b") == "sparkplug_group: must not contain / + #");
  CHECK(set_option(o, "sparkplug_devices", "10001").find("sparkplug_devices:") == 0);
  CHECK(usage().find("--sparkplug-group") != std::string::npos);
  CHECK(option_names().size() > 30);
  CHECK(usage().find("--scenario") != std::string::npos);
}

TEST_CASE("source addresses: auto is one per 5000 devices a broker") {
  SimOptions o;
  o.fleet.devices = 5000;
  CHECK(effective_source_addrs(o) == 1);
  o.fleet.devices = 5001;
  CHECK(effective_source_addrs(o) == 2);
  o.fleet.devices = 20'000;
  CHECK(effective_source_addrs(o) == 4);
  CHECK(set_option(o, "broker", "127.0.0.1:1,127.0.0.1:2").empty());
  CHECK(effective_source_addrs(o) == 2);
  CHECK(set_option(o, "source_addrs", "7").empty());
  CHECK(effective_source_addrs(o) == 7);
  CHECK(set_option(o, "source_addrs", "auto").empty());
  CHECK(effective_source_addrs(o) == 2);
  CHECK(set_option(o, "source_addrs", "251").find("source_addrs:") == 0);
}

TEST_CASE("signals by name or number") {
  CHECK(*parse_signal("TERM") == 15);
  CHECK(*parse_signal("SIGKILL") == 9);
  CHECK(*parse_signal("STOP") == 19);
  CHECK(*parse_signal("10") == 10);
  CHECK_FALSE(parse_signal("NOPE"));
  CHECK_FALSE(parse_signal("0"));
}

TEST_CASE("a full scenario parses, sorted by time") {
  auto sc = parse_scenario(R"(v: 1
options:
  devices: 500
  behaviour: "well_behaved:90,tight_loop:10"
timeline:
  - at: 60s
    end:
  - at: 10s
    drop: {share: 0.3, match: {firmware: "07.06"}, rst: true}
  - at: 20s
    signal: {target: broker, signal: KILL}
  - at: 25s
    start: {target: broker}
  - at: 30s
    restart: {target: presenced, signal: TERM, wait: 3s, command: "presenced -c x.yaml"}
  - at: 35s
    flap: {match: {site: site-b}, share: 0.5, period: 10s, down: 2s, duration: 1m, phase: same}
  - at: 40s
    die: {devices: [dev-000001, dev-000002], back_after: 1m-2m}
  - at: 41s
    die: {count: 3}
  - at: 45s
    revive: {devices: dev-000001}
  - at: 50s
    disconnect: {share: 0.1, announce: false}
  - at: 55s
    failures: {rate: 5/min, down: 30s-2m, never: 0.1}
  - at: 56s
    exec: "echo hello"
)",
                           "s.yaml");
  REQUIRE_MESSAGE(sc, sc.error);
  CHECK(sc->options.at("devices") == "500");
  REQUIRE(sc->timeline.size() == 12);
  auto& t = sc->timeline;
  CHECK(t[0].kind == ActionKind::Drop);
  CHECK(t[0].at == 10'000);
  CHECK(t[0].line == 8);
  CHECK(t[0].select.share == doctest::Approx(0.3));
  CHECK(t[0].rst);
  CHECK(t[0].select.match.labels.at(0).second == "07.06");
  CHECK(t[1].kind == ActionKind::Signal);
  CHECK(t[1].target == "broker");
  CHECK(t[1].signal == 9);
  CHECK(t[2].kind == ActionKind::Start);
  CHECK(t[3].kind == ActionKind::Restart);
  CHECK(t[3].wait == 3000);
  CHECK(t[3].command == "presenced -c x.yaml");
  CHECK(t[4].kind == ActionKind::Flap);
  CHECK(t[4].period == 10'000);
  CHECK(t[4].down == 2000);
  CHECK(t[4].duration == 60'000);
  CHECK(t[4].same_phase);
  CHECK(t[5].kind == ActionKind::Die);
  CHECK(t[5].select.match.ids.size() == 2);
  CHECK(t[5].back_after->lo == 60'000);
  CHECK(t[5].back_after->hi == 120'000);
  CHECK(*t[6].select.count == 3);
  CHECK(t[7].select.match.ids == std::vector<std::string>{"dev-000001"});
  CHECK_FALSE(t[8].announce);
  CHECK(*t[9].failure_rate == doctest::Approx(5.0 / 60));
  CHECK(t[9].failure_down->hi == 120'000);
  CHECK(*t[9].failure_never == doctest::Approx(0.1));
  CHECK(t[10].command == "echo hello");
  CHECK(t[11].kind == ActionKind::End);
}

TEST_CASE("scenario errors name the file, the line and the key") {
  auto err = [](const char* text) { return parse_scenario(text, "f.yaml").error; };
  CHECK(err("timeline:\n  - at: 5s\n    explode: {}\n") == "f.yaml:3: unknown action 'explode'");
  CHECK(err("timeline:\n  - drop: {}\n") == "f.yaml:2: timeline entry without 'at'");
  CHECK(err("timeline:\n  - at: soon\n    end:\n").find("f.yaml:2: at: bad duration") == 0);
  CHECK(err("timeline:\n  - at: 1s\n    drop: {shares: 1}\n") ==
        "f.yaml:3: drop: unknown key 'shares'");
  CHECK(err("timeline:\n  - at: 1s\n    drop: {share: 1.5}\n").find("f.yaml:3: share:") == 0);
  CHECK(err("timeline:\n  - at: 1s\n    drop: {}\n    die: {}\n").find("one action per") !=
        std::string::npos);
  CHECK(err("timeline:\n  - at: 1s\n    flap: {period: 2s, down: 2s}\n") ==
        "f.yaml:2: flap: down must be shorter than period");
  CHECK(err("timeline:\n  - at: 1s\n    signal: {signal: TERM}\n").find("needs a target") !=
        std::string::npos);
  CHECK(err("timeline:\n  - at: 1s\n    signal: {target: mars}\n").find("target: 'mars'") !=
        std::string::npos);
  CHECK(err("timeline:\n  - at: 1s\n    drop: {match: {colour: red}}\n")
            .find("match: unknown label 'colour'") != std::string::npos);
  CHECK(err("options:\n  devices: lots\n") .find("f.yaml:2: options: devices:") == 0);
  CHECK(err("options:\n  scenario: x.yaml\n").find("cannot nest") != std::string::npos);
  CHECK(err("v: 2\n") == "f.yaml:1: v: only version 1 is known");
  CHECK(err("colour: red\n").find("unknown key 'colour'") != std::string::npos);
  CHECK(err("timeline: [\n").find("f.yaml:") == 0);  // yaml-cpp syntax error, still located
  CHECK(err("") == "f.yaml:1: empty scenario");
  CHECK(err("timeline:\n  - at: 1s\n    exec: {}\n") == "f.yaml:2: exec: needs a command");
}

TEST_CASE("pick: count wins over share, share rounds, seeded") {
  std::vector<std::size_t> c(200);
  for (std::size_t i = 0; i < c.size(); ++i) c[i] = i;
  Rng rng(1);
  Selection s;
  s.share = 0.3;
  auto p = pick(c, s, rng);
  CHECK(p.size() == 60);
  CHECK(std::set<std::size_t>(p.begin(), p.end()).size() == 60);
  s.count = 5;
  CHECK(pick(c, s, rng).size() == 5);
  s.count = 500;
  CHECK(pick(c, s, rng).size() == 200);
  s.count.reset();
  s.share = 0;
  CHECK(pick(c, s, rng).empty());
  s.share = 0.005;  // 1 device of 200
  CHECK(pick(c, s, rng).size() == 1);
  Rng a(9), b(9);
  s.share = 0.5;
  CHECK(pick(c, s, a) == pick(c, s, b));
}

TEST_CASE("the example scenario in docs/simulator.md parses (the docs stay true)") {
  std::ifstream in(std::string(PRESENCE_SOURCE_DIR) + "/docs/simulator.md");
  REQUIRE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  auto doc = ss.str();
  auto start = doc.find("```yaml\n");
  REQUIRE(start != std::string::npos);
  start += 8;
  auto end = doc.find("```", start);
  REQUIRE(end != std::string::npos);
  auto sc = parse_scenario(doc.substr(start, end - start), "docs/simulator.md");
  REQUIRE_MESSAGE(sc, sc.error);
  CHECK(sc->timeline.size() == 11);
  SimOptions o;
  for (auto& [k, v] : sc->options) CHECK(set_option(o, k, v).empty());
  CHECK(o.fleet.devices == 20000);
}
