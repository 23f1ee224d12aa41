// Start-up reconciliation (issue 14): presenced restarted while devices stay connected learns who
// is connected *now* from broker-ext (Mosquitto 2.0 cannot list its clients otherwise,
// eclipse-mosquitto/mosquitto#3155): those devices stay online with no wait for heartbeats and
// no false offline when restart grace ends; a device that left while presenced was down still
// goes offline.
#include <doctest/doctest.h>

#include <thread>

#include "test/integration/service/harness.h"
#include "test/support/mock_http.h"

using namespace presence::itest;
using presence::test::Mosquitto;

namespace {

std::string api_state(Presenced& p, const std::string& id) {
  auto j = nlohmann::json::parse(p.body("/v1/devices/" + id), nullptr, false);
  return j.is_object() ? j.value("state", "") : "";
}
}  // namespace

TEST_CASE("reconciliation: restarted presenced keeps connected devices online, no false offline") {
  Mosquitto broker(broker_ext_conf());
  broker.start();
  // The pages themselves are checked: a webhook receiver gets rc-gone's page (it left while
  // presenced was down) and nothing about the devices that stayed.
  presence::test::MockHttpServer sink;
  PresencedOptions o;
  o.restart_grace_min = "2s";
  o.restart_grace_max = "4s";
  o.extra = "alerts:\n  webhook:\n    enabled: true\n    url: " + sink.url("/hook") +
            "\n  policy:\n    alert_after: 1s\n    group_wait: 500ms\n";
  Presenced presenced(broker.port(), o);
  presenced.start();
  Observer obs(broker.uri());

  const std::vector<std::string> ids{"rc-1", "rc-2", "rc-3"};
  std::vector<presence::test::Process> devices;
  for (const auto& id : ids) devices.push_back(will_device(broker.port(), id));
  auto leaver = will_device(broker.port(), "rc-gone");
  for (const auto& id : ids) REQUIRE(obs.wait_state(id, "online", 15s));
  REQUIRE(obs.wait_state("rc-gone", "online", 15s));

  REQUIRE(presenced.stop() == 0);
  // While presenced is down: rc-gone leaves cleanly (no will, nobody hears broker-ext's event).
  leaver.signal(SIGINT);
  REQUIRE(leaver.wait_exit(5s) == 0);
  std::map<std::string, std::size_t> before;
  for (const auto& id : ids) before[id] = obs.history(id).size();

  presenced.start();
  // Online at once: the reply to the request arrives right after the subscription.
  for (const auto& id : ids) {
    INFO(id);
    CHECK(wait_for([&] { return api_state(presenced, id) == "online"; }, 3s));
  }
  // Past the restart grace (max 4 s) and offline_grace (1 s): still online, never suspect.
  REQUIRE(wait_for([&] { return presenced.metric("presence_restart_grace_active") == 0; }, 15s));
  REQUIRE(obs.wait_state("rc-gone", "offline", 15s));  // the one that left is found out
  std::this_thread::sleep_for(2s);
  for (const auto& id : ids) {
    INFO(id);
    CHECK(api_state(presenced, id) == "online");
    const auto h = obs.history(id);
    for (std::size_t i = before[id]; i < h.size(); ++i) CHECK(h[i] == "online");
  }
  CHECK(presenced.log().find("device rc-1: online -> suspect") == std::string::npos);
  // Counted in /metrics (docs/metrics.md): the restarted presenced asked once and was told of
  // the three devices (presenced's own client id and the observer are not devices... the
  // observer is: it is a client like any other, hence >=).
  auto paged = [&](const std::string& id) {
    for (const auto& r : sink.requests())
      if (r.body.find("\"" + id + "\"") != std::string::npos) return true;
    return false;
  };
  CHECK(wait_for([&] { return paged("rc-gone"); }, 15s));
  for (const auto& id : ids) {
    INFO(id);
    CHECK_FALSE(paged(id));
  }
  CHECK(presenced.metric("presence_reconcile_requests_total") >= 1);
  CHECK(presenced.metric("presence_reconciled_total{via=\"broker_ext\"}") >= 3);
  CHECK(presenced.metric("presence_reconciled_total{via=\"emqx\"}") == 0);
}
