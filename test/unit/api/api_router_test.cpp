// presence/api/api.*: the /v1 router mapped onto a fake backend. Real loopback HTTP, no engine.
#include <doctest/doctest.h>
#include <httplib.h>

#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "presence/api/api.h"

namespace {

using namespace presence::api;
using nlohmann::json;

const WallTime kT0 = WallTime(std::chrono::seconds(1'800'000'000));

// Devices live in a vector indexed like the engine's; devices() follows the contract of
// ApiBackend: scan from the cursor, stop at limit or scan_budget.
class FakeBackend : public ApiBackend {
 public:
  std::vector<DeviceSummary> fleet_;
  std::map<std::uint64_t, SilenceView> silences_;
  std::uint64_t next_silence = 1;
  DeviceQuery last_query;
  std::size_t scan_budget_override = 0;
  bool down = false;
  std::mutex mu;

  Result<DevicePage> devices(const DeviceQuery& q) override {
    std::lock_guard<std::mutex> lock(mu);
    last_query = q;
    if (down) return Result<DevicePage>::fail(ApiError::unavailable("engine busy"));
    DevicePage page;
    page.total = fleet_.size();
    const std::size_t budget = scan_budget_override ? scan_budget_override : q.scan_budget;
    std::size_t scanned = 0;
    std::uint64_t i = q.cursor;
    for (; i < fleet_.size(); ++i) {
      if (page.devices.size() == q.limit || scanned == budget) break;
      ++scanned;
      const auto& d = fleet_[i];
      if (!q.state.empty() && d.state != q.state) continue;
      if (d.id.rfind(q.id_prefix, 0) != 0) continue;
      bool ok = true;
      for (const auto& m : q.labels)
        ok = ok && std::find(d.labels.begin(), d.labels.end(), m) != d.labels.end();
      if (ok) page.devices.push_back(d);
    }
    if (i < fleet_.size()) page.next = i;
    return {page, {}};
  }
  Result<DeviceDetail> device(std::string_view id) override {
    for (const auto& d : fleet_)
      if (d.id == id) {
        DeviceDetail x;
        x.device = d;
        x.last_seen = kT0;
        x.transitions.push_back({kT0, "unknown", "online", "connected", ""});
        x.transitions.push_back({kT0 + std::chrono::seconds(5), "online", "suspect", "disconnected",
                                 "keepalive_timeout"});
        return {x, {}};
      }
    return Result<DeviceDetail>::fail(ApiError::not_found("no device"));
  }
  Result<FleetSummary> fleet() override {
    FleetSummary f;
    f.at = kT0;
    f.devices = fleet_.size();
    f.by_state = {{"unknown", 0}, {"online", 2}, {"suspect", 0}, {"offline", 1}, {"flapping", 0}};
    f.segments.push_back({"site", "a", 3, {{"online", 2}, {"offline", 1}}});
    return {f, {}};
  }
  Result<std::vector<FleetSample>> fleet_history() override {
    return {{{kT0, {0, 3, 0, 0, 0}}, {kT0 + std::chrono::seconds(10), {0, 2, 0, 1, 0}}}, {}};
  }
  Result<std::vector<IncidentSummary>> incidents() override {
    IncidentSummary i;
    i.id = 7;
    i.kind = "drop";
    i.stage = "open";
    i.scope_key = "broker_node";
    i.scope_value = "b1";
    i.opened_at = kT0;
    i.hint.push_back({"firmware", "2.1", 40, 0.8, 0.1, 8.0});
    return {{i}, {}};
  }
  Result<IncidentDetail> incident(std::uint32_t id) override {
    if (id != 7) return Result<IncidentDetail>::fail(ApiError::not_found("no incident"));
    IncidentDetail d;
    d.incident = incidents().value[0];
    d.held_devices = {"d1", "d2"};
    d.straggler_devices = {"d2"};
    return {d, {}};
  }
  bool alerts_down = false;
  Result<std::vector<FiringAlertView>> alerts() override {
    if (alerts_down) return Result<std::vector<FiringAlertView>>::fail(ApiError::unavailable("x"));
    FiringAlertView a;
    a.dedup_key = "presence/incident/7";
    a.type = "fleet_incident";
    a.kind = "incident";
    a.severity = "critical";
    a.summary = "broker_node=b1: 40 of 50 devices offline";
    a.scope = "broker_node=b1";
    a.since = kT0 + std::chrono::seconds(3);
    a.incident = 7;
    a.hint.push_back({"firmware", "2.1", 40, 0.8, 0.1, 8.0});
    a.device_count = 40;
    a.devices = {"d1", "d2"};
    FiringAlertView b;  // restored after a restart: no text, no severity
    b.dedup_key = "presence/device/d9";
    b.type = "device_offline";
    b.kind = "device";
    b.scope = "d9";
    b.since = kT0;
    b.device_count = 1;
    b.devices = {"d9"};
    return {{a, b}, {}};
  }
  Result<std::vector<SilenceView>> silences() override {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<SilenceView> out;
    for (const auto& [id, s] : silences_) out.push_back(s);
    return {out, {}};
  }
  Result<SilenceView> add_silence(const NewSilence& n) override {
    std::lock_guard<std::mutex> lock(mu);
    SilenceView s;
    s.id = next_silence++;
    s.match = n.match;
    s.starts_at = n.starts_at.value_or(kT0);
    s.ends_at = n.ends_at;
    s.comment = n.comment;
    silences_[s.id] = s;
    return {s, {}};
  }
  Result<bool> remove_silence(std::uint64_t id) override {
    std::lock_guard<std::mutex> lock(mu);
    return {silences_.erase(id) > 0, {}};
  }
};

DeviceSummary dev(std::string id, std::string state, std::vector<LabelPair> labels = {}) {
  DeviceSummary d;
  d.id = std::move(id);
  d.state = std::move(state);
  d.since = kT0;
  d.reason = "connected";
  d.labels = std::move(labels);
  return d;
}

struct Fixture {
  FakeBackend backend;
  httplib::Server server;
  std::thread thread;
  int port = 0;

  explicit Fixture(ApiOptions options = {}) {
    for (int i = 0; i < 25; ++i)
      backend.fleet_.push_back(dev("dev-" + std::to_string(100 + i),
                                   i % 5 == 0 ? "offline" : "online",
                                   {{"site", i % 2 ? "a" : "b"}}));
    register_api(server, backend, std::move(options));
    port = server.bind_to_any_port("127.0.0.1");
    REQUIRE(port > 0);
    thread = std::thread([this] { server.listen_after_bind(); });
  }
  ~Fixture() {
    server.stop();
    thread.join();
  }
  httplib::Client client(const std::string& token = {}) const {
    httplib::Client c("127.0.0.1", port);
    c.set_connection_timeout(2);
    c.set_read_timeout(5);
    if (!token.empty()) c.set_bearer_token_auth(token.c_str());
    return c;
  }
};

json body_of(const httplib::Result& r) {
  REQUIRE(r);
  return json::parse(r->body);
}

// Every error is {"error":{"code","message"}} with the status the code names.
void check_error(const httplib::Result& r, int status, const std::string& code) {
  REQUIRE(r);
  CHECK(r->status == status);
  CHECK(r->get_header_value("Content-Type") == "application/json");
  const json j = json::parse(r->body);
  REQUIRE(j.contains("error"));
  CHECK(j["error"]["code"] == code);
  CHECK(j["error"]["message"].is_string());
  CHECK_FALSE(j["error"]["message"].get<std::string>().empty());
}

}  // namespace

TEST_CASE("cursor: opaque, round-trips, refuses garbage") {
  for (std::uint64_t v : {0ull, 1ull, 35ull, 36ull, 999'999ull, 0xFFFFFFFFull}) {
    const auto c = encode_cursor(v);
    CHECK(c.rfind("c1_", 0) == 0);
    REQUIRE(decode_cursor(c));
    CHECK(*decode_cursor(c) == v);
  }
  CHECK_FALSE(decode_cursor(""));
  CHECK_FALSE(decode_cursor("c1_"));
  CHECK_FALSE(decode_cursor("12"));
  CHECK_FALSE(decode_cursor("c1_A"));
  CHECK_FALSE(decode_cursor("c1_!!"));
  CHECK_FALSE(decode_cursor("c1_zzzzzzzzzzzzz"));  // beyond 32-bit indices
  CHECK_FALSE(decode_cursor(encode_cursor(0x100000000ull)));
}

TEST_CASE("iso8601 and durations") {
  CHECK(iso8601(kT0) == "2027-01-15T08:00:00.000Z");
  CHECK(iso8601(kT0 + std::chrono::milliseconds(1)) == "2027-01-15T08:00:00.001Z");
  CHECK(parse_iso8601("2027-01-15T08:00:00Z") == kT0);
  CHECK(parse_iso8601("2027-01-15T08:00:00.5Z") == kT0 + std::chrono::milliseconds(500));
  CHECK(parse_iso8601("2027-01-15T10:00:00+02:00") == kT0);
  CHECK(parse_iso8601("2027-01-15T07:30:00-00:30") == kT0);
  CHECK_FALSE(parse_iso8601("2027-01-15T08:00:00"));  // no zone: ambiguous
  CHECK_FALSE(parse_iso8601("2027-13-15T08:00:00Z"));
  CHECK_FALSE(parse_iso8601("2027-01-15 08:00:00Z"));
  CHECK_FALSE(parse_iso8601("2027-01-15T08:00:00Zjunk"));
  CHECK(parse_duration("90s") == std::chrono::seconds(90));
  CHECK(parse_duration("2h") == std::chrono::hours(2));
  CHECK(parse_duration("500ms") == std::chrono::milliseconds(500));
  CHECK_FALSE(parse_duration("2"));
  CHECK_FALSE(parse_duration("h"));
  CHECK_FALSE(parse_duration("-1s"));
  CHECK_FALSE(parse_duration("1w"));
}

TEST_CASE("loopback hosts") {
  CHECK(is_loopback_host("127.0.0.1"));
  CHECK(is_loopback_host("127.1.2.3"));
  CHECK(is_loopback_host("::1"));
  CHECK(is_loopback_host("localhost"));
  CHECK_FALSE(is_loopback_host("0.0.0.0"));
  CHECK_FALSE(is_loopback_host("::"));
  CHECK_FALSE(is_loopback_host("10.0.0.1"));
  CHECK_FALSE(is_loopback_host("1270.0.0.1"));
}

TEST_CASE("devices: pages follow the cursor to the end, each device exactly once") {
  Fixture f;
  auto c = f.client();
  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  while (true) {
    auto r = c.Get(("/v1/devices?limit=10" + (cursor.empty() ? "" : "&cursor=" + cursor)).c_str());
    REQUIRE(r);
    REQUIRE(r->status == 200);
    const json j = json::parse(r->body);
    CHECK(j["total"] == 25);
    CHECK(j["devices"].size() <= 10);
    for (const auto& d : j["devices"]) seen.push_back(d["id"]);
    ++pages;
    if (j["next_cursor"].is_null()) break;
    cursor = j["next_cursor"];
    REQUIRE(pages < 10);
  }
  CHECK(pages == 3);
  REQUIRE(seen.size() == 25);
  for (int i = 0; i < 25; ++i)
    CHECK(seen[static_cast<std::size_t>(i)] == "dev-" + std::to_string(100 + i));
}

TEST_CASE("devices: limit boundaries, default and maximum") {
  ApiOptions o;
  o.max_limit = 20;
  o.default_limit = 7;
  Fixture f(o);
  auto c = f.client();
  CHECK(body_of(c.Get("/v1/devices"))["devices"].size() == 7);
  CHECK(body_of(c.Get("/v1/devices?limit=1"))["devices"].size() == 1);
  CHECK(body_of(c.Get("/v1/devices?limit=20"))["devices"].size() == 20);
  check_error(c.Get("/v1/devices?limit=21"), 400, "bad_request");
  check_error(c.Get("/v1/devices?limit=0"), 400, "bad_request");
  check_error(c.Get("/v1/devices?limit=-3"), 400, "bad_request");
  check_error(c.Get("/v1/devices?limit=ten"), 400, "bad_request");
}

TEST_CASE("devices: filters reach the backend; a short page still carries the cursor") {
  Fixture f;
  auto c = f.client();
  auto j = body_of(c.Get("/v1/devices?state=offline&label.site=b&limit=100"));
  CHECK(f.backend.last_query.state == "offline");
  REQUIRE(f.backend.last_query.labels.size() == 1);
  CHECK(f.backend.last_query.labels[0] == LabelPair{"site", "b"});
  // offline: 0,5,10,15,20; site b: even -> 0,10,20
  REQUIRE(j["devices"].size() == 3);
  CHECK(j["devices"][0]["id"] == "dev-100");
  CHECK(j["devices"][0]["state"] == "offline");
  CHECK(j["devices"][0]["labels"]["site"] == "b");
  CHECK(j["next_cursor"].is_null());

  CHECK(body_of(c.Get("/v1/devices?id_prefix=dev-11"))["devices"].size() == 10);

  // The scan budget ran out before limit: fewer devices, but a cursor to go on with.
  f.backend.scan_budget_override = 4;
  j = body_of(c.Get("/v1/devices?state=offline&limit=100"));
  CHECK(j["devices"].size() == 1);  // index 0 of 0..3
  REQUIRE(j["next_cursor"].is_string());
  CHECK(*decode_cursor(j["next_cursor"].get<std::string>()) == 4);
}

TEST_CASE("devices: bad parameters are 400 JSON") {
  Fixture f;
  auto c = f.client();
  check_error(c.Get("/v1/devices?state=dead"), 400, "bad_request");
  check_error(c.Get("/v1/devices?cursor=12"), 400, "bad_request");
  check_error(c.Get("/v1/devices?cursor=c1_%21"), 400, "bad_request");
  check_error(c.Get("/v1/devices?colour=red"), 400, "bad_request");
  check_error(c.Get("/v1/devices?label.=x"), 400, "bad_request");
  check_error(c.Get(("/v1/devices?id_prefix=" + std::string(5000, 'x')).c_str()), 400,
              "bad_request");
}

TEST_CASE("devices: a backend failure keeps its status") {
  Fixture f;
  f.backend.down = true;
  check_error(f.client().Get("/v1/devices"), 503, "unavailable");
}

TEST_CASE("device detail, 404 for an unknown id") {
  Fixture f;
  auto c = f.client();
  const json j = body_of(c.Get("/v1/devices/dev-103"));
  CHECK(j["id"] == "dev-103");
  CHECK(j["since"] == "2027-01-15T08:00:00.000Z");
  REQUIRE(j["transitions"].size() == 2);
  CHECK(j["transitions"][1]["to"] == "suspect");
  CHECK(j["transitions"][1]["disconnect_reason"] == "keepalive_timeout");
  CHECK(j["held_by_incident"].is_null());
  check_error(c.Get("/v1/devices/nope"), 404, "not_found");
  // Any id a topic level can carry, percent-encoded in the path.
  f.backend.fleet_[4].id = "a b%c+d";
  auto e = c.Get("/v1/devices/a%20b%25c%2Bd");
  REQUIRE(e);
  CHECK(e->status == 200);
  CHECK(json::parse(e->body)["id"] == "a b%c+d");
  // Ids come from MQTT topics: invalid UTF-8 is answered (replaced), not a 500.
  f.backend.fleet_[3].id = "bad\xff\xfe";
  auto r = c.Get("/v1/devices?limit=5");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(json::parse(r->body)["devices"][3]["id"] == "bad\xef\xbf\xbd\xef\xbf\xbd");
  check_error(c.Get(("/v1/devices/" + std::string(4097, 'x')).c_str()), 400, "bad_request");
}

TEST_CASE("fleet and incidents") {
  Fixture f;
  auto c = f.client();
  json j = body_of(c.Get("/v1/fleet"));
  CHECK(j["devices"] == 25);
  CHECK(j["counts"]["online"] == 2);
  CHECK(j["segments"][0]["key"] == "site");
  CHECK(j["segments"][0]["counts"]["offline"] == 1);
  j = body_of(c.Get("/v1/fleet/history"));
  REQUIRE(j["samples"].size() == 2);
  CHECK(j["samples"][1]["at"] == "2027-01-15T08:00:10.000Z");
  CHECK(j["samples"][1]["counts"]["offline"] == 1);
  CHECK(j["samples"][0]["counts"]["online"] == 3);
  j = body_of(c.Get("/v1/incidents"));
  REQUIRE(j["incidents"].size() == 1);
  CHECK(j["incidents"][0]["scope"]["key"] == "broker_node");
  CHECK(j["incidents"][0]["closed_at"].is_null());
  CHECK(j["incidents"][0]["cohort_hint"][0]["value"] == "2.1");
  j = body_of(c.Get("/v1/incidents/7"));
  CHECK(j["held_devices"].size() == 2);
  CHECK(j["straggler_devices"][0] == "d2");
  check_error(c.Get("/v1/incidents/8"), 404, "not_found");
  check_error(c.Get("/v1/incidents/abc"), 400, "bad_request");
  check_error(c.Get("/v1/incidents/0"), 400, "bad_request");
}

TEST_CASE("alerts: every firing page with its text, scope, devices and hint") {
  Fixture f;
  auto c = f.client();
  const auto r = c.Get("/v1/alerts");
  REQUIRE(r);
  CHECK(r->status == 200);
  const json j = json::parse(r->body);
  REQUIRE(j["alerts"].size() == 2);
  const json& a = j["alerts"][0];
  CHECK(a["dedup_key"] == "presence/incident/7");
  CHECK(a["type"] == "fleet_incident");
  CHECK(a["kind"] == "incident");
  CHECK(a["severity"] == "critical");
  CHECK(a["summary"] == "broker_node=b1: 40 of 50 devices offline");
  CHECK(a["scope"] == "broker_node=b1");
  CHECK(a["since"] == "2027-01-15T08:00:03.000Z");
  CHECK(a["incident"] == 7);
  CHECK(a["cohort_hint"][0]["key"] == "firmware");
  CHECK(a["cohort_hint"][0]["lift"] == 8.0);
  CHECK(a["device_count"] == 40);
  CHECK(a["devices"] == json::array({"d1", "d2"}));
  const json& b = j["alerts"][1];
  CHECK(b["severity"].is_null());
  CHECK(b["incident"].is_null());
  CHECK(b["cohort_hint"].empty());
  f.backend.alerts_down = true;
  check_error(c.Get("/v1/alerts"), 503, "unavailable");
}

TEST_CASE("unknown /v1 endpoints are JSON 404") {
  Fixture f;
  auto c = f.client();
  check_error(c.Get("/v1/nothing"), 404, "not_found");
  check_error(c.Put("/v1/devices", "{}", "application/json"), 404, "not_found");
}

TEST_CASE("token rules on loopback: reads are open, writes need the token") {
  ApiOptions o;
  o.token = "s3cret";
  Fixture f(o);
  CHECK(f.client().Get("/v1/silences")->status == 200);
  const std::string body = R"({"match":{"site":"a"},"duration":"1h"})";
  check_error(f.client().Post("/v1/silences", body, "application/json"), 401, "unauthorized");
  auto r = f.client().Post("/v1/silences", body, "application/json");
  CHECK(r->get_header_value("WWW-Authenticate").rfind("Bearer", 0) == 0);
  check_error(f.client("wrong").Post("/v1/silences", body, "application/json"), 401,
              "unauthorized");
  check_error(f.client("s3cre").Post("/v1/silences", body, "application/json"), 401,
              "unauthorized");
  check_error(f.client("s3cret!").Post("/v1/silences", body, "application/json"), 401,
              "unauthorized");
  CHECK(f.client("s3cret").Post("/v1/silences", body, "application/json")->status == 201);
  check_error(f.client().Delete("/v1/silences/1"), 401, "unauthorized");
  CHECK(f.backend.silences_.size() == 1);  // the refused calls changed nothing
}

TEST_CASE("token rules: no token configured means no writes at all") {
  Fixture f;
  check_error(f.client().Post("/v1/silences", R"({"duration":"1h"})", "application/json"), 403,
              "forbidden");
  check_error(f.client("anything").Delete("/v1/silences/1"), 403, "forbidden");
  CHECK(f.backend.silences_.empty());
}

TEST_CASE("token rules off loopback: reads need the token too, the dashboard does not") {
  ApiOptions o;
  o.token = "s3cret";
  o.require_token_for_reads = true;
  Fixture f(o);
  for (const char* path : {"/v1/devices", "/v1/devices/dev-100", "/v1/fleet", "/v1/incidents",
                           "/v1/incidents/7", "/v1/silences"}) {
    CAPTURE(path);
    check_error(f.client().Get(path), 401, "unauthorized");
    check_error(f.client("nope").Get(path), 401, "unauthorized");
    CHECK(f.client("s3cret").Get(path)->status == 200);
  }
  // The page itself holds no data; it asks for the token.
  auto r = f.client().Get("/");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body.find("<title>presenced</title>") != std::string::npos);
}

TEST_CASE("extra reads (GET /v1/ha): off loopback, missing or wrong token 401, right one 200") {
  ApiOptions o;
  o.token = "s3cret";
  o.require_token_for_reads = true;
  o.extra_reads.emplace_back("/v1/ha", [] { return std::string(R"({"v":1,"role":"leader"})"); });
  Fixture f(o);
  auto r = f.client().Get("/v1/ha");
  check_error(r, 401, "unauthorized");
  CHECK(r->get_header_value("WWW-Authenticate").rfind("Bearer", 0) == 0);
  check_error(f.client("nope").Get("/v1/ha"), 401, "unauthorized");
  check_error(f.client("s3cre").Get("/v1/ha"), 401, "unauthorized");
  r = f.client("s3cret").Get("/v1/ha");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(json::parse(r->body)["role"] == "leader");
  // On loopback (no token needed for reads) it is open, like every /v1 read.
  ApiOptions open;
  open.extra_reads = o.extra_reads;
  Fixture g(open);
  r = g.client().Get("/v1/ha");
  REQUIRE(r);
  CHECK(r->status == 200);
}

TEST_CASE("silences: create, list, delete, and every bad body is a 400") {
  ApiOptions o;
  o.token = "t";
  Fixture f(o);
  auto c = f.client("t");
  auto r = c.Post("/v1/silences",
                  R"({"match":{"site":"a","alert":"device_offline"},
                      "starts_at":"2027-01-15T08:00:00Z","ends_at":"2027-01-15T10:00:00Z",
                      "comment":"maintenance"})",
                  "application/json");
  REQUIRE(r);
  REQUIRE(r->status == 201);
  json j = json::parse(r->body);
  CHECK(j["id"] == 1);
  CHECK(r->get_header_value("Location") == "/v1/silences/1");
  CHECK(j["match"]["site"] == "a");
  CHECK(j["match"]["alert"] == "device_offline");
  CHECK(j["starts_at"] == "2027-01-15T08:00:00.000Z");
  CHECK(j["ends_at"] == "2027-01-15T10:00:00.000Z");
  CHECK(j["comment"] == "maintenance");

  // duration counts from starts_at
  r = c.Post("/v1/silences", R"({"starts_at":"2027-01-15T08:00:00Z","duration":"90m"})",
             "application/json");
  REQUIRE(r->status == 201);
  CHECK(json::parse(r->body)["ends_at"] == "2027-01-15T09:30:00.000Z");

  j = body_of(c.Get("/v1/silences"));
  CHECK(j["silences"].size() == 2);

  for (const char* bad :
       {"", "not json", "[]", R"({"match":{"site":"a"}})",  // no end
        R"({"match":["site"],"duration":"1h"})", R"({"match":{"site":1},"duration":"1h"})",
        R"({"match":{"site":""},"duration":"1h"})", R"({"duration":"1 hour"})",
        R"({"duration":"0s"})", R"({"ends_at":"tomorrow"})",
        R"({"ends_at":"2027-01-15T10:00:00Z","duration":"1h"})",
        R"({"starts_at":"2027-01-15T10:00:00Z","ends_at":"2027-01-15T10:00:00Z"})",
        R"({"starts_at":"2027-01-15T10:00:00Z","ends_at":"2027-01-15T09:59:59.999Z"})",
        R"({"duration":"1h","comment":5})"}) {
    CAPTURE(bad);
    check_error(c.Post("/v1/silences", bad, "application/json"), 400, "bad_request");
  }
  // T+1ms after start is the shortest valid silence.
  CHECK(c.Post("/v1/silences",
               R"({"starts_at":"2027-01-15T10:00:00Z","ends_at":"2027-01-15T10:00:00.001Z"})",
               "application/json")
            ->status == 201);
  check_error(
      c.Post("/v1/silences", R"({"duration":"1h","comment":")" + std::string(1025, 'x') + "\"}",
             "application/json"),
      400, "bad_request");
  check_error(c.Post("/v1/silences", std::string(70 * 1024, ' '), "application/json"), 413,
              "too_large");
  CHECK(f.backend.silences_.size() == 3);

  r = c.Delete("/v1/silences/1");
  REQUIRE(r);
  CHECK(r->status == 204);
  check_error(c.Delete("/v1/silences/1"), 404, "not_found");
  check_error(c.Delete("/v1/silences/x"), 400, "bad_request");
  check_error(c.Delete("/v1/silences/0"), 400, "bad_request");
  CHECK(body_of(c.Get("/v1/silences"))["silences"].size() == 2);
}

TEST_CASE("counters and the 5xx log") {
  ApiOptions o;
  o.counters = std::make_shared<ApiCounters>();
  std::vector<std::string> logged;
  std::mutex mu;
  o.log = [&](std::string_view code, std::string_view line) {
    std::lock_guard<std::mutex> lock(mu);
    logged.push_back(std::string(code) + "|" + std::string(line));
  };
  Fixture f(o);
  auto c = f.client();
  c.Get("/v1/fleet");
  c.Get("/v1/devices?limit=0");
  c.Get("/v1/devices/nope");
  c.Post("/v1/silences", "{}", "application/json");  // no token configured: forbidden
  f.backend.down = true;
  c.Get("/v1/devices");
  const std::string text = render_prometheus(*o.counters);
  CHECK(text.find("presence_api_requests_total 5\n") != std::string::npos);
  CHECK(text.find("presence_api_errors_total{code=\"bad_request\"} 1\n") != std::string::npos);
  CHECK(text.find("presence_api_errors_total{code=\"not_found\"} 1\n") != std::string::npos);
  CHECK(text.find("presence_api_errors_total{code=\"forbidden\"} 1\n") != std::string::npos);
  CHECK(text.find("presence_api_errors_total{code=\"unavailable\"} 1\n") != std::string::npos);
  CHECK(text.find("presence_api_errors_total{code=\"internal\"} 0\n") != std::string::npos);
  std::lock_guard<std::mutex> lock(mu);
  REQUIRE(logged.size() == 1);  // only the server-side failure
  CHECK(logged[0].rfind("unavailable|api: GET /v1/devices: 503", 0) == 0);
}

TEST_CASE("dashboard assets are embedded and served without the network") {
  Fixture f;
  auto c = f.client();
  auto r = c.Get("/");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->get_header_value("Content-Type").rfind("text/html", 0) == 0);
  CHECK(r->body.find("/assets/app.js") != std::string::npos);
  CHECK(r->body.find("http://") == std::string::npos);  // nothing loaded from elsewhere
  CHECK(r->body.find("https://") == std::string::npos);
  r = c.Get("/assets/app.js");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body.find("/v1/fleet") != std::string::npos);
  CHECK(r->get_header_value("Content-Security-Policy").find("default-src 'self'") !=
        std::string::npos);
  CHECK(c.Get("/assets/app.css")->status == 200);
  check_error(c.Get("/assets/secret.txt"), 404, "not_found");
}

// Issue 19 item 5: ends_at in 2300 was stored as 1715 (the nanosecond clock overflowed after
// 2262). Times before 1970 are refused; times after 2200-01-01 are clamped to it.
TEST_CASE("time inputs: validated and clamped, never overflowed") {
  const auto max = parse_iso8601("2200-01-01T00:00:00Z");
  REQUIRE(max);
  CHECK(iso8601(*max) == "2200-01-01T00:00:00.000Z");
  CHECK(parse_iso8601("2199-12-31T23:59:59.999Z") == *max - std::chrono::milliseconds(1));  // T-1
  CHECK(parse_iso8601("2200-01-01T00:00:00.001Z") == *max);                                // T+1
  CHECK(parse_iso8601("2300-06-13T00:00:00Z") == *max);
  CHECK(parse_iso8601("9999-12-31T23:59:59Z") == *max);
  CHECK(parse_iso8601("1970-01-01T00:00:00Z") == WallTime{});
  CHECK_FALSE(parse_iso8601("1969-12-31T23:59:59Z"));
  CHECK_FALSE(parse_iso8601("1715-06-13T00:00:00Z"));
  CHECK_FALSE(parse_iso8601("1970-01-01T00:30:00+01:00"));  // 1969 in UTC

  ApiOptions o;
  o.token = "t";
  Fixture f(o);
  auto c = f.client("t");
  auto r = c.Post("/v1/silences", R"({"ends_at":"2300-01-01T00:00:00Z","comment":"for good"})",
                  "application/json");
  REQUIRE(r);
  REQUIRE(r->status == 201);
  CHECK(json::parse(r->body)["ends_at"] == "2200-01-01T00:00:00.000Z");
  // A duration that would overflow: 999,999,999 days.
  check_error(c.Post("/v1/silences", R"({"duration":"999999999d"})", "application/json"), 400,
              "bad_request");
  // 100 years from 2190 ends at the clamp, not in the past.
  r = c.Post("/v1/silences", R"({"starts_at":"2190-01-01T00:00:00Z","duration":"36500d"})",
             "application/json");
  REQUIRE(r);
  REQUIRE(r->status == 201);
  CHECK(json::parse(r->body)["ends_at"] == "2200-01-01T00:00:00.000Z");
  check_error(c.Post("/v1/silences", R"({"starts_at":"1960-01-01T00:00:00Z","duration":"1h"})",
                     "application/json"),
              400, "bad_request");
  for (const auto& [id, s] : f.backend.silences_) CHECK(s.ends_at > s.starts_at);
}
