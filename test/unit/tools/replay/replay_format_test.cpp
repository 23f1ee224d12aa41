// Tests presence/tools/replay/replay_format.*: every kind of good line, every kind of bad line (each one
// a defined error, never a crash), and the --set parameter overrides.
#include "presence/tools/replay/replay_format.h"

#include <doctest/doctest.h>

#include <sstream>
#include <string>

using namespace presence;
using namespace presence::tools;
using Status = ParsedLine::Status;

namespace {

ReplayLine ok(std::string_view text) {
  ParsedLine p = parse_replay_line(text);
  INFO("line: ", std::string(text), " error: ", p.error);
  REQUIRE(p.status == Status::Event);
  return p.line;
}

std::string bad(std::string_view text) {
  ParsedLine p = parse_replay_line(text);
  INFO("line: ", std::string(text.substr(0, 80)));
  REQUIRE(p.status == Status::Error);
  REQUIRE(!p.error.empty());
  return p.error;
}

bool contains(const std::string& hay, std::string_view needle) {
  return hay.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("blank lines and comments are skipped") {
  CHECK(parse_replay_line("").status == Status::Blank);
  CHECK(parse_replay_line("   \t ").status == Status::Blank);
  CHECK(parse_replay_line("# a comment").status == Status::Blank);
  CHECK(parse_replay_line("   # indented comment").status == Status::Blank);
  CHECK(parse_replay_line("\r").status == Status::Blank);
}

TEST_CASE("device events") {
  ReplayLine l = ok("12.500 connect dev-1");
  CHECK(l.kind == ReplayKind::Connect);
  CHECK(l.device == "dev-1");
  CHECK(core::to_ms(l.at) == 12500);
  CHECK(l.session == 0);
  CHECK(l.source == core::Source::Replay);

  l = ok("0 heartbeat a/b/c session=7");
  CHECK(l.kind == ReplayKind::Heartbeat);
  CHECK(l.device == "a/b/c");
  CHECK(l.session == 7);

  l = ok("3.1 disconnect dev-1 reason=lastwill session=18446744073709551615 source=broker-ext");
  CHECK(l.kind == ReplayKind::Disconnect);
  CHECK(core::to_ms(l.at) == 3100);
  CHECK(l.reason == core::DisconnectReason::LastWill);
  CHECK(l.session == 18446744073709551615ULL);
  CHECK(l.source == core::Source::BrokerExt);

  CHECK(ok("1 disconnect d").reason == core::DisconnectReason::Unknown);
  CHECK(ok("1 disconnect d reason=graceful").reason == core::DisconnectReason::Graceful);
  CHECK(ok("1 disconnect d reason=keepalive").reason == core::DisconnectReason::KeepaliveTimeout);
  CHECK(ok("1 disconnect d reason=takeover").reason == core::DisconnectReason::Takeover);
  CHECK(ok("1 disconnect d reason=broker").reason == core::DisconnectReason::BrokerInitiated);
  CHECK(ok("1 disconnect d reason=unknown").reason == core::DisconnectReason::Unknown);
  // The core's words (core::to_string, the payload's "reason") are canonical.
  CHECK(ok("1 disconnect d reason=last_will").reason == core::DisconnectReason::LastWill);
  CHECK(ok("1 disconnect d reason=keepalive_timeout").reason ==
        core::DisconnectReason::KeepaliveTimeout);
  CHECK(ok("1 disconnect d reason=broker_initiated").reason ==
        core::DisconnectReason::BrokerInitiated);
  CHECK(ok("1 connect d source=broker_ext").source == core::Source::BrokerExt);
}

TEST_CASE("tabs, CR line ends and trailing comments") {
  ReplayLine l = ok("1.000\tconnect\tdev-9   # booted\r");
  CHECK(l.device == "dev-9");
  l = ok("2 heartbeat dev#9");  // '#' inside a token is part of the id, not a comment
  CHECK(l.device == "dev#9");
}

TEST_CASE("fleet-wide events and tick") {
  CHECK(ok("60 broker-restart").kind == ReplayKind::BrokerRestart);
  CHECK(ok("60 ingest-lost").kind == ReplayKind::IngestLost);
  CHECK(ok("60 ingest-restored").kind == ReplayKind::IngestRestored);
  ReplayLine l = ok("600 tick");
  CHECK(l.kind == ReplayKind::Tick);
  CHECK(l.device.empty());
  CHECK(core::to_ms(l.at) == 600000);
  CHECK(ok("1 broker-restart source=emqx").source == core::Source::Emqx);
}

TEST_CASE("labels") {
  ReplayLine l = ok("0 label dev-1 site=berlin firmware=1.2.3 model=x");
  CHECK(l.kind == ReplayKind::Label);
  REQUIRE(l.labels.size() == 3);
  CHECK(l.labels[0] == std::pair<std::string, std::string>{"site", "berlin"});
  CHECK(l.labels[1] == std::pair<std::string, std::string>{"firmware", "1.2.3"});
  // The value is everything after the first '='; an empty value is allowed (clears a label).
  l = ok("0 label d expr=a=b empty=");
  CHECK(l.labels[0].second == "a=b");
  CHECK(l.labels[1].second.empty());
}

TEST_CASE("times") {
  CHECK(parse_time_ms("0") == 0);
  CHECK(parse_time_ms("12") == 12000);
  CHECK(parse_time_ms("12.5") == 12500);
  CHECK(parse_time_ms("12.500") == 12500);
  CHECK(parse_time_ms("12.05") == 12050);
  CHECK(parse_time_ms("12500ms") == 12500);
  CHECK(parse_time_ms("0012") == 12000);
  CHECK(parse_time_ms(std::to_string(kMaxTimeMs) + "ms") == kMaxTimeMs);
  CHECK_FALSE(parse_time_ms(std::to_string(kMaxTimeMs + 1) + "ms"));
  CHECK_FALSE(parse_time_ms(""));
  CHECK_FALSE(parse_time_ms("-1"));
  CHECK_FALSE(parse_time_ms("+1"));
  CHECK_FALSE(parse_time_ms("1.2345"));  // sub-millisecond
  CHECK_FALSE(parse_time_ms("1."));
  CHECK_FALSE(parse_time_ms(".5"));
  CHECK_FALSE(parse_time_ms("1.5ms"));
  CHECK_FALSE(parse_time_ms("ms"));
  CHECK_FALSE(parse_time_ms("1e3"));
  CHECK_FALSE(parse_time_ms("12s"));
  CHECK_FALSE(parse_time_ms("99999999999999999999999999999"));  // would overflow int64
  CHECK(format_time(12500) == "12.500");
  CHECK(format_time(5) == "0.005");
  CHECK(format_time(0) == "0.000");
}

TEST_CASE("bad lines: each has a clear reason") {
  CHECK(contains(bad("abc connect d"), "bad time"));
  CHECK(contains(bad("-5 connect d"), "bad time"));
  CHECK(contains(bad("1.0001 connect d"), "bad time"));
  CHECK(contains(bad("12"), "missing kind"));
  CHECK(contains(bad("12 explode d"), "unknown kind 'explode'"));
  CHECK(contains(bad("12 Connect d"), "unknown kind"));  // kinds are lower case
  CHECK(contains(bad("12 connect"), "needs a device id"));
  CHECK(contains(bad("12 label"), "needs a device id"));
  CHECK(contains(bad("12 label d"), "at least one key=value"));
  CHECK(contains(bad("12 label d novalue"), "expected key=value"));
  CHECK(contains(bad("12 label d bad/key=1"), "bad label key"));
  CHECK(contains(bad("12 label d =1"), "bad label key"));
  CHECK(contains(bad("12 label d a=1 a=2"), "given twice"));
  CHECK(contains(bad("12 connect d reason=lastwill"), "only applies to disconnect"));
  CHECK(contains(bad("12 disconnect d reason=exploded"), "unknown reason 'exploded'"));
  CHECK(contains(bad("12 disconnect d reason=lastwill reason=graceful"), "given twice"));
  CHECK(contains(bad("12 connect d session=-1"), "bad session"));
  CHECK(contains(bad("12 connect d session=18446744073709551616"), "bad session"));  // 2^64
  CHECK(contains(bad("12 connect d session=12abc"), "bad session"));
  CHECK(contains(bad("12 connect d session="), "bad session"));
  CHECK(contains(bad("12 connect d session=1 session=2"), "given twice"));
  CHECK(contains(bad("12 connect d source=carrier-pigeon"), "unknown source"));
  CHECK(contains(bad("12 connect d colour=red"), "unknown option 'colour'"));
  CHECK(contains(bad("12 connect d stray"), "expected key=value"));
  CHECK(contains(bad("12 connect session=3"), "contains '='"));  // device forgotten
  CHECK(contains(bad("12 tick dev-1"), "fleet-wide"));
  CHECK(contains(bad("12 broker-restart dev-1"), "fleet-wide"));
  CHECK(contains(bad("12 broker-restart session=1"), "only applies to device events"));
  CHECK(contains(bad("12 connect dev\x01x"), "control character"));
  CHECK(contains(bad("12 label d k=v\x7f"), "control character"));
}

TEST_CASE("huge ids and values are rejected without echoing them whole") {
  const std::string at_limit(kMaxDeviceIdBytes, 'x');
  CHECK(ok("1 connect " + at_limit).device.size() == kMaxDeviceIdBytes);

  const std::string huge(kMaxDeviceIdBytes + 1, 'x');
  const std::string e = bad("1 connect " + huge);
  CHECK(contains(e, "longer than 1024 bytes"));
  CHECK(contains(e, "(1025 bytes)"));
  CHECK(e.size() < 200);  // the message quotes a prefix only

  const std::string sixty_k(60000, 'y');
  CHECK(bad("1 heartbeat " + sixty_k).size() < 200);

  CHECK(ok("1 label d k=" + std::string(kMaxLabelValueBytes, 'v')).labels.size() == 1);
  CHECK(contains(bad("1 label d k=" + std::string(kMaxLabelValueBytes + 1, 'v')), "longer than"));
  CHECK(contains(bad("1 label d " + std::string(kMaxLabelKeyBytes + 1, 'k') + "=v"),
                 "bad label key"));
  CHECK(contains(bad("99999999999999999999999 connect d"), "bad time"));

  const std::string long_line = "1 connect d " + std::string(kMaxLineBytes, ' ');
  CHECK(contains(bad(long_line), "line longer than"));
}

TEST_CASE("read_bounded_line: bounded memory for absurd lines, last line without newline") {
  std::string data = "1 connect a\n" + std::string(1000, 'z') + "\n2 connect b";
  std::istringstream in(data);
  std::string line;
  bool too_long = false;
  REQUIRE(read_bounded_line(in, line, too_long, 100));
  CHECK(line == "1 connect a");
  CHECK_FALSE(too_long);
  REQUIRE(read_bounded_line(in, line, too_long, 100));
  CHECK(too_long);
  CHECK(line.size() == 100);
  REQUIRE(read_bounded_line(in, line, too_long, 100));
  CHECK(line == "2 connect b");
  CHECK_FALSE(too_long);
  CHECK_FALSE(read_bounded_line(in, line, too_long, 100));

  std::istringstream empty_line("\n");
  CHECK(read_bounded_line(empty_line, line, too_long));
  CHECK(line.empty());
  CHECK_FALSE(read_bounded_line(empty_line, line, too_long));
}

TEST_CASE("durations for --set") {
  using std::chrono::milliseconds;
  CHECK(parse_duration("45s") == milliseconds(45000));
  CHECK(parse_duration("45") == milliseconds(45000));
  CHECK(parse_duration("1.5") == milliseconds(1500));
  CHECK(parse_duration("500ms") == milliseconds(500));
  CHECK(parse_duration("2m") == milliseconds(120000));
  CHECK(parse_duration("1.5m") == milliseconds(90000));
  CHECK(parse_duration("1h") == milliseconds(3600000));
  CHECK(parse_duration("0s") == milliseconds(0));
  CHECK_FALSE(parse_duration(""));
  CHECK_FALSE(parse_duration("s"));
  CHECK_FALSE(parse_duration("-5s"));
  CHECK_FALSE(parse_duration("5d"));
  CHECK_FALSE(parse_duration("1.5ms"));
  CHECK_FALSE(parse_duration("5 s"));
  CHECK_FALSE(parse_duration("999999999999999h"));
}

TEST_CASE("config overrides use the config.h names") {
  core::Config c;
  CHECK_FALSE(apply_config_override(c, "offline_grace=45s"));
  CHECK(c.offline_grace == std::chrono::seconds(45));
  CHECK_FALSE(apply_config_override(c, "heartbeat_timeout_factor=2.5"));
  CHECK(c.heartbeat_timeout_factor == 2.5);
  CHECK_FALSE(apply_config_override(c, "flap_history=30"));
  CHECK(c.flap_history == 30u);
  CHECK_FALSE(apply_config_override(c, "restart_grace_max=15m"));
  CHECK(c.restart_grace_max == std::chrono::minutes(15));
  CHECK_FALSE(check_config(c));

  // Every listed key is accepted with a value of its type.
  for (auto key : config_override_keys()) {
    core::Config fresh;
    const bool count = key == "flap_history" || key == "heartbeat_min_samples";
    const bool real = key == "heartbeat_timeout_factor" || key == "flap_high" || key == "flap_low";
    const std::string v = count ? "3" : real ? "0.5" : "30s";
    CHECK_MESSAGE(!apply_config_override(fresh, std::string(key) + "=" + v), key);
  }

  const core::Config before = c;
  CHECK(contains(*apply_config_override(c, "offline_grace"), "expected key=value"));
  CHECK(contains(*apply_config_override(c, "offline_grace=soon"), "bad duration"));
  CHECK(contains(*apply_config_override(c, "flap_high=lots"), "bad number"));
  CHECK(contains(*apply_config_override(c, "flap_high=nan"), "bad number"));
  CHECK(contains(*apply_config_override(c, "flap_history=-1"), "bad count"));
  CHECK(contains(*apply_config_override(c, "flap_history=4294967296"), "bad count"));
  CHECK(contains(*apply_config_override(c, "offline_gracee=1s"), "unknown parameter"));
  CHECK(c.offline_grace == before.offline_grace);  // a failed override changes nothing
  CHECK(c.flap_history == before.flap_history);
}

TEST_CASE("check_config catches nonsense combinations") {
  CHECK_FALSE(check_config(core::Config{}));
  auto broken = [](std::string_view a) {
    core::Config c;
    REQUIRE_FALSE(apply_config_override(c, a));
    return check_config(c).value_or("");
  };
  CHECK(contains(broken("offline_grace=0s"), "offline_grace"));
  CHECK(contains(broken("heartbeat_timeout_floor=2h"), "heartbeat_timeout_ceiling"));
  CHECK(contains(broken("flap_low=0.9"), "flap_low"));
  CHECK(contains(broken("flap_high=1.5"), "flap_high"));
  CHECK(contains(broken("flap_history=1"), "flap_history"));
  CHECK(contains(broken("flap_history=33"), "flap_history"));
  CHECK_FALSE(check_config([] {
    core::Config c;
    c.flap_history = 32;
    return c;
  }()));
  CHECK(contains(broken("restart_grace_min=1h"), "restart_grace_max"));
  CHECK(contains(broken("heartbeat_min_samples=0"), "heartbeat_min_samples"));
  CHECK(contains(broken("heartbeat_timeout_factor=0.5"), "heartbeat_timeout_factor"));
  CHECK(contains(broken("heartbeat_timeout_factor=1000"), "heartbeat_timeout_factor"));
  CHECK(contains(broken("flap_low=0.5"), "flap_low"));  // equal to flap_high: no hysteresis
}

TEST_CASE("policy overrides") {
  core::PolicyConfig p;
  CHECK_FALSE(apply_policy_override(p, "alert_after=5m"));
  CHECK(p.alert_after == std::chrono::minutes(5));
  CHECK_FALSE(apply_policy_override(p, "group_wait=0s"));
  CHECK(p.group_wait == std::chrono::seconds(0));
  CHECK(contains(*apply_policy_override(p, "alert_after=soon"), "bad duration"));
  CHECK(contains(*apply_policy_override(p, "offline_grace=1s"), "unknown parameter"));
  CHECK(policy_override_keys().size() == 4);
}
