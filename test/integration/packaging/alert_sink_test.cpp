// presence-alert-sink as a process on a free loopback port: real HTTP requests in, answers, the
// printed lines and the --record file out (issue 7).
#include <doctest/doctest.h>
#include <httplib.h>
#include <signal.h>

#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "presence/tools/alert-sink/check.h"
#include "test/support/process.h"

using namespace presence::test;
using nlohmann::json;

namespace {

const std::string kSecret = "demo-secret";

struct SinkProcess {
  TempDir dir;
  std::string log = dir.file("sink.log");
  std::string record = dir.file("record.jsonl");
  Process proc;
  int port = 0;

  SinkProcess()
      : proc({PRESENCE_ALERT_SINK_BIN, "--port", "0", "--record", record, "--secret-env",
              "SINK_TEST_SECRET"},
             dir.file("sink.log"), {{"SINK_TEST_SECRET", kSecret}}) {
    const std::regex listening(R"(listening on 127\.0\.0\.1:(\d+))");
    std::smatch m;
    REQUIRE_MESSAGE(wait_for(
                        [&] {
                          const std::string text = read_file(log);
                          if (!std::regex_search(text, m, listening)) return false;
                          port = std::stoi(m[1].str());
                          return true;
                        },
                        10s),
                    read_file(log));
  }

  httplib::Result post(const std::string& path, const std::string& body,
                       httplib::Headers headers = {}) {
    httplib::Client c("127.0.0.1", port);
    c.set_connection_timeout(5);
    c.set_read_timeout(5);
    return c.Post(path.c_str(), headers, body, "application/json");
  }

  std::vector<json> records() {
    std::vector<json> out;
    std::istringstream in(read_file(record));
    for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
    return out;
  }
};

std::string pd_trigger(bool with_routing_key = true) {
  json j{{"event_action", "trigger"},
         {"dedup_key", "presenced/device_offline/dev-7"},
         {"payload",
          {{"summary", "dev-7 offline for 30s (last will)"},
           {"source", "presenced"},
           {"severity", "critical"}}}};
  if (with_routing_key) j["routing_key"] = "0123456789abcdef0123456789abcdef";
  return j.dump();
}

}  // namespace

TEST_CASE("alert-sink: PagerDuty, Slack and webhook over HTTP") {
  SinkProcess sink;

  SUBCASE("valid PagerDuty trigger -> 202, printed and recorded") {
    auto r = sink.post("/v2/enqueue", pd_trigger());
    REQUIRE(r);
    CHECK(r->status == 202);
    const json body = json::parse(r->body);
    CHECK(body["status"] == "success");
    CHECK(body["dedup_key"] == "presenced/device_offline/dev-7");
    const auto recs = sink.records();
    REQUIRE(recs.size() == 1);
    CHECK(recs[0]["kind"] == "pagerduty");
    CHECK(recs[0]["ok"] == true);
    CHECK(recs[0]["status"] == 202);
    CHECK(recs[0]["body"]["payload"]["severity"] == "critical");
    CHECK(read_file(sink.log).find("pagerduty trigger presenced/device_offline/dev-7 critical") !=
          std::string::npos);
  }
  SUBCASE("PagerDuty without routing_key -> 400 with the reason, printed as REFUSED") {
    auto r = sink.post("/v2/enqueue", pd_trigger(false));
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(r->body.find("routing_key") != std::string::npos);
    CHECK(read_file(sink.log).find("REFUSED pagerduty POST /v2/enqueue -> 400") != std::string::npos);
    const auto recs = sink.records();
    REQUIRE(recs.size() == 1);
    CHECK(recs[0]["ok"] == false);
  }
  SUBCASE("Slack -> 200 ok") {
    auto r = sink.post("/slack/T000/B000/demo", R"({"text":"dev-7 offline"})");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "ok");
    CHECK(read_file(sink.log).find("slack /slack/T000/B000/demo \"dev-7 offline\"") != std::string::npos);
  }
  SUBCASE("webhook: good signature 200, bad signature 401") {
    const std::string body = R"({"v":1,"seq":1,"action":"trigger","type":"device_offline"})";
    auto good = sink.post("/webhook", body,
                          {{"X-Presence-Signature",
                            "sha256=" + presence::alert_sink::hmac_sha256_hex(kSecret, body)}});
    REQUIRE(good);
    CHECK(good->status == 200);
    auto bad = sink.post("/webhook", body, {{"X-Presence-Signature", "sha256=00"}});
    REQUIRE(bad);
    CHECK(bad->status == 401);
    auto none = sink.post("/webhook", body);
    REQUIRE(none);
    CHECK(none->status == 401);
    const auto recs = sink.records();
    REQUIRE(recs.size() == 3);
    CHECK(recs[0]["ok"] == true);
    CHECK(recs[1]["status"] == 401);
  }
  SUBCASE("unknown path -> 404, printed; health check answers") {
    auto r = sink.post("/v1/enqueue", "{}");
    REQUIRE(r);
    CHECK(r->status == 404);
    CHECK(read_file(sink.log).find("REFUSED unknown POST /v1/enqueue -> 404") != std::string::npos);
    httplib::Client c("127.0.0.1", sink.port);
    auto h = c.Get("/healthz");
    REQUIRE(h);
    CHECK(h->status == 200);
  }

  // SIGTERM: clean stop with a summary line.
  CHECK(sink.proc.stop(SIGTERM, 5s) == 0);
  CHECK(read_file(sink.log).find("presence-alert-sink: stopped;") != std::string::npos);
}

TEST_CASE("alert-sink: bad arguments exit 2") {
  TempDir dir;
  Process bad_port({PRESENCE_ALERT_SINK_BIN, "--port", "99999"}, dir.file("a.log"));
  CHECK(bad_port.wait_exit(5s) == 2);
  Process unknown({PRESENCE_ALERT_SINK_BIN, "--frobnicate"}, dir.file("b.log"));
  CHECK(unknown.wait_exit(5s) == 2);
  Process no_env({PRESENCE_ALERT_SINK_BIN, "--secret-env", "PRESENCE_SURELY_UNSET_VAR"}, dir.file("c.log"));
  CHECK(no_env.wait_exit(5s) == 2);
}
