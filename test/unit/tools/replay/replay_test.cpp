// End to end for presence-replay: run_replay (the function its main calls) on small logs through
// a real core::Engine, decisions checked at the grace boundary T-1 / T / T+1 (STYLE.md habit 2).
#include "presence/tools/replay/replay.h"

#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#ifdef PRESENCE_HAVE_NLOHMANN_JSON
#include <nlohmann/json.hpp>
#endif

#include "presence/core/decision.h"
#include "presence/tools/replay/replay_format.h"

using namespace presence;
using namespace presence::tools;

namespace {

struct Run {
  ReplaySummary summary;
  std::string out;
  std::string err;
};

Run replay(const std::string& log, ReplayOptions opt = {}) {
  std::istringstream in(log);
  std::ostringstream out, err;
  Run r;
  r.summary = run_replay(in, "test.replay", opt, out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

ReplayOptions json() {
  ReplayOptions o;
  o.json = true;
  o.summary = false;
  return o;
}

std::vector<std::string> lines_with(const std::string& text, std::string_view needle) {
  std::vector<std::string> found;
  std::istringstream s(text);
  for (std::string l; std::getline(s, l);) {
    if (l.find(needle) != std::string::npos) found.push_back(l);
  }
  return found;
}

bool has(const std::string& hay, std::string_view needle) {
  return hay.find(needle) != std::string::npos;
}

std::size_t offline_count(const Run& r) {
  return r.summary.final_counts[static_cast<std::size_t>(core::State::Offline)];
}

// A device that connects at 0 and leaves with a last will at 10 s.
const std::string kLastWill =
    "0 connect dev-1\n"
    "10.000 disconnect dev-1 reason=lastwill\n";

}  // namespace

TEST_CASE("a last will becomes offline exactly when offline_grace runs out") {
  // Default offline_grace = 30 s: offline due at 40.000. T-1 ms, T, T+1 ms.
  ReplayOptions o = json();
  o.until = core::mono_ms(39'999);
  Run before = replay(kLastWill, o);
  CHECK(before.err.empty());
  CHECK(lines_with(before.out, "\"to\":\"offline\"").empty());
  CHECK(offline_count(before) == 0);

  o.until = core::mono_ms(40'000);
  Run at = replay(kLastWill, o);
  const auto off = lines_with(at.out, "\"to\":\"offline\"");
  REQUIRE(off.size() == 1);
  CHECK(has(off[0], "\"at\":40.000"));
  CHECK(has(off[0], "\"device\":\"dev-1\""));
  CHECK(offline_count(at) == 1);

  o.until = core::mono_ms(40'001);
  CHECK(offline_count(replay(kLastWill, o)) == 1);

  // The disconnect itself is reported with its reason.
  const auto dis = lines_with(at.out, "\"reason\":\"last_will\"");
  CHECK(dis.size() == 1);
}

TEST_CASE("what-if: --set offline_grace moves the decision") {
  ReplayOptions o = json();
  REQUIRE_FALSE(apply_config_override(o.config, "offline_grace=45s"));
  o.until = core::mono_ms(54'999);
  CHECK(offline_count(replay(kLastWill, o)) == 0);
  o.until = core::mono_ms(55'000);
  Run r = replay(kLastWill, o);
  CHECK(offline_count(r) == 1);
  const auto off = lines_with(r.out, "\"to\":\"offline\"");
  REQUIRE(off.size() == 1);
  CHECK(has(off[0], "\"at\":55.000"));
}

TEST_CASE("a device back within offline_grace is never offline") {
  Run r = replay(kLastWill + "25.000 connect dev-1\n300 tick\n", json());
  CHECK(lines_with(r.out, "\"to\":\"offline\"").empty());
  CHECK(offline_count(r) == 0);
  CHECK(r.summary.final_counts[static_cast<std::size_t>(core::State::Online)] == 1);
}

TEST_CASE("tick lines and --until drive time without a periodic tick") {
  ReplayOptions o = json();
  o.tick_interval = core::Duration{0};
  // No tick at all after the disconnect: the end-of-log tick is at 10 s, nothing is due yet.
  CHECK(offline_count(replay(kLastWill, o)) == 0);
  // An explicit tick line fires the grace window.
  Run r = replay(kLastWill + "41 tick\n", o);
  CHECK(offline_count(r) == 1);
  CHECK(r.summary.events == 3);
}

TEST_CASE("a gap of decades between lines is bounded work with the same decisions") {
  // 100 years of 1 s ticks would be 3e9 ticks; the runner skips idle grid points.
  const std::string log = kLastWill + "3153600000 connect dev-1\n";
  Run r = replay(log, json());
  CHECK(r.err.empty());
  const auto off = lines_with(r.out, "\"to\":\"offline\"");
  REQUIRE(off.size() == 1);
  CHECK(has(off[0], "\"at\":40.000"));  // fired at its own time, not at the end of the gap
  // Offline for 100 years: forgotten after presence.forget_after (30 d), so its connect at the
  // end is a new device, online at once (issue 19 item 9).
  CHECK(r.summary.final_counts[static_cast<std::size_t>(core::State::Offline)] == 0);
  CHECK(r.summary.final_counts[static_cast<std::size_t>(core::State::Online)] == 1);
}

TEST_CASE("bad lines: file:line: reason, counted, skipped, the rest still replays") {
  const std::string log =
      "# header\n"
      "0 connect dev-1\n"
      "\n"
      "5 explode dev-1\n"
      "6 connect\n"
      "7 disconnect dev-1 reason=sideways\n"
      "10 disconnect dev-1 reason=lastwill\n"
      "9 heartbeat dev-1\n"   // time goes backwards
      "60 tick\n";
  Run r = replay(log, json());
  CHECK(r.summary.lines == 9);
  CHECK(r.summary.bad_lines == 4);
  CHECK(r.summary.events == 3);
  CHECK_FALSE(r.summary.aborted);
  CHECK(has(r.err, "test.replay:4: unknown kind 'explode'"));
  CHECK(has(r.err, "test.replay:5: connect needs a device id"));
  CHECK(has(r.err, "test.replay:6: unknown reason 'sideways'"));
  CHECK(has(r.err, "test.replay:8: time 9.000 is before the previous line's 10.000"));
  CHECK(offline_count(r) == 1);  // the good lines told the whole story
}

TEST_CASE("--strict stops at the first bad line") {
  ReplayOptions o = json();
  o.strict = true;
  Run r = replay("0 connect dev-1\n1 connect dev-2 colour=red\n2 connect dev-3\n", o);
  CHECK(r.summary.aborted);
  CHECK(r.summary.bad_lines == 1);
  CHECK(r.summary.devices == 1);  // dev-3 never fed
  CHECK(has(r.err, "test.replay:2: unknown option 'colour'"));
}

TEST_CASE("errors beyond max_error_lines are counted, not printed") {
  std::string log;
  for (int i = 0; i < 50; ++i) log += "1 nonsense\n";
  ReplayOptions o = json();
  o.max_error_lines = 5;
  Run r = replay(log, o);
  CHECK(r.summary.bad_lines == 50);
  CHECK(lines_with(r.err, "unknown kind").size() == 5);
  CHECK(has(r.err, "45 more bad lines not shown"));
}

TEST_CASE("huge lines and ids are bad lines, not crashes") {
  const std::string huge_id(5000, 'x');
  const std::string huge_line(kMaxLineBytes + 10, 'y');
  Run r = replay("0 connect " + huge_id + "\n" + huge_line + "\n0 connect ok\n", json());
  CHECK(r.summary.bad_lines == 2);
  CHECK(r.summary.devices == 1);
  CHECK(has(r.err, "test.replay:1: device id"));
  CHECK(has(r.err, "test.replay:2: line longer than"));
  CHECK(r.err.size() < 400);
}

TEST_CASE("summary counts transitions by kind and devices by final state") {
  ReplayOptions o;
  o.until = core::mono_ms(100'000);
  Run r = replay("0 connect dev-2\n" + kLastWill, o);
  CHECK(r.summary.devices == 2);
  CHECK(r.summary.transitions >= 3);  // 2 x came online, dev-1 left, dev-1 offline
  std::size_t by_kind = 0;
  for (const auto& [k, n] : r.summary.transitions_by_kind) by_kind += n;
  CHECK(by_kind == r.summary.transitions);
  CHECK(r.summary.transitions_by_kind.count("suspect -> offline") +
            r.summary.transitions_by_kind.count("online -> offline") ==
        1);
  CHECK(r.summary.final_counts[static_cast<std::size_t>(core::State::Online)] == 1);
  CHECK(offline_count(r) == 1);
  // Human form: one line per decision and the summary.
  CHECK(has(r.out, "dev-1"));
  CHECK(has(r.out, "== summary:"));
  CHECK(has(r.out, "devices by final state (2 devices):"));
  CHECK(has(r.out, "offline=1"));
  CHECK(r.err.empty());
}

TEST_CASE("JSON lines: every output line is one object") {
  ReplayOptions o = json();
  o.summary = true;
  o.show_events = true;
  Run r = replay(kLastWill + "60 tick\n", o);
  std::istringstream s(r.out);
  int n = 0;
  for (std::string l; std::getline(s, l); ++n) {
    CHECK(l.front() == '{');
    CHECK(l.back() == '}');
  }
  CHECK(n >= 5);  // 3 events + >= 2 transitions + summary
  CHECK(lines_with(r.out, "\"type\":\"summary\"").size() == 1);
  CHECK(lines_with(r.out, "\"type\":\"event\"").size() == 3);
}

TEST_CASE("empty input") {
  Run r = replay("", ReplayOptions{});
  CHECK(r.summary.lines == 0);
  CHECK(r.summary.events == 0);
  CHECK(r.summary.devices == 0);
  CHECK(has(r.out, "== summary: 0 lines"));
}

TEST_CASE("the demo story replays cleanly and tells what it promises") {
  std::ifstream f(PRESENCE_SOURCE_DIR "/config/replay/demo.replay");
  REQUIRE(f);
  std::ostringstream buf;
  buf << f.rdbuf();
  ReplayOptions o = json();
  o.summary = true;
  Run r = replay(buf.str(), o);
  CHECK(r.err.empty());
  CHECK(r.summary.bad_lines == 0);
  CHECK(r.summary.devices == 6);
  // The broker restart made nobody offline; the real failure and the silent meter did.
  const auto off = lines_with(r.out, "\"to\":\"offline\"");
  std::vector<std::string> who;
  for (const auto& l : off) {
    if (has(l, "pump-hamburg-3")) who.push_back("pump");
    else if (has(l, "meter-hamburg-2")) who.push_back("meter");
    else who.push_back(l);
  }
  CHECK(who == std::vector<std::string>{"pump", "meter"});
  const auto flaps = lines_with(r.out, "\"to\":\"flapping\"");
  REQUIRE(flaps.size() == 1);
  CHECK(has(flaps[0], "kiosk-hamburg-7"));
  // gateway-berlin-1's 11 s blip: suspect, back, never offline.
  CHECK(lines_with(r.out, "gateway-berlin-1\",\"from\":\"suspect\",\"to\":\"offline\"").empty());
  CHECK(r.summary.final_counts[static_cast<std::size_t>(core::State::Online)] == 4);
  CHECK(offline_count(r) == 2);
  // Pages: exactly the flap (triggered, then resolved), the pump and the meter. Nothing for the
  // broker restart (blind 11 s < blind_alert_after) or the gateway's blip.
  const auto triggers = lines_with(r.out, "\"action\":\"trigger\"");
  std::vector<std::string> paged;
  for (const auto& l : triggers) {
    for (const char* d : {"kiosk-hamburg-7", "pump-hamburg-3", "meter-hamburg-2"}) {
      if (has(l, d)) paged.push_back(d);
    }
  }
  CHECK(triggers.size() == 3);
  CHECK(paged == std::vector<std::string>{"kiosk-hamburg-7", "pump-hamburg-3", "meter-hamburg-2"});
  CHECK(lines_with(r.out, "\"action\":\"resolve\"").size() == 1);
  CHECK(lines_with(r.out, "gateway-berlin-1\",\"group").empty());
}

TEST_CASE("--no-alerts and what-if on the policy") {
  ReplayOptions o = json();
  o.until = core::mono_ms(400'000);
  Run with = replay(kLastWill, o);
  // offline at 40 s, alert_after 2 min, then group_wait: one page.
  CHECK(lines_with(with.out, "\"type\":\"alert\"").size() == 1);
  o.alerts = false;
  CHECK(lines_with(replay(kLastWill, o).out, "\"type\":\"alert\"").empty());
  o.alerts = true;
  REQUIRE_FALSE(apply_policy_override(o.policy, "alert_after=10m"));
  CHECK(lines_with(replay(kLastWill, o).out, "\"type\":\"alert\"").empty());
}

TEST_CASE("JSON output escapes ids: quotes, backslashes") {
  ReplayOptions o = json();
  o.summary = true;
  o.show_events = true;
  // A client id may hold any printable byte; the JSON must still be valid and round-trip.
  Run r = replay("0 connect a\"b\\c{}\n1 disconnect a\"b\\c{} reason=last_will\n", o);
  CHECK(r.err.empty());
  CHECK(has(r.out, "\"device\":\"a\\\"b\\\\c{}\""));
#ifdef PRESENCE_HAVE_NLOHMANN_JSON
  std::istringstream s(r.out);
  int transitions = 0;
  for (std::string l; std::getline(s, l);) {
    const auto j = nlohmann::json::parse(l);  // throws (fails the test) on invalid JSON
    REQUIRE(j.contains("type"));
    if (j["type"] == "transition") {
      ++transitions;
      CHECK(j["device"] == "a\"b\\c{}");
      CHECK(j["at"].is_number());
    }
    if (j["type"] == "summary") {
      CHECK(j["bad_lines"] == 0);
      CHECK(j["devices"] == 1);
      CHECK(j["final_states"]["suspect"] == 1);
    }
  }
  CHECK(transitions == 2);
#endif
}

TEST_CASE("JSON output of an id with bytes that are not UTF-8 is still valid JSON (U+FFFD)") {
  ReplayOptions o = json();
  o.show_events = true;
  // A recorded client id is bytes; a broken one must not make the whole output unreadable.
  Run r = replay("0 connect dev-\xff\xfe\n1 disconnect dev-\xff\xfe reason=last_will\n", o);
  CHECK(r.err.empty());
  CHECK(has(r.out, "\"device\":\"dev-\\uFFFD\\uFFFD\""));
  CHECK_FALSE(has(r.out, "\xff"));
#ifdef PRESENCE_HAVE_NLOHMANN_JSON
  std::istringstream s(r.out);
  int lines = 0;
  for (std::string l; std::getline(s, l); ++lines) {
    const auto j = nlohmann::json::parse(l);  // throws (fails the test) on invalid UTF-8
    if (j.contains("device")) CHECK(j["device"] == "dev-\xef\xbf\xbd\xef\xbf\xbd");
  }
  CHECK(lines >= 2);
#endif
}

namespace {

double at_of(const std::string& line) {
  const auto p = line.find("\"at\":");
  return p == std::string::npos ? -1 : std::stod(line.substr(p + 5));
}

}  // namespace

// Issue 11, "a latency bound for every real failure" (docs/configuration.md, "Latency bound"):
// with the defaults, every device that is really down is first paged within
// t_down + offline_grace + alert_after + group_wait + 5 s, where t_down is when it went down
// (its last will / disconnect, or its heartbeat timeout for a silent device). Before issue 11
// group_interval added up to 5 min: pump-hamburg-3 paged 4.9 min after its last will.
TEST_CASE("the demo story pages every dead device within the documented latency bound") {
  std::ifstream f(PRESENCE_SOURCE_DIR "/config/replay/demo.replay");
  REQUIRE(f);
  std::ostringstream buf;
  buf << f.rdbuf();
  Run r = replay(buf.str(), json());
  const core::PolicyConfig policy;  // the defaults presence-replay uses
  const double bound_s = 30.0 /* offline_grace */ + std::chrono::duration<double>(policy.alert_after).count() +
                         std::chrono::duration<double>(policy.group_wait).count() + 5.0;
  CHECK(bound_s == 185.0);
  const auto offline = lines_with(r.out, "\"to\":\"offline\"");
  REQUIRE(offline.size() == 2);  // pump-hamburg-3 (last will), meter-hamburg-2 (silent)
  for (const char* dev : {"pump-hamburg-3", "meter-hamburg-2"}) {
    CAPTURE(dev);
    double down = -1;
    for (const auto& l : lines_with(r.out, std::string("\"device\":\"") + dev + "\",\"from\":\"online\",\"to\":\"suspect\""))
      down = at_of(l);
    REQUIRE(down > 0);
    double paged = -1;
    for (const auto& l : lines_with(r.out, "\"action\":\"trigger\""))
      if (has(l, dev) && paged < 0) paged = at_of(l);
    REQUIRE(paged > 0);
    CHECK(paged - down <= bound_s);
  }
  // The last will is the last sign of life: 500 s + 185 s at the latest (it pages at 680 s).
  double pump = -1;
  for (const auto& l : lines_with(r.out, "\"action\":\"trigger\""))
    if (has(l, "pump-hamburg-3") && pump < 0) pump = at_of(l);
  CHECK(pump <= 500.0 + bound_s);
}
