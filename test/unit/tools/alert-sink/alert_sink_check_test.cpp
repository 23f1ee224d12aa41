// presence-alert-sink's request rules (presence/tools/alert-sink/check.*), without sockets. Limits
// are checked at the boundary (255/256 characters, 1024/1025) because an off-by-one here would
// let the demo accept what PagerDuty refuses.
#include <doctest/doctest.h>

#include <string>

#include "presence/tools/alert-sink/check.h"

#ifdef PRESENCE_HAVE_ALERT
#include "presence/alert/payload.h"
#endif

using namespace presence::alert_sink;
using nlohmann::json;

namespace {

json pd_trigger() {
  return json{{"routing_key", "0123456789abcdef0123456789abcdef"},
              {"event_action", "trigger"},
              {"dedup_key", "presenced/device_offline/dev-7"},
              {"payload",
               {{"summary", "dev-7 offline for 30s (last will)"},
                {"source", "presenced"},
                {"severity", "error"},
                {"component", "dev-7"}}}};
}

RequestCheck pd(const json& j) { return check_pagerduty(j.dump(), "generated-1"); }

std::string repeat_utf8(const char* unit, std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += unit;
  return s;
}

}  // namespace

TEST_CASE("pagerduty: a valid trigger is accepted with 202 and its dedup_key") {
  const RequestCheck v = pd(pd_trigger());
  CHECK(v.ok);
  CHECK(v.status == 202);
  const json r = json::parse(v.response_body);
  CHECK(r["status"] == "success");
  CHECK(r["dedup_key"] == "presenced/device_offline/dev-7");
  CHECK(v.line.find("pagerduty trigger presenced/device_offline/dev-7 error") == 0);
  CHECK(v.line.find("dev-7 offline for 30s") != std::string::npos);
}

TEST_CASE("pagerduty: required fields") {
  SUBCASE("missing routing_key") {
    json j = pd_trigger();
    j.erase("routing_key");
    const RequestCheck v = pd(j);
    CHECK_FALSE(v.ok);
    CHECK(v.status == 400);
    CHECK(v.reason.find("routing_key") != std::string::npos);
    CHECK(json::parse(v.response_body)["status"] == "invalid event");
  }
  SUBCASE("routing_key not a string") {
    json j = pd_trigger();
    j["routing_key"] = 42;
    CHECK(pd(j).status == 400);
  }
  SUBCASE("event_action") {
    json j = pd_trigger();
    j["event_action"] = "open";
    CHECK(pd(j).reason.find("event_action") != std::string::npos);
    j.erase("event_action");
    CHECK(pd(j).status == 400);
  }
  SUBCASE("payload, summary, source, severity on trigger") {
    for (const char* key : {"summary", "source", "severity"}) {
      json j = pd_trigger();
      j["payload"].erase(key);
      const RequestCheck v = pd(j);
      CHECK_FALSE(v.ok);
      CHECK(v.reason.find(std::string("payload.") + key) != std::string::npos);
    }
    json j = pd_trigger();
    j["payload"]["severity"] = "fatal";
    CHECK(pd(j).status == 400);
    j.erase("payload");
    CHECK(pd(j).reason.find("payload") != std::string::npos);
  }
  SUBCASE("every documented severity is accepted") {
    for (const char* s : {"critical", "error", "warning", "info"}) {
      json j = pd_trigger();
      j["payload"]["severity"] = s;
      CHECK(pd(j).ok);
    }
  }
  SUBCASE("not JSON, not an object") {
    CHECK(check_pagerduty("{\"routing_key\":", "k").status == 400);
    CHECK(check_pagerduty("[1,2]", "k").status == 400);
    CHECK(check_pagerduty("", "k").status == 400);
  }
}

TEST_CASE("pagerduty: dedup_key limit 255 characters, counted in code points") {
  json j = pd_trigger();
  j["dedup_key"] = std::string(254, 'k');
  CHECK(pd(j).ok);
  j["dedup_key"] = std::string(255, 'k');
  CHECK(pd(j).ok);
  j["dedup_key"] = std::string(256, 'k');
  CHECK(pd(j).status == 400);
  // 255 two-byte characters are 510 bytes but 255 characters.
  j["dedup_key"] = repeat_utf8("\xC3\xA9", 255);
  CHECK(pd(j).ok);
}

TEST_CASE("pagerduty: summary limit 1024 characters") {
  json j = pd_trigger();
  j["payload"]["summary"] = std::string(1023, 's');
  CHECK(pd(j).ok);
  j["payload"]["summary"] = std::string(1024, 's');
  CHECK(pd(j).ok);
  j["payload"]["summary"] = std::string(1025, 's');
  CHECK(pd(j).reason.find("1024") != std::string::npos);
  j["payload"]["summary"] = repeat_utf8("\xE2\x80\xA6", 1024);  // "…" x 1024
  CHECK(pd(j).ok);
}

TEST_CASE("pagerduty: resolve and acknowledge need a dedup_key but no payload") {
  json r{{"routing_key", "k"}, {"event_action", "resolve"}, {"dedup_key", "d"}};
  CHECK(pd(r).ok);
  r["event_action"] = "acknowledge";
  CHECK(pd(r).ok);
  r.erase("dedup_key");
  CHECK(pd(r).status == 400);
  // A trigger without one gets a made-up key back, as PagerDuty does.
  json t = pd_trigger();
  t.erase("dedup_key");
  const RequestCheck v = pd(t);
  CHECK(v.ok);
  CHECK(json::parse(v.response_body)["dedup_key"] == "generated-1");
}

TEST_CASE("pagerduty: a summary cannot forge a second output line") {
  json j = pd_trigger();
  j["payload"]["summary"] = "a\n12:00:00.000 pagerduty trigger fake";
  const RequestCheck v = pd(j);
  CHECK(v.ok);
  CHECK(v.line.find('\n') == std::string::npos);
}

TEST_CASE("slack: text required") {
  const RequestCheck ok =
      check_slack("/slack/T0/B0/x", R"({"text":"dev-7 offline","blocks":[{},{}]})");
  CHECK(ok.ok);
  CHECK(ok.status == 200);
  CHECK(ok.response_body == "ok");
  CHECK(ok.line.find("(2 blocks)") != std::string::npos);
  const RequestCheck none = check_slack("/slack/x", R"({"blocks":[]})");
  CHECK(none.status == 400);
  CHECK(none.response_body == "no_text");
  CHECK(check_slack("/slack/x", R"({"text":""})").status == 400);
  CHECK(check_slack("/slack/x", "text=hi").response_body == "invalid_payload");
}

TEST_CASE("webhook: version and signature") {
  const std::string body = R"({"v":1,"seq":42,"action":"trigger","type":"device_offline","severity":"error","dedup_key":"d","summary":"s"})";
  const std::string good = "sha256=" + hmac_sha256_hex("s3cret", body);

  CHECK(check_webhook(body, "", "").ok);
  CHECK(check_webhook(body, good, "s3cret").ok);
  CHECK(check_webhook(body, good, "s3cret").line.find("seq=42 trigger device_offline") != std::string::npos);

  SUBCASE("bad, missing or truncated signature -> 401") {
    CHECK(check_webhook(body, "sha256=" + hmac_sha256_hex("other", body), "s3cret").status == 401);
    CHECK(check_webhook(body, "", "s3cret").status == 401);
    CHECK(check_webhook(body, good.substr(0, good.size() - 1), "s3cret").status == 401);
    CHECK(check_webhook(body + " ", good, "s3cret").status == 401);  // body changed
  }
  SUBCASE("v must be 1") {
    CHECK(check_webhook(R"({"v":2})", "", "").status == 400);
    CHECK(check_webhook(R"({"seq":1})", "", "").status == 400);
    CHECK(check_webhook(R"({"v":"1"})", "", "").status == 400);
    CHECK(check_webhook("nope", "", "").status == 400);
  }
}

TEST_CASE("hmac_sha256_hex: RFC 4231 test case 2") {
  CHECK(hmac_sha256_hex("Jefe", "what do ya want for nothing?") ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("utf8_length") {
  CHECK(utf8_length("") == 0);
  CHECK(utf8_length("abc") == 3);
  CHECK(utf8_length("\xC3\xA9\xE2\x80\xA6\xF0\x9F\x98\x80") == 3);
  CHECK(utf8_length("\xFF\xC3") == 2);  // invalid bytes count one each
}

#ifdef PRESENCE_HAVE_ALERT
// The sink is only useful if it accepts exactly what presenced sends: feed it presenced's own
// request bodies (presence/alert/payload.h), including the cut long key and summary.
TEST_CASE("presenced's own payloads are accepted") {
  presence::alert::OutboxEntry e;
  e.seq = 7;
  e.sink = "pagerduty";
  e.wall_ms = 1'795'000'000'000;
  e.intent.dedup_key = "presenced/device_offline/" + std::string(400, 'x');
  e.intent.summary = repeat_utf8("\xC3\xA9", 3000);
  e.intent.component = "dev-7";
  e.intent.details = {{"reason", "last_will"}};

  const RequestCheck t = check_pagerduty(
      presence::alert::pagerduty_body({"0123456789abcdef0123456789abcdef", "presenced"}, e), "x");
  CHECK_MESSAGE(t.ok, t.reason);
  e.intent.action = presence::core::AlertIntent::Action::Resolve;
  const RequestCheck r = check_pagerduty(
      presence::alert::pagerduty_body({"0123456789abcdef0123456789abcdef", "presenced"}, e), "x");
  CHECK_MESSAGE(r.ok, r.reason);
  CHECK(json::parse(r.response_body)["dedup_key"] == json::parse(t.response_body)["dedup_key"]);

  const RequestCheck s = check_slack("/slack/demo", presence::alert::slack_body(e));
  CHECK_MESSAGE(s.ok, s.reason);

  const std::string body = presence::alert::webhook_body(e);
  const RequestCheck w = check_webhook(body, presence::alert::webhook_signature("k", body), "k");
  CHECK_MESSAGE(w.ok, w.reason);
  CHECK(check_webhook(body, presence::alert::webhook_signature("other", body), "k").status == 401);
}
#endif
