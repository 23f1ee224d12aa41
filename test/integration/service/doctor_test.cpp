// Device-hygiene report (issue 14 item 6): a real mosquitto with broker-ext, a real presenced, and
// a few badly configured clients (mosquitto_sub / mosquitto_pub) -> GET /v1/doctor names each
// with its check, and `presencectl doctor` prints it. The well configured device gets nothing.
#include <doctest/doctest.h>

#include <set>
#include <thread>

#include "test/integration/service/harness.h"

using namespace presence::itest;
using presence::test::Mosquitto;
using presence::test::Process;

namespace {

// mosquitto_sub as a device: client id, keepalive, optional will (retained, QoS 1).
Process client(int port, const std::string& id, int keepalive, const std::string& will_topic) {
  std::vector<std::string> argv{presence::test::find_program("mosquitto_sub"), "-h", "127.0.0.1",
                                "-p", std::to_string(port), "-i", id, "-k",
                                std::to_string(keepalive), "-t", "cmd/" + id};
  if (!will_topic.empty()) {
    for (const char* a : {"--will-topic"}) argv.push_back(a);
    argv.push_back(will_topic);
    for (const char* a : {"--will-payload", "offline", "--will-retain", "--will-qos", "1"})
      argv.push_back(a);
  }
  return Process(argv);
}

std::set<std::string> checks_for(const nlohmann::json& report, const std::string& id) {
  std::set<std::string> out;
  for (const auto& f : report["findings"])
    if (f.value("id", "") == id) out.insert(f.value("check", ""));
  return out;
}

bool broker_lists(Presenced& p, const std::string& id) {
  auto j = nlohmann::json::parse(p.body("/v1/devices/" + id), nullptr, false);
  return j.is_object() && j.value("state", "") == "online";
}
}  // namespace

TEST_CASE("doctor: each badly configured client is named with what is wrong and the fix") {
  Mosquitto broker(broker_ext_conf("dr-node"));
  broker.start();
  const int port = broker.port();

  // Before presenced starts, so that its subscription replays the broker's retained state:
  // - dr-nrb: its retained will says offline from a previous life; the new connection's birth
  //   is not retained -> birth_not_retained.
  {
    auto old_life = client(port, "dr-nrb", 5, "devices/dr-nrb/status");
    REQUIRE(wait_for([&] { return old_life.running(); }, 2s));
    std::this_thread::sleep_for(300ms);  // connected (mosquitto_sub has no "ready" signal)
    old_life.signal(SIGKILL);            // socket gone: the broker publishes the retained will
    old_life.wait_exit(5000ms);
  }
  auto nrb = client(port, "dr-nrb", 5, "devices/dr-nrb/status");
  // - dr-stale: retained birth, no will, gone -> stale_retained_online.
  mqtt_pub(port, "devices/dr-stale/status", "online", /*retain=*/true);

  PresencedOptions o;
  // Keepalive check: 1.5 x keepalive against this ceiling (a 60 s keepalive is 90 s).
  o.presence_extra = "  heartbeat_timeout_ceiling: 10s\n";
  o.extra = "sources:\n  - preset: tasmota\n  - name: lwt\n    status: [\"devices/{id}/lwt\"]\n    online: [online]\n    offline: [offline]\n";
  Presenced presenced(port, o);
  presenced.start();
  REQUIRE(wait_for([&] { return broker_lists(presenced, "dr-nrb"); }, 10s));

  // dr-good: retained will and birth on one topic, heartbeats, short keepalive: nothing to say.
  auto good = client(port, "dr-good", 5, "devices/dr-good/status");
  mqtt_pub(port, "devices/dr-good/status", "online", true);
  // dr-nowill: birth and heartbeat but no will; dies -> no_last_will.
  auto nowill = client(port, "dr-nowill", 5, "");
  mqtt_pub(port, "devices/dr-nowill/status", "online", true);
  // dr-ka: keepalive 60 s -> keepalive_too_long.
  auto ka = client(port, "dr-ka", 60, "devices/dr-ka/status");
  mqtt_pub(port, "devices/dr-ka/status", "online", true);
  // dr-unmatched: its will goes to a topic no pattern matches -> will_topic_unmatched.
  auto unmatched = client(port, "dr-unmatched", 5, "other/dr-unmatched/lwt");
  // dr-split: birth on .../status, will on .../lwt -> birth_will_topics_differ.
  auto split = client(port, "dr-split", 5, "devices/dr-split/lwt");
  mqtt_pub(port, "devices/dr-split/status", "online", true);
  // dr-dup: the same id through topics.status and the tasmota preset -> id_in_two_sources.
  mqtt_pub(port, "devices/dr-dup/status", "online", true);
  mqtt_pub(port, "tele/dr-dup/LWT", "Online", true);
  // dr-mute: births, never a heartbeat -> births_without_heartbeats (after the 10 s ceiling).
  mqtt_pub(port, "devices/dr-mute/status", "online", true);
  // A random-looking id seen for one session -> random_client_id_churn.
  const std::string random_id = "mqttjs_3f9a1c2b";
  auto churn = client(port, random_id, 5, "devices/" + random_id + "/status");
  for (const char* id : {"dr-good", "dr-nowill", "dr-ka", "dr-split", "dr-dup", "dr-nrb"})
    mqtt_pub(port, std::string("devices/") + id + "/heartbeat", "1");
  mqtt_pub(port, "tele/dr-dup/STATE", "{}");
  REQUIRE(wait_for([&] { return broker_lists(presenced, "dr-ka"); }, 10s));
  REQUIRE(wait_for([&] { return broker_lists(presenced, random_id); }, 10s));

  // The failures: killed (the broker sends the wills it has), the churner leaves cleanly.
  for (Process* p : {&nowill, &unmatched, &split}) p->signal(SIGKILL);
  churn.signal(SIGINT);
  for (Process* p : {&nowill, &unmatched, &split, &churn}) p->wait_exit(5000ms);

  // will_wait (10 s) after the disconnects, and the 10 s heartbeat ceiling for dr-mute.
  const std::map<std::string, std::string> expected{
      {"dr-nowill", "no_last_will"},
      {"dr-unmatched", "will_topic_unmatched"},
      {"dr-nrb", "birth_not_retained"},
      {"dr-stale", "stale_retained_online"},
      {"dr-split", "birth_will_topics_differ"},
      {"dr-ka", "keepalive_too_long"},
      {"dr-mute", "births_without_heartbeats"},
      {"dr-dup", "id_in_two_sources"},
      {random_id, "random_client_id_churn"},
  };
  nlohmann::json report;
  const bool all = wait_for(
      [&] {
        report = nlohmann::json::parse(presenced.body("/v1/doctor?limit=1000"), nullptr, false);
        if (!report.is_object()) return false;
        for (const auto& [id, check] : expected)
          if (!checks_for(report, id).count(check)) return false;
        return true;
      },
      40s);
  INFO(report.dump(2));
  CHECK(all);
  for (const auto& [id, check] : expected) {
    INFO(id << " " << check);
    CHECK(checks_for(report, id).count(check) == 1);
  }
  CHECK(checks_for(report, "dr-good").empty());
  for (const auto& f : report["findings"]) {
    CHECK_FALSE(f.value("problem", "").empty());
    CHECK_FALSE(f.value("fix", "").empty());
  }
  CHECK(report["v"] == 1);
  CHECK(report["counts"]["keepalive_too_long"].get<int>() >= 1);
  CHECK(presenced.status("/v1/doctor?limit=0") == 400);
  CHECK(presenced.status("/v1/doctor?bogus=1") == 400);

  // presencectl doctor prints each device with its check, problem and fix.
  const std::string out_file = std::string(PRESENCE_BINARY_DIR) + "/doctor-presencectl-" +
                               unique_suffix() + ".txt";
  Process ctl({"/usr/bin/env", "PRESENCE_URL=http://127.0.0.1:" +
                                   std::to_string(presenced.http_port()),
               "bash", std::string(PRESENCE_SOURCE_DIR) + "/scripts/presencectl", "doctor"},
              out_file);
  REQUIRE(ctl.wait_exit(20000ms) == 0);
  const std::string out = presence::test::read_file(out_file);
  std::remove(out_file.c_str());
  INFO(out);
  for (const auto& [id, check] : expected) CHECK(out.find(id + "  " + check) != std::string::npos);
  CHECK(out.find("  fix:     ") != std::string::npos);
  CHECK(out.find("device(s) checked") != std::string::npos);

  for (Process* p : {&good, &ka, &nrb}) p->stop(SIGTERM, 5000ms);
}
