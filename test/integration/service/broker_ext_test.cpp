// presenced with the broker-ext plugin loaded into a real mosquitto: session events are the
// authoritative source (docs/topics.md "How sources combine"), a superseded disconnect is a
// takeover and never a departure, and a new boot id is a broker restart.
#include <doctest/doctest.h>

#include <filesystem>

#include <thread>

#include "test/integration/service/harness.h"

using namespace presence::itest;
using presence::test::Mosquitto;

TEST_CASE("broker-ext: connect -> online, crash -> suspect -> offline, without any status topic") {
  Mosquitto broker(broker_ext_conf());
  broker.start();
  Presenced presenced(broker.port());
  presenced.start();
  Observer obs(broker.uri());

  auto dev = will_device(broker.port(), "bx-1");  // no birth published: the broker tells us
  REQUIRE(obs.wait_state("bx-1", "online"));
  CHECK(obs.latest("bx-1")["reason"] == "connected");
  dev.signal(SIGKILL);
  REQUIRE(obs.wait_state("bx-1", "offline", 10s));
  const auto h = obs.history("bx-1");
  REQUIRE(h.size() >= 2);
  CHECK(h[h.size() - 2] == "suspect");
}

TEST_CASE("broker-ext: a clean disconnect without a last-will is seen as gone") {
  // Issue 4's must-show: Mosquitto publishes no will on a clean DISCONNECT, so without broker-ext
  // this device would stay "online" forever.
  Mosquitto broker(broker_ext_conf());
  broker.start();
  Presenced presenced(broker.port());
  presenced.start();
  Observer obs(broker.uri());

  // No will, no birth: a plain subscriber that says goodbye properly when interrupted.
  presence::test::Process dev({presence::test::find_program("mosquitto_sub"), "-h", "127.0.0.1", "-p",
                     std::to_string(broker.port()), "-i", "clean-1", "-k", "5", "-t",
                     "devices/clean-1/cmd"});
  REQUIRE(obs.wait_state("clean-1", "online"));
  dev.signal(SIGINT);  // mosquitto_sub sends DISCONNECT on SIGINT
  REQUIRE(dev.wait_exit(5s) == 0);
  REQUIRE(obs.wait_state("clean-1", "offline", 10s));
  const auto h = obs.history("clean-1");
  REQUIRE(h.size() >= 3);
  CHECK(h[h.size() - 3] == "online");
  CHECK(h[h.size() - 2] == "suspect");
}

TEST_CASE("broker-ext: a session takeover is not a departure") {
  Mosquitto broker(broker_ext_conf());
  broker.start();
  Presenced presenced(broker.port());
  presenced.start();
  Observer obs(broker.uri());

  auto first = will_device(broker.port(), "tk-1");
  REQUIRE(obs.wait_state("tk-1", "online"));
  // Same client id again: the broker drops the old connection (superseded) for the new one.
  // mosquitto_sub would reconnect and fight for the id, so the old one is stopped right after.
  auto second = will_device(broker.port(), "tk-1");
  REQUIRE(wait_for([&] { return presenced.metric("presence_mqtt_messages_total") >= 4; }, 5s));
  first.signal(SIGKILL);
  // The old connection's will ("offline") may still be published by the broker; what matters is
  // that the device is online at the end and never declared offline.
  CHECK_FALSE(wait_for([&] { return obs.state("tk-1") == "offline"; }, 2500ms));
  for (const auto& s : obs.history("tk-1")) CHECK(s != "offline");
}

TEST_CASE("broker-ext: a new boot id after a broker restart is detected") {
  Mosquitto broker(broker_ext_conf());
  broker.start();
  Presenced presenced(broker.port());
  presenced.start();
  REQUIRE(wait_for([&] { return presenced.metric("presence_mqtt_messages_total") >= 1; }, 5s));
  CHECK(presenced.metric("presence_broker_restarts_total") == 0);
  broker.stop(SIGKILL);
  REQUIRE(wait_for([&] { return presenced.status("/readyz") == 503; }, 5s));
  broker.start();
  REQUIRE(wait_for([&] { return presenced.metric("presence_broker_restarts_total") == 1; }, 10s));
  CHECK(presenced.log().find("broker restart detected (broker-ext boot id changed)") !=
        std::string::npos);
}

TEST_CASE("mosquitto #1165: after a broker restart a replayed retained online is not proof of life") {
  // Persistence on: the restarted broker replays the retained "online" of a device that died
  // with it (its will was never published). broker-ext's new boot id tells presenced the broker
  // restarted, so restart grace does not take the replay as evidence.
  presence::test::TempDir store;
  std::filesystem::permissions(store.path(), std::filesystem::perms::all);  // mosquitto user
  Mosquitto broker(broker_ext_conf() + "persistence true\npersistence_location " + store.path() +
                   "/\nautosave_interval 1\n");
  broker.start();
  Presenced presenced(broker.port());
  presenced.start();
  Observer obs(broker.uri());
  auto dev = will_device(broker.port(), "gone-1");
  mqtt_pub(broker.port(), "devices/gone-1/status", "online", true);
  REQUIRE(obs.wait_state("gone-1", "online"));
  std::this_thread::sleep_for(2500ms);  // let autosave (1 s) write the retained "online"

  broker.stop(SIGKILL);  // the broker dies, and the device with it
  dev.signal(SIGKILL);
  REQUIRE(wait_for([&] { return presenced.status("/readyz") == 503; }, 5s));
  broker.start();
  {
    // The restarted broker really replays the stale "online" (else this test proves nothing).
    const std::string out = store.file("retained.txt");
    presence::test::Process sub({presence::test::find_program("mosquitto_sub"), "-h", "127.0.0.1",
                                 "-p", std::to_string(broker.port()), "-t", "devices/gone-1/status",
                                 "-C", "1", "-W", "3", "--retained-only"},
                                out);
    sub.wait_exit(5000ms);
    CHECK(presence::test::read_file(out) == "online\n");
  }

  REQUIRE(wait_for([&] { return presenced.metric("presence_broker_restarts_total") == 1; }, 10s));
  REQUIRE(obs.wait_state("gone-1", "offline", 30s));
  CHECK(obs.latest("gone-1")["reason"] == "restart_grace");
}

TEST_CASE("broker-ext: a client in topics.ignore_ids is not a device") {
  // broker-ext reports every client; a backend service (or another presenced) must not become a
  // device that is paged when it disconnects (scenario 01 paged the other presenced instance).
  Mosquitto broker(broker_ext_conf());
  broker.start();
  PresencedOptions o;
  o.extra = "topics:\n  ignore_ids: [\"backend-*\"]\n";
  Presenced presenced(broker.port(), o);
  presenced.start();
  Observer obs(broker.uri());

  auto backend = will_device(broker.port(), "backend-7");
  auto dev = will_device(broker.port(), "bx-2");
  REQUIRE(obs.wait_state("bx-2", "online"));
  REQUIRE(wait_for([&] { return presenced.metric("presence_ignored_ids_total") >= 1; }, 5s));
  backend.signal(SIGKILL);
  REQUIRE(wait_for([&] { return presenced.metric("presence_ignored_ids_total") >= 2; }, 5s));
  CHECK(obs.history("backend-7").empty());
  const std::string devices = presenced.body("/v1/devices?limit=1000");
  CHECK(devices.find("\"bx-2\"") != std::string::npos);
  CHECK(devices.find("backend-7") == std::string::npos);
}

TEST_CASE("broker-ext alive batches: each listed id is a heartbeat; an id no longer listed times out") {
  // The plugin's aggregation (plugin_opt_heartbeat_topic) as presenced sees it: one message per
  // interval per node listing the devices whose heartbeat the broker saw. Published here by a
  // plain client on a non-$SYS prefix (clients cannot publish under $SYS).
  Mosquitto broker;
  broker.start();
  PresencedOptions o;
  o.extra = "topics:\n  broker_ext: itest/presence/{node}\n  heartbeat: \"\"\n";
  Presenced presenced(broker.port(), o);
  presenced.start();
  Observer obs(broker.uri());
  auto alive = [&](const std::string& ids) {
    presence::test::Process pub({presence::test::find_program("mosquitto_pub"), "-h", "127.0.0.1", "-p",
                                 std::to_string(broker.port()), "-t", "itest/presence/n9/alive", "-m",
                                 "{\"v\":1,\"node\":\"n9\",\"boot\":\"b-1\",\"seq\":1,\"ids\":[" + ids + "]}"});
    REQUIRE(pub.wait_exit(5s) == 0);
  };
  // A few rounds with both, so each has a heartbeat interval (one heartbeat alone says nothing
  // about its cadence: the engine then waits heartbeat_timeout_ceiling).
  for (int i = 0; i < 4; ++i) {
    alive("\"al-1\",\"al-2\"");
    wait_for([] { return false; }, 200ms);  // pacing the "broker", not an assertion
  }
  REQUIRE(obs.wait_state("al-1", "online"));
  REQUIRE(obs.wait_state("al-2", "online"));
  // al-1 keeps being listed, al-2 is not: only al-2 goes offline (heartbeat timeout, 1 s floor).
  bool al2_offline = false;
  for (int i = 0; i < 30 && !al2_offline; ++i) {  // at most ~9 s
    alive("\"al-1\"");
    al2_offline = wait_for([&] { return obs.state("al-2") == "offline"; }, 300ms);
  }
  CHECK(al2_offline);
  CHECK(obs.state("al-1") == "online");
  CHECK(presenced.metric("presence_alive_heartbeats_total") >= 10);
  CHECK(presenced.metric("presence_parse_errors_total{kind=\"bad_payload\"}") == 0);
}

TEST_CASE("broker-ext heartbeat aggregation end to end: the plugin lists, presenced keeps the device online") {
  // plugin_opt_heartbeat_topic: the broker collects heartbeats and presenced, not subscribed to
  // the heartbeat topic, learns them from $SYS/presence/<node>/alive (docs/broker-ext.md).
  Mosquitto broker(broker_ext_conf() + "plugin_opt_heartbeat_topic devices/{id}/heartbeat\n"
                                   "plugin_opt_alive_interval 200\n");
  broker.start();
  PresencedOptions o;
  o.extra = "topics:\n  heartbeat: \"\"\n";
  Presenced presenced(broker.port(), o);
  presenced.start();
  Observer obs(broker.uri());
  auto beat = [&](const std::string& id) {
    presence::test::Process pub({presence::test::find_program("mosquitto_pub"), "-h", "127.0.0.1", "-p",
                                 std::to_string(broker.port()), "-t", "devices/" + id + "/heartbeat",
                                 "-m", "1"});
    REQUIRE(pub.wait_exit(5s) == 0);
  };
  // Heartbeats only (no birth, no session of its own: mosquitto_pub connects as another client).
  bool online = false;
  for (int i = 0; i < 20 && !online; ++i) {
    beat("ag-1");
    online = wait_for([&] { return obs.state("ag-1") == "online"; }, 300ms);
  }
  REQUIRE(online);
  REQUIRE(wait_for([&] { return presenced.metric("presence_alive_heartbeats_total") >= 1; }, 5s));
  // Keep beating for ~3 s (several heartbeat timeouts at the 1 s floor): still online.
  for (int i = 0; i < 10; ++i) {
    beat("ag-1");
    wait_for([] { return false; }, 300ms);  // pacing the device, not an assertion
  }
  CHECK(obs.state("ag-1") == "online");
  for (const auto& s : obs.history("ag-1")) CHECK(s != "offline");
  // Silence: the broker stops listing it, presenced times it out.
  CHECK(obs.wait_state("ag-1", "offline", 10s));
}
